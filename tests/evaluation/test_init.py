"""massface.evaluation's lazy exports resolve."""

from __future__ import annotations

import warnings


def test_lazy_exports_resolve() -> None:
    import massface.evaluation as ev

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no lazy name goes through the shim
        for name in ev.__all__:
            assert getattr(ev, name) is not None, name
