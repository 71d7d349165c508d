"""massface: triplet-mining metric learning for face recognition.

Importing ``massface`` has no side effects and imports no heavy dependency; the sub-packages
(``massface.sampling``, ``massface.mining``, ``massface.losses``, ``massface.backbones``,
``massface.data``, ``massface.evaluation``, ``massface.training``) are loaded on first use.
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
