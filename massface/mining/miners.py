"""Online triplet miners: one general :class:`TripletMiner` and the presets of DESIGN.md.

Every miner is a ``torch.nn.Module`` and a :class:`pytorch_metric_learning.miners.BaseMiner`, so PML losses,
``CrossBatchMemory`` and ``DistributedMinerWrapper`` take it unchanged::

    a, p, n = miner(embeddings, labels)                       # query = reference (self-pairs excluded)
    a, p, n = miner(embeddings, labels, ref_emb, ref_labels)  # anchors from embeddings, p/n from ref_emb

Anchors index ``embeddings``; positives and negatives index ``ref_emb`` (``embeddings`` when not given).
The reference *is* the query batch when ``ref_emb`` is omitted or shares the query's memory (same storage,
offset, shape and strides — ``emb``, ``emb.detach()``, ``emb[:]``); then the pairs (i, i) are excluded. A copy
(``emb.clone()``, a memory bank) is other data, and its entries equal to a query are legitimate positives —
the caller (e.g. a cross-batch memory) removes them if it must.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pytorch_metric_learning.miners import BaseMiner

from massface._checks import check_int, check_real
from massface.distances import DistanceLike, compute_dtype, dissimilarity_matrix, is_same_tensor, resolve_distance
from massface.mining.guards import NegativeGuards
from massface.mining.strategies import (
    LabelPairs,
    NegativeFallback,
    NegativePick,
    NegativeRegion,
    PositiveRule,
    Triplets,
    check_rules,
    distance_weights,
    mask_same_label,
    same_label_pairs,
    select_negatives,
    select_positive_pairs,
    unmask_same_label,
)

__all__ = [
    "TripletMiner",
    "BatchAllMiner",
    "BatchHardestMiner",
    "BatchMinMinMiner",
    "BatchMinMaxMiner",
    "BatchRandomMiner",
    "SemiHardMiner",
    "DistanceWeightedMiner",
    "PRESETS",
    "DEFAULT_MARGIN",
    "check_batch",
]

IndexTuple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

_PERCENTILES = (10, 50, 90)
"""Percentiles of d_ap and d_an the miners' statistics report (``d_ap_p10`` ... ``d_an_p90``)."""

DEFAULT_MARGIN = 0.25
"""The one default triplet margin of every miner and of ``TripletLoss``: MassFace's alpha (its argparse default;
the Feb-2019 code had 0.2), for squared Euclidean distances of unit vectors (d ∈ [0, 4])."""


def check_batch(embeddings: torch.Tensor, labels: object, name: str = "embeddings", *,
                finite: bool = False) -> torch.Tensor:
    """Validate an (N, D) embedding batch and its N integer labels; returns the labels as an int64 tensor.

    Raises ``ValueError`` naming the problem: non-2-D or non-float embeddings, labels that are not a 1-D
    integer sequence, or a length mismatch. NaN / Inf values are accepted (a training step must not die on
    one overflowed batch: the miners leave such rows out of every triplet and the trainer watches the loss)
    unless ``finite=True``, which rejects them with their row count and first row (one device sync).
    """
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {embeddings.dtype}")
    if finite and not bool(torch.isfinite(embeddings).all()):
        bad = (~torch.isfinite(embeddings)).any(dim=1)
        first = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name} holds NaN or Inf in {int(bad.sum())} of {embeddings.shape[0]} rows "
                         f"(first: row {first})")
    label_name = "labels" if name == "embeddings" else f"{name} labels"
    if labels is None:
        raise ValueError(f"{label_name} are required")
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.ndim != 1:
        raise ValueError(f"{label_name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{label_name} must be integers, got dtype {labels.dtype}")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"{name} has {embeddings.shape[0]} rows but {label_name} has {labels.shape[0]} entries"
        )
    return labels.long()


