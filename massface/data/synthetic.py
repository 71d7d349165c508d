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

Real identity sets are not clean, and SynthFaces can be dirty on purpose (ground truth kept):

* ``duplicate_identities=f`` -- round(f·N) labels show the same *person* as another label (one person filed
  under two labels, as in MS1M / Glint360K / WebFace): label j's images are new images of label i's person;
  :attr:`SynthFaces.duplicate_pairs` lists the (i, j) label pairs;
* ``label_noise=f`` -- round(f·N·M) images carry another identity's label than the person they show.

:attr:`SynthFaces.true_identity` is each image's person (named by the person's first label), so
``true_identity != labels`` marks the mislabelled images and those of duplicate labels, and
``true_identity[a] == true_identity[n]`` a false negative. Both draws are seeded by ``seed`` alone and are disjoint from the rendering seeds.

Cost: rendering one image is O(H·W) time and memory (about forty OpenCV drawing calls plus a handful of
vectorised per-pixel passes). Nothing is stored per image; a dataset of N×M images holds O(1) memory plus
a bounded memo of decoded identities (≤ 4096, a few KB each) and one shared noise bank of 3·(H+64)²
float32 values (sensor noise is a random crop of it, scaled per image).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import cv2
import numpy as np

from massface._checks import check_int, check_real
from massface._deprecation import warn_renamed
from massface.data import occlusion as _occlusion
from massface.data._drawing import (
    CANON,
    DEPTH_BROW,
    DEPTH_EAR,
    DEPTH_EYE,
    DEPTH_FACE,
    DEPTH_GLASSES,
    DEPTH_MOUTH,
    DEPTH_NOSE,
    DEPTH_NOSTRIL,
    SKIN,
    Canvas,
    clamp,
    col,
    curve,
    mul,
    palette,
)

__all__ = ["SynthFaces"]

_SPLIT_TAGS = {"train": 0, "heldout": 1}
_PAIR_TAG = 2  # SeedSequence tag of the verification-pair sampler
_NOISE_TAG = 3  # SeedSequence tag of the shared noise bank
_DIRT_TAG = 4  # SeedSequence tag of the duplicate-identity and label-noise draws
_DUPLICATE_OFFSET = 1 << 24  # a duplicate label's images are its person's images from this index on
_IDENTITY_CACHE_SIZE = 4096  # decoded identities kept per dataset

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

_HAIR = np.array([[22, 18, 16], [62, 42, 30], [112, 74, 46], [158, 74, 42], [206, 166, 104],
                  [168, 166, 160], [232, 226, 212]], float)
_IRIS = np.array([[58, 34, 20], [112, 72, 36], [122, 112, 52], [70, 122, 82], [78, 122, 176],
                  [112, 122, 134]], float)
_FRAMES = np.array([[20, 20, 22], [120, 80, 42], [184, 184, 194], [150, 34, 34], [34, 44, 120]], float)
_LIP = np.array([170, 62, 72], float)


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


# ---------------------------------------------------------------------------------------------- rendering
# One image is painted back to front by the functions below, one concern each; every number they read comes
# from the identity (``ident.p``) or from the image's own uniforms ``u`` (48) and normals ``z`` (12).
_CX = 56.0  # the face's vertical axis in the canonical frame


class _Pose(NamedTuple):
    """Where the face sits in the image: the canonical → pixel similarity ``A`` (2×3) and the pseudo-3D turn."""

    A: np.ndarray
    yaw: float
    pitch: float


class _Expression(NamedTuple):
    """The per-image expression: smile (corners up), open mouth, raised brows, blink (eye-height factor), gaze."""

    smile: float
    mouth_open: float
    brow_raise: float
    blink: float
    gaze: float


def _pose(z: Sequence[float], k: float, f: float) -> _Pose:
    """Pseudo-3D yaw / pitch, then a similarity: rotation about the image centre, scale, shift (``z[0:6]``)."""
    rot = math.radians(clamp(z[0] * 6.0 * k, -25.0, 25.0))
    scale = math.exp(clamp(z[1] * 0.05 * k, -0.2, 0.2)) * f
    tx, ty = clamp(z[2] * 2.5 * k, -9.0, 9.0) * f, clamp(z[3] * 2.5 * k, -9.0, 9.0) * f
    yaw = clamp(z[4] * 0.22 * k, -0.7, 0.7)
    pitch = clamp(z[5] * 0.08 * k, -0.3, 0.3)
    ca, sa, c0 = math.cos(rot) * scale, math.sin(rot) * scale, 56.0
    A = np.array([[ca, -sa, c0 * f + tx - ca * c0 + sa * c0], [sa, ca, c0 * f + ty - sa * c0 - ca * c0]])
    return _Pose(A, yaw, pitch)


