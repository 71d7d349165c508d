"""P×K identity batch sampler: P identities × K images per batch, every identity once per epoch, DDP-aware,
deterministic and resumable mid-epoch.

An epoch is one pass over a seeded permutation of the eligible identities (those with at least
``min_images`` images). The permutation is read as a stream and cut into *rank batches*: with
``small="oversample"`` each rank batch is the next P identities, each giving exactly K images (K distinct
ones chosen at random; an identity with c < K images repeats them, each ⌊K/c⌋ or ⌈K/c⌉ times — Hermans et
al.); with ``small="take_all"`` identities give min(c, K) images and the rank batch takes identities until it
holds P·K images, truncating the last one (MassFace). A step hands rank r the rank batch ``step·W + r``, so
within a step the W ranks hold disjoint runs of the stream — no identity on two ranks — and all ranks yield
the same number of batches.

Which images an identity gives in an epoch depends only on (seed, epoch, image index) through a counter-based
hash, not on the step, the rank or the world size; the state is the epoch and the *cursor* (identities of the
stream consumed), so a run can resume mid-epoch exactly, even with another number of ranks.

Cost: building an epoch is one permutation of the identities (O(C)); a batch costs O(S log S) for the S images
of its identities. Construction sorts the labels once, O(N log N).

:class:`NeighbourPKSampler` is the same sampler with another epoch order: the stream is laid out in groups of
look-alike identities (a seed identity and its nearest unused neighbours in an identity graph -- doppelganger
mining, Smirnov et al. 2017; Liao & Shao's graph sampler, 2022), so that a batch holds the negatives that matter;
everything else (cutting, ranks, images, resume) is PKSampler's. :func:`identity_neighbours` builds the graph
from class centres with faiss.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import BatchSampler

from massface import distributed as mfdist
from massface._checks import check_int

__all__ = ["PKSampler", "NeighbourPKSampler", "identity_neighbours"]

SmallPolicy = Literal["oversample", "take_all"]
_POLICIES = ("oversample", "take_all")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on a uint64 array (wrapping arithmetic): a counter-based hash."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def _as_label_array(labels: object) -> np.ndarray:
    """Labels as a 1-D int64 numpy array, with a ValueError naming the first offending entry."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("labels is empty")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) or arr.dtype == object or arr.dtype == bool:
            raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        i = int(negative[0])
        raise ValueError(f"labels must be >= 0; labels[{i}] = {int(arr[i])} ({negative.size} negative in all)")
    return arr


@dataclass(frozen=True)
class _RankBatch:
    """A run of the identity stream: stream positions [start, stop); the last identity gives ``last_take``
    images (take_all truncation) or its usual share when ``last_take`` is 0."""

    start: int
    stop: int
    last_take: int = 0


