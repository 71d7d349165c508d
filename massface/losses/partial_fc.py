"""Partial FC (An et al., "Partial FC: Training 10 Million Identities on a Single Machine", ICCVW 2021).

The class-centre matrix is sharded by class across the ranks of a process group (model parallel). Every rank
sees the embeddings of the whole global batch, keeps the positive classes of that batch that live in its shard,
samples negatives up to ``sample_rate`` of its shard, and the softmax cross-entropy is computed across ranks
without ever materialising the global logits. Without torch.distributed (or with one rank) the same code runs
on one process.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from massface import distributed as mfdist
from massface._checks import check_real
from massface.losses._numerics import connected_zero
from massface.losses.margin import MarginHead, feature_norms

__all__ = ["PartialFC"]


class _ScaleGrad(torch.autograd.Function):
    """Identity forward, gradient times ``factor``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class PartialFC(nn.Module):
    """Model-parallel, class-sampled margin softmax around any :class:`~massface.losses.margin.MarginHead`.

    ``PartialFC(ArcFace(512, 93431), sample_rate=0.1)`` takes over the head's class centres (the head keeps its
    margin, scale and running statistics, which stay identical on every rank) and shards them: rank r owns
    classes ``[class_start, class_start + num_local)``, ``num_local = C // W + (r < C % W)``.

    Forward (``loss = pfc(embeddings, labels)``, also ``pfc.loss(...)``; labels are global class ids, -1 =
    ignored): embeddings and labels of all ranks are gathered (per-rank batch sizes may differ); in training
    mode each rank keeps the positive classes of the global batch found in its shard plus uniformly sampled
    negatives up to ``ceil(sample_rate · num_local)`` (all positives are kept even if there are more); every
    rank computes the cosines to its sampled centres, the target cosines are summed across ranks so that every
    margin hook (CurricularFace's hard negatives, AdaFace/SphereFace state) sees the global batch, and the
    cross-entropy is ``mean_i [log Σ_ranks Σ_j exp(z_ij) − z_i,y_i]`` with an all-reduced max and sum — exact
    log-sum-exp, no probability clamp, hence no 69.0776 ceiling. Gradients are those of the global-batch mean
    loss; the embeddings' gradient is multiplied by the world size when ``scale_embedding_grad`` (default) so
    that DDP's gradient averaging over ranks gives the backbone the gradient of that same mean.

    Sampling is off in eval mode. Unsampled rows get a zero gradient (momentum and weight decay of the optimizer
    still move them, as in arcface_torch's PartialFC v2).

    ``state_dict()`` holds the full ``(C·k, d)`` matrix gathered from all ranks (a collective: call it on every
    rank) and ``load_state_dict`` accepts it under any world size, re-slicing this rank's shard.

    Cost per rank: time O(B_global·d·n_sample) for the logits plus O(B_global·d) communication; memory
    O(C/W·d) for the shard and O(B_global·n_sample) for the logits, n_sample = ceil(sample_rate·C/W).

    Embeddings of any float dtype (and a shard of another dtype) are scored as by the head: in float32 or wider,
    float64 staying float64; the loss has that dtype.
    """

    def __init__(self, head: MarginHead, sample_rate: float = 1.0, *, process_group: Any = None,
                 generator: torch.Generator | None = None, scale_embedding_grad: bool = True) -> None:
        super().__init__()
        if not isinstance(head, MarginHead):
            raise TypeError(f"PartialFC: head must be a normalised margin head (NormFace, CosFace, ArcFace, ...); "
                            f"got {type(head).__name__} (Softmax has a bias and is not supported)")
        sample_rate = check_real("sample_rate", sample_rate, "PartialFC", low=0.0, high=1.0, low_open=True,
                                 note="share of each shard's classes sampled per step")
        self.distributed = mfdist.is_distributed()
        self.group = process_group
        self.world_size = mfdist.world_size(process_group)
        self.rank = mfdist.rank(process_group)
        self.num_classes, self.k = head.num_classes, head.num_subcenters
        if self.num_classes < self.world_size:
            raise ValueError(f"PartialFC: {self.num_classes} classes cannot be sharded over {self.world_size} ranks")
        base, extra = divmod(self.num_classes, self.world_size)
        self.num_local = base + (self.rank < extra)
        self.class_start = self.rank * base + min(self.rank, extra)
        self.sample_rate = float(sample_rate)
        self.num_sample = max(1, math.ceil(self.sample_rate * self.num_local))
        self.generator = generator
        self.scale_embedding_grad = bool(scale_embedding_grad)
        full = head.release_weight()
        rows = slice(self.class_start * self.k, (self.class_start + self.num_local) * self.k)
        self.weight = nn.Parameter(full[rows].clone())
        self.head = head

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, sample_rate={self.sample_rate}, world_size={self.world_size}, "
                f"rank={self.rank}, class_start={self.class_start}, num_local={self.num_local}")

    # ---- sampling ----------------------------------------------------------------------------------------
    def sample(self, local_labels: Tensor) -> tuple[Tensor | None, Tensor]:
        """Choose the shard's classes for this step (O(num_local) for the random scores and top-k).

        ``local_labels`` are shard-local class ids (-1: not in this shard). Returns ``(index, remapped)``:
        the sorted shard-local class ids kept (None = all) and the labels as columns of the kept block.
        """
        if not self.training or self.num_sample >= self.num_local:
            return None, local_labels
        positives = torch.unique(local_labels[local_labels >= 0])
        if positives.numel() >= self.num_sample:
            index = positives
        else:
            score = torch.rand(self.num_local, generator=self.generator, device=self.weight.device)
            score[positives] = 2.0
            index = torch.topk(score, self.num_sample).indices.sort().values
        remapped = torch.where(local_labels >= 0, torch.searchsorted(index, local_labels.clamp(min=0)),
                               torch.full_like(local_labels, -1))
        return index, remapped

    # ---- forward -----------------------------------------------------------------------------------------
    def _gather_batch(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The global batch: every rank's embeddings (with gradient, times W when ``scale_embedding_grad``) and
        labels, in rank order; per-rank sizes may differ."""
        if self.world_size == 1:
            return embeddings, labels
        sizes = mfdist.all_gather_sizes(embeddings.shape[0], embeddings.device, self.group)
        scale = float(self.world_size) if self.scale_embedding_grad else 1.0
        x_all = mfdist.gather_with_grad(embeddings, self.group, sizes, grad_scale=scale)
        labels_all = mfdist.all_gather_rows(labels, self.group, sizes)
        return x_all, labels_all

    def _sum(self, x: Tensor) -> Tensor:
        return mfdist.all_reduce_sum_with_grad(x, self.group)

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: object = None,
                ref_emb: Tensor | None = None, ref_labels: Tensor | None = None) -> Tensor:
        """Mean margin-softmax cross-entropy of the global batch (identical on every rank), plus the head's
        regulariser. PML's call signature; ``indices_tuple`` is ignored, a reference set is rejected."""
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("PartialFC: ref_emb / ref_labels are not supported by a classification loss")
        labels = self.head.check_inputs(embeddings, labels)
        x_all, labels_all = self._gather_batch(embeddings, labels)
        norms = feature_norms(x_all)
        end = self.class_start + self.num_local
        in_shard = (labels_all >= self.class_start) & (labels_all < end)
        local = torch.where(in_shard, labels_all - self.class_start, torch.full_like(labels_all, -1))
        index, local = self.sample(local)
        weight = self.weight
        if index is not None:
            weight = weight.view(self.num_local, self.k, -1)[index].reshape(-1, weight.shape[1])
        cos = self.head.cosine(x_all, weight)
        zero = torch.zeros((), dtype=cos.dtype, device=cos.device)
        target_cos = self._sum(torch.where(local >= 0, cos.gather(1, local.clamp(min=0).unsqueeze(1)).squeeze(1),
                                           zero))
        has_target = labels_all >= 0
        logits, target_logits = self.head.margin_logits(cos, local, target_cos, has_target, norms)
        with torch.no_grad():
            row_max = mfdist.all_reduce_max(logits.max(dim=1).values, self.group)
        sum_exp = self._sum(torch.exp(logits - row_max.unsqueeze(1)).sum(dim=1))
        per_row = torch.log(sum_exp) + row_max - target_logits
        if bool(has_target.any()):
            loss = per_row[has_target].mean()
        else:
            loss = connected_zero(per_row)  # exact 0 even for non-finite rows; the collectives still run
        extra = self.head.regularizer(norms, has_target)
        if extra is not None:
            loss = loss + extra
        if self.world_size > 1:  # every rank returns L; their sum must differentiate to dL, not W·dL
            loss = _ScaleGrad.apply(loss, 1.0 / self.world_size)
        return loss

    def loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Same as calling the module (the ``.loss`` contract of massface heads, used by JointLoss)."""
        return self(embeddings, labels)

    # ---- world-size independent checkpoints ---------------------------------------------------------------
    def full_weight(self) -> Tensor:
        """The whole ``(num_classes·k, d)`` centre matrix, gathered from every rank (collective)."""
        shard = self.weight.detach()
        if self.world_size == 1:
            return shard.clone()
        base, extra = divmod(self.num_classes, self.world_size)
        sizes = [(base + (r < extra)) * self.k for r in range(self.world_size)]
        return mfdist.all_gather_rows(shard, self.group, sizes)

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "weight"] = self.full_weight()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        key = prefix + "weight"
        if key in state_dict:
            full = state_dict[key]
            rows = self.num_classes * self.k
            if full.dim() != 2 or full.shape[0] != rows or full.shape[1] != self.weight.shape[1]:
                error_msgs.append(f"PartialFC: '{key}' must be the full centre matrix of shape "
                                  f"({rows}, {self.weight.shape[1]}) (any world size); got {tuple(full.shape)}")
                return
            state_dict = dict(state_dict)
            state_dict[key] = full[self.class_start * self.k:(self.class_start + self.num_local) * self.k]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
