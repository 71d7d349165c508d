"""Triplet selection strategies: pure functions on a dissimilarity matrix.

Notation: ``D`` is the (N, M) dissimilarity matrix between N anchors and M reference points (smaller is
closer; see :func:`massface.distances.dissimilarity_matrix`), ``m`` the margin. Labels are never expanded to a
dense N×M mask: :func:`same_label_pairs` lists the (query, reference) pairs that share a label by sorting the
reference labels (O((N + M) log M + S) for S such pairs, about N·K in a P×K batch), positives come from that
list and negatives are read from ``D`` with those S entries set to +inf (:func:`mask_same_label`).

Selection is done in two steps, each a small closed vocabulary, so every strategy of the field is one
combination (see :class:`massface.mining.TripletMiner`):

1. **positives** (:data:`PositiveRule`) — which (a, p) pairs: ``"all"``; per anchor the ``"hardest"``
   (argmax d_ap) or ``"easiest"`` (argmin d_ap); or one uniformly ``"random"`` positive per anchor.
2. **negatives** for each pair, a *region* (:data:`NegativeRegion`) relative to that pair's d_ap —

   ============  ==============================  =====================================
   region        condition on d_an               known as
   ============  ==============================  =====================================
   ``all``       any negative                    batch hard (with pick ``nearest``)
   ``violating`` d_an < d_ap + m                 batch all, VGG-Face / MassFace random
   ``semihard``  d_ap < d_an < d_ap + m          FaceNet semi-hard
   ``hard``      d_an < d_ap                     hard negatives
   ``beyond``    d_an > d_ap                     PML BatchEasyHard "semihard" (no margin)
   ============  ==============================  =====================================

   and a *pick* (:data:`NegativePick`) inside the region: ``"all"`` of them, the ``"nearest"``, the
   ``"farthest"``, one uniformly ``"random"`` negative, or one drawn with given per-entry ``weights``
   (``"distance_weighted"``: the miner passes Wu et al.'s 1/q(d) weights, see
   :func:`distance_weights`); plus an optional *fallback* when the region is empty (``"nearest"`` /
   ``"farthest"`` negative of the anchor, else the pair is dropped).

Cost. With P pairs and T triplets produced: negatives by ``nearest``/``farthest`` with at most one pair per
anchor, O(P·M) through one masked reduction; ``"all"`` negatives, one (pairs × M) comparison per chunk of
pairs and a ``nonzero``, O(P·M + T) time and O(chunk + T) memory — the N×M×M cube that PML's
TripletMarginMiner allocates is never built. Otherwise (``"random"``, ``max_triplets``, several pairs per
anchor with ``nearest``/``farthest``) each anchor's negative distances are sorted once (O(N·M log M)) and the
region of every pair is a slice found by two binary searches (O(P log M)); ``max_triplets`` then draws a
uniform subset of the T triplets by their rank, without enumerating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from massface._deprecation import deprecated_names

__all__ = [
    "PositiveRule",
    "NegativeRegion",
    "NegativePick",
    "NegativeFallback",
    "POSITIVE_RULES",
    "NEGATIVE_REGIONS",
    "NEGATIVE_PICKS",
    "NEGATIVE_FALLBACKS",
    "Triplets",
    "LabelPairs",
    "check_rules",
    "same_label_pairs",
    "mask_same_label",
    "unmask_same_label",
    "select_positive_pairs",
    "select_negatives",
    "distance_weights",
    "uniform_subset",
]

PositiveRule = Literal["all", "hardest", "easiest", "random"]
NegativeRegion = Literal["all", "violating", "semihard", "hard", "beyond"]
NegativePick = Literal["all", "nearest", "farthest", "random", "distance_weighted"]
NegativeFallback = Literal["nearest", "farthest"] | None
"""What an empty negative region yields: the anchor's nearest or farthest negative, or nothing (None)."""