def _expression(z: Sequence[float], u: Sequence[float], k: float) -> _Expression:
    """Smile, open mouth (35 % of images), raised brows, blink (rare), gaze, from ``z[6:10]`` and ``u[2:4]``."""
    return _Expression(smile=clamp(0.25 + z[6] * 0.35 * k, -0.4, 1.0),
                       mouth_open=max(0.0, z[7] * 2.5 * k) if u[2] < 0.35 else 0.0,
                       brow_raise=clamp(z[8] * 1.5 * k, -2.0, 3.5),
                       blink=0.15 if u[3] < 0.05 * k else 1.0,
                       gaze=clamp(z[9] * 0.35, -1.0, 1.0))


def _background(colours: np.ndarray, u: Sequence[float], S: int) -> np.ndarray:
    """A bilinear field of the 2×2 ``colours``, plus 1-3 clutter rectangles in half of the images."""
    img = cv2.resize(colours, (S, S), interpolation=cv2.INTER_LINEAR)
    if u[0] < 0.5:
        for r in range(1 + int(u[1] * 3)):
            q = u[28 + 5 * r:33 + 5 * r]
            cv2.rectangle(img, (int(q[0] * S), int(q[1] * S)), (int(q[2] * S), int(q[3] * S)),
                          col((q[4] * 255.0, q[0] * 255.0, q[3] * 255.0)), -1)
    return img


def _hair_style(p: dict[str, float]) -> int:
    """0 bald, 1 short, 2 medium, 3 long, 4 fringe, 5 side part."""
    return min(int(p["hair_style"] * 6), 5)


def _draw_head(cv: Canvas, ident: _Identity, u: Sequence[float], hair: Colour) -> None:
    """Clothing, neck, hair behind the head (medium / long styles), ears, face and cheeks."""
    p, skin = ident.p, ident.skin
    cx, fcy, fw, fh = _CX, p["face_cy"], p["face_w"], p["face_h"]
    cv.ellipse((cx, 138.0), (62.0, 34.0), (255.0 * u[20], 255.0 * u[21], 255.0 * u[22]))
    neck_w = fw * 0.5
    cv.poly(((cx - neck_w, fcy + fh * 0.5), (cx + neck_w, fcy + fh * 0.5), (cx + neck_w, 120.0),
             (cx - neck_w, 120.0)), mul(skin, 0.82))
    style, vol = _hair_style(p), p["hair_vol"]
    if style in (2, 3):  # medium / long hair behind the head
        drop = fh * (0.55 if style == 2 else 1.35)
        cv.ellipse((cx, fcy - fh * 0.2 + drop * 0.4), (fw + 5.0 + vol, fh * 0.8 + drop * 0.6 + vol), hair,
                   depth=-6.0)
    ear_y = p["eye_y"] + 7.0
    for side in (-1.0, 1.0):
        cv.ellipse((cx + side * fw * 0.97, ear_y), (p["ear_size"] * 0.55, p["ear_size"]), mul(skin, 0.92),
                   depth=DEPTH_EAR)
    cv.ellipse((cx, fcy), (fw, fh * 0.82), skin, depth=DEPTH_FACE)
    cv.ellipse((cx, fcy), (fw * p["jaw"], fh), skin, depth=DEPTH_FACE, arc=(0.0, 180.0))
    if p["cheek"] > 0.55:
        w = (p["cheek"] - 0.55) * 2.2
        blush = (skin[0] + 18.0 * w, skin[1] - 8.0 * w, skin[2] - 6.0 * w)
        for side in (-1.0, 1.0):
            cv.ellipse((cx + side * p["eye_dx"] * 1.1, p["nose_y"] + 2.0), (6.0, 4.0), blush, depth=DEPTH_EYE)


def _draw_hair(cv: Canvas, ident: _Identity, hair: Colour) -> None:
    """Hair on top of the head: style 0 is bald, 4 a fringe down to the brows, 5 a tilted side part."""
    p = ident.p
    style = _hair_style(p)
    if style == 0:
        return
    fcy, fw, fh, vol = p["face_cy"], p["face_w"], p["face_h"], p["hair_vol"]
    top = fcy - fh
    hairline = p["eye_y"] - p["brow_gap"] - 5.0 if style == 4 else top + fh * (0.32 + 0.25 * p["hairline"])
    tilt = (p["hairline"] - 0.5) * 30.0 if style == 5 else 0.0
    cv.ellipse((_CX, hairline), (fw * 1.03 + vol * 0.4, hairline - top + 4.0 + vol), hair, depth=DEPTH_FACE,
               angle=tilt, arc=(180.0, 360.0))