class PKSampler(BatchSampler):
    """Batch sampler of P identities × K images (use as ``DataLoader(ds, batch_sampler=PKSampler(...))``).

    It is a :class:`torch.utils.data.BatchSampler`, so code that dispatches on that type (PML's trainers,
    ``get_train_dataloader``) hands it to the DataLoader as ``batch_sampler``.

    Args:
        labels: identity label of every dataset item (sequence, numpy array or tensor of ints ≥ 0).
        p, k: identities per batch and images per identity; a batch holds P·K dataset indices.
        small: ``"oversample"`` (identities with c < K images repeat them to reach K; exactly P
            identities per batch) or ``"take_all"`` (they give all c images and the batch takes more
            identities to reach P·K images; the last identity may be truncated — MassFace).
        min_images: identities with fewer images are never sampled (they cannot form a positive pair).
        seed: base seed; the order of an epoch is a function of (seed, epoch) only.
        num_replicas, rank: world size and rank; default from ``torch.distributed`` when initialised.
        drop_last: drop the final step when fewer than P·W identities are left in the epoch; otherwise it
            is completed with identities from the start of the permutation.

    ``len(sampler)`` is the number of batches per epoch on each rank. ``set_epoch(e)`` selects the epoch; an
    epoch iterated to the end — exhausted, or all ``len(sampler)`` batches taken and the iterator dropped, as
    ``zip(range(len(loader)), loader)`` does — advances to the next one by itself. ``state_dict()`` / ``load_state_dict()``
    save and restore (epoch, cursor); pass ``batches_done`` to ``state_dict`` when a DataLoader prefetches
    ahead of training.
    """

    def __init__(
        self,
        labels: object,
        p: int,
        k: int,
        *,
        small: SmallPolicy = "oversample",
        min_images: int = 2,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = True,
    ) -> None:
        self.p = check_int("p", p, "PKSampler")
        self.k = check_int("k", k, "PKSampler")
        self.min_images = check_int("min_images", min_images, "PKSampler")
        if small not in _POLICIES:
            raise ValueError(f"small={small!r} is not one of {_POLICIES}")
        self.small = small
        self.seed = check_int("seed", seed, "PKSampler", low=0)
        self.drop_last = bool(drop_last)
        self.num_replicas, self.rank = self._world(num_replicas, rank)

        labels = _as_label_array(labels)
        sorted_t, order_t = torch.from_numpy(labels).sort(stable=True)  # ~3x faster than numpy's stable argsort
        self._order, sorted_labels = order_t.numpy(), sorted_t.numpy()
        starts = np.concatenate([[0], np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1])
        counts = np.diff(np.append(starts, sorted_labels.size))
        ids = sorted_labels[starts]
        self.identity_labels: np.ndarray = ids
        self._starts = starts.astype(np.int64)
        self._counts = counts.astype(np.int64)
        self._eligible = np.flatnonzero(self._counts >= self.min_images)
        need = self.p * self.num_replicas
        if self._eligible.size < need:
            raise ValueError(
                f"p={self.p} × {self.num_replicas} replica(s) needs {need} identities with at least "
                f"{self.min_images} images, but only {self._eligible.size} of {ids.size} identities have that many"
            )
        if small == "take_all":
            images = int(np.minimum(self._counts[self._eligible], self.k).sum())
            if images < need * self.k:
                raise ValueError(
                    f"take_all needs {need * self.k} images per step but the eligible identities give only {images}"
                )
        self.epoch = 0
        self._cursor = 0
        self._step_cursors: list[int] = []
        self._yielded = 0
        self._iter_start = 0
        self._iter_epoch = 0

    # ------------------------------------------------------------------ configuration
    @staticmethod
    def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
        """(world size, rank): the arguments, else the process group's (1 and 0 without one)."""
        num_replicas = check_int("num_replicas", mfdist.world_size() if num_replicas is None else num_replicas,
                                 "PKSampler")
        rank = check_int("rank", mfdist.rank() if rank is None else rank, "PKSampler", low=0, high=num_replicas - 1)
        return num_replicas, rank

    @property
    def batch_size(self) -> int:
        """Images per batch on one rank (P·K)."""
        return self.p * self.k

    @property
    def at_epoch_start(self) -> bool:
        """Whether the next iteration starts an epoch from its beginning (no identity of it taken yet)."""
        return self._cursor == 0

    @property
    def num_identities(self) -> int:
        """Identities sampled per epoch (those with at least ``min_images`` images)."""
        return int(self._eligible.size)

    # ------------------------------------------------------------------ epoch plan
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self._eligible)

    def _plan(self, perm: np.ndarray, cursor: int) -> list[list[_RankBatch]]:
        """Steps from ``cursor`` to the end of the epoch, each a list of W rank batches."""
        n, w = perm.size, self.num_replicas
        steps: list[list[_RankBatch]] = []
        if self.small == "oversample":
            per_step = self.p * w
            remaining = max(n - cursor, 0)
            n_steps = remaining // per_step if self.drop_last else -(-remaining // per_step)
            for s in range(n_steps):
                base = cursor + s * per_step
                steps.append([_RankBatch(base + r * self.p, base + (r + 1) * self.p) for r in range(w)])
            return steps
        # take_all: greedy fill of P·K images per rank batch over the (wrapping) stream of identities
        give = np.minimum(self._counts[perm], self.k)
        cum = np.concatenate([[0], np.cumsum(np.concatenate([give, give]))])  # stream may wrap once
        batch_images = self.p * self.k
        pos = cursor
        while pos < n:
            step: list[_RankBatch] = []
            for _ in range(w):
                target = cum[pos] + batch_images
                stop = int(np.searchsorted(cum, target, side="left"))  # cum[stop] >= target
                last_take = int(give[(stop - 1) % n] - (cum[stop] - target))
                step.append(_RankBatch(pos, stop, last_take))
                pos = stop
            if self.drop_last and pos > n:
                break
            steps.append(step)
        return steps

    def __len__(self) -> int:
        return len(self._plan(self._permutation(self.epoch), 0))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate next (from its beginning)."""
        self.epoch = check_int("epoch", epoch, "PKSampler.set_epoch", low=0)
        self._cursor = 0

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self.epoch, self._cursor
        perm = self._permutation(epoch)
        plan = self._plan(perm, start)
        if not plan and start > 0:  # the epoch's batches were all taken (or a checkpoint ended it): next one
            epoch, start = epoch + 1, 0
            self.epoch, self._cursor = epoch, start
            perm = self._permutation(epoch)
            plan = self._plan(perm, start)
        self._iter_start, self._iter_epoch = start, epoch
        self._step_cursors = [step[-1].stop for step in plan]
        self._yielded = 0
        for step in plan:
            batch = self._images(perm, step[self.rank], epoch)
            self._yielded += 1
            self._cursor = step[-1].stop
            yield batch
        if self.epoch == epoch:  # not re-targeted by set_epoch / load_state_dict meanwhile
            self.epoch, self._cursor = epoch + 1, 0

    def _images(self, perm: np.ndarray, rb: _RankBatch, epoch: int) -> list[int]:
        """Dataset indices of one rank batch: each identity's images shuffled by the (seed, epoch) hash, then
        the first ``take`` of them, cycling when ``take`` exceeds its count."""
        ident = perm[np.arange(rb.start, rb.stop) % perm.size]
        counts = self._counts[ident]
        if self.small == "oversample":
            take = np.full(ident.size, self.k, dtype=np.int64)
        else:
            take = np.minimum(counts, self.k)
            if rb.last_take:
                take[-1] = rb.last_take
        # all images of these identities, segment by segment
        seg_start = np.cumsum(counts) - counts
        total = int(counts.sum())
        seg = np.repeat(np.arange(ident.size), counts)
        within = np.arange(total) - seg_start[seg]
        images = self._order[self._starts[ident][seg] + within]
        salt = _splitmix64(np.array([self.seed], dtype=np.uint64) * _GOLDEN ^ np.array([epoch], dtype=np.uint64))
        keys = _splitmix64(images.astype(np.uint64) ^ salt)
        shuffled = images[np.lexsort((keys, seg))]
        pick_seg = np.repeat(np.arange(ident.size), take)
        pick_rank = np.arange(int(take.sum())) - (np.cumsum(take) - take)[pick_seg]
        chosen = shuffled[seg_start[pick_seg] + pick_rank % counts[pick_seg]]
        return chosen.tolist()

    # ------------------------------------------------------------------ resume
    def state_dict(self, batches_done: int | None = None) -> dict[str, object]:
        """Position to resume from: after ``batches_done`` batches of the current iteration (default: all
        batches yielded so far). World-size independent."""
        epoch, cursor = self.epoch, self._cursor
        if batches_done is not None:
            if not 0 <= batches_done <= self._yielded:
                raise ValueError(f"batches_done must be in [0, {self._yielded}] (batches yielded), got {batches_done}")
            epoch = self._iter_epoch
            cursor = self._iter_start if batches_done == 0 else self._step_cursors[batches_done - 1]
        return {
            "epoch": int(epoch),
            "cursor": int(cursor),
            "seed": self.seed,
            "p": self.p,
            "k": self.k,
            "small": self.small,
            "num_identities": self.num_identities,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Resume at the saved (epoch, cursor); the sampler must be built on the same labels and settings."""
        missing = {"epoch", "cursor"} - set(state)
        if missing:
            raise ValueError(f"PKSampler state lacks {sorted(missing)}")
        for key in ("seed", "p", "k", "small", "num_identities"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"PKSampler state has {key}={state[key]!r} but this sampler has {getattr(self, key)!r}")
        self.epoch = int(state["epoch"])
        self._cursor = int(state["cursor"])


