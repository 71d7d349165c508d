"""Everything a :class:`~massface.training.config.Config` names, one factory per part.

Read in the order the trainer calls them: :func:`build_dataset` → :func:`build_sampler` / :func:`build_loader`
→ :func:`build_model` → :func:`build_head` → :func:`build_miner` → :data:`MINING_MODES` (the metric loss and
the batch source of ``mining.mode``) → :func:`build_criterion` → :class:`Objective` → :func:`build_param_groups`
→ :func:`build_optimizer` → :func:`~massface.training.schedules.build_scheduler`.

Every factory passes every key of its config section explicitly; the config is the one source of defaults
(``None`` where a key means "the component's own default", e.g. ``loss.head.s``). Backbone and head options
are checked against their constructor's signature first, so a key the chosen component does not take is a
:class:`~massface.training.config.ConfigError` naming that key instead of a silent no-op.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from massface.backbones.pretrained import load_weights
from massface.losses import (
    AdaFace,
    ArcFace,
    CombinedMargin,
    CosFace,
    CurricularFace,
    JointLoss,
    MagFace,
    NormFace,
    Softmax,
    SphereFace,
    SubCenterArcFace,
    TripletLoss,
)
from massface.sampling import PKSampler
from massface.serialization import CheckpointError, load_checkpoint, load_module_state
from massface.training import distributed as mfdist
from massface.training.batch_sources import (
    BatchSource,
    LoaderStream,
    OfflineSource,
    OnlineSource,
    Placement,
    SemiOnlineSource,
)
from massface.training.config import Config, ConfigError
from massface.training.schedules import build_scheduler

__all__ = [
    "HEADS",
    "MINING_MODES",
    "MiningMode",
    "SourceInputs",
    "LabelledDataset",
    "GlobalTripletLoss",
    "Objective",
    "build_dataset",
    "build_embedding_dataset",
    "build_sampler",
    "build_loader",
    "build_model",
    "build_head",
    "build_miner",
    "build_triplet_loss",
    "build_criterion",
    "build_param_groups",
    "build_optimizer",
    "build_scheduler",
]

#: ``loss.head.name`` → head class: the one table of heads the trainer knows
HEADS: dict[str, type[nn.Module]] = {
    "softmax": Softmax,
    "normface": NormFace,
    "sphereface": SphereFace,
    "cosface": CosFace,
    "arcface": ArcFace,
    "combined": CombinedMargin,
    "curricularface": CurricularFace,
    "adaface": AdaFace,
    "subcenter_arcface": SubCenterArcFace,
    "magface": MagFace,
}


@functools.cache
def _options_of(cls: type) -> frozenset[str]:
    """The keyword options ``cls.__init__`` takes besides the sizes every head/backbone gets (read once per class)."""
    params = inspect.signature(cls.__init__).parameters
    return frozenset(name for name, p in params.items()
                     if name not in ("self", "embedding_size", "num_classes", "blocks")
                     and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _check_options(section: str, what: str, cls: type, options: dict[str, Any]) -> None:
    """ConfigError naming ``section.key`` for the first option ``cls`` does not take."""
    accepted = _options_of(cls)
    for key in options:
        if key not in accepted:
            raise ConfigError(f"{section}.{key}: {what} ({cls.__name__}) takes no option {key!r}; it takes "
                              f"{sorted(accepted)}")


# ---------------------------------------------------------------------------------------------- data
class LabelledDataset(Dataset):
    """A dataset of ``(RGB uint8 image, label)`` seen through a transform, with labels remapped to 0..C-1.

    ``indices`` (sorted sample indices of ``base``, e.g. ``data.keep_indices`` from ``massface clean``) keeps
    only those samples; the label map stays the whole base's, so labels -- and label-pair files written for
    the whole set -- keep their meaning when a filter empties an identity.
    """

    def __init__(self, base: Any, transform: Any, indices: np.ndarray | None = None) -> None:
        self.base = base
        self.transform = transform
        raw = np.asarray(base.labels, dtype=np.int64)
        self.classes, labels = np.unique(raw, return_inverse=True)
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        labels = labels.astype(np.int64)
        self.labels = labels if self.indices is None else labels[self.indices]

    @property
    def num_classes(self) -> int:
        """Number of distinct identities."""
        return int(self.classes.size)

    def __len__(self) -> int:
        return int(self.labels.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = self.base[index if self.indices is None else int(self.indices[index])]
        return self.transform(image), int(self.labels[index])


def build_dataset(cfg: Config) -> LabelledDataset:
    """Returns the training set named by ``cfg.data`` (format, path, reader limits) seen through its augmentation."""
    from massface.data.transforms import build_eval_transform, build_train_transform

    d = cfg.data
    if d.format == "synthetic":
        from massface.data.synthetic import SynthFaces

        base = SynthFaces(d.synthetic_identities, d.synthetic_images_per_identity, seed=cfg.seed,
                          difficulty=d.synthetic_difficulty, image_size=d.synthetic_image_size,
                          duplicate_identities=d.synthetic_duplicates, label_noise=d.synthetic_label_noise)
    else:
        path = Path(d.path or "")
        if not path.exists():
            raise ConfigError(f"data.path: {path} does not exist")
        from massface.data import open_dataset

        base = open_dataset(path, d.format, image_root=d.data_root, max_pixels=d.max_pixels)
    if d.transform == "none":
        transform = build_eval_transform()
    else:
        transform = build_train_transform(d.transform, seed=cfg.seed)
    indices = None
    if d.keep_indices:
        from massface.data.label_lists import read_indices

        indices = read_indices(d.keep_indices, len(base))
    return LabelledDataset(base, transform, indices)


def build_embedding_dataset(dataset: Dataset) -> Dataset:
    """Returns the training images without augmentation (same items, same labels) for offline mining's
    embedding passes; a dataset that is not a :class:`LabelledDataset` is returned as it is."""
    if isinstance(dataset, LabelledDataset) or hasattr(dataset, "base"):
        from massface.data.transforms import build_eval_transform

        return LabelledDataset(dataset.base, build_eval_transform(), getattr(dataset, "indices", None))
    return dataset


def build_sampler(cfg: Config, labels: Any, world_size: int = 1, rank: int = 0) -> PKSampler:
    """Returns this rank's P×K batch sampler over ``labels`` (``data.p/k/small/min_images``, ``seed``).

    Under ``semi_online`` one sampler batch is a whole pool: ``mining.scale`` × P identities × K images.
    """
    d = cfg.data
    pool_p = d.p * (cfg.mining.scale if cfg.mining.mode == "semi_online" else 1)
    if d.sampler == "neighbour":
        from massface.sampling import NeighbourPKSampler

        if d.neighbour_group > pool_p:
            raise ConfigError(f"data.neighbour_group: {d.neighbour_group} identities per group do not fit a batch "
                              f"of data.p = {pool_p} identities")
        empty = np.full((int(np.max(labels)) + 1, 1), -1, dtype=np.int64)  # no graph until the first refresh
        return NeighbourPKSampler(labels, pool_p, d.k, empty, group=d.neighbour_group,
                                  hard_fraction=d.neighbour_hard_fraction, small=d.small, min_images=d.min_images,
                                  seed=cfg.seed, num_replicas=world_size, rank=rank)
    return PKSampler(labels, pool_p, d.k, small=d.small, min_images=d.min_images, seed=cfg.seed,
                     num_replicas=world_size, rank=rank)


def build_identity_graph(cfg: Config, model: nn.Module, head: nn.Module | None, dataset: Dataset,
                         device: torch.device) -> np.ndarray:
    """The identity graph of ``data.sampler: neighbour``: each identity's ``data.neighbour_k`` nearest
    identities by their class centres -- the head's weights (``data.neighbour_source: head``; one row per
    class, the labels 0..C-1) or the mean embeddings of the training images under ``model``
    (``embeddings``: one pass over the training set, sharded across ranks). Same on every rank."""
    from massface.cleaning import class_centres
    from massface.mining import embed_dataset
    from massface.sampling import identity_neighbours

    d = cfg.data
    if d.neighbour_source == "head":
        weight = getattr(head, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.shape[0] != dataset.num_classes:
            raise ConfigError(f"data.neighbour_source: 'head' needs a head whose weight holds one centre per "
                              f"class ({dataset.num_classes}); {type(head).__name__} has none (PartialFC shards "
                              "them): use 'embeddings'")
        return identity_neighbours(weight.detach(), k=d.neighbour_k)
    embeddings, labels = embed_dataset(model, build_embedding_dataset(dataset), batch_size=cfg.eval.batch_size,
                                       device=device)
    classes, centres = class_centres(embeddings.numpy(), labels.numpy())
    return identity_neighbours(centres, labels=classes, k=d.neighbour_k)


def build_loader(cfg: Config, dataset: Dataset, sampler: PKSampler, device: torch.device) -> DataLoader:
    """Returns the DataLoader of ``sampler``'s batches (``data.workers`` processes, pinned memory on CUDA)."""
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.workers,
                      pin_memory=device.type == "cuda", persistent_workers=False)


