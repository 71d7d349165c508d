"""The training loop: P×K batches → backbone → (globally mined) triplet loss + optional margin-softmax head.

Read top to bottom: ``Trainer.__init__`` builds what the config names (factories in
:mod:`massface.training.builders`), :meth:`Trainer.fit` runs the steps. ``mining.mode`` chooses, in one table
(:data:`~massface.training.builders.MINING_MODES`), where triplets come from
(:mod:`massface.training.batch_sources`) and how the loss gets them: the batch itself (``online``), the batch
plus a cross-batch memory (``xbm``), a pool of ``scale`` batches mined without gradient (``semi_online``) or the
whole embedded training set searched with faiss (``offline``). Logging, TensorBoard, evaluation and
checkpoints are callbacks (:mod:`massface.training.callbacks`).

One step of any mode: ``x, y, indices = next(batches)`` (the mode's source) → ``self.net(x, y, head_only,
indices)`` (:class:`~massface.training.builders.Objective`: backbone, then ``JointLoss`` = triplet part — mined
over the gathered batch, against the memory, or scoring the given ``indices`` — plus the head) → backward →
NaN policy → clip → optimizer and scheduler step → callbacks.

One process (CPU or one GPU) or DDP under torchrun (NCCL on GPUs, gloo on CPU). Resumable mid-epoch from
atomic checkpoints holding model, head, optimizer, grad scaler, scheduler, sampler and RNG state; a resumed
run continues exactly as an uninterrupted one (deterministic settings), with the same or another world size.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn

from massface._torch import freeze_batchnorm
from massface.serialization import CheckpointError, load_module_state
from massface.training import builders
from massface.training import distributed as mfdist
from massface.training.batch_sources import LoaderStream, Placement
from massface.training.builders import GlobalTripletLoss, LabelledDataset, build_dataset, build_head, build_miner  # noqa: F401
from massface.training.callbacks import (
    Callback,
    Checkpointing,
    CollapseAlarm,
    ConsoleLog,
    Evaluation,
    MetricsFile,
    TensorBoard,
    logger,
)
from massface.training.checkpoint import TRAINER_FIELDS, CheckpointManager
from massface.training.config import Config, ConfigError, config_to_dict
from massface.training.freezing import FrozenStages
from massface.training.schedules import build_scheduler

__all__ = ["Trainer", "TrainingStopped", "ExistingRunError", "LabelledDataset", "build_dataset", "build_miner",
           "build_head"]

#: what a run writes into its output directory; ``overwrite=True`` removes exactly these
RUN_FILES = ("checkpoints", "metrics.jsonl", "config.yaml", "tensorboard")

_Objective = builders.Objective  # the old private name


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (non-finite loss with ``on_nan: stop``); the message says why and where
    the last good checkpoint is."""


class ExistingRunError(FileExistsError):
    """``resume=False`` into an output directory that already holds a run, without ``overwrite=True``."""