def _draw_beard(cv: Canvas, ident: _Identity) -> None:
    """A full beard, a goatee or a moustache only (a fifth of the identities); drawn before mouth and nose."""
    p = ident.p
    if p["beard"] <= 0.8:
        return
    cx, my, mouth_w = _CX, p["mouth_y"], p["mouth_w"]
    bstyle = min(int(p["beard_style"] * 3), 2)
    beard = mul(ident.hair, 0.9)
    if bstyle == 0:
        cv.ellipse((cx, p["face_cy"] + 2.0), (p["face_w"] * p["jaw"] * 0.98, p["face_h"] * 0.98), beard,
                   depth=DEPTH_FACE, arc=(5.0, 175.0))
        cv.ellipse((cx, my - 1.0), (mouth_w + 4.0, 9.0), ident.skin, depth=DEPTH_MOUTH, arc=(180.0, 360.0))
    elif bstyle == 1:
        cv.ellipse((cx, my + 11.0), (mouth_w * 0.6, 8.0), beard, depth=DEPTH_MOUTH)
    cv.poly(curve(cx - mouth_w - 2.0, cx + mouth_w + 2.0, my - 1.0, my - p["lip_up"] - 4.5), beard,
            depth=DEPTH_MOUTH)


def _draw_eyes(cv: Canvas, ident: _Identity, expr: _Expression) -> None:
    """Both eyes (white, iris and pupil unless blinking, upper lid) and brows (thicker at their inner end)."""
    p = ident.p
    cx, ey, ew, eh = _CX, p["eye_y"], p["eye_w"], p["eye_h"] * expr.blink
    iris_r = min(p["iris_r"] * p["eye_h"], ew * 0.8)
    lid = mul(ident.skin, 0.35)
    lid_t = max(1, round(cv.scale))
    bl, thick, arch, btilt = ew * p["brow_len"], p["brow_thick"], p["brow_arch"], p["brow_tilt"]
    for side in (-1.0, 1.0):
        ex = cx + side * p["eye_dx"]
        tilt = -side * p["eye_tilt"]
        cv.ellipse((ex, ey), (ew, eh), (236.0, 234.0, 228.0), depth=DEPTH_EYE, angle=tilt)
        if expr.blink == 1.0:
            ix = ex + expr.gaze * (ew - iris_r)
            cv.ellipse((ix, ey), (iris_r, iris_r), ident.iris, depth=DEPTH_EYE + 0.5)
            cv.ellipse((ix, ey), (iris_r * 0.45, iris_r * 0.45), (10.0, 10.0, 12.0), depth=DEPTH_EYE + 0.5)
        cv.ellipse((ex, ey), (ew, eh), lid, depth=DEPTH_EYE, angle=tilt, arc=(180.0, 360.0), thickness=lid_t)
        by = ey - p["brow_gap"] - expr.brow_raise
        upper = [(x, y + side * (x - ex) / bl * btilt) for x, y in curve(ex - bl, ex + bl, by, by - arch, 7)]
        # the brow is thicker at its inner end (towards the nose)
        lower = [(x, y + thick * (0.6 + 0.4 * (1.0 - abs((x - ex + side * bl) / (2.0 * bl)))))
                 for x, y in reversed(upper)]
        cv.poly(upper + lower, ident.brow, depth=DEPTH_BROW)


def _draw_nose(cv: Canvas, ident: _Identity) -> None:
    """Bridge (some identities), then nostrils, a tip line or a triangle outline, then the lit tip."""
    p, skin = ident.p, ident.skin
    cx, ny, nw = _CX, p["nose_y"], p["nose_w"]
    shade = mul(skin, 0.72)
    nstyle = min(int(p["nose_style"] * 3), 2)
    if p["nose_bridge"] > 0.4:
        cv.poly(((cx + 2.0, p["eye_y"] + 4.0), (cx + 3.0, ny - 4.0)), mul(skin, 0.85), depth=DEPTH_NOSE * 0.6,
                thickness=1.0 + p["nose_bridge"], closed=False)
    if nstyle == 0:
        for side in (-1.0, 1.0):
            cv.ellipse((cx + side * nw * 0.55, ny), (nw * 0.28, nw * 0.16), mul(shade, 0.7), depth=DEPTH_NOSTRIL)
    elif nstyle == 1:
        cv.poly(curve(cx - nw, cx + nw, ny - 1.5, ny + 2.0), shade, depth=DEPTH_NOSTRIL, thickness=1.2,
                closed=False)
    else:
        cv.poly(((cx, ny - 14.0), (cx - nw, ny), (cx + nw, ny)), mul(shade, 0.95), depth=DEPTH_NOSE,
                thickness=1.0)
    cv.ellipse((cx, ny - 2.0), (nw * 0.45, nw * 0.35), mul(skin, 1.05), depth=DEPTH_NOSE)


