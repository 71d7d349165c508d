"""Triplet mining: selection strategies (pure functions on a distance matrix), miners (PML-compatible
modules) and the modes that feed them more than one batch.

``TripletMiner`` is the general form; ``BatchAllMiner``, ``BatchHardestMiner``, ``BatchMinMinMiner``,
``BatchMinMaxMiner``, ``BatchRandomMiner``, ``SemiHardMiner`` and ``DistanceWeightedMiner`` are its presets (definitions in DESIGN.md).
Every mode reuses the same strategy objects:

* online — the miner on the current batch;
* ``CrossBatchMemory`` — the batch against a FIFO memory of recent embeddings (XBM);
* ``TripletPoolBuilder`` — a pool of ``scale`` batches embedded without gradient, mined at once, trained on
  as batches of whole triplets (``mine_pool`` returns a ``TripletPool``);
* ``OfflineTripletSearch`` — a whole embedded dataset, candidates from a faiss index (``mine_triplets``
  returns ``Triplets``).

Only the ``TripletMiner`` family are miners in PML's sense; the two mode classes were called
``SemiOnlineMiner`` and ``OfflineMiner`` before — those names still import, with a DeprecationWarning, for one
release. Every component's ``stats`` is a property giving a dict of floats about its last call, computed on
access. The default margin of every miner (and of ``TripletLoss``) is ``DEFAULT_MARGIN`` = 0.25 (MassFace).
"""

from massface._deprecation import deprecated_names
from massface._lazy import lazy_exports

_EXPORTS = {
    "TripletMiner": "miners",
    "BatchAllMiner": "miners",
    "BatchHardestMiner": "miners",
    "BatchMinMinMiner": "miners",
    "BatchMinMaxMiner": "miners",
    "BatchRandomMiner": "miners",
    "SemiHardMiner": "miners",
    "DistanceWeightedMiner": "miners",
    "PRESETS": "miners",
    "DEFAULT_MARGIN": "miners",
    "CrossBatchMemory": "memory",
    "TripletPoolBuilder": "semi_online",
    "TripletPool": "semi_online",
    "OfflineTripletSearch": "offline",
    "IndexConfig": "offline",
    "NeighbourIndex": "offline",
    "embed_dataset": "offline",
    "TripletBatch": "triplet_batches",
    "TripletBatchDataset": "triplet_batches",
    "pack_triplets": "triplet_batches",
}

_RENAMED = {"SemiOnlineMiner": "TripletPoolBuilder", "OfflineMiner": "OfflineTripletSearch"}

__all__ = list(_EXPORTS)
_lazy_getattr, __dir__ = lazy_exports(__name__, _EXPORTS)
__getattr__ = deprecated_names(__name__, _RENAMED, _lazy_getattr)
