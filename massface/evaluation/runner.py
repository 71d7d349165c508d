"""Embedding of verification images and the ``.bin`` set runner (lfw, cfp_fp, agedb_30, ...).

Image -> embedding follows insightface's ``verification.test``: RGB uint8, ``(x/255 - 0.5)/0.5``, the
sum of the raw outputs for the image and its horizontal flip (float64), then row-wise L2 normalisation.
``variant="massface"`` reproduces MassFace's test instead: no flip by default (flip = concatenation),
the per-vector mean removed before L2 normalisation.

``model`` is anything callable on a float32 ``(B, 3, H, W)`` torch tensor returning ``(B, D)``: a
``torch.nn.Module`` (evaluated in ``eval()`` mode under ``inference_mode``, restored afterwards), a
TorchScript module, or :class:`OnnxModel`. Use :func:`load_model` to open a file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from massface._progress import print_progress
from massface.evaluation.verification import PairEvaluation, ThresholdMode, evaluate_pairs

__all__ = [
    "KNOWN_SETS",
    "OnnxModel",
    "is_torchscript",
    "load_model",
    "embed_batch",
    "embed_images",
    "evaluate_images",
    "evaluate_bin",
    "evaluate_lfw_pairs",
    "evaluate_bins",
    "find_bins",
]

KNOWN_SETS: tuple[str, ...] = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")
Variant = Literal["insightface", "massface"]


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
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
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
) -> Callable[[Any], Any]:
    """Open an embedding model: ``.onnx`` (onnxruntime), a state dict + ``backbone`` name, or TorchScript.

    State dicts may be bare or under ``"backbone"`` / ``"model"`` / ``"state_dict"`` and are read with
    :func:`massface.serialization.load_backbone_weights` (``weights_only=True``: nothing in the file runs).
    A TorchScript archive is a program — its ``forward`` is code from the file — so it is refused unless
    ``trust_torchscript=True`` (``massface eval --trust-torchscript``) says its source is trusted.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        CheckpointError: a TorchScript file without ``trust_torchscript``, a state dict without ``backbone``,
            or weights that do not fit the backbone (naming the file and the first mismatching key).
    """
    from massface.serialization import CheckpointError, load_backbone_weights

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
    if backbone is None:
        raise CheckpointError(path, "is a state dict, not TorchScript / ONNX: pass the backbone name it was "
                                    "trained with (--backbone)")
    from massface.backbones import build_backbone

    net = build_backbone(backbone, embedding_size)
    load_backbone_weights(net, path)
    return net.to(device).eval()


def _model_device(model: Any, device: Any) -> Any:
    if device is not None:
        return device
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return "cpu"


def embed_batch(
    model: Callable[[Any], Any], images: np.ndarray, flip: bool = True, device: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw outputs ``(f(x), f(flip(x)) or None)`` as float32 numpy for RGB uint8 ``images`` ``(B, H, W, 3)``.

    Input normalisation ``(x/255 - 0.5)/0.5``; the flip reverses the width axis.
    """
    import torch

    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) RGB, got shape {imgs.shape}")
    dev = _model_device(model, device)
    x = torch.from_numpy(np.ascontiguousarray(imgs)).to(dev).permute(0, 3, 1, 2).float()
    x = (x / 255.0 - 0.5) / 0.5
    was_training = getattr(model, "training", None)
    if was_training:
        model.eval()  # type: ignore[attr-defined]
    try:
        with torch.inference_mode():
            outs = [model(x)]
            if flip:
                outs.append(model(torch.flip(x, dims=[3])))
    finally:
        if was_training:
            model.train()  # type: ignore[attr-defined]
    arrs = []
    for o in outs:
        if isinstance(o, (tuple, list)):
            o = o[0]
        if hasattr(o, "detach"):
            o = o.detach().float().cpu().numpy()
        o = np.asarray(o, dtype=np.float32)
        if o.ndim != 2 or o.shape[0] != imgs.shape[0]:
            raise ValueError(f"model returned shape {o.shape} for a batch of {imgs.shape[0]}; expected (B, D)")
        arrs.append(o)
    return arrs[0], (arrs[1] if flip else None)


def embed_images(
    model: Callable[[Any], Any],
    images: np.ndarray,
    flip: bool | None = None,
    batch_size: int = 64,
    variant: Variant = "insightface",
    device: Any = None,
    progress: str | None = None,
) -> np.ndarray:
    """Final L2-normalised float64 embeddings ``(N, D')`` of RGB uint8 ``images`` ``(N, H, W, 3)``.

    * ``"insightface"`` (flip default True): ``e = normalize(f(x) + f(flip(x)))`` in float64.
    * ``"massface"`` (flip default False): ``e = f(x)`` (with flip: ``[f(x), f(flip(x))]`` concatenated),
      ``e -= mean(e)`` per vector, then L2.

    ``progress``: a label to print a progress bar on stderr. Time: ``N (1 + flip)`` forward passes;
    memory ``O(N · D)``.
    """
    if variant not in ("insightface", "massface"):
        raise ValueError(f"variant must be 'insightface' or 'massface', got {variant!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3) RGB, got {imgs.dtype} {imgs.shape}")
    use_flip = (variant == "insightface") if flip is None else bool(flip)
    n = imgs.shape[0]
    out: np.ndarray | None = None
    t0 = time.perf_counter()
    for s in range(0, n, batch_size):
        e, ef = embed_batch(model, imgs[s : s + batch_size], flip=use_flip, device=device)
        e64 = e.astype(np.float64)
        if ef is not None:
            e64 = e64 + ef if variant == "insightface" else np.concatenate([e64, ef.astype(np.float64)], axis=1)
        if out is None:
            out = np.empty((n, e64.shape[1]), dtype=np.float64)
        out[s : s + e64.shape[0]] = e64
        if progress:
            print_progress(progress, min(s + batch_size, n), n, t0)
    if out is None:
        raise ValueError("no images to embed")
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        raise ValueError(f"the model produced NaN/inf embeddings for {int(bad.sum())} of {n} images")
    if variant == "massface":
        out -= out.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


