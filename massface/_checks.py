"""The argument validator shared by every layer (data, sampling, mining, losses, training), written once.

Every message starts with the argument's name, then what is allowed, the owner and the value given —
``"num_identities must be a positive int for SynthFaces, got 0"`` — so a caller (the trainer's config loader)
can map the error back to the config key that holds the argument.
"""

from __future__ import annotations

import numbers

__all__ = ["check_int"]


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
