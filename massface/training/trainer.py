"""The training loop: P×K batches → backbone → (globally mined) triplet loss + optional margin-softmax head.

``mining.mode`` chooses where triplets come from (:mod:`massface.training.batch_sources`): the batch itself
(``online``), the batch plus a cross-batch memory (``xbm``), a pool of ``scale`` batches mined without
gradient (``semi_online``) or the whole embedded training set searched with faiss (``offline``).

One process (CPU or one GPU) or DDP under torchrun (NCCL on GPUs, gloo on CPU). Resumable mid-epoch from
atomic checkpoints holding model, head, optimizer, grad scaler, scheduler, sampler and RNG state; a resumed
run continues exactly as an uninterrupted one (deterministic settings), with the same or another world size.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from massface.training import distributed as mfdist
from massface.training.batch_sources import build_batch_source
from massface.serialization import CheckpointError, load_backbone_weights, load_module_state
from massface.training.checkpoint import TRAINER_FIELDS, CheckpointManager
from massface.training.config import Config, ConfigError, config_to_dict
from massface.training.schedules import build_scheduler

__all__ = ["Trainer", "TrainingStopped", "ExistingRunError", "LabelledDataset", "build_dataset", "build_miner",
           "build_head"]

#: what a run writes into its output directory; ``overwrite=True`` removes exactly these
RUN_FILES = ("checkpoints", "metrics.jsonl", "config.yaml", "tensorboard")

HEADS = {
    "softmax": "Softmax",
    "normface": "NormFace",
    "sphereface": "SphereFace",
    "cosface": "CosFace",
    "arcface": "ArcFace",
    "combined": "CombinedMargin",
    "curricularface": "CurricularFace",
    "adaface": "AdaFace",
    "subcenter_arcface": "SubCenterArcFace",
    "magface": "MagFace",
}


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (non-finite loss with ``on_nan: stop``); the message says why and where
    the last good checkpoint is."""


class ExistingRunError(FileExistsError):
    """``resume=False`` into an output directory that already holds a run, without ``overwrite=True``."""