def _draw_mouth(cv: Canvas, ident: _Identity, expr: _Expression) -> tuple[float, float]:
    """Lips (corners rise with the smile; an open mouth shows a dark inside) and the lip line; returns the
    mouth's half-width and corner height (canonical frame), where its landmarks lie."""
    p = ident.p
    cx, my, smile, mouth_open = _CX, p["mouth_y"], expr.smile, expr.mouth_open
    mw = p["mouth_w"] * (1.0 + 0.12 * smile)
    corner_y = my - 2.5 * smile
    upper = curve(cx - mw, cx + mw, corner_y, my - p["lip_up"], 9)
    upper[4] = (upper[4][0], upper[4][1] + 0.8)  # cupid's bow
    lower = curve(cx + mw, cx - mw, corner_y, my + p["lip_lo"] + mouth_open, 9)
    cv.poly(upper + lower, ident.lip, depth=DEPTH_MOUTH)
    if mouth_open > 0.8:
        cv.poly(curve(cx - mw * 0.8, cx + mw * 0.8, corner_y, my - 0.4, 7)
                + curve(cx + mw * 0.8, cx - mw * 0.8, corner_y, my + mouth_open * 0.9, 7),
                (60.0, 24.0, 28.0), depth=DEPTH_MOUTH + 0.5)
    cv.poly(curve(cx - mw, cx + mw, corner_y, my + smile * 1.5, 9), mul(ident.lip, 0.55),
            depth=DEPTH_MOUTH + 0.5, thickness=0.9, closed=False)
    return mw, corner_y


def _draw_mole(cv: Canvas, ident: _Identity) -> None:
    """A mole somewhere on the face (a third of the identities)."""
    p = ident.p
    if p["mole"] < 0.35:
        cv.ellipse((_CX + p["mole_x"] * p["face_w"] * 0.6, p["face_cy"] + p["mole_y"] * p["face_h"] * 0.45),
                   (1.3, 1.3), mul(ident.skin, 0.45), depth=DEPTH_EYE)


def _draw_glasses(cv: Canvas, ident: _Identity) -> None:
    """Round or square frames with their temples and bridge."""
    p, frames = ident.p, ident.frames
    cx, ey, eye_dx = _CX, p["eye_y"], p["eye_dx"]
    gw, gh = p["eye_w"] + 3.5, max(p["eye_h"] + 3.5, 7.0)
    for side in (-1.0, 1.0):
        gx = cx + side * eye_dx
        if p["glasses_style"] < 0.5:
            cv.ellipse((gx, ey), (gw, gh), frames, depth=DEPTH_GLASSES, thickness=max(1, round(1.4 * cv.scale)))
        else:
            cv.poly(((gx - gw, ey - gh), (gx + gw, ey - gh), (gx + gw, ey + gh), (gx - gw, ey + gh)), frames,
                    depth=DEPTH_GLASSES, thickness=1.4)
        cv.poly(((gx + side * gw, ey - 2.0), (cx + side * p["face_w"] * 0.98, ey - 1.0)), frames,
                depth=DEPTH_GLASSES * 0.5, thickness=1.2, closed=False)
    cv.poly(((cx - eye_dx + gw, ey - 1.0), (cx + eye_dx - gw, ey - 1.0)), frames, depth=DEPTH_GLASSES,
            thickness=1.2, closed=False)


_LANDMARK_DEPTHS = (DEPTH_EYE, DEPTH_EYE, DEPTH_NOSE, DEPTH_MOUTH, DEPTH_MOUTH)


def _landmarks(cv: Canvas, ident: _Identity, mouth_w: float, corner_y: float
               ) -> tuple[tuple[tuple[float, float], ...], np.ndarray]:
    """The five landmarks (ArcFace order) in the canonical frame and projected to pixels (5, 2)."""
    p = ident.p
    cx, ey = _CX, p["eye_y"]
    canon = ((cx - p["eye_dx"], ey), (cx + p["eye_dx"], ey), (cx, p["nose_y"] - 2.0), (cx - mouth_w, corner_y),
             (cx + mouth_w, corner_y))
    return canon, np.array([cv.project((pt,), d)[0] for pt, d in zip(canon, _LANDMARK_DEPTHS)])


