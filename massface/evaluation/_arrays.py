"""The evaluation's one "anything -> numpy" helper (tensors go through :func:`massface._torch.to_numpy`).

torch is imported only when a tensor is given (then it is loaded already), so the numpy-only modules
(``verification``, ``roc``, IJB scoring) stay free of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_numpy", "as_vector"]


def as_numpy(x: Any, name: str = "array", dtype: np.dtype | type | None = None) -> np.ndarray:
    """``x`` as a numpy array: a torch tensor (any device, bfloat16 included) is detached and copied to the
    host, anything else goes through ``np.asarray``; ``dtype`` converts. ``TypeError`` naming ``name`` when
    ``x`` is not array-like. O(size)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        from massface._torch import to_numpy

        return to_numpy(x, dtype)
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}") from exc
    return arr if dtype is None or arr.dtype == dtype else arr.astype(dtype)


def as_vector(x: Any, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as a 1-D numpy array (of length ``n`` if given); ValueError naming ``name`` otherwise."""
    a = as_numpy(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} entries, expected {n}")
    return a
