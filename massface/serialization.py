"""Reading checkpoints and weight files without executing anything from them, and writing them atomically.

Every checkpoint massface opens — a resumed run, ``model.init_checkpoint``, ``massface eval`` and
``export-onnx`` state dicts, PartialFC and cross-batch-memory state inside them — goes through
:func:`load_checkpoint`, i.e. ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists, tuples
and dicts only. A file that needs anything else (a pickled module or class, a ``numpy`` object, a pickle
whose ``__reduce__`` calls a function) is refused with a :class:`CheckpointError` naming the file; massface
never falls back to an unrestricted unpickler and never advises doing so. Foreign pretrained files
(``inert_objects=True``, used by :func:`massface.backbones.load_pretrained`) may hold a few objects around their
tensors -- a Lightning ``AttributeDict`` of hyper-parameters, an argparse ``Namespace`` (the classes of
:data:`INERT_CLASSES`) -- that are read as empty :class:`~collections.OrderedDict` stand-ins: the class is never
imported, nothing of it is called. A file naming any other class is refused as before.

:func:`load_module_state` then fits a state dict to a module with an error that names the file and the first
missing, unexpected or mis-shaped key, and :func:`load_backbone_weights` finds a backbone's state dict inside
the usual wrappers (``{"model": ...}``, ``{"state_dict": ...}``, DDP's ``module.`` prefixes).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint", "load_module_state", "find_state_dict", "load_backbone_weights"]

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A checkpoint cannot be used: ``path`` names the file, the message the first bad key or field."""

    def __init__(self, path: PathLike, message: str) -> None:
        self.path = os.fspath(path)
        self.reason = message
        super().__init__(f"checkpoint {self.path}: {message}")


INERT_CLASSES: tuple[str, ...] = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.",
                                  "argparse.Namespace")
"""Class names (or module prefixes ending in ``.``) that ``inert_objects=True`` reads as empty stand-ins: the
hyper-parameter containers of PyTorch-Lightning / Hydra checkpoints."""


def _is_inert(name: str) -> bool:
    return any(name.startswith(p) if p.endswith(".") else name == p for p in INERT_CLASSES)