POSITIVE_RULES: tuple[str, ...] = ("all", "hardest", "easiest", "random")
NEGATIVE_REGIONS: tuple[str, ...] = ("all", "violating", "semihard", "hard", "beyond")
NEGATIVE_PICKS: tuple[str, ...] = ("all", "nearest", "farthest", "random", "distance_weighted")
NEGATIVE_FALLBACKS: tuple[str | None, ...] = (None, "nearest", "farthest")

# ``Fallback`` also named the margin heads' rule past θ* (now ``losses.margin.MarginFallback``).
__getattr__ = deprecated_names(__name__, {"Fallback": "NegativeFallback", "FALLBACKS": "NEGATIVE_FALLBACKS"})


@dataclass(frozen=True)
class Triplets:
    """Mined triplets: int64 index tensors ``a`` (into the queries), ``p`` and ``n`` (into the reference)."""

    a: torch.Tensor
    p: torch.Tensor
    n: torch.Tensor

    def __len__(self) -> int:
        return int(self.a.numel())

    def as_tuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, p, n)``, the miners' return contract."""
        return self.a, self.p, self.n


@dataclass(frozen=True)
class LabelPairs:
    """The (query, reference) index pairs sharing a label, grouped by query (``q`` ascending).

    ``counts[i]`` is the number of references with query i's label (self included), so query i has
    ``M - counts[i]`` negatives.
    """

    q: torch.Tensor
    r: torch.Tensor
    counts: torch.Tensor


def check_rules(**rules: str | None) -> None:
    """Raise a ValueError naming any of ``positives``, ``negatives``, ``pick``, ``fallback`` not in its vocabulary."""
    allowed = {"positives": POSITIVE_RULES, "negatives": NEGATIVE_REGIONS, "pick": NEGATIVE_PICKS,
               "fallback": NEGATIVE_FALLBACKS}
    for name, value in rules.items():
        if value not in allowed[name]:
            raise ValueError(f"{name}={value!r} is not one of {allowed[name]}")


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.long, device=device)


