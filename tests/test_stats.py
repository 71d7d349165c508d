"""massface._stats: one ``stats`` protocol for every component: tensors recorded in the hot path, a property of floats on access."""

from __future__ import annotations

import inspect

import pytest
import torch

from massface.losses import ArcFace, CenterLoss, JointLoss, TripletLoss
from massface.mining import (
    BatchHardestMiner,
    CrossBatchMemory,
    OfflineTripletSearch,
    TripletMiner,
    TripletPoolBuilder,
)


# ---------------------------------------------------------------- one stats protocol
def _is_float_dict(stats: object) -> bool:
    return isinstance(stats, dict) and all(isinstance(v, float) for v in stats.values())



def test_losses_record_tensors_in_the_hot_path_and_give_floats_on_access(batch) -> None:
    x, y = batch()
    triplet = TripletLoss()
    triplet(x, y)
    assert all(isinstance(v, (torch.Tensor, int, float)) for v in triplet._recorded_stats.values())
    assert isinstance(triplet._recorded_stats["loss"], torch.Tensor)  # not converted: no device sync per step
    assert _is_float_dict(triplet.stats) and triplet.parts == triplet.stats
    assert set(triplet.stats) == {"loss", "num_triplets", "active_fraction"}
    joint = JointLoss(TripletLoss(), ArcFace(6, 3))
    total = joint(x, y)
    assert _is_float_dict(joint.stats) and joint.parts == joint.stats
    assert joint.stats["total"] == pytest.approx(float(total.detach()))
    center = CenterLoss(embedding_size=6, num_classes=3)
    assert center.stats == {}
    value = center(x, y)
    assert center.stats == {"loss": pytest.approx(float(value))}



def test_miners_memory_and_mode_classes_have_a_stats_property_of_floats(batch) -> None:
    x, y = batch()
    miner = BatchHardestMiner()
    miner(x, y)
    xbm = CrossBatchMemory(TripletLoss(), BatchHardestMiner(), 32, 6)
    xbm(x, y)
    search = OfflineTripletSearch(BatchHardestMiner(), neighbours=4, index="flat")
    search.mine_triplets(x, y)
    builder = TripletPoolBuilder(BatchHardestMiner(), batch_size=6)
    pool = builder.mine_pool_from_embeddings(x, y, torch.zeros(12, 1))
    for component in (miner, xbm, search, builder, pool):
        assert _is_float_dict(component.stats), type(component).__name__
    for cls in (TripletMiner, CrossBatchMemory, OfflineTripletSearch, TripletPoolBuilder, TripletLoss, JointLoss,
                CenterLoss):
        assert isinstance(inspect.getattr_static(cls, "stats"), property), cls.__name__
    assert xbm.stats["memory_filled"] == 12.0 and builder.stats == pool.stats
