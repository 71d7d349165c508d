"""The argument validators shared by every layer (data, sampling, mining, losses, training), written once:
``check_int``, ``check_real`` and ``interval`` (the text of an allowed range).

Every message starts with the argument's name, then what is allowed, the owner and the value given —
``"num_identities must be a positive int for SynthFaces, got 0"`` — so a caller (the trainer's config loader)
can map the error back to the config key that holds the argument.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_real", "interval"]


def check_int(name: str, value: object, owner: str = "", *, low: int = 1, high: int | None = None) -> int:
    """``int(value)`` if it is an integer (numpy integers too, never a bool) in ``[low, high]``; else ValueError.

    ``high=None`` leaves the range open above; ``owner`` (e.g. the class name) is named in the message. O(1).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low \
            or (high is not None and value > high):
        what = (f"an int in [{low}, {high}]" if high is not None
                else "a positive int" if low == 1 else f"an int >= {low}")
        raise ValueError(f"{name} must be {what}{f' for {owner}' if owner else ''}, got {value!r}")
    return int(value)


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
