"""Where the trainer's batches come from, one source per ``mining.mode``
(:data:`massface.training.builders.MINING_MODES` chooses it, with the mode's metric loss).

Every source yields ``(images, labels, indices)``: ``indices`` is ``None`` when the loss mines the batch
itself (``online``, ``xbm``) and the batch's triplets ``(a, p, n)`` — positions in ``images`` — when they were
selected beforehand (``semi_online``, ``offline``). ``stats()`` returns the miner statistics to log.

Each source is given its collaborators explicitly (the P×K :class:`LoaderStream`, the model, the device
placement, the miner, ...); none knows the trainer.

Under DDP all ranks must take the same number of optimizer steps, so the sources agree on batch counts:
semi-online ranks train on the smallest number of triplet batches any rank's pool produced; offline
batches are dealt round-robin, the same count to every rank. Resuming a checkpoint restarts the current
pool (semi-online) or re-mines (offline) — the mined selection itself is not saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from massface.training import distributed as mfdist

__all__ = ["Batch", "LoaderStream", "Placement", "BatchSource", "OnlineSource", "SemiOnlineSource", "OfflineSource"]

Batch = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]


class LoaderStream:
    """The P×K loader as an endless stream of ``(images, labels)``.

    ``batches_in_pass`` counts the batches taken from the current pass over the loader: the sampler's resume
    position (``sampler.state_dict(batches_done=...)``), since the loader may prefetch ahead of training.
    ``before_pass`` (optional) is called before each pass starts -- e.g. to give a
    :class:`~massface.sampling.NeighbourPKSampler` the graph of the current model.
    """

    def __init__(self, loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 before_pass: Callable[[], None] | None = None) -> None:
        self.loader = loader
        self.before_pass = before_pass
        self.batches_in_pass = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            if self.before_pass is not None:
                self.before_pass()
            self.batches_in_pass = 0
            got = False
            for x, y in self.loader:
                got = True
                self.batches_in_pass += 1
                yield x, y
            if not got:
                raise RuntimeError("the sampler produced no batch: fewer identities than P × world size?")


@dataclass(frozen=True)
class Placement:
    """Where a batch goes: ``device``, images in channels-last memory format when ``channels_last``."""

    device: torch.device
    channels_last: bool = False

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Returns ``x`` on the device (channels-last when asked)."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def labels(self, y: torch.Tensor) -> torch.Tensor:
        """Returns ``y`` on the device."""
        return y.to(self.device, non_blocking=True)


class BatchSource:
    """A source of training batches: :meth:`batches` yields ``(images, labels, indices)`` forever."""

    def batches(self) -> Iterator[Batch]:  # pragma: no cover - interface
        """Returns the endless iterator of batches."""
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Returns the statistics of the last mining (empty when nothing was mined)."""
        return {}


class OnlineSource(BatchSource):
    """``online`` and ``xbm``: the P×K batches as they come; the loss mines each one (against ``memory``,
    the cross-batch memory, for ``xbm``). ``miner`` and ``memory`` are only read for :meth:`stats`."""

    def __init__(self, stream: LoaderStream, miner: nn.Module | None = None,
                 memory: nn.Module | None = None) -> None:
        self.stream, self.miner, self.memory = stream, miner, memory

    def batches(self) -> Iterator[Batch]:
        """Returns the loader's batches with ``indices=None``."""
        for x, y in self.stream:
            yield x, y, None

    def stats(self) -> dict[str, float]:
        """Returns the miner's statistics of the last step (and ``memory_filled`` for ``xbm``)."""
        out = dict(self.miner.stats) if self.miner is not None else {}
        if self.memory is not None:
            out["memory_filled"] = float(self.memory.num_filled)
        return out


class SemiOnlineSource(BatchSource):
    """``semi_online``: each loader batch is a pool of ``scale`` × P×K images; ``pools``
    (a :class:`~massface.mining.TripletPoolBuilder`) embeds it with ``model`` without gradient, mines it and packs
    the selected triplets into training batches, which are yielded one by one."""

    def __init__(self, stream: LoaderStream, pools: Any, model: nn.Module, placement: Placement) -> None:
        self.stream, self.pools, self.model, self.placement = stream, pools, model, placement
        self._stats: dict[str, float] = {}

    def batches(self) -> Iterator[Batch]:
        """Returns the triplet batches of pool after pool (the same number on every rank)."""
        for x, y in self.stream:
            pool = self.pools.mine_pool(self.model, self.placement.images(x), self.placement.labels(y))
            count = mfdist.min_over_ranks(len(pool), self.placement.device)
            self._stats = dict(pool.stats, pool_batches=float(count))
            for i in range(count):
                yield pool.batch(i)

    def stats(self) -> dict[str, float]:
        """Returns the last pool's statistics (size, triplets, ``pool_batches`` trained on)."""
        return dict(self._stats)


