"""Typed training configuration: dataclasses loaded from YAML, ``--set a.b=value`` overrides, validation.

Every key is checked: an unknown key, a value of the wrong type or outside its allowed set is a
:class:`ConfigError` that names the dotted key (``loss.triplet.miner: 'minmax' is not one of ...``,
``optim.lr must be a finite number > 0, got nan``).

Values are checked by meaning, not only by type, with one small set of validators (:func:`_integer`,
:func:`_number`, :func:`_path`, :func:`_name`, :func:`_device`): counts and sizes are integers in a bounded
range (at most ``10**9``, so a ``10**30`` is refused), every float is finite, and the keys that depend on
each other are checked together (``schedule.warmup_steps < train.steps``, milestones inside the run,
``schedule.min_lr <= optim.lr``, ...). ``schedule.gamma`` is a decay factor: it must lie in (0, 1].

Config text (files and ``--set`` values) is read as YAML with safe semantics (no Python object tags), and
is refused with a :class:`ConfigError` when it is not UTF-8, holds duplicate keys, nests deeper than
``_MAX_DEPTH`` levels or expands (aliases included) to more than ``_MAX_NODES`` nodes, or is recursive.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from massface.data._guard import DEFAULT_MAX_PIXELS

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "TripletConfig",
    "HeadConfig",
    "LossConfig",
    "MiningConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "EvalConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "parse_value",
    "check_schedule",
]


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a bad value; the message names the dotted key."""


# ------------------------------------------------------------------------------------------- bounds
_MAX_SIZE = 10**9  # counts, sizes, steps: generous, but a typo like 10**30 is refused
_MAX_WORKERS = 1024  # data loader processes
_MAX_SEED = 2**63 - 1
_MAX_INT = 2**63 - 1  # any integer key, before its own range check
_MAX_DEPTH = 32  # nesting of YAML collections (a config uses 4)
_MAX_NODES = 10_000  # YAML nodes, after alias expansion too (a config uses ~200)
_MAX_FILE_BYTES = 4 * 2**20  # a config file is a few KiB
_DEVICE_TYPES = ("cpu", "cuda", "mps")