class NeighbourPKSampler(PKSampler):
    """P×K batches of look-alike identities: :class:`PKSampler` (every guarantee: P×K batches, every eligible
    identity exactly once per epoch, disjoint equal-length DDP ranks, deterministic, ``set_epoch``,
    ``state_dict`` resume mid-epoch) whose epoch order is built from an identity graph.

    The epoch's stream is filled P identities at a time: ``round(hard_fraction · P / group)`` groups, each a
    seed identity (the next unused one of the (seed, epoch) permutation) followed by its nearest *unused*
    eligible neighbours in ``neighbours`` (topped up from the permutation when a seed has fewer than
    ``group - 1`` of them), then the rest of the P from the permutation (random). With ``small="oversample"``
    the chunks are exactly the rank batches, so a group never straddles two batches.

    Args:
        labels, p, k, small, min_images, seed, num_replicas, rank, drop_last: as :class:`PKSampler`.
        neighbours: (L, n) int array indexed by label: row ``y`` = the labels nearest to identity ``y``, nearest
            first, ``-1`` padded (:func:`identity_neighbours`). Labels outside the sampled set are skipped.
        group: identities per look-alike group (2 … P).
        hard_fraction: share of each batch's identities that come in groups (0: plain PKSampler order).

    ``set_neighbours(neighbours)`` replaces the graph (e.g. from the current model's class centres) for the
    epochs that start afterwards; the graph is part of ``state_dict``, so a resumed run reproduces the epoch.
    Cost: O(C · n) per epoch to lay out the stream (one pass over the graph rows of the seeds).
    """

    def __init__(self, labels: object, p: int, k: int, neighbours: object, *, group: int = 4,
                 hard_fraction: float = 1.0, seed: int = 0, small: SmallPolicy = "oversample", min_images: int = 2,
                 num_replicas: int | None = None, rank: int | None = None, drop_last: bool = True) -> None:
        super().__init__(labels, p, k, small=small, min_images=min_images, seed=seed, num_replicas=num_replicas,
                         rank=rank, drop_last=drop_last)
        from massface._checks import check_real

        self.group = check_int("group", group, "NeighbourPKSampler", low=2, high=self.p)
        self.hard_fraction = check_real("hard_fraction", hard_fraction, "NeighbourPKSampler", low=0.0, high=1.0)
        self._cache: tuple[int, np.ndarray] | None = None
        self.set_neighbours(neighbours)

    def set_neighbours(self, neighbours: object) -> None:
        """Use ``neighbours`` (see the class docstring) for epochs laid out from now on. ValueError naming the
        problem when it is not an (L, n) integer array."""
        if isinstance(neighbours, torch.Tensor):
            neighbours = neighbours.detach().cpu().numpy()
        graph = np.asarray(neighbours)
        if graph.ndim != 2 or not np.issubdtype(graph.dtype, np.integer) or graph.dtype == bool:
            raise ValueError(f"NeighbourPKSampler: neighbours must be an (L, n) integer array indexed by label; got "
                             f"shape {graph.shape}, dtype {graph.dtype}")
        if graph.shape[0] <= int(self.identity_labels.max()):
            raise ValueError(f"NeighbourPKSampler: neighbours has {graph.shape[0]} rows but the labels go up to "
                             f"{int(self.identity_labels.max())} (one row per label is needed)")
        graph = graph.astype(np.int64)
        # label -> identity index (-1: not a sampled identity), then the graph in identity indices
        lookup = np.full(max(int(graph.max(initial=-1)), int(self.identity_labels.max())) + 1, -1, dtype=np.int64)
        lookup[self.identity_labels] = np.arange(self.identity_labels.size)
        mapped = np.where(graph >= 0, lookup[np.clip(graph, 0, None)], -1)
        self._graph = mapped[self.identity_labels]  # row i: neighbours of identity i, as identity indices
        self._neighbours = graph
        self._cache = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        base = super()._permutation(epoch)
        eligible = np.zeros(self.identity_labels.size, dtype=bool)
        eligible[self._eligible] = True
        used = ~eligible
        groups_per_chunk = round(self.hard_fraction * self.p / self.group)
        out: list[int] = []
        pos = 0  # next candidate of the random permutation

        def next_random() -> int:
            nonlocal pos
            while used[base[pos]]:
                pos += 1
            used[base[pos]] = True
            return int(base[pos])

        remaining = int(self._eligible.size)
        while remaining:
            chunk_left = min(self.p, remaining)
            for _ in range(groups_per_chunk):
                if chunk_left <= 0:
                    break
                members = [next_random()]
                for j in self._graph[members[0]]:
                    if len(members) == min(self.group, chunk_left):
                        break
                    if j >= 0 and not used[j]:
                        used[j] = True
                        members.append(int(j))
                while len(members) < min(self.group, chunk_left):
                    members.append(next_random())
                out += members
                chunk_left -= len(members)
                remaining -= len(members)
            while chunk_left > 0:
                out.append(next_random())
                chunk_left -= 1
                remaining -= 1
        perm = np.asarray(out, dtype=np.int64)
        self._cache = (epoch, perm)
        return perm

    def state_dict(self, batches_done: int | None = None) -> dict[str, object]:
        state = super().state_dict(batches_done)
        state.update(group=self.group, hard_fraction=self.hard_fraction,
                     neighbours=torch.from_numpy(self._neighbours.copy()))
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        for key in ("group", "hard_fraction"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"NeighbourPKSampler state has {key}={state[key]!r} but this sampler has "
                                 f"{getattr(self, key)!r}")
        super().load_state_dict(state)
        if "neighbours" in state:
            self.set_neighbours(state["neighbours"])


