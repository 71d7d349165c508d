"""Pairwise distances and label masks shared by the miners, the losses and the evaluation.

Every distance here is a :class:`pytorch_metric_learning.distances.BaseDistance`, so it can be handed to PML
losses and miners too, and every PML distance object is accepted wherever massface takes a distance.

Inside massface all selection rules are written for a *dissimilarity* (smaller = closer).  A similarity
(``is_inverted=True``, e.g. cosine) is turned into one by negation, ``d = -s``; with that convention the
triplet condition ``d_an < d_ap + m`` is exactly PML's ``s_ap - s_an <= m`` family and the hinge
``[d_ap - d_an + m]_+`` equals ``[s_an - s_ap + m]_+``.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.distances import BaseDistance

__all__ = [
    "SquaredEuclideanDistance",
    "EuclideanDistance",
    "CosineSimilarity",
    "DistanceLike",
    "resolve_distance",
    "dissimilarity_matrix",
    "same_label_mask",
    "is_same_tensor",
    "compute_dtype",
]


def compute_dtype(*dtypes: torch.dtype) -> torch.dtype:
    """The dtype massface computes distances, logits and losses in: the widest of ``dtypes`` and float32.

    float16 / bfloat16 inputs are computed in float32 (squared distances of unit vectors and margin
    logits lose too much in 16 bits), float32 stays float32, float64 stays float64.
    """
    out = torch.float32
    for dtype in dtypes:
        out = torch.promote_types(out, dtype)
    return out


def _common(query: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and reference in one dtype (the wider of the two) so that mixed-precision pairs multiply."""
    if query.dtype == ref.dtype:
        return query, ref
    dtype = torch.promote_types(query.dtype, ref.dtype)
    return query.to(dtype), ref.to(dtype)


class _SelfGram(torch.autograd.Function):
    """``bias + alpha · X Xᵀ`` (constant ``alpha``, ``bias``) with the symmetric backward ∂/∂X = alpha·(G + Gᵀ)·X:
    one (N×N)·(N×D) product where autograd's ``X @ X.T`` takes two. Differentiable twice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float, bias: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return torch.addmm(x.new_tensor(bias), x, x.T, beta=1.0, alpha=alpha)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        sym = grad.mT.contiguous().add_(grad)  # G + Gᵀ (a transposing copy is far cheaper than the strided add)
        return (sym @ x.to(sym.dtype) * ctx.alpha).to(x.dtype), None, None


def _gram(query: torch.Tensor, ref: torch.Tensor, alpha: float = 1.0, bias: float = 0.0) -> torch.Tensor:
    """``bias + alpha · <q_i, r_j>`` as an (N, M) matrix, O(N·M·D). When ``ref`` is ``query`` itself (a batch
    against itself) the backward pass takes one matrix product instead of two (:class:`_SelfGram`)."""
    if ref is query and query.requires_grad and torch.is_grad_enabled():
        return _SelfGram.apply(query, alpha, bias)
    return torch.addmm(query.new_tensor(bias), query, ref.T, beta=1.0 if bias else 0.0, alpha=alpha)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(x) for x >= 0 whose gradient at 0 is 0 instead of inf (no NaN for duplicate points)."""
    positive = x > 0
    tiny = torch.finfo(x.dtype).tiny
    return torch.where(positive, x.clamp_min(tiny).sqrt(), torch.zeros_like(x))


def _squared_euclidean_mat(query: torch.Tensor, ref: torch.Tensor, unit_norm: bool) -> torch.Tensor:
    """||q_i - r_j||^2 via one matrix product: O(N·M·D) time, O(N·M) memory.

    On unit vectors this is ``2 - 2 <q_i, r_j>``; otherwise ``|q|^2 + |r|^2 - 2 <q, r>``. Rounding can make
    a tiny negative number, so the result is clamped at 0. Mixed dtypes are computed in the wider one.
    """
    query, ref = _common(query, ref)
    if unit_norm:
        sq = _gram(query, ref, alpha=-2.0, bias=2.0)  # fused 2 - 2<q, r>
    else:
        sq = _gram(query, ref, alpha=-2.0) + query.pow(2).sum(1, keepdim=True) + ref.pow(2).sum(1).unsqueeze(0)
    return sq.clamp_min_(0.0) if not sq.requires_grad else sq.clamp_min(0.0)


