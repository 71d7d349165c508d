"""IJB-B / IJB-C: template pooling, 1:1 verification (TAR at FAR) and 1:N identification (TPIR, CMC).

Protocol as in insightface's ``eval_ijbc.py`` / ``recognition/_evaluation_/ijb`` (see
``reference/eval-protocols.md`` §4):

* per image: ``f = e(img) + e(flip(img))`` (flip), optionally L2-normalised, optionally ``× faceness``;
  insightface's defaults keep the raw norm and multiply by the detector score, TFace's use the original
  view only and L2-normalise every image (:data:`FEATURE_PRESETS`);
* per template: media feature = mean of its images, template feature = sum of its media, then L2;
* pair score = cosine of the two template features; ROC = ``sklearn.metrics.roc_curve`` (score ``>=``
  threshold, collinear vertices dropped); TPR at FAR = the TPR of the ROC vertex nearest to the target
  FAR (ties: the larger TPR) — or linear interpolation on the ROC with ``rule="interpolate"``.

Full IJB-C size (469K images, 23K templates, ~15.6M pairs) runs from features in bounded memory: pooling
is one sparse × dense product, pair scores are computed block-wise (rows of a template-similarity block
times the templates those pairs touch), and image features can be streamed to a ``.npy`` memmap.

One module per concern:

=====================  ====================================================================================
``release``            :func:`read_ijb`, :class:`IJBMeta` — the ``meta/`` lists, every line checked
``alignment``          :func:`aligned_crops` — safe reading of ``loose_crop/`` and 5-point alignment
``features``           :class:`FeatureFlags`, :func:`combine_features`, :func:`extract_ijb_features`
``templates``          :func:`pool_templates`, :func:`score_template_pairs`, :func:`verify_templates`
``identification``     :func:`identify` (1:N)
=====================  ====================================================================================

ROC and TPR@FAR come from :mod:`massface.evaluation.roc` (re-exported here as :func:`roc_curve`,
:func:`tpr_at_fpr`).
"""

from __future__ import annotations

from massface.evaluation.ijb.alignment import _iter_aligned, aligned_crops  # noqa: F401
from massface.evaluation.ijb.features import FEATURE_PRESETS, FeatureFlags, combine_features, extract_ijb_features
from massface.evaluation.ijb.identification import DEFAULT_FPIRS, identify
from massface.evaluation.ijb.release import IJBMeta, read_ijb
from massface.evaluation.ijb.templates import pool_templates, score_template_pairs, verify_templates
from massface.evaluation.roc import DEFAULT_FARS, roc_curve, tpr_at_fpr

__all__ = [
    "FeatureFlags",
    "FEATURE_PRESETS",
    "IJBMeta",
    "read_ijb",
    "aligned_crops",
    "combine_features",
    "extract_ijb_features",
    "pool_templates",
    "score_template_pairs",
    "roc_curve",
    "tpr_at_fpr",
    "verify_templates",
    "identify",
    "DEFAULT_FARS",
    "DEFAULT_FPIRS",
]
