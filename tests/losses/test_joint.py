"""JointLoss, and the heads inside PML's MultipleLosses."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import MultipleLosses, TripletMarginLoss
from pytorch_metric_learning.miners import TripletMarginMiner

from massface.losses import ArcFace, CosFace, JointLoss, PartialFC, TripletLoss


def test_massface_recipe_triplet_plus_half_cosface(batch) -> None:
    x, y = batch()
    torch.manual_seed(0)
    triplet, head = TripletMarginLoss(margin=0.2), CosFace(8, 4, s=64.0, m=0.25)
    joint = JointLoss(triplet, head, head_weight=0.5)
    total = joint(x, y)
    want_metric, want_cls = triplet(x, y), head.loss(x, y)
    torch.testing.assert_close(total, want_metric + 0.5 * want_cls)
    parts = joint.parts
    assert set(parts) == {"metric", "classification", "total"}
    assert all(isinstance(v, float) for v in parts.values())
    assert parts["metric"] == pytest.approx(want_metric.item())
    assert parts["classification"] == pytest.approx(want_cls.item())
    assert parts["total"] == pytest.approx(total.item())
    total.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0



def test_miner_feeds_the_metric_part_only(batch) -> None:
    x, y = batch(1)
    miner = TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    triplet, head = TripletMarginLoss(margin=0.2), ArcFace(8, 4)
    joint = JointLoss(triplet, head, metric_weight=2.0, miner=miner)
    want = 2.0 * triplet(x, y, miner(x, y)) + head.loss(x, y)
    torch.testing.assert_close(joint(x, y), want)
    given = miner(x, y)  # an explicit indices_tuple wins over the miner
    torch.testing.assert_close(joint(x, y, given), want)



def test_heads_inside_pml_multiple_losses(batch) -> None:
    x, y = batch(2)
    torch.manual_seed(0)
    triplet, head = TripletMarginLoss(margin=0.2), CosFace(8, 4, s=64.0, m=0.25)
    multiple = MultipleLosses([triplet, head.as_loss()], weights=[1.0, 0.5])
    torch.testing.assert_close(multiple(x, y), JointLoss(triplet, head, head_weight=0.5)(x, y))
    # JointLoss nests in MultipleLosses as well (PML's call signature), with a miner per loss
    miner = TripletMarginMiner(margin=0.2)
    nested = MultipleLosses({"joint": JointLoss(triplet, head), "arc": ArcFace(8, 4).as_loss()},
                            miners={"joint": miner})
    value = nested(x, y)
    assert torch.isfinite(value)
    value.backward()
    assert head.weight.grad is not None



def test_adapter_rejects_reference_sets(batch) -> None:
    x, y = batch()
    with pytest.raises(ValueError, match="ref_emb"):
        CosFace(8, 4).as_loss()(x, y, None, x, y)



def test_joint_with_partial_fc_and_bad_arguments(batch) -> None:
    x, y = batch(5)
    torch.manual_seed(0)
    head = CosFace(8, 4)
    reference = CosFace(8, 4)
    reference.load_state_dict(head.state_dict())
    joint = JointLoss(TripletMarginLoss(), PartialFC(head))
    torch.testing.assert_close(joint(x, y), TripletMarginLoss()(x, y) + reference.loss(x, y))
    with pytest.raises(ValueError, match="neither"):
        JointLoss(None, None)
    with pytest.raises(TypeError, match="loss"):
        JointLoss(TripletMarginLoss(), torch.nn.Linear(8, 4))



def test_with_massface_triplet_loss(batch) -> None:
    x, y = batch(6)
    triplet, head = TripletLoss(margin=0.2), CosFace(8, 4, s=64.0, m=0.25)
    joint = JointLoss(triplet, head, head_weight=0.5)
    torch.testing.assert_close(joint(x, y), triplet(x, y) + 0.5 * head.loss(x, y))
    multiple = MultipleLosses([triplet, head.as_loss()], weights=[1.0, 0.5])
    torch.testing.assert_close(multiple(x, y), joint(x, y))
