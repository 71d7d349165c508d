"""Triplet-based metric losses speaking pytorch-metric-learning's call contract: :class:`TripletLoss` (hard
hinge or soft margin) and :class:`MarginLoss` (Wu et al.'s margin-based loss with a learnable boundary β), one
forward mechanism (indices or mining, distances per triplet) with a per-triplet loss hook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import BaseMetricLossFunction

from massface._checks import check_real
from massface._stats import LazyStats
from massface.distances import DistanceLike, compute_dtype, is_same_tensor, resolve_distance
from massface.losses._numerics import connected_zero
from massface.mining.miners import DEFAULT_MARGIN, BatchAllMiner, TripletMiner, check_batch

__all__ = ["TripletLoss", "MarginLoss", "pairs_to_triplets"]

Reduction = Literal["mean", "nonzero_mean", "sum"]
_REDUCTIONS = ("mean", "nonzero_mean", "sum")


def pairs_to_triplets(
    a1: torch.Tensor, p: torch.Tensor, a2: torch.Tensor, n: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join positive pairs (a1, p) and negative pairs (a2, n) on their anchor: every (a, p, n) with
    a = a1_i = a2_j.

    Sort-based join: O((P + Q) log Q + T) time and O(P + Q + T) memory for P positive pairs, Q negative
    pairs and T triplets — PML's ``convert_to_triplets`` builds a dense P×Q equality matrix instead.
    """
    device = a1.device
    order = torch.argsort(a2, stable=True)
    a2_sorted, n_sorted = a2[order], n[order]
    lo = torch.searchsorted(a2_sorted, a1, right=False)
    count = torch.searchsorted(a2_sorted, a1, right=True) - lo
    total = int(count.sum().item())
    starts = torch.cumsum(count, 0) - count
    flat = torch.arange(total, device=device) + torch.repeat_interleave(lo - starts, count, output_size=total)
    return (
        torch.repeat_interleave(a1, count, output_size=total),
        torch.repeat_interleave(p, count, output_size=total),
        n_sorted[flat],
    )