# ----------------------------------------------------------------------------------------- validators
def _show(value: Any) -> str:
    """A short, always printable rendering (``repr``) of a user-supplied value for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1  # str() of a huge int may itself be refused
        return f"{'-' if value < 0 else ''}an integer of about {digits} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(key: str, value: int, lo: int = 1, hi: int = _MAX_SIZE) -> None:
    """``lo <= value <= hi`` (``value`` is already an int)."""
    if not lo <= value <= hi:
        raise ConfigError(f"{key} must be >= {lo} and <= {hi:_}, got {_show(value)}")


def _number(key: str, value: float, lo: float | None = None, hi: float | None = None, *,
            lo_open: bool = False, hi_open: bool = False, hi_name: str | None = None) -> None:
    """A finite float within the given bounds (open or closed); ``hi_name`` names a bound set by another key."""
    ok = math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if ok:
        return
    hi_text = f"{hi_name} = {hi:g}" if hi_name else (f"{hi:g}" if hi is not None else "")
    if lo is not None and hi is not None:
        want = f"in {'(' if lo_open else '['}{lo:g}, {hi_text}{')' if hi_open else ']'}"
    elif lo is not None:
        want = f"{'>' if lo_open else '>='} {lo:g}"
    elif hi is not None:
        want = f"{'<' if hi_open else '<='} {hi_text}"
    else:
        want = ""
    raise ConfigError(f"{key} must be a finite number{' ' + want if want else ''}, got {_show(value)}")


def _path(key: str, value: str | None, optional: bool = True) -> None:
    """A file or directory name: not empty, not only whitespace, no NUL byte (``None`` allowed if optional)."""
    if value is None and optional:
        return
    if value is None or not value.strip() or "\x00" in value:
        raise ConfigError(f"{key} must be a non-empty path{' or null' if optional else ''}, got {_show(value)}")


def _name(key: str, value: str | None, optional: bool = False) -> None:
    """A non-blank name (``None`` allowed if optional)."""
    if value is None and optional:
        return
    if value is None or not value.strip():
        raise ConfigError(f"{key} must be a non-empty name{' or null' if optional else ''}, got {_show(value)}")


def _device(key: str, value: str) -> None:
    """``"auto"`` or a device string torch parses, of type cpu / cuda / mps; the device need not exist."""
    if value == "auto":
        return
    import torch  # only to parse the string; nothing is allocated

    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in _DEVICE_TYPES:
        raise ConfigError(f"{key} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {_show(value)}")


# -------------------------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    """Training data: format, location, P×K batch layout, loader workers and augmentation."""

    format: Literal["synthetic", "rec", "folder", "tfrecord"] = "synthetic"
    path: str | None = None  # rec: train.rec; folder: root; tfrecord: the index file
    data_root: str | None = None  # tfrecord shards directory
    synthetic_identities: int = 200
    synthetic_images_per_identity: int = 12
    synthetic_difficulty: float = 0.5
    synthetic_image_size: int = 112
    synthetic_duplicates: float = 0.0  # share of SynthFaces labels showing another label's person
    synthetic_label_noise: float = 0.0  # share of SynthFaces images under a wrong label
    keep_indices: str | None = None  # file of sample indices to train on (massface clean's keep_indices.txt)
    sampler: Literal["pk", "neighbour"] = "pk"  # neighbour: batches of look-alike identities (NeighbourPKSampler)
    neighbour_group: int = 4  # identities per look-alike group
    neighbour_hard_fraction: float = 1.0  # share of a batch's identities that come in groups
    neighbour_k: int = 16  # nearest identities kept per identity in the graph
    neighbour_source: Literal["head", "embeddings"] = "head"  # class centres: the head's weights, or mean embeddings
    neighbour_refresh: int = 1  # rebuild the graph every this many epochs (at the epoch's start)
    p: int = 41
    k: int = 5
    small: Literal["oversample", "take_all"] = "oversample"
    min_images: int = 2
    workers: int = 2
    transform: Literal["default", "light", "occlusion", "none"] = "default"
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest decoded image (width × height) a reader accepts: max_pixels=

    def validate(self, path: str) -> None:
        for name in ("p", "k", "min_images", "synthetic_identities", "synthetic_images_per_identity",
                     "synthetic_image_size", "max_pixels"):
            _integer(f"{path}.{name}", getattr(self, name))
        _integer(f"{path}.workers", self.workers, 0, _MAX_WORKERS)
        _number(f"{path}.synthetic_difficulty", self.synthetic_difficulty, 0.0, 1.0)
        _number(f"{path}.synthetic_duplicates", self.synthetic_duplicates, 0.0, 0.5)
        _number(f"{path}.synthetic_label_noise", self.synthetic_label_noise, 0.0, 1.0, hi_open=True)
        _path(f"{path}.keep_indices", self.keep_indices)
        for name in ("neighbour_group", "neighbour_k", "neighbour_refresh"):
            _integer(f"{path}.{name}", getattr(self, name))
        _number(f"{path}.neighbour_hard_fraction", self.neighbour_hard_fraction, 0.0, 1.0)
        _path(f"{path}.path", self.path)
        _path(f"{path}.data_root", self.data_root)
        if self.format != "synthetic" and not self.path:
            raise ConfigError(f"{path}.path is required for format {self.format!r}")
        if self.format == "tfrecord" and not self.data_root:
            raise ConfigError(f"{path}.data_root is required for format 'tfrecord'")


@dataclass
class ModelConfig:
    """Backbone and embedding head."""

    backbone: str = "mobilefacenet"
    embedding_size: int = 512
    fc_bn: bool = True  # BatchNorm1d after the embedding (MassFace --fc_bn, every backbone's default); false removes it
    dropout: float = 0.0
    input_size: int = 112  # side of the square input; any multiple of 16
    init_checkpoint: str | None = None  # weights to start from: a massface run, or a pretrained file
    init_source: Literal["auto", "arcface_torch", "tface", "adaface", "magface", "massface"] = "auto"  # init_checkpoint's family (auto: detect)
    channels_last: bool = False
    lr_scale: float = 1.0  # backbone lr = optim.lr × lr_scale (the head's is optim.lr × loss.head.lr_scale)
    freeze_bn: bool = False  # BatchNorm running statistics frozen while training (affine weights still learn)
    freeze_stages: int = 0  # the first N stage groups frozen (1 = the stem; backbone.stages() lists them)
    freeze_steps: int | None = None  # ... until this step (None: the whole run)

    def validate(self, path: str) -> None:
        _name(f"{path}.backbone", self.backbone)
        _integer(f"{path}.embedding_size", self.embedding_size)
        if self.input_size < 16 or self.input_size % 16 or self.input_size > _MAX_SIZE:
            raise ConfigError(f"{path}.input_size must be a positive multiple of 16 (<= {_MAX_SIZE:_}), "
                              f"got {_show(self.input_size)}")
        _number(f"{path}.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        _path(f"{path}.init_checkpoint", self.init_checkpoint)
        _number(f"{path}.lr_scale", self.lr_scale, 0.0, lo_open=True)
        _integer(f"{path}.freeze_stages", self.freeze_stages, 0, 64)
        if self.freeze_steps is not None:
            _integer(f"{path}.freeze_steps", self.freeze_steps)
            if not self.freeze_stages:
                raise ConfigError(f"{path}.freeze_steps needs {path}.freeze_stages (the stages to freeze)")


MinerName = Literal["all", "hardest", "min_min", "min_max", "random", "semihard", "distance_weighted"]


@dataclass
class TripletConfig:
    """The metric part: triplet loss fed by a miner."""

    enabled: bool = True
    weight: float = 1.0
    margin: float = 0.25
    miner: MinerName = "min_max"
    distance: Literal["squared_euclidean", "euclidean", "cosine"] = "squared_euclidean"
    soft: bool = False
    reduction: Literal["mean", "nonzero_mean", "sum"] = "mean"
    global_mining: bool = True  # online / xbm: mine over the batch gathered from all ranks (with gradient)
    # online global mining under DDP: each rank mines its own anchors against the gathered batch (the same gradient,
    # 1/W of the work; the miner_* logs then describe rank 0's anchors); false: every rank mines the whole batch
    shard_mining: bool = True
    max_triplets: int | None = None
    fused: bool = True  # online all / semihard without guards or max_triplets: FusedTripletLoss (no triplet list)
    # false-negative guards (massface.mining.guards), for noisy identity sets
    negative_range: list[float] | None = None  # [lo, hi]: only negatives at distance in [lo, hi] (cosine: similarity)
    skip_nearest: int = 0  # the k nearest negatives of each anchor are never used
    same_identity_pairs: str | None = None  # file of label pairs that are one person ("a b" per line; massface clean)
    false_negative_gap: float | None = None  # drop n when d(a, n) < min_p d(a, p) - gap

    def validate(self, path: str) -> None:
        _number(f"{path}.weight", self.weight, 0.0)
        _number(f"{path}.margin", self.margin, 0.0)
        if self.max_triplets is not None:
            _integer(f"{path}.max_triplets", self.max_triplets)
        if self.negative_range is not None:
            if len(self.negative_range) != 2 or self.negative_range[0] > self.negative_range[1]:
                raise ConfigError(f"{path}.negative_range must be [lo, hi] with lo <= hi, got "
                                  f"{_show(self.negative_range)}")
        _integer(f"{path}.skip_nearest", self.skip_nearest, 0, _MAX_SIZE)
        _path(f"{path}.same_identity_pairs", self.same_identity_pairs)
        if self.false_negative_gap is not None:
            _number(f"{path}.false_negative_gap", self.false_negative_gap, 0.0)


@dataclass
class HeadConfig:
    """The classification part: a margin-softmax head over the training identities."""

    name: str | None = None  # softmax | normface | sphereface | cosface | arcface | combined | curricularface | ...
    weight: float = 1.0
    s: float | None = None  # scale; the head's default when omitted (64; SphereFace: None = the feature norm)
    m: float | None = None  # margin; the head's default when omitted; its range is checked by the head
    pretrain_steps: int = 0  # train the head alone (backbone frozen) first
    lr_scale: float = 1.0
    init_from_checkpoint: bool = False  # centres from model.init_checkpoint's head (massface run, AdaFace, MagFace)
    interclass_filter: float | None = None  # arcface_torch's filter: non-target cos above this counts as 0

    def validate(self, path: str) -> None:
        _name(f"{path}.name", self.name, optional=True)
        if self.interclass_filter is not None:
            _number(f"{path}.interclass_filter", self.interclass_filter, -1.0, 1.0, lo_open=True)
        _number(f"{path}.weight", self.weight, 0.0)
        if self.s is not None:
            _number(f"{path}.s", self.s, 0.0, lo_open=True)
        if self.m is not None:
            _number(f"{path}.m", self.m)
        _integer(f"{path}.pretrain_steps", self.pretrain_steps, 0)
        _number(f"{path}.lr_scale", self.lr_scale, 0.0, lo_open=True)


@dataclass
class LossConfig:
    """The training objective: the triplet part and the classification head, weighted."""

    triplet: TripletConfig = field(default_factory=TripletConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def validate(self, path: str) -> None:
        if not self.triplet.enabled and not self.head.name:
            raise ConfigError(f"{path}: enable loss.triplet or name a loss.head — there is nothing to train")
        active = ([f"{path}.triplet.weight"] if self.triplet.enabled else []) + (
            [f"{path}.head.weight"] if self.head.name else [])
        weights = ([self.triplet.weight] if self.triplet.enabled else []) + (
            [self.head.weight] if self.head.name else [])
        if not any(weights):
            raise ConfigError(f"{' and '.join(active)} {'are both' if len(active) > 1 else 'is'} 0 — "
                              "nothing would be trained; at least one must be > 0")
        if self.head.pretrain_steps and not self.head.name:
            raise ConfigError(f"{path}.head.pretrain_steps needs loss.head.name")


@dataclass
class MiningConfig:
    """Where the miner looks: the batch (``online``), the batch plus a memory of recent embeddings (``xbm``),
    a pool of ``scale`` batches embedded without gradient (``semi_online``), or the embedded training set
    searched with a faiss index (``offline``). The strategy is always ``loss.triplet.miner``."""

    mode: Literal["online", "semi_online", "offline", "xbm"] = "online"
    # semi_online
    scale: int = 10  # pool = scale × (P×K) images (scale·P identities × K)
    pool_bn: Literal["eval", "train"] = "eval"  # BatchNorm in the pool passes; "train" = MassFace
    max_batches_per_pool: int | None = None
    # offline
    refresh_every: int = 0  # steps between re-mining; 0 = when the mined triplets are used up
    subset: int | None = None  # images embedded per refresh (uniform random); null = the whole set
    index: Literal["auto", "flat", "ivf", "identity", "hnsw"] = "auto"
    neighbours: int = 32  # k nearest other-identity neighbours per anchor
    nprobe: int = 64  # ivf / identity lists probed
    nlist: int | None = None  # ivf lists (default 4·√N)
    hnsw_m: int = 32
    ef_search: int = 128
    embed_batch_size: int = 256
    # xbm
    memory_size: int = 8192
    memory_start: int = 0  # steps before the memory is used as reference (XBM warm-up)

    def validate(self, path: str) -> None:
        for name in ("scale", "neighbours", "nprobe", "hnsw_m", "ef_search", "embed_batch_size", "memory_size"):
            _integer(f"{path}.{name}", getattr(self, name))
        for name in ("max_batches_per_pool", "subset", "nlist"):
            if getattr(self, name) is not None:
                _integer(f"{path}.{name}", getattr(self, name))
        for name in ("refresh_every", "memory_start"):
            _integer(f"{path}.{name}", getattr(self, name), 0)


@dataclass
class OptimConfig:
    """The optimizer: ``momentum`` applies to SGD, ``betas`` to Adam/AdamW, ``eps`` to Adam/AdamW/Adagrad."""

    name: Literal["sgd", "adamw", "adam", "adagrad"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = 1e-8
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    no_decay_bn_bias: bool = True

    def validate(self, path: str) -> None:
        _number(f"{path}.lr", self.lr, 0.0, lo_open=True)
        _number(f"{path}.momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _number(f"{path}.weight_decay", self.weight_decay, 0.0)
        _number(f"{path}.eps", self.eps, 0.0, lo_open=True)
        if len(self.betas) != 2:
            raise ConfigError(f"{path}.betas must have two values, got {_show(self.betas)}")
        for i, beta in enumerate(self.betas):
            _number(f"{path}.betas[{i}]", beta, 0.0, 1.0, hi_open=True)


@dataclass
class ScheduleConfig:
    """The learning-rate schedule over ``train.steps`` (see :func:`massface.training.schedules.lr_factor`)."""

    kind: Literal["constant", "step", "poly", "cosine"] = "cosine"
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # for "step", in optimizer steps
    gamma: float = 0.1  # "step": the lr is multiplied by gamma at each milestone; a decay, in (0, 1]
    power: float = 2.0
    min_lr: float = 0.0

    def validate(self, path: str) -> None:
        _integer(f"{path}.warmup_steps", self.warmup_steps, 0)
        for i, milestone in enumerate(self.milestones):
            _integer(f"{path}.milestones[{i}]", milestone)
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ConfigError(f"{path}.milestones must be strictly increasing, got {_show(self.milestones)}")
        _number(f"{path}.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        _number(f"{path}.power", self.power, 0.0, lo_open=True)
        _number(f"{path}.min_lr", self.min_lr, 0.0)


def check_schedule(schedule: ScheduleConfig, steps: int, lr: float, path: str = "schedule") -> None:
    """Check ``schedule`` on its own and against the run it drives (``steps`` = ``train.steps``,
    ``lr`` = ``optim.lr``): warm-up shorter than the run, milestones inside it, ``min_lr <= lr``.
    Raises :class:`ConfigError` naming the key. Used by :func:`config_from_dict` and ``build_scheduler``."""
    schedule.validate(path)
    _integer("train.steps", steps)
    _number("optim.lr", lr, 0.0, lo_open=True)
    if schedule.warmup_steps >= steps:
        raise ConfigError(f"{path}.warmup_steps must be < train.steps ({steps}), got {schedule.warmup_steps}")
    for i, milestone in enumerate(schedule.milestones):
        if milestone >= steps:
            raise ConfigError(f"{path}.milestones[{i}] must be < train.steps ({steps}), got {milestone}")
    _number(f"{path}.min_lr", schedule.min_lr, 0.0, lr, hi_name="optim.lr")


@dataclass
class TrainConfig:
    """The loop: length, mixed precision, accumulation, clipping, logging, checkpoints, NaN policy, device."""

    steps: int = 1000
    amp: Literal["none", "fp16", "bf16"] = "none"
    grad_accum: int = 1
    clip_norm: float | None = None
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    on_nan: Literal["stop", "skip"] = "stop"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    deterministic: bool = False
    # collapse alarm (PML #20): the miner's statistics say the embedding collapsed for collapse_steps steps
    collapse_steps: int = 200  # 0: off
    collapse_d_an: float = 1e-3  # collapsed when mean d_an <= this (cosine: mean similarity >= 1 - this)
    collapse_active: float | None = None  # ... or when the active fraction >= this (e.g. 1.0); None: not used
    on_collapse: Literal["warn", "stop"] = "warn"
    # mining probe (massface.training.mining_probe): a fixed P×K batch mined every probe_every steps
    probe_every: int = 0  # 0: off
    probe_identities: int = 16  # P of the probe batch; K is data.k
    triplet_grid_steps: list[int] = field(default_factory=list)  # steps writing triplets/step_N.png (probe)

    def validate(self, path: str) -> None:
        for name in ("steps", "grad_accum", "log_every", "checkpoint_every", "keep_checkpoints"):
            _integer(f"{path}.{name}", getattr(self, name))
        _integer(f"{path}.collapse_steps", self.collapse_steps, 0)
        _number(f"{path}.collapse_d_an", self.collapse_d_an, 0.0)
        _integer(f"{path}.probe_every", self.probe_every, 0)
        _integer(f"{path}.probe_identities", self.probe_identities, 2)
        for i, step in enumerate(self.triplet_grid_steps):
            _integer(f"{path}.triplet_grid_steps[{i}] (a step of train.steps)", step, 1, self.steps)
        if self.collapse_active is not None:
            _number(f"{path}.collapse_active", self.collapse_active, 0.0, 1.0)
        if self.clip_norm is not None:
            _number(f"{path}.clip_norm", self.clip_norm, 0.0, lo_open=True)
        _device(f"{path}.device", self.device)


@dataclass
class EvalConfig:
    """Verification sets evaluated during (every ``every`` steps) and after training."""

    sets: list[str] = field(default_factory=list)  # .bin files or directories holding them
    every: int = 0  # steps; 0 = only at the end
    batch_size: int = 64
    flip: bool = True

    def validate(self, path: str) -> None:
        for i, item in enumerate(self.sets):
            _path(f"{path}.sets[{i}]", item, optional=False)
        _integer(f"{path}.every", self.every, 0)
        _integer(f"{path}.batch_size", self.batch_size)


@dataclass
class Config:
    """A whole training run."""

    seed: int = 0
    output_dir: str = "runs/massface"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self, path: str = "") -> None:
        """The top-level keys and the checks that span sections (each section validated itself already)."""
        _integer("seed", self.seed, 0, _MAX_SEED)
        _path("output_dir", self.output_dir, optional=False)
        check_schedule(self.schedule, self.train.steps, self.optim.lr)
        if self.mining.mode != "online" and not self.loss.triplet.enabled:
            raise ConfigError(f"mining.mode: {self.mining.mode!r} mines triplets but loss.triplet is disabled")
        if self.loss.head.init_from_checkpoint and not (self.loss.head.name and self.model.init_checkpoint):
            raise ConfigError("loss.head.init_from_checkpoint needs loss.head.name and model.init_checkpoint "
                              "(the checkpoint whose head holds the class centres)")
        if self.data.sampler == "neighbour" and self.mining.mode == "offline":
            raise ConfigError("data.sampler: 'neighbour' lays out P×K batches; mining.mode 'offline' trains on "
                              "batches of mined triplets instead")
        if self.data.sampler == "neighbour" and self.data.neighbour_source == "head" and not self.loss.head.name:
            raise ConfigError("data.neighbour_source: 'head' needs loss.head.name (its weights are the class "
                              "centres); use 'embeddings' without a head")
        if self.mining.mode in ("semi_online", "offline") and self.data.p * self.data.k < 3:
            raise ConfigError(f"mining.mode {self.mining.mode!r}: a batch of data.p × data.k = "
                              f"{self.data.p * self.data.k} images cannot hold one whole triplet (needs >= 3)")


# ---------------------------------------------------------------------------------------------- building
def _check(key: str, tp: Any, value: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Union or origin is types.UnionType:  # Optional[X], X | None
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(key, inner[0], value)
    if origin is Literal:
        if isinstance(value, bool) or value not in args:  # (True == 1: a bool never matches a name)
            raise ConfigError(f"{key}: {_show(value)} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {_show(value)}")
        return [_check(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
        if abs(value) > _MAX_INT:
            raise ConfigError(f"{key} must be an integer of at most {_MAX_INT:_}, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{key} must be a finite number, got {_show(value)}") from None
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_show(value)}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _nonfinite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, list) and any(_nonfinite(v) for v in value)


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    for name in data:
        if not isinstance(name, str):
            raise ConfigError(f"{path or 'config'}: key {_show(name)} is not a name")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        name = unknown[0] if len(unknown[0]) <= 80 else unknown[0][:77] + "..."
        raise ConfigError(f"unknown key {where}{name}; {path or 'config'} accepts {sorted(names)}")
    kwargs = {name: _check(f"{path}.{name}" if path else name, hints[name], value) for name, value in data.items()}
    obj = cls(**kwargs)
    obj.validate(path)
    # the net under the validators: no float anywhere may be NaN or infinite
    for f in dataclasses.fields(obj):
        if _nonfinite(getattr(obj, f.name)):
            key = f"{path}.{f.name}" if path else f.name
            raise ConfigError(f"{key} must be finite, got {_show(getattr(obj, f.name))}")
    return obj


def config_from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a nested mapping."""
    return _build(Config, data, "")


