"""Deprecated: ``massface.evaluation.runner`` was split by what lives in it (one release of this shim).

* :mod:`massface.evaluation.models` — :func:`load_model`, :class:`OnnxModel`, :func:`is_torchscript`;
* :mod:`massface.evaluation.embedding` — :func:`embed_batch`, :func:`embed_images`;
* :mod:`massface.evaluation.verification_sets` — :func:`evaluate_bin`, :func:`evaluate_bins`,
  :func:`evaluate_lfw_pairs`, :func:`evaluate_images`, :func:`find_bins`, :data:`KNOWN_SETS`.

Every name is also exported lazily by :mod:`massface.evaluation` (``from massface.evaluation import find_bins``).
"""

from __future__ import annotations

import warnings

from massface.evaluation.embedding import Variant, embed_batch, embed_images
from massface.evaluation.models import OnnxModel, is_torchscript, load_model
from massface.evaluation.verification_sets import (
    KNOWN_SETS,
    evaluate_bin,
    evaluate_bins,
    evaluate_images,
    evaluate_lfw_pairs,
    find_bins,
)

__all__ = [
    "KNOWN_SETS",
    "OnnxModel",
    "Variant",
    "is_torchscript",
    "load_model",
    "embed_batch",
    "embed_images",
    "evaluate_images",
    "evaluate_bin",
    "evaluate_lfw_pairs",
    "evaluate_bins",
    "find_bins",
]

warnings.warn(
    "massface.evaluation.runner is deprecated and goes in the next release: import from massface.evaluation "
    "(or its modules models, embedding, verification_sets)",
    DeprecationWarning,
    stacklevel=2,
)