class StopSignals:
    """``with StopSignals() as stop:`` — SIGINT / SIGTERM set ``stop.signum`` instead of raising, so the loop
    can finish its step and write a checkpoint; the previous handlers are restored on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with their owner
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class Trainer:
    """Builds everything a :class:`~massface.training.config.Config` names and runs it with :meth:`fit`.

    With ``train.on_nan: skip`` a step whose loss is not finite is skipped; after
    :attr:`MAX_CONSECUTIVE_SKIPS` such steps in a row training stops, since the weights are then corrupt.

    ``log``: where messages go (a callable taking one string); default the ``massface.training`` logger.

    Outputs in ``cfg.output_dir``: ``config.yaml``, ``metrics.jsonl`` (one JSON object per logged step and per
    evaluation), ``checkpoints/latest.pt`` and periodic ``checkpoints/step_N.pt``.
    """

    MAX_CONSECUTIVE_SKIPS = 20

    def __init__(self, cfg: Config, *, dataset: LabelledDataset | None = None, resume: bool = True,
                 overwrite: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.env = mfdist.init_distributed(cfg.train.device)
        self.device = self.env.device
        self.out = Path(cfg.output_dir)
        self.log: Callable[[str], None] = log if log is not None else logger.info
        self.ckpt = CheckpointManager(self.out / "checkpoints", keep=cfg.train.keep_checkpoints)
        self.metrics = MetricsFile(self.out / "metrics.jsonl")
        self._claim_output_dir(resume, overwrite)
        torch.manual_seed(cfg.seed + self.env.rank)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        m, mode = cfg.model, cfg.mining.mode

        # data: P×K batches of the training set
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        self.sampler = builders.build_sampler(cfg, self.dataset.labels, self.env.world_size, self.env.rank)
        self.loader = builders.build_loader(cfg, self.dataset, self.sampler, self.device)
        self.stream = LoaderStream(self.loader, self._refresh_neighbours if cfg.data.sampler == "neighbour" else None)
        self.placement = Placement(self.device, m.channels_last)

        # model, head, miner; the mining mode's metric loss (and XBM memory)
        self.model = builders.build_model(cfg).to(self.device)
        if m.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.frozen_stages = FrozenStages(self.model, m.freeze_stages, m.freeze_steps) if m.freeze_stages else None
        self.head = build_head(cfg, m.embedding_size, self.dataset.num_classes)
        if self.head is not None:
            self.head = self.head.to(self.device)
        self.miner = build_miner(cfg) if cfg.loss.triplet.enabled else None
        if self.miner is None and mode != "online":
            raise ConfigError(f"mining.mode: {mode!r} mines triplets but loss.triplet is disabled")
        mining = builders.MINING_MODES[mode]
        metric, self.memory = None, None
        if self.miner is not None:
            metric, self.memory = mining.metric(cfg, self.miner, m.embedding_size)
        if self.memory is not None:
            self.memory = self.memory.to(self.device)
        self.criterion = builders.build_criterion(cfg, metric, self.head)

        # one module for DDP: backbone + head + loss
        self.objective = builders.Objective(self.model, self.criterion)
        self.net: nn.Module = self.objective
        if self.env.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            if self.memory is not None:  # identical on every rank by construction: not broadcast each step
                names = [f"criterion.metric.loss.{n}" for n, _ in self.memory.named_buffers()]
                nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self.objective, names)
            self.net = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=ids,
                find_unused_parameters=cfg.loss.head.pretrain_steps > 0 or m.freeze_stages > 0)

        # optimisation
        self.optimizer = builders.build_optimizer(cfg, builders.build_param_groups(cfg, self.model, self.head))
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.train.steps, cfg.optim.lr)
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.train.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")

        # the mode's batches, and what happens around the steps
        self.batch_source = mining.source(builders.SourceInputs(
            cfg=cfg, stream=self.stream, placement=self.placement, model=self.model, miner=self.miner,
            memory=self.memory, dataset=self.dataset, env=self.env, step=lambda: self.step, log=self.log,
            statistics=metric.loss if metric is not None and metric.miner is None and self.memory is None else None))
        self.evaluation = Evaluation(cfg.eval, cfg.data.max_pixels)
        self.callbacks: list[Callback] = []
        if self.env.is_main:
            self.callbacks += [self.metrics, TensorBoard(self.out / "tensorboard"), ConsoleLog()]
        self.callbacks += [Checkpointing(cfg.train.checkpoint_every), self.evaluation]
        t = cfg.train
        if t.collapse_steps and self.miner is not None:
            self.callbacks.insert(0, CollapseAlarm(t.collapse_steps, t.collapse_d_an, t.collapse_active, t.on_collapse,
                                                   bool(self.miner.distance.is_inverted)))
        if t.probe_every or t.triplet_grid_steps:
            if self.miner is None:
                raise ConfigError("train.probe_every / train.triplet_grid_steps: the mining probe needs a miner "
                                  "(loss.triplet is disabled)")
            from massface.training.mining_probe import MiningProbe

            try:
                self.callbacks.append(MiningProbe(self, t.probe_every, t.triplet_grid_steps, t.probe_identities,
                                                  cfg.data.k, cfg.seed))
            except ValueError as err:
                raise ConfigError(str(err)) from None

        self.step = 0
        self.history: list[dict] = []
        if resume:
            self._maybe_resume()

    @property
    def _batches_in_pass(self) -> int:
        """Batches taken from the current pass over the loader (the sampler's resume position)."""
        return self.stream.batches_in_pass

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Returns everything a resume needs: step, model, head, optimizer, scheduler, grad scaler, sampler
        position, RNG states, the config, the world size and the XBM memory (collective-free)."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "head": self.head.state_dict() if self.head is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(batches_done=self.stream.batches_in_pass),
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
        problem: str | None = None
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
                self.metrics.append({"event": "resume", "step": self.step, "checkpoint": str(self.ckpt.latest)})
        elif self.ckpt.periodic():
            raise CheckpointError(self.ckpt.latest, f"is missing although {self.ckpt.directory} holds periodic "
                                                    f"checkpoints; copy the one to resume from to latest.pt")

    def save_checkpoint(self, periodic: bool = True) -> None:
        """Write ``checkpoints/latest.pt`` (and, when ``periodic``, ``step_N.pt``); every rank builds the state,
        rank 0 writes, all wait."""
        state = self.state_dict()
        if self.env.is_main:
            self.ckpt.save(state, self.step, periodic=periodic)
        mfdist.barrier()

    def evaluate(self) -> dict[str, float]:
        """Returns the verification accuracy on ``cfg.eval.sets`` by set name (rank 0 evaluates; the others wait
        and get ``{}``)."""
        return self.evaluation.evaluate(self)

    # ------------------------------------------------------------------ loop
    def fit(self, until: int | None = None) -> dict[str, Any]:
        """Train until ``train.steps`` (or, with ``until``, pause after that step with a checkpoint).

        Returns ``{"step", "status", "eval", "skipped_steps"}``, status ``completed | paused | interrupted``.
        """
        cfg = self.cfg
        stop_at = cfg.train.steps if until is None else min(until, cfg.train.steps)
        self._write_config()
        self._start_step, self._images_trained = self.step, 0
        t0 = time.perf_counter()
        status, skipped, streak = "completed", 0, 0
        batches = self.batch_source.batches()
        self.model.train()
        with StopSignals() as stop:
            while self.step < stop_at:
                head_only = self.step < cfg.loss.head.pretrain_steps
                self.model.train(not head_only)  # frozen backbone: BN statistics frozen too
                if cfg.model.freeze_bn:
                    freeze_batchnorm(self.model)  # fine-tuning: keep the pretrained running statistics
                if self.frozen_stages is not None:
                    self.frozen_stages.apply(self.step)  # early stages: no gradient, BN statistics kept

                # forward and backward over grad_accum micro-batches of the mode's source
                self.optimizer.zero_grad(set_to_none=True)
                total, finite = 0.0, True
                for _ in range(cfg.train.grad_accum):
                    x, y, indices = next(batches)
                    self._images_trained += x.shape[0]
                    loss = self._forward_loss(x, y, head_only, indices) / cfg.train.grad_accum
                    finite = finite and bool(torch.isfinite(loss.detach()))
                    self.scaler.scale(loss).backward()
                    total += float(loss.detach())

                # NaN policy: a non-finite loss on any rank stops training (on_nan: stop) or skips the update
                # (on_nan: skip), until MAX_CONSECUTIVE_SKIPS in a row say the weights are corrupt
                if mfdist.any_rank(not finite, self.device):
                    if cfg.train.on_nan == "stop":
                        raise TrainingStopped(f"non-finite loss at step {self.step + 1} (parts "
                                              f"{self.criterion.parts}); last good checkpoint: {self._last_good()}")
                    skipped += 1
                    streak += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    self.log(f"step {self.step + 1}: non-finite loss, update skipped ({skipped} so far)")
                    if streak >= self.MAX_CONSECUTIVE_SKIPS:
                        raise TrainingStopped(f"{streak} consecutive non-finite losses from step {self.step + 1} "
                                              f"on; the weights are likely corrupt. Last good checkpoint: "
                                              f"{self._last_good()}")
                    continue
                streak = 0

                # the update
                if cfg.train.clip_norm is not None:
                    self.scaler.unscale_(self.optimizer)
                    params = [p for g in self.optimizer.param_groups for p in g["params"]]
                    torch.nn.utils.clip_grad_norm_(params, cfg.train.clip_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1

                # logging, checkpoints, evaluation; then stop when any rank got SIGINT / SIGTERM
                if self.step % cfg.train.log_every == 0 or self.step == cfg.train.steps:
                    self._log_step(t0, total, head_only)
                for callback in self.callbacks:
                    callback.on_step_end(self)
                if mfdist.any_rank(stop.signum is not None, self.device):
                    status = "interrupted"
                    break
            if status == "completed" and self.step < cfg.train.steps:
                status = "paused"
        for callback in self.callbacks:
            callback.on_fit_end(self, status)
        results = self.evaluate() if status == "completed" else {}
        return {"step": self.step, "status": status, "eval": results, "skipped_steps": skipped}

    def _refresh_neighbours(self) -> None:
        """``data.sampler: neighbour``: at the start of every ``data.neighbour_refresh``-th epoch (not in the
        middle of a resumed one, whose graph the checkpoint restored), the identity graph of the current model."""
        sampler = self.sampler
        if not sampler.at_epoch_start or sampler.epoch % self.cfg.data.neighbour_refresh:
            return
        graph = builders.build_identity_graph(self.cfg, self.model, self.head, self.dataset, self.device)
        sampler.set_neighbours(graph)

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor, head_only: bool, indices: Any = None) -> torch.Tensor:
        """The micro-batch's loss through ``self.net`` (DDP when distributed), under autocast with ``train.amp``."""
        x, y = self.placement.images(x), self.placement.labels(y)
        if indices is not None:
            indices = tuple(t.to(self.device) for t in indices)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            return self.net(x, y, head_only, indices)

    def _log_step(self, t0: float, loss: float, head_only: bool) -> None:
        """Build the step's metrics record, keep it in :attr:`history` and hand it to the callbacks (rank 0)."""
        elapsed = time.perf_counter() - t0
        done = self.step - self._start_step
        rate = self._images_trained * self.env.world_size / max(elapsed, 1e-9)
        eta = (self.cfg.train.steps - self.step) * elapsed / max(done, 1)
        record: dict[str, Any] = {"step": self.step, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                                  "samples_per_s": rate, "eta_s": eta}
        if not head_only:
            record.update({f"loss_{k}": v for k, v in self.criterion.parts.items()})
            if self.miner is not None:
                record.update({f"miner_{k}": v for k, v in self.batch_source.stats().items()})
        if self.scaler.is_enabled():
            record["grad_scale"] = float(self.scaler.get_scale())
        self.history.append(record)
        for callback in self.callbacks:
            callback.on_log(self, record)

    def _write_config(self) -> None:
        """``output_dir/config.yaml``: the resolved config of this run (rank 0)."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.env.is_main:
            import yaml

            (self.out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(self.cfg), sort_keys=False))

    def _last_good(self) -> str:
        return str(self.ckpt.latest) if self.ckpt.latest.exists() else "none"
