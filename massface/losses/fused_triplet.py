"""Batch-all and semi-hard triplet losses without a triplet list: :class:`FusedTripletLoss`.

Both losses are sums over (a, p, n) of ℓ(x), x = d_ap + m − d_an, inside a band of d_an:

    batch-all:  T_ap = {n : d_an < d_ap + m}                 (``BatchAllMiner(m)``)
    semi-hard:  T_ap = {n : d_ap < d_an < d_ap + m}          (``SemiHardMiner(m)``)
    L = Σ_(a,p) Σ_(n ∈ T_ap) ℓ(x_apn),   ℓ = hinge (x) or softplus

The gradient with respect to the distance matrix is G[a, p] = Σ_n ℓ'(x_apn) and G[a, n] = −Σ_p ℓ'(x_apn).
The anchors' positives are laid out in K_max slots (an (N, K_max) matrix of d_ap); rows are swept in blocks of
about ``block_elements`` entries, and for each slot the block's x = d_ap + m − d_an is formed once, clamped,
summed (the value), turned into ℓ' (its sign) and subtracted into G — a handful of passes over a block that stays
in cache, no boolean casts, no row gathers. The loss is returned through a one-line autograd Function whose value
is Σ ℓ and whose gradient with respect to D is G, so autograd never stores per-triplet tensors. Cost for N
anchors, M reference rows and K_max positives per anchor (K − 1 for a P×K batch): O(N·M·D) for the distance
matrix plus O(N·M·K_max) for the bands — B²·(K − 1) for a batch of B — and O(N·M) memory, against O(T) memory (24
bytes per triplet, T up to N·M·K_max) and gathers over the list for mining and then scoring the triplets. The
statistics a log needs beyond counts and means (``hard_fraction``, the d_ap / d_an percentiles) are computed from
the kept sweep when ``stats`` is read: a step that does not log pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import BaseMetricLossFunction
from torch.autograd.function import once_differentiable

from massface._checks import check_int, check_real
from massface._stats import LazyStats
from massface.distances import DistanceLike, compute_dtype, dissimilarity_matrix, is_same_tensor, resolve_distance
from massface.losses._numerics import connected_zero
from massface.mining.miners import _PERCENTILES, DEFAULT_MARGIN, check_batch

__all__ = ["FusedTripletLoss"]

Strategy = Literal["all", "semihard"]
_REDUCTIONS = ("mean", "nonzero_mean", "sum")


def _finite_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with its non-finite rows zeroed (so that no NaN reaches the matrix product's gradient) and the
    mask of the finite rows."""
    ok = torch.isfinite(x).all(dim=1)
    return (x if bool(ok.all()) else torch.where(ok.unsqueeze(1), x, torch.zeros_like(x))), ok