class SquaredEuclideanDistance(BaseDistance):
    """d(x, y) = ||x - y||_2^2 (FaceNet, MassFace); on L2-normalised embeddings it lies in [0, 4].

    ``mat`` costs one (N×D)·(D×M) product — faster than ``torch.cdist`` followed by squaring.
    """

    def __init__(self, normalize_embeddings: bool = True, **kwargs: Any) -> None:
        super().__init__(normalize_embeddings=normalize_embeddings, p=2, power=1, is_inverted=False, **kwargs)

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """(N, M) matrix of ||q_i − r_j||², O(N·M·D)."""
        return _squared_euclidean_mat(query_emb, ref_emb, unit_norm=self.normalize_embeddings)

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """||q_i − r_i||² row by row, O(N·D)."""
        return (query_emb - ref_emb).pow(2).sum(-1)


class EuclideanDistance(BaseDistance):
    """d(x, y) = ||x - y||_2 (Hermans et al.); the gradient is 0 (not NaN) for coincident points."""

    def __init__(self, normalize_embeddings: bool = True, **kwargs: Any) -> None:
        super().__init__(normalize_embeddings=normalize_embeddings, p=2, power=1, is_inverted=False, **kwargs)

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """(N, M) matrix of ||q_i − r_j||, O(N·M·D)."""
        return _safe_sqrt(_squared_euclidean_mat(query_emb, ref_emb, unit_norm=self.normalize_embeddings))

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """||q_i − r_i|| row by row, O(N·D)."""
        return _safe_sqrt((query_emb - ref_emb).pow(2).sum(-1))


class CosineSimilarity(BaseDistance):
    """s(x, y) = <x/||x||, y/||y||> — a similarity (``is_inverted``): larger is closer."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("normalize_embeddings", None)
        super().__init__(normalize_embeddings=True, p=2, power=1, is_inverted=True, **kwargs)

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """(N, M) matrix of <q_i, r_j> (inputs already normalised by the caller), O(N·M·D)."""
        return _gram(*_common(query_emb, ref_emb))

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """<q_i, r_i> row by row, O(N·D)."""
        return (query_emb * ref_emb).sum(-1)


DistanceLike = str | BaseDistance

_BY_NAME = {
    "squared_euclidean": SquaredEuclideanDistance,
    "euclidean": EuclideanDistance,
    "cosine": CosineSimilarity,
}


def resolve_distance(distance: DistanceLike, normalize: bool = True) -> BaseDistance:
    """Turn ``"squared_euclidean" | "euclidean" | "cosine"`` or a PML distance object into a distance object.

    ``normalize`` applies to the names only (cosine always normalises); a given object is used as it is.
    """
    if isinstance(distance, BaseDistance):
        return distance
    if isinstance(distance, str):
        cls = _BY_NAME.get(distance)
        if cls is None:
            raise ValueError(f"distance={distance!r} is not known; use one of {sorted(_BY_NAME)} "
                             "or a pytorch_metric_learning.distances.BaseDistance object")
        if cls is CosineSimilarity:
            return cls()
        return cls(normalize_embeddings=normalize)
    raise TypeError(f"distance must be a name {sorted(_BY_NAME)} or a PML BaseDistance, got {type(distance).__name__}")


def dissimilarity_matrix(distance: BaseDistance, query: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """The (N, M) matrix of ``distance`` oriented so that smaller means closer (similarities are negated).

    When ``ref`` is the query itself it is passed on as ``None`` so the embeddings are normalised once.
    """
    if ref is not None and is_same_tensor(query, ref):
        ref = None
    mat = distance(query, ref)
    return -mat if distance.is_inverted else mat


def same_label_mask(labels: torch.Tensor, ref_labels: torch.Tensor) -> torch.Tensor:
    """Boolean (N, M) mask ``labels[i] == ref_labels[j]``."""
    return labels.unsqueeze(1) == ref_labels.unsqueeze(0)


def is_same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when ``b`` is ``a`` or a view of exactly the same memory (same storage, offset, shape, strides).

    This is how massface decides that a reference set *is* the query batch (so self-pairs (i, i) must be
    excluded). PML decides by object identity only; a view such as ``emb[:]`` or ``emb.detach()`` counts as the
    same data here too, while a copy (``emb.clone()``, a memory queue) does not.
    """
    if a is b:
        return True
    return (
        a.device == b.device
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
        and a.numel() > 0
        and a.data_ptr() == b.data_ptr()
    )