def evaluate_images(
    model: Callable[[Any], Any],
    images: np.ndarray,
    issame: Any,
    flip: bool | None = None,
    batch_size: int = 64,
    variant: Variant = "insightface",
    n_folds: int = 10,
    thresholds: ThresholdMode = "grid",
    far_targets: Sequence[float] = (1e-3,),
    device: Any = None,
    progress: str | None = None,
    source: str = "images",
) -> PairEvaluation:
    """k-fold verification of ``model`` on interleaved pair images (pair ``k`` = rows ``2k``, ``2k+1``)."""
    images = np.asarray(images)
    issame = np.asarray(issame, dtype=bool)
    if images.ndim != 4 or images.shape[0] != 2 * issame.shape[0]:
        raise ValueError(
            f"{source}: {images.shape[0] if images.ndim else 0} images for {issame.shape[0]} pairs; "
            "verification data must hold exactly 2 images per pair"
        )
    emb = embed_images(
        model, images, flip=flip, batch_size=batch_size, variant=variant, device=device, progress=progress
    )
    return evaluate_pairs(emb[0::2], emb[1::2], issame, n_folds=n_folds, thresholds=thresholds, far_targets=far_targets)


def _pixel_bound(max_pixels: int | None) -> dict[str, int]:
    """``max_pixels=`` for a reader, or nothing (the reader's default) when None."""
    return {} if max_pixels is None else {"max_pixels": max_pixels}


def evaluate_bin(
    model: Callable[[Any], Any],
    path: str | Path,
    flip: bool | None = None,
    batch_size: int = 64,
    progress: bool = False,
    max_pixels: int | None = None,
    **kwargs: Any,
) -> PairEvaluation:
    """10-fold verification of ``model`` on one insightface ``.bin`` set (e.g. ``lfw.bin``).

    Images are read by ``massface.data.verification.read_bin`` (RGB, pair ``k`` = images ``2k``, ``2k+1``;
    an image whose header announces more than ``max_pixels`` pixels is refused before decoding — default
    ``massface.data.DEFAULT_MAX_PIXELS``),
    embedded by :func:`embed_images` (``flip=None``: on for the insightface variant) and scored by
    :func:`~massface.evaluation.verification.evaluate_pairs`. ``kwargs``: ``variant``, ``n_folds``,
    ``thresholds``, ``far_targets``, ``device``.
    """
    from massface.data.verification import read_bin

    path = Path(path)
    images, issame = read_bin(path, **_pixel_bound(max_pixels))
    return evaluate_images(model, images, issame, flip=flip, batch_size=batch_size,
                           progress=path.stem if progress else None, source=str(path), **kwargs)


def evaluate_lfw_pairs(
    model: Callable[[Any], Any],
    pairs_path: str | Path,
    image_root: str | Path,
    ext: str = "jpg",
    flip: bool | None = None,
    batch_size: int = 64,
    progress: bool = False,
    max_pixels: int | None = None,
    **kwargs: Any,
) -> PairEvaluation:
    """Like :func:`evaluate_bin` for LFW's ``pairs.txt`` + an aligned image tree (``root/name/name_%04d.jpg``).

    Reading is ``massface.data.verification.read_lfw_pairs`` (file order = official View-2 folds).
    """
    from massface.data.verification import read_lfw_pairs

    images, issame = read_lfw_pairs(pairs_path, image_root, ext=ext, **_pixel_bound(max_pixels))
    return evaluate_images(model, images, issame, flip=flip, batch_size=batch_size,
                           progress="lfw pairs" if progress else None, source=str(pairs_path), **kwargs)


def find_bins(directory: str | Path, sets: Sequence[str] | None = None) -> dict[str, Path]:
    """``{name: path}`` of the known ``<name>.bin`` files in ``directory`` (all found, or exactly ``sets``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"verification data directory not found: {directory}")
    found = {name: directory / f"{name}.bin" for name in KNOWN_SETS if (directory / f"{name}.bin").is_file()}
    if sets is None:
        if not found:
            raise FileNotFoundError(f"{directory}: none of {[s + '.bin' for s in KNOWN_SETS]} is present")
        return found
    out: dict[str, Path] = {}
    for name in sets:
        p = directory / (name if name.endswith(".bin") else f"{name}.bin")
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found (present: {sorted(found) or 'no known sets'})")
        out[p.stem] = p
    return out


def evaluate_bins(
    model: Callable[[Any], Any],
    directory: str | Path,
    sets: Sequence[str] | None = None,
    **kwargs: Any,
) -> dict[str, PairEvaluation]:
    """Run :func:`evaluate_bin` on every known set in ``directory`` (or the named ``sets``), in order."""
    return {name: evaluate_bin(model, path, **kwargs) for name, path in find_bins(directory, sets).items()}
