"""Metric and classification losses: triplet, the margin-softmax head family, center loss, joint, partial FC.

Names are loaded lazily from the module that defines them.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "TripletLoss": "triplet",
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
    "CenterLoss": "center",
    "JointLoss": "joint",
    "PartialFC": "partial_fc",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