# ---------------------------------------------------------------------------------------------- modules
def build_model(cfg: Config) -> nn.Module:
    """Returns the backbone of ``cfg.model`` (every option passed: ``embedding_size``, ``fc_bn``, ``dropout``,
    ``input_size``), started from ``model.init_checkpoint`` when set; on the CPU, in train mode."""
    from massface.backbones import build_backbone
    from massface.backbones.registry import get_spec

    m = cfg.model
    try:
        family = get_spec(m.backbone).family
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.backbone: {err}") from None
    options = {"fc_bn": m.fc_bn, "dropout": m.dropout, "input_size": m.input_size}
    _check_options("model", f"backbone {m.backbone!r}", family, options)
    try:
        model = build_backbone(m.backbone, m.embedding_size, **options)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from err
    if m.init_checkpoint:
        try:
            load_weights(model, m.init_checkpoint, source=m.init_source)
        except CheckpointError as err:
            raise CheckpointError(m.init_checkpoint, f"(model.init_checkpoint) {err.reason}") from None
    return model


def build_head(cfg: Config, embedding_size: int, num_classes: int) -> nn.Module | None:
    """Returns the classification head ``loss.head.name`` over ``num_classes`` identities, or None when unset.

    ``loss.head.s`` and ``loss.head.m`` are passed when set; ``None`` leaves the head's own default (e.g.
    SphereFace's ``s=None``, CosFace's ``m=0.35``). A key the head does not take is a ConfigError naming it.
    With ``loss.head.init_from_checkpoint`` the class centres come from ``model.init_checkpoint``'s ``head``
    (a massface trainer checkpoint of the same head and class count; a CheckpointError names the file and
    the first mismatching tensor otherwise).
    """
    h = cfg.loss.head
    if not h.name:
        return None
    if h.name not in HEADS:
        raise ConfigError(f"loss.head.name: {h.name!r} is not one of {sorted(HEADS)}")
    cls = HEADS[h.name]
    options = {key: value for key, value in (("s", h.s), ("m", h.m)) if value is not None}
    _check_options("loss.head", f"head {h.name!r}", cls, options)
    try:
        head = cls(embedding_size, num_classes, **options)
    except ValueError as err:
        raise ConfigError(f"loss.head ({h.name}): {err}") from err
    if h.init_from_checkpoint:
        _init_head(head, cfg.model.init_checkpoint, cfg.model.init_source)  # type: ignore[arg-type]
    if h.interclass_filter is not None:
        if not hasattr(head, "interclass_filter"):
            raise ConfigError(f"loss.head.interclass_filter: head {h.name!r} has no cosines to filter (a margin "
                              "head: normface, cosface, arcface, ...)")
        head.interclass_filter = h.interclass_filter
    return head


