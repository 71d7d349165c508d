"""Old names kept importable for one release: a module-level ``__getattr__`` (PEP 562) that resolves each
deprecated name to its replacement and issues a :class:`DeprecationWarning` saying which name to use."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["deprecated_names", "warn_renamed"]


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (removed in the release after next)."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; use {new}",
                  DeprecationWarning, stacklevel=stacklevel)


def deprecated_names(module: str, renames: Mapping[str, str],
                     fallback: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module``: ``renames[old]`` is the new name, looked up on the module itself
    (so a package's lazy export is loaded on first use); other names go to ``fallback`` (e.g. the package's
    lazy-export ``__getattr__``) or raise AttributeError."""

    def __getattr__(name: str) -> Any:
        new = renames.get(name)
        if new is not None:
            warn_renamed(f"{module}.{name}", f"{module}.{new}")
            return getattr(sys.modules[module], new)
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
