"""SynthFaces: a procedural generator of synthetic face identities for demos, tests and benchmarks.

An *identity* is a fixed random vector of facial geometry and appearance (face and jaw shape, skin tone,
eye size / spacing / tilt / colour, brows, nose, mouth, ears, hair style and colour, glasses, beard, a
mole). Every *image* of that identity re-renders it with its own nuisance variation: pose (in-plane
rotation, shift, scale, and a pseudo-3D yaw / pitch that moves each feature by its depth), expression
(smile, open mouth, raised brows, blink, gaze), illumination (a linear gain gradient, brightness, colour
cast, gamma), background and clothing, blur, low resolution, sensor noise and occasional occlusion
(hand, surgical mask, sunglasses, a bar).

Randomness is explicit and local: identity ``i`` of namespace ``split`` is drawn from
``numpy.random.Generator(PCG64(SeedSequence([seed, split_tag, i])))`` and image ``j`` of it from
``SeedSequence([seed, split_tag, i, j])``, so any image can be regenerated alone, in any order, in any
DataLoader worker. The ``"train"`` and ``"heldout"`` namespaces never share an identity; verification
pairs are always drawn from ``"heldout"``.

``difficulty`` in [0, 1] does two things:

* identity closeness: each identity coordinate ``u ~ U(0, 1)`` is shrunk towards the shared mean,
  ``u' = 0.5 + (1 - 0.65·difficulty)·(u - 0.5)`` (rare attributes such as glasses or beards vanish as
  ``difficulty`` → 1 because they live in the tails);
* nuisance strength: every nuisance amplitude (rotation, shift, yaw, lighting, blur, noise, occlusion and
  low-resolution probability) is multiplied by ``k = 0.5 + difficulty``.

Cost: rendering one image is O(H·W) time and memory (about forty OpenCV drawing calls plus a handful of
vectorised per-pixel passes). Nothing is stored per image; a dataset of N×M images holds O(1) memory plus
a bounded memo of decoded identities (≤ 4096, a few KB each) and one shared noise bank of 3·(H+64)²
float32 values (sensor noise is a random crop of it, scaled per image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator, Literal, Sequence

import cv2
import numpy as np

from massface.data.align import ARCFACE_TEMPLATE

__all__ = ["SynthFaces", "draw_occlusion", "OCCLUSION_KINDS"]

_SPLIT_TAGS = {"train": 0, "heldout": 1}
_PAIR_TAG = 2  # SeedSequence tag of the verification-pair sampler
_NOISE_TAG = 3  # SeedSequence tag of the shared noise bank
_SHIFT = 4  # OpenCV fixed-point bits used for sub-pixel drawing
_ONE = 1 << _SHIFT
_CANON = 112.0
_IDENTITY_CACHE_SIZE = 4096  # the canonical frame all geometry is written in

# (name, low, high): identity coordinates, sampled as low + u'·(high - low) with u' the shrunk uniform.
_IDENTITY_SPEC: tuple[tuple[str, float, float], ...] = (
    ("face_w", 33.0, 43.0), ("face_h", 43.0, 53.0), ("jaw", 0.70, 1.0), ("face_cy", 56.0, 64.0),
    ("skin_tone", 0.0, 1.0), ("skin_red", -1.0, 1.0), ("eye_dx", 14.0, 20.5), ("eye_y", 47.0, 56.0),
    ("eye_w", 5.0, 8.5), ("eye_h", 2.3, 4.2), ("eye_tilt", -9.0, 9.0), ("iris_r", 0.75, 1.15),
    ("iris_col", 0.0, 1.0), ("brow_gap", 6.0, 12.0), ("brow_thick", 1.4, 4.2), ("brow_len", 0.9, 1.5),
    ("brow_arch", 0.0, 4.5), ("brow_tilt", -3.0, 3.0), ("brow_dark", 0.0, 1.0), ("nose_y", 66.0, 78.0),
    ("nose_w", 3.5, 8.5), ("nose_bridge", 0.0, 1.0), ("nose_style", 0.0, 1.0), ("mouth_y", 85.0, 96.0),
    ("mouth_w", 9.0, 16.5), ("lip_up", 1.2, 3.6), ("lip_lo", 1.8, 4.6), ("lip_col", 0.0, 1.0),
    ("hair_col", 0.0, 1.0), ("hair_style", 0.0, 1.0), ("hairline", 0.0, 1.0), ("hair_vol", 0.0, 8.0),
    ("ear_size", 5.0, 9.5), ("glasses", 0.0, 1.0), ("glasses_style", 0.0, 1.0), ("glasses_col", 0.0, 1.0),
    ("beard", 0.0, 1.0), ("beard_style", 0.0, 1.0), ("mole", 0.0, 1.0), ("mole_x", -1.0, 1.0),
    ("mole_y", -1.0, 1.0), ("cheek", 0.0, 1.0),
)
_ID_NAMES = tuple(s[0] for s in _IDENTITY_SPEC)
_ID_LOW = np.array([s[1] for s in _IDENTITY_SPEC])
_ID_RANGE = np.array([s[2] - s[1] for s in _IDENTITY_SPEC])

_SKIN = np.array([[255, 224, 198], [236, 194, 162], [201, 148, 110], [146, 92, 60], [92, 56, 38]], float)
_HAIR = np.array([[22, 18, 16], [62, 42, 30], [112, 74, 46], [158, 74, 42], [206, 166, 104],
                  [168, 166, 160], [232, 226, 212]], float)
_IRIS = np.array([[58, 34, 20], [112, 72, 36], [122, 112, 52], [70, 122, 82], [78, 122, 176],
                  [112, 122, 134]], float)
_FRAMES = np.array([[20, 20, 22], [120, 80, 42], [184, 184, 194], [150, 34, 34], [34, 44, 120]], float)
_LIP = np.array([170, 62, 72], float)

# Depth (towards the camera, canonical pixels) of each feature: yaw moves a feature by depth·sin(yaw).
_DEPTH_EYE, _DEPTH_BROW, _DEPTH_NOSE, _DEPTH_NOSTRIL = 10.0, 12.0, 24.0, 18.0
_DEPTH_MOUTH, _DEPTH_FACE, _DEPTH_EAR, _DEPTH_GLASSES = 14.0, 3.0, -10.0, 16.0

#: Occluder kinds drawn by :func:`draw_occlusion` (shared with the ``occlusion`` train-transform preset).
OCCLUSION_KINDS = ("hand", "mask", "sunglasses", "bar")


def _clamp(x: float, low: float, high: float) -> float:
    return low if x < low else high if x > high else x


def _palette(stops: np.ndarray, t: float) -> np.ndarray:
    """Piecewise-linear colour at ``t`` in [0, 1] along ``stops`` (K, 3)."""
    x = _clamp(float(t), 0.0, 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    return stops[i] * (1.0 - f) + stops[i + 1] * f


def _col(c: Sequence[float]) -> tuple[int, int, int]:
    """Clamp a float colour to an int tuple for OpenCV."""
    r, g, b = c
    return (int(r) if 0.0 <= r <= 255.0 else (0 if r < 0.0 else 255),
            int(g) if 0.0 <= g <= 255.0 else (0 if g < 0.0 else 255),
            int(b) if 0.0 <= b <= 255.0 else (0 if b < 0.0 else 255))


def _mul(c: Sequence[float], s: float) -> tuple[float, float, float]:
    return (c[0] * s, c[1] * s, c[2] * s)


Points = Sequence[tuple[float, float]]


class _Canvas:
    """Draws canonical-frame primitives on an image through a pose.

    A canonical point ``(x, y)`` of depth ``z`` is first turned by the pseudo-3D yaw / pitch about the
    face centre ``c``: ``x' = c_x + (x - c_x)·cos(yaw) + z·sin(yaw)``, ``y' = c_y + (y - c_y)·cos(pitch)
    + z·sin(pitch)``, then mapped by the 2×3 similarity ``A`` (rotation, isotropic scale, shift) to
    image pixels. Shapes are drawn anti-aliased with 4 fractional bits. Point lists are short (≤ 20),
    so the maths is plain Python, which beats NumPy's per-call overhead at this size.
    """

    __slots__ = ("img", "A", "scale", "angle", "cx", "cy", "cyaw", "syaw", "cpitch", "spitch")

    def __init__(self, img: np.ndarray, A: np.ndarray, centre: tuple[float, float] = (56.0, 60.0),
                 yaw: float = 0.0, pitch: float = 0.0) -> None:
        self.img = img
        self.A = [float(v) for v in np.asarray(A, dtype=np.float64).reshape(6)]
        self.scale = math.hypot(self.A[0], self.A[3])
        self.angle = math.degrees(math.atan2(self.A[3], self.A[0]))
        self.cx, self.cy = centre
        self.cyaw, self.syaw = math.cos(yaw), math.sin(yaw)
        self.cpitch, self.spitch = math.cos(pitch), math.sin(pitch)

    def project(self, pts: Points, depth: float = 0.0) -> list[tuple[float, float]]:
        """Canonical points at ``depth`` → image points (pixels)."""
        a, b, c, d, e, f = self.A
        cx, cy, cyaw, cpitch = self.cx, self.cy, self.cyaw, self.cpitch
        ox, oy = cx + depth * self.syaw, cy + depth * self.spitch
        out = []
        for x, y in pts:
            x = ox + (x - cx) * cyaw
            y = oy + (y - cy) * cpitch
            out.append((a * x + b * y + c, d * x + e * y + f))
        return out

    def ellipse(self, centre: tuple[float, float], axes: tuple[float, float], colour: Sequence[float],
                depth: float = 0.0, angle: float = 0.0, arc: tuple[float, float] = (0.0, 360.0),
                thickness: int = -1) -> None:
        """Filled (``thickness`` < 0) or outlined ellipse / arc; axes are half-lengths, angle in degrees."""
        a, b, c, d, e, f = self.A
        x = self.cx + (centre[0] - self.cx) * self.cyaw + depth * self.syaw
        y = self.cy + (centre[1] - self.cy) * self.cpitch + depth * self.spitch
        ax = max(axes[0] * self.cyaw * self.scale, 0.3) * _ONE
        ay = max(axes[1] * self.cpitch * self.scale, 0.3) * _ONE
        cv2.ellipse(self.img, (round((a * x + b * y + c) * _ONE), round((d * x + e * y + f) * _ONE)),
                    (round(ax), round(ay)), angle + self.angle, arc[0], arc[1], _col(colour), thickness,
                    cv2.LINE_AA, _SHIFT)

    def poly(self, pts: Points, colour: Sequence[float], depth: float = 0.0, thickness: float = 0.0,
             closed: bool = True) -> None:
        """Fill the polygon (``thickness`` ≤ 0) or stroke it with a line ``thickness`` canonical px wide."""
        q = np.array([(round(x * _ONE), round(y * _ONE)) for x, y in self.project(pts, depth)], np.int32)
        if thickness <= 0:
            cv2.fillPoly(self.img, [q], _col(colour), cv2.LINE_AA, _SHIFT)
        else:
            t = max(1, round(thickness * self.scale))
            cv2.polylines(self.img, [q], closed, _col(colour), t, cv2.LINE_AA, _SHIFT)


def _curve(x0: float, x1: float, y_ends: float, y_mid: float, n: int = 7) -> list[tuple[float, float]]:
    """Parabola through (x0, y_ends), ((x0+x1)/2, y_mid), (x1, y_ends) sampled at ``n`` points."""
    out = []
    for i in range(n):
        t = 2.0 * i / (n - 1) - 1.0
        out.append((x0 + (t + 1.0) * 0.5 * (x1 - x0), y_mid + (y_ends - y_mid) * t * t))
    return out


def _occlude(canvas: _Canvas, kind: str, u: Sequence[float], landmarks: Sequence[Sequence[float]]) -> None:
    """Draw occluder ``kind`` on ``canvas`` around canonical five-point ``landmarks`` from uniforms ``u`` (8)."""
    eye_l, eye_r, nose, mouth_l, mouth_r = landmarks
    eye_d = float(eye_r[0] - eye_l[0])
    if kind == "hand":
        # A hand-like blob: a palm ellipse plus 3-4 finger ellipses fanning out of it.
        cx = nose[0] + (u[0] - 0.5) * 1.6 * eye_d
        cy = nose[1] + (u[1] - 0.2) * 1.0 * eye_d
        tone = _mul(_palette(_SKIN, u[2]), 0.85 + 0.25 * u[3])
        palm = (0.45 + 0.2 * u[4]) * eye_d
        base = -90.0 + (u[5] - 0.5) * 140.0
        canvas.ellipse((cx, cy), (palm, palm * 0.85), tone, depth=30.0, angle=base)
        for f in range(3 + int(u[6] > 0.5)):
            a = math.radians(base + (f - 1.5) * 22.0)
            canvas.ellipse((cx + math.cos(a) * palm * 1.35, cy + math.sin(a) * palm * 1.35),
                           (palm * 0.62, palm * 0.2), _mul(tone, 0.96), depth=30.0, angle=math.degrees(a))
    elif kind == "mask":
        colour = ((196, 220, 236), (236, 238, 240), (40, 42, 48), (120, 170, 200))[int(u[0] * 4)]
        top = nose[1] - (0.05 + 0.2 * u[1]) * eye_d
        half = (mouth_r[0] - mouth_l[0]) * 0.5 + eye_d * (0.7 + 0.15 * u[2])
        mx = 0.5 * (mouth_l[0] + mouth_r[0])
        bottom = mouth_l[1] + eye_d * (0.55 + 0.2 * u[3])
        pts = _curve(mx - half, mx + half, top + 4.0, top - 2.0, 7) + \
            _curve(mx + half, mx - half, bottom - 10.0, bottom, 7)
        canvas.poly(pts, colour, depth=18.0)
        canvas.poly(pts, _mul(colour, 0.8), depth=18.0, thickness=1.0)
        for side in (-1.0, 1.0):  # ear loops
            canvas.poly(((mx + side * half, top + 4.0), (mx + side * (half + 9.0), eye_l[1] + 6.0)),
                        _mul(colour, 0.9), depth=6.0, thickness=1.2, closed=False)
    elif kind == "sunglasses":
        shade = (12.0 + 40.0 * u[0], 12.0 + 24.0 * u[0], 16.0 + 8.0 * u[0])
        w, h = eye_d * (0.3 + 0.08 * u[1]), eye_d * (0.2 + 0.08 * u[2])
        for e in (eye_l, eye_r):
            canvas.ellipse((e[0], e[1] + 1.0), (w, h), shade, depth=_DEPTH_GLASSES)
        canvas.poly(((eye_l[0] + w, eye_l[1]), (eye_r[0] - w, eye_r[1])), shade, depth=_DEPTH_GLASSES,
                    thickness=1.5, closed=False)
    elif kind == "bar":
        colour = (255.0 * u[5], 255.0 * u[6], 255.0 * u[7])
        cx, cy = 56.0 + (u[0] - 0.5) * 60.0, 56.0 + (u[1] - 0.5) * 60.0
        hw, hh = 8.0 + 40.0 * u[2], 4.0 + 10.0 * u[3]
        a = math.radians((u[4] - 0.5) * 180.0)
        c, s = math.cos(a), math.sin(a)
        canvas.poly([(cx + x * c - y * s, cy + x * s + y * c) for x, y in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))],
                    colour, depth=30.0)
    else:
        raise ValueError(f"draw_occlusion: unknown kind {kind!r}; allowed: {', '.join(OCCLUSION_KINDS)}")


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
    f = image.shape[1] / _CANON
    lm = ARCFACE_TEMPLATE if landmarks5 is None else np.asarray(landmarks5, np.float64) / f
    if lm.shape != (5, 2):
        raise ValueError(f"draw_occlusion: landmarks5 must have shape (5, 2), got {lm.shape}")
    canvas = _Canvas(image, np.array([[f, 0.0, 0.0], [0.0, f, 0.0]]), centre=(56.0, 56.0))
    _occlude(canvas, kind, rng.random(8).tolist(), lm.tolist())
    return image


@lru_cache(maxsize=128)
def _gamma_lut(gamma: float) -> np.ndarray:
    """uint8 lookup table of ``255·(v/255)^gamma`` (memoised per 0.01 step of gamma; read-only)."""
    lut = (255.0 * (np.arange(256) / 255.0) ** gamma + 0.5).astype(np.uint8)
    lut.setflags(write=False)
    return lut


Colour = tuple[float, float, float]


@dataclass(frozen=True)
class _Identity:
    """Decoded identity vector: named float parameters plus derived RGB colours."""

    p: dict[str, float]
    skin: Colour
    hair: Colour
    brow: Colour
    iris: Colour
    lip: Colour
    frames: Colour


class SynthFaces:
    """Map-style dataset of ``num_identities × images_per_identity`` synthetic faces.

    ``dataset[k]`` is ``(image, label)``: an RGB uint8 (S, S, 3) array and the identity index
    ``k // images_per_identity`` (samples are identity-major). ``labels`` is the int64 label array
    (no rendering needed). Identity ``i`` of this dataset is global identity ``identity_offset + i`` of
    namespace ``split``; training sets should use ``split="train"`` (the default) and evaluation galleries
    :meth:`heldout`, whose identities never occur in any ``"train"`` set of the same seed.

    Args:
        num_identities: number of identities N ≥ 1.
        images_per_identity: images per identity M ≥ 1.
        seed: root seed (any non-negative int).
        difficulty: in [0, 1]; identity closeness and nuisance strength (see the module docstring).
        image_size: output side S in pixels (16 … 1024); geometry is scaled from the 112 canonical frame.
        split: identity namespace, ``"train"`` or ``"heldout"``.
        identity_offset: first global identity index (lets several datasets tile one namespace).

    Rendering costs O(S²) time per image; the object holds O(1) state plus a lazily built noise bank.
    """

    def __init__(self, num_identities: int, images_per_identity: int, *, seed: int = 0,
                 difficulty: float = 0.5, image_size: int = 112, split: Literal["train", "heldout"] = "train",
                 identity_offset: int = 0) -> None:
        for name, value, low in (("num_identities", num_identities, 1),
                                 ("images_per_identity", images_per_identity, 1),
                                 ("seed", seed, 0), ("identity_offset", identity_offset, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"SynthFaces: {name} must be an int >= {low}, got {value!r}")
        if not isinstance(difficulty, (int, float, np.floating)) or not 0.0 <= float(difficulty) <= 1.0:
            raise ValueError(f"SynthFaces: difficulty must be a float in [0, 1], got {difficulty!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
                or not 16 <= image_size <= 1024:
            raise ValueError(f"SynthFaces: image_size must be an int in [16, 1024], got {image_size!r}")
        if split not in _SPLIT_TAGS:
            raise ValueError(f"SynthFaces: split must be one of {sorted(_SPLIT_TAGS)}, got {split!r}")
        self.num_identities = int(num_identities)
        self.images_per_identity = int(images_per_identity)
        self.seed = int(seed)
        self.difficulty = float(difficulty)
        self.image_size = int(image_size)
        self.split = split
        self.identity_offset = int(identity_offset)
        # memo of decoded identities (a pure function of (seed, difficulty, id)), bounded in size
        self._identity_cache: dict[tuple[int, int], _Identity] = {}

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def heldout(cls, num_identities: int, images_per_identity: int, **kwargs: object) -> "SynthFaces":
        """A dataset on the held-out namespace: identities disjoint from every ``"train"`` set of its seed.

        Its identity ``i`` is the identity used by fold ``i // identities_per_fold`` of
        :meth:`verification_pairs` (same seed and difficulty).
        """
        return cls(num_identities, images_per_identity, split="heldout", **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"SynthFaces(num_identities={self.num_identities}, images_per_identity="
                f"{self.images_per_identity}, seed={self.seed}, difficulty={self.difficulty}, "
                f"image_size={self.image_size}, split={self.split!r}, identity_offset={self.identity_offset})")

    # ------------------------------------------------------------------ map-style dataset
    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"SynthFaces: index must be an int, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"SynthFaces: index {index} out of range for {n} samples")
        index = int(index) % n
        label, j = divmod(index, self.images_per_identity)
        return self.image(label, j), label

    @cached_property
    def labels(self) -> np.ndarray:
        """int64 (N·M,) label of every sample, identity-major; computed without rendering."""
        return np.repeat(np.arange(self.num_identities, dtype=np.int64), self.images_per_identity)

    def iter_samples(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(image, label)`` for samples ``start … stop - 1`` (all by default), identity-major.

        Plugs directly into ``massface.data.write_records(directory, samples)``.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        for k in range(max(start, 0), stop):
            label, j = divmod(k, self.images_per_identity)
            yield self.image(label, j), label

    # ------------------------------------------------------------------ identities and images
    def _check_identity(self, identity: int) -> int:
        if not 0 <= identity < self.num_identities:
            raise IndexError(f"SynthFaces: identity {identity} out of range [0, {self.num_identities})")
        return self.identity_offset + int(identity)

    def identity_vector(self, identity: int) -> np.ndarray:
        """The identity's coordinates u' in [0, 1]^D (after the difficulty shrink), float64 (D,)."""
        return self._identity_u(self._check_identity(identity), _SPLIT_TAGS[self.split])

    def _identity_u(self, global_id: int, tag: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, tag, global_id])))
        u = rng.random(len(_IDENTITY_SPEC))
        spread = 1.0 - 0.65 * self.difficulty
        return 0.5 + spread * (u - 0.5)

    def _identity(self, global_id: int, tag: int) -> _Identity:
        key = (global_id, tag)
        cached = self._identity_cache.get(key)
        if cached is not None:
            return cached
        if len(self._identity_cache) >= _IDENTITY_CACHE_SIZE:
            self._identity_cache.clear()
        self._identity_cache[key] = ident = self._decode_identity(global_id, tag)
        return ident

    def _decode_identity(self, global_id: int, tag: int) -> _Identity:
        u = self._identity_u(global_id, tag)
        vals = _ID_LOW + u * _ID_RANGE
        p = dict(zip(_ID_NAMES, vals.tolist()))
        skin = _palette(_SKIN, p["skin_tone"]) + np.array([12.0, -6.0, -6.0]) * p["skin_red"]
        hair = _palette(_HAIR, p["hair_col"])
        brow = hair * (1.0 - 0.6 * p["brow_dark"]) + 10.0
        lip = skin * (0.75 - 0.3 * p["lip_col"]) + _LIP * (0.25 + 0.3 * p["lip_col"])
        iris, frames = _palette(_IRIS, p["iris_col"]), _palette(_FRAMES, p["glasses_col"])
        return _Identity(p, *(tuple(c.tolist()) for c in (skin, hair, brow, iris, lip, frames)))

    def image(self, identity: int, index: int) -> np.ndarray:
        """Render image ``index`` (any int ≥ 0, not limited to ``images_per_identity``) of ``identity``."""
        return self.render(identity, index)[0]

    def render(self, identity: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Render ``(image, landmarks5)``: the RGB uint8 image and its five landmarks (5, 2) float64 in pixels
        (left eye, right eye, nose tip, left / right mouth corner, ArcFace order). The canonical face is laid
        out around the ArcFace 112×112 template, so an unposed face's landmarks lie near it."""
        if index < 0:
            raise IndexError(f"SynthFaces: image index must be >= 0, got {index}")
        return self._render(self._check_identity(identity), int(index), _SPLIT_TAGS[self.split])

    @cached_property
    def _noise_bank(self) -> np.ndarray:
        side = self.image_size + 64
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _NOISE_TAG])))
        return rng.standard_normal((side, side, 3), dtype=np.float32)

    def _render(self, global_id: int, index: int, tag: int) -> tuple[np.ndarray, np.ndarray]:
        ident = self._identity(global_id, tag)
        p = ident.p
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, tag, global_id, index])))
        u = rng.random(48).tolist()
        z = rng.standard_normal(12).tolist()
        background = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
        k = 0.5 + self.difficulty
        S = self.image_size
        f = S / _CANON

        # ---- pose: pseudo-3D yaw/pitch, then similarity (rotation about the image centre, scale, shift)
        rot = math.radians(_clamp(z[0] * 6.0 * k, -25.0, 25.0))
        scale = math.exp(_clamp(z[1] * 0.05 * k, -0.2, 0.2)) * f
        tx, ty = _clamp(z[2] * 2.5 * k, -9.0, 9.0) * f, _clamp(z[3] * 2.5 * k, -9.0, 9.0) * f
        yaw = _clamp(z[4] * 0.22 * k, -0.7, 0.7)
        pitch = _clamp(z[5] * 0.08 * k, -0.3, 0.3)
        ca, sa, c0 = math.cos(rot) * scale, math.sin(rot) * scale, 56.0
        A = np.array([[ca, -sa, c0 * f + tx - ca * c0 + sa * c0], [sa, ca, c0 * f + ty - sa * c0 - ca * c0]])

        # ---- background: bilinear 2×2 colour field plus optional clutter rectangles
        img = cv2.resize(background, (S, S), interpolation=cv2.INTER_LINEAR)
        if u[0] < 0.5:
            for r in range(1 + int(u[1] * 3)):
                q = u[28 + 5 * r:33 + 5 * r]
                cv2.rectangle(img, (int(q[0] * S), int(q[1] * S)), (int(q[2] * S), int(q[3] * S)),
                              _col((q[4] * 255.0, q[0] * 255.0, q[3] * 255.0)), -1)
        cx, fcy, fw, fh = 56.0, p["face_cy"], p["face_w"], p["face_h"]
        cv = _Canvas(img, A, (cx, fcy), yaw, pitch)
        skin = ident.skin

        # ---- expression
        smile = _clamp(0.25 + z[6] * 0.35 * k, -0.4, 1.0)
        mouth_open = max(0.0, z[7] * 2.5 * k) if u[2] < 0.35 else 0.0
        brow_raise = _clamp(z[8] * 1.5 * k, -2.0, 3.5)
        blink = 0.15 if u[3] < 0.05 * k else 1.0
        gaze = _clamp(z[9] * 0.35, -1.0, 1.0)

        # ---- clothing, neck, hair behind the head, ears, face, cheeks
        cv.ellipse((cx, 138.0), (62.0, 34.0), (255.0 * u[20], 255.0 * u[21], 255.0 * u[22]))
        neck_w = fw * 0.5
        cv.poly(((cx - neck_w, fcy + fh * 0.5), (cx + neck_w, fcy + fh * 0.5), (cx + neck_w, 120.0),
                 (cx - neck_w, 120.0)), _mul(skin, 0.82))
        style = min(int(p["hair_style"] * 6), 5)
        hair = _mul(ident.hair, 0.94 + 0.12 * u[4])
        vol = p["hair_vol"]
        top = fcy - fh
        if style in (2, 3):  # medium / long hair behind the head
            drop = fh * (0.55 if style == 2 else 1.35)
            cv.ellipse((cx, fcy - fh * 0.2 + drop * 0.4), (fw + 5.0 + vol, fh * 0.8 + drop * 0.6 + vol), hair,
                       depth=-6.0)
        ear_y = p["eye_y"] + 7.0
        for side in (-1.0, 1.0):
            cv.ellipse((cx + side * fw * 0.97, ear_y), (p["ear_size"] * 0.55, p["ear_size"]), _mul(skin, 0.92),
                       depth=_DEPTH_EAR)
        cv.ellipse((cx, fcy), (fw, fh * 0.82), skin, depth=_DEPTH_FACE)
        cv.ellipse((cx, fcy), (fw * p["jaw"], fh), skin, depth=_DEPTH_FACE, arc=(0.0, 180.0))
        if p["cheek"] > 0.55:
            w = (p["cheek"] - 0.55) * 2.2
            blush = (skin[0] + 18.0 * w, skin[1] - 8.0 * w, skin[2] - 6.0 * w)
            for side in (-1.0, 1.0):
                cv.ellipse((cx + side * p["eye_dx"] * 1.1, p["nose_y"] + 2.0), (6.0, 4.0), blush,
                           depth=_DEPTH_EYE)

        # ---- hair on top (style 0 is bald, 4 a fringe down to the brows, 5 a tilted side part)
        if style != 0:
            hairline = p["eye_y"] - p["brow_gap"] - 5.0 if style == 4 else top + fh * (0.32 + 0.25 * p["hairline"])
            tilt = (p["hairline"] - 0.5) * 30.0 if style == 5 else 0.0
            cv.ellipse((cx, hairline), (fw * 1.03 + vol * 0.4, hairline - top + 4.0 + vol), hair,
                       depth=_DEPTH_FACE, angle=tilt, arc=(180.0, 360.0))

        # ---- beard (before mouth and nose): full, goatee or moustache only
        my, lip_up = p["mouth_y"], p["lip_up"]
        if p["beard"] > 0.8:
            bstyle = min(int(p["beard_style"] * 3), 2)
            beard = _mul(ident.hair, 0.9)
            if bstyle == 0:
                cv.ellipse((cx, fcy + 2.0), (fw * p["jaw"] * 0.98, fh * 0.98), beard, depth=_DEPTH_FACE,
                           arc=(5.0, 175.0))
                cv.ellipse((cx, my - 1.0), (p["mouth_w"] + 4.0, 9.0), skin, depth=_DEPTH_MOUTH, arc=(180.0, 360.0))
            elif bstyle == 1:
                cv.ellipse((cx, my + 11.0), (p["mouth_w"] * 0.6, 8.0), beard, depth=_DEPTH_MOUTH)
            cv.poly(_curve(cx - p["mouth_w"] - 2.0, cx + p["mouth_w"] + 2.0, my - 1.0, my - lip_up - 4.5), beard,
                    depth=_DEPTH_MOUTH)

        # ---- eyes and brows
        ey, ew, eh = p["eye_y"], p["eye_w"], p["eye_h"] * blink
        iris_r = min(p["iris_r"] * p["eye_h"], ew * 0.8)
        lid = _mul(skin, 0.35)
        lid_t = max(1, round(cv.scale))
        bl, thick, arch, btilt = ew * p["brow_len"], p["brow_thick"], p["brow_arch"], p["brow_tilt"]
        for side in (-1.0, 1.0):
            ex = cx + side * p["eye_dx"]
            tilt = -side * p["eye_tilt"]
            cv.ellipse((ex, ey), (ew, eh), (236.0, 234.0, 228.0), depth=_DEPTH_EYE, angle=tilt)
            if blink == 1.0:
                ix = ex + gaze * (ew - iris_r)
                cv.ellipse((ix, ey), (iris_r, iris_r), ident.iris, depth=_DEPTH_EYE + 0.5)
                cv.ellipse((ix, ey), (iris_r * 0.45, iris_r * 0.45), (10.0, 10.0, 12.0), depth=_DEPTH_EYE + 0.5)
            cv.ellipse((ex, ey), (ew, eh), lid, depth=_DEPTH_EYE, angle=tilt, arc=(180.0, 360.0), thickness=lid_t)
            by = ey - p["brow_gap"] - brow_raise
            upper = [(x, y + side * (x - ex) / bl * btilt) for x, y in _curve(ex - bl, ex + bl, by, by - arch, 7)]
            # the brow is thicker at its inner end (towards the nose)
            lower = [(x, y + thick * (0.6 + 0.4 * (1.0 - abs((x - ex + side * bl) / (2.0 * bl)))))
                     for x, y in reversed(upper)]
            cv.poly(upper + lower, ident.brow, depth=_DEPTH_BROW)

        # ---- nose
        ny, nw = p["nose_y"], p["nose_w"]
        shade = _mul(skin, 0.72)
        nstyle = min(int(p["nose_style"] * 3), 2)
        if p["nose_bridge"] > 0.4:
            cv.poly(((cx + 2.0, ey + 4.0), (cx + 3.0, ny - 4.0)), _mul(skin, 0.85), depth=_DEPTH_NOSE * 0.6,
                    thickness=1.0 + p["nose_bridge"], closed=False)
        if nstyle == 0:
            for side in (-1.0, 1.0):
                cv.ellipse((cx + side * nw * 0.55, ny), (nw * 0.28, nw * 0.16), _mul(shade, 0.7),
                           depth=_DEPTH_NOSTRIL)
        elif nstyle == 1:
            cv.poly(_curve(cx - nw, cx + nw, ny - 1.5, ny + 2.0), shade, depth=_DEPTH_NOSTRIL, thickness=1.2,
                    closed=False)
        else:
            cv.poly(((cx, ny - 14.0), (cx - nw, ny), (cx + nw, ny)), _mul(shade, 0.95), depth=_DEPTH_NOSE,
                    thickness=1.0)
        cv.ellipse((cx, ny - 2.0), (nw * 0.45, nw * 0.35), _mul(skin, 1.05), depth=_DEPTH_NOSE)

        # ---- mouth (corners rise with the smile; an open mouth shows a dark inside)
        mw = p["mouth_w"] * (1.0 + 0.12 * smile)
        corner_y = my - 2.5 * smile
        upper = _curve(cx - mw, cx + mw, corner_y, my - lip_up, 9)
        upper[4] = (upper[4][0], upper[4][1] + 0.8)  # cupid's bow
        lower = _curve(cx + mw, cx - mw, corner_y, my + p["lip_lo"] + mouth_open, 9)
        cv.poly(upper + lower, ident.lip, depth=_DEPTH_MOUTH)
        if mouth_open > 0.8:
            cv.poly(_curve(cx - mw * 0.8, cx + mw * 0.8, corner_y, my - 0.4, 7)
                    + _curve(cx + mw * 0.8, cx - mw * 0.8, corner_y, my + mouth_open * 0.9, 7),
                    (60.0, 24.0, 28.0), depth=_DEPTH_MOUTH + 0.5)
        cv.poly(_curve(cx - mw, cx + mw, corner_y, my + smile * 1.5, 9), _mul(ident.lip, 0.55),
                depth=_DEPTH_MOUTH + 0.5, thickness=0.9, closed=False)

        # ---- mole, glasses (taken off in 10 % of a wearer's images)
        if p["mole"] < 0.35:
            cv.ellipse((cx + p["mole_x"] * fw * 0.6, fcy + p["mole_y"] * fh * 0.45), (1.3, 1.3), _mul(skin, 0.45),
                       depth=_DEPTH_EYE)
        if p["glasses"] < 0.2 and u[5] > 0.1:
            gw, gh = ew + 3.5, max(p["eye_h"] + 3.5, 7.0)
            frames = ident.frames
            for side in (-1.0, 1.0):
                gx = cx + side * p["eye_dx"]
                if p["glasses_style"] < 0.5:
                    cv.ellipse((gx, ey), (gw, gh), frames, depth=_DEPTH_GLASSES,
                               thickness=max(1, round(1.4 * cv.scale)))
                else:
                    cv.poly(((gx - gw, ey - gh), (gx + gw, ey - gh), (gx + gw, ey + gh), (gx - gw, ey + gh)), frames,
                            depth=_DEPTH_GLASSES, thickness=1.4)
                cv.poly(((gx + side * gw, ey - 2.0), (cx + side * fw * 0.98, ey - 1.0)), frames,
                        depth=_DEPTH_GLASSES * 0.5, thickness=1.2, closed=False)
            cv.poly(((cx - p["eye_dx"] + gw, ey - 1.0), (cx + p["eye_dx"] - gw, ey - 1.0)), frames,
                    depth=_DEPTH_GLASSES, thickness=1.2, closed=False)

        # ---- landmarks (ArcFace order) and occasional occlusion
        canon = ((cx - p["eye_dx"], ey), (cx + p["eye_dx"], ey), (cx, ny - 2.0), (cx - mw, corner_y),
                 (cx + mw, corner_y))
        depths = (_DEPTH_EYE, _DEPTH_EYE, _DEPTH_NOSE, _DEPTH_MOUTH, _DEPTH_MOUTH)
        landmarks = np.array([cv.project((pt,), d)[0] for pt, d in zip(canon, depths)])
        if u[6] < 0.12 * k:
            _occlude(cv, OCCLUSION_KINDS[int(u[7] * len(OCCLUSION_KINDS))], u[40:48], canon)

        # ---- photometry: gain gradient × brightness × colour cast, noise, gamma; then blur / low resolution
        g = math.exp(_clamp(z[10] * 0.18 * k, -0.6, 0.6))
        strength = 0.35 * k * u[8]
        ang = u[9] * 2.0 * math.pi
        gx, gy = math.cos(ang) * strength, math.sin(ang) * strength
        cast = [g * (1.0 + (c - 0.5) * 0.16 * k) for c in u[10:13]]
        corners = [[1.0 - gx - gy, 1.0 + gx - gy], [1.0 - gx + gy, 1.0 + gx + gy]]
        gain2 = np.array([[[v * c for c in cast] for v in row] for row in corners], np.float32)
        gain = cv2.resize(gain2, (S, S), interpolation=cv2.INTER_LINEAR)
        out = cv2.multiply(img, gain, dtype=cv2.CV_32F)
        sigma = 6.0 * k * u[13]
        if sigma > 0.5:
            oy, ox = int(u[14] * 64), int(u[15] * 64)
            out = cv2.scaleAdd(self._noise_bank[oy:oy + S, ox:ox + S], sigma, out)
        # saturating cast to uint8 (a negative value, noise on a near-black pixel, is reflected: |v|)
        img = cv2.convertScaleAbs(out)
        gamma = math.exp(_clamp(z[11] * 0.2 * k, -0.5, 0.5))
        if abs(gamma - 1.0) > 0.02:
            img = cv2.LUT(img, _gamma_lut(round(gamma, 2)))
        if u[16] < 0.3 * k:
            img = cv2.GaussianBlur(img, (0, 0), (0.4 + 1.1 * k * u[17]) * f)
        if u[18] < 0.12 * k:
            small = max(8, int(S * (0.3 + 0.4 * u[19])))
            img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (S, S),
                             interpolation=cv2.INTER_LINEAR)
        return img, landmarks

    # ------------------------------------------------------------------ verification pairs
    def pair_specs(self, num_folds: int = 10, pairs_per_fold: int = 300, *, seed: int = 0,
                   identities_per_fold: int | None = None, images_per_identity: int = 6
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Held-out pair list, LFW View-2 order, without rendering.

        Fold ``f`` uses its own held-out identities ``f·I … (f+1)·I - 1`` (I = ``identities_per_fold``,
        default ``max(20, pairs_per_fold // 3)``), each with images ``0 … images_per_identity - 1``; it holds
        ``pairs_per_fold`` distinct same-identity pairs followed by ``pairs_per_fold`` distinct
        different-identity pairs. Returns ``(refs, issame)``: int64 (num_folds·2·pairs_per_fold, 2, 2) of
        ``[[id_a, img_a], [id_b, img_b]]`` held-out references and the bool labels. O(pairs) time.
        """
        for name, value in (("num_folds", num_folds), ("pairs_per_fold", pairs_per_fold),
                            ("images_per_identity", images_per_identity)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SynthFaces.pair_specs: {name} must be an int >= 1, got {value!r}")
        ipf = max(20, pairs_per_fold // 3) if identities_per_fold is None else int(identities_per_fold)
        m = int(images_per_identity)
        if ipf < 2 or m < 2:
            raise ValueError(f"SynthFaces.pair_specs: identities_per_fold ({ipf}) and images_per_identity ({m}) "
                             "must both be >= 2")
        n_same, n_diff = ipf * m * (m - 1) // 2, ipf * (ipf - 1) // 2 * m * m
        if pairs_per_fold > min(n_same, n_diff):
            raise ValueError(f"SynthFaces.pair_specs: pairs_per_fold={pairs_per_fold} exceeds the "
                             f"{min(n_same, n_diff)} distinct pairs that identities_per_fold={ipf} × "
                             f"images_per_identity={m} allow; raise either")
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _PAIR_TAG, int(seed)])))
        ia, ib = np.triu_indices(m, 1)  # image pairs within one identity
        ja, jb = np.triu_indices(ipf, 1)  # identity pairs within one fold
        refs = np.empty((num_folds, 2 * pairs_per_fold, 2, 2), np.int64)
        for fold in range(num_folds):
            base = fold * ipf
            s = rng.choice(n_same, pairs_per_fold, replace=False)
            sid, spair = np.divmod(s, len(ia))
            refs[fold, :pairs_per_fold] = np.stack(
                [np.stack([base + sid, ia[spair]], 1), np.stack([base + sid, ib[spair]], 1)], 1)
            d = rng.choice(n_diff, pairs_per_fold, replace=False)
            dpair, dimg = np.divmod(d, m * m)
            refs[fold, pairs_per_fold:] = np.stack(
                [np.stack([base + ja[dpair], dimg // m], 1), np.stack([base + jb[dpair], dimg % m], 1)], 1)
        issame = np.tile(np.repeat([True, False], pairs_per_fold), num_folds)
        return refs.reshape(-1, 2, 2), issame

    def verification_pairs(self, num_folds: int = 10, pairs_per_fold: int = 300, *, seed: int = 0,
                           identities_per_fold: int | None = None, images_per_identity: int = 6
                           ) -> tuple[np.ndarray, np.ndarray]:
        """An LFW-like verification set on held-out identities, in insightface ``.bin`` order.

        ``num_folds`` folds × (``pairs_per_fold`` same + ``pairs_per_fold`` different) pairs (defaults:
        LFW View 2, 10 × (300 + 300)); pair ``k`` is ``images[2k], images[2k+1]`` with label ``issame[k]``.
        Returns ``(images, issame)``: uint8 (2N, S, S, 3) RGB and bool (N,), ready for
        ``massface.data.write_bin(path, images, issame)``. See :meth:`pair_specs` for the sampling. Each
        distinct image is rendered once (about 5,300 for the LFW-sized default); memory is O(N·S²), about
        450 MB for the default 6,000 pairs at 112×112 (ask for fewer folds or pairs for a lighter set).
        """
        refs, issame = self.pair_specs(num_folds, pairs_per_fold, seed=seed,
                                       identities_per_fold=identities_per_fold,
                                       images_per_identity=images_per_identity)
        flat = refs.reshape(-1, 2)
        keys, inverse = np.unique(flat, axis=0, return_inverse=True)
        tag = _SPLIT_TAGS["heldout"]
        S = self.image_size
        rendered = np.empty((len(keys), S, S, 3), np.uint8)
        for r, (gid, j) in enumerate(keys.tolist()):
            rendered[r] = self._render(gid, j, tag)[0]
        return rendered[inverse.reshape(-1)], issame

    # ------------------------------------------------------------------ export
    def export(self, directory: str | Path, *, bin_name: str | None = "synth_lfw.bin", num_folds: int = 10,
               pairs_per_fold: int = 300, pair_seed: int = 0) -> dict[str, Path]:
        """Write the training set as insightface RecordIO (``train.rec``/``.idx``/``property``) and, unless
        ``bin_name`` is None, the held-out verification set as an insightface ``.bin`` in ``directory``.

        Uses ``massface.data.recordio.write_records`` and ``massface.data.verification.write_bin``
        (imported on call). Returns the written paths.
        """
        from massface.data.recordio import write_records  # lazy: only needed on export
        from massface.data.verification import write_bin

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_records(directory, self.iter_samples())
        paths = {"rec": directory / "train.rec", "idx": directory / "train.idx", "property": directory / "property"}
        if bin_name is not None:
            images, issame = self.verification_pairs(num_folds, pairs_per_fold, seed=pair_seed)
            write_bin(directory / bin_name, images, issame)
            paths["bin"] = directory / bin_name
        return paths
