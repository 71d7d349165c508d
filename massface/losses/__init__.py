"""Metric and classification losses: triplet, the margin-softmax head family, center loss, joint, partial FC.

Names are loaded lazily from the module that defines them.

Conventions: every owner of class centres is built as ``(embedding_size, num_classes)`` — the heads by position,
``CenterLoss`` by keyword for this release (its old positional ``(num_classes, dim)`` still works with a
DeprecationWarning); head options are keyword-only with ``s`` before ``m``; ``CombinedMargin(m1=1, m2=m, m3=0)``
equals ``ArcFace(m=m)`` at every angle; ``TripletLoss``'s default margin is 0.25 like every miner's; every loss
exposes ``stats`` (dict of floats, computed on access; ``parts`` is the same for the trainer).
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "TripletLoss": "triplet",
    "FusedTripletLoss": "fused_triplet",
    "MarginLoss": "triplet",
    "Softmax": "margin",
    "NormFace": "margin",
    "SphereFace": "margin",
    "CosFace": "margin",
    "ArcFace": "margin",
    "CombinedMargin": "margin",
    "CurricularFace": "margin",
    "AdaFace": "margin",
    "SubCenterArcFace": "margin",
    "MagFace": "margin",
    "HeadLoss": "margin",
    "MarginFallback": "margin",
    "CenterLoss": "center",
    "JointLoss": "joint",
    "PartialFC": "partial_fc",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
