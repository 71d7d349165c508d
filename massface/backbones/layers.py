"""Building blocks shared by every backbone family.

Each family file (``mobilefacenet.py``, ``iresnet.py``, ``ghostnet.py``, ``efficientnet.py``) assembles its
body from these pieces and ends in one of the two embedding heads used by the face-recognition field:

* :class:`GDCHead` -- global depthwise convolution (MobileFaceNet, Chen et al. 2018): a k x k depthwise
  "linear" conv collapses the final feature map, then ``Linear(C -> D, no bias)`` and an optional
  ``BatchNorm1d``.  Used by the mobile families.
* :class:`FlattenHead` -- the "E" output layer of ArcFace / insightface IResNet:
  ``BN2d -> Dropout -> flatten(C*H*W) -> Linear -> BatchNorm1d``.

Both heads run their final projection in float32 even under ``torch.autocast`` (as insightface does), so
embeddings are always float32 tensors of shape (N, D).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from massface._checks import check_int, check_real

Activation = Literal["prelu", "relu", "none"]
HeadBN = Literal["affine", "fixed_gamma", "no_affine", "none"]


def make_activation(kind: Activation, channels: int) -> nn.Module:
    """Return the activation module named ``kind`` (PReLU is per channel, as in every face backbone)."""
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"activation must be one of 'prelu', 'relu', 'none'; got {kind!r}")


class ConvBNAct(nn.Sequential):
    """``Conv2d(bias=False) -> BatchNorm2d -> activation``; ``act="none"`` gives the "linear" block.

    Cost: MACs = H_out * W_out * C_out * (C_in / groups) * k^2; memory O(N * C_out * H_out * W_out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Activation = "prelu",
        bn_eps: float = 1e-5,
        padding: int | None = None,
    ) -> None:
        pad = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps),
            make_activation(act, out_channels),
        )


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): ``x * gate(W2 act(W1 avgpool(x)))``.

    ``gate`` is a sigmoid (SENet, IR-SE, EfficientNet) or a hard sigmoid (GhostNet). Cost O(N*C*H*W).
    """

    def __init__(
        self,
        channels: int,
        reduced: int,
        act: Activation = "relu",
        gate: Literal["sigmoid", "hard_sigmoid"] = "sigmoid",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if reduced < 1:
            raise ValueError(f"SqueezeExcite: reduced channels must be >= 1, got {reduced}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=bias)
        self.act = make_activation(act, reduced)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=bias)
        self.gate: nn.Module = nn.Sigmoid() if gate == "sigmoid" else nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _embedding_bn(embedding_size: int, mode: HeadBN) -> nn.Module:
    """BatchNorm1d after the embedding projection, in the convention named by ``mode``.

    ``affine``: learnable gamma/beta (TFace MobileFaceNet); ``fixed_gamma``: gamma frozen at 1, beta learns
    (insightface IResNet); ``no_affine``: no gamma/beta (TFace / face.evoLVe IR); ``none``: no BatchNorm.
    """
    if mode == "none":
        return nn.Identity()
    if mode not in ("affine", "fixed_gamma", "no_affine"):
        raise ValueError(f"head_bn must be one of 'affine', 'fixed_gamma', 'no_affine', 'none'; got {mode!r}")
    bn = nn.BatchNorm1d(embedding_size, eps=1e-5, affine=mode != "no_affine")
    if mode == "fixed_gamma":
        nn.init.constant_(bn.weight, 1.0)
        bn.weight.requires_grad_(False)
    return bn


def _project_fp32(linear: nn.Module, bn: nn.Module, x: Tensor) -> Tensor:
    """Run ``bn(linear(x))`` in float32, with autocast switched off when it is on (insightface's rule)."""
    x = x.float()
    kind = x.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        with torch.autocast(device_type=kind, enabled=False):
            return bn(linear(x))
    return bn(linear(x))


class GDCHead(nn.Module):
    """Global depthwise-conv embedding head (MobileFaceNet's GDC).

    ``x (N, C, k, k) -> depthwise k x k conv + BN -> [extra linear 1x1 C->C + BN] -> flatten -> Dropout(p)
    -> Linear(C -> D, bias=False) -> BatchNorm1d`` (the last BN is MassFace's ``fc_bn``; ``head_bn='none'``
    drops it). ``hidden=True`` inserts MassFace's extra 1x1 linear layer between the GDC and the bottleneck.
    Cost: MACs = C*k^2 + [C^2] + C*D per image.
    """

    def __init__(
        self,
        in_channels: int,
        embedding_size: int,
        kernel_size: int = 7,
        dropout: float = 0.0,
        head_bn: HeadBN = "affine",
        hidden: bool = False,
    ) -> None:
        super().__init__()
        self.gdc = ConvBNAct(in_channels, in_channels, kernel_size, groups=in_channels, act="none", padding=0)
        self.hidden = ConvBNAct(in_channels, in_channels, 1, act="none") if hidden else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_channels, embedding_size, bias=False)
        self.bn = _embedding_bn(embedding_size, head_bn)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(self.hidden(self.gdc(x)).flatten(1))
        return _project_fp32(self.linear, self.bn, x)