def _init_head(head: nn.Module, path: str, source: str) -> None:
    """``head``'s state from a massface run's ``head``, or its class centres from a pretrained file's head
    (AdaFace ``head.kernel``, MagFace ``fc.weight``: :func:`~massface.backbones.pretrained.load_class_centres`)."""
    from massface.backbones.pretrained import load_class_centres

    state = load_checkpoint(path, inert_objects=True)
    if isinstance(state, dict) and isinstance(state.get("head"), dict) and source in ("auto", "massface"):
        load_module_state(head, state["head"], path, "head")
        return
    try:
        centres = load_class_centres(path, source=source)  # type: ignore[arg-type]
    except CheckpointError as err:
        raise CheckpointError(path, f"(loss.head.init_from_checkpoint) {err.reason}; a massface trainer "
                                    "checkpoint's 'head' state is read as well") from None
    weight = getattr(head, "weight", None)
    if not isinstance(weight, nn.Parameter) or tuple(weight.shape) != tuple(centres.shape):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
        raise CheckpointError(path, f"(loss.head.init_from_checkpoint) class centres of shape "
                                    f"{tuple(centres.shape)} (classes x D) do not fit head.weight {shape}")
    with torch.no_grad():
        weight.copy_(centres)


def build_miner(cfg: Config) -> nn.Module:
    """Returns the triplet miner ``loss.triplet.miner`` with the triplet section's ``margin``, ``distance``,
    ``max_triplets`` and false-negative guards (``negative_range``, ``skip_nearest``, ``same_identity_pairs`` --
    read from its file --, ``false_negative_gap``), and ``seed`` for the random miner."""
    from massface.data.label_lists import read_label_pairs
    from massface.mining import PRESETS

    t = cfg.loss.triplet
    kwargs: dict[str, Any] = {"margin": t.margin, "distance": t.distance, "max_triplets": t.max_triplets,
                              "negative_range": t.negative_range, "skip_nearest": t.skip_nearest,
                              "false_negative_gap": t.false_negative_gap}
    if t.same_identity_pairs:
        kwargs["same_identity_pairs"] = read_label_pairs(t.same_identity_pairs)
    if t.miner in ("random", "distance_weighted"):
        kwargs["seed"] = cfg.seed
    try:
        return PRESETS[t.miner](**kwargs)
    except ValueError as err:
        raise ConfigError(f"loss.triplet ({t.miner} miner): {err}") from err


