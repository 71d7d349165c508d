"""Five-point face alignment to the ArcFace template (insightface ``norm_crop`` semantics).

A least-squares similarity transform (rotation, isotropic scale, translation; no reflection) from the
detected landmarks to the template is estimated by Umeyama's method (S. Umeyama, "Least-squares
estimation of transformation parameters between two point patterns", TPAMI 1991), then the image is
warped with ``cv2.warpAffine`` (bilinear, constant black border), as insightface's ``face_align`` does.
Landmark order everywhere: left eye, right eye, nose tip, left mouth corner, right mouth corner (left
and right as seen in the image).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from massface.data._guard import image_hw

__all__ = [
    "ARCFACE_TEMPLATE",
    "arcface_template",
    "umeyama",
    "estimate_norm",
    "landmarks68_to_5",
    "align_face",
]

#: insightface ``arcface_dst``: the five-point template of the 112×112 ArcFace crop, (x, y) pixels.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ARCFACE_TEMPLATE.setflags(write=False)


def arcface_template(image_size: int | Sequence[int] = (112, 112)) -> np.ndarray:
    """The five-point template for an output crop of ``image_size`` = (height, width) (an int: a square).

    * (112k, 112k): the ArcFace template scaled by k (insightface: multiples of 112);
    * (112k, 96k): the SphereFace / CosFace crop (112 high, 96 wide), ArcFace template with x − 8, scaled by k;
    * (128k, 128k): insightface's rule for multiples of 128: template · (S/128), then x + 8·S/128.

    Returns a new float64 (5, 2) array. Raises ``ValueError`` for any other size.
    """
    h, w = image_hw(image_size)
    if h % 112 == 0 and w in (h, h * 96 // 112):
        k = h / 112.0
        out = ARCFACE_TEMPLATE * k
        if w != h:
            out[:, 0] -= 8.0 * k
        return out
    if w == h and w % 128 == 0:
        k = w / 128.0
        out = ARCFACE_TEMPLATE * k
        out[:, 0] += 8.0 * k
        return out
    raise ValueError(f"arcface_template: unsupported image_size (height, width)={(h, w)}; allowed: "
                     "(112k, 112k), (112k, 96k) or (128k, 128k) for an integer k >= 1")


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity ``dst ≈ c·R·src + t`` (Umeyama 1991); returns the 2×3 matrix ``[c·R | t]``.

    With centred point sets P = src − μ_src, Q = dst − μ_dst and A = Qᵀ P / n = U S Vᵀ:
    d = (1, …, 1, −1 if det A < 0), R = U diag(d) Vᵀ (for rank(A) = D − 1: U Vᵀ when det U·det V > 0, else
    U diag(1, …, −1) Vᵀ), c = (S · d) / Σ_axes var(P) (population variance; c = 1 when
    ``estimate_scale`` is False), t = μ_dst − c R μ_src. Exact for noiseless similarity-related points.
    Works in any dimension D (returns D×(D+1)). O(n·D² + D³) time.

    Raises ``ValueError`` for mismatched shapes, fewer than 2 points, non-finite values or a degenerate
    (all points equal) source set.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"umeyama: src and dst must both be (n >= 2, D) arrays of the same shape, got "
                         f"{src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("umeyama: src and dst must be finite (no NaN / inf landmarks)")
    n, dim = src.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    P, Q = src - mu_s, dst - mu_d
    var = float((P * P).sum() / n)
    if var <= 1e-12 * max(1.0, float(np.abs(src).max())) ** 2:
        raise ValueError("umeyama: degenerate source points (all landmarks coincide); cannot estimate a transform")
    A = Q.T @ P / n
    d = np.ones(dim)
    if np.linalg.det(A) < 0:
        d[-1] = -1.0
    U, S, Vt = np.linalg.svd(A)
    rank = np.linalg.matrix_rank(A)
    if rank == 0:
        raise ValueError("umeyama: degenerate destination points (all landmarks coincide)")
    if rank == dim - 1:
        if np.linalg.det(U) * np.linalg.det(Vt) > 0:
            R = U @ Vt
        else:
            flip = np.ones(dim)
            flip[-1] = -1.0
            R = U @ np.diag(flip) @ Vt
    else:
        R = U @ np.diag(d) @ Vt
    c = float(S @ d) / var if estimate_scale else 1.0
    t = mu_d - c * (R @ mu_s)
    return np.concatenate([c * R, t[:, None]], axis=1)


def landmarks68_to_5(landmarks68: np.ndarray) -> np.ndarray:
    """Reduce iBUG 68-point landmarks (..., 68, 2) to the five ArcFace points (..., 5, 2).

    Eye centres are the means of points 36–41 (image-left eye) and 42–47 (image-right eye); the nose tip
    is point 30; the mouth corners are points 48 and 54 (0-based indices). O(batch) time.
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.ndim < 2 or lm.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks68_to_5: expected an array of shape (..., 68, 2), got {lm.shape}")
    return np.stack([lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2), lm[..., 30, :], lm[..., 48, :],
                     lm[..., 54, :]], axis=-2)


def _five(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (68, 2):
        return landmarks68_to_5(lm)
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2) (left eye, right eye, nose, left / right mouth "
                         f"corner) or (68, 2) (iBUG), got {lm.shape}")
    return lm


def estimate_norm(landmarks5: np.ndarray, image_size: int | Sequence[int] = (112, 112)) -> np.ndarray:
    """The 2×3 similarity matrix mapping ``landmarks5`` (5, 2) (or 68 points) onto :func:`arcface_template`."""
    return umeyama(_five(landmarks5), arcface_template(image_size))


def align_face(image: np.ndarray, landmarks5: np.ndarray, image_size: int | Sequence[int] = (112, 112),
               border_value: int | tuple[int, ...] = 0) -> np.ndarray:
    """Crop ``image`` to the ArcFace-aligned face of size ``image_size`` = (height, width) (an int: a square).

    ``landmarks5`` are the face's five points (or 68 iBUG points) in ``image`` pixels. The result has the
    input's dtype (uint8 for uint8 images) and channel count, shape (height, width[, C]). Warping is
    ``cv2.warpAffine`` with bilinear interpolation and a constant ``border_value`` border; O(W·H) time.
    Before issue 13 a pair was read as (width, height); only non-square sizes (the 112×96 crop) change.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"align_face: image must be an (H, W) or (H, W, C) array, got shape {img.shape}")
    h, w = image_hw(image_size)
    M = estimate_norm(landmarks5, (h, w))
    border = tuple(float(v) for v in np.broadcast_to(border_value, (4,)))
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border)