def _finite_candidates(finite: torch.Tensor, pairs: LabelPairs) -> tuple[LabelPairs, torch.Tensor]:
    """The same-label pairs at finite entries and each row's count of finite negatives. O(N·M + S)."""
    keep = finite.view(-1)[pairs.q * finite.shape[1] + pairs.r]
    q, r = pairs.q[keep], pairs.r[keep]
    counts = torch.bincount(q, minlength=finite.shape[0])
    return LabelPairs(q, r, counts), finite.sum(dim=1) - counts


def _self_index_if_same(embeddings: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor | None:
    """``arange(N)`` when the reference is the query batch itself (its pairs (i, i) are no positives), else None."""
    if is_same_tensor(embeddings, ref_emb):
        return torch.arange(embeddings.shape[0], device=embeddings.device)
    return None


class TripletMiner(BaseMiner):
    """General online triplet miner: a positive rule, a negative region and a pick inside it.

    For each anchor a, positives p with y_p = y_a (p ≠ a) are chosen by ``positives``; for each pair (a, p)
    the negatives n (y_n ≠ y_a) admissible under ``negatives`` (a condition on d_an relative to d_ap and the
    margin m) are reduced by ``pick``; ``fallback`` replaces an empty region by the anchor's nearest or farthest
    negative. See :mod:`massface.mining.strategies` for the vocabulary. The presets::

        BatchAllMiner(m)      = TripletMiner("all",     "violating", pick="all")
        BatchHardestMiner()   = TripletMiner("hardest", "all",       pick="nearest")
        BatchMinMinMiner()    = TripletMiner("easiest", "all",       pick="nearest")
        BatchMinMaxMiner(m)   = TripletMiner("hardest", "beyond",    pick="nearest", fallback="nearest")
        BatchRandomMiner(m)   = TripletMiner("all",     "violating", pick="random")
        SemiHardMiner(m)      = TripletMiner("all",     "semihard",  pick="all")
        DistanceWeightedMiner = TripletMiner("all",     "all",       pick="distance_weighted")

    Args:
        positives: ``"all" | "hardest" | "easiest" | "random"``.
        negatives: ``"all" | "violating" | "semihard" | "hard" | "beyond"`` (region of admissible negatives).
        pick: ``"all" | "nearest" | "farthest" | "random" | "distance_weighted"`` negative(s) of the region per
            pair; ``"distance_weighted"`` draws one ∝ 1/q(d) (Wu et al. 2017, :func:`~massface.mining.strategies.
            distance_weights`) with ``cutoff`` / ``nonzero_loss_cutoff`` on the Euclidean distance of the
            L2-normalised embeddings (converted from the miner's distance), in the embedding dimension.
        fallback: ``None | "nearest" | "farthest"`` — what an empty region yields (``None``: drop the pair).
        margin: m, in units of the distance (for a similarity, of the similarity).
        max_triplets: keep a uniform random subset of at most this many triplets (drawn by rank, without
            materialising all of them first).
        distance: ``"squared_euclidean"`` (default, as MassFace), ``"euclidean"``, ``"cosine"`` or a PML
            distance object; a similarity is mined as the dissimilarity ``-s``.
        normalize: L2-normalise the embeddings before a named distance (cosine always does).
        generator / seed: randomness for ``"random"`` rules and ``max_triplets``; a private generator seeded
            with ``seed`` is made when none is given — the global RNG is never used.
        negative_range, skip_nearest, same_identity_pairs, false_negative_gap: false-negative guards, negatives
            the strategy never sees (:mod:`massface.mining.guards`): a distance window ``(lo, hi)``; the k
            nearest negatives of each anchor skipped; label pairs that are one person; negatives closer than
            the anchor's nearest positive by more than a gap. All off by default.

    After each call the module holds statistics of the mined set: ``num_triplets``, ``active_fraction``
    (share with positive hinge d_ap − d_an + m > 0), ``mean_d_ap`` and ``mean_d_an`` (see :attr:`stats`;
    computed on first access, so a caller that does not log them pays nothing), ``hard_fraction`` (share with
    d_an < d_ap) and the 10th / 50th / 90th percentiles ``d_ap_p10`` ... ``d_an_p90``; with ground truth given to
    ``forward`` (``true_labels=``), also ``false_negative_fraction``: the share of mined triplets whose
    negative is truly the anchor's identity.

    Cost for a batch of N queries and M references in dimension D: the distance matrix O(N·M·D); then O(N·M)
    for per-anchor strategies, O(N·M log M + T) time and O(N·M + T) memory for strategies that emit T
    triplets per call (see :mod:`massface.mining.strategies`).
    """

    def __init__(
        self,
        positives: PositiveRule = "all",
        negatives: NegativeRegion = "violating",
        *,
        pick: NegativePick = "all",
        fallback: NegativeFallback = None,
        margin: float = DEFAULT_MARGIN,
        max_triplets: int | None = None,
        distance: DistanceLike = "squared_euclidean",
        normalize: bool = True,
        generator: torch.Generator | None = None,
        seed: int = 0,
        negative_range: Sequence[float] | None = None,
        skip_nearest: int = 0,
        same_identity_pairs: Any = None,
        false_negative_gap: float | None = None,
        cutoff: float = 0.5,
        nonzero_loss_cutoff: float = 1.4,
        **kwargs: Any,
    ) -> None:
        check_rules(positives=positives, negatives=negatives, pick=pick, fallback=fallback)
        owner = type(self).__name__
        self.guards = NegativeGuards.build(owner, negative_range=negative_range, skip_nearest=skip_nearest,
                                           same_identity_pairs=same_identity_pairs,
                                           false_negative_gap=false_negative_gap)
        if max_triplets is not None:
            max_triplets = check_int("max_triplets", max_triplets, owner + " (or None: no cap)")
        margin = check_real("margin", margin, owner, low=0.0, note="in units of the distance")
        super().__init__(distance=resolve_distance(distance, normalize), **kwargs)
        self.positives = positives
        self.negatives = negatives
        self.pick = pick
        self.fallback = fallback
        self.margin = margin
        self.max_triplets = max_triplets
        self.cutoff = check_real("cutoff", cutoff, owner, low=0.0, high=2.0)
        self.nonzero_loss_cutoff = check_real("nonzero_loss_cutoff", nonzero_loss_cutoff, owner, low=0.0,
                                              high=2.0, low_open=True)
        if pick == "distance_weighted" and not self.distance.normalize_embeddings:
            raise ValueError(f"{owner}: pick='distance_weighted' needs L2-normalised embeddings (normalize=True)")
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        self.generator = generator
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)
        self.num_triplets = 0
        self._last: tuple[torch.Tensor, ...] | None = None
        self._stats_cache: dict[str, float] | None = None

    # ------------------------------------------------------------------ PML contract
    def forward(
        self,
        embeddings: torch.Tensor,
        labels: Any,
        ref_emb: torch.Tensor | None = None,
        ref_labels: Any = None,
        *,
        self_index: torch.Tensor | None = None,
        true_labels: Any = None,
        ref_true_labels: Any = None,
    ) -> IndexTuple:
        """Mine triplets; returns int64 ``(a, p, n)`` on the embeddings' device (three empty tensors if none).

        ``self_index`` (keyword, beyond PML's contract): for each query i the row of ``ref_emb`` that holds
        query i itself (−1: none), never used as its positive — e.g. ``arange(N)`` when ``ref_emb`` is the
        batch followed by a memory bank. By default it is ``arange(N)`` when ``ref_emb`` is (a view of) the
        embeddings and none otherwise.

        ``true_labels`` / ``ref_true_labels`` (keywords): the ground-truth identities of the queries / the
        reference when the training labels are known to be noisy (e.g. ``SynthFaces.true_identity``); they
        change nothing in the mining and give ``stats["false_negative_fraction"]``.
        """
        truth = None
        if true_labels is not None:
            truth_q = check_batch(embeddings, true_labels, name="true_labels")
            truth_r = truth_q if ref_true_labels is None else check_batch(
                embeddings if ref_emb is None else ref_emb, ref_true_labels, name="ref_true_labels")
            if ref_emb is not None and ref_true_labels is None:
                raise ValueError("true_labels given with ref_emb: ref_true_labels are needed too")
            truth = (truth_q, truth_r.to(embeddings.device))
        labels = check_batch(embeddings, labels)
        if ref_emb is None:
            if ref_labels is not None:
                raise ValueError("ref_labels given without ref_emb")
            ref_emb, ref_labels = embeddings, labels
        else:
            ref_labels = check_batch(ref_emb, ref_labels, name="ref_emb")
            if ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(
                    f"ref_emb has dimension {ref_emb.shape[1]} but embeddings have {embeddings.shape[1]}"
                )
            ref_labels = ref_labels.to(embeddings.device)
        if self_index is None:
            self_index = _self_index_if_same(embeddings, ref_emb)
        else:
            self_index = torch.as_tensor(self_index, device=embeddings.device).long()
            if self_index.shape != (embeddings.shape[0],):
                raise ValueError(f"self_index must have one entry per query ({embeddings.shape[0]}), "
                                 f"got shape {tuple(self_index.shape)}")
            if self_index.numel() and int(self_index.max()) >= ref_emb.shape[0]:
                raise ValueError(f"self_index entries must be < {ref_emb.shape[0]} (rows of ref_emb) or -1")
        with torch.no_grad(), torch.autocast(device_type=embeddings.device.type, enabled=False):
            out = self._mine(embeddings, labels, ref_emb, ref_labels, self_index)
        self._truth = truth
        self.output_assertion(out)
        return out

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor, ref_emb: torch.Tensor,
             ref_labels: torch.Tensor) -> IndexTuple:
        """PML's ``BaseMiner.mine`` hook, on validated inputs: the triplets ``(a, p, n)`` (self-pairs excluded
        when ``ref_emb`` is the query batch). Other massface classes name their methods after what they return
        (``mine_triplets``, ``mine_pool``, ``mine_with_reference``); ``mine`` is PML's contract only."""
        return self._mine(embeddings, labels, ref_emb, ref_labels, _self_index_if_same(embeddings, ref_emb))

    def _mine(self, embeddings: torch.Tensor, labels: torch.Tensor, ref_emb: torch.Tensor, ref_labels: torch.Tensor,
              self_index: torch.Tensor | None) -> IndexTuple:
        dtype = compute_dtype(embeddings.dtype, ref_emb.dtype)  # float32 or wider distances, one dtype for both
        if embeddings.dtype != dtype or ref_emb.dtype != dtype:
            same_ref = is_same_tensor(embeddings, ref_emb)
            embeddings = embeddings.to(dtype)
            ref_emb = embeddings if same_ref else ref_emb.to(dtype)
        D = dissimilarity_matrix(self.distance, embeddings, ref_emb).contiguous()
        triplets = self.select(D, same_label_pairs(labels, ref_labels), self_index, labels=(labels, ref_labels),
                               dim=embeddings.shape[1])
        self._record(D, triplets.a, triplets.p, triplets.n)
        return triplets.as_tuple()

    def select(
        self,
        D: torch.Tensor,
        pairs: LabelPairs,
        self_index: torch.Tensor | None = None,
        num_negatives: torch.Tensor | None = None,
        *,
        limit: bool = True,
        labels: tuple[torch.Tensor, torch.Tensor] | None = None,
        dim: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Triplets:
        """This miner's strategy on a precomputed (N, M) dissimilarity matrix (smaller = closer).

        ``pairs`` lists the same-label (row, column) entries — the candidate positives; every other finite
        entry is a negative, and +inf entries are no candidate at all (padding). ``self_index[i]`` is the
        column holding row i itself (never its positive). ``num_negatives[i]`` is the count of negatives of
        row i (default ``M - pairs.counts[i]``, right when there is no padding). Returns triplets of
        (row, column, column) positions; ``D`` is restored before returning. ``limit=False`` ignores
        ``max_triplets`` (a caller mining in chunks applies it once to the union). This is the one mechanism the
        online, cross-batch, semi-online and offline modes share, and where the false-negative guards act
        (``labels`` = (row labels, column labels, −1 for padding) is needed by ``same_identity_pairs`` only;
        ``dim``, the embedding dimension, by ``pick="distance_weighted"`` only). ``generator`` supplies this
        call's random draws (``"random"`` rules, ``"distance_weighted"``, the cap) instead of the miner's own —
        e.g. one generator per chunk, so a chunked caller's draws do not depend on which process mines a chunk.

        Non-finite entries other than padding — NaN, −inf, or +inf from an overflow, i.e. NaN / Inf
        embeddings — are set to +inf in place and count as no candidate at all (neither positive nor
        negative), so such rows and columns take part in no triplet and every triplet returned has finite
        distances (one O(N·M) check, and a recount of ``num_negatives`` when it finds any).
        """
        generator = self.generator if generator is None else generator
        finite = torch.isfinite(D)
        if not bool(finite.all()):
            D.masked_fill_(~finite, float("inf"))
            pairs, num_negatives = _finite_candidates(finite, pairs)
        a, p = select_positive_pairs(D, pairs, self_index, self.positives, generator)
        d_ap = D.view(-1)[a * D.shape[1] + p]
        if num_negatives is None:
            num_negatives = D.shape[1] - pairs.counts
        guards = getattr(self, "guards", None)
        nearest_positive = None
        if guards is not None and guards.false_negative_gap is not None:
            all_a, all_p = select_positive_pairs(D, pairs, self_index, "all")
            nearest_positive = torch.full((D.shape[0],), float("inf"), dtype=D.dtype, device=D.device)
            nearest_positive.scatter_reduce_(0, all_a, D.view(-1)[all_a * D.shape[1] + all_p], "amin")
        saved = mask_same_label(D, pairs)
        excluded, hidden = None, None
        try:
            if guards is not None and guards.active:
                excluded = guards.excluded(D, nearest_positive, self.distance.is_inverted, labels)
                hidden = D[excluded]
                D.masked_fill_(excluded, float("inf"))
                num_negatives = num_negatives - excluded.sum(dim=1)
            weights = None
            if self.pick == "distance_weighted":
                if dim is None:
                    raise ValueError("pick='distance_weighted' needs the embedding dimension (select(dim=...))")
                weights = distance_weights(self.euclidean_on_sphere(D), dim, getattr(self, "cutoff", 0.5),
                                           getattr(self, "nonzero_loss_cutoff", 1.4))
            return select_negatives(
                D, num_negatives, a, p, d_ap, self.negatives, self.pick, self.margin,
                self.fallback, generator, self.max_triplets if limit else None, weights=weights,
            )
        finally:
            if excluded is not None:
                D[excluded] = hidden
            unmask_same_label(D, pairs, saved)

    def euclidean_on_sphere(self, D: torch.Tensor) -> torch.Tensor:
        """The Euclidean distance of the (normalised) embeddings from this miner's dissimilarity matrix ``D``:
        sqrt(D) for the squared Euclidean, D for the Euclidean, sqrt(2 - 2s) = sqrt(2 + 2D) for cosine
        (D = -s); +inf entries stay +inf. Other distance objects are refused."""
        from pytorch_metric_learning import distances as pml

        from massface import distances as mf

        dist = self.distance
        if isinstance(dist, (mf.CosineSimilarity, pml.CosineSimilarity)):
            return (2.0 + 2.0 * D).clamp_min(0.0).sqrt()
        if isinstance(dist, mf.SquaredEuclideanDistance) or (isinstance(dist, pml.LpDistance) and dist.p == 2
                                                             and dist.power == 2):
            return D.clamp_min(0.0).sqrt()
        if isinstance(dist, mf.EuclideanDistance) or (isinstance(dist, pml.LpDistance) and dist.p == 2
                                                      and dist.power == 1):
            return D
        raise ValueError(f"{type(self).__name__}: pick='distance_weighted' needs a Euclidean or cosine distance, "
                         f"got {type(dist).__name__}")

    # ------------------------------------------------------------------ statistics
    def _record(self, D: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> None:
        """Keep what the statistics need; they are computed on first access (O(T)), not on every call."""
        self._last = (D, a, p, n)
        self._truth = None
        self._stats_cache: dict[str, float] | None = None

    @property
    def stats(self) -> dict[str, float]:
        """Statistics of the last call: ``num_triplets``, ``active_fraction`` (share of triplets with
        d_ap − d_an + m > 0), ``mean_d_ap`` and ``mean_d_an`` (distances, or similarities for cosine; NaN when
        no triplet was mined). Computed lazily in O(T)."""
        if getattr(self, "_stats_cache", None) is None:
            self._stats_cache = self._compute_stats()
        return dict(self._stats_cache)

    def _compute_stats(self) -> dict[str, float]:
        last = getattr(self, "_last", None)
        if last is None or last[1].numel() == 0:
            nan = float("nan")
            return {"num_triplets": 0.0, "active_fraction": 0.0, "mean_d_ap": nan, "mean_d_an": nan,
                    "hard_fraction": 0.0, **{f"{w}_p{q}": nan for w in ("d_ap", "d_an") for q in _PERCENTILES}}
        D, a, p, n = last
        row = a * D.shape[1]
        d_ap, d_an = D.take(row + p), D.take(row + n)
        active = (d_ap - d_an + self.margin) > 0
        sign = -1.0 if self.distance.is_inverted else 1.0  # report the distance itself (similarity for cosine)
        out = {
            "num_triplets": float(a.numel()),
            "active_fraction": float(active.float().mean()),
            "mean_d_ap": sign * float(d_ap.mean()),
            "mean_d_an": sign * float(d_an.mean()),
            "hard_fraction": float((d_an < d_ap).float().mean()),  # the negative is closer than the positive
        }
        levels = torch.tensor([q / 100 for q in _PERCENTILES], dtype=d_ap.dtype, device=d_ap.device)
        for what, values in (("d_ap", sign * d_ap), ("d_an", sign * d_an)):
            for q, value in zip(_PERCENTILES, torch.quantile(values, levels).tolist()):
                out[f"{what}_p{q}"] = value
        truth = getattr(self, "_truth", None)
        if truth is not None:
            out["false_negative_fraction"] = float((truth[0][a] == truth[1][n]).float().mean())
        return out

    @property
    def active_fraction(self) -> float:
        """``stats["active_fraction"]``."""
        return self.stats["active_fraction"]

    @property
    def mean_d_ap(self) -> float:
        """``stats["mean_d_ap"]``."""
        return self.stats["mean_d_ap"]

    @property
    def mean_d_an(self) -> float:
        """``stats["mean_d_an"]``."""
        return self.stats["mean_d_an"]

    def extra_repr(self) -> str:
        parts: Sequence[str] = [
            f"positives={self.positives!r}",
            f"negatives={self.negatives!r}",
            f"pick={self.pick!r}",
            f"fallback={self.fallback!r}",
            f"margin={self.margin}",
            f"max_triplets={self.max_triplets}",
            f"distance={type(self.distance).__name__}",
            *self.guards.describe(),
        ]
        return ", ".join(parts)


class BatchAllMiner(TripletMiner):
    """All (a, p, n) with y_a = y_p ≠ y_n and d_an < d_ap + m (Hermans et al. batch all, restricted to the
    margin violators; MassFace ``batch_all`` without its index-truncation bug). O(N·M log M + T)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, **kwargs: Any) -> None:
        super().__init__("all", "violating", pick="all", margin=margin, **kwargs)


class BatchHardestMiner(TripletMiner):
    """Per anchor the farthest positive and the nearest negative, argmax_p d_ap and argmin_n d_an
    (Hermans et al. batch hard; PML BatchHardMiner). No margin filter. O(N·M)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, **kwargs: Any) -> None:
        super().__init__("hardest", "all", pick="nearest", margin=margin, **kwargs)


class BatchMinMinMiner(TripletMiner):
    """Per anchor the nearest positive and the nearest negative, argmin_p d_ap and argmin_n d_an
    (MassFace ``min_and_min``, as its name says). O(N·M)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, **kwargs: Any) -> None:
        super().__init__("easiest", "all", pick="nearest", margin=margin, **kwargs)


class BatchMinMaxMiner(TripletMiner):
    """Per anchor p* = argmax_p d_ap, then n = argmin {d_an : d_an > d_ap*}; if no negative is farther than
    p*, n = argmin_n d_an (MassFace ``min_and_max`` as intended). ``margin`` is used for the statistics and
    by a loss built from the miner. O(N·M)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, **kwargs: Any) -> None:
        super().__init__("hardest", "beyond", pick="nearest", fallback="nearest", margin=margin, **kwargs)