def _uniform(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``count`` U[0, 1) float64 draws from ``generator`` (drawn on the generator's device, moved to ``device``)."""
    return torch.rand(count, generator=generator, device=generator.device, dtype=torch.float64).to(device)


def _require(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        raise ValueError("random selection (pick='random', positives='random' or max_triplets) needs a torch.Generator")
    return generator


def same_label_pairs(labels: torch.Tensor, ref_labels: torch.Tensor) -> LabelPairs:
    """All (i, j) with ``labels[i] == ref_labels[j]``, grouped by i: one sort of the reference labels and two
    binary searches per query, O((N + M) log M + S) time and O(N + M + S) memory for S pairs."""
    order = torch.argsort(ref_labels, stable=True)
    sorted_labels = ref_labels[order]
    lo = torch.searchsorted(sorted_labels, labels, right=False)
    counts = torch.searchsorted(sorted_labels, labels, right=True) - lo
    total = int(counts.sum().item())
    q = torch.repeat_interleave(torch.arange(labels.numel(), device=labels.device), counts, output_size=total)
    starts = torch.cumsum(counts, 0) - counts
    offset = torch.arange(total, device=labels.device) + torch.repeat_interleave(lo - starts, counts, output_size=total)
    return LabelPairs(q, order[offset], counts)


def mask_same_label(D: torch.Tensor, pairs: LabelPairs) -> torch.Tensor:
    """Set the same-label entries of ``D`` to +inf **in place** and return their previous values (to restore
    with :func:`unmask_same_label`). Afterwards a row's finite entries are exactly its negatives. O(S)."""
    flat = pairs.q * D.shape[1] + pairs.r
    saved = D.view(-1)[flat]
    D.view(-1)[flat] = float("inf")
    return saved


def unmask_same_label(D: torch.Tensor, pairs: LabelPairs, saved: torch.Tensor) -> None:
    """Undo :func:`mask_same_label`."""
    D.view(-1)[pairs.q * D.shape[1] + pairs.r] = saved


def _rank_within_group(group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, int]:
    """For items sorted by group: each item's rank inside its group, and the largest group size."""
    counts = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(group.numel(), device=group.device) - starts[group]
    return rank, int(counts.max().item()) if group.numel() else 0


def select_positive_pairs(
    D: torch.Tensor,
    pairs: LabelPairs,
    self_index: torch.Tensor | None,
    rule: PositiveRule,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor–positive pairs ``(a, p)`` by ``rule``, grouped by anchor (``a`` ascending).

    ``self_index[i]`` is the reference row that holds query i itself (−1 for none), which is never its
    positive: ``arange(N)`` when the reference is the query batch or starts with it (a cross-batch memory),
    ``None`` when the reference is other data. Anchors without any positive give no pair. ``D`` must hold
    the true distances at the pairs (call before masking).
    O(S) for ``"all"``, O(N·K_max) for the per-anchor rules (K_max = most positives of one anchor).
    """
    a, p = pairs.q, pairs.r
    if self_index is not None:
        keep = p != self_index[a]
        a, p = a[keep], p[keep]
    if rule == "all" or a.numel() == 0:
        if rule not in POSITIVE_RULES:
            raise ValueError(f"positives={rule!r} is not one of {POSITIVE_RULES}")
        return a, p
    if rule == "hardest":
        scores = D.view(-1)[a * D.shape[1] + p]
    elif rule == "easiest":
        scores = -D.view(-1)[a * D.shape[1] + p]
    elif rule == "random":
        scores = _uniform(a.numel(), _require(generator), D.device).to(D.dtype)
    else:
        raise ValueError(f"positives={rule!r} is not one of {POSITIVE_RULES}")
    rank, width = _rank_within_group(a, D.shape[0])
    grid = torch.full((D.shape[0], width), float("-inf"), dtype=scores.dtype, device=D.device)
    grid[a, rank] = scores
    best, column = grid.max(dim=1)
    anchors = torch.isfinite(best).nonzero(as_tuple=True)[0]
    index = torch.full((D.shape[0], width), -1, dtype=torch.long, device=D.device)
    index[a, rank] = p
    return anchors, index[anchors, column[anchors]]


def _region_bounds(region: NegativeRegion, d_ap: torch.Tensor, margin: float):
    """(lower, upper) exclusive bounds on d_an for each pair; ``None`` means unbounded on that side."""
    if region == "all":
        return None, None
    if region == "violating":
        return None, d_ap + margin
    if region == "semihard":
        return d_ap, d_ap + margin
    if region == "hard":
        return None, d_ap
    if region == "beyond":
        return d_ap, None
    raise ValueError(f"negatives={region!r} is not one of {NEGATIVE_REGIONS}")


def select_negatives(
    D_neg: torch.Tensor,
    num_negatives: torch.Tensor,
    a: torch.Tensor,
    p: torch.Tensor,
    d_ap: torch.Tensor,
    region: NegativeRegion,
    pick: NegativePick,
    margin: float,
    fallback: NegativeFallback = None,
    generator: torch.Generator | None = None,
    max_triplets: int | None = None,
    weights: torch.Tensor | None = None,
) -> Triplets:
    """Negatives for the pairs ``(a, p)`` (grouped by anchor) whose distances are ``d_ap``.

    ``D_neg`` is the distance matrix with every same-label entry set to +inf (:func:`mask_same_label`) and
    ``num_negatives[i]`` the count of finite entries in row i. See the module docstring for regions and
    picks. Pairs whose region is empty are dropped unless ``fallback`` names a replacement; anchors without
    negatives never produce a triplet. ``max_triplets`` keeps a uniform random subset (needs ``generator``).
    ``pick="distance_weighted"`` draws one negative per pair with probability proportional to
    ``weights[a]`` (an (N, M) non-negative tensor; zero = never) inside the region.
    """
    check_rules(negatives=region, pick=pick, fallback=fallback)
    device = D_neg.device
    if a.numel() == 0:
        return Triplets(_empty(device), _empty(device), _empty(device))
    lower, upper = _region_bounds(region, d_ap, margin)
    if pick == "distance_weighted":
        if weights is None or weights.shape != D_neg.shape:
            raise ValueError("pick='distance_weighted' needs weights of the distance matrix's shape")
        triplets = _pick_weighted(D_neg, a, p, lower, upper, weights, fallback, _require(generator))
    elif pick in ("nearest", "farthest") and a.numel() <= D_neg.shape[0]:
        triplets = _pick_extreme_dense(D_neg, a, p, lower, upper, pick, fallback)
    elif pick == "all" and max_triplets is None:
        return _expand_dense(D_neg, a, p, lower, upper)
    else:
        triplets = _select_sorted(D_neg, num_negatives, a, p, lower, upper, pick, fallback, generator, max_triplets)
        if pick == "all":
            return triplets  # ``max_triplets`` already applied without enumeration
    if max_triplets is not None and len(triplets) > max_triplets:
        keep = uniform_subset(len(triplets), max_triplets, _require(generator), device)
        triplets = Triplets(triplets.a[keep], triplets.p[keep], triplets.n[keep])
    return triplets


def _pick_extreme_dense(D_neg, a, p, lower, upper, pick, fallback) -> Triplets:
    """Nearest / farthest admissible negative per pair by one masked reduction over its row: O(P·M).

    Non-negatives are +inf in ``D_neg``; region bounds exclude more entries. D is finite, so a reduction
    comes out ±inf exactly when a row has no admissible negative.
    """
    full_rows = a.numel() == D_neg.shape[0]  # then a = 0..N-1 and the rows need no gather
    rows = D_neg if full_rows else D_neg[a]
    excluded = None
    if lower is not None:
        excluded = rows <= lower.unsqueeze(1)
    if upper is not None:
        above = rows >= upper.unsqueeze(1)
        excluded = above if excluded is None else excluded | above
    found, n = _masked_extreme(rows, excluded, pick)
    keep = torch.isfinite(found)
    if fallback is not None and excluded is not None and not bool(keep.all()):
        lost = (~keep).nonzero(as_tuple=True)[0]
        alt_found, alt_n = _masked_extreme(rows[lost], None, fallback)
        n[lost] = alt_n
        keep[lost] = torch.isfinite(alt_found)
    return Triplets(a[keep], p[keep], n[keep])


def _pick_weighted(D_neg, a, p, lower, upper, weights, fallback, generator) -> Triplets:
    """One negative per pair drawn ∝ ``weights[a]`` over its admissible entries (inverse-CDF on one uniform
    draw per pair, from ``generator``): O(P·M). Pairs with no admissible weight take ``fallback`` or drop."""
    rows = D_neg[a]
    w = torch.where(torch.isfinite(rows), weights[a].to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                                    device=rows.device))
    if lower is not None:
        w = w.masked_fill(rows <= lower.unsqueeze(1), 0.0)
    if upper is not None:
        w = w.masked_fill(rows >= upper.unsqueeze(1), 0.0)
    cdf = torch.cumsum(w, dim=1)
    total = cdf[:, -1]
    u = _uniform(a.numel(), generator, rows.device) * total
    n = torch.searchsorted(cdf, u.unsqueeze(1), right=True).squeeze(1).clamp_max(rows.shape[1] - 1)
    keep = total > 0
    if fallback is not None and not bool(keep.all()):
        lost = (~keep).nonzero(as_tuple=True)[0]
        alt_found, alt_n = _masked_extreme(rows[lost], None, fallback)
        n[lost] = alt_n
        keep[lost] = torch.isfinite(alt_found)
    return Triplets(a[keep], p[keep], n[keep])


def distance_weights(d: torch.Tensor, dim: int, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> torch.Tensor:
    """Wu et al. 2017 ("Sampling matters"): weights ∝ 1/q(d) for Euclidean distances ``d`` between unit vectors
    in dimension ``dim``, where q(d) ∝ d^(dim-2) (1 - d²/4)^((dim-3)/2) is the density of pairwise distances of
    uniform points on the sphere; d is clipped below at ``cutoff`` (bounded variance) and entries with
    d >= ``nonzero_loss_cutoff`` (or non-finite) weigh 0. Each row is scaled by its largest log-weight
    (weights are relative within a row). O(N·M)."""
    valid = torch.isfinite(d) & (d < nonzero_loss_cutoff)
    x = d.to(torch.float64).clamp(min=cutoff, max=min(nonzero_loss_cutoff, 2.0 - 1e-6)).masked_fill(~valid, 1.0)
    log_w = (2.0 - dim) * torch.log(x) - ((dim - 3) / 2.0) * torch.log1p(-0.25 * x * x)
    log_w = log_w.masked_fill(~valid, float("-inf"))
    top = log_w.amax(dim=1, keepdim=True).masked_fill(~torch.isfinite(log_w.amax(dim=1, keepdim=True)), 0.0)
    return torch.exp(log_w - top)


def _expand_dense(D_neg, a, p, lower, upper, chunk_elements: int = 1 << 22) -> Triplets:
    """Every admissible negative of every pair: the (pairs × M) admissibility mask is filled chunk by chunk
    (at most ``chunk_elements`` gathered distances at a time), then one ``nonzero`` turns it into triplets
    written straight into their final tensors. O(P·M + T) time; P·M bytes for the mask plus 32·T bytes."""
    n_pairs, m = a.numel(), D_neg.shape[1]
    ok = torch.empty(n_pairs, m, dtype=torch.bool, device=D_neg.device)
    step = max(1, chunk_elements // max(m, 1))
    for s in range(0, n_pairs, step):
        rows = D_neg.index_select(0, a[s : s + step])
        block = ok[s : s + step]
        torch.lt(rows, float("inf"), out=block)  # finite = a negative (D is finite, non-negatives are +inf)
        if lower is not None:
            block &= rows > lower[s : s + step].unsqueeze(1)
        if upper is not None:
            block &= rows < upper[s : s + step].unsqueeze(1)
        del rows
    flat = ok.view(-1).nonzero().squeeze(1)
    del ok
    pair = torch.div(flat, m, rounding_mode="floor")
    anchors, positives = a.index_select(0, pair), p.index_select(0, pair)
    return Triplets(anchors, positives, flat.sub_(pair.mul_(m)))  # in place: n = flat − pair·M


def _masked_extreme(rows: torch.Tensor, excluded: torch.Tensor | None, pick: str):
    """(value, index) of the row minimum (``nearest``) or maximum (``farthest``) over admissible entries
    (finite and not ``excluded``); ±inf where a row has none."""
    if pick == "nearest":
        if excluded is None:
            return rows.min(dim=1)
        return torch.where(excluded, torch.full((), float("inf"), dtype=rows.dtype, device=rows.device), rows).min(dim=1)
    drop = torch.isinf(rows) if excluded is None else excluded | torch.isinf(rows)
    return torch.where(drop, torch.full((), float("-inf"), dtype=rows.dtype, device=rows.device), rows).max(dim=1)


def _searchsorted_per_group(
    sorted_rows: torch.Tensor, group: torch.Tensor, rank: torch.Tensor, width: int, values: torch.Tensor, right: bool
) -> torch.Tensor:
    """Binary-search each pair's ``value`` in its anchor's sorted row with one batched ``searchsorted``.

    The per-pair values are scattered into an (anchors, width) matrix, width = most pairs of one anchor.
    """
    grid = torch.zeros(sorted_rows.shape[0], width, dtype=sorted_rows.dtype, device=sorted_rows.device)
    grid[group, rank] = values.to(sorted_rows.dtype)
    return torch.searchsorted(sorted_rows, grid, right=right)[group, rank]


def _select_sorted(D_neg, num_negatives, a, p, lower, upper, pick, fallback, generator, max_triplets) -> Triplets:
    """Region of every pair as a slice ``[lo, hi)`` of its anchor's ascending negative distances."""
    device = D_neg.device
    anchors, group = torch.unique_consecutive(a, return_inverse=True)
    sorted_vals, sorted_idx = (D_neg if anchors.numel() == D_neg.shape[0] else D_neg[anchors]).sort(dim=1)
    n_neg = num_negatives[a]
    rank, width = _rank_within_group(group, anchors.numel())
    if lower is None:
        lo = torch.zeros_like(a)
    else:
        lo = _searchsorted_per_group(sorted_vals, group, rank, width, lower, right=True)
    if upper is None:
        hi = n_neg
    else:
        hi = torch.minimum(_searchsorted_per_group(sorted_vals, group, rank, width, upper, right=False), n_neg)
    count = (hi - lo).clamp_min(0)
    if pick == "all":
        return _expand_slices(sorted_idx, group, a, p, lo, count, generator, max_triplets)
    if pick == "nearest":
        pos = lo
    elif pick == "farthest":
        pos = hi - 1
    else:  # random
        u = _uniform(a.numel(), _require(generator), device)
        pos = lo + torch.minimum((u * count.to(torch.float64)).long(), (count - 1).clamp_min(0))
    keep = count > 0
    if fallback is not None:
        use_fallback = (count == 0) & (n_neg > 0)
        pos = torch.where(use_fallback, torch.zeros_like(pos) if fallback == "nearest" else n_neg - 1, pos)
        keep = keep | use_fallback
    flat = group[keep] * sorted_idx.shape[1] + pos[keep]
    return Triplets(a[keep], p[keep], sorted_idx.take(flat))


def _expand_slices(sorted_idx, anchor_of_row, a, p, lo, count, generator, max_triplets) -> Triplets:
    """Every negative of every pair's slice, or a uniform subset of ``max_triplets`` of them: O(T) or O(max).

    Triplet t of pair i sits at flat position ``row_i·M + lo_i + (t − start_i)`` of ``sorted_idx``; the
    expansion is three ``repeat_interleave`` calls and one ``take`` (no 2-D fancy indexing, which is slow).
    """
    device = a.device
    total = int(count.sum().item())
    if total == 0:
        return Triplets(_empty(device), _empty(device), _empty(device))
    ends = torch.cumsum(count, 0)
    starts = ends - count
    row_base = anchor_of_row * sorted_idx.shape[1] + lo - starts
    if max_triplets is not None and total > max_triplets:
        ranks = uniform_subset(total, max_triplets, _require(generator), device)
        pair = torch.searchsorted(ends, ranks, right=True)
        return Triplets(a[pair], p[pair], sorted_idx.take(ranks + row_base[pair]))
    flat = torch.arange(total, device=device) + torch.repeat_interleave(row_base, count, output_size=total)
    return Triplets(
        torch.repeat_interleave(a, count, output_size=total),
        torch.repeat_interleave(p, count, output_size=total),
        sorted_idx.take(flat),
    )


def uniform_subset(total: int, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``size`` distinct integers drawn uniformly from ``range(total)``, sorted, without building ``range(total)``
    when ``size`` is small against it.

    Independent uniform draws are de-duplicated and topped up until ``size`` distinct values exist, then a
    uniform ``size``-subset of those is kept; the result is exchangeable, hence a uniform ``size``-subset.
    Expected O(size log size) time and O(size) memory for size ≤ total / 2; O(total) above that.
    """
    if size >= total:
        return torch.arange(total, device=device)
    if 2 * size > total:
        perm = torch.randperm(total, generator=generator, device=generator.device)[:size]
        return perm.sort().values.to(device)
    picked = torch.empty(0, dtype=torch.long, device=generator.device)
    while picked.numel() < size:
        need = size - picked.numel()
        draw = torch.randint(0, total, (need + need // 8 + 16,), generator=generator, device=generator.device)
        picked = torch.unique(torch.cat([picked, draw]))
    if picked.numel() > size:
        order = torch.randperm(picked.numel(), generator=generator, device=generator.device)[:size]
        picked = picked[order].sort().values
    return picked.to(device)
