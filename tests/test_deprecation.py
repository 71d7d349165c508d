"""massface._deprecation: the renamed classes, constants and methods still import and answer for one release, with a DeprecationWarning naming the new name (issue 13)."""

from __future__ import annotations

import importlib

import pytest
import torch

import massface.mining as mining
from massface.losses import TripletLoss
from massface.mining import (
    BatchHardestMiner,
    CrossBatchMemory,
    OfflineTripletSearch,
    TripletPoolBuilder,
    embed_dataset,
)


# ---------------------------------------------------------------- deprecated names
@pytest.mark.parametrize("module, old, new", [
    ("massface.mining", "SemiOnlineMiner", "TripletPoolBuilder"),
    ("massface.mining", "OfflineMiner", "OfflineTripletSearch"),
    ("massface.mining.semi_online", "SemiOnlineMiner", "TripletPoolBuilder"),
    ("massface.mining.offline", "OfflineMiner", "OfflineTripletSearch"),
    ("massface.losses.margin", "Fallback", "MarginFallback"),
    ("massface.mining.strategies", "Fallback", "NegativeFallback"),
    ("massface.mining.strategies", "FALLBACKS", "NEGATIVE_FALLBACKS"),
])
def test_old_names_import_with_a_deprecation_warning(module: str, old: str, new: str) -> None:
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*use {module}\.{new}"):
        value = getattr(mod, old)
    assert value is getattr(mod, new)
    with pytest.raises(AttributeError):
        mod.NoSuchName  # noqa: B018



def test_old_method_names_warn_and_return_the_same(batch) -> None:
    x, y = batch()
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 32, 6)
    with pytest.warns(DeprecationWarning, match="mine_with_reference"):
        old = xbm.mine(x, y)
    new = xbm.mine_with_reference(x, y)
    assert all(torch.equal(a, b) for a, b in zip(old[0], new[0]))
    search = OfflineTripletSearch(BatchHardestMiner(), neighbours=4, index="flat")
    with pytest.warns(DeprecationWarning, match="mine_triplets"):
        old_t = search.mine(x, y)
    assert torch.equal(old_t.a, search.mine_triplets(x, y).a)
    builder = TripletPoolBuilder(BatchHardestMiner(), batch_size=6)
    with pytest.warns(DeprecationWarning, match="mine_pool_from_embeddings"):
        pool = builder.mine_embeddings(x, y, torch.zeros(12, 1))
    assert len(pool) >= 1
    with pytest.warns(DeprecationWarning, match=r"progress=True"):
        emb, labels = embed_dataset(torch.nn.Linear(6, 4), list(zip(x, y.tolist())), progress="embedding")
    assert emb.shape == (12, 4) and torch.equal(labels, y)
    assert isinstance(mining.TripletPoolBuilder(BatchHardestMiner(), batch_size=6), TripletPoolBuilder)