class TripletLoss(LazyStats, BaseMetricLossFunction):
    """ℓ(a, p, n) = [d(a, p) − d(a, n) + m]_+ (FaceNet; MassFace), or softplus(d(a, p) − d(a, n) + m) with
    ``soft=True`` (Hermans et al.'s soft margin is ``TripletLoss(margin=0.0, soft=True)``).

    For a similarity (``distance="cosine"``) d = −s, i.e. ℓ = [s(a, n) − s(a, p) + m]_+ as in PML.

    Call: ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)`` → scalar tensor.
    ``indices_tuple`` may be triplets ``(a, p, n)`` from any miner (ours or PML's) or pairs
    ``(a1, p, a2, n)``, joined on the anchor without a dense mask (:func:`pairs_to_triplets`). Without
    indices the loss mines with ``miner`` (default: :class:`~massface.mining.BatchAllMiner` with the same
    margin and distance, i.e. every margin-violating triplet of the batch). Anchors index ``embeddings``;
    positives and negatives index ``ref_emb`` (``embeddings`` when not given).

    Reductions: ``"mean"`` over the T triplets, ``"nonzero_mean"`` over those with ℓ > 0 (Hermans'
    BA≠0; PML's AvgNonZeroReducer), ``"sum"``. No triplet gives a zero loss that is still connected to the
    graph (backward works and yields zero gradients; MassFace crashed here). That zero is exact for any
    input — float16 embeddings whose sum overflows, even NaN / ±inf embeddings — because it reads no element
    (:func:`~massface.losses._numerics.connected_zero`); its gradient is exactly 0 everywhere.

    Dtypes: float16 / bfloat16 / float32 / float64 embeddings, and a reference of another dtype, are scored in
    float32 or wider (float64 stays float64); the loss has that dtype. Non-finite embeddings are not rejected:
    the default miner leaves their rows out of every triplet; triplets given in ``indices_tuple`` that touch
    them give a non-finite loss (the trainer skips such steps).

    After a call, ``stats`` (and its older name ``parts``) gives floats for logging: ``loss``, ``num_triplets``,
    ``active_fraction`` — recorded as detached tensors and converted on access, so an unlogged step does not
    synchronise the device for them. The default margin is 0.25 (MassFace's), as for every miner.

    Cost: the distances come either from the (N, M) matrix (O(N·M·D)) or, when there are few triplets
    against a large reference (T·D < N·M/2, e.g. batch-hard against a memory bank), per triplet (O(T·D));
    then O(T) for the loss.
    """

    def __init__(
        self,
        margin: float = DEFAULT_MARGIN,
        soft: bool = False,
        distance: DistanceLike = "squared_euclidean",
        normalize: bool = True,
        reduction: Reduction = "mean",
        miner: TripletMiner | None = None,
        **kwargs: Any,
    ) -> None:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
        margin = check_real("margin", margin, "TripletLoss", low=0.0, note="in units of the distance")
        super().__init__(distance=resolve_distance(distance, normalize), **kwargs)
        self.margin = margin
        self.soft = bool(soft)
        self.reduction = reduction
        self.miner = miner if miner is not None else BatchAllMiner(margin=self.margin, distance=self.distance)
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: Any = None,
        indices_tuple: Sequence[torch.Tensor] | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: Any = None,
    ) -> torch.Tensor:
        """The reduced triplet loss of the batch (a scalar tensor); see the class docstring."""
        if indices_tuple is None or labels is not None:
            labels = check_batch(embeddings, labels)
        elif embeddings.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {tuple(embeddings.shape)}")
        if ref_emb is None:
            ref_emb, ref_labels = embeddings, labels
        elif ref_emb.ndim != 2 or ref_emb.shape[1] != embeddings.shape[1]:
            raise ValueError(f"ref_emb must be 2-D with {embeddings.shape[1]} columns, got {tuple(ref_emb.shape)}")
        if indices_tuple is None:
            indices_tuple = self.miner(embeddings, labels, ref_emb, ref_labels)
        a, p, n = self._triplets(indices_tuple, embeddings.shape[0], ref_emb.shape[0], embeddings.device)
        if a.numel() == 0:
            self._record_stats(loss=0.0, num_triplets=0, active_fraction=0.0)
            zero = connected_zero(embeddings) if ref_emb is embeddings else connected_zero(embeddings, ref_emb)
            return self._empty_loss(zero)
        d_ap, d_an = self._triplet_distances(embeddings, ref_emb, a, p, n)
        return self._reduced_loss(d_ap, d_an, labels[a] if labels is not None else None)

    def _empty_loss(self, zero: torch.Tensor) -> torch.Tensor:
        """The loss when there is no triplet: the connected zero (a subclass may add a regulariser)."""
        return zero

    def _reduced_loss(self, d_ap: torch.Tensor, d_an: torch.Tensor, anchor_labels: torch.Tensor | None) -> torch.Tensor:
        """The reduced loss of T triplets with dissimilarities ``d_ap`` / ``d_an`` (the per-triplet hook)."""
        x = d_ap - d_an + self.margin
        losses = F.softplus(x) if self.soft else F.relu(x)
        active = losses > 0
        if self.reduction == "sum":
            loss = losses.sum()
        elif self.reduction == "mean":
            loss = losses.mean()
        else:
            loss = losses.sum() / active.sum().clamp_min(1)
        self._record_stats(loss=loss.detach(), num_triplets=d_ap.numel(), active_fraction=active.float().mean())
        return loss

    @property
    def parts(self) -> dict[str, float]:
        """The same as :attr:`stats` (the name the trainer logs under)."""
        return self.stats

    @property
    def counts(self) -> tuple[float, float]:
        """(triplets, triplets with ℓ > 0) of the last call: the denominators of ``"mean"`` and
        ``"nonzero_mean"`` (what rank-sharded mining all-reduces)."""
        stats = self.stats
        return stats.get("num_triplets", 0.0), stats.get("num_triplets", 0.0) * stats.get("active_fraction", 0.0)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _triplets(indices_tuple, n_query: int, n_ref: int, device: torch.device):
        if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
            raise ValueError("indices_tuple must be (a, p, n) triplets or (a1, p, a2, n) pairs")
        idx = [torch.as_tensor(t, device=device) for t in indices_tuple]
        for t in idx:
            if t.ndim != 1 or t.is_floating_point() or t.dtype == torch.bool:
                raise ValueError("indices_tuple must hold 1-D integer index tensors")
        idx = [t.long() for t in idx]
        if len(idx) == 4:
            if idx[0].numel() != idx[1].numel() or idx[2].numel() != idx[3].numel():
                raise ValueError("pair indices (a1, p, a2, n) must have len(a1) == len(p) and len(a2) == len(n)")
            idx = list(pairs_to_triplets(*idx))
        a, p, n = idx
        if not (a.numel() == p.numel() == n.numel()):
            raise ValueError(f"triplet index lengths differ: {a.numel()}, {p.numel()}, {n.numel()}")
        for name, t, bound in (("anchor", a, n_query), ("positive", p, n_ref), ("negative", n, n_ref)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= bound):
                raise ValueError(f"{name} indices must lie in [0, {bound}), got [{int(t.min())}, {int(t.max())}]")
        return a, p, n

    def _triplet_distances(self, embeddings, ref_emb, a, p, n):
        """d_ap and d_an as dissimilarities (similarities negated), in float32 or wider (autocast is
        suspended here: squared distances of unit vectors lose too much in fp16 / bf16)."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return self._triplet_distances_fp32(embeddings, ref_emb, a, p, n)

    def _triplet_distances_fp32(self, embeddings, ref_emb, a, p, n):
        dist = self.distance
        dtype = compute_dtype(embeddings.dtype, ref_emb.dtype)
        if embeddings.dtype != dtype or ref_emb.dtype != dtype:
            same_ref = is_same_tensor(embeddings, ref_emb)
            embeddings = embeddings.to(dtype)
            ref_emb = embeddings if same_ref else ref_emb.to(dtype)
        n_query, n_ref, dim = embeddings.shape[0], ref_emb.shape[0], embeddings.shape[1]
        if 2 * a.numel() * dim < n_query * n_ref:
            q = dist.maybe_normalize(embeddings[a])
            d_ap = dist.pairwise_distance(q, dist.maybe_normalize(ref_emb[p]))
            d_an = dist.pairwise_distance(q, dist.maybe_normalize(ref_emb[n]))
            if dist.power != 1:
                d_ap, d_an = d_ap**dist.power, d_an**dist.power
        else:
            mat = dist(embeddings, None if is_same_tensor(embeddings, ref_emb) else ref_emb)
            row = a * n_ref
            d_ap, d_an = mat.reshape(-1)[row + p], mat.reshape(-1)[row + n]
        if dist.is_inverted:
            d_ap, d_an = -d_ap, -d_an
        return d_ap, d_an


class MarginLoss(TripletLoss):
    """Margin-based loss (Wu et al., ICCV 2017, "Sampling matters in deep embedding learning"), PML's
    ``MarginLoss``: for each triplet,

        ℓ = [α + d(a, p) − β_a]_+  +  [α + β_a − d(a, n)]_+ ,

    summed over the T triplets and divided by the number of non-zero terms (positive and negative terms
    counted apart), plus ν·β (``learn_beta``: the boundary is learnt and pulled down by ν). β_a is one
    global boundary, or with ``num_classes`` one per class (the anchor's). d is the Euclidean distance of the
    L2-normalised embeddings by default (the paper's). Without ``indices_tuple`` the triplets come from
    ``miner``, by default distance-weighted sampling (:class:`~massface.mining.DistanceWeightedMiner`, the
    paper's pairing) -- any massface or PML miner works. Equal to PML's ``MarginLoss`` on the same triplets
    (tests). Cost: O(T·D) for the distances, O(T) for the loss.

    Args:
        margin: α (0.2 in the paper).
        beta: initial β (1.2).
        learn_beta: β is an ``nn.Parameter`` (give it an optimizer group; the trainer does).
        nu: weight of the β regulariser (0: none; only with ``learn_beta``).
        num_classes: one β per class (labels must then lie in [0, num_classes)).
        distance: ``"euclidean"`` (default) or ``"squared_euclidean"``; similarities are refused (β is a
            distance).
    """

    def __init__(self, margin: float = 0.2, beta: float = 1.2, *, learn_beta: bool = False, nu: float = 0.0,
                 num_classes: int | None = None, distance: DistanceLike = "euclidean", normalize: bool = True,
                 miner: TripletMiner | None = None, **kwargs: Any) -> None:
        from massface._checks import check_int
        from massface.mining.miners import DistanceWeightedMiner

        resolved = resolve_distance(distance, normalize)
        if resolved.is_inverted:
            raise ValueError("MarginLoss: β is a distance boundary; use distance='euclidean' or "
                             f"'squared_euclidean', not the similarity {type(resolved).__name__}")
        if miner is None:
            miner = DistanceWeightedMiner(distance=resolved)
        super().__init__(margin=margin, distance=resolved, miner=miner, **kwargs)
        beta = check_real("beta", beta, "MarginLoss", note="the initial class boundary")
        self.nu = check_real("nu", nu, "MarginLoss", low=0.0)
        self.learn_beta = bool(learn_beta)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, "MarginLoss")
        init = torch.full((self.num_classes or 1,), float(beta))
        if self.learn_beta:
            self.beta = torch.nn.Parameter(init)
        else:
            self.register_buffer("beta", init)

    def extra_repr(self) -> str:
        return (f"margin={self.margin}, beta={'learnt' if self.learn_beta else float(self.beta[0])}, nu={self.nu}, "
                f"num_classes={self.num_classes}, distance={type(self.distance).__name__}")

    def _boundary(self, anchor_labels: torch.Tensor | None, count: int) -> torch.Tensor:
        if self.num_classes is None:
            return self.beta.expand(count)
        if anchor_labels is None:
            raise ValueError("MarginLoss(num_classes=...) needs labels (the per-class β of each anchor)")
        if anchor_labels.numel() and (int(anchor_labels.min()) < 0 or int(anchor_labels.max()) >= self.num_classes):
            raise ValueError(f"MarginLoss: labels must lie in [0, {self.num_classes}) for per-class β; got "
                             f"[{int(anchor_labels.min())}, {int(anchor_labels.max())}]")
        return self.beta[anchor_labels]

    def _empty_loss(self, zero: torch.Tensor) -> torch.Tensor:
        if self.learn_beta and self.nu and self.num_classes is None:
            return zero + self.nu * self.beta.sum()
        return zero + 0.0 * self.beta.sum() if self.learn_beta else zero

    def _reduced_loss(self, d_ap: torch.Tensor, d_an: torch.Tensor, anchor_labels: torch.Tensor | None) -> torch.Tensor:
        beta = self._boundary(anchor_labels, d_ap.numel()).to(d_ap.dtype)
        pos = F.relu(d_ap - beta + self.margin)
        neg = F.relu(beta - d_an + self.margin)
        divisor = (pos > 0).sum() + (neg > 0).sum()
        total = (pos + neg).sum()
        loss = total / divisor if int(divisor) > 0 else total * 0.0
        if self.learn_beta and self.nu:
            if self.num_classes is None:
                loss = loss + self.nu * self.beta.sum()
            elif int(divisor) > 0:
                loss = loss + (self.nu * beta).sum() / divisor
        active = (pos + neg) > 0
        self._record_stats(loss=loss.detach(), num_triplets=d_ap.numel(), active_fraction=active.float().mean())
        return loss
