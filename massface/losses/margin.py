"""Classification heads for face recognition: softmax and the margin-softmax family.

Every head owns its class centres in ``weight`` (``num_classes × embedding_size`` like ``nn.Linear``;
``num_classes·k`` rows for sub-centre heads, class-major) and is called as ``head(embeddings, labels)``,
returning the logits fed to cross-entropy; ``head.loss(embeddings, labels)`` is the mean cross-entropy
(plus the head's regulariser, e.g. MagFace's g). Labels are int64 class ids; ``-1`` marks a sample that has
no class here: its row gets plain scaled cosines and it is left out of the loss (the convention PartialFC
uses for classes that live on another rank). Anything else outside ``[-1, num_classes)`` is an error.

One mechanism serves the whole cosine family (:class:`MarginHead`): normalise x and W, take
``cos θ = x̂·Ŵᵀ`` (float32 even under autocast; target cosines clamped to [-1, 1]), then call per-head hooks:

- ``target_logit(cos θ_y, ‖x‖)`` — the margin function ψ applied to the target cosine (unscaled);
- ``adjust_nontarget(cos, cos θ_y, has_target)`` — optional re-weighting of the other logits (CurricularFace);
- ``logit_scale(‖x‖)`` — s, or the feature norm (SphereFace);
- ``update_state(cos θ_y, has_target, ‖x‖)`` — running statistics, training mode only, no gradient;
- ``regularizer(‖x‖, has_target)`` — an extra loss term (MagFace).

Every cosine head also takes arcface_torch's inter-class filter for noisy identity sets
(``head.interclass_filter = t``, ``loss.head.interclass_filter`` in the trainer; off by default): a non-target
cosine above ``t`` — a class so close to the sample that it is likely the same person under another label —
is set to 0 before scaling (multiplied by 0, as arcface_torch's ``interclass_filtering_threshold``: the
column stays in the softmax as an orthogonal class, and gives no gradient). The target column is exempt.

Dtypes: embeddings may be float16, bfloat16, float32 or float64, and of another dtype than ``weight``; the
cosines, logits and losses are computed in float32 or wider — the wider of the two dtypes, at least float32, so
float64 stays float64 (16-bit logits would make the cross-entropy itself lose precision). Under autocast the
``x̂·Wᵀ`` product runs in the autocast dtype as before, except for float64 inputs, which autocast does not
cover and which are then multiplied in float64.

Cost per call: one ``B × d × C`` matrix product plus O(B·C) element-wise work and memory (the logits);
the margin itself is O(B). Margins are in radians (PML's ArcFaceLoss takes degrees).

Constructor convention (every head): ``Head(embedding_size, num_classes, *, s=..., m=..., ...)`` — the two
sizes by position, everything else by keyword only, ``s`` declared before the margin(s). Extra positional
arguments raise a TypeError naming the keywords, so ``SphereFace(d, C, 4, 30.0)`` (the old ``m, s`` order)
cannot silently become ``s=4, m=30`` (see :class:`ClassifierHead`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from massface._checks import check_int, check_real
from massface._deprecation import deprecated_names
from massface.distances import compute_dtype
from massface.losses._numerics import connected_zero

__all__ = [
    "ClassifierHead",
    "MarginHead",
    "Softmax",
    "NormFace",
    "SphereFace",
    "CombinedMargin",
    "CosFace",
    "ArcFace",
    "SubCenterArcFace",
    "CurricularFace",
    "AdaFace",
    "MagFace",
    "HeadLoss",
    "MarginFallback",
    "angular_margin",
]

MarginFallback = Literal["continuous", "insightface", "none", "clip"]
"""What ψ does past θ* = (π − m2)/m1 (see :func:`angular_margin`); ``"auto"`` in :class:`CombinedMargin`."""
_FALLBACKS = ("continuous", "insightface", "none", "clip")
Margin = float | Tensor

# ``Fallback`` named this type and, in mining.strategies, the empty-region rule: two names now.
__getattr__ = deprecated_names(__name__, {"Fallback": "MarginFallback"})


def _tiny(dtype: torch.dtype) -> float:
    """Smallest value kept under a square root / away from ±1 so that gradients stay finite."""
    return float(torch.finfo(dtype).eps)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` of operands already in one compute dtype; autocast is suspended for float64, which it
    would otherwise mix with a 16-bit copy of the other operand."""
    suspend = x.dtype == torch.float64 and torch.is_autocast_enabled(x.device.type)
    with torch.autocast(device_type=x.device.type, enabled=False) if suspend else contextlib.nullcontext():
        return F.linear(x, weight, bias)


def feature_norms(embeddings: Tensor) -> Tensor:
    """‖x‖ per row, in float32 or wider (with gradient)."""
    return embeddings.to(torch.promote_types(embeddings.dtype, torch.float32)).norm(dim=1)