class OfflineSource(BatchSource):
    """``offline``: embed the training set (or a random ``subset``) with ``model``, mine it with ``offline``
    (an :class:`~massface.mining.OfflineTripletSearch`; under a process group every rank mines its share of the
    anchors and all get the same triplets), deal the triplet batches to the ranks and train on them; re-mine
    every ``refresh_every`` optimizer steps (read from ``step()``), or when they are used up
    (``refresh_every=0``).

    ``dataset`` gives the training items (augmented) and ``embedding_dataset`` the same items without
    augmentation for the embedding passes.
    """

    def __init__(self, offline: Any, model: nn.Module, dataset: Any, embedding_dataset: Any, *, device: torch.device,
                 triplets_per_batch: int, refresh_every: int = 0, subset: int | None = None,
                 embed_batch_size: int = 256, workers: int = 0, seed: int = 0,
                 step: Callable[[], int] = lambda: 0, log: Callable[[str], None] = lambda message: None,
                 rank: int = 0, world_size: int = 1) -> None:
        self.offline, self.model, self.dataset, self.embedding_dataset = offline, model, dataset, embedding_dataset
        self.device, self.triplets_per_batch = device, triplets_per_batch
        self.refresh_every, self.subset, self.embed_batch_size = refresh_every, subset, embed_batch_size
        self.workers, self.seed, self.step, self.log = workers, seed, step, log
        self.rank, self.world_size = rank, world_size
        self.refreshes = 0
        self._stats: dict[str, float] = {}

    def refresh(self) -> list:
        """Embed and mine (both sharded over the ranks) and deal the triplet batches; returns this rank's batches.

        Every rank holds the same triplets (``mine_triplets`` is a collective under a process group that returns
        one process's result on every rank), so every rank packs the same batches and takes its own slice."""
        from massface.mining import embed_dataset, pack_triplets

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.refreshes)
        self.refreshes += 1
        n = len(self.dataset)
        if self.subset is None or self.subset >= n:
            idx = torch.arange(n)
        else:
            idx = torch.randperm(n, generator=generator)[: self.subset].sort().values
        is_main = self.rank == 0
        t0 = time.perf_counter()
        emb, labels = embed_dataset(self.model, self.embedding_dataset, idx.tolist(),
                                    batch_size=self.embed_batch_size, num_workers=self.workers, device=self.device,
                                    progress=is_main)
        embed_s = time.perf_counter() - t0
        mined = self.offline.mine_triplets(emb, labels)
        triplets = torch.stack([idx[mined.a], idx[mined.p], idx[mined.n]])
        stats = dict(self.offline.stats, embed_s=embed_s, embedded=float(idx.numel()))
        self._stats = stats
        batches = pack_triplets(triplets[0], triplets[1], triplets[2], self.triplets_per_batch, generator=generator)
        world = self.world_size
        usable = len(batches) // world * world
        if usable == 0:
            raise RuntimeError(f"offline mining selected {triplets.shape[1]} triplets from {idx.numel()} images: "
                               f"fewer than one batch of {self.triplets_per_batch} per rank; raise mining.subset or "
                               f"loss.triplet.margin, or use another loss.triplet.miner")
        if is_main:
            self.log(f"offline mining at step {self.step()}: {triplets.shape[1]} triplets from {idx.numel()} images "
                     f"({stats['embed_s']:.0f} s to embed, {stats['index_s'] + stats['mine_s']:.0f} s to mine) "
                     f"-> {usable // world} batches per rank")
        return batches[self.rank:usable:world]

    def batches(self) -> Iterator[Batch]:
        """Returns the mined triplet batches, re-mining when they are stale or used up."""
        from torch.utils.data import DataLoader

        from massface.mining import TripletBatchDataset

        every = self.refresh_every
        while True:
            mine, since = self.refresh(), self.step()
            stale = False
            while not stale:
                loader = DataLoader(TripletBatchDataset(self.dataset, mine), batch_size=None, shuffle=False,
                                    num_workers=self.workers)
                for batch in loader:
                    yield batch
                    if every and self.step() - since >= every:
                        stale = True
                        break
                stale = stale or not every  # refresh_every = 0: re-mine once the selection is used up

    def stats(self) -> dict[str, float]:
        """Returns the last mining's statistics (``embedded``, ``embed_s``, the miner's)."""
        return dict(self._stats)