def build_triplet_loss(cfg: Config) -> TripletLoss:
    """Returns the triplet loss of ``loss.triplet`` (``margin``, ``soft``, ``distance``, ``reduction``)."""
    t = cfg.loss.triplet
    return TripletLoss(margin=t.margin, soft=t.soft, distance=t.distance, reduction=t.reduction)


class GlobalTripletLoss(nn.Module):
    """Triplet loss over the batch of all ranks: gather embeddings (with gradient) and labels, mine, score.

    Replicated (``shard=False``): every rank mines all B_global anchors and computes the same value; with DDP's
    gradient averaging the parameters receive exactly the gradient of the global-batch loss (see
    :mod:`massface.training.distributed`). Sharded (``shard=True``, ``loss.triplet.shard_mining``): each rank
    mines only its own anchors against the gathered batch (a B_local × B_global block: the mining work divided by
    the world size W instead of repeated), the partial sums and triplet counts are all-reduced in one collective,
    and the rank returns W · (its share of the global loss) so that the gradients, after DDP's averaging, are
    again exactly those of the global-batch loss; the returned value is the global loss. Exact for every miner
    whose choice for an anchor does not depend on the other anchors (all presets except ``max_triplets`` and the
    random draws, whose generator streams differ) and for :class:`~massface.losses.FusedTripletLoss`.

    With ``miner=None`` the loss mines by itself (a :class:`~massface.mining.CrossBatchMemory` or a fused
    loss). Triplets given as ``indices_tuple`` (semi-online and offline batches) index this rank's batch: no
    gather, no mining.
    """

    def __init__(self, miner: nn.Module | None, loss: nn.Module, gather: bool = True, shard: bool = False) -> None:
        super().__init__()
        self.miner, self.loss, self.gather, self.shard = miner, loss, gather, shard

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple: Any = None, ref_emb: Any = None,
                ref_labels: Any = None) -> torch.Tensor:
        """Returns the (scalar) triplet loss of the step."""
        if indices_tuple is not None:
            return self.loss(embeddings, labels, indices_tuple)
        if self.gather and self.shard and mfdist.is_distributed():
            return self._sharded(embeddings, labels)
        if self.gather:
            embeddings, labels = mfdist.gather_with_grad(embeddings), mfdist.gather_labels(labels)
        if self.miner is None:
            return self.loss(embeddings, labels)
        return self.loss(embeddings, labels, self.miner(embeddings, labels))

    def _sharded(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """This rank's anchors against the gathered batch; see the class docstring."""
        import torch.distributed as dist

        world, rank, n = mfdist.world_size(), mfdist.rank(), embeddings.shape[0]
        ref, ref_labels = mfdist.gather_with_grad(embeddings), mfdist.gather_labels(labels)
        own = torch.arange(n, device=embeddings.device) + rank * n  # each anchor's row in the gathered batch
        if self.miner is None:
            local = self.loss(embeddings, labels, ref_emb=ref, ref_labels=ref_labels, self_index=own)
        else:
            triplets = self.miner(embeddings, labels, ref, ref_labels, self_index=own)
            local = self.loss(embeddings, labels, triplets, ref, ref_labels)
        triplets, active = self.loss.counts  # not .stats: a fused loss would compute its lazy statistics
        reduction = getattr(self.loss, "reduction", "mean")
        count = {"sum": 1.0, "mean": triplets, "nonzero_mean": active}[reduction]
        count = float(round(count)) if reduction != "sum" else 1.0
        partial = local * max(count, 1.0) if reduction != "sum" else local  # this rank's sum of losses
        totals = torch.stack([partial.detach().to(torch.float64), torch.tensor(count, dtype=torch.float64,
                                                                                device=partial.device)])
        dist.all_reduce(totals)
        denominator = max(float(totals[1]), 1.0) if reduction != "sum" else 1.0
        value = totals[0].to(partial.dtype) / denominator
        scaled = partial * (world / denominator)
        return scaled + (value - scaled.detach())


# ---------------------------------------------------------------------------------------------- mining modes
@dataclass
class SourceInputs:
    """What a batch source may need, built by the trainer before it (each source takes only its own)."""

    cfg: Config
    stream: LoaderStream
    placement: Placement
    model: nn.Module
    miner: nn.Module | None
    memory: nn.Module | None
    dataset: Dataset
    env: mfdist.DistEnv
    step: Callable[[], int]
    log: Callable[[str], None]
    statistics: nn.Module | None = None  # what mines in the loss when not ``miner`` (FusedTripletLoss): its stats


def _batch_mined(cfg: Config, miner: nn.Module, embedding_size: int) -> tuple[nn.Module, None]:
    """semi_online / offline: the loss scores the source's triplets (or mines the gathered batch)."""
    return GlobalTripletLoss(miner, build_triplet_loss(cfg), gather=cfg.loss.triplet.global_mining), None


def has_fused_form(cfg: Config) -> bool:
    """Whether ``loss.triplet`` is batch-all or semi-hard mining with the triplet loss and nothing that needs the
    triplet list (no false-negative guard, no ``max_triplets``): then :class:`~massface.losses.FusedTripletLoss`
    computes the same loss and gradient without listing the triplets."""
    t = cfg.loss.triplet
    return (t.miner in ("all", "semihard") and t.max_triplets is None and t.negative_range is None
            and not t.skip_nearest and not t.same_identity_pairs and t.false_negative_gap is None)


def _online_mined(cfg: Config, miner: nn.Module, embedding_size: int) -> tuple[nn.Module, None]:
    """online: the loss mines the (gathered) batch -- fused (``loss.triplet.fused``, :func:`has_fused_form`)
    or with the miner and :class:`~massface.losses.TripletLoss`."""
    t = cfg.loss.triplet
    if t.fused and has_fused_form(cfg):
        from massface.losses import FusedTripletLoss

        loss = FusedTripletLoss(t.miner, t.margin, distance=t.distance, reduction=t.reduction, soft=t.soft)
        return GlobalTripletLoss(None, loss, gather=t.global_mining, shard=t.shard_mining), None
    return GlobalTripletLoss(miner, build_triplet_loss(cfg), gather=t.global_mining, shard=t.shard_mining), None


def _memory_mined(cfg: Config, miner: nn.Module, embedding_size: int) -> tuple[nn.Module, nn.Module]:
    """xbm: the loss mines the (gathered) batch against a cross-batch memory of recent embeddings."""
    from massface.mining import CrossBatchMemory

    memory = CrossBatchMemory(build_triplet_loss(cfg), miner, cfg.mining.memory_size, embedding_size,
                              start_after=cfg.mining.memory_start)
    return GlobalTripletLoss(None, memory, gather=cfg.loss.triplet.global_mining), memory


def _online_source(i: SourceInputs) -> BatchSource:
    return OnlineSource(i.stream, miner=i.statistics or i.miner, memory=i.memory)


def _semi_online_source(i: SourceInputs) -> BatchSource:
    from massface.mining import TripletPoolBuilder

    cfg, m = i.cfg, i.cfg.mining
    pools = TripletPoolBuilder(i.miner, cfg.data.p * cfg.data.k, bn=m.pool_bn, max_batches=m.max_batches_per_pool,
                            seed=cfg.seed + i.env.rank)
    return SemiOnlineSource(i.stream, pools, i.model, i.placement)


def _offline_source(i: SourceInputs) -> BatchSource:
    from massface.mining import IndexConfig, OfflineTripletSearch

    cfg, m = i.cfg, i.cfg.mining
    index = IndexConfig(kind=m.index, nprobe=m.nprobe, nlist=m.nlist, hnsw_m=m.hnsw_m, ef_search=m.ef_search)
    offline = OfflineTripletSearch(i.miner, neighbours=m.neighbours, index=index, seed=cfg.seed)
    return OfflineSource(offline, i.model, i.dataset, build_embedding_dataset(i.dataset), device=i.placement.device,
                         triplets_per_batch=cfg.data.p * cfg.data.k // 3, refresh_every=m.refresh_every,
                         subset=m.subset, embed_batch_size=m.embed_batch_size, workers=cfg.data.workers,
                         seed=cfg.seed, step=i.step, log=i.log, rank=i.env.rank, world_size=i.env.world_size)


class MiningMode(NamedTuple):
    """One ``mining.mode``: how its metric loss gets triplets, and where its batches come from.

    ``metric(cfg, miner, embedding_size)`` returns ``(metric loss, cross-batch memory or None)``;
    ``source(inputs)`` returns the :class:`~massface.training.batch_sources.BatchSource`.
    """

    metric: Callable[[Config, nn.Module, int], tuple[nn.Module, nn.Module | None]]
    source: Callable[[SourceInputs], BatchSource]


#: ``mining.mode`` → (metric loss, batch source): the one place a mode is chosen. semi_online and offline
#: sources select the triplets themselves, so their loss only scores them (``GlobalTripletLoss`` given indices).
MINING_MODES: dict[str, MiningMode] = {
    "online": MiningMode(_online_mined, _online_source),
    "xbm": MiningMode(_memory_mined, _online_source),
    "semi_online": MiningMode(_batch_mined, _semi_online_source),
    "offline": MiningMode(_batch_mined, _offline_source),
}


def build_criterion(cfg: Config, metric: nn.Module | None, head: nn.Module | None) -> JointLoss:
    """Returns ``loss.triplet.weight`` · metric + ``loss.head.weight`` · head loss."""
    return JointLoss(metric, head, metric_weight=cfg.loss.triplet.weight, head_weight=cfg.loss.head.weight)


class Objective(nn.Module):
    """Backbone + head + loss in one module, so that DDP wraps (and synchronises) all trainable parts."""

    def __init__(self, backbone: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.backbone, self.criterion = backbone, criterion  # the head, if any, is criterion.head

    def forward(self, x: torch.Tensor, y: torch.Tensor, head_only: bool = False, indices: Any = None) -> torch.Tensor:
        """Returns the step's loss; NaN when any embedding is not finite, so that ``train.on_nan`` sees a broken
        forward pass even when the miners leave the bad rows out and the loss itself stays finite."""
        if head_only:  # classification pre-training of the head alone: the backbone is frozen
            with torch.no_grad():
                emb = self.backbone(x).detach().float()
            loss = self.criterion.head.loss(emb, y)
        else:
            emb = self.backbone(x).float()
            loss = self.criterion(emb, y, indices)
        finite = torch.isfinite(emb.detach()).all()  # no host sync: the trainer reads the loss once anyway
        return torch.where(finite, loss, torch.full_like(loss, float("nan")))


# ---------------------------------------------------------------------------------------------- optimisation
def build_param_groups(cfg: Config, model: nn.Module, head: nn.Module | None = None) -> list[dict]:
    """Returns the optimizer's parameter groups: the backbone at ``optim.lr`` × ``model.lr_scale``, the head at
    ``optim.lr`` × ``loss.head.lr_scale``; each split into weights (``optim.weight_decay``) and, with
    ``optim.no_decay_bn_bias``, 1-D tensors (BatchNorm/PReLU weights, biases) without weight decay."""
    o = cfg.optim
    modules = [(model, cfg.model.lr_scale)] + ([(head, cfg.loss.head.lr_scale)] if head is not None else [])
    groups = []
    for module, lr_scale in modules:
        decay, plain = [], []
        for p in module.parameters():
            if not p.requires_grad:
                continue
            (plain if o.no_decay_bn_bias and p.ndim <= 1 else decay).append(p)
        if decay:
            groups.append({"params": decay, "weight_decay": o.weight_decay, "lr": o.lr * lr_scale})
        if plain:
            groups.append({"params": plain, "weight_decay": 0.0, "lr": o.lr * lr_scale})
    return groups


def build_optimizer(cfg: Config, groups: list[dict]) -> torch.optim.Optimizer:
    """Returns the optimizer ``optim.name`` over ``groups``: SGD takes ``momentum``; Adam and AdamW take
    ``betas`` and ``eps``; Adagrad takes ``eps`` (weight decay and lr are per group)."""
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    return torch.optim.Adagrad(groups, lr=o.lr, eps=o.eps)
