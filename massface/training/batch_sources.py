"""Where the trainer's batches come from, one source per ``mining.mode``.

Every source yields ``(images, labels, indices)``: ``indices`` is ``None`` when the loss mines the batch
itself (``online``, ``xbm``) and the batch's triplets ``(a, p, n)`` — positions in ``images`` — when they were
selected beforehand (``semi_online``, ``offline``). ``stats()`` gives the miner statistics to log.

Under DDP all ranks must take the same number of optimizer steps, so the sources agree on batch counts:
semi-online ranks train on the smallest number of triplet batches any rank's pool produced; offline
batches are dealt round-robin, the same count to every rank. Resuming a checkpoint restarts the current
pool (semi-online) or re-mines (offline) — the mined selection itself is not saved.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator, Optional

import torch

from massface.training import distributed as mfdist

if TYPE_CHECKING:  # pragma: no cover
    from massface.training.trainer import Trainer

__all__ = ["BatchSource", "OnlineSource", "SemiOnlineSource", "OfflineSource", "build_batch_source"]

Batch = tuple[torch.Tensor, torch.Tensor, Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


class BatchSource:
    """Base: P×K batches straight from the trainer's loader, mined inside the loss."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.cfg = trainer.cfg

    @property
    def triplets_per_batch(self) -> int:
        return self.cfg.data.p * self.cfg.data.k // 3

    def batches(self) -> Iterator[Batch]:
        for x, y in self.trainer._loader_batches():
            yield x, y, None

    def stats(self) -> dict[str, float]:
        miner = self.trainer.miner
        return miner.stats if miner is not None else {}


class OnlineSource(BatchSource):
    """``online`` and ``xbm``: the loss mines each batch (against the memory for ``xbm``)."""

    def stats(self) -> dict[str, float]:
        out = super().stats()
        memory = self.trainer.memory
        if memory is not None:
            out["memory_filled"] = float(memory.num_filled)
        return out


class SemiOnlineSource(BatchSource):
    """``semi_online``: each sampler batch is a pool of ``scale`` × P×K images, mined at once."""

    def __init__(self, trainer: "Trainer") -> None:
        super().__init__(trainer)
        from massface.mining import SemiOnlineMiner

        m = self.cfg.mining
        self.semi = SemiOnlineMiner(trainer.miner, self.cfg.data.p * self.cfg.data.k, bn=m.pool_bn,
                                    max_batches=m.max_batches_per_pool, seed=self.cfg.seed + trainer.env.rank)
        self._stats: dict[str, float] = {}

    def batches(self) -> Iterator[Batch]:
        t = self.trainer
        for x, y in t._loader_batches():
            pool = self.semi.mine_pool(t.model, t._to_device(x), y.to(t.device))
            count = _agree_min(len(pool), t.device)
            self._stats = dict(pool.stats, pool_batches=float(count))
            for i in range(count):
                yield pool.batch(i)

    def stats(self) -> dict[str, float]:
        return dict(self._stats)


class OfflineSource(BatchSource):
    """``offline``: embed the training set (or a random subset), mine it with a faiss index, train on the
    selected triplets; re-mine every ``refresh_every`` steps or when they are used up."""

    def __init__(self, trainer: "Trainer") -> None:
        super().__init__(trainer)
        from massface.mining import IndexConfig, OfflineMiner

        m = self.cfg.mining
        index = IndexConfig(kind=m.index, nprobe=m.nprobe, nlist=m.nlist, hnsw_m=m.hnsw_m, ef_search=m.ef_search)
        self.offline = OfflineMiner(trainer.miner, neighbours=m.neighbours, index=index, seed=self.cfg.seed)
        self.refreshes = 0
        self._stats: dict[str, float] = {}
        self._eval_dataset: Any = None

    def _embedding_dataset(self) -> Any:
        """The training images without augmentation (the same items and labels)."""
        if self._eval_dataset is None:
            from massface.data.transforms import build_eval_transform
            from massface.training.trainer import LabelledDataset

            ds = self.trainer.dataset
            self._eval_dataset = LabelledDataset(ds.base, build_eval_transform()) if hasattr(ds, "base") else ds
        return self._eval_dataset

    def refresh(self) -> list:
        """Embed, mine (rank 0) and deal the triplet batches; returns this rank's batches."""
        from massface.mining import embed_dataset, pack_triplets

        t, m = self.trainer, self.cfg.mining
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.refreshes)
        self.refreshes += 1
        n = len(t.dataset)
        if m.subset is None or m.subset >= n:
            idx = torch.arange(n)
        else:
            idx = torch.randperm(n, generator=generator)[: m.subset].sort().values
        t0 = time.perf_counter()
        emb, labels = embed_dataset(t.model, self._embedding_dataset(), idx.tolist(), batch_size=m.embed_batch_size,
                                    num_workers=self.cfg.data.workers, device=t.device,
                                    progress="offline: embedding" if t.env.is_main else None)
        embed_s = time.perf_counter() - t0
        payload = None
        if t.env.is_main:
            mined = self.offline.mine(emb, labels)
            payload = (torch.stack([idx[mined.a], idx[mined.p], idx[mined.n]]),
                       dict(self.offline.stats, embed_s=embed_s, embedded=float(idx.numel())))
        triplets, stats = mfdist.broadcast_object(payload)
        self._stats = stats
        batches = pack_triplets(triplets[0], triplets[1], triplets[2], self.triplets_per_batch, generator=generator)
        world, rank = t.env.world_size, t.env.rank
        usable = len(batches) // world * world
        if usable == 0:
            raise RuntimeError(f"offline mining selected {triplets.shape[1]} triplets from {idx.numel()} images: "
                               f"fewer than one batch of {self.triplets_per_batch} per rank; raise mining.subset or "
                               f"loss.triplet.margin, or use another loss.triplet.miner")
        if t.env.is_main:
            t.log(f"offline mining at step {t.step}: {triplets.shape[1]} triplets from {idx.numel()} images "
                  f"({stats['embed_s']:.0f} s to embed, {stats['index_s'] + stats['mine_s']:.0f} s to mine) "
                  f"-> {usable // world} batches per rank")
        return batches[rank:usable:world]

    def batches(self) -> Iterator[Batch]:
        from torch.utils.data import DataLoader

        from massface.mining import TripletBatchDataset

        t, every = self.trainer, self.cfg.mining.refresh_every
        while True:
            mine, since = self.refresh(), t.step
            stale = False
            while not stale:
                loader = DataLoader(TripletBatchDataset(t.dataset, mine), batch_size=None, shuffle=False,
                                    num_workers=self.cfg.data.workers)
                for batch in loader:
                    yield batch
                    if every and t.step - since >= every:
                        stale = True
                        break
                stale = stale or not every  # refresh_every = 0: re-mine once the selection is used up

    def stats(self) -> dict[str, float]:
        return dict(self._stats)


def _agree_min(value: int, device: torch.device) -> int:
    """The smallest ``value`` over all ranks."""
    if not mfdist.is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t.item())


def build_batch_source(trainer: "Trainer") -> BatchSource:
    """The source for ``trainer.cfg.mining.mode``."""
    mode = trainer.cfg.mining.mode
    if mode in ("semi_online", "offline") and trainer.miner is None:
        raise ValueError(f"mining.mode {mode!r} needs loss.triplet enabled")
    if mode == "semi_online":
        return SemiOnlineSource(trainer)
    if mode == "offline":
        return OfflineSource(trainer)
    return OnlineSource(trainer)
