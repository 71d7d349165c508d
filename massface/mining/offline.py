"""Offline triplet mining over a whole training set (or a random subset of it) with a faiss index.

FaceNet's offline generation: every so often, embed the data with the current model and mine it. At the
scale of a face training set (0.5–5 M images) the N × N distance matrix is out of reach, so per anchor the
candidates are

    its positives (every other image of its identity)  ∪  its k nearest neighbours of other identities,

the neighbours found by a faiss index (:class:`IndexConfig`: exact flat search; k-means IVF; HNSW; or an IVF
whose lists are the identities, probed around the anchor's own identity — the default beyond 250 K). The
anchor's row of distances to these candidates is then mined by the *same* :class:`~massface.mining.TripletMiner`
strategy as online mining (:meth:`TripletMiner.select`), so hardest, min-max, semi-hard, batch-all or random
selection all work offline. With an exact index and k ≥ the number of negatives the result equals mining the
full N × N matrix; with smaller k a negative is only ever chosen among the k nearest, which is exact for the
hardest negative (``pick="nearest"`` over ``negatives="all"``) and an approximation for regions far from the
anchor (semi-hard with a large margin, min-max).

Cost for N embeddings of dimension D, k neighbours and c images per identity: the index search (flat
O(N²·D); IVF O(N·(nlist + nprobe·N/nlist)·D) plus k-means training; identity IVF O(C²·D) for the C identity
centroids' neighbours plus O(N·nprobe·c·D); HNSW O(N·log N·M·D) to build), then
O(N·(c + k)·D) for the candidate distances and the miner's cost on an N × (c_max + k) matrix, processed in
chunks of ``chunk_size`` anchors. Memory: the vectors (N·D floats, twice: ours and the index's copy) and
one chunk's candidates.

Under ``torch.distributed`` the anchors are sharded (``mine_triplets(shard=None)``, the default): every rank
builds the same index over the full embeddings (``embed_dataset`` gives every rank all of them), mines its
contiguous share of the anchor chunks, and only the triplets (and per-chunk statistics) are all-gathered —
search and selection cost 1/W per rank, and every rank returns exactly what one process mining everything
returns, random draws included (they are seeded per chunk).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from massface import distributed as mfdist
from massface._checks import check_int
from massface._deprecation import deprecated_names, warn_renamed
from massface._progress import progress_bar
from massface._torch import eval_mode
from massface.distances import CosineSimilarity, EuclideanDistance, SquaredEuclideanDistance
from massface.mining.miners import TripletMiner, check_batch
from massface.mining.strategies import LabelPairs, Triplets, uniform_subset

__all__ = ["IndexConfig", "NeighbourIndex", "OfflineTripletSearch", "embed_dataset"]

__getattr__ = deprecated_names(__name__, {"OfflineMiner": "OfflineTripletSearch"})


def _progress_flag(progress: object, owner: str) -> bool:
    """``progress: bool``; the old label strings (truthy: on) are accepted for one release with a warning."""
    if isinstance(progress, str):
        warn_renamed(f"{owner}(progress=<label>)", f"{owner}(progress=True)", stacklevel=4)
        return bool(progress)
    return bool(progress)

IndexKind = Literal["auto", "flat", "ivf", "identity", "hnsw"]
_KINDS = ("auto", "flat", "ivf", "identity", "hnsw")


@dataclass(frozen=True)
class IndexConfig:
    """Which faiss index the offline miner searches with.

    * ``kind``: ``"flat"`` (exact); ``"ivf"`` (inverted lists over a k-means coarse quantiser, vectors stored
      uncompressed); ``"identity"`` (inverted lists that *are* the identities — centroids = normalised
      identity means — and every anchor probes the ``nprobe`` identities nearest to its own identity's
      centroid: class-level neighbours, as in doppelganger mining, Smirnov et al. 2017; no k-means, one probe
      list per identity); ``"hnsw"`` (graph); or ``"auto"``: flat up to ``flat_limit`` vectors, identity
      IVF beyond. ``flat_limit`` defaults to 250 K: an exact pass over 1 M 512-d vectors takes about an hour
      on 2 CPU cores (``benchmarks/bench_offline_mining.py``); on a GPU a larger limit is sensible.
    * ``ivf``: ``nlist`` lists (default 4·√N rounded to a power of two, at least 16), k-means on
      ``train_size`` vectors (default 40·nlist, faiss's lower bound of ~39 per centroid) for
      ``kmeans_iterations`` iterations. ``ivf`` and ``identity``: ``nprobe`` lists visited per query.
    * HNSW: ``hnsw_m`` links per node, ``ef_construction`` and ``ef_search`` beam widths.
    """

    kind: IndexKind = "auto"
    flat_limit: int = 250_000
    nlist: int | None = None
    nprobe: int = 64
    train_size: int | None = None
    kmeans_iterations: int = 10
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"index kind {self.kind!r} is not one of {_KINDS}")
        for name in ("flat_limit", "nprobe", "kmeans_iterations", "hnsw_m", "ef_construction", "ef_search"):
            check_int(name, getattr(self, name), "IndexConfig")
        for name in ("nlist", "train_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), "IndexConfig (or None)")

    def resolved_kind(self, n: int) -> str:
        """The index kind used for ``n`` vectors (``"auto"`` resolved)."""
        if self.kind != "auto":
            return self.kind
        return "flat" if n <= self.flat_limit else "identity"

    def resolved_nlist(self, n: int) -> int:
        """IVF lists for ``n`` vectors: ``nlist`` or 4·√n rounded to a power of two (at least 16), at most n."""
        if self.nlist is not None:
            return min(self.nlist, n)
        return min(n, max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))))


def _flat(d: int, inner_product: bool) -> Any:
    import faiss

    return faiss.IndexFlatIP(d) if inner_product else faiss.IndexFlatL2(d)


class NeighbourIndex:
    """A faiss index over labelled vectors that answers: the k nearest neighbours of *other* identities.

    Built from ``vectors`` (float32 (N, D)) and their ``labels`` as ``config`` says (see
    :class:`IndexConfig`); ``inner_product`` ranks by largest dot product (unit vectors: the same order as
    smallest Euclidean distance), else by L2 distance. ``kind`` is the resolved index kind.
    """

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, config: IndexConfig = IndexConfig(), *,
                 inner_product: bool = True, seed: int = 0) -> None:
        import faiss

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"NeighbourIndex needs a non-empty (N, D) array, got shape {x.shape}")
        n, d = x.shape
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (n,):
            raise ValueError(f"NeighbourIndex: {n} vectors but labels of shape {self.labels.shape}")
        self.config, self.kind = config, config.resolved_kind(n)
        self.identities, self._identity = np.unique(self.labels, return_inverse=True)
        self._counts = np.bincount(self._identity)
        self._refs: list[Any] = []  # faiss objects an index points to must outlive it
        metric = faiss.METRIC_INNER_PRODUCT if inner_product else faiss.METRIC_L2
        if self.kind == "flat":
            index = _flat(d, inner_product)
            index.add(x)
        elif self.kind == "ivf":
            nlist = config.resolved_nlist(n)
            quantizer = _flat(d, inner_product)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            index.cp.niter, index.cp.seed, index.cp.max_points_per_centroid = config.kmeans_iterations, seed, 256
            train = config.train_size or 40 * nlist
            rows = np.sort(np.random.default_rng(seed).choice(n, size=train, replace=False)) if train < n else None
            index.train(x if rows is None else x[rows])
            index.nprobe = min(config.nprobe, nlist)
            index.add(x)
            self._refs.append(quantizer)
        elif self.kind == "identity":
            centroids = np.zeros((self.identities.size, d), dtype=np.float32)
            np.add.at(centroids, self._identity, x)
            if inner_product:
                centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            else:
                centroids /= self._counts[:, None]
            quantizer = _flat(d, inner_product)
            quantizer.add(centroids)
            index = faiss.IndexIVFFlat(quantizer, d, int(self.identities.size), metric)
            lists = np.ascontiguousarray(self._identity, dtype=np.int64)
            ids = np.arange(n, dtype=np.int64)
            index.add_core(n, faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
            self.nprobe = min(config.nprobe, int(self.identities.size) - 1)
            index.nprobe = max(self.nprobe, 1)
            # each identity's nearest other identities (its own centroid is dropped by id, not by rank)
            dist, near = quantizer.search(centroids, min(self.nprobe + 1, int(self.identities.size)))
            own = near == np.arange(self.identities.size)[:, None]
            keep = np.argsort(own, axis=1, kind="stable")[:, : self.nprobe]
            self._probe_ids = np.ascontiguousarray(np.take_along_axis(near, keep, axis=1))
            self._probe_dist = np.ascontiguousarray(np.take_along_axis(dist, keep, axis=1))
            self._refs.append(quantizer)
        else:
            index = faiss.IndexHNSWFlat(d, config.hnsw_m, metric)
            index.hnsw.efConstruction, index.hnsw.efSearch = config.ef_construction, config.ef_search
            index.add(x)
        self.index = index

    def nearest_negatives(self, queries: np.ndarray, query_labels: np.ndarray, k: int) -> np.ndarray:
        """(n, k) ids of each query's k nearest indexed vectors of another identity, nearest first (−1 where
        fewer were found). A query's own identity must be among the indexed labels for ``"identity"``."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        query_labels = np.asarray(query_labels, dtype=np.int64)
        ident = np.minimum(np.searchsorted(self.identities, query_labels), self.identities.size - 1)
        known = self.identities[ident] == query_labels
        if self.kind == "identity":
            if not known.all():
                bad = int(query_labels[~known][0])
                raise ValueError(f"identity index: query label {bad} is not among the indexed identities")
            if self.nprobe < 1:
                return np.full((q.shape[0], k), -1, dtype=np.int64)
            _, found = self.index.search_preassigned(q, k, self._probe_ids[ident], self._probe_dist[ident])
        else:
            same = int(self._counts[ident[known]].max()) if known.any() else 0
            search_k = min(self.labels.size, k + same)  # room for every same-identity hit, the query included
            _, found = self.index.search(q, search_k)
        valid = found >= 0
        is_negative = valid & (self.labels[np.where(valid, found, 0)] != query_labels[:, None])
        if found.shape[1] < k:
            pad = k - found.shape[1]
            found = np.pad(found, ((0, 0), (0, pad)), constant_values=-1)
            is_negative = np.pad(is_negative, ((0, 0), (0, pad)), constant_values=False)
        cols = np.argsort(~is_negative, axis=1, kind="stable")[:, :k]  # negatives first, in search order
        out = np.take_along_axis(found, cols, axis=1)
        out[~np.take_along_axis(is_negative, cols, axis=1)] = -1
        return out