def angular_margin(
    cos_theta: Tensor,
    m1: float = 1.0,
    m2: Margin = 0.0,
    m3: Margin = 0.0,
    *,
    fallback: MarginFallback = "continuous",
    easy_margin: bool = False,
    clip_eps: float = 1e-3,
) -> Tensor:
    """The combined angular margin ψ(θ) = cos(m1·θ + m2) − m3 of insightface, on target cosines.

    ``m2`` and ``m3`` may be per-sample tensors broadcastable to ``cos_theta`` (MagFace, AdaFace).
    With ``m1 = 1`` no arccos is taken: cos(θ+m2) = cosθ·cos m2 − sinθ·sin m2 with
    sinθ = sqrt(max(1 − cos²θ, eps)), so the value and gradient are finite at cosθ = ±1.

    Beyond θ* = (π − m2)/m1 the cosine turns back up and the logit would stop decreasing in θ.
    ``fallback`` chooses what happens for θ > θ*:

    - ``"continuous"``: ψ = cosθ − cosθ* − 1 − m3, a CosFace-like line that meets the curve at θ*,
      so ψ is continuous and strictly decreasing on [0, π];
    - ``"insightface"``: ψ = cosθ − m2·sin m2 − m3 (the th/mm rule of insightface, TFace and PML; monotone
      but with a downward jump of ≈ m2·sin m2 + cos m2 − 1 at θ*; needs m1 = 1);
    - ``"none"``: keep cos(m1·θ + m2) − m3 (arcface_torch since 2022; not monotone);
    - ``"clip"``: cos(clip(m1·θ + m2, ε, π − ε)) − m3 with θ = arccos(clamp(cosθ, −1 + ε, 1 − ε)) (AdaFace).

    ``easy_margin`` applies the margin only where cosθ > 0 and leaves cosθ unchanged elsewhere (it replaces
    the fallback). Time and memory O(N).
    """
    if fallback not in _FALLBACKS:
        raise ValueError(f"angular_margin: fallback={fallback!r}; allowed: {', '.join(_FALLBACKS)}")
    c = cos_theta
    if fallback == "clip":
        theta = torch.acos(c.clamp(-1.0 + clip_eps, 1.0 - clip_eps))
        psi = torch.cos((m1 * theta + m2).clamp(clip_eps, math.pi - clip_eps)) - m3
        return torch.where(c > 0, psi, c) if easy_margin else psi
    if m1 == 1.0:
        cos_m2 = torch.cos(m2) if isinstance(m2, Tensor) else math.cos(m2)
        sin_m2 = torch.sin(m2) if isinstance(m2, Tensor) else math.sin(m2)
        if not isinstance(m2, Tensor) and m2 == 0.0:
            shifted = c
        else:
            sin_theta = torch.sqrt((1.0 - c * c).clamp_min(_tiny(c.dtype)))
            shifted = c * cos_m2 - sin_theta * sin_m2
        cos_star = -cos_m2  # cos(π − m2)
        linear_drop = 1.0 - cos_m2 if fallback == "continuous" else m2 * sin_m2
    else:
        if fallback == "insightface":
            raise ValueError("angular_margin: fallback='insightface' is only defined for m1 = 1; use 'continuous'")
        tiny = _tiny(c.dtype)
        theta = torch.acos(c.clamp(-1.0 + tiny, 1.0 - tiny))
        shifted = torch.cos(m1 * theta + m2)
        theta_star = (math.pi - m2) / m1  # past π (m1 < 1) the curve never turns: no fallback region
        cos_star = (torch.cos(theta_star.clamp(max=math.pi)) if isinstance(theta_star, Tensor)
                    else math.cos(min(theta_star, math.pi)))
        linear_drop = 1.0 + cos_star
    psi = shifted - m3
    if easy_margin:
        return torch.where(c > 0, psi, c)
    if fallback == "none":
        return psi
    return torch.where(c >= cos_star, psi, c - linear_drop - m3)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _keyword_only_after_sizes(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a head's ``__init__`` so that positional arguments beyond its positional parameters raise a
    TypeError that names the keyword-only ones (Python's own message names none). The signature seen by
    ``inspect.signature`` is the original one (``functools.wraps``). O(1) per call."""
    params = list(inspect.signature(init).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return init
    positional = [p.name for p in params if p.kind in _POSITIONAL]
    keywords = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    example = ", ".join(f"{p.name}={p.default!r}" for p in keywords if p.name in ("s", "m", "m1", "m2", "m3"))

    @functools.wraps(init)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(positional):
            name = type(self).__name__
            raise TypeError(
                f"{name} takes {', '.join(positional)} by position and {', '.join(p.name for p in keywords)} "
                f"by keyword only (s before m, so that their order cannot be swapped): e.g. "
                f"{name}(512, 1000{', ' + example if example else ''}); got {len(args) - len(positional)} extra "
                f"positional argument(s) {tuple(args[len(positional):])!r}")
        init(self, *args, **kwargs)

    return __init__


class ClassifierHead(nn.Module):
    """Base of every head: owns ``weight`` (num_classes·k × embedding_size), checks inputs, defines ``loss``.

    Every subclass's ``__init__`` takes ``(embedding_size, num_classes)`` by position and the rest by keyword;
    extra positional arguments raise a TypeError naming the keywords (applied by ``__init_subclass__``).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _keyword_only_after_sizes(init)  # type: ignore[method-assign]

    def __init__(self, embedding_size: int, num_classes: int, *, num_subcenters: int = 1) -> None:
        super().__init__()
        owner = type(self).__name__
        embedding_size = check_int("embedding_size", embedding_size, owner)
        num_classes = check_int("num_classes", num_classes, owner)
        num_subcenters = check_int("num_subcenters", num_subcenters, owner)
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.num_subcenters = num_subcenters
        self.weight: nn.Parameter | None = nn.Parameter(torch.empty(num_classes * num_subcenters, embedding_size))
        nn.init.normal_(self.weight, std=0.01)

    def check_inputs(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Validate shapes, dtypes and the label range; returns labels as int64."""
        name = type(self).__name__
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"{name}: embeddings must have shape (batch, {self.embedding_size}); "
                             f"got {tuple(embeddings.shape)}")
        if not embeddings.is_floating_point():
            raise TypeError(f"{name}: embeddings must be floating point; got {embeddings.dtype}")
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"{name}: labels must be a 1-D tensor of length {embeddings.shape[0]}; got {shape}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"{name}: labels must be an integer tensor (class ids, -1 = ignore); got {labels.dtype}")
        if labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < -1 or high >= self.num_classes:
                raise ValueError(f"{name}: labels must lie in [-1, {self.num_classes}) "
                                 f"(-1 = sample ignored); got min {low}, max {high}")
        return labels.to(device=embeddings.device, dtype=torch.long)

    def require_weight(self) -> Tensor:
        """The class-centre matrix; RuntimeError once it was handed to PartialFC."""
        if self.weight is None:
            raise RuntimeError(f"{type(self).__name__}: its class centres were handed to PartialFC "
                               "(release_weight); call the PartialFC module instead")
        return self.weight

    def release_weight(self) -> Tensor:
        """Give up the class-centre matrix (used by PartialFC, which re-shards it) and return it detached."""
        weight = self.require_weight().detach()
        self.register_parameter("weight", None)
        return weight

    def regularizer(self, norms: Tensor, has_target: Tensor) -> Tensor | None:
        """Extra loss term added by ``loss`` (None: nothing). ``norms`` are the raw feature norms ‖x‖."""
        return None

    def loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean softmax cross-entropy over the samples with label ≥ 0, plus ``regularizer``.

        A batch whose labels are all -1 gives an exact zero that still carries a graph (zero gradient), even
        when the logits are non-finite or their sum would overflow.
        """
        labels = self.check_inputs(embeddings, labels)
        logits = self(embeddings, labels)
        keep = labels >= 0
        if not bool(keep.any()):
            return connected_zero(logits)
        loss = F.cross_entropy(logits, labels, ignore_index=-1)
        extra = self.regularizer(feature_norms(embeddings), keep)
        return loss if extra is None else loss + extra

    def as_loss(self) -> HeadLoss:
        """This head behind PML's loss signature, for ``MultipleLosses`` and other PML containers."""
        return HeadLoss(self)


class HeadLoss(nn.Module):
    """Adapter: ``loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None) -> head.loss``.

    The classification loss uses every labelled sample, so ``indices_tuple`` (mined pairs/triplets meant for a
    metric loss in the same container) is ignored; a reference set is rejected, a class head has none.
    """

    def __init__(self, head: ClassifierHead) -> None:
        super().__init__()
        if not isinstance(head, ClassifierHead):
            raise TypeError(f"HeadLoss: head must be a massface ClassifierHead; got {type(head).__name__}")
        self.head = head

    def forward(self, embeddings: Tensor, labels: Tensor, indices_tuple: object = None,
                ref_emb: Tensor | None = None, ref_labels: Tensor | None = None) -> Tensor:
        if ref_emb is not None or ref_labels is not None:
            raise ValueError(f"HeadLoss({type(self.head).__name__}): ref_emb / ref_labels are not supported "
                             "by a classification head")
        if labels is None:
            raise ValueError(f"HeadLoss({type(self.head).__name__}): labels are required")
        return self.head.loss(embeddings, labels)


class Softmax(ClassifierHead):
    """Plain fully-connected softmax: logits = x·Wᵀ + b (no normalisation, no margin). O(B·d·C)."""

    def __init__(self, embedding_size: int, num_classes: int, bias: bool = True) -> None:
        super().__init__(embedding_size, num_classes)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits x·Wᵀ + b in float32 or wider (the embeddings' and the weight's dtypes promoted)."""
        if labels is not None:
            self.check_inputs(embeddings, labels)
        weight = self.require_weight()
        dtype = compute_dtype(embeddings.dtype, weight.dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        return _linear(embeddings.to(dtype), weight.to(dtype), bias)


class MarginHead(ClassifierHead):
    """Normalised-cosine head with hooks; on its own it is NormFace: logit_j = s·cos θ_j (Wang et al. 2017).

    Subclasses override ``target_logit`` (and, rarely, the other hooks listed in the module docstring).
    ``margin_logits`` is the entry point shared with PartialFC, which calls it on a shard of the classes.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float | None = 64.0,
                 num_subcenters: int = 1) -> None:
        super().__init__(embedding_size, num_classes, num_subcenters=num_subcenters)
        if s is not None:
            s = check_real("s", s, type(self).__name__, low=0.0, low_open=True, note="the logit scale")
        self.s = s
        self._interclass_filter: float | None = None

    @property
    def interclass_filter(self) -> float | None:
        """arcface_torch's inter-class filter threshold t in (-1, 1]: non-target cosines above t are set to 0
        (``None``: off). Settable; see the module docstring."""
        return getattr(self, "_interclass_filter", None)

    @interclass_filter.setter
    def interclass_filter(self, value: float | None) -> None:
        if value is not None:
            value = check_real("interclass_filter", value, type(self).__name__, low=-1.0, high=1.0,
                               low_open=True, note="a cosine threshold")
        self._interclass_filter = value

    def extra_repr(self) -> str:
        text = f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, s={self.s}"
        return text + (f", interclass_filter={self.interclass_filter}" if self.interclass_filter is not None else "")

    # ---- hooks -------------------------------------------------------------------------------------------
    def target_logit(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        """ψ(cos θ_y) before scaling; NormFace: the identity."""
        return cos_theta

    def adjust_nontarget(self, cos: Tensor, target_cos: Tensor, has_target: Tensor) -> Tensor:
        """Non-target logits before scaling (the target column is overwritten afterwards); default unchanged."""
        return cos

    def logit_scale(self, norms: Tensor) -> Tensor | float:
        """Multiplier of every logit: ``s``."""
        if self.s is None:
            raise RuntimeError(f"{type(self).__name__}: s is None but the head does not define a norm scale")
        return self.s

    def update_state(self, target_cos: Tensor, has_target: Tensor, norms: Tensor) -> None:
        """Update running statistics from a training batch (called under no_grad); default nothing."""

    # ---- mechanism ---------------------------------------------------------------------------------------
    def cosine(self, embeddings: Tensor, weight: Tensor | None = None) -> Tensor:
        """cos θ (B × C) between the embeddings and the class centres (max over sub-centres).

        Computed as (x̂·Wᵀ)·diag(1/‖W_j‖): the centre norms scale the product instead of normalising the
        C × d matrix, which saves several C × d passes in the backward. x and W are first brought to one dtype,
        the wider of theirs and at least float32 (x is normalised in it, so 16-bit embeddings whose squared
        norm overflows 16 bits are fine); the product runs in the autocast dtype when autocast is on (not for
        float64); the result is promoted to at least float32. Not clamped (rounding may exceed ±1 by an ulp or,
        under 16-bit autocast, ~1e-2): ``margin_logits`` clamps the target cosines the margins act on.
        """
        weight = self.require_weight() if weight is None else weight
        dtype = compute_dtype(embeddings.dtype, weight.dtype)
        weight = weight.to(dtype)
        product = _linear(F.normalize(embeddings.to(dtype), dim=1), weight)
        product = product.to(torch.promote_types(product.dtype, torch.float32))
        inverse_norm = torch.linalg.vector_norm(weight, dim=1, dtype=product.dtype).clamp_min(1e-12).reciprocal()
        cos = product * inverse_norm
        if self.num_subcenters > 1:
            cos = cos.view(cos.shape[0], -1, self.num_subcenters).amax(dim=2)
        return cos

    def margin_logits(self, cos: Tensor, labels: Tensor, target_cos: Tensor, has_target: Tensor,
                      norms: Tensor) -> tuple[Tensor, Tensor]:
        """Apply the margin hooks to a block of cosines.

        Args:
            cos: (B, C') cosines to the classes in view (all classes, or one PartialFC shard).
            labels: (B,) column of each row's target inside ``cos``, -1 where it is not in view.
            target_cos: (B,) cos θ_y of each row's target wherever it lives (any finite value where none).
            has_target: (B,) whether the row has a target class at all.
            norms: (B,) feature norms ‖x‖ (float).
        Returns:
            ``(logits (B, C'), target_logits (B,))``, both scaled; ``target_logits`` is s·ψ(cos θ_y).
        """
        target_cos = target_cos.clamp(-1.0, 1.0)
        if self.training:
            with torch.no_grad():
                self.update_state(target_cos.detach(), has_target, norms.detach())
        new_target = torch.where(has_target, self.target_logit(target_cos, norms), target_cos)
        others = self.adjust_nontarget(cos, target_cos, has_target)
        if self.interclass_filter is not None:  # the target column is overwritten below: exempt
            others = others.masked_fill(cos.detach() > self.interclass_filter, 0.0)
        column = labels.clamp(min=0).unsqueeze(1)
        current = others.gather(1, column).squeeze(1)
        logits = others.scatter(1, column, torch.where(labels >= 0, new_target, current).unsqueeze(1))
        scale = self.logit_scale(norms)
        if isinstance(scale, Tensor):
            return logits * scale.unsqueeze(1), new_target * scale
        return logits.mul_(scale), new_target * scale  # in place: scatter's backward does not need its output

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Logits (B × C, float32 or wider) for cross-entropy; rows with label -1 get s·cos θ unchanged."""
        labels = self.check_inputs(embeddings, labels)
        norms = feature_norms(embeddings)
        cos = self.cosine(embeddings)
        has_target = labels >= 0
        target_cos = torch.where(has_target, cos.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1),
                                 torch.zeros((), dtype=cos.dtype, device=cos.device))
        logits, _ = self.margin_logits(cos, labels, target_cos, has_target, norms)
        return logits


class NormFace(MarginHead):
    """NormFace (Wang et al., ACM MM 2017): logit_j = s·cos θ_j, no margin."""


class SphereFace(MarginHead):
    """SphereFace / A-Softmax (Liu et al., CVPR 2017) with face.evoLVe's annealing.

    ψ(θ) = (−1)^k·cos(mθ) − 2k, k = ⌊mθ/π⌋, cos(mθ) = T_m(cos θ) (Chebyshev, no arccos in the gradient path).
    Target logit ``(λ·cos θ + ψ(θ)) / (1 + λ)`` with λ = max(lambda_min, lambda_base·(1 + gamma·step)^(−power)).
    ``step`` is a buffer advanced once per training forward (or set with ``set_step``), saved in the state dict.
    Logits are scaled by the raw feature norm ‖x‖ when ``s`` is None (the paper), else by ``s``.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float | None = None, m: int = 4,
                 lambda_base: float = 1000.0, gamma: float = 0.12, power: float = 1.0,
                 lambda_min: float = 5.0) -> None:
        super().__init__(embedding_size, num_classes, s=s)
        # ψ uses the Chebyshev polynomial T_m; the paper's margins are 1..4, beyond 10 nothing trains.
        m = check_int("m", m, "SphereFace (the multiplicative angular margin)", low=1, high=10)
        lambda_base, gamma, power, lambda_min = (check_real(name, value, "SphereFace", low=0.0) for name, value in (
            ("lambda_base", lambda_base), ("gamma", gamma), ("power", power), ("lambda_min", lambda_min)))
        self.m = m
        self.lambda_base, self.gamma, self.power, self.lambda_min = lambda_base, gamma, power, lambda_min
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def set_step(self, step: int) -> None:
        """Set the annealing step (e.g. when resuming)."""
        if step < 0:
            raise ValueError(f"SphereFace.set_step: step={step}; must be >= 0")
        self.step.fill_(int(step))

    @property
    def lam(self) -> float:
        """Current annealing weight λ."""
        return max(self.lambda_min, self.lambda_base * (1.0 + self.gamma * int(self.step)) ** (-self.power))

    def update_state(self, target_cos: Tensor, has_target: Tensor, norms: Tensor) -> None:
        self.step += 1

    def target_logit(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        prev, cur = torch.ones_like(cos_theta), cos_theta
        for _ in range(self.m - 1):
            prev, cur = cur, 2.0 * cos_theta * cur - prev
        with torch.no_grad():
            k = torch.floor(self.m * torch.acos(cos_theta.clamp(-1.0, 1.0)) / math.pi).clamp(max=self.m - 1)
        psi = (1.0 - 2.0 * torch.remainder(k, 2.0)) * cur - 2.0 * k
        lam = self.lam
        return (lam * cos_theta + psi) / (1.0 + lam)

    def logit_scale(self, norms: Tensor) -> Tensor | float:
        return norms if self.s is None else self.s

    def extra_repr(self) -> str:
        return super().extra_repr() + f", m={self.m}, lambda={self.lam:.4g}"


class CombinedMargin(MarginHead):
    """Combined margin (insightface): logit_y = s·(cos(m1·θ_y + m2) − m3), all three margins effective.

    (1, m, 0) is ArcFace — ``CombinedMargin(d, C, m1=1, m2=m, m3=0)`` equals ``ArcFace(d, C, m=m)`` at every
    angle, beyond θ* = π − m too — (1, 0, m) CosFace, (1, 0.3, 0.2) the MXNet "combined" setting. See
    :func:`angular_margin` for ``fallback`` (what happens once m1·θ + m2 > π) and ``easy_margin``; the default
    ``"auto"`` is insightface's th/mm rule where it is defined (m1 = 1, as ArcFace) and ``"continuous"`` else.
    ``straight_through=True`` gives arcface_torch's variant: the forward value is ψ but the gradient is that of
    plain cos θ (d logit / d cos = s); with ``fallback="none"`` it reproduces arcface_torch exactly.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m1: float = 1.0,
                 m2: float = 0.3, m3: float = 0.2, fallback: MarginFallback | Literal["auto"] = "auto",
                 easy_margin: bool = False, straight_through: bool = False, num_subcenters: int = 1) -> None:
        super().__init__(embedding_size, num_classes, s=s, num_subcenters=num_subcenters)
        name = type(self).__name__
        # ψ = cos(m1·θ + m2) − m3 with cos θ in [−1, 1]: m2 ≥ π/2 makes ψ ≤ 0 even at θ = 0, m3 > 1 puts a
        # perfectly aligned target below a non-target at 90°; m1 scales the angle (SphereFace uses up to 4).
        m1 = check_real("m1", m1, name, low=0.0, high=10.0, low_open=True, note="multiplies the angle")
        m2 = check_real("m2", m2, name, low=0.0, high=math.pi / 2, high_open=True,
                        note="additive angular margin; margins are in radians")
        m3 = check_real("m3", m3, name, low=0.0, high=1.0, note="additive cosine margin")
        if fallback == "auto":
            fallback = "insightface" if m1 == 1.0 else "continuous"
        if fallback not in _FALLBACKS:
            raise ValueError(f"fallback={fallback!r} is not allowed for {name}; allowed: 'auto', "
                             f"{', '.join(_FALLBACKS)}")
        if fallback == "insightface" and m1 != 1.0:
            raise ValueError(f"fallback='insightface' needs m1 = 1 for {name}; got m1={m1}")
        self.m1, self.m2, self.m3 = float(m1), float(m2), float(m3)
        self.fallback: MarginFallback = fallback
        self.easy_margin = bool(easy_margin)
        self.straight_through = bool(straight_through)

    def margin(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        """ψ(cos θ) with this head's margins (per-sample margins override this)."""
        return angular_margin(cos_theta, self.m1, self.m2, self.m3, fallback=self.fallback,
                              easy_margin=self.easy_margin)

    def target_logit(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        if not self.straight_through:
            return self.margin(cos_theta, norms)
        with torch.no_grad():
            shift = self.margin(cos_theta, norms) - cos_theta
        return cos_theta + shift

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", m1={self.m1}, m2={self.m2}, m3={self.m3}, fallback={self.fallback}"
                + (", easy_margin=True" if self.easy_margin else "")
                + (", straight_through=True" if self.straight_through else ""))


class CosFace(CombinedMargin):
    """CosFace / AM-Softmax (Wang et al., CVPR 2018): logit_y = s·(cos θ_y − m)."""

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.35) -> None:
        # logit_y = s·(cos θ − m), cos θ in [−1, 1]: beyond m = 1 a perfect target scores below an orthogonal class
        m = check_real("m", m, type(self).__name__, low=0.0, high=1.0, note="additive cosine margin")
        super().__init__(embedding_size, num_classes, s=s, m1=1.0, m2=0.0, m3=m)

    @property
    def m(self) -> float:
        """The additive cosine margin (``m3``)."""
        return self.m3


class ArcFace(CombinedMargin):
    """ArcFace (Deng et al., CVPR 2019): logit_y = s·cos(θ_y + m), margin in radians.

    Safe form without arccos; past θ > π − m the insightface/PML th/mm rule cos θ − m·sin m keeps the logit
    monotone (``fallback="continuous"`` joins the curve instead; ``"none"`` disables it). ``easy_margin``
    applies the margin only where cos θ > 0. ``straight_through`` is arcface_torch's no-grad margin.
    ``ArcFace(d, C, m=m)`` is ``CombinedMargin(d, C, m1=1, m2=m, m3=0)`` (same default fallback).
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5,
                 easy_margin: bool = False, straight_through: bool = False,
                 fallback: MarginFallback = "insightface", num_subcenters: int = 1) -> None:
        # logit_y = s·cos(θ + m): from m = π/2 on even a perfectly aligned target has cos(m) <= 0
        m = check_real("m", m, type(self).__name__, low=0.0, high=math.pi / 2, high_open=True,
                       note="additive angular margin; margins are in radians")
        super().__init__(embedding_size, num_classes, s=s, m1=1.0, m2=m, m3=0.0, fallback=fallback,
                         easy_margin=easy_margin, straight_through=straight_through,
                         num_subcenters=num_subcenters)

    @property
    def m(self) -> float:
        """The additive angular margin in radians (``m2``)."""
        return self.m2


class SubCenterArcFace(ArcFace):
    """Sub-center ArcFace (Deng et al., ECCV 2020): k centres per class, cos θ_j = max_i cos(x, W_{j,i}).

    ``weight`` has ``num_classes·k`` rows, class-major (rows j·k … j·k+k−1 belong to class j).
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5, k: int = 3,
                 **kwargs: Any) -> None:
        k = check_int("k", k, "SubCenterArcFace (sub-centres per class)")
        super().__init__(embedding_size, num_classes, s=s, m=m, num_subcenters=k, **kwargs)

    @property
    def k(self) -> int:
        """Sub-centres per class."""
        return self.num_subcenters

    @torch.no_grad()
    def find_outliers(self, embeddings: Tensor, labels: Tensor,
                      threshold: float = math.radians(75.0)) -> tuple[Tensor, Tensor]:
        """The data-cleaning step of the paper (insightface ``drop.py``), over the samples given.

        Each sample votes for its closest sub-centre of its own class; a class's dominant sub-centre is the one
        with most votes (ties: lowest index). Returns ``(outlier (N,) bool, dominant (num_classes,) int64)``:
        outliers are samples more than ``threshold`` radians from their class's dominant sub-centre. Classes
        without samples get dominant 0. Pass the whole training set (in one call) for the paper's rule.
        Time O(N·d·C·k), memory O(N·C·k).
        """
        labels = self.check_inputs(embeddings, labels)
        if bool((labels < 0).any()):
            raise ValueError("SubCenterArcFace.find_outliers: labels must be >= 0 (every sample needs its class)")
        weight = self.require_weight().detach()
        dtype = compute_dtype(embeddings.dtype, weight.dtype)
        weight = F.normalize(weight.to(dtype), dim=1)
        cos = _linear(F.normalize(embeddings.detach().to(dtype), dim=1), weight)
        own = cos.view(cos.shape[0], self.num_classes, self.k)[torch.arange(cos.shape[0]), labels]  # (N, k)
        votes = torch.zeros(self.num_classes, self.k, dtype=torch.long, device=cos.device)
        votes.index_put_((labels, own.argmax(dim=1)), torch.ones_like(labels), accumulate=True)
        dominant = votes.argmax(dim=1)
        cos_dominant = own.gather(1, dominant[labels].unsqueeze(1)).squeeze(1).clamp(-1.0, 1.0)
        return torch.acos(cos_dominant) > threshold, dominant


class CurricularFace(ArcFace):
    """CurricularFace (Huang et al., CVPR 2020).

    Target: ArcFace cos(θ_y + m) with the th/mm fallback. A negative j is hard when cos θ_j > cos(θ_y + m)
    (raw, before the fallback) and becomes cos θ_j·(t + cos θ_j); easy negatives stay cos θ_j.
    ``t`` is a buffer, t ← α·mean_batch(cos θ_y) + (1 − α)·t each training forward (α = 0.01 in the paper's
    code, 0.1 in TFace), initialised to 0.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.5,
                 alpha: float = 0.01) -> None:
        super().__init__(embedding_size, num_classes, s=s, m=m)
        self.alpha = check_real("alpha", alpha, "CurricularFace", low=0.0, high=1.0, low_open=True,
                                note="rate of the running mean t")
        self.register_buffer("t", torch.zeros(()))

    def update_state(self, target_cos: Tensor, has_target: Tensor, norms: Tensor) -> None:
        if bool(has_target.any()):
            mean = target_cos[has_target].mean().to(self.t.dtype)
            self.t.mul_(1.0 - self.alpha).add_(self.alpha * mean)

    def adjust_nontarget(self, cos: Tensor, target_cos: Tensor, has_target: Tensor) -> Tensor:
        raw = angular_margin(target_cos, 1.0, self.m2, 0.0, fallback="none")
        threshold = torch.where(has_target, raw, torch.full_like(raw, math.inf))  # no target: nothing is hard
        hard = cos > threshold.unsqueeze(1)
        return torch.where(hard, cos * (self.t.to(cos.dtype) + cos), cos)


class AdaFace(MarginHead):
    """AdaFace (Kim et al., CVPR 2022): margin adapted to the feature norm as an image-quality proxy.

    ẑ = clip(h·(‖x‖ − μ)/(σ + eps), −1, 1) with ‖x‖ detached and μ, σ running means (rate ``t_alpha``) of the
    batch mean / std of the norms (buffers, initialised to 20 and 100). g_angle = −m·ẑ, g_add = m·ẑ + m;
    logit_y = s·(cos(clip(θ_y + g_angle, eps, π − eps)) − g_add), θ_y = arccos(clamp(cos θ_y, ±(1 − eps))).
    ẑ = −1 is ArcFace(m), ẑ = 0 CosFace(m), ẑ = 1 gives cos(θ − m) − 2m. Norms are clipped to [0.001, 100].
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m: float = 0.4,
                 h: float = 0.333, t_alpha: float = 0.01, eps: float = 1e-3) -> None:
        super().__init__(embedding_size, num_classes, s=s)
        m = check_real("m", m, "AdaFace", low=0.0, high=math.pi / 2, high_open=True, note="margins are in radians")
        h = check_real("h", h, "AdaFace", low=0.0, low_open=True)
        t_alpha = check_real("t_alpha", t_alpha, "AdaFace", low=0.0, high=1.0, low_open=True)
        eps = check_real("eps", eps, "AdaFace", low=0.0, high=0.1, low_open=True, high_open=True)
        self.m, self.h, self.t_alpha, self.eps = m, h, t_alpha, eps
        self.register_buffer("batch_mean", torch.full((), 20.0))
        self.register_buffer("batch_std", torch.full((), 100.0))

    def update_state(self, target_cos: Tensor, has_target: Tensor, norms: Tensor) -> None:
        if norms.numel() < 2:
            return
        safe = norms.clamp(0.001, 100.0)
        self.batch_mean.mul_(1.0 - self.t_alpha).add_(self.t_alpha * safe.mean().to(self.batch_mean.dtype))
        self.batch_std.mul_(1.0 - self.t_alpha).add_(self.t_alpha * safe.std().to(self.batch_std.dtype))

    def quality(self, norms: Tensor) -> Tensor:
        """ẑ in [−1, 1] for the given (raw) feature norms, using the running statistics."""
        safe = norms.detach().clamp(0.001, 100.0)
        mean, std = self.batch_mean.to(safe.dtype), self.batch_std.to(safe.dtype)
        return (self.h * (safe - mean) / (std + self.eps)).clamp(-1.0, 1.0)

    def target_logit(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        z = self.quality(norms).to(cos_theta.dtype)
        return angular_margin(cos_theta, 1.0, -self.m * z, self.m * z + self.m, fallback="clip", clip_eps=self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", m={self.m}, h={self.h}, t_alpha={self.t_alpha}"


class MagFace(CombinedMargin):
    """MagFace (Meng et al., CVPR 2021): ArcFace with a margin growing with the feature magnitude.

    a = clamp(‖x‖, l_a, u_a); m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a); logit_y = s·cos(θ_y + m(a))
    (``easy_margin`` by default, as MagLinear; else the th/mm fallback per sample). ``loss`` adds
    λ_g·mean g(a) with g(a) = a/u_a² + 1/a. The paper's condition λ_g ≥ s·k·u_a²·l_a²/(u_a² − l_a²), with
    k the margin slope, is ``min_lambda_g``; the default λ_g = 35 (the official run.sh) satisfies it.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, l_a: float = 10.0,
                 u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8, lambda_g: float = 35.0,
                 easy_margin: bool = True) -> None:
        l_a = check_real("l_a", l_a, "MagFace", low=0.0, low_open=True, note="lower feature magnitude")
        u_a = check_real("u_a", u_a, "MagFace", low=l_a, low_open=True, note="upper feature magnitude, > l_a")
        l_m = check_real("l_m", l_m, "MagFace", low=0.0, high=math.pi / 2, high_open=True,
                         note="margins are in radians")
        u_m = check_real("u_m", u_m, "MagFace", low=l_m, high=math.pi / 2, high_open=True,
                         note="margins are in radians, u_m >= l_m")
        lambda_g = check_real("lambda_g", lambda_g, "MagFace", low=0.0)
        super().__init__(embedding_size, num_classes, s=s, m1=1.0, m2=l_m, m3=0.0,
                         fallback="insightface", easy_margin=easy_margin)
        self.l_a, self.u_a, self.l_m, self.u_m, self.lambda_g = l_a, u_a, l_m, u_m, lambda_g

    @property
    def min_lambda_g(self) -> float:
        """The paper's lower bound s·k·u_a²·l_a²/(u_a² − l_a²) on λ_g (k the margin slope)."""
        slope = (self.u_m - self.l_m) / (self.u_a - self.l_a)
        return self.s * slope * self.u_a ** 2 * self.l_a ** 2 / (self.u_a ** 2 - self.l_a ** 2)

    def magnitude(self, norms: Tensor) -> Tensor:
        """a = clamp(‖x‖, l_a, u_a)."""
        return norms.clamp(self.l_a, self.u_a)

    def margin(self, cos_theta: Tensor, norms: Tensor) -> Tensor:
        """ψ = cos(θ + m(a)) with m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a), per sample."""
        a = self.magnitude(norms).to(cos_theta.dtype)
        m = self.l_m + (self.u_m - self.l_m) * (a - self.l_a) / (self.u_a - self.l_a)
        return angular_margin(cos_theta, 1.0, m, 0.0, fallback="insightface", easy_margin=self.easy_margin)

    def regularizer(self, norms: Tensor, has_target: Tensor) -> Tensor | None:
        """λ_g·mean g(a), g(a) = a/u_a² + 1/a, over the labelled samples (None when λ_g = 0 or none)."""
        if self.lambda_g == 0 or not bool(has_target.any()):
            return None
        a = self.magnitude(norms[has_target])
        return self.lambda_g * (a / self.u_a ** 2 + 1.0 / a).mean()

    def extra_repr(self) -> str:
        return (f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, s={self.s}, "
                f"a=[{self.l_a}, {self.u_a}], m=[{self.l_m}, {self.u_m}], lambda_g={self.lambda_g}")
