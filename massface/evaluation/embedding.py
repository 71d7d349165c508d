"""Images -> embeddings, the one no-grad embedder of the evaluation.

The embedding-helper contract (:func:`embed_batch`, :func:`embed_images` and
:func:`massface.evaluation.ijb.extract_ijb_features` all follow it):

==================  ==========================================================================================
input               RGB ``uint8`` images ``(N, H, W, 3)``; normalised ``(x/255 - 0.5)/0.5``; flip = the width
                    axis reversed
model               anything callable on a float32 ``(B, 3, H, W)`` tensor returning ``(B, D)`` (a tuple/list:
                    its first item): ``nn.Module`` (run under :func:`massface._torch.eval_mode`, its training
                    flag restored), TorchScript, :class:`~massface.evaluation.models.OnnxModel`
defaults            ``batch_size=64``, ``device=None`` (the model's own; CPU for ONNX), ``progress=False``
                    (``True``: a :func:`massface._progress.progress_bar` on stderr)
returns             host numpy arrays ``(N, D)``, C-contiguous: **float32** for model outputs and per-image
                    features (``embed_batch``, ``extract_ijb_features``); **float64** for the final L2-normalised
                    verification embeddings of ``embed_images`` — insightface's ``verification.test`` sums
                    the flips and normalises in float64, and its 10-fold numbers are reproduced bit for bit only
                    so
==================  ==========================================================================================

``embed_images``: ``variant="insightface"`` is insightface's ``verification.test`` (flip on by default, the sum
of the raw outputs for the image and its flip in float64, then row-wise L2); ``variant="massface"`` reproduces
MassFace's test (no flip by default, flip = concatenation, the per-vector mean removed before L2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

__all__ = ["embed_batch", "embed_images", "Variant", "DEFAULT_BATCH_SIZE"]

Variant = Literal["insightface", "massface"]
DEFAULT_BATCH_SIZE = 64


def _model_device(model: Any, device: Any) -> Any:
    if device is not None:
        return device
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return "cpu"


def _progress_flag(progress: Any, desc: str | None, default_desc: str, owner: str) -> tuple[bool, str]:
    """``progress`` as a bool; a string (the old label form) still works for one release, with a warning."""
    if isinstance(progress, str):
        from massface._deprecation import warn_renamed

        warn_renamed(f"{owner}(progress=<label>)", "progress=True, desc=<label>", stacklevel=4)
        return True, desc or progress
    return bool(progress), desc or default_desc


def embed_batch(
    model: Callable[[Any], Any], images: np.ndarray, flip: bool = True, device: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw outputs ``(f(x), f(flip(x)) or None)`` as float32 numpy ``(B, D)`` for RGB uint8 ``images`` ``(B, H, W, 3)``.

    Input normalisation ``(x/255 - 0.5)/0.5``; the flip reverses the width axis. One batch, no splitting.
    """
    import torch

    from massface._torch import eval_mode, to_numpy

    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) RGB, got shape {imgs.shape}")
    dev = _model_device(model, device)
    x = torch.from_numpy(np.ascontiguousarray(imgs)).to(dev).permute(0, 3, 1, 2).float()
    x = (x / 255.0 - 0.5) / 0.5
    with eval_mode(model):
        outs = [model(x)]
        if flip:
            outs.append(model(torch.flip(x, dims=[3])))
    arrs = []
    for o in outs:
        if isinstance(o, (tuple, list)):
            o = o[0]
        o = to_numpy(o, np.float32)
        if o.ndim != 2 or o.shape[0] != imgs.shape[0]:
            raise ValueError(f"model returned shape {o.shape} for a batch of {imgs.shape[0]}; expected (B, D)")
        arrs.append(o)
    return arrs[0], (arrs[1] if flip else None)


def embed_images(
    model: Callable[[Any], Any],
    images: np.ndarray,
    flip: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    variant: Variant = "insightface",
    device: Any = None,
    progress: bool = False,
    *,
    desc: str | None = None,
) -> np.ndarray:
    """Final L2-normalised float64 embeddings ``(N, D')`` of RGB uint8 ``images`` ``(N, H, W, 3)``.

    * ``"insightface"`` (flip default True): ``e = normalize(f(x) + f(flip(x)))`` in float64.
    * ``"massface"`` (flip default False): ``e = f(x)`` (with flip: ``[f(x), f(flip(x))]`` concatenated),
      ``e -= mean(e)`` per vector, then L2.

    ``progress``: a progress bar on stderr labelled ``desc`` (default ``"embedding"``). Time: ``N (1 + flip)``
    forward passes; memory ``O(N · D)``.
    """
    from massface._progress import progress_bar

    if variant not in ("insightface", "massface"):
        raise ValueError(f"variant must be 'insightface' or 'massface', got {variant!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    show, label = _progress_flag(progress, desc, "embedding", "embed_images")
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3) RGB, got {imgs.dtype} {imgs.shape}")
    use_flip = (variant == "insightface") if flip is None else bool(flip)
    n = imgs.shape[0]
    out: np.ndarray | None = None
    with progress_bar(total=n, desc=label, unit="img", enabled=show) as bar:
        for s in range(0, n, batch_size):
            e, ef = embed_batch(model, imgs[s : s + batch_size], flip=use_flip, device=device)
            e64 = e.astype(np.float64)
            if ef is not None:
                e64 = e64 + ef if variant == "insightface" else np.concatenate([e64, ef.astype(np.float64)], axis=1)
            if out is None:
                out = np.empty((n, e64.shape[1]), dtype=np.float64)
            out[s : s + e64.shape[0]] = e64
            bar.update(e64.shape[0])
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
