"""What happens around the training steps, one small callback per concern.

The trainer calls three hooks, in the order of its ``callbacks`` list:

* ``on_log(trainer, record)`` — every ``train.log_every`` steps, with the step's metrics record (rank 0 only:
  :class:`MetricsFile`, :class:`TensorBoard`, :class:`ConsoleLog`);
* ``on_step_end(trainer)`` — after every optimizer step, on every rank (:class:`Checkpointing`,
  :class:`Evaluation` take part in collectives);
* ``on_fit_end(trainer, status)`` — once ``fit`` leaves its loop (``completed | paused | interrupted``).

Messages go through ``trainer.log`` (by default the ``massface.training`` logger); :func:`log_to_stderr` is what
the command-line entry points call to show them.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from massface._torch import eval_mode
from massface.training import distributed as mfdist
from massface.training.config import EvalConfig

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from massface.training.trainer import Trainer

__all__ = ["logger", "log_to_stderr", "Callback", "MetricsFile", "TensorBoard", "ConsoleLog", "Checkpointing",
           "Evaluation", "CollapseAlarm"]

logger = logging.getLogger("massface.training")


def log_to_stderr(level: int = logging.INFO) -> None:
    """Show ``massface`` log messages on stderr, one plain line each (for CLI entry points; idempotent)."""
    root = logging.getLogger("massface")
    if not any(getattr(h, "_massface_cli", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._massface_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


class Callback:
    """Base: every hook does nothing; a concern overrides the ones it needs."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Called with the metrics record of a logged step (rank 0)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """Called after every optimizer step (every rank)."""

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        """Called once when ``fit`` leaves its loop (every rank)."""


class MetricsFile(Callback):
    """``metrics.jsonl``: one JSON object per logged step, evaluation and resume (rank 0 writes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.append(record)


class TensorBoard(Callback):
    """Scalars to ``directory`` when the ``tensorboard`` package is installed (else nothing: the JSONL file is
    the log)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.writer: Any = None  # None = not tried yet, False = unavailable

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.writer = False
                return
            self.writer = SummaryWriter(str(self.directory))
        if self.writer:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, record["step"])

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        if self.writer:
            self.writer.flush()


class ConsoleLog(Callback):
    """One line per logged step: loss, the miner's triplets, lr, throughput, ETA."""

    def on_log(self, trainer: Trainer, record: dict[str, Any]) -> None:
        extra = ""
        if "miner_num_triplets" in record:
            extra = (f" triplets {record['miner_num_triplets']:.0f} active {record['miner_active_fraction']:.2f}"
                     f" d_ap {record['miner_mean_d_ap']:.3f} d_an {record['miner_mean_d_an']:.3f}")
        trainer.log(f"step {record['step']}/{trainer.cfg.train.steps} loss {record['loss']:.4f}{extra} "
                    f"lr {record['lr']:.3g} {record['samples_per_s']:.1f} img/s eta {record['eta_s'] / 60:.1f} min")


class Checkpointing(Callback):
    """``checkpoints/``: a periodic checkpoint every ``every`` steps, and a last one when ``fit`` ends (periodic
    too when training completed)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            trainer.save_checkpoint()

    def on_fit_end(self, trainer: Trainer, status: str) -> None:
        trainer.save_checkpoint(periodic=status == "completed")


class CollapseAlarm(Callback):
    """Warns -- or stops training (``on_collapse: stop``) -- when the miner's statistics say the embedding has
    collapsed (PML #20: every image mapped to nearly one point, the triplet loss stuck at the margin) for
    ``steps`` steps in a row: mean d_an <= ``d_an`` (for a similarity: mean s_an >= 1 - ``d_an``), or, with
    ``active`` set, an active fraction >= ``active``. Reads ``trainer.batch_source.stats()`` after every step
    (every rank; the decision is shared, so all ranks stop together). O(T) per step for the statistics."""

    def __init__(self, steps: int, d_an: float, active: float | None, action: str, inverted: bool) -> None:
        self.steps, self.d_an, self.active, self.action, self.inverted = steps, d_an, active, action, inverted
        self.streak = 0

    def collapsed(self, stats: dict[str, float]) -> bool:
        """Whether one step's statistics look collapsed."""
        d_an, active = stats.get("mean_d_an"), stats.get("active_fraction")
        near = d_an is not None and not math.isnan(d_an) and (
            d_an >= 1.0 - self.d_an if self.inverted else d_an <= self.d_an)
        saturated = self.active is not None and active is not None and stats.get("num_triplets", 1.0) > 0 \
            and active >= self.active
        return bool(near or saturated)

    def on_step_end(self, trainer: Trainer) -> None:
        self.streak = self.streak + 1 if self.collapsed(trainer.batch_source.stats()) else 0
        if not mfdist.any_rank(self.streak >= self.steps, trainer.device):
            return
        stats = trainer.batch_source.stats()
        message = (f"embedding collapse at step {trainer.step}: for {self.steps} steps the miner saw mean d_an "
                   f"{stats.get('mean_d_an', float('nan')):.3g}, active fraction "
                   f"{stats.get('active_fraction', float('nan')):.3g} (train.collapse_*); lower the lr, the margin "
                   "or use a softer miner (semihard, distance_weighted)")
        self.streak = 0
        if self.action == "stop":
            from massface.training.trainer import TrainingStopped

            raise TrainingStopped(message)
        trainer.log(message)


EVAL_FARS: tuple[float, ...] = (1e-3, 1e-4)
"""The FARs every training evaluation reads TAR at (``metrics.jsonl``'s ``eval_detail``)."""


class Evaluation(Callback):
    """Verification accuracy on ``eval.sets`` every ``eval.every`` steps (the final evaluation is ``fit``'s);
    rank 0 evaluates, the others wait. ``metrics.jsonl`` gets ``eval`` (set -> accuracy) and ``eval_detail``
    (set -> accuracy, TAR at :data:`EVAL_FARS` (10-fold, insightface's VAL) and the pooled ROC's AUC)."""

    def __init__(self, cfg: EvalConfig, max_pixels: int) -> None:
        self.cfg, self.max_pixels = cfg, max_pixels

    def on_step_end(self, trainer: Trainer) -> None:
        if self.cfg.every and trainer.step % self.cfg.every == 0 and trainer.step < trainer.cfg.train.steps:
            self.evaluate(trainer)

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        """Returns ``{set name: accuracy}`` (empty on ranks other than 0 and without ``eval.sets``); rank 0
        appends it to ``metrics.jsonl`` and logs it."""
        results: dict[str, float] = {}
        if self.cfg.sets and trainer.env.is_main:
            from massface.evaluation import evaluate_bin, find_bins

            paths: dict[str, Path] = {}
            for entry in self.cfg.sets:
                p = Path(entry)
                paths.update(find_bins(p) if p.is_dir() else {p.stem: p})
            detail: dict[str, dict[str, float]] = {}
            with eval_mode(trainer.model, no_grad=False):
                for name, path in paths.items():
                    r = evaluate_bin(trainer.model, path, flip=self.cfg.flip, batch_size=self.cfg.batch_size,
                                     device=trainer.device, max_pixels=self.max_pixels, far_targets=EVAL_FARS)
                    results[name] = float(r.accuracy)
                    detail[name] = {"accuracy": float(r.accuracy), "auc": float(r.auc),
                                    **{f"tar@{far:g}": float(r.tar_at_far[far]) for far in EVAL_FARS}}
            trainer.metrics.append({"step": trainer.step, "eval": results, "eval_detail": detail})
            trainer.log(f"step {trainer.step} eval " + " ".join(f"{k} {100 * v:.2f}%" for k, v in results.items()))
        mfdist.barrier()
        return results
