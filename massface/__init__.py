"""massface: triplet-mining metric learning for face recognition.

Importing ``massface`` has no side effects and imports no heavy dependency; the sub-packages
(``massface.sampling``, ``massface.mining``, ``massface.losses``, ``massface.backbones``,
``massface.data``, ``massface.evaluation``, ``massface.training``) are loaded on first use.

Conventions of the core (one per idea):

=======================================  ====================================================================
idea                                     convention
=======================================  ====================================================================
owners of class centres                  ``(embedding_size, num_classes)``: heads by position, ``CenterLoss``
                                         by keyword this release (old positional ``(num_classes, dim)`` warns)
head options                             keyword-only, ``s`` before ``m`` (``ArcFace(512, C, s=64.0, m=0.5)``);
                                         extra positional arguments raise a TypeError naming the keywords
``CombinedMargin(m1=1, m2=m, m3=0)``     equals ``ArcFace(m=m)`` at every angle (default ``fallback="auto"``:
                                         insightface's th/mm rule where m1 = 1)
triplet margin default                   0.25 (MassFace's alpha) for every miner and ``TripletLoss``
``stats``                                a property: dict of Python floats about the last call, computed on
                                         access (no device sync in the step); ``parts`` = ``stats`` on losses
names that return                        ``mine`` is PML's miner hook only; ``mine_triplets`` → ``Triplets``,
                                         ``mine_pool`` → ``TripletPool``, ``mine_with_reference`` → (triplets,
                                         reference)
``progress``                             a bool (a tqdm bar on stderr)
argument checks                          ``massface._checks`` (``"<name> must be … for <owner>, got …"``)
renamed (old names warn one release)     ``SemiOnlineMiner`` → ``TripletPoolBuilder``, ``OfflineMiner`` →
                                         ``OfflineTripletSearch``, ``Fallback`` → ``MarginFallback`` (heads) /
                                         ``NegativeFallback`` (miners)
=======================================  ====================================================================
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBMODULES = (
    "backbones",
    "data",
    "distances",
    "evaluation",
    "losses",
    "mining",
    "sampling",
    "training",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'massface' has no attribute {name!r}")