# ---------------------------------------------------------------------------------------------- data
class LabelledDataset(Dataset):
    """A dataset of ``(RGB uint8 image, label)`` seen through a transform, with labels remapped to 0..C-1."""

    def __init__(self, base: Any, transform: Any) -> None:
        self.base = base
        self.transform = transform
        raw = np.asarray(base.labels, dtype=np.int64)
        self.classes, self.labels = np.unique(raw, return_inverse=True)
        self.labels = self.labels.astype(np.int64)

    @property
    def num_classes(self) -> int:
        return int(self.classes.size)

    def __len__(self) -> int:
        return int(self.labels.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = self.base[index]
        return self.transform(image), int(self.labels[index])


def build_dataset(cfg: Config) -> LabelledDataset:
    """The training set named by ``cfg.data`` with its augmentation."""
    from massface.data.transforms import build_eval_transform, build_train_transform

    d = cfg.data
    if d.format == "synthetic":
        from massface.data.synthetic import SynthFaces

        base = SynthFaces(d.synthetic_identities, d.synthetic_images_per_identity, seed=cfg.seed,
                          difficulty=d.synthetic_difficulty, image_size=d.synthetic_image_size)
    else:
        path = Path(d.path or "")
        if not path.exists():
            raise ConfigError(f"data.path: {path} does not exist")
        if d.format == "rec":
            from massface.data.recordio import RecordDataset

            base = RecordDataset(path, max_pixels=d.max_pixels)
        elif d.format == "folder":
            from massface.data.folder import FolderDataset

            base = FolderDataset(path, max_pixels=d.max_pixels)
        else:
            from massface.data.tfrecord import TFRecordIndexDataset

            base = TFRecordIndexDataset(path, d.data_root, max_pixels=d.max_pixels)
    if d.transform == "none":
        transform = build_eval_transform()
    else:
        transform = build_train_transform(d.transform, seed=cfg.seed)
    return LabelledDataset(base, transform)


# ---------------------------------------------------------------------------------------------- modules
def _load_init_checkpoint(model: nn.Module, path: str) -> None:
    """Start ``model`` from ``model.init_checkpoint``: a bare state dict or one under ``model`` /
    ``backbone`` / ``state_dict`` (a massface trainer checkpoint holds it under ``model``)."""
    try:
        load_backbone_weights(model, path)
    except CheckpointError as err:
        raise CheckpointError(path, f"(model.init_checkpoint) {err.reason}") from None


def build_miner(cfg: Config):
    from massface.mining import PRESETS

    t = cfg.loss.triplet
    cls = PRESETS[t.miner]
    kwargs: dict[str, Any] = {"margin": t.margin, "distance": t.distance, "max_triplets": t.max_triplets}
    if t.miner == "random":
        kwargs["seed"] = cfg.seed
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(f"loss.triplet ({t.miner} miner): {err}") from err


def build_head(cfg: Config, embedding_size: int, num_classes: int) -> Optional[nn.Module]:
    h = cfg.loss.head
    if not h.name:
        return None
    import massface.losses as losses

    if h.name not in HEADS:
        raise ConfigError(f"loss.head.name: {h.name!r} is not one of {sorted(HEADS)}")
    cls = getattr(losses, HEADS[h.name])
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "s" in params:
        kwargs["s"] = h.s
    if h.m is not None:
        if "m" not in params:
            raise ConfigError(f"loss.head.m: head {h.name!r} takes no margin m")
        kwargs["m"] = h.m
    try:
        return cls(embedding_size, num_classes, **kwargs)
    except ValueError as err:
        raise ConfigError(f"loss.head ({h.name}): {err}") from err


class GlobalTripletLoss(nn.Module):
    """Triplet loss over the batch of all ranks: gather embeddings (with gradient) and labels, mine, score.

    Every rank computes the same value; with DDP's gradient averaging the parameters receive exactly the
    gradient of the global-batch loss (see :mod:`massface.training.distributed`). With ``miner=None`` the
    loss mines by itself (a :class:`~massface.mining.CrossBatchMemory`). Triplets given as
    ``indices_tuple`` (semi-online and offline batches) index this rank's batch: no gather, no mining.
    """

    def __init__(self, miner: Optional[nn.Module], loss: nn.Module, gather: bool = True) -> None:
        super().__init__()
        self.miner, self.loss, self.gather = miner, loss, gather

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None, ref_emb=None,
                ref_labels=None) -> torch.Tensor:
        if indices_tuple is not None:
            return self.loss(embeddings, labels, indices_tuple)
        if self.gather:
            embeddings, labels = mfdist.gather_with_grad(embeddings), mfdist.gather_labels(labels)
        if self.miner is None:
            return self.loss(embeddings, labels)
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def _param_groups(modules: list[tuple[nn.Module, float]], weight_decay: float, no_decay_bn_bias: bool) -> list[dict]:
    """Parameter groups: 1-D tensors (BatchNorm/PReLU weights, biases) without weight decay when asked."""
    groups = []
    for module, lr_scale in modules:
        decay, plain = [], []
        for p in module.parameters():
            if not p.requires_grad:
                continue
            (plain if no_decay_bn_bias and p.ndim <= 1 else decay).append(p)
        if decay:
            groups.append({"params": decay, "weight_decay": weight_decay, "lr_scale": lr_scale})
        if plain:
            groups.append({"params": plain, "weight_decay": 0.0, "lr_scale": lr_scale})
    return groups


def _build_optimizer(cfg: Config, groups: list[dict]) -> torch.optim.Optimizer:
    o = cfg.optim
    for g in groups:
        g["lr"] = o.lr * g.pop("lr_scale")
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    return torch.optim.Adagrad(groups, lr=o.lr, eps=o.eps)