class OfflineTripletSearch:
    """Mine triplets over a whole embedded dataset: positives of the anchor's identity plus its ``neighbours``
    nearest other-identity neighbours from a faiss index, selected by ``miner``'s strategy (formerly
    ``OfflineMiner``: it is no PML miner — it takes a whole dataset's embeddings and returns
    :class:`~massface.mining.strategies.Triplets`).

    Args:
        miner: the strategy (any :class:`~massface.mining.TripletMiner`; its distance, margin and
            ``max_triplets`` apply — the cap is drawn uniformly over the whole dataset's selection).
        neighbours: k, the nearest other-identity neighbours searched per anchor.
        index: an :class:`IndexConfig` or just its kind (``"auto" | "flat" | "ivf" | "hnsw"``).
        chunk_size: anchors searched and mined at a time (bounds the memory of the candidate distances).
        seed: for the IVF k-means sample.

    ``mine_triplets(embeddings, labels)`` returns :class:`~massface.mining.strategies.Triplets` of row indices
    into ``embeddings``; ``nearest_negatives(embeddings, labels)`` the neighbour ids alone. After a call, the
    ``stats`` property gives ``num_triplets``, ``active_fraction``, ``mean_d_ap``, ``mean_d_an`` and the timings
    ``index_s`` (build) and ``mine_s`` (search + selection), as floats. Under a process group
    ``mine_triplets`` is a collective that shards the anchors over the ranks (``shard=``; identical result).
    """

    def __init__(self, miner: TripletMiner, *, neighbours: int = 32, index: IndexConfig | str = "auto",
                 chunk_size: int = 4096, seed: int = 0) -> None:
        owner = type(self).__name__
        if not isinstance(miner, TripletMiner):
            raise TypeError(f"{owner} needs a massface TripletMiner, got {type(miner).__name__}")
        neighbours = check_int("neighbours", neighbours, owner)
        chunk_size = check_int("chunk_size", chunk_size, owner)
        self.miner, self.neighbours, self.chunk_size, self.seed = miner, neighbours, chunk_size, seed
        self.index_config = index if isinstance(index, IndexConfig) else IndexConfig(kind=index)  # type: ignore[arg-type]
        self._stats: dict[str, float] = {}

    @property
    def stats(self) -> dict[str, float]:
        """Statistics of the last :meth:`mine_triplets` call, as floats (empty before the first)."""
        return dict(self._stats)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(miner={self.miner!r}, neighbours={self.neighbours}, "
                f"index={asdict(self.index_config)}, chunk_size={self.chunk_size})")

    # ------------------------------------------------------------------ vectors
    def _search_space(self, embeddings: Tensor) -> tuple[Tensor, bool]:
        """(vectors as the distance sees them, search by inner product?)."""
        dist = self.miner.distance
        x = embeddings.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return dist.maybe_normalize(x), bool(dist.is_inverted or dist.normalize_embeddings)

    def _check(self, embeddings: Tensor, labels: Any) -> tuple[Tensor, np.ndarray]:
        labels = check_batch(embeddings, labels)
        if embeddings.shape[0] == 0:
            raise ValueError(f"{type(self).__name__} got no embeddings")
        return labels, labels.cpu().numpy()

    @staticmethod
    def _finite_rows(embeddings: Tensor) -> Tensor | None:
        """CPU indices of the rows without NaN / Inf, or None when every row is finite (O(N·D))."""
        finite = torch.isfinite(embeddings.detach()).all(dim=1).cpu()
        return None if bool(finite.all()) else finite.nonzero().squeeze(1)

    def nearest_negatives(self, embeddings: Tensor, labels: Any) -> np.ndarray:
        """(N, k) ids of each row's k nearest neighbours of another identity, nearest first (−1: not found).

        Rows with NaN / Inf values are left out of the index: they get no neighbours (−1) and are nobody's.
        """
        labels_t, y = self._check(embeddings, labels)
        rows = self._finite_rows(embeddings)
        if rows is not None:
            out = np.full((embeddings.shape[0], self.neighbours), -1, dtype=np.int64)
            if rows.numel():
                sub = self.nearest_negatives(embeddings[rows.to(embeddings.device)], labels_t[rows.to(labels_t.device)])
                out[rows.numpy()] = np.where(sub >= 0, rows.numpy()[np.maximum(sub, 0)], -1)
            return out
        x, ip = self._search_space(embeddings.cpu())
        xn = np.ascontiguousarray(x.float().numpy())
        index = NeighbourIndex(xn, y, self.index_config, inner_product=ip, seed=self.seed)
        out = np.empty((xn.shape[0], self.neighbours), dtype=np.int64)
        for s in range(0, xn.shape[0], self.chunk_size):
            out[s : s + self.chunk_size] = index.nearest_negatives(xn[s : s + self.chunk_size],
                                                                   y[s : s + self.chunk_size], self.neighbours)
        return out

    # ------------------------------------------------------------------ mining
    def mine_triplets(self, embeddings: Tensor, labels: Any, *, progress: bool = False,
                      shard: bool | None = None) -> Triplets:
        """Triplets ``(a, p, n)`` of row indices into ``embeddings`` (CPU int64 tensors); ``progress`` shows a
        bar over the anchors on stderr (rank 0's share when sharded). Cost: see the module docstring.

        Rows with NaN / Inf values take part in no triplet (as in online mining); the rest are mined as usual.

        ``shard`` — mining the anchors across the ranks of the default ``torch.distributed`` process group:

        * ``None`` (default): sharded when a process group of more than one rank is initialised;
        * ``True``: sharded, and a ``ValueError`` when no process group is initialised;
        * ``False``: this process mines every anchor alone, with no collective (e.g. one rank mining for all).

        Sharded, the call is a collective: every rank passes the same embeddings and labels (checked with a
        hash, O(N·D), and one all-gather: a mismatch raises ``ValueError`` on every rank), builds the same index,
        mines its contiguous share of the ``⌈N / chunk_size⌉`` anchor chunks (⌊C·r/W⌋ to ⌊C·(r+1)/W⌋), and the
        triplets and per-chunk statistics are all-gathered (two all-gathers: O(T + C) int64 / float64 per rank).
        Every rank returns exactly — same triplets, same order, same ``stats`` but the timings — what one
        process mining all the anchors returns: the chunks are the same, their triplets are concatenated in
        chunk order, and the random draws are per chunk (below). Per rank the search and selection cost is
        1/W of one process's; the index build is not shared (every rank builds it). An ``"hnsw"`` index built on
        several threads differs between builds, so with it the ranks' shares come from different graphs.

        Randomness (``"random"`` rules, ``pick="distance_weighted"``, ``max_triplets``): each call takes one
        64-bit seed from the miner's ``generator`` (rank 0's when sharded; every rank's generator advances by
        that one draw), and chunk i draws from its own generator seeded by hashing (seed, i), the cap from one
        seeded by (seed, cap) — so the selection depends on neither which rank mines a chunk nor the world
        size, and successive calls draw afresh.

        ``stats`` timings are this rank's: ``index_s`` its build, ``mine_s`` its search, selection and the
        exchange (which waits for the slowest rank, so it is about the slowest rank's time).
        """
        owner = f"{type(self).__name__}.mine_triplets"
        progress = _progress_flag(progress, owner)
        world = _shard_world(shard, owner)
        labels_t, y = self._check(embeddings, labels)
        gen = self.miner.generator
        seed = int(torch.randint(0, 2**63 - 1, (1,), generator=gen, device=gen.device).item())
        if world > 1:
            seed = _agree_on_seed(embeddings, y, seed, owner)
        return self._mine_rows(embeddings, labels_t, y, seed=seed, world=world, progress=progress)

    def _mine_rows(self, embeddings: Tensor, labels_t: Tensor, y: np.ndarray, *, seed: int, world: int,
                   progress: bool) -> Triplets:
        """:meth:`mine_triplets` on checked inputs: the finite rows mined, the others left out."""
        rows = self._finite_rows(embeddings)
        if rows is not None:
            if rows.numel() == 0:
                empty = torch.empty(0, dtype=torch.long)
                self._stats = {"num_triplets": 0.0, "active_fraction": 0.0, "mean_d_ap": float("nan"),
                               "mean_d_an": float("nan"), "index_s": 0.0, "mine_s": 0.0}
                return Triplets(empty, empty.clone(), empty.clone())
            t = self._mine_rows(embeddings[rows.to(embeddings.device)], labels_t[rows.to(labels_t.device)],
                                y[rows.numpy()], seed=seed, world=world, progress=progress)
            return Triplets(rows[t.a], rows[t.p], rows[t.n])
        rank = mfdist.rank() if world > 1 else 0
        t0 = time.perf_counter()
        x, ip = self._search_space(embeddings.cpu())
        xn = np.ascontiguousarray(x.float().numpy())
        index = NeighbourIndex(xn, y, self.index_config, inner_product=ip, seed=self.seed)
        t_index = time.perf_counter() - t0
        order = np.argsort(y, kind="stable")
        sorted_y = y[order]
        starts = np.flatnonzero(np.r_[True, sorted_y[1:] != sorted_y[:-1]])
        counts = np.diff(np.r_[starts, y.size])
        block = np.repeat(np.arange(starts.size), counts)  # identity block of each sorted position
        n_total, size = y.size, self.chunk_size
        num_chunks = -(-n_total // size)
        mine = _chunk_share(num_chunks, world, rank)
        device = self.miner.generator.device
        found: list[Tensor] = []
        sums: list[np.ndarray] = []  # per chunk: triplets, active, Σd_ap, Σd_an
        t1 = time.perf_counter()
        share = min(mine.stop * size, n_total) - min(mine.start * size, n_total)
        with progress_bar(total=share, desc="offline mining", unit="anchors", enabled=progress and rank == 0) as bar:
            for i in mine:
                pos = np.arange(i * size, min((i + 1) * size, n_total))
                rows = order[pos]
                c = counts[block[pos]]
                neg = index.nearest_negatives(xn[rows], y[rows], self.neighbours)
                triplets, chunk_sums = self._mine_chunk(x, rows, pos, starts[block[pos]], c, order, neg, y,
                                                        _stream(seed, (0, i), device))
                found.append(torch.stack(triplets))
                sums.append(chunk_sums)
                bar.update(pos.size)
        mined = torch.cat(found, dim=1) if found else torch.empty((3, 0), dtype=torch.long)
        chunk_sums_all = np.stack(sums) if sums else np.zeros((0, 4))
        if world > 1:
            shares = [len(_chunk_share(num_chunks, world, r)) for r in range(world)]
            mined, chunk_sums_all = _gather_chunks(mined, chunk_sums_all, shares)
        total = np.zeros(4)
        for chunk_sums in chunk_sums_all:  # in chunk order, as one process adds them up
            total += chunk_sums
        limit = self.miner.max_triplets
        if limit is not None and mined.shape[1] > limit:
            keep = uniform_subset(mined.shape[1], limit, _stream(seed, (1,), device), mined.device)
            mined = mined[:, keep]
        a, p, n = mined.contiguous().unbind(0)
        sign = -1.0 if self.miner.distance.is_inverted else 1.0
        t = max(total[0], 1.0)
        self._stats = {
            "num_triplets": float(a.numel()),
            "active_fraction": float(total[1] / t) if total[0] else 0.0,
            "mean_d_ap": sign * float(total[2] / t) if total[0] else float("nan"),
            "mean_d_an": sign * float(total[3] / t) if total[0] else float("nan"),
            "index_s": t_index,
            "mine_s": time.perf_counter() - t1,
        }
        return Triplets(a, p, n)

    def mine(self, embeddings: Tensor, labels: Any, *, progress: bool = False) -> Triplets:
        """Deprecated name of :meth:`mine_triplets` (``mine`` is PML's miner hook elsewhere)."""
        warn_renamed(f"{type(self).__name__}.mine", f"{type(self).__name__}.mine_triplets")
        return self.mine_triplets(embeddings, labels, progress=progress)

    def _mine_chunk(self, x: Tensor, rows: np.ndarray, pos: np.ndarray, block_start: np.ndarray, c: np.ndarray,
                    order: np.ndarray, neg: np.ndarray, y: np.ndarray, generator: torch.Generator
                    ) -> tuple[tuple[Tensor, Tensor, Tensor], np.ndarray]:
        """Candidates [positives | k negatives] per anchor, their distances, and the miner's selection (its
        random draws from ``generator``)."""
        n_rows, c_max = rows.size, int(c.max())
        within = np.arange(c_max)
        pos_ids = np.where(within < c[:, None], order[np.minimum(block_start[:, None] + within, order.size - 1)], -1)
        cand = torch.from_numpy(np.concatenate([pos_ids, neg], axis=1))
        D = self._candidate_distances(x, torch.from_numpy(rows), cand)
        c_t = torch.from_numpy(c)
        q = torch.repeat_interleave(torch.arange(n_rows), c_t)
        r = torch.arange(q.numel()) - torch.repeat_interleave(torch.cumsum(c_t, 0) - c_t, c_t)
        pairs = LabelPairs(q, r, c_t)
        self_index = torch.from_numpy(pos - block_start)
        num_negatives = torch.from_numpy((neg >= 0).sum(axis=1))
        cand_labels = torch.from_numpy(np.where(cand.numpy() >= 0, y[cand.numpy().clip(0)], -1)).long()
        labels = (torch.from_numpy(y[rows]).long(), cand_labels)  # columns differ per row: (n, C) labels
        t = self.miner.select(D, pairs, self_index, num_negatives, limit=False, labels=labels, dim=x.shape[1],
                              generator=generator)
        flat_p, flat_n = t.a * D.shape[1] + t.p, t.a * D.shape[1] + t.n
        d_ap, d_an = D.view(-1)[flat_p], D.view(-1)[flat_n]
        sums = np.array([t.a.numel(), float(((d_ap - d_an + self.miner.margin) > 0).sum()),
                         float(d_ap.sum()), float(d_an.sum())])
        return (torch.from_numpy(rows)[t.a], cand.view(-1)[flat_p], cand.view(-1)[flat_n]), sums

    def _candidate_distances(self, x: Tensor, rows: Tensor, cand: Tensor, budget: int = 1 << 24) -> Tensor:
        """(n, C) dissimilarities of each anchor to its candidates (+inf for −1 ids), by the miner's distance.

        massface's distances on unit vectors come from one batched dot product (d² = 2 − 2·s); any other
        distance object through its ``pairwise_distance``."""
        dist = self.miner.distance
        by_dot = dist.normalize_embeddings and type(dist) in (SquaredEuclideanDistance, EuclideanDistance,
                                                              CosineSimilarity)
        n_rows, width = cand.shape
        out = torch.full((n_rows, width), float("inf"), dtype=x.dtype)
        step = max(1, budget // max(width * x.shape[1], 1))
        for s in range(0, n_rows, step):
            ids = cand[s : s + step]
            q = x[rows[s : s + step]].unsqueeze(1)
            r = x[ids.clamp_min(0)]
            if by_dot:
                dot = torch.bmm(r, q.transpose(1, 2)).squeeze(2)
                d = dot if dist.is_inverted else (2.0 - 2.0 * dot).clamp_min_(0.0)
                if isinstance(dist, EuclideanDistance):
                    d = d.sqrt_()
            else:
                d = dist.pairwise_distance(q.expand_as(r), r)
                if dist.power != 1:
                    d = d ** dist.power
            if dist.is_inverted:
                d = -d
            out[s : s + step] = torch.where(ids >= 0, d, out[s : s + step])
        return out


def _shard_world(shard: object, owner: str) -> int:
    """The number of ranks ``mine_triplets(shard=...)`` mines over (1: unsharded); validates ``shard``."""
    if shard is not None and not isinstance(shard, (bool, np.bool_)):
        raise ValueError(f"shard must be True, False or None (shard when distributed) for {owner}, got {shard!r}")
    if shard is not None and not shard:
        return 1
    if shard and not mfdist.is_distributed():
        raise ValueError(f"shard=True for {owner} needs an initialised torch.distributed process group "
                         f"(shard=None shards only when there is one)")
    return mfdist.world_size()


def _chunk_share(num_chunks: int, world: int, rank: int) -> range:
    """Rank ``rank``'s chunks of ``num_chunks``: [⌊C·r/W⌋, ⌊C·(r+1)/W⌋) — contiguous, so the rank-order
    concatenation of the shares is the chunk order; shares differ by at most one chunk."""
    return range(num_chunks * rank // world, num_chunks * (rank + 1) // world)


def _stream(seed: int, key: tuple[int, ...], device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by hashing (``seed``, ``key``) (numpy's ``SeedSequence``): one
    independent stream per chunk of a mining pass, the same whichever process draws from it. O(1)."""
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, dtype=np.uint64)[0]
    generator = torch.Generator(device=device)
    generator.manual_seed(int(state) >> 1)
    return generator


def _fingerprint(embeddings: Tensor, labels: np.ndarray) -> int:
    """A 63-bit hash (BLAKE2b) of the embeddings' shape, dtype and bytes and of the labels. O(N·D)."""
    x = embeddings.detach().cpu().contiguous()
    digest = hashlib.blake2b(f"{tuple(x.shape)} {x.dtype}".encode(), digest_size=8)
    digest.update(memoryview(x.view(-1).view(torch.uint8).numpy()))
    digest.update(memoryview(np.ascontiguousarray(labels, dtype=np.int64)))
    return int.from_bytes(digest.digest(), "little") >> 1


def _agree_on_seed(embeddings: Tensor, labels: np.ndarray, seed: int, owner: str) -> int:
    """Rank 0's ``seed``, after checking that every rank holds the same embeddings and labels (one all-gather
    of two int64 per rank; a mismatch raises on every rank alike, so none is left waiting in a collective)."""
    device = mfdist.collective_device()
    mine = torch.tensor([[_fingerprint(embeddings, labels), seed]], dtype=torch.long, device=device)
    every = mfdist.all_gather_rows(mine, sizes=[1] * mfdist.world_size()).cpu()
    differ = (every[:, 0] != every[0, 0]).nonzero().flatten().tolist()
    if differ:
        raise ValueError(f"sharded {owner}: every rank must pass the same embeddings and labels, but ranks "
                         f"{differ} differ from rank 0 (or pass shard=False to mine on one rank alone)")
    return int(every[0, 1])


def _gather_chunks(mined: Tensor, chunk_sums: np.ndarray, shares: list[int]) -> tuple[Tensor, np.ndarray]:
    """Every rank's (3, T_r) triplets and (C_r, 4) per-chunk sums, concatenated in rank order (= chunk order):
    the sums first — their triplet counts size the triplets' all-gather. O(T + C) per rank."""
    device = mfdist.collective_device()
    every_sums = mfdist.all_gather_rows(torch.from_numpy(chunk_sums).to(device), sizes=shares).cpu().numpy()
    ends = np.cumsum(shares)
    sizes = [int(every_sums[end - share : end, 0].sum()) for end, share in zip(ends, shares)]
    if sum(sizes) == 0:
        return torch.empty((3, 0), dtype=torch.long), every_sums
    rows = mfdist.all_gather_rows(mined.t().contiguous().to(device), sizes=sizes).cpu()
    return rows.t().contiguous(), every_sums


def embed_dataset(model: nn.Module, dataset: Any, indices: Sequence[int] | None = None, *,
                  batch_size: int = 256, num_workers: int = 0, device: Any = None,
                  progress: bool = False) -> tuple[Tensor, Tensor]:
    """Embeddings (float32, CPU, (n, D)) and labels (int64) of ``dataset`` items ``indices`` (default all), with
    the model in eval mode under ``no_grad``.

    Under ``torch.distributed`` the work is sharded — rank r embeds items r, r + W, … of ``indices`` — and
    all-gathered, so every rank returns the full result in ``indices`` order. ``progress``: a bar on stderr
    (rank 0). Cost: n forward passes spread over W ranks, n·D floats per rank.
    """
    from torch.utils.data import DataLoader, Subset

    progress = _progress_flag(progress, "embed_dataset")
    batch_size = check_int("batch_size", batch_size, "embed_dataset")
    idx = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    world, rank = mfdist.world_size(), mfdist.rank()
    if device is None:
        device = next(iter(model.parameters())).device
    share = idx[rank::world]
    loader = DataLoader(Subset(dataset, share.tolist()), batch_size=batch_size, num_workers=num_workers,
                        shuffle=False)
    embs, labs = [], []
    with eval_mode(model), progress_bar(total=int(idx.size), desc="embedding", unit="img",
                                        enabled=progress and rank == 0) as bar:
        for images, labels in loader:
            embs.append(model(images.to(device)).float().cpu())
            labs.append(torch.as_tensor(labels).long())
            bar.update(images.shape[0] * world)
    if not embs:
        raise ValueError("embed_dataset: no items to embed")
    emb, lab = torch.cat(embs), torch.cat(labs)
    if world == 1:
        return emb, lab
    sizes = [int(idx[r::world].size) for r in range(world)]
    all_e = mfdist.all_gather_rows(emb.to(device), sizes=sizes).cpu()
    all_l = mfdist.all_gather_rows(lab.to(device), sizes=sizes).cpu()
    out_e = torch.empty(idx.size, emb.shape[1])
    out_l = torch.empty(idx.size, dtype=torch.long)
    start = 0
    for r, count in enumerate(sizes):
        out_e[r::world], out_l[r::world] = all_e[start:start + count], all_l[start:start + count]
        start += count
    return out_e, out_l
