"""The canonical face frame and the drawing primitives of SynthFaces and the synthetic occluders.

All geometry is written in a 112×112 canonical frame laid out around the ArcFace template; :class:`Canvas`
maps it through a pose (pseudo-3D yaw / pitch, then a 2×3 similarity) onto image pixels and draws anti-aliased
OpenCV shapes with 4 fractional bits. Shared by :mod:`massface.data.synthetic` (faces) and
:mod:`massface.data.occlusion` (hands, masks, sunglasses, bars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4  # OpenCV fixed-point bits used for sub-pixel drawing
ONE = 1 << SHIFT
CANON = 112.0  # side of the canonical frame all geometry is written in

#: Skin-tone colour stops (RGB), light to dark: faces and occluding hands draw from it.
SKIN = np.array([[255, 224, 198], [236, 194, 162], [201, 148, 110], [146, 92, 60], [92, 56, 38]], float)

# Depth (towards the camera, canonical pixels) of each feature: yaw moves a feature by depth·sin(yaw).
DEPTH_EYE, DEPTH_BROW, DEPTH_NOSE, DEPTH_NOSTRIL = 10.0, 12.0, 24.0, 18.0
DEPTH_MOUTH, DEPTH_FACE, DEPTH_EAR, DEPTH_GLASSES = 14.0, 3.0, -10.0, 16.0


def clamp(x: float, low: float, high: float) -> float:
    return low if x < low else high if x > high else x


def palette(stops: np.ndarray, t: float) -> np.ndarray:
    """Piecewise-linear colour at ``t`` in [0, 1] along ``stops`` (K, 3)."""
    x = clamp(float(t), 0.0, 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    return stops[i] * (1.0 - f) + stops[i + 1] * f


def col(c: Sequence[float]) -> tuple[int, int, int]:
    """Clamp a float colour to an int tuple for OpenCV."""
    r, g, b = c
    return (int(r) if 0.0 <= r <= 255.0 else (0 if r < 0.0 else 255),
            int(g) if 0.0 <= g <= 255.0 else (0 if g < 0.0 else 255),
            int(b) if 0.0 <= b <= 255.0 else (0 if b < 0.0 else 255))


def mul(c: Sequence[float], s: float) -> tuple[float, float, float]:
    return (c[0] * s, c[1] * s, c[2] * s)


Points = Sequence[tuple[float, float]]


class Canvas:
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
        ax = max(axes[0] * self.cyaw * self.scale, 0.3) * ONE
        ay = max(axes[1] * self.cpitch * self.scale, 0.3) * ONE
        cv2.ellipse(self.img, (round((a * x + b * y + c) * ONE), round((d * x + e * y + f) * ONE)),
                    (round(ax), round(ay)), angle + self.angle, arc[0], arc[1], col(colour), thickness,
                    cv2.LINE_AA, SHIFT)

    def poly(self, pts: Points, colour: Sequence[float], depth: float = 0.0, thickness: float = 0.0,
             closed: bool = True) -> None:
        """Fill the polygon (``thickness`` ≤ 0) or stroke it with a line ``thickness`` canonical px wide."""
        q = np.array([(round(x * ONE), round(y * ONE)) for x, y in self.project(pts, depth)], np.int32)
        if thickness <= 0:
            cv2.fillPoly(self.img, [q], col(colour), cv2.LINE_AA, SHIFT)
        else:
            t = max(1, round(thickness * self.scale))
            cv2.polylines(self.img, [q], closed, col(colour), t, cv2.LINE_AA, SHIFT)


def curve(x0: float, x1: float, y_ends: float, y_mid: float, n: int = 7) -> list[tuple[float, float]]:
    """Parabola through (x0, y_ends), ((x0+x1)/2, y_mid), (x1, y_ends) sampled at ``n`` points."""
    out = []
    for i in range(n):
        t = 2.0 * i / (n - 1) - 1.0
        out.append((x0 + (t + 1.0) * 0.5 * (x1 - x0), y_mid + (y_ends - y_mid) * t * t))
    return out
