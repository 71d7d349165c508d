"""Synthetic occluders — a hand, a surgical mask, sunglasses or a bar — drawn over a face.

Used by SynthFaces (occasional occlusion of a rendered face, :mod:`massface.data.synthetic`) and by the
``occlusion`` train-transform preset (:class:`massface.data.transforms.SyntheticOcclusion`). The occluder
geometry follows TFace's idea of synthetic occlusion augmentation; the drawing is our own. Every occluder is
placed around the five ArcFace landmarks (canonical 112 frame) from eight uniforms, so it is reproducible
from a seed. Cost: O(H·W) per occluder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from massface.data._drawing import CANON, DEPTH_GLASSES, SKIN, Canvas, curve, mul, palette
from massface.data.align import ARCFACE_TEMPLATE

__all__ = ["OCCLUSION_KINDS", "draw_occlusion", "occlude"]

#: Occluder kinds drawn by :func:`draw_occlusion` (shared with the ``occlusion`` train-transform preset).
OCCLUSION_KINDS = ("hand", "mask", "sunglasses", "bar")

Landmarks = Sequence[Sequence[float]]


def _hand(canvas: Canvas, u: Sequence[float], lm: Landmarks, eye_d: float) -> None:
    """A hand-like blob: a palm ellipse plus 3-4 finger ellipses fanning out of it."""
    nose = lm[2]
    cx = nose[0] + (u[0] - 0.5) * 1.6 * eye_d
    cy = nose[1] + (u[1] - 0.2) * 1.0 * eye_d
    tone = mul(palette(SKIN, u[2]), 0.85 + 0.25 * u[3])
    palm = (0.45 + 0.2 * u[4]) * eye_d
    base = -90.0 + (u[5] - 0.5) * 140.0
    canvas.ellipse((cx, cy), (palm, palm * 0.85), tone, depth=30.0, angle=base)
    for f in range(3 + int(u[6] > 0.5)):
        a = math.radians(base + (f - 1.5) * 22.0)
        canvas.ellipse((cx + math.cos(a) * palm * 1.35, cy + math.sin(a) * palm * 1.35),
                       (palm * 0.62, palm * 0.2), mul(tone, 0.96), depth=30.0, angle=math.degrees(a))


def _mask(canvas: Canvas, u: Sequence[float], lm: Landmarks, eye_d: float) -> None:
    """A surgical mask over nose and mouth, with its ear loops."""
    eye_l, _, nose, mouth_l, mouth_r = lm
    colour = ((196, 220, 236), (236, 238, 240), (40, 42, 48), (120, 170, 200))[int(u[0] * 4)]
    top = nose[1] - (0.05 + 0.2 * u[1]) * eye_d
    half = (mouth_r[0] - mouth_l[0]) * 0.5 + eye_d * (0.7 + 0.15 * u[2])
    mx = 0.5 * (mouth_l[0] + mouth_r[0])
    bottom = mouth_l[1] + eye_d * (0.55 + 0.2 * u[3])
    pts = curve(mx - half, mx + half, top + 4.0, top - 2.0, 7) + \
        curve(mx + half, mx - half, bottom - 10.0, bottom, 7)
    canvas.poly(pts, colour, depth=18.0)
    canvas.poly(pts, mul(colour, 0.8), depth=18.0, thickness=1.0)
    for side in (-1.0, 1.0):  # ear loops
        canvas.poly(((mx + side * half, top + 4.0), (mx + side * (half + 9.0), eye_l[1] + 6.0)),
                    mul(colour, 0.9), depth=6.0, thickness=1.2, closed=False)


def _sunglasses(canvas: Canvas, u: Sequence[float], lm: Landmarks, eye_d: float) -> None:
    """Two dark lenses over the eyes and their bridge."""
    eye_l, eye_r = lm[0], lm[1]
    shade = (12.0 + 40.0 * u[0], 12.0 + 24.0 * u[0], 16.0 + 8.0 * u[0])
    w, h = eye_d * (0.3 + 0.08 * u[1]), eye_d * (0.2 + 0.08 * u[2])
    for e in (eye_l, eye_r):
        canvas.ellipse((e[0], e[1] + 1.0), (w, h), shade, depth=DEPTH_GLASSES)
    canvas.poly(((eye_l[0] + w, eye_l[1]), (eye_r[0] - w, eye_r[1])), shade, depth=DEPTH_GLASSES,
                thickness=1.5, closed=False)


def _bar(canvas: Canvas, u: Sequence[float], lm: Landmarks, eye_d: float) -> None:
    """A rotated rectangle of a random colour anywhere near the face centre (ignores the landmarks)."""
    colour = (255.0 * u[5], 255.0 * u[6], 255.0 * u[7])
    cx, cy = 56.0 + (u[0] - 0.5) * 60.0, 56.0 + (u[1] - 0.5) * 60.0
    hw, hh = 8.0 + 40.0 * u[2], 4.0 + 10.0 * u[3]
    a = math.radians((u[4] - 0.5) * 180.0)
    c, s = math.cos(a), math.sin(a)
    canvas.poly([(cx + x * c - y * s, cy + x * s + y * c) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))],
                colour, depth=30.0)


_DRAW: dict[str, Callable[[Canvas, Sequence[float], Landmarks, float], None]] = {"hand": _hand, "mask": _mask, "sunglasses": _sunglasses, "bar": _bar}


def occlude(canvas: Canvas, kind: str, u: Sequence[float], landmarks: Landmarks) -> None:
    """Draw occluder ``kind`` on ``canvas`` around canonical five-point ``landmarks`` from uniforms ``u`` (8)."""
    eye_l, eye_r, nose, mouth_l, mouth_r = landmarks
    eye_d = float(eye_r[0] - eye_l[0])
    draw = _DRAW.get(kind)
    if draw is None:
        raise ValueError(f"draw_occlusion: unknown kind {kind!r}; allowed: {', '.join(OCCLUSION_KINDS)}")
    draw(canvas, u, (eye_l, eye_r, nose, mouth_l, mouth_r), eye_d)


def draw_occlusion(image: np.ndarray, kind: str, rng: np.random.Generator,
                   landmarks5: np.ndarray | None = None) -> np.ndarray:
    """Draw one synthetic occluder in place on an RGB uint8 face crop and return it.

    ``kind`` is one of :data:`OCCLUSION_KINDS`: ``"hand"`` (palm + fingers in a skin tone), ``"mask"`` (a
    surgical mask over nose and mouth), ``"sunglasses"``, ``"bar"`` (a random rotated rectangle).
    ``landmarks5`` (5, 2) are the face's five points in pixels; by default the crop is assumed aligned to
    the ArcFace template scaled to the image width (``W/112``). The occluder geometry follows TFace's idea
    of synthetic occlusion augmentation; the drawing is our own. Cost: O(H·W).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_occlusion: image must be an RGB uint8 (H, W, 3) array, got "
                         f"{image.dtype} {image.shape}")
    f = image.shape[1] / CANON
    lm = ARCFACE_TEMPLATE if landmarks5 is None else np.asarray(landmarks5, np.float64) / f
    if lm.shape != (5, 2):
        raise ValueError(f"draw_occlusion: landmarks5 must have shape (5, 2), got {lm.shape}")
    canvas = Canvas(image, np.array([[f, 0.0, 0.0], [0.0, f, 0.0]]), centre=(56.0, 56.0))
    occlude(canvas, kind, rng.random(8).tolist(), lm.tolist())
    return image
