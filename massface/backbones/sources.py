"""The checkpoint families massface reads and writes, as plain names (no torch import: CLIs build their
``--source`` choices from these at start-up)."""

from __future__ import annotations

__all__ = ["SOURCES", "TARGETS"]

SOURCES: tuple[str, ...] = ("arcface_torch", "tface", "adaface", "magface", "massface")
"""The checkpoint layouts :func:`massface.backbones.load_pretrained` reads (``source="auto"`` tries them in order)."""
TARGETS: tuple[str, ...] = ("arcface_torch", "tface")
"""The layouts :func:`massface.backbones.export_pretrained` writes."""
