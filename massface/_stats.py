"""The one ``stats`` protocol of massface's components (miners, losses, memories, pools).

``component.stats`` is a property returning a fresh ``dict[str, float]`` about the last call. The call itself
only *records* what the numbers need (detached tensors, Python numbers); they are turned into floats when
``stats`` is read, so a training step that does not log pays no device synchronisation for them.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["LazyStats", "StatValue"]

StatValue = Tensor | float | int


class LazyStats:
    """Mixin: ``_record_stats(name=value, ...)`` in the hot path, ``stats`` (dict of floats) on access."""

    _recorded_stats: dict[str, StatValue]

    def _record_stats(self, **values: StatValue) -> None:
        """Keep this call's values (tensors must be detached); nothing is read from the device here."""
        self._recorded_stats = values

    @property
    def stats(self) -> dict[str, float]:
        """Values of the last call as Python floats (empty before the first call); computed on access."""
        return {name: float(value) for name, value in getattr(self, "_recorded_stats", {}).items()}
