"""Batch-all and semi-hard triplet losses without a triplet list: :class:`FusedTripletLoss`.

Both losses are sums over (a, p, n) of ℓ(x), x = d_ap + m − d_an, inside a band of d_an:

    batch-all:  T_ap = {n : d_an < d_ap + m}                 (``BatchAllMiner(m)``)
    semi-hard:  T_ap = {n : d_ap < d_an < d_ap + m}          (``SemiHardMiner(m)``)
    L = Σ_(a,p) Σ_(n ∈ T_ap) ℓ(x_apn),   ℓ = hinge (x) or softplus

The gradient with respect to the distance matrix is G[a, p] = Σ_n ℓ'(x_apn) and G[a, n] = −Σ_p ℓ'(x_apn).
Each positive pair (a, p) is scored against its anchor's row of negatives, a chunk of pairs at a time, adding
into the value and into G; the loss is then returned as ``value + Σ G·D − stop_grad(Σ G·D)``, which has the
exact value and the exact gradient G (so autograd never stores per-triplet tensors). Cost for N anchors, M
reference rows and S positive pairs (S = N·(K − 1) for a P×K batch): O(N·M·D) for the distance matrix plus
O(S·M) for the bands — B²·(K − 1) for a batch of B — and O(N·M) memory plus one chunk, against O(T) memory (24
bytes per triplet, T up to S·M) and gathers over the list for mining and then scoring the triplets.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import BaseMetricLossFunction

from massface._checks import check_real
from massface._stats import LazyStats
from massface.distances import DistanceLike, compute_dtype, dissimilarity_matrix, is_same_tensor, resolve_distance
from massface.losses._numerics import connected_zero
from massface.mining.miners import DEFAULT_MARGIN, check_batch

__all__ = ["FusedTripletLoss"]

Strategy = Literal["all", "semihard"]
_REDUCTIONS = ("mean", "nonzero_mean", "sum")


def _finite_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` with its non-finite rows zeroed (so that no NaN reaches the matrix product's gradient) and the
    mask of the finite rows."""
    ok = torch.isfinite(x).all(dim=1)
    return (x if bool(ok.all()) else torch.where(ok.unsqueeze(1), x, torch.zeros_like(x))), ok


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
    ``mean_d_an`` over the triplets (similarities for ``distance="cosine"``, as the miners report them).
    """

    def __init__(
        self,
        strategy: Strategy = "all",
        margin: float = DEFAULT_MARGIN,
        distance: DistanceLike = "squared_euclidean",
        normalize: bool = True,
        reduction: str = "mean",
        soft: bool = False,
        chunk_elements: int = 1 << 20,
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
        self.chunk_elements = int(chunk_elements)
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
        finite = torch.isfinite(D_det) & q_ok.unsqueeze(1) & r_ok.unsqueeze(0)
        same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)
        positive = same & finite
        if self_index is not None:
            own = torch.as_tensor(self_index, device=D.device).long()
            if own.shape != (D.shape[0],) or (own.numel() and int(own.max()) >= D.shape[1]):
                raise ValueError(f"self_index must hold one row of ref_emb (< {D.shape[1]}) or -1 per anchor, "
                                 f"got shape {tuple(own.shape)}")
            rows = (own >= 0).nonzero(as_tuple=True)[0]
            positive[rows, own[rows]] = False
        elif same_ref:
            positive.fill_diagonal_(False)
        negative = ~same & finite
        losses_sum, G, total, active, hard, sum_ap, sum_an = self._band_sums(D_det, positive, negative)
        if total == 0:
            nan = float("nan")
            self._record_stats(loss=0.0, num_triplets=0, active_fraction=0.0, mean_d_ap=nan, mean_d_an=nan,
                               hard_fraction=0.0)
            return connected_zero(embeddings) if same_ref else connected_zero(embeddings, ref_emb)
        # the exact value, with the exact gradient G = dL/dD attached (L is piecewise linear in D for the hinge,
        # and G holds the softplus derivatives for the soft margin): no triplet list and no autograd graph over it
        D_safe = D if bool(finite.all()) else torch.where(finite, D, torch.zeros_like(D))  # no inf / NaN in the gradient
        surrogate = (G * D_safe).sum()
        losses_sum = surrogate + (losses_sum - surrogate.detach())
        if self.reduction == "sum":
            loss = losses_sum
        elif self.reduction == "mean":
            loss = losses_sum / total
        else:
            loss = losses_sum / max(active, 1)
        with torch.no_grad():
            sign = -1.0 if self.distance.is_inverted else 1.0  # the distance itself (similarity for cosine)
            self._record_stats(loss=loss.detach(), num_triplets=total, active_fraction=active / total,
                               mean_d_ap=sign * sum_ap / total, mean_d_an=sign * sum_an / total,
                               hard_fraction=hard / total)
        return loss

    def _band_sums(self, D: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor):
        """Over every selected triplet: Σ ℓ, the gradient matrix G = ∂(Σ ℓ)/∂D (+ℓ' at (a, p), −ℓ' at (a, n)),
        the triplet count T, the count with ℓ > 0, the count with d_an < d_ap, Σ d_ap and Σ d_an. The positive pairs are taken in chunks of
        about ``chunk_elements`` entries of their anchors' rows: O(S·M) time, O(N·M + chunk) memory."""
        rows, cols = positive.nonzero(as_tuple=True)
        M = D.shape[1]
        D_neg = torch.where(negative, D, torch.full_like(D, float("inf")))  # +inf: never inside a band
        G = torch.zeros_like(D)
        value = D.new_zeros(())
        sum_ap, sum_an = D.new_zeros(()), D.new_zeros(())
        total = hard = 0
        step = max(1, self.chunk_elements // max(M, 1))
        for s in range(0, rows.numel(), step):
            r, c = rows[s : s + step], cols[s : s + step]
            d_ap = D[r, c].unsqueeze(1)
            upper = d_ap + self.margin
            d_an = D_neg[r]
            x = upper - d_an  # d_ap + m - d_an; -inf for non-negatives
            band = x > 0  # d_an < d_ap + m (for floats, u - d > 0 exactly when d < u)
            if self.strategy == "semihard":
                band &= d_an > d_ap
            if self.soft:
                loss = torch.where(band, F.softplus(x), 0.0)
                slope = torch.where(band, torch.sigmoid(x), 0.0)
            else:
                slope = band.to(D.dtype)
                loss = torch.where(band, x, 0.0) if self.strategy == "semihard" else F.relu(x)
            count = band.sum(dim=1)
            G.index_put_((r, c), slope.sum(dim=1), accumulate=True)
            G.index_add_(0, r, slope, alpha=-1)
            chunk_value = loss.sum()
            value = value + chunk_value
            n = int(count.sum())
            total += n
            hard += int((band & (d_an < d_ap)).sum()) if self.strategy == "all" else 0
            c64 = count.to(D.dtype)
            sum_ap = sum_ap + (c64 * d_ap.squeeze(1)).sum()
            hinge = chunk_value if not self.soft else (torch.where(band, x, 0.0)).sum()
            sum_an = sum_an + (c64 * upper.squeeze(1)).sum() - hinge  # Σ d_an = Σ (d_ap + m) - Σ (d_ap + m - d_an)
        active = total  # inside the band every hinge is > 0, and softplus always is
        return value, G, total, active, hard, sum_ap, sum_an

    @property
    def parts(self) -> dict[str, float]:
        """The same as :attr:`stats` (the name the trainer logs under)."""
        return self.stats

    def extra_repr(self) -> str:
        return (f"strategy={self.strategy!r}, margin={self.margin}, reduction={self.reduction!r}, "
                f"soft={self.soft}")