def identity_neighbours(centres: object, labels: object | None = None, k: int = 16) -> np.ndarray:
    """The identity graph :class:`NeighbourPKSampler` takes: for class centres ``centres`` (C, D) -- a margin
    head's ``weight``, or per-identity mean embeddings (:func:`massface.cleaning.class_centres`) -- of the
    identities ``labels`` (default 0..C-1), an (max label + 1, k) int64 array whose row ``y`` lists the k labels
    with the most similar centres (cosine), nearest first, ``-1`` padded (rows of absent labels are all -1).
    Exact inner-product search with faiss on the normalised centres: O(C²·D)."""
    import faiss

    if isinstance(centres, torch.Tensor):
        centres = centres.detach().float().cpu().numpy()
    x = np.asarray(centres, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 1 or not np.isfinite(x).all():
        raise ValueError(f"identity_neighbours: centres must be a finite (C, D) array; got shape {x.shape}")
    ids = np.arange(x.shape[0], dtype=np.int64) if labels is None else _as_label_array(labels)
    if ids.shape != (x.shape[0],) or np.unique(ids).size != ids.size:
        raise ValueError(f"identity_neighbours: labels must be {x.shape[0]} distinct labels, one per centre")
    k = check_int("k", k, "identity_neighbours")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    width = min(k + 1, x.shape[0])
    _, found = index.search(x, width)
    graph = np.full((int(ids.max()) + 1, k), -1, dtype=np.int64)
    for row, neighbours in zip(ids, found):
        others = [int(ids[j]) for j in neighbours if j >= 0 and ids[j] != row][:k]
        graph[row, : len(others)] = others
    return graph