class FlattenHead(nn.Module):
    """ArcFace "E" output layer: ``BN2d -> Dropout(p) -> flatten (C*H*W) -> Linear(+bias) -> BatchNorm1d``.

    Cost: MACs = C*H*W*D per image (25088*512 = 12.8 M for the 7x7x512 IResNet map); params the same.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: int,
        embedding_size: int,
        dropout: float = 0.0,
        head_bn: HeadBN = "fixed_gamma",
    ) -> None:
        super().__init__()
        self.bn2d = nn.BatchNorm2d(in_channels, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_channels * spatial * spatial, embedding_size)
        self.bn = _embedding_bn(embedding_size, head_bn)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dropout(self.bn2d(x)).flatten(1)
        return _project_fp32(self.linear, self.bn, x)


def check_dropout(dropout: float) -> float:
    """Validate a dropout probability (the output-layer option of every backbone)."""
    return check_real("dropout", dropout, "a backbone", low=0.0, high=1.0, high_open=True)


def check_embedding_size(embedding_size: int) -> int:
    """Validate the embedding width D."""
    return check_int("embedding_size", embedding_size, "a backbone")


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, N(0, 0.01) linears, BN gamma 1 / beta 0 (frozen gammas untouched)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_input_size(input_size: int, stride: int = 16) -> int:
    """Validate the square input side: a positive multiple of the network's total ``stride``."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < stride or input_size % stride:
        raise ValueError(f"input_size must be a positive multiple of {stride} (112 for faces); got {input_size!r}")
    return input_size


class InputAffine(nn.Module):
    """``x * scale + shift`` per channel: maps massface's input, RGB ``(x / 255 - 0.5) / 0.5``, to the input a
    network was trained on when that mapping cannot be folded into its first convolution exactly.

    A zero-padded convolution sees the padding as 0 *in its own input space*; MagFace's networks take BGR
    ``x / 255``, whose 0 is massface's -1, so a fold of the affine map into the first conv's weights would
    change every border pixel. The channel order, by contrast, folds exactly and is folded (see
    :mod:`massface.backbones.pretrained`). ``scale`` and ``shift`` are buffers: they travel with the state dict.
    Cost: one fused multiply-add over the input.
    """

    def __init__(self, scale: Tensor | list[float], shift: Tensor | list[float]) -> None:
        super().__init__()
        scale_t = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
        shift_t = torch.as_tensor(shift, dtype=torch.float32).reshape(-1)
        if scale_t.numel() != 3 or shift_t.numel() != 3:
            raise ValueError(f"scale and shift must have 3 values (one per channel); got {scale_t.numel()} and "
                             f"{shift_t.numel()}")
        self.register_buffer("scale", scale_t)
        self.register_buffer("shift", shift_t)

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift.view(1, 3, 1, 1).to(x.dtype), x, self.scale.view(1, 3, 1, 1).to(x.dtype))

    def extra_repr(self) -> str:
        return f"scale={self.scale.tolist()}, shift={self.shift.tolist()}"