class BatchRandomMiner(TripletMiner):
    """For every positive pair (a, p) one negative drawn uniformly from {n : d_an < d_ap + m}; pairs with
    no such n are skipped (VGG-Face selection; MassFace ``batch_random``). O(N·M log M)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, generator: torch.Generator | None = None,
                 **kwargs: Any) -> None:
        super().__init__("all", "violating", pick="random", margin=margin, generator=generator, **kwargs)


class DistanceWeightedMiner(TripletMiner):
    """Distance-weighted sampling (Wu et al., ICCV 2017, "Sampling matters in deep embedding learning"): every
    anchor–positive pair gets one negative drawn with probability ∝ min-clipped 1/q(d), q the density of
    distances between uniform points on the unit sphere of the embedding dimension, so negatives are spread
    over all distances instead of concentrated on the hardest (noisy) or the easiest (uninformative) ones.
    ``TripletMiner("all", "all", pick="distance_weighted")``; ``cutoff`` (0.5) and ``nonzero_loss_cutoff``
    (1.4) on the Euclidean distance of the normalised embeddings, as in the paper (and PML). Seeded: ``seed`` /
    ``generator``. Cost: O(N·M) for the weights and the draws."""

    def __init__(self, margin: float = DEFAULT_MARGIN, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
                 **kwargs: Any) -> None:
        super().__init__("all", "all", pick="distance_weighted", margin=margin, cutoff=cutoff,
                         nonzero_loss_cutoff=nonzero_loss_cutoff, **kwargs)


class SemiHardMiner(TripletMiner):
    """All (a, p, n) with d_ap < d_an < d_ap + m (FaceNet semi-hard; PML TripletMarginMiner "semihard"
    up to boundary ties). O(N·M log M + T)."""

    def __init__(self, margin: float = DEFAULT_MARGIN, **kwargs: Any) -> None:
        super().__init__("all", "semihard", pick="all", margin=margin, **kwargs)


PRESETS: dict[str, type[TripletMiner]] = {
    "all": BatchAllMiner,
    "hardest": BatchHardestMiner,
    "min_min": BatchMinMinMiner,
    "min_max": BatchMinMaxMiner,
    "random": BatchRandomMiner,
    "semihard": SemiHardMiner,
    "distance_weighted": DistanceWeightedMiner,
}
"""The presets by their short names (the trainer config's ``loss.triplet.miner`` values)."""
