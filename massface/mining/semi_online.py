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

:class:`TripletPoolBuilder` (formerly ``SemiOnlineMiner``: it is no PML miner — it takes a model and images
and returns a :class:`TripletPool`) runs steps 1–3.

Cost per pool of N images: N forward passes without gradient, one mining call on an N × N matrix (see the
miner; N = 2050 for MassFace's P = 41, K = 5, scale = 10), then one forward/backward per training batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from massface._checks import check_int
from massface._deprecation import deprecated_names, warn_renamed
from massface._torch import eval_mode
from massface.mining.miners import TripletMiner, check_batch
from massface.mining.triplet_batches import TripletBatch, pack_triplets

__all__ = ["TripletPoolBuilder", "TripletPool", "embed_without_grad"]

__getattr__ = deprecated_names(__name__, {"SemiOnlineMiner": "TripletPoolBuilder"})

BNMode = Literal["eval", "train"]


def embed_without_grad(model: nn.Module, images: Tensor, batch_size: int, bn: BNMode = "eval") -> Tensor:
    """``model(images)`` in chunks of ``batch_size`` under ``no_grad``, as float32 (N, D).

    ``bn="eval"`` runs the model in eval mode (BatchNorm running statistics, no dropout); ``bn="train"`` in
    train mode (batch statistics; running averages updated, as MassFace's pool passes did). The model's
    mode is restored afterwards. Cost: ⌈N / batch_size⌉ forward passes, N·D floats.
    """
    if bn not in ("eval", "train"):
        raise ValueError(f"bn={bn!r} is not one of ('eval', 'train')")
    batch_size = check_int("batch_size", batch_size, "embed_without_grad")
    with eval_mode(model):  # restores the model's own mode afterwards
        model.train(bn == "train")
        parts = [model(images[s : s + batch_size]).float() for s in range(0, images.shape[0], batch_size)]
    return torch.cat(parts) if parts else images.new_zeros((0, 0))


@dataclass
class TripletPool:
    """A mined pool: its images and labels, the selected triplets (pool rows) and their training batches.

    ``stats`` is a dict of floats fixed when the pool was mined (``pool_size``, ``pool_batches`` and the miner's
    statistics): a pool is a record, so its statistics are computed once, outside the training step.
    """

    images: Tensor
    labels: Tensor
    triplets: tuple[Tensor, Tensor, Tensor]
    batches: list[TripletBatch] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        """Training batches in the pool."""
        return len(self.batches)

    def batch(self, i: int) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """``(images, labels, (a, p, n))`` of training batch i, triplets as positions in ``images``."""
        b = self.batches[i]
        idx = b.indices.to(self.images.device)
        return self.images[idx], self.labels[idx], (b.a, b.p, b.n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]]:
        for i in range(len(self)):
            yield self.batch(i)


class TripletPoolBuilder:
    """Embeds a pool of images with the current model, mines it and returns a :class:`TripletPool` of training
    batches (the semi-online mode; formerly ``SemiOnlineMiner``).

    Args:
        miner: the strategy (any :class:`~massface.mining.TripletMiner`; cap the output with its
            ``max_triplets`` for the all-triplet strategies).
        batch_size: images per training batch B; a batch takes ``B // 3`` triplets (at most B images).
        bn: ``"eval"`` (default) or ``"train"`` BatchNorm behaviour for the pool passes (module docstring).
        embed_batch_size: chunk size of the pool passes (default ``batch_size``: MassFace's ``scale``
            passes of one batch each).
        max_batches: use at most this many training batches per pool (the rest of the selection is dropped).
        seed / generator: randomness of the triplet shuffle.

    ``mine_pool(model, images, labels)`` returns a :class:`TripletPool` (iterate it for the training batches);
    ``mine_pool_from_embeddings`` does the same for embeddings already computed. ``stats`` is the last pool's.
    """

    def __init__(self, miner: TripletMiner, batch_size: int, *, bn: BNMode = "eval",
                 embed_batch_size: int | None = None, max_batches: int | None = None, seed: int = 0,
                 generator: torch.Generator | None = None) -> None:
        owner = type(self).__name__
        if not isinstance(miner, TripletMiner):
            raise TypeError(f"{owner} needs a massface TripletMiner, got {type(miner).__name__}")
        batch_size = check_int("batch_size", batch_size, f"{owner} (one whole triplet)", low=3)
        if bn not in ("eval", "train"):
            raise ValueError(f"bn={bn!r} is not one of ('eval', 'train')")
        if embed_batch_size is not None:
            embed_batch_size = check_int("embed_batch_size", embed_batch_size, f"{owner} (or None)")
        if max_batches is not None:
            max_batches = check_int("max_batches", max_batches, f"{owner} (or None)")
        self.miner, self.batch_size, self.bn = miner, batch_size, bn
        self.embed_batch_size = embed_batch_size or batch_size
        self.max_batches = max_batches
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        self.generator = generator
        self._stats: dict[str, float] = {}

    @property
    def triplets_per_batch(self) -> int:
        """Whole triplets per training batch, ``batch_size // 3``."""
        return self.batch_size // 3

    @property
    def stats(self) -> dict[str, float]:
        """The last pool's statistics (``pool_size``, ``pool_batches``, the miner's), as floats."""
        return dict(self._stats)

    def mine_pool_from_embeddings(self, embeddings: Tensor, labels: Tensor, images: Tensor) -> TripletPool:
        """A :class:`TripletPool` from pool embeddings already computed (the pool's ``images`` are kept for
        re-embedding). Cost: the miner's on an N × N matrix, then O(T log t) to pack T triplets."""
        labels = check_batch(embeddings, labels)
        a, p, n = self.miner(embeddings, labels)
        batches = pack_triplets(a.cpu(), p.cpu(), n.cpu(), self.triplets_per_batch, generator=self.generator)
        if self.max_batches is not None:
            batches = batches[: self.max_batches]
        stats = {"pool_size": float(embeddings.shape[0]), "pool_batches": float(len(batches)), **self.miner.stats}
        self._stats = stats
        return TripletPool(images, labels.to(images.device), (a, p, n), batches, dict(stats))

    def mine_embeddings(self, embeddings: Tensor, labels: Tensor, images: Tensor) -> TripletPool:
        """Deprecated name of :meth:`mine_pool_from_embeddings`."""
        warn_renamed("TripletPoolBuilder.mine_embeddings", "TripletPoolBuilder.mine_pool_from_embeddings")
        return self.mine_pool_from_embeddings(embeddings, labels, images)

    def mine_pool(self, model: nn.Module, images: Tensor, labels: Tensor) -> TripletPool:
        """A :class:`TripletPool`: embed ``images`` (N, C, H, W) without gradient, mine them, pack the training
        batches."""
        if images.shape[0] != torch.as_tensor(labels).shape[0]:
            raise ValueError(f"pool has {images.shape[0]} images but {torch.as_tensor(labels).shape[0]} labels")
        embeddings = embed_without_grad(model, images, self.embed_batch_size, self.bn)
        return self.mine_pool_from_embeddings(embeddings, torch.as_tensor(labels, device=embeddings.device), images)
