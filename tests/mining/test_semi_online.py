"""TripletPoolBuilder: pools hold exactly the selected triplets; BatchNorm modes."""

from __future__ import annotations

import torch

from massface.mining import (
    BatchAllMiner,
    BatchHardestMiner,
    TripletPoolBuilder,
)


def test_semi_online_batches_hold_exactly_the_selected_triplets(_ToyNet, triplet_set):
    torch.manual_seed(0)
    model = _ToyNet().train()
    images = torch.randn(60, 3, 4, 4)
    labels = torch.arange(15).repeat_interleave(4)
    semi = TripletPoolBuilder(BatchAllMiner(margin=0.5), batch_size=20, seed=1)
    running = model.bn.running_mean.clone()
    pool = semi.mine_pool(model, images, labels)
    assert model.training and torch.equal(model.bn.running_mean, running), "bn='eval' leaves BN statistics alone"
    model.eval()
    with torch.no_grad():
        expected = triplet_set(BatchAllMiner(margin=0.5)(model(images), labels))
    assert triplet_set(pool.triplets) == expected and len(expected) > 20
    got = []
    for (x, y, (a, p, n)), b in zip(pool, pool.batches):
        assert x.shape[0] <= 20 and a.numel() <= 6
        assert torch.equal(x, images[b.indices]) and torch.equal(y, labels[b.indices])
        got += list(zip(*(t.tolist() for t in b.triplets())))
    assert sorted(got) == sorted(expected), "every selected triplet in exactly one batch"



def test_semi_online_bn_train_mode_updates_running_statistics(_ToyNet):
    model = _ToyNet().eval()
    before = model.bn.running_mean.clone()
    TripletPoolBuilder(BatchHardestMiner(), batch_size=8, bn="train").mine_pool(
        model, torch.randn(24, 3, 4, 4) + 3.0, torch.arange(6).repeat_interleave(4))
    assert not model.training and not torch.equal(model.bn.running_mean, before)