class EmbeddingNet(nn.Module):
    """Base of every backbone: ``features`` (body, total stride 16) then ``head`` (embedding), shape-checked.

    ``forward(x)`` takes ``(N, 3, S, S)`` images with ``S == self.input_size`` and returns ``(N, D)`` float32
    embeddings, ``D == self.embedding_size``. ``input_affine`` (an :class:`InputAffine`, ``None`` unless a
    pretrained network of another input convention was loaded) runs first.
    """

    features: nn.Module
    head: nn.Module
    input_affine: InputAffine | None

    def __init__(self, embedding_size: int, input_size: int) -> None:
        super().__init__()
        self.embedding_size = check_embedding_size(embedding_size)
        self.input_size = check_input_size(input_size)
        self.register_module("input_affine", None)

    def check_input(self, x: Tensor) -> None:
        """Raise a ValueError naming the expected shape when ``x`` is not ``(N, 3, S, S)`` (skipped when tracing)."""
        if torch.jit.is_tracing():
            return
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (N, 3, {self.input_size}, {self.input_size}); "
                f"got {tuple(x.shape)} (build it with input_size=... for another resolution)"
            )

    def stages(self) -> list[list[nn.Module]]:
        """The body's units grouped by resolution, the stem first: a new group starts at every downsampling
        unit but the very first unit (MobileFaceNet's stride-2 stem conv). The head is not included.

        IResNets: stem + 4 stages; MobileFaceNets: stem (56x56) + 3 stages; GhostNet / EfficientNet: stem +
        4 stages. Units are the children of ``features`` with ``nn.Sequential`` containers opened (they chain
        their children, so a unit's output is the next unit's input); a unit downsamples when a module inside it
        has a stride above 1. O(modules).
        """
        units = _chain_units(self.features)
        groups: list[list[nn.Module]] = [[]]
        for unit in units:
            if _downsamples(unit) and groups[-1]:
                groups.append([])
            groups[-1].append(unit)
        return groups

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        if self.input_affine is not None:
            x = self.input_affine(x)
        return self.head(self.features(x))


def _chain_units(module: nn.Module) -> list[nn.Module]:
    units: list[nn.Module] = []
    for child in module.children():
        units += _chain_units(child) if isinstance(child, nn.Sequential) else [child]
    return units


def _downsamples(unit: nn.Module) -> bool:
    for m in unit.modules():
        stride = getattr(m, "stride", 1)
        if isinstance(stride, int) and stride > 1 or isinstance(stride, tuple) and max(stride) > 1:
            return True
    return False


class GDCNet(EmbeddingNet):
    """Mobile-style network: ``features -> ConvBNAct(C -> 512, 1x1, PReLU) -> GDCHead``.

    The shared tail of MobileFaceNet, GhostNet and EfficientNet in the face-recognition field (TFace /
    cavaface): the 1x1 conv widens the 7x7 map to ``head_channels`` before the global depthwise conv.
    ``head_bn`` is the convention of the final BatchNorm1d (``'affine'``, massface's default; ``'no_affine'``,
    TFace torchkit's ``GDC``); ``fc_bn=False`` drops it whatever ``head_bn`` says (as in IResNet).
    """

    def __init__(
        self,
        features: nn.Module,
        feature_channels: int,
        embedding_size: int,
        input_size: int,
        dropout: float = 0.0,
        fc_bn: bool = True,
        head_channels: int = 512,
        head_hidden: bool = False,
        head_bn: HeadBN = "affine",
    ) -> None:
        super().__init__(embedding_size, input_size)
        self.features = nn.Sequential(features, ConvBNAct(feature_channels, head_channels, 1, act="prelu"))
        self.head = GDCHead(
            head_channels,
            embedding_size,
            kernel_size=input_size // 16,
            dropout=check_dropout(dropout),
            head_bn=head_bn if fc_bn else "none",
            hidden=head_hidden,
        )
        kaiming_init(self)