class _Inert:
    """What an object of a class outside torch's allow-list becomes under ``inert_objects=True``: building one
    (``REDUCE``, ``NEWOBJ``) returns an empty ``OrderedDict``, which takes the pickle's ``SETITEMS`` and ``BUILD``
    as plain data. Its arguments are dropped; no code of the named class runs, the class is never imported."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


def load_checkpoint(path: PathLike, map_location: str | torch.device | None = "cpu",
                    required: Iterable[str] = (), *, inert_objects: bool = False) -> Any:
    """Read a checkpoint without executing anything from it (``torch.load(weights_only=True)``).

    Args:
        path: a regular file (directories, FIFOs and devices are refused before opening).
        map_location: where tensors are placed, as in ``torch.load``.
        required: top-level keys the object must be a mapping with.
        inert_objects: read objects of the hyper-parameter classes of :data:`INERT_CLASSES` (found by
            ``torch.serialization.get_unsafe_globals_in_checkpoint``, which reads the pickle without running it)
            as empty ``OrderedDict`` stand-ins instead of refusing the file -- for foreign pretrained files whose
            tensors sit beside pickled hyper-parameters. Their content is lost, their code never runs; any other
            class still refuses the file.

    Raises:
        CheckpointError: naming the file and what is wrong — missing, not a regular file, not a torch
            checkpoint, truncated, holding objects that are not plain data, or lacking a required field.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CheckpointError(path, "does not exist") from None
    except OSError as err:  # ELOOP, EACCES, ...
        raise CheckpointError(path, f"cannot be accessed: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise CheckpointError(path, f"is {kind}; expected a file written by torch.save")
    try:
        obj = _restricted_load(path, map_location, inert_objects)
    except Exception as err:
        raise CheckpointError(path, _load_failure(err)) from None
    required = tuple(required)
    if required:
        if not isinstance(obj, Mapping):
            raise CheckpointError(path, f"holds a {type(obj).__name__}, expected a mapping with {list(required)}")
        missing = [key for key in required if key not in obj]
        if missing:
            raise CheckpointError(path, f"lacks field {missing[0]!r} (a trainer checkpoint holds {list(required)})")
    return obj


def _restricted_load(path: Path, map_location: str | torch.device | None, inert_objects: bool) -> Any:
    import pickle

    with warnings.catch_warnings():  # torch's note on protocol-4 pickles; the restricted load still decides
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            if not inert_objects:
                raise
            try:
                names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            except Exception:  # not a zip checkpoint: nothing to list, the first refusal stands
                names = []
            if not names or not all(_is_inert(name) for name in names):
                raise
        with torch.serialization.safe_globals([(_Inert, name) for name in names]):
            return torch.load(path, map_location=map_location, weights_only=True)


def _load_failure(err: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused a file (without its retry advice)."""
    import pickle

    text = str(err).strip()
    if isinstance(err, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = re.search(r"(Unsupported global: GLOBAL [^\s]+|Unsupported operand [^\s]+|"
                          r"Trying to [^.\n]+)", text)
        detail = f" ({found.group(1)})" if found else ""
        return ("holds objects other than tensors, numbers, strings, lists and dicts" + detail +
                "; massface loads plain-data checkpoints only and never executes code from a file")
    first = (text.splitlines()[0] if text else type(err).__name__).split(". ")[0]
    if isinstance(err, (EOFError, RuntimeError)) and ("zip" in text.lower() or "eof" in text.lower()
                                                      or isinstance(err, EOFError)):
        return f"is truncated or not a torch checkpoint ({first[:200]})"
    return f"cannot be read as a torch checkpoint: {type(err).__name__}: {first[:200]}"


def load_module_state(module: nn.Module, state: Any, path: PathLike, what: str = "model") -> None:
    """``module.load_state_dict(state)`` with a :class:`CheckpointError` naming ``path`` and the first
    missing, unexpected or mis-shaped key (another backbone, another class count, ...)."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(path, f"{what}: expected a state dict (str → tensor), got {type(state).__name__}")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key {missing[0]!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
        if unexpected:
            parts.append(f"unexpected key {unexpected[0]!r}"
                         + (f" (+{len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
        raise CheckpointError(path, f"{what} does not match this {type(module).__name__}: " + ", ".join(parts))
    for key, mine in own.items():
        theirs = state[key]
        if not isinstance(theirs, torch.Tensor):
            raise CheckpointError(path, f"{what}.{key}: expected a tensor, got {type(theirs).__name__}")
        if theirs.shape != mine.shape:
            raise CheckpointError(path, f"{what}.{key}: shape {tuple(theirs.shape)} in the checkpoint, "
                                        f"{tuple(mine.shape)} in this {type(module).__name__}")
    module.load_state_dict(state)


_WRAPPER_KEYS = ("backbone", "model", "state_dict")


def find_state_dict(obj: Any, path: PathLike) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: ``obj`` itself, or the first of ``obj["backbone"]``,
    ``obj["model"]``, ``obj["state_dict"]`` that is a mapping; DDP's ``module.`` prefixes are stripped."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(path, "expected a state dict of tensors, or a dict holding one under "
                                    f"{' / '.join(repr(k) for k in _WRAPPER_KEYS)}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone_weights(model: nn.Module, checkpoint: PathLike, what: str = "model") -> None:
    """Load a backbone's weights (strict) from ``checkpoint``: a bare state dict or one wrapped as
    :func:`find_state_dict` describes. Errors are :class:`CheckpointError` naming the file and key."""
    state = find_state_dict(load_checkpoint(checkpoint), checkpoint)
    load_module_state(model, state, checkpoint, what)


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same directory, flushed to disk and renamed over
    ``path``: a kill at any moment leaves the previous file or the new one, never a torn one. Returns ``path``."""
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
