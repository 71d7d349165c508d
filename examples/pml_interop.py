"""massface miners and losses inside pytorch-metric-learning code, and the other way round.

    python examples/pml_interop.py
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses, miners
from pytorch_metric_learning.distances import CosineSimilarity

from massface.losses import ArcFace, TripletLoss
from massface.mining import BatchMinMaxMiner, SemiHardMiner


def main() -> int:
    g = torch.Generator().manual_seed(0)
    embeddings = torch.randn(64, 128, generator=g, requires_grad=True)
    labels = torch.arange(16).repeat_interleave(4)

    # 1. our miner feeding PML's TripletMarginLoss (any PML distance works in our miners too)
    miner = SemiHardMiner(margin=0.1, distance=CosineSimilarity())
    pml_loss = losses.TripletMarginLoss(margin=0.1, distance=CosineSimilarity())
    print("PML loss on massface semi-hard triplets:", pml_loss(embeddings, labels, miner(embeddings, labels)).item())

    # 2. PML's miners feeding our TripletLoss (pair tuples are joined on the anchor, no dense mask)
    ours = TripletLoss(margin=0.2)
    print("massface loss on PML MultiSimilarity pairs:", ours(embeddings, labels, miners.MultiSimilarityMiner()(embeddings, labels)).item())

    # 3. cross-batch memory: PML's XBM with our miner (self-pairs against the queue are PML's to remove)
    xbm = losses.CrossBatchMemory(losses.TripletMarginLoss(margin=0.2), embedding_size=128, memory_size=256,
                                  miner=BatchMinMaxMiner())
    for _ in range(3):
        batch = torch.randn(64, 128, generator=g, requires_grad=True)
        value = xbm(batch, labels)
    print("XBM + BatchMinMaxMiner:", value.item())

    # 4. a margin head next to a metric loss in PML's MultipleLosses
    head = ArcFace(128, 16, s=64.0, m=0.5)
    joint = losses.MultipleLosses([ours, head.as_loss()], weights=[1.0, 0.5])
    total = joint(embeddings, labels)
    total.backward()
    print("MultipleLosses(TripletLoss, 0.5·ArcFace):", total.item(), "| miner stats:", miner.stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
