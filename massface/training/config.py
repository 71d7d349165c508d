"""Typed training configuration: dataclasses loaded from YAML, ``--set a.b=value`` overrides, validation.

Every key is checked: an unknown key, a value of the wrong type or outside its allowed set is a
:class:`ConfigError` that names the dotted key (``loss.triplet.miner: 'minmax' is not one of ...``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

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
]


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a bad value; the message names the dotted key."""


@dataclass
class DataConfig:
    """Training data: format, location, P×K batch layout, loader workers and augmentation."""

    format: Literal["synthetic", "rec", "folder", "tfrecord"] = "synthetic"
    path: Optional[str] = None  # rec: train.rec; folder: root; tfrecord: the index file
    data_root: Optional[str] = None  # tfrecord shards directory
    synthetic_identities: int = 200
    synthetic_images_per_identity: int = 12
    synthetic_difficulty: float = 0.5
    synthetic_image_size: int = 112
    p: int = 41
    k: int = 5
    small: Literal["oversample", "take_all"] = "oversample"
    min_images: int = 2
    workers: int = 2
    transform: Literal["default", "light", "occlusion", "none"] = "default"

    def validate(self, path: str) -> None:
        _positive(f"{path}.p", self.p)
        _positive(f"{path}.k", self.k)
        _positive(f"{path}.min_images", self.min_images)
        _positive(f"{path}.synthetic_identities", self.synthetic_identities)
        _positive(f"{path}.synthetic_images_per_identity", self.synthetic_images_per_identity)
        if self.workers < 0:
            raise ConfigError(f"{path}.workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.synthetic_difficulty <= 1.0:
            raise ConfigError(f"{path}.synthetic_difficulty must be in [0, 1], got {self.synthetic_difficulty}")
        if self.format != "synthetic" and not self.path:
            raise ConfigError(f"{path}.path is required for format {self.format!r}")
        if self.format == "tfrecord" and not self.data_root:
            raise ConfigError(f"{path}.data_root is required for format 'tfrecord'")


@dataclass
class ModelConfig:
    """Backbone and embedding head."""

    backbone: str = "mobilefacenet"
    embedding_size: int = 512
    fc_bn: bool = False  # MassFace: BatchNorm after the bottleneck
    dropout: float = 0.0
    input_size: int = 112  # side of the square input; any multiple of 16
    init_checkpoint: Optional[str] = None  # stage-1 weights (model state) to start from
    channels_last: bool = False

    def validate(self, path: str) -> None:
        _positive(f"{path}.embedding_size", self.embedding_size)
        if self.input_size < 16 or self.input_size % 16:
            raise ConfigError(f"{path}.input_size must be a positive multiple of 16, got {self.input_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout must be in [0, 1), got {self.dropout}")


MinerName = Literal["all", "hardest", "min_min", "min_max", "random", "semihard"]


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
    max_triplets: Optional[int] = None


@dataclass
class HeadConfig:
    """The classification part: a margin-softmax head over the training identities."""

    name: Optional[str] = None  # softmax | normface | sphereface | cosface | arcface | combined | curricularface | ...
    weight: float = 1.0
    s: float = 64.0
    m: Optional[float] = None  # the head's default when omitted
    pretrain_steps: int = 0  # train the head alone (backbone frozen) first
    lr_scale: float = 1.0


@dataclass
class LossConfig:
    triplet: TripletConfig = field(default_factory=TripletConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def validate(self, path: str) -> None:
        if not self.triplet.enabled and not self.head.name:
            raise ConfigError(f"{path}: enable loss.triplet or name a loss.head — there is nothing to train")
        if self.triplet.max_triplets is not None:
            _positive(f"{path}.triplet.max_triplets", self.triplet.max_triplets)
        if self.head.pretrain_steps < 0:
            raise ConfigError(f"{path}.head.pretrain_steps must be >= 0, got {self.head.pretrain_steps}")
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
    max_batches_per_pool: Optional[int] = None
    # offline
    refresh_every: int = 0  # steps between re-mining; 0 = when the mined triplets are used up
    subset: Optional[int] = None  # images embedded per refresh (uniform random); null = the whole set
    index: Literal["auto", "flat", "ivf", "identity", "hnsw"] = "auto"
    neighbours: int = 32  # k nearest other-identity neighbours per anchor
    nprobe: int = 64  # ivf / identity lists probed
    nlist: Optional[int] = None  # ivf lists (default 4·√N)
    hnsw_m: int = 32
    ef_search: int = 128
    embed_batch_size: int = 256
    # xbm
    memory_size: int = 8192
    memory_start: int = 0  # steps before the memory is used as reference (XBM warm-up)

    def validate(self, path: str) -> None:
        for name in ("scale", "neighbours", "nprobe", "hnsw_m", "ef_search", "embed_batch_size", "memory_size"):
            _positive(f"{path}.{name}", getattr(self, name))
        for name in ("max_batches_per_pool", "subset", "nlist"):
            if getattr(self, name) is not None:
                _positive(f"{path}.{name}", getattr(self, name))
        for name in ("refresh_every", "memory_start"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{path}.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw", "adam", "adagrad"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = 1e-8
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    no_decay_bn_bias: bool = True

    def validate(self, path: str) -> None:
        if self.lr <= 0:
            raise ConfigError(f"{path}.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"{path}.weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2:
            raise ConfigError(f"{path}.betas must have two values, got {self.betas}")


@dataclass
class ScheduleConfig:
    kind: Literal["constant", "step", "poly", "cosine"] = "cosine"
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # for "step", in optimizer steps
    gamma: float = 0.1
    power: float = 2.0
    min_lr: float = 0.0

    def validate(self, path: str) -> None:
        if self.warmup_steps < 0:
            raise ConfigError(f"{path}.warmup_steps must be >= 0, got {self.warmup_steps}")
        if sorted(self.milestones) != list(self.milestones):
            raise ConfigError(f"{path}.milestones must be increasing, got {self.milestones}")


@dataclass
class TrainConfig:
    steps: int = 1000
    amp: Literal["none", "fp16", "bf16"] = "none"
    grad_accum: int = 1
    clip_norm: Optional[float] = None
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    on_nan: Literal["stop", "skip"] = "stop"
    device: str = "auto"
    deterministic: bool = False

    def validate(self, path: str) -> None:
        _positive(f"{path}.steps", self.steps)
        _positive(f"{path}.grad_accum", self.grad_accum)
        _positive(f"{path}.log_every", self.log_every)
        _positive(f"{path}.checkpoint_every", self.checkpoint_every)
        _positive(f"{path}.keep_checkpoints", self.keep_checkpoints)
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ConfigError(f"{path}.clip_norm must be > 0 or null, got {self.clip_norm}")


@dataclass
class EvalConfig:
    sets: list[str] = field(default_factory=list)  # .bin files or directories holding them
    every: int = 0  # steps; 0 = only at the end
    batch_size: int = 64
    flip: bool = True


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


def _positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key} must be >= 1, got {value}")


# ---------------------------------------------------------------------------------------------- building
def _check(key: str, tp: Any, value: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(key, inner[0], value)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_check(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(f"unknown key {where}{unknown[0]!s}; {path or 'config'} accepts {sorted(names)}")
    kwargs = {name: _check(f"{path}.{name}" if path else name, hints[name], value) for name, value in data.items()}
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(path or "config")
    return obj


def config_from_dict(data: dict) -> Config:
    """Build and validate a :class:`Config` from a nested mapping."""
    cfg = _build(Config, data, "")
    if cfg.mining.mode != "online" and not cfg.loss.triplet.enabled:
        raise ConfigError(f"mining.mode: {cfg.mining.mode!r} mines triplets but loss.triplet is disabled")
    if cfg.mining.mode in ("semi_online", "offline") and cfg.data.p * cfg.data.k < 3:
        raise ConfigError(f"mining.mode {cfg.mining.mode!r}: a batch of data.p × data.k = "
                          f"{cfg.data.p * cfg.data.k} images cannot hold one whole triplet (needs >= 3)")
    return cfg


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML: numbers, booleans, null, lists) to ``data``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key part")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_config(path: Optional[Union[str, Path]], overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML file (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return config_from_dict(apply_overrides(data, list(overrides or [])))