def config_to_dict(config: Config) -> dict:
    """Returns ``config`` as a nested dict of plain values (what ``config.yaml`` and checkpoints hold)."""
    return dataclasses.asdict(config)


# ------------------------------------------------------------------------------------------ YAML reading
class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python object tags) that refuses duplicate keys, nesting deeper than
    ``_MAX_DEPTH``, recursive documents and documents expanding (aliases included) to over ``_MAX_NODES``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._paths: dict[int, str] = {}  # id(mapping node) -> dotted key, for messages

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - yaml.composer.Composer hook
        self._depth += 1
        self._nodes += 1
        try:
            if self._nodes > _MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {_MAX_NODES:_} values", self.peek_event().start_mark)
            if self._depth > _MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {_MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def check_node(self, root: yaml.Node) -> None:
        """Expanded size, expanded depth and cycles of the node graph, without recursion; records paths."""
        sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, expanded depth)
        on_path: set[int] = set()
        stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
        while stack:
            node, path, done = stack.pop()
            ident = id(node)
            children = self._children(node, path)
            if done:
                on_path.discard(ident)
                total = 1 + sum(sizes[id(c)][0] for c, _ in children)
                depth = 1 + max((sizes[id(c)][1] for c, _ in children), default=0)
                if total > _MAX_NODES or depth > _MAX_DEPTH:
                    raise yaml.composer.ComposerError(
                        None, None, f"the document expands to more than {_MAX_NODES:_} values or deeper than "
                        f"{_MAX_DEPTH} levels (aliases are expanded)", node.start_mark)
                sizes[ident] = (total, depth)
                continue
            if ident in sizes:
                continue
            if ident in on_path:
                raise yaml.composer.ComposerError(None, None, "a recursive alias (a value containing itself)",
                                                  node.start_mark)
            on_path.add(ident)
            if isinstance(node, yaml.MappingNode):
                self._paths.setdefault(ident, path)
            stack.append((node, path, True))
            for child, child_path in children:
                if id(child) in on_path:
                    raise yaml.composer.ComposerError(None, None, "a recursive alias (a value containing itself)",
                                                      child.start_mark)
                if id(child) not in sizes:
                    stack.append((child, child_path, False))

    @staticmethod
    def _children(node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]]:
        if isinstance(node, yaml.SequenceNode):
            return [(c, f"{path}[{i}]") for i, c in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out = []
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                out.append((key, path))
                out.append((value, f"{path}.{name}" if path else str(name)))
            return out
        return []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # noqa: D102
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            where = self._paths.get(id(node), "")
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` — its keys may be overridden here
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base class reports the unhashable key
                line = key_node.start_mark.line + 1
                if not isinstance(key, str):  # `1:` or `yes:` — no config key is a number or a boolean
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {_show(key)}{' in ' + where if where else ''} at line {line} is not a "
                        "name (quote it to use it as text)", key_node.start_mark)
                if key in seen:
                    dotted = f"{where}.{key}" if where else str(key)
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show(dotted)} at line {line} (first given at line "
                        f"{seen[key]})", key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document with :class:`_BoundedLoader`; YAML problems raise ``yaml.YAMLError``
    (whose marks call the text ``name``)."""
    loader = _BoundedLoader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        loader.check_node(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(err: BaseException) -> str:
    if isinstance(err, yaml.YAMLError):
        return str(err)
    if isinstance(err, RecursionError):
        return "the document nests too deeply"
    if isinstance(err, ValueError) and "integer string conversion" in str(err):
        return "an integer with thousands of digits"
    return f"{type(err).__name__}: {_show(str(err))}"


_LOAD_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError, MemoryError)


def parse_value(raw: str, key: str, where: str | None = None) -> Any:
    """Parse one override value as YAML (numbers, booleans, null, lists; an empty value is ``""``).

    ``"false"`` is ``False``, ``"1e-3"`` stays a string (YAML 1.1 floats need a dot: ``1.0e-3``), ``.nan`` is
    NaN (refused later by the key's check). A malformed value raises :class:`ConfigError` naming ``key``
    (and ``where``, e.g. the whole ``--set`` item). Shared by ``--set`` of ``massface train`` and
    ``massface export-onnx``.
    """
    if not isinstance(raw, str):
        raise ConfigError(f"{where or key}: the value of {key} must be text, got {type(raw).__name__}")
    if not raw.strip():
        return ""
    try:
        return _load_yaml(raw, f"<value of {key}>")
    except _LOAD_ERRORS as err:
        raise ConfigError(f"{where + ': ' if where else ''}{key}: value {_show(raw)} is not a valid YAML "
                          f"value: {_yaml_problem(err)}") from None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML: numbers, booleans, null, lists) to ``data``."""
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"override {_show(item)} must be a string like key.path=value")
        if "=" not in item:
            raise ConfigError(f"override {_show(item)} must look like key.path=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"override {_show(item)} has an empty key part")
        value = parse_value(raw, key, f"override {_show(item)}")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:  # absent, or `section:` left empty in the file
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {_show(item)}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: Any = {}
    if path is not None:
        try:
            path = Path(path)
            exists, regular = path.exists(), path.is_file()
        except (OSError, ValueError, TypeError) as err:  # e.g. a NUL byte in the name
            raise ConfigError(f"config file {_show(str(path))} cannot be used: {err}") from None
        if not exists:
            raise ConfigError(f"config file {path} does not exist")
        if not regular:
            raise ConfigError(f"config file {path} is not a regular file")
        try:
            with path.open("rb") as fh:
                raw = fh.read(_MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        if len(raw) > _MAX_FILE_BYTES:
            raise ConfigError(f"config file {path} is larger than {_MAX_FILE_BYTES // 2**20} MiB; "
                              "a config is a few KiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[:err.start].count(b"\n") + 1
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}, line {line}: "
                              f"{raw[err.start:err.start + 1]!r})") from None
        try:
            data = _load_yaml(text, str(path))
        except _LOAD_ERRORS as err:
            raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(err)}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return config_from_dict(apply_overrides(data, list(overrides or [])))
