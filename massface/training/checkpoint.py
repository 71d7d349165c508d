"""Atomic checkpoints: ``latest.pt`` plus periodic ``step_XXXXXXXX.pt``, the oldest pruned.

A checkpoint is written to a temporary file in the same directory, flushed to disk and renamed over the
target, so a kill at any moment leaves either the previous or the new file — never a torn one.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

__all__ = ["atomic_save", "CheckpointManager"]

_STEP_FILE = re.compile(r"^step_(\d{8,})\.pt$")


def atomic_save(obj: Any, path: Union[str, Path]) -> Path:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class CheckpointManager:
    """Saves training state under ``directory``: ``latest.pt`` on every save, ``step_N.pt`` on periodic
    saves (keeping the newest ``keep``)."""

    def __init__(self, directory: Union[str, Path], keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

    @property
    def latest(self) -> Path:
        return self.directory / "latest.pt"

    def save(self, state: dict, step: int, periodic: bool = True) -> Path:
        atomic_save(state, self.latest)
        if periodic:
            atomic_save(state, self.directory / f"step_{step:08d}.pt")
            self._prune()
        return self.latest

    def periodic(self) -> list[Path]:
        files = [p for p in self.directory.glob("step_*.pt") if _STEP_FILE.match(p.name)]
        return sorted(files, key=lambda p: int(_STEP_FILE.match(p.name).group(1)))

    def _prune(self) -> None:
        for old in self.periodic()[: -self.keep]:
            old.unlink(missing_ok=True)

    def load_latest(self, map_location: Union[str, torch.device] = "cpu") -> Optional[dict]:
        """The latest state, or None when there is none yet."""
        if not self.latest.is_file():
            return None
        try:
            return torch.load(self.latest, map_location=map_location, weights_only=False)
        except Exception as err:  # a truncated file cannot come from atomic_save; say which file is bad
            raise RuntimeError(f"checkpoint {self.latest} cannot be read: {err}") from err
