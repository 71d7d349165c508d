"""Triplet mining: selection strategies (pure functions on a distance matrix), miners (PML-compatible
modules) and the modes that feed them more than one batch.

``TripletMiner`` is the general form; ``BatchAllMiner``, ``BatchHardestMiner``, ``BatchMinMinMiner``,
``BatchMinMaxMiner``, ``BatchRandomMiner`` and ``SemiHardMiner`` are its presets (definitions in DESIGN.md).
Every mode reuses the same strategy objects:

* online — the miner on the current batch;
* ``CrossBatchMemory`` — the batch against a FIFO memory of recent embeddings (XBM);
* ``SemiOnlineMiner`` — a pool of ``scale`` batches embedded without gradient, mined at once, trained on
  as batches of whole triplets;
* ``OfflineMiner`` — a whole embedded dataset, candidates from a faiss index.
"""

from massface._lazy import lazy_exports

_EXPORTS = {
    "TripletMiner": "miners",
    "BatchAllMiner": "miners",
    "BatchHardestMiner": "miners",
    "BatchMinMinMiner": "miners",
    "BatchMinMaxMiner": "miners",
    "BatchRandomMiner": "miners",
    "SemiHardMiner": "miners",
    "PRESETS": "miners",
    "CrossBatchMemory": "memory",
    "SemiOnlineMiner": "semi_online",
    "TripletPool": "semi_online",
    "OfflineMiner": "offline",
    "IndexConfig": "offline",
    "NeighbourIndex": "offline",
    "embed_dataset": "offline",
    "TripletBatch": "triplet_batches",
    "TripletBatchDataset": "triplet_batches",
    "pack_triplets": "triplet_batches",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