def _lighting(img: np.ndarray, u: Sequence[float], z: Sequence[float], k: float) -> np.ndarray:
    """Illumination: a linear gain gradient × brightness × colour cast; returns float32 (S, S, 3)."""
    S = img.shape[0]
    g = math.exp(clamp(z[10] * 0.18 * k, -0.6, 0.6))
    strength = 0.35 * k * u[8]
    ang = u[9] * 2.0 * math.pi
    gx, gy = math.cos(ang) * strength, math.sin(ang) * strength
    cast = [g * (1.0 + (c - 0.5) * 0.16 * k) for c in u[10:13]]
    corners = [[1.0 - gx - gy, 1.0 + gx - gy], [1.0 - gx + gy, 1.0 + gx + gy]]
    gain2 = np.array([[[v * c for c in cast] for v in row] for row in corners], np.float32)
    gain = cv2.resize(gain2, (S, S), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(img, gain, dtype=cv2.CV_32F)


def _sensor(lit: np.ndarray, u: Sequence[float], z: Sequence[float], k: float, noise_bank: np.ndarray
            ) -> np.ndarray:
    """Sensor noise (a random crop of the shared bank), the uint8 cast, then gamma."""
    S = lit.shape[0]
    sigma = 6.0 * k * u[13]
    if sigma > 0.5:
        oy, ox = int(u[14] * 64), int(u[15] * 64)
        lit = cv2.scaleAdd(noise_bank[oy:oy + S, ox:ox + S], sigma, lit)
    # saturating cast to uint8 (a negative value, noise on a near-black pixel, is reflected: |v|)
    img = cv2.convertScaleAbs(lit)
    gamma = math.exp(clamp(z[11] * 0.2 * k, -0.5, 0.5))
    if abs(gamma - 1.0) > 0.02:
        img = cv2.LUT(img, _gamma_lut(round(gamma, 2)))
    return img


def _degrade(img: np.ndarray, u: Sequence[float], k: float, f: float) -> np.ndarray:
    """Optical blur and low resolution (down- then up-scaling), each in a difficulty-scaled share of images."""
    S = img.shape[0]
    if u[16] < 0.3 * k:
        img = cv2.GaussianBlur(img, (0, 0), (0.4 + 1.1 * k * u[17]) * f)
    if u[18] < 0.12 * k:
        small = max(8, int(S * (0.3 + 0.4 * u[19])))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (S, S),
                         interpolation=cv2.INTER_LINEAR)
    return img


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
        duplicate_identities: fraction in [0, 0.5] of labels that show another label's person.
        label_noise: fraction in [0, 1) of images labelled as another identity (needs N >= 2).

    Rendering costs O(S²) time per image; the object holds O(1) state plus a lazily built noise bank.
    """

    def __init__(self, num_identities: int, images_per_identity: int, *, seed: int = 0,
                 difficulty: float = 0.5, image_size: int = 112, split: Literal["train", "heldout"] = "train",
                 identity_offset: int = 0, duplicate_identities: float = 0.0, label_noise: float = 0.0) -> None:
        for name, value, low in (("num_identities", num_identities, 1),
                                 ("images_per_identity", images_per_identity, 1),
                                 ("seed", seed, 0), ("identity_offset", identity_offset, 0)):
            check_int(name, value, "SynthFaces", low=low)
        if not isinstance(difficulty, (int, float, np.floating)) or not 0.0 <= float(difficulty) <= 1.0:
            raise ValueError(f"SynthFaces: difficulty must be a float in [0, 1], got {difficulty!r}")
        check_int("image_size", image_size, "SynthFaces", low=16, high=1024)
        if split not in _SPLIT_TAGS:
            raise ValueError(f"SynthFaces: split must be one of {sorted(_SPLIT_TAGS)}, got {split!r}")
        self.num_identities = int(num_identities)
        self.images_per_identity = int(images_per_identity)
        self.seed = int(seed)
        self.difficulty = float(difficulty)
        self.image_size = int(image_size)
        self.split = split
        self.identity_offset = int(identity_offset)
        self.duplicate_identities = check_real("duplicate_identities", duplicate_identities, "SynthFaces", low=0.0,
                                               high=0.5, note="a fraction of the labels")
        self.label_noise = check_real("label_noise", label_noise, "SynthFaces", low=0.0, high=1.0,
                                      high_open=True, note="a fraction of the images")
        if self.label_noise and self.num_identities < 2:
            raise ValueError("SynthFaces: label_noise needs at least 2 identities (a wrong label must exist)")
        # memo of decoded identities (a pure function of (seed, difficulty, id)), bounded in size
        self._identity_cache: dict[tuple[int, int], _Identity] = {}

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def heldout(cls, num_identities: int, images_per_identity: int, **kwargs: object) -> SynthFaces:
        """A dataset on the held-out namespace: identities disjoint from every ``"train"`` set of its seed.

        Its identity ``i`` is the identity used by fold ``i // identities_per_fold`` of
        :meth:`verification_pairs` (same seed and difficulty).
        """
        return cls(num_identities, images_per_identity, split="heldout", **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"SynthFaces(num_identities={self.num_identities}, images_per_identity="
                f"{self.images_per_identity}, seed={self.seed}, difficulty={self.difficulty}, "
                f"image_size={self.image_size}, split={self.split!r}, identity_offset={self.identity_offset}"
                + (f", duplicate_identities={self.duplicate_identities}" if self.duplicate_identities else "")
                + (f", label_noise={self.label_noise}" if self.label_noise else "") + ")")

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
        return self.image(label, j), int(self.labels[index])

    @cached_property
    def labels(self) -> np.ndarray:
        """int64 (N·M,) label of every sample, identity-major (with ``label_noise``, some images carry
        another identity's label); computed without rendering."""
        return self._dirt[1]

    @cached_property
    def true_identity(self) -> np.ndarray:
        """int64 (N·M,) person shown by every sample, named by the label of its first appearance (equal to
        :attr:`labels` for a clean set)."""
        clean = np.repeat(np.arange(self.num_identities, dtype=np.int64), self.images_per_identity)
        return self._dirt[0][clean]

    @cached_property
    def duplicate_pairs(self) -> np.ndarray:
        """int64 (S, 2) label pairs ``(i, j)`` that are one person (``i`` the person's first label)."""
        person = self._dirt[0]
        dup = np.flatnonzero(person != np.arange(self.num_identities))
        return np.stack([person[dup], dup], axis=1).astype(np.int64).reshape(-1, 2)

    @cached_property
    def _dirt(self) -> tuple[np.ndarray, np.ndarray]:
        """(person of each label (N,), label of each image (N·M,)): the duplicate and label-noise draws."""
        n, m = self.num_identities, self.images_per_identity
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _DIRT_TAG,
                                                                          _SPLIT_TAGS[self.split]])))
        person = np.arange(n, dtype=np.int64)
        n_dup = min(round(self.duplicate_identities * n), n // 2)
        if n_dup:
            order = rng.permutation(n)
            source, copy = order[:n_dup], order[n_dup:2 * n_dup]
            person[copy] = source
        labels = np.repeat(np.arange(n, dtype=np.int64), m)
        n_noisy = round(self.label_noise * n * m)
        if n_noisy:
            noisy = rng.choice(n * m, n_noisy, replace=False)
            labels[noisy] = (labels[noisy] + rng.integers(1, n, n_noisy)) % n  # never the image's own label
        return person, labels

    def iter_samples(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(image, label)`` for samples ``start … stop - 1`` (all by default), identity-major.

        Plugs directly into ``massface.data.write_records(directory, samples)``.
        """
        stop = len(self) if stop is None else min(stop, len(self))
        for k in range(max(start, 0), stop):
            label, j = divmod(k, self.images_per_identity)
            yield self.image(label, j), int(self.labels[k])

    # ------------------------------------------------------------------ identities and images
    def _check_identity(self, identity: int) -> int:
        """The global identity of the *person* label ``identity`` shows (its source for a duplicate)."""
        if not 0 <= identity < self.num_identities:
            raise IndexError(f"SynthFaces: identity {identity} out of range [0, {self.num_identities})")
        person = int(self._dirt[0][identity]) if self.duplicate_identities else int(identity)
        return self.identity_offset + person

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
        skin = palette(SKIN, p["skin_tone"]) + np.array([12.0, -6.0, -6.0]) * p["skin_red"]
        hair = palette(_HAIR, p["hair_col"])
        brow = hair * (1.0 - 0.6 * p["brow_dark"]) + 10.0
        lip = skin * (0.75 - 0.3 * p["lip_col"]) + _LIP * (0.25 + 0.3 * p["lip_col"])
        iris, frames = palette(_IRIS, p["iris_col"]), palette(_FRAMES, p["glasses_col"])
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
        global_id = self._check_identity(identity)
        if self.duplicate_identities and global_id != self.identity_offset + int(identity):
            index += _DUPLICATE_OFFSET  # the duplicate label shows other images of its person
        return self._render(global_id, int(index), _SPLIT_TAGS[self.split])

    @cached_property
    def _noise_bank(self) -> np.ndarray:
        side = self.image_size + 64
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _NOISE_TAG])))
        return rng.standard_normal((side, side, 3), dtype=np.float32)

    def _render(self, global_id: int, index: int, tag: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image, landmarks5)`` of image ``index`` of global identity ``global_id`` in namespace ``tag``.

        Draws the image's nuisances from its own seed, paints the face back to front (background, head, hair,
        beard, eyes, nose, mouth, mole, glasses, an occasional occluder) through its pose, then applies the
        photometry (lighting, sensor, blur / low resolution).
        """
        ident = self._identity(global_id, tag)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, tag, global_id, index])))
        u = rng.random(48).tolist()
        z = rng.standard_normal(12).tolist()
        background = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
        k = 0.5 + self.difficulty
        f = self.image_size / CANON

        pose = _pose(z, k, f)
        img = _background(background, u, self.image_size)
        cv = Canvas(img, pose.A, (_CX, ident.p["face_cy"]), pose.yaw, pose.pitch)
        expr = _expression(z, u, k)
        hair = mul(ident.hair, 0.94 + 0.12 * u[4])
        _draw_head(cv, ident, u, hair)
        _draw_hair(cv, ident, hair)
        _draw_beard(cv, ident)
        _draw_eyes(cv, ident, expr)
        _draw_nose(cv, ident)
        mouth_w, corner_y = _draw_mouth(cv, ident, expr)
        _draw_mole(cv, ident)
        if ident.p["glasses"] < 0.2 and u[5] > 0.1:  # taken off in 10 % of a wearer's images
            _draw_glasses(cv, ident)
        canon, landmarks = _landmarks(cv, ident, mouth_w, corner_y)
        if u[6] < 0.12 * k:
            kinds = _occlusion.OCCLUSION_KINDS
            _occlusion.occlude(cv, kinds[int(u[7] * len(kinds))], u[40:48], canon)

        img = _sensor(_lighting(img, u, z, k), u, z, k, self._noise_bank)
        return _degrade(img, u, k, f), landmarks

    # ------------------------------------------------------------------ verification pairs
    def pair_specs(self, n_folds: int = 10, pairs_per_fold: int = 300, *, seed: int = 0,
                   identities_per_fold: int | None = None, images_per_identity: int = 6,
                   num_folds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Held-out pair list, LFW View-2 order, without rendering (``num_folds=``: deprecated name of ``n_folds``).

        Fold ``f`` uses its own held-out identities ``f·I … (f+1)·I - 1`` (I = ``identities_per_fold``,
        default ``max(20, pairs_per_fold // 3)``), each with images ``0 … images_per_identity - 1``; it holds
        ``pairs_per_fold`` distinct same-identity pairs followed by ``pairs_per_fold`` distinct
        different-identity pairs. Returns ``(refs, issame)``: int64 (n_folds·2·pairs_per_fold, 2, 2) of
        ``[[id_a, img_a], [id_b, img_b]]`` held-out references and the bool labels. O(pairs) time.
        """
        n_folds = _renamed_folds(n_folds, num_folds, "SynthFaces.pair_specs")
        for name, value in (("n_folds", n_folds), ("pairs_per_fold", pairs_per_fold),
                            ("images_per_identity", images_per_identity)):
            check_int(name, value, "SynthFaces.pair_specs")
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
        refs = np.empty((n_folds, 2 * pairs_per_fold, 2, 2), np.int64)
        for fold in range(n_folds):
            base = fold * ipf
            s = rng.choice(n_same, pairs_per_fold, replace=False)
            sid, spair = np.divmod(s, len(ia))
            refs[fold, :pairs_per_fold] = np.stack(
                [np.stack([base + sid, ia[spair]], 1), np.stack([base + sid, ib[spair]], 1)], 1)
            d = rng.choice(n_diff, pairs_per_fold, replace=False)
            dpair, dimg = np.divmod(d, m * m)
            refs[fold, pairs_per_fold:] = np.stack(
                [np.stack([base + ja[dpair], dimg // m], 1), np.stack([base + jb[dpair], dimg % m], 1)], 1)
        issame = np.tile(np.repeat([True, False], pairs_per_fold), n_folds)
        return refs.reshape(-1, 2, 2), issame

    def verification_pairs(self, n_folds: int = 10, pairs_per_fold: int = 300, *, seed: int = 0,
                           identities_per_fold: int | None = None, images_per_identity: int = 6,
                           num_folds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """An LFW-like verification set on held-out identities, in insightface ``.bin`` order
        (``num_folds=``: deprecated name of ``n_folds``).

        ``n_folds`` folds × (``pairs_per_fold`` same + ``pairs_per_fold`` different) pairs (defaults:
        LFW View 2, 10 × (300 + 300)); pair ``k`` is ``images[2k], images[2k+1]`` with label ``issame[k]``.
        Returns ``(images, issame)``: uint8 (2N, S, S, 3) RGB and bool (N,), ready for
        ``massface.data.write_bin(path, images, issame)``. See :meth:`pair_specs` for the sampling. Each
        distinct image is rendered once (about 5,300 for the LFW-sized default); memory is O(N·S²), about
        450 MB for the default 6,000 pairs at 112×112 (ask for fewer folds or pairs for a lighter set).
        """
        n_folds = _renamed_folds(n_folds, num_folds, "SynthFaces.verification_pairs")
        refs, issame = self.pair_specs(n_folds, pairs_per_fold, seed=seed,
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
    def export(self, directory: str | Path, *, bin_name: str | None = "synth_lfw.bin", n_folds: int = 10,
               pairs_per_fold: int = 300, pair_seed: int = 0, progress: bool = False,
               num_folds: int | None = None) -> dict[str, Path]:
        """Write the training set as insightface RecordIO (``train.rec``/``.idx``/``property``) and, unless
        ``bin_name`` is None, the held-out verification set as an insightface ``.bin`` in ``directory``.

        The one SynthFaces exporter (``massface demo`` and the benchmarks write through it). The ``.bin`` is
        :meth:`verification_pairs` ``(n_folds, pairs_per_fold, seed=pair_seed)``, the same images as
        ``SynthFaces.heldout(..., seed=, difficulty=, image_size=)`` would give. Uses
        ``massface.data.recordio.write_records`` and ``massface.data.verification.write_bin`` (imported on call);
        ``progress`` shows a bar while the training set is written. Returns the written paths
        (``rec``, ``idx``, ``property`` and ``bin``). A dirty set also writes its ground truth:
        ``true_identity.npy`` (per image record, in the file's order: grouped by label) and ``duplicate_pairs.txt`` (label pairs, the
        format ``loss.triplet.same_identity_pairs`` reads), paths ``true_identity`` / ``duplicate_pairs``.
        """
        from massface.data.recordio import write_records  # lazy: only needed on export
        from massface.data.verification import write_bin

        n_folds = _renamed_folds(n_folds, num_folds, "SynthFaces.export")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_records(directory, self.iter_samples(), progress=progress, total=len(self))
        paths = {"rec": directory / "train.rec", "idx": directory / "train.idx", "property": directory / "property"}
        if bin_name is not None:
            images, issame = self.verification_pairs(n_folds, pairs_per_fold, seed=pair_seed)
            write_bin(directory / bin_name, images, issame)
            paths["bin"] = directory / bin_name
        if self.duplicate_identities or self.label_noise:
            from .label_lists import write_label_pairs

            record_order = np.argsort(self.labels, kind="stable")  # write_records groups images by label
            np.save(directory / "true_identity.npy", self.true_identity[record_order], allow_pickle=False)
            write_label_pairs(directory / "duplicate_pairs.txt", self.duplicate_pairs,
                              header=f"SynthFaces duplicate identities (seed {self.seed}): label pairs of one person")
            paths["true_identity"] = directory / "true_identity.npy"
            paths["duplicate_pairs"] = directory / "duplicate_pairs.txt"
        return paths


def _renamed_folds(n_folds: int, num_folds: int | None, where: str) -> int:
    """``num_folds=`` is the old name of ``n_folds`` (one convention, issue 13): honoured for one release."""
    if num_folds is None:
        return n_folds
    warn_renamed(f"{where}(num_folds=)", f"{where}(n_folds=)", stacklevel=4)
    return num_folds


_MOVED = {"draw_occlusion": "massface.data.occlusion", "OCCLUSION_KINDS": "massface.data.occlusion"}


def __getattr__(name: str) -> Any:
    """``draw_occlusion`` / ``OCCLUSION_KINDS`` moved to :mod:`massface.data.occlusion` (issue 13); the old
    location answers for one release with a DeprecationWarning."""
    if name in _MOVED:
        import importlib

        warn_renamed(f"massface.data.synthetic.{name}", f"{_MOVED[name]}.{name}")
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
