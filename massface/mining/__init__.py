"""Triplet mining: selection strategies (pure functions on a distance matrix) and miners (PML-compatible modules).

``TripletMiner`` is the general form; ``BatchAllMiner``, ``BatchHardestMiner``, ``BatchMinMinMiner``,
``BatchMinMaxMiner``, ``BatchRandomMiner`` and ``SemiHardMiner`` are its presets (definitions in DESIGN.md).
"""

from massface.mining.miners import (
    BatchAllMiner,
    BatchHardestMiner,
    BatchMinMaxMiner,
    BatchMinMinMiner,
    BatchRandomMiner,
    PRESETS,
    SemiHardMiner,
    TripletMiner,
)

__all__ = [
    "TripletMiner",
    "BatchAllMiner",
    "BatchHardestMiner",
    "BatchMinMinMiner",
    "BatchMinMaxMiner",
    "BatchRandomMiner",
    "SemiHardMiner",
    "PRESETS",
]
