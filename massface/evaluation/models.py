"""Opening an embedding model for evaluation: ONNX (onnxruntime), a state dict + backbone name, or trusted
TorchScript.

Every model returned here is a callable on a float32 ``(B, 3, H, W)`` torch tensor returning ``(B, D)``, which
is what :mod:`massface.evaluation.embedding` feeds it. Checkpoints are read by the one loader,
:mod:`massface.serialization` (``weights_only=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from massface.evaluation._arrays import as_numpy

__all__ = ["OnnxModel", "is_torchscript", "load_model"]


class OnnxModel:
    """An ONNX embedding model run by onnxruntime (CPU unless ``providers`` says otherwise).

    Called with a float32 ``(B, 3, H, W)`` tensor or array; returns a ``(B, D)`` numpy array.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), providers=list(providers or ["CPUExecutionProvider"]))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: Any) -> np.ndarray:
        x = as_numpy(x, "ONNX input", np.float32)
        (out,) = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[:1]
        return out


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding ``code/`` entries), read from the zip's
    directory only — nothing in it is loaded or run."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any("/code/" in name or name.startswith("code/") for name in names)


def load_model(
    path: str | Path,
    backbone: str | None = None,
    embedding_size: int | None = None,
    device: Any = "cpu",
    trust_torchscript: bool = False,
    source: str = "auto",
) -> Callable[[Any], Any]:
    """Open an embedding model: ``.onnx`` (onnxruntime), a checkpoint of a known family, or TorchScript.

    Checkpoints — massface state dicts and trainer checkpoints, the field's pretrained files (arcface_torch's
    ``model.pt``, ...) — are read by :func:`massface.backbones.load_pretrained` (``weights_only=True``: nothing
    in the file runs), the family detected from the keys unless ``source`` names it; ``backbone`` builds that
    zoo entry instead of the detected one (``massface eval --backbone``, ``--source``).
    A TorchScript archive is a program — its ``forward`` is code from the file — so it is refused unless
    ``trust_torchscript=True`` (``massface eval --trust-torchscript``) says its source is trusted.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        CheckpointError: a TorchScript file without ``trust_torchscript``, a layout of no known family, or
            weights that do not fit the backbone (naming the file and the first mismatching tensor).
    """
    from massface.serialization import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return OnnxModel(path)
    import torch

    if is_torchscript(path):
        if not trust_torchscript:
            raise CheckpointError(path, "is a TorchScript program (its forward is code from the file); refused "
                                        "unless its source is trusted: pass trust_torchscript=True "
                                        "(massface eval --trust-torchscript), or evaluate a state dict with "
                                        "--backbone or an ONNX export")
        import warnings

        with warnings.catch_warnings():  # torch.jit.load's own deprecation notice
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    from massface.backbones import load_pretrained

    net = load_pretrained(path, source=source, name=backbone, embedding_size=embedding_size)  # type: ignore[arg-type]
    return net.to(device).eval()
