"""Constructor-argument checks shared by the miners and the losses.

``check_int`` is the package-wide one of :mod:`massface._checks` (re-exported here); ``check_real`` and
``interval`` follow the same message rule.

Every message starts with the argument's name, then the allowed range and the owner, then the value given —
``"m must be in [0, 1.5708) for ArcFace, got 1000"`` — so that a caller (the trainer's config loader) can map
the error back to the config key that holds the argument.
"""

from __future__ import annotations

import math
import numbers

from massface._checks import check_int

__all__ = ["check_real", "check_int", "interval"]


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> str:
    """``[low, high)`` style text of an interval (an infinite end is always open)."""
    left = "(" if low_open or math.isinf(low) else "["
    right = ")" if high_open or math.isinf(high) else "]"
    return f"{left}{_fmt(low)}, {_fmt(high)}{right}"


def check_real(name: str, value: object, owner: str, *, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False, note: str = "") -> float:
    """``float(value)`` if it is a real number (not a bool, not NaN, finite) in the interval; else ValueError.

    ``note`` is appended to the message (e.g. the unit). O(1).
    """
    allowed = interval(low, high, low_open, high_open)
    tail = f" ({note})" if note else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in {allowed} for {owner}, got {value!r}{tail}")
    x = float(value)
    inside = (math.isfinite(x)
              and (x > low if low_open else x >= low)
              and (x < high if high_open else x <= high))
    if not inside:
        raise ValueError(f"{name} must be in {allowed} for {owner}, got {value!r}{tail}")
    return x
