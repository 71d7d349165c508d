"""Training checkpoints: atomic writes, ``latest.pt`` plus periodic ``step_XXXXXXXX.pt`` (oldest pruned).

Reading goes through :func:`massface.serialization.load_checkpoint` (``weights_only=True``: nothing in the
file is executed). Writing goes through :func:`massface.serialization.atomic_save`: a temporary file in the same directory, flushed to disk and renamed over the target,
so a kill at any moment leaves either the previous or the new file — never a torn one. A temporary file
orphaned by such a kill is removed by :meth:`CheckpointManager.remove_orphans` on the next start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import torch

from massface.serialization import CheckpointError, PathLike, atomic_save, load_checkpoint, load_module_state

__all__ = [
    "CheckpointError",
    "TRAINER_FIELDS",
    "atomic_save",
    "load_checkpoint",
    "load_module_state",
    "CheckpointManager",
]

_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")
_TMP_FILE = re.compile(r"^\..+\.pt\..+\.tmp$")  # what atomic_save's mkstemp names look like

#: fields every trainer checkpoint holds (``Trainer.state_dict``)
TRAINER_FIELDS = ("step", "model", "head", "optimizer", "scheduler", "scaler", "sampler", "rng", "world_size")


class CheckpointManager:
    """Saves training state under ``directory``: ``latest.pt`` on every save, ``step_N.pt`` on periodic
    saves (keeping the newest ``keep``)."""

    def __init__(self, directory: PathLike, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

    @property
    def latest(self) -> Path:
        """Returns the path of ``latest.pt``."""
        return self.directory / "latest.pt"

    def save(self, state: dict, step: int, periodic: bool = True) -> Path:
        """Write ``state`` to ``latest.pt`` (and ``step_N.pt`` when ``periodic``, pruning the oldest); returns
        the path of ``latest.pt``."""
        atomic_save(state, self.latest)
        if periodic:
            atomic_save(state, self.directory / f"step_{step:08d}.pt")
            self._prune()
        return self.latest

    def periodic(self) -> list[Path]:
        """Returns the periodic checkpoints here, oldest step first."""
        files = [p for p in self.directory.glob("step_*.pt") if _STEP_FILE.match(p.name)]
        return sorted(files, key=lambda p: int(_STEP_FILE.match(p.name).group(1)))

    def _prune(self) -> None:
        for old in self.periodic()[: -self.keep]:
            old.unlink(missing_ok=True)

    def has_checkpoint(self) -> bool:
        """Whether any checkpoint (``latest.pt`` in any form, or a periodic one) exists here."""
        return os.path.lexists(self.latest) or bool(self.periodic())

    def remove_orphans(self) -> list[Path]:
        """Delete temporary files left by a write that was killed (``.latest.pt.XXXX.tmp``); returns them."""
        if not self.directory.is_dir():
            return []
        removed = []
        for p in self.directory.iterdir():
            if _TMP_FILE.match(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def load_latest(self, map_location: str | torch.device = "cpu",
                    required: Iterable[str] = TRAINER_FIELDS) -> dict | None:
        """The latest state, or None when no ``latest.pt`` exists; anything else there that is not a
        readable trainer checkpoint (a directory, a broken link, ``{}``) is a :class:`CheckpointError`."""
        if not os.path.lexists(self.latest):
            return None
        return load_checkpoint(self.latest, map_location=map_location, required=required)
