"""Semi-online mining (FaceNet / davidsandberg-facenet / MassFace ``simi_online``): mine a large pool, train on
the selected triplets.

1. A pool of ``scale`` × (P×K) images — e.g. a :class:`~massface.sampling.PKSampler` batch of
   ``scale · P`` identities × K images — is embedded with the current model under ``no_grad``, in chunks of
   the training batch size. BatchNorm uses its running statistics by default (``bn="eval"``); ``bn="train"``
   reproduces MassFace, whose pool passes used batch statistics and updated the running averages.
2. The whole pool is mined at once by any :class:`~massface.mining.TripletMiner` (the same strategy objects
   as online mining), so a hard negative can come from any of the ``scale`` batches' worth of identities.
3. The selected triplets are shuffled and packed into training batches of ``batch_size // 3`` whole
   triplets (:func:`~massface.mining.triplet_batches.pack_triplets`); each batch is re-embedded with
   gradient and scored on exactly its triplets, until the pool is used up. Any batch size works: MassFace
   required it to be a multiple of 3 (× the GPU count).

Cost per pool of N images: N forward passes without gradient, one mining call on an N × N matrix (see the
miner; N = 2050 for MassFace's P = 41, K = 5, scale = 10), then one forward/backward per training batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal, Optional

import torch
from torch import Tensor, nn

from massface.mining.miners import TripletMiner, check_batch
from massface.mining.triplet_batches import TripletBatch, pack_triplets

__all__ = ["SemiOnlineMiner", "TripletPool", "embed_without_grad"]

BNMode = Literal["eval", "train"]


def embed_without_grad(model: nn.Module, images: Tensor, batch_size: int, bn: BNMode = "eval") -> Tensor:
    """``model(images)`` in chunks of ``batch_size`` under ``no_grad``, as float32 (N, D).

    ``bn="eval"`` runs the model in eval mode (BatchNorm running statistics, no dropout); ``bn="train"`` in
    train mode (batch statistics; running averages updated, as MassFace's pool passes did). The model's
    mode is restored afterwards.
    """
    if bn not in ("eval", "train"):
        raise ValueError(f"bn={bn!r} is not one of ('eval', 'train')")
    was_training = model.training
    model.train(bn == "train")
    try:
        with torch.no_grad():
            parts = [model(images[s : s + batch_size]).float() for s in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else images.new_zeros((0, 0))


@dataclass
class TripletPool:
    """A mined pool: its images and labels, the selected triplets (pool rows) and their training batches."""

    images: Tensor
    labels: Tensor
    triplets: tuple[Tensor, Tensor, Tensor]
    batches: list[TripletBatch] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, i: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """``(images, labels, (a, p, n))`` of training batch i, triplets as positions in ``images``."""
        b = self.batches[i]
        idx = b.indices.to(self.images.device)
        return self.images[idx], self.labels[idx], (b.a, b.p, b.n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]]:
        for i in range(len(self)):
            yield self.batch(i)


class SemiOnlineMiner:
    """Mines a pool of images with the current model and turns the selection into training batches.

    Args:
        miner: the strategy (any :class:`~massface.mining.TripletMiner`; cap the output with its
            ``max_triplets`` for the all-triplet strategies).
        batch_size: images per training batch B; a batch takes ``B // 3`` triplets (at most B images).
        bn: ``"eval"`` (default) or ``"train"`` BatchNorm behaviour for the pool passes (module docstring).
        embed_batch_size: chunk size of the pool passes (default ``batch_size``: MassFace's ``scale``
            passes of one batch each).
        max_batches: use at most this many training batches per pool (the rest of the selection is dropped).
        seed / generator: randomness of the triplet shuffle.

    ``mine_pool(model, images, labels)`` returns a :class:`TripletPool`; iterate it for the training batches.
    """

    def __init__(self, miner: TripletMiner, batch_size: int, *, bn: BNMode = "eval",
                 embed_batch_size: Optional[int] = None, max_batches: Optional[int] = None, seed: int = 0,
                 generator: Optional[torch.Generator] = None) -> None:
        if not isinstance(miner, TripletMiner):
            raise TypeError(f"SemiOnlineMiner needs a massface TripletMiner, got {type(miner).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 3:
            raise ValueError(f"batch_size must be an integer >= 3 (one whole triplet), got {batch_size!r}")
        if bn not in ("eval", "train"):
            raise ValueError(f"bn={bn!r} is not one of ('eval', 'train')")
        for name, value in (("embed_batch_size", embed_batch_size), ("max_batches", max_batches)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        self.miner, self.batch_size, self.bn = miner, batch_size, bn
        self.embed_batch_size = embed_batch_size or batch_size
        self.max_batches = max_batches
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        self.generator = generator

    @property
    def triplets_per_batch(self) -> int:
        return self.batch_size // 3

    def mine_embeddings(self, embeddings: Tensor, labels: Tensor, images: Tensor) -> TripletPool:
        """Mine pool embeddings that are already computed (the pool's ``images`` are kept for re-embedding)."""
        labels = check_batch(embeddings, labels)
        a, p, n = self.miner(embeddings, labels)
        batches = pack_triplets(a.cpu(), p.cpu(), n.cpu(), self.triplets_per_batch, generator=self.generator)
        if self.max_batches is not None:
            batches = batches[: self.max_batches]
        stats = {"pool_size": float(embeddings.shape[0]), "pool_batches": float(len(batches)), **self.miner.stats}
        return TripletPool(images, labels.to(images.device), (a, p, n), batches, stats)

    def mine_pool(self, model: nn.Module, images: Tensor, labels: Tensor) -> TripletPool:
        """Embed ``images`` (N, C, H, W) without gradient, mine them, pack the training batches."""
        if images.shape[0] != torch.as_tensor(labels).shape[0]:
            raise ValueError(f"pool has {images.shape[0]} images but {torch.as_tensor(labels).shape[0]} labels")
        embeddings = embed_without_grad(model, images, self.embed_batch_size, self.bn)
        return self.mine_embeddings(embeddings, torch.as_tensor(labels, device=embeddings.device), images)
