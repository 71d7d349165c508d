"""pack_triplets and TripletBatchDataset: every triplet whole, once; batches loaded from a dataset."""

from __future__ import annotations

import pytest
import torch

from massface.mining import (
    BatchAllMiner,
    TripletBatchDataset,
    pack_triplets,
)


# ---------------------------------------------------------------------------------------------- batches
@pytest.mark.parametrize("batch_size", [3, 7, 10, 205])
def test_pack_triplets_keeps_every_triplet_whole_once(batch_size):
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randint(0, 50, (301,), generator=g) for _ in range(3))
    batches = pack_triplets(a, p, n, batch_size // 3, generator=g)
    seen = []
    for b in batches:
        assert b.num_triplets <= batch_size // 3 and b.indices.numel() <= batch_size
        assert torch.equal(b.indices, torch.unique(b.indices))
        seen += list(zip(*(t.tolist() for t in b.triplets())))
    assert sorted(seen) == sorted(zip(a.tolist(), p.tolist(), n.tolist()))
    assert len(pack_triplets(a, p, n, 100, generator=g, drop_last=True)) == 3
    with pytest.raises(ValueError, match="Generator"):
        pack_triplets(a, p, n, 5)



def test_triplet_batch_dataset_loads_batches_from_a_dataset():
    images = torch.randn(30, 3, 4, 4)
    labels = torch.arange(10).repeat_interleave(3)
    source = list(zip(images, labels.tolist()))
    a, p, n = BatchAllMiner(margin=2.0)(images.flatten(1), labels)
    ds = TripletBatchDataset(source, pack_triplets(a, p, n, 4, generator=torch.Generator().manual_seed(0)))
    for (x, y, (ta, tp, tn)), b in zip(ds, ds.batches):
        assert torch.equal(x, images[b.indices]) and torch.equal(y, labels[b.indices])
        assert bool((y[ta] == y[tp]).all() and (y[ta] != y[tn]).all())