class _WithGradient(torch.autograd.Function):
    """``value`` (a detached scalar) as a function of ``D`` whose gradient is ``G``: ``out = value``,
    ``∂out/∂D = G``. One multiplication in the backward pass, nothing stored but G."""

    @staticmethod
    def forward(ctx: Any, D: torch.Tensor, value: torch.Tensor, G: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(G)
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (G,) = ctx.saved_tensors
        return G * grad, None, None


def _weighted_quantiles(values: torch.Tensor, weights: torch.Tensor, levels: Sequence[float]) -> list[float]:
    """``torch.quantile(v, levels)`` (linear interpolation) of the list v in which ``values[i]`` appears
    ``weights[i]`` times, without building it: a sort of the distinct entries and a search in the cumulative
    weights. O(V log V) for V entries."""
    order = values.argsort()
    v, c = values[order], weights[order].long().cumsum(0)
    pos = torch.tensor(levels, dtype=torch.float64, device=v.device) * float(int(c[-1]) - 1)
    lo, hi = pos.floor().long(), pos.ceil().long()
    below, above = v[torch.searchsorted(c, lo, right=True)], v[torch.searchsorted(c, hi, right=True)]
    return torch.lerp(below, above, (pos - lo).to(v.dtype)).tolist()


@dataclass
class _Bands:
    """The band sweep of one call (module docstring): the value Σ ℓ and its gradient G = ∂(Σ ℓ)/∂D, and what
    the statistics need — d_ap and |T_ap| per positive slot (an (N, K_max) layout, −inf / 0 in empty slots),
    the negative distances, and per (a, n) the number of positives p with n ∈ T_ap."""

    value: torch.Tensor
    G: torch.Tensor
    total: int
    sum_ap: float
    sum_an: float
    d_ap: torch.Tensor
    counts: torch.Tensor
    d_neg: torch.Tensor
    neg_counts: torch.Tensor
    strategy: str

    @classmethod
    def compute(cls, D: torch.Tensor, d_neg: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, margin: float,
                strategy: str, soft: bool, block_elements: int) -> _Bands:
        """Sweep the bands. ``D``: (N, M) detached dissimilarities; ``d_neg``: D with +inf off the negatives;
        ``(rows, cols)``: the positive pairs in row-major order. Rows are taken ``block_elements`` entries at a
        time (a block stays in cache while its K_max positive slots pass over it): O(N·M·K_max) time,
        O(N·M) memory."""
        N, M = D.shape
        inf = float("inf")
        per_row = torch.bincount(rows, minlength=N)
        k_max = int(per_row.max()) if rows.numel() else 0
        slot = torch.arange(rows.numel(), device=D.device) - (torch.cumsum(per_row, 0) - per_row)[rows]
        d_ap = D.new_full((N, k_max), -inf)  # an empty slot: upper = -inf, no band
        d_ap[rows, slot] = D[rows, cols]
        upper = d_ap + margin
        G = torch.zeros_like(D)
        counts, values = D.new_zeros(N, k_max), D.new_zeros(N, k_max)
        slopes, hinges = (D.new_zeros(N, k_max), D.new_zeros(N, k_max)) if soft else (counts, values)
        neg_counts = torch.zeros_like(D) if soft else G  # hinge: the count of (a, n) is -G[a, n]
        step = max(1, block_elements // max(M, 1))
        x = D.new_empty(min(step, N), M)
        mask = torch.empty(x.shape, dtype=torch.bool, device=D.device)
        for s in range(0, N, step):
            e = min(s + step, N)
            dn, g, xb, mb = d_neg[s:e], G[s:e], x[: e - s], mask[: e - s]
            for j in range(k_max):
                torch.sub(upper[s:e, j : j + 1], dn, out=xb)  # d_ap + m - d_an: > 0 exactly when d_an < d_ap + m
                if strategy == "semihard":
                    torch.le(dn, d_ap[s:e, j : j + 1], out=mb)
                    xb.masked_fill_(mb, -inf)  # semi-hard: d_an > d_ap too
                if soft:
                    torch.gt(xb, 0, out=mb)
                    counts[s:e, j] = mb.sum(1)
                    neg_counts[s:e] += mb
                    values[s:e, j] = torch.where(mb, F.softplus(xb), 0.0).sum(1)
                    slope = torch.sigmoid(xb).masked_fill_(~mb, 0.0)
                    slopes[s:e, j] = slope.sum(1)
                    g -= slope
                    hinges[s:e, j] = xb.clamp_min_(0.0).sum(1)
                else:
                    xb.clamp_min_(0.0)
                    values[s:e, j] = xb.sum(1)
                    counts[s:e, j] = xb.sign_().sum(1)  # 1 inside the band: ℓ' = 1
                    g -= xb
        G.index_put_((rows, cols), slopes[rows, slot], accumulate=True)
        valid = torch.isfinite(d_ap)
        c64 = counts.double()
        total = int(c64.sum())
        sum_ap = float((c64 * d_ap.double().where(valid, 0.0)).sum())
        sum_an = float((c64 * upper.double().where(valid, 0.0)).sum() - hinges.double().sum())  # Σ d_an
        return cls(values.sum(), G, total, sum_ap, sum_an, d_ap, counts, d_neg, neg_counts, strategy)

    def lazy_stats(self, sign: float, block_elements: int) -> dict[str, float]:
        """``hard_fraction`` (d_an < d_ap: O(N·M·K_max)) and the 10/50/90th percentiles of d_ap and d_an over
        the triplets (as ``torch.quantile`` of the triplet list would give them: O(V log V), V entries)."""
        N, M = self.d_neg.shape
        hard = 0
        if self.strategy == "all":  # semi-hard negatives are never closer than the positive
            step = max(1, block_elements // max(M, 1))
            for s in range(0, N, step):
                dn = self.d_neg[s : s + step].unsqueeze(1)
                hard += int((dn < self.d_ap[s : s + step].unsqueeze(2)).sum())
        out = {"hard_fraction": hard / self.total}
        neg_w = -self.neg_counts if self.neg_counts is self.G else self.neg_counts
        picked = neg_w > 0
        for what, values, weights in (("d_ap", self.d_ap[self.counts > 0], self.counts[self.counts > 0]),
                                      ("d_an", self.d_neg[picked], neg_w[picked])):
            levels = [q / 100 for q in _PERCENTILES]
            for q, value in zip(_PERCENTILES, _weighted_quantiles(sign * values, weights, levels)):
                out[f"{what}_p{q}"] = value
        return out


class FusedTripletLoss(LazyStats, BaseMetricLossFunction):
    """``TripletLoss(margin, soft, distance, reduction)`` on the triplets of ``BatchAllMiner(margin)``
    (``strategy="all"``) or ``SemiHardMiner(margin)`` (``strategy="semihard"``), computed without listing them
    (see the module docstring for the formula and the cost); same value, same gradient.

    Call (PML's contract): ``loss(embeddings, labels, ref_emb=None, ref_labels=None)`` → scalar tensor. Anchors
    are the rows of ``embeddings``, positives and negatives the rows of ``ref_emb`` (the batch itself when not
    given: then (i, i) is never a positive). Rows with non-finite values take part in no triplet.
    Reductions: ``"mean"`` over the T triplets, ``"nonzero_mean"`` over those with a non-zero loss, ``"sum"``.
    No triplet gives a zero loss still connected to the graph.

    After a call, ``stats`` gives the miner's and the loss's statistics: ``loss``, ``num_triplets``,
    ``active_fraction`` (share of triplets with ℓ > 0), ``hard_fraction`` (d_an < d_ap), ``mean_d_ap`` and
    ``mean_d_an`` over the triplets and their 10 / 50 / 90th percentiles ``d_ap_p10`` ... ``d_an_p90`` (similarities
    for ``distance="cosine"``, exactly as the miners report them; the last two kinds computed on first access).
    The sweep's tensors (O(N·M)) are kept for that until the next call or the first read of ``stats``.
    ``block_elements``: entries per row block of the sweep (a cache-sized block; the result does not depend on it).
    """

    def __init__(
        self,
        strategy: Strategy = "all",
        margin: float = DEFAULT_MARGIN,
        distance: DistanceLike = "squared_euclidean",
        normalize: bool = True,
        reduction: str = "mean",
        soft: bool = False,
        block_elements: int = 1 << 16,
        **kwargs: Any,
    ) -> None:
        if strategy not in ("all", "semihard"):
            raise ValueError(f"FusedTripletLoss: strategy={strategy!r} is not 'all' or 'semihard'")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"FusedTripletLoss: reduction={reduction!r} is not one of {_REDUCTIONS}")
        margin = check_real("margin", margin, "FusedTripletLoss", low=0.0, note="in units of the distance")
        super().__init__(distance=resolve_distance(distance, normalize), **kwargs)
        self.strategy = strategy
        self.margin = margin
        self.reduction = reduction
        self.soft = bool(soft)
        self.block_elements = check_int("block_elements", block_elements, "FusedTripletLoss")
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)

    def forward(  # type: ignore[override]
        self,
        embeddings: torch.Tensor,
        labels: Any,
        indices_tuple: None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: Any = None,
        *,
        self_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reduced loss of every triplet the strategy selects in the batch (a scalar tensor).
        ``self_index`` (keyword, as for the miners): for each anchor the row of ``ref_emb`` holding the anchor
        itself (−1: none), never its positive -- e.g. its row in the batch gathered from all ranks."""
        if indices_tuple is not None:
            raise ValueError("FusedTripletLoss mines its own triplets; use TripletLoss for given indices_tuple")
        labels = check_batch(embeddings, labels)
        self._bands = None  # the previous call's sweep, kept for its lazy statistics, is released first
        same_ref = ref_emb is None or is_same_tensor(embeddings, ref_emb)
        if ref_emb is None:
            if ref_labels is not None:
                raise ValueError("ref_labels given without ref_emb")
            ref_emb, ref_labels = embeddings, labels
        else:
            if ref_emb.ndim != 2 or ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(f"ref_emb must be 2-D with {embeddings.shape[1]} columns, got {tuple(ref_emb.shape)}")
            ref_labels = check_batch(ref_emb, ref_labels, name="ref_emb").to(embeddings.device)
        dtype = compute_dtype(embeddings.dtype, ref_emb.dtype)
        query, q_ok = _finite_rows(embeddings.to(dtype))
        ref, r_ok = (query, q_ok) if same_ref else _finite_rows(ref_emb.to(dtype))
        D = dissimilarity_matrix(self.distance, query, ref)
        D_det = D.detach()
        # one reduction decides that everything is finite (a finite sum has finite terms); else the full mask
        all_finite = bool(q_ok.all()) and bool(r_ok.all()) and bool(torch.isfinite(D_det.sum()))
        finite = None if all_finite else torch.isfinite(D_det) & q_ok.unsqueeze(1) & r_ok.unsqueeze(0)
        same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)
        # d_an with +inf wherever n is no negative of a (same identity, non-finite): never inside a band
        d_neg = D_det.masked_fill(same if finite is None else same | ~finite, float("inf"))
        positive = same if finite is None else same & finite
        if self_index is not None:
            own = torch.as_tensor(self_index, device=D.device).long()
            if own.shape != (D.shape[0],) or (own.numel() and int(own.max()) >= D.shape[1]):
                raise ValueError(f"self_index must hold one row of ref_emb (< {D.shape[1]}) or -1 per anchor, "
                                 f"got shape {tuple(own.shape)}")
            rows = (own >= 0).nonzero(as_tuple=True)[0]
            positive[rows, own[rows]] = False
        elif same_ref:
            positive.fill_diagonal_(False)
        rows, cols = positive.nonzero(as_tuple=True)
        bands = _Bands.compute(D_det, d_neg, rows, cols, self.margin, self.strategy, self.soft, self.block_elements)
        total = bands.total
        if total == 0:
            nan = float("nan")
            self._record_stats(loss=0.0, num_triplets=0, active_fraction=0.0, mean_d_ap=nan, mean_d_an=nan,
                               hard_fraction=0.0, **{f"{w}_p{q}": nan for w in ("d_ap", "d_an") for q in _PERCENTILES})
            return connected_zero(embeddings) if same_ref else connected_zero(embeddings, ref_emb)
        # the exact value with the exact gradient G = dL/dD attached: L is piecewise linear in D for the hinge,
        # and G holds the softplus derivatives for the soft margin; no triplet list, no autograd graph over it
        losses_sum = _WithGradient.apply(D, bands.value, bands.G)
        # "mean" and "nonzero_mean" agree: inside a band every hinge is > 0, and softplus always is
        loss = losses_sum if self.reduction == "sum" else losses_sum / total
        sign = -1.0 if self.distance.is_inverted else 1.0  # the distance itself (similarity for cosine)
        self._record_stats(loss=loss.detach(), num_triplets=total, active_fraction=1.0,
                           mean_d_ap=sign * bands.sum_ap / total, mean_d_an=sign * bands.sum_an / total)
        self._bands, self._sign = bands, sign
        return loss

    @property
    def stats(self) -> dict[str, float]:
        """The last call's statistics (see the class docstring); ``hard_fraction`` and the percentiles are
        computed here, on access, from the bands the call kept (O(N·M·K) and a sort of the selected entries)."""
        out = super().stats
        bands = getattr(self, "_bands", None)
        if bands is not None:
            self._recorded_stats.update(bands.lazy_stats(self._sign, self.block_elements))
            self._bands = None  # computed once; the sweep's tensors are released
            out = super().stats
        return out

    @property
    def counts(self) -> tuple[float, float]:
        """(triplets, triplets with ℓ > 0) of the last call — equal here — without computing the lazy statistics:
        the denominators of the reductions (what rank-sharded mining all-reduces)."""
        total = float(getattr(self, "_recorded_stats", {}).get("num_triplets", 0))
        return total, total

    @property
    def parts(self) -> dict[str, float]:
        """The same as :attr:`stats` (the name the trainer logs under)."""
        return self.stats

    def extra_repr(self) -> str:
        return (f"strategy={self.strategy!r}, margin={self.margin}, reduction={self.reduction!r}, "
                f"soft={self.soft}")