class _Objective(nn.Module):
    """Backbone + head + loss in one module, so that DDP wraps (and synchronises) all trainable parts."""

    def __init__(self, backbone: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.backbone, self.criterion = backbone, criterion  # the head, if any, is criterion.head

    def forward(self, x: torch.Tensor, y: torch.Tensor, head_only: bool = False, indices=None) -> torch.Tensor:
        """The step's loss; NaN when any embedding is not finite, so that ``train.on_nan`` sees a broken
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


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Builds everything a :class:`~massface.training.config.Config` names and runs it with :meth:`fit`.

    With ``train.on_nan: skip`` a step whose loss is not finite is skipped; after
    :attr:`MAX_CONSECUTIVE_SKIPS` such steps in a row training stops, since the weights are then corrupt.

    Outputs in ``cfg.output_dir``: ``config.yaml``, ``metrics.jsonl`` (one JSON object per logged step and per
    evaluation), ``checkpoints/latest.pt`` and periodic ``checkpoints/step_N.pt``.
    """

    MAX_CONSECUTIVE_SKIPS = 20

    def __init__(self, cfg: Config, *, dataset: Optional[LabelledDataset] = None, resume: bool = True,
                 overwrite: bool = False, log: Any = None) -> None:
        self.cfg = cfg
        self.env = mfdist.init_distributed(cfg.train.device)
        self.device = self.env.device
        self.out = Path(cfg.output_dir)
        self.log = log if log is not None else (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.ckpt = CheckpointManager(self.out / "checkpoints", keep=cfg.train.keep_checkpoints)
        self._claim_output_dir(resume, overwrite)
        torch.manual_seed(cfg.seed + self.env.rank)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        from massface.backbones import build_backbone
        from massface.losses import JointLoss, TripletLoss
        from massface.sampling import PKSampler

        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        d, mode = cfg.data, cfg.mining.mode
        pool_p = d.p * (cfg.mining.scale if mode == "semi_online" else 1)  # semi-online: one sampler batch = a pool
        self.sampler = PKSampler(self.dataset.labels, pool_p, d.k, small=d.small, min_images=d.min_images,
                                 seed=cfg.seed, num_replicas=self.env.world_size, rank=self.env.rank)
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=d.workers,
                                 pin_memory=self.device.type == "cuda", persistent_workers=False)

        m = cfg.model
        options: dict[str, Any] = {}
        if m.fc_bn:
            options["fc_bn"] = True
        if m.dropout:
            options["dropout"] = m.dropout
        if m.input_size != 112:
            options["input_size"] = m.input_size
        try:
            model = build_backbone(m.backbone, m.embedding_size, **options)
        except ValueError as err:
            raise ConfigError(f"model: {err}") from err
        if m.init_checkpoint:
            _load_init_checkpoint(model, m.init_checkpoint)
        self.model = model.to(self.device)
        if m.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.head = build_head(cfg, m.embedding_size, self.dataset.num_classes)
        if self.head is not None:
            self.head = self.head.to(self.device)
        t = cfg.loss.triplet
        metric = None
        self.memory: Any = None
        self.miner = build_miner(cfg) if t.enabled else None
        if self.miner is not None:
            triplet = TripletLoss(margin=t.margin, soft=t.soft, distance=t.distance, reduction=t.reduction)
            if mode == "xbm":
                from massface.mining import CrossBatchMemory

                self.memory = CrossBatchMemory(triplet, self.miner, cfg.mining.memory_size, m.embedding_size,
                                               start_after=cfg.mining.memory_start).to(self.device)
                metric = GlobalTripletLoss(None, self.memory, gather=t.global_mining)
            else:
                metric = GlobalTripletLoss(self.miner, triplet, gather=t.global_mining)
        self.criterion = JointLoss(metric, self.head, metric_weight=t.weight, head_weight=cfg.loss.head.weight)

        self.objective = _Objective(self.model, self.criterion)
        self.net: nn.Module = self.objective
        if self.env.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            if self.memory is not None:  # identical on every rank by construction: not broadcast each step
                names = [f"criterion.metric.loss.{n}" for n, _ in self.memory.named_buffers()]
                nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.objective, names)
            self.net = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=ids, find_unused_parameters=cfg.loss.head.pretrain_steps > 0)
        modules = [(self.model, 1.0)] + ([(self.head, cfg.loss.head.lr_scale)] if self.head is not None else [])
        self.optimizer = _build_optimizer(cfg, _param_groups(modules, cfg.optim.weight_decay,
                                                              cfg.optim.no_decay_bn_bias))
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.train.steps, cfg.optim.lr)
        amp = cfg.train.amp
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.batch_source = build_batch_source(self)
        self.step = 0
        self._batches_in_pass = 0
        self._stop_signal: Optional[int] = None
        self.history: list[dict] = []
        self._tb: Any = None  # TensorBoard writer: None = not tried yet, False = unavailable
        if resume:
            self._maybe_resume()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "head": self.head.state_dict() if self.head is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(batches_done=self._batches_in_pass),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "config": config_to_dict(self.cfg),
            "world_size": self.env.world_size,
            "memory": self.memory.state_dict() if self.memory is not None else None,
        }

    def load_state_dict(self, state: dict, path: Any = "<state>") -> None:
        """Restore :meth:`state_dict`'s output; every mismatch is a :class:`CheckpointError` naming ``path``
        and the first bad field or key (nothing is half-restored into the model before the check)."""
        missing = [f for f in TRAINER_FIELDS if f not in state]
        if missing:
            raise CheckpointError(path, f"lacks field {missing[0]!r} (a trainer checkpoint holds "
                                        f"{list(TRAINER_FIELDS)})")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.cfg.train.steps:
            raise CheckpointError(path, f"step: expected an integer in [0, train.steps={self.cfg.train.steps}], "
                                        f"got {step!r}")
        load_module_state(self.model, state["model"], path, "model")
        if self.head is not None:
            if state["head"] is None:
                raise CheckpointError(path, "head: the checkpoint has no classification head but loss.head.name "
                                            f"is {self.cfg.loss.head.name!r}")
            load_module_state(self.head, state["head"], path, "head")
        elif state["head"] is not None:
            raise CheckpointError(path, "head: the checkpoint has a classification head but loss.head.name is unset")
        if self.memory is not None and state.get("memory") is not None:
            load_module_state(self.memory, state["memory"], path, "memory")
        for name, part in (("optimizer", self.optimizer), ("scheduler", self.scheduler), ("scaler", self.scaler),
                           ("sampler", self.sampler)):
            try:
                part.load_state_dict(state[name])
            except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
                raise CheckpointError(path, f"{name}: {type(err).__name__}: {err}") from None
        self.step = step
        rng = state["rng"]
        if state["world_size"] == self.env.world_size and isinstance(rng, dict):
            try:
                torch.set_rng_state(rng["torch"])
                if rng.get("cuda") is not None and torch.cuda.is_available():
                    torch.cuda.set_rng_state_all(rng["cuda"])
            except (KeyError, TypeError, RuntimeError) as err:
                raise CheckpointError(path, f"rng: {type(err).__name__}: {err}") from None

    def _claim_output_dir(self, resume: bool, overwrite: bool) -> None:
        """Make ``output_dir`` this run's: an existing run there is resumed (``resume=True``), removed
        (``resume=False, overwrite=True``) or refused (:class:`ExistingRunError`); orphan ``*.tmp`` files of a
        killed checkpoint write are removed. Rank 0 decides and tells the others."""
        problem: Optional[str] = None
        if self.env.is_main:
            found = [name for name in RUN_FILES if (self.out / name).exists() or (self.out / name).is_symlink()]
            if found and not resume:
                if overwrite:
                    for name in found:
                        target = self.out / name
                        if target.is_dir() and not target.is_symlink():
                            shutil.rmtree(target)
                        else:
                            target.unlink()
                    self.log(f"--overwrite: removed the previous run's {', '.join(found)} from {self.out}")
                else:
                    problem = (f"{self.out} already holds a run ({', '.join(found)}); resume it (the default), "
                               f"choose another output_dir, or pass --overwrite to delete the old run")
            if problem is None:
                for orphan in self.ckpt.remove_orphans():
                    self.log(f"removed {orphan}, left by an interrupted checkpoint write")
        problem = mfdist.broadcast_object(problem)
        if problem is not None:
            raise ExistingRunError(problem)

    def _maybe_resume(self) -> None:
        state = self.ckpt.load_latest()
        if state is not None:
            self.load_state_dict(state, self.ckpt.latest)
            self.log(f"resumed from {self.ckpt.latest} at step {self.step}")
            if self.env.is_main:
                self._append_metrics({"event": "resume", "step": self.step, "checkpoint": str(self.ckpt.latest)})
        elif self.ckpt.periodic():
            raise CheckpointError(self.ckpt.latest, f"is missing although {self.ckpt.directory} holds periodic "
                                                    f"checkpoints; copy the one to resume from to latest.pt")

    def _append_metrics(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def save_checkpoint(self, periodic: bool = True) -> None:
        state = self.state_dict()  # every rank builds it (collective-free); rank 0 writes
        if self.env.is_main:
            self.ckpt.save(state, self.step, periodic=periodic)
        mfdist.barrier()

    # ------------------------------------------------------------------ loop
    def _loader_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """P×K batches forever, counting those of the current pass (for the sampler's resume state)."""
        while True:
            self._batches_in_pass = 0
            got = False
            for x, y in self.loader:
                got = True
                self._batches_in_pass += 1
                yield x, y
            if not got:
                raise RuntimeError("the sampler produced no batch: fewer identities than P × world size?")

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor, head_only: bool, indices=None) -> torch.Tensor:
        x = self._to_device(x)
        y = y.to(self.device, non_blocking=True)
        if indices is not None:
            indices = tuple(t.to(self.device) for t in indices)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            return self.net(x, y, head_only, indices)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.model.channels_last else x

    def _log_step(self, t0: float, loss: float, head_only: bool) -> None:
        cfg = self.cfg
        elapsed = time.perf_counter() - t0
        done = self.step - self._start_step
        rate = self._images_trained * self.env.world_size / max(elapsed, 1e-9)
        eta = (cfg.train.steps - self.step) * elapsed / max(done, 1)
        record: dict[str, Any] = {"step": self.step, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                                  "samples_per_s": rate, "eta_s": eta}
        if not head_only:
            record.update({f"loss_{k}": v for k, v in self.criterion.parts.items()})
            if self.miner is not None:
                record.update({f"miner_{k}": v for k, v in self.batch_source.stats().items()})
        if self.scaler.is_enabled():
            record["grad_scale"] = float(self.scaler.get_scale())
        self.history.append(record)
        if self.env.is_main:
            self._append_metrics(record)
            self._tensorboard(record)
            extra = ""
            if "miner_num_triplets" in record:
                extra = (f" triplets {record['miner_num_triplets']:.0f} active {record['miner_active_fraction']:.2f}"
                         f" d_ap {record['miner_mean_d_ap']:.3f} d_an {record['miner_mean_d_an']:.3f}")
            self.log(f"step {self.step}/{cfg.train.steps} loss {loss:.4f}{extra} lr {record['lr']:.3g} "
                     f"{rate:.1f} img/s eta {eta / 60:.1f} min")

    def _tensorboard(self, record: dict[str, Any]) -> None:
        """Scalars to ``output_dir/tensorboard`` when the ``tensorboard`` package is installed (rank 0)."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the JSONL file is the log
                self._tb = False
                return
            self._tb = SummaryWriter(str(self.out / "tensorboard"))
        if self._tb:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, record["step"])

    def evaluate(self) -> dict[str, float]:
        """Verification accuracy on ``cfg.eval.sets`` (rank 0 evaluates; the others wait)."""
        results: dict[str, float] = {}
        if self.cfg.eval.sets and self.env.is_main:
            from massface.evaluation import evaluate_bin
            from massface.evaluation.runner import find_bins

            paths: dict[str, Path] = {}
            for entry in self.cfg.eval.sets:
                p = Path(entry)
                paths.update(find_bins(p) if p.is_dir() else {p.stem: p})
            self.model.eval()
            try:
                for name, path in paths.items():
                    r = evaluate_bin(self.model, path, flip=self.cfg.eval.flip, batch_size=self.cfg.eval.batch_size,
                                     device=self.device, max_pixels=self.cfg.data.max_pixels)
                    results[name] = float(r.accuracy)
            finally:
                self.model.train()
            self._append_metrics({"step": self.step, "eval": results})
            self.log(f"step {self.step} eval " + " ".join(f"{k} {100 * v:.2f}%" for k, v in results.items()))
        mfdist.barrier()
        return results

    def _agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        if not mfdist.is_distributed():
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def fit(self, until: Optional[int] = None) -> dict[str, Any]:
        """Train until ``train.steps`` (or, with ``until``, pause after that step with a checkpoint);
        returns ``{"step", "status", "eval", "skipped_steps"}``, status ``completed | paused | interrupted``."""
        cfg = self.cfg
        stop_at = cfg.train.steps if until is None else min(until, cfg.train.steps)
        self.out.mkdir(parents=True, exist_ok=True)
        if self.env.is_main:
            import yaml

            (self.out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        self._start_step, self._images_trained = self.step, 0
        t0 = time.perf_counter()
        status, skipped, streak = "completed", 0, 0
        batches = self.batch_source.batches()
        self.model.train()
        try:
            while self.step < stop_at:
                head_only = self.step < cfg.loss.head.pretrain_steps
                self.model.train(not head_only)  # frozen backbone: BN statistics frozen too
                self.optimizer.zero_grad(set_to_none=True)
                total = 0.0
                finite = True
                for micro in range(cfg.train.grad_accum):
                    x, y, indices = next(batches)
                    self._images_trained += x.shape[0]
                    loss = self._forward_loss(x, y, head_only, indices) / cfg.train.grad_accum
                    finite = finite and bool(torch.isfinite(loss.detach()))
                    self.scaler.scale(loss).backward()
                    total += float(loss.detach())
                if self._agree(not finite):
                    if cfg.train.on_nan == "stop":
                        raise TrainingStopped(
                            f"non-finite loss at step {self.step + 1} (parts {self.criterion.parts}); "
                            f"last good checkpoint: {self.ckpt.latest if self.ckpt.latest.exists() else 'none'}")
                    skipped += 1
                    streak += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    self.log(f"step {self.step + 1}: non-finite loss, update skipped ({skipped} so far)")
                    if streak >= self.MAX_CONSECUTIVE_SKIPS:
                        raise TrainingStopped(
                            f"{streak} consecutive non-finite losses from step {self.step + 1} on; the weights are "
                            f"likely corrupt. Last good checkpoint: "
                            f"{self.ckpt.latest if self.ckpt.latest.exists() else 'none'}")
                    continue
                streak = 0
                if cfg.train.clip_norm is not None:
                    self.scaler.unscale_(self.optimizer)
                    params = [p for g in self.optimizer.param_groups for p in g["params"]]
                    torch.nn.utils.clip_grad_norm_(params, cfg.train.clip_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                if self.step % cfg.train.log_every == 0 or self.step == cfg.train.steps:
                    self._log_step(t0, total, head_only)
                if self.step % cfg.train.checkpoint_every == 0:
                    self.save_checkpoint()
                if cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < cfg.train.steps:
                    self.evaluate()
                if self._agree(self._stop_signal is not None):
                    status = "interrupted"
                    break
            if status == "completed" and self.step < cfg.train.steps:
                status = "paused"
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
        self.save_checkpoint(periodic=status == "completed")
        results = self.evaluate() if status == "completed" else {}
        return {"step": self.step, "status": status, "eval": results, "skipped_steps": skipped}
