"""Joint metric + classification loss (MassFace: triplet + 0.5·CosFace(s = 64, m = 0.25))."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from massface._checks import check_real
from massface._stats import LazyStats

__all__ = ["JointLoss"]


class JointLoss(LazyStats, nn.Module):
    """total = metric_weight · metric(embeddings, labels, indices) + head_weight · head.loss(embeddings, labels).

    Args:
        metric: any loss with PML's call ``loss(embeddings, labels, indices_tuple, ref_emb, ref_labels)``
            (``massface.losses.TripletLoss``, a PML loss, ``CenterLoss``), or None for a head alone.
        head: a classification part with ``.loss(embeddings, labels)`` (any massface head, ``PartialFC``),
            or None for the metric part alone.
        miner: optional miner ``miner(embeddings, labels, ref_emb, ref_labels) -> indices_tuple`` run when the
            caller passes no ``indices_tuple``; the mined tuples go to the metric part only.
    Follows PML's call itself, so it nests in PML's ``MultipleLosses``. After each call ``stats`` (and its older
    name ``parts``) gives the values ``{"metric", "classification", "total"}`` as floats (read lazily: no device
    sync unless logged). Cost: the sum of the parts' costs.
    """

    def __init__(self, metric: Callable[..., Tensor] | None, head: nn.Module | None, *,
                 metric_weight: float = 1.0, head_weight: float = 1.0,
                 miner: Callable[..., tuple[Tensor, ...]] | None = None) -> None:
        super().__init__()
        if metric is None and head is None:
            raise ValueError("JointLoss: give a metric loss, a head, or both; got neither")
        if head is not None and not callable(getattr(head, "loss", None)):
            raise TypeError(f"JointLoss: head must have a .loss(embeddings, labels) method; got {type(head).__name__}")
        if metric is not None and not callable(metric):
            raise TypeError(f"JointLoss: metric must be callable like a PML loss; got {type(metric).__name__}")
        if metric is None and miner is not None:
            raise ValueError("JointLoss: a miner needs a metric loss to feed")
        metric_weight = check_real("metric_weight", metric_weight, "JointLoss", low=0.0)
        head_weight = check_real("head_weight", head_weight, "JointLoss", low=0.0)
        self.metric, self.head, self.miner = metric, head, miner
        self.metric_weight, self.head_weight = metric_weight, head_weight

    @property
    def parts(self) -> dict[str, float]:
        """Values of the last call: unweighted ``metric`` and ``classification`` parts and the weighted ``total``
        (the same as :attr:`stats`)."""
        return self.stats

    def extra_repr(self) -> str:
        return f"metric_weight={self.metric_weight}, head_weight={self.head_weight}"

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...] | None = None,
                ref_emb: Tensor | None = None, ref_labels: Tensor | None = None) -> Tensor:
        """``metric_weight · metric + head_weight · head.loss``, a scalar tensor."""
        total = embeddings.new_zeros((), dtype=torch.promote_types(embeddings.dtype, torch.float32))
        parts: dict[str, Tensor] = {}
        if self.metric is not None:
            if indices_tuple is None and self.miner is not None:
                indices_tuple = self.miner(embeddings, labels, ref_emb, ref_labels)
            refs = {} if ref_emb is None and ref_labels is None else {"ref_emb": ref_emb, "ref_labels": ref_labels}
            metric = self.metric(embeddings, labels, indices_tuple, **refs)
            parts["metric"] = metric.detach()
            total = total + self.metric_weight * metric
        if self.head is not None:
            classification = self.head.loss(embeddings, labels)
            parts["classification"] = classification.detach()
            total = total + self.head_weight * classification
        parts["total"] = total.detach()
        self._record_stats(**parts)
        return total
