"""Albumentations (2.x) pipelines for face-recognition training and evaluation.

Every pipeline takes an RGB uint8 (H, W, 3) face crop and returns a float32 CHW ``torch.Tensor``
normalised as ``(x/255 − 0.5)/0.5`` (so values lie in [−1, 1]), the convention of insightface's
arcface_torch, TFace and MassFace. Train presets are thin option sets over one builder:

* ``"light"``: horizontal flip only (arcface_torch's default);
* ``"default"``: flip, colour jitter, Gaussian blur, low resolution (down- then up-scaling, AdaFace-style),
  random erasing (one ``CoarseDropout`` hole);
* ``"occlusion"``: ``"default"`` plus :class:`SyntheticOcclusion`, which draws a hand, a surgical mask,
  sunglasses or a bar over the aligned face (the idea of TFace's occlusion augmentation; own drawing).

Randomness: pass ``seed`` to make a pipeline reproducible (albumentations' ``Compose(seed=...)``; two
pipelines built with the same seed produce the same sequence of augmentations); inside DataLoader workers
the stream is re-derived per worker and epoch (see :class:`FaceTransform`). Cost per image: O(H·W).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

# albumentations 2.x contacts PyPI (up to 2 s) on import unless this is set; massface never goes online.
# setdefault keeps an explicit user choice.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.data  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

from massface.data._guard import image_hw  # noqa: E402
from massface.data.occlusion import OCCLUSION_KINDS, draw_occlusion  # noqa: E402

__all__ = [
    "FaceTransform",
    "SyntheticOcclusion",
    "TrainAugmentation",
    "TRAIN_PRESETS",
    "build_train_transform",
    "build_eval_transform",
]


class SyntheticOcclusion(A.ImageOnlyTransform):
    """Draw one synthetic occluder on an aligned face crop (albumentations ``ImageOnlyTransform``).

    ``kinds`` is a subset of ``("hand", "mask", "sunglasses", "bar")``; one kind is picked uniformly per
    application. Geometry follows the ArcFace 112×112 template scaled to the image width, so inputs should
    be aligned square crops (any side). See :func:`massface.data.occlusion.draw_occlusion`. O(H·W) per image.
    """

    def __init__(self, kinds: Sequence[str] = OCCLUSION_KINDS, p: float = 0.5) -> None:
        super().__init__(p=p)
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in OCCLUSION_KINDS]
        if not kinds or bad:
            raise ValueError(f"SyntheticOcclusion: kinds must be a non-empty subset of {OCCLUSION_KINDS}, "
                             f"got {kinds!r}")
        self.kinds = kinds

    def get_params(self) -> dict[str, Any]:
        # Drawn from the generator albumentations seeds (Compose(seed=...)), so pipelines are reproducible.
        return {"kind": self.kinds[int(self.random_generator.integers(len(self.kinds)))],
                "draw_seed": int(self.random_generator.integers(2**63))}

    def apply(self, img: np.ndarray, kind: str = "bar", draw_seed: int = 0, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"SyntheticOcclusion: expected an RGB uint8 (H, W, 3) image, got {img.dtype} "
                             f"{img.shape}")
        return draw_occlusion(np.ascontiguousarray(img).copy(), kind, np.random.default_rng(draw_seed))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("kinds",)


@dataclass(frozen=True)
class TrainAugmentation:
    """Options of the train pipeline; probabilities are per image, 0 disables a step.

    ``color_jitter`` is the brightness / contrast / saturation strength (hue is ``hue``);
    ``downscale_range`` is the (min, max) factor of the low-resolution step; ``erase_size`` is the
    (min, max) side of the erased rectangle as a fraction of the image side.
    """

    flip_p: float = 0.5
    color_p: float = 0.0
    color_jitter: float = 0.3
    hue: float = 0.05
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    downscale_p: float = 0.0
    downscale_range: tuple[float, float] = (0.3, 0.8)
    erase_p: float = 0.0
    erase_size: tuple[float, float] = (0.1, 0.35)
    occlusion_p: float = 0.0
    occlusion_kinds: tuple[str, ...] = OCCLUSION_KINDS


#: The named presets of :func:`build_train_transform`.
TRAIN_PRESETS: dict[str, TrainAugmentation] = {
    "light": TrainAugmentation(),
    "default": TrainAugmentation(color_p=0.5, blur_p=0.1, downscale_p=0.2, erase_p=0.2),
    "occlusion": TrainAugmentation(color_p=0.5, blur_p=0.1, downscale_p=0.2, erase_p=0.1, occlusion_p=0.5),
}


class FaceTransform:
    """An albumentations pipeline that maps an RGB uint8 (H, W, 3) array to a float32 (3, H', W') tensor.

    ``transform(image)`` returns the tensor; ``transform(image=image)`` returns albumentations' dict
    ``{"image": tensor}``. ``compose`` is the underlying ``albumentations.Compose``.

    Seeded pipelines inside DataLoader workers: albumentations 2.0 would give every worker (and every
    epoch, without ``persistent_workers``) the same copy of the seeded stream. On its first call inside a
    worker, and again whenever torch hands that worker a new seed, the pipeline is re-seeded with
    ``SeedSequence([seed, worker_info.seed])``; ``worker_info.seed`` differs per worker and per epoch and is
    reproducible under ``torch.manual_seed``. In the main process the stream is exactly ``Compose(seed)``.
    """

    def __init__(self, compose: A.Compose, seed: int | None = None) -> None:
        self.compose = compose
        self.seed = seed
        self._worker_seed: int | None = None

    def _sync_worker_seed(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is None or self.seed is None or info.seed == self._worker_seed:
            return
        self._worker_seed = info.seed
        state = np.random.SeedSequence([self.seed, info.seed % 2**64]).generate_state(1)[0]
        self.compose.set_random_seed(int(state))

    def __call__(self, *args: np.ndarray, **kwargs: Any) -> Any:
        self._sync_worker_seed()
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("FaceTransform: call as transform(image) or transform(image=image)")
            return self.compose(image=_check_image(args[0]))["image"]
        if "image" not in kwargs:
            raise TypeError("FaceTransform: call as transform(image) or transform(image=image)")
        kwargs["image"] = _check_image(kwargs["image"])
        return self.compose(**kwargs)

    def __repr__(self) -> str:
        return f"FaceTransform({self.compose!r})"


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"transform input must be an RGB uint8 numpy array of shape (H, W, 3), got {desc}")
    return image


def _tail(image_size: int | tuple[int, int] | None) -> list[A.BasicTransform]:
    """Optional resize to ``image_size`` = (height, width), then Normalize(0.5, 0.5) and ToTensorV2."""
    steps: list[A.BasicTransform] = []
    if image_size is not None:
        h, w = image_hw(image_size)
        steps.append(A.Resize(height=h, width=w))
    steps += [A.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), max_pixel_value=255.0), ToTensorV2()]
    return steps


def _check_p(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"TrainAugmentation.{name} must be a probability in [0, 1], got {value!r}")


def build_train_transform(preset: str | TrainAugmentation = "default", *, seed: int | None = None,
                          image_size: int | tuple[int, int] | None = None, **overrides: Any) -> FaceTransform:
    """Training augmentation: ``preset`` in :data:`TRAIN_PRESETS` (``"default"``, ``"light"``,
    ``"occlusion"``) or a :class:`TrainAugmentation`; keyword ``overrides`` replace its fields
    (e.g. ``flip_p=0.0``). ``image_size`` (int or (height, width), like ``read_bin``) resizes before
    normalising.

    Steps, each skipped when its probability is 0: HorizontalFlip → ColorJitter → GaussianBlur →
    Downscale → SyntheticOcclusion → CoarseDropout (random erasing, zero fill) → Normalize(0.5, 0.5) →
    ToTensorV2.
    """
    if isinstance(preset, TrainAugmentation):
        opts = preset
    elif preset in TRAIN_PRESETS:
        opts = TRAIN_PRESETS[preset]
    else:
        raise ValueError(f"build_train_transform: unknown preset {preset!r}; allowed: {sorted(TRAIN_PRESETS)} "
                         "or a TrainAugmentation")
    try:
        opts = replace(opts, **overrides)
    except TypeError as err:
        raise ValueError(f"build_train_transform: unknown option in {sorted(overrides)}; allowed: "
                         f"{sorted(TrainAugmentation.__dataclass_fields__)}") from err
    for name in ("flip_p", "color_p", "blur_p", "downscale_p", "erase_p", "occlusion_p"):
        _check_p(name, getattr(opts, name))
    steps: list[A.BasicTransform] = []
    if opts.flip_p > 0:
        steps.append(A.HorizontalFlip(p=opts.flip_p))
    if opts.color_p > 0:
        j = opts.color_jitter
        steps.append(A.ColorJitter(brightness=(1 - j, 1 + j), contrast=(1 - j, 1 + j), saturation=(1 - j, 1 + j),
                                   hue=(-opts.hue, opts.hue), p=opts.color_p))
    if opts.blur_p > 0:
        steps.append(A.GaussianBlur(blur_limit=0, sigma_limit=opts.blur_sigma, p=opts.blur_p))
    if opts.downscale_p > 0:
        steps.append(A.Downscale(scale_range=opts.downscale_range, p=opts.downscale_p,
                                 interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}))
    if opts.occlusion_p > 0:
        steps.append(SyntheticOcclusion(kinds=opts.occlusion_kinds, p=opts.occlusion_p))
    if opts.erase_p > 0:
        steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=opts.erase_size,
                                     hole_width_range=opts.erase_size, fill=0, p=opts.erase_p))
    return FaceTransform(A.Compose(steps + _tail(image_size), seed=seed), seed=seed)


def build_eval_transform(image_size: int | tuple[int, int] | None = None) -> FaceTransform:
    """Evaluation pipeline: optional resize to ``image_size`` (int or (height, width)), then Normalize(0.5, 0.5) →
    CHW float32 tensor."""
    return FaceTransform(A.Compose(_tail(image_size)))
