"""Five-point alignment: Umeyama estimation, templates, 68→5 reduction, warping."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from massface.data.align import (
    ARCFACE_TEMPLATE,
    align_face,
    arcface_template,
    estimate_norm,
    landmarks68_to_5,
    umeyama,
)
from massface.data.synthetic import SynthFaces


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])



def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]



@pytest.mark.parametrize("angle,scale,tx,ty", [(0.0, 1.0, 0.0, 0.0), (23.0, 1.7, -40.5, 12.25),
                                               (-160.0, 0.31, 300.0, -7.0)])
def test_umeyama_recovers_known_similarity(angle, scale, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (7, 2))
    M = _similarity(angle, scale, tx, ty)
    est = umeyama(src, _apply(M, src))
    np.testing.assert_allclose(est, M, atol=1e-9)
    # without scale estimation the rotation is still found, scale fixed to 1
    rigid = umeyama(src, _apply(_similarity(angle, 1.0, tx, ty), src), estimate_scale=False)
    np.testing.assert_allclose(rigid, _similarity(angle, 1.0, tx, ty), atol=1e-9)



def test_umeyama_never_reflects():
    src = ARCFACE_TEMPLATE.copy()
    mirrored = src * np.array([-1.0, 1.0])
    M = umeyama(src, mirrored)
    assert np.linalg.det(M[:, :2]) > 0



def test_umeyama_least_squares_with_noise():
    rng = np.random.default_rng(1)
    M = _similarity(10.0, 2.0, 5.0, -3.0)
    dst = _apply(M, ARCFACE_TEMPLATE) + rng.normal(0, 0.5, (5, 2))
    est = umeyama(ARCFACE_TEMPLATE, dst)
    res_est = np.linalg.norm(_apply(est, ARCFACE_TEMPLATE) - dst)
    res_true = np.linalg.norm(_apply(M, ARCFACE_TEMPLATE) - dst)
    assert res_est <= res_true + 1e-12



def test_umeyama_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        umeyama(np.ones((5, 2)), ARCFACE_TEMPLATE)
    bad = ARCFACE_TEMPLATE.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        umeyama(bad, ARCFACE_TEMPLATE)



def test_templates():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(arcface_template((112, 96)), ARCFACE_TEMPLATE - [8.0, 0.0])
    np.testing.assert_allclose(arcface_template((224, 224)), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(arcface_template(128), ARCFACE_TEMPLATE + [8.0, 0.0])
    with pytest.raises(ValueError, match="unsupported image_size"):
        arcface_template((100, 100))



def test_landmarks68_to_5():
    lm = np.arange(68 * 2, dtype=np.float64).reshape(68, 2)
    five = landmarks68_to_5(lm)
    np.testing.assert_allclose(five[0], lm[36:42].mean(0))
    np.testing.assert_allclose(five[1], lm[42:48].mean(0))
    np.testing.assert_allclose(five[2:], lm[[30, 48, 54]])
    batch = landmarks68_to_5(np.stack([lm, lm + 1]))
    assert batch.shape == (2, 5, 2)
    np.testing.assert_allclose(batch[1], five + 1)
    with pytest.raises(ValueError, match="68, 2"):
        landmarks68_to_5(np.zeros((5, 2)))



@pytest.mark.parametrize("size", [(112, 112), (112, 96)])  # (height, width)
def test_aligned_landmarks_land_on_template(size):
    # a 300×260 scene with five bright dots at the landmarks of a rotated, scaled, shifted face
    M = _similarity(-17.0, 1.6, 70.0, 40.0)
    lm = _apply(M, ARCFACE_TEMPLATE)
    scene = np.zeros((260, 300, 3), np.uint8)
    for x, y in lm:
        cv2.circle(scene, (round(x * 16), round(y * 16)), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    out = align_face(scene, lm, size)
    assert out.shape == (size[0], size[1], 3) and out.dtype == np.uint8
    np.testing.assert_allclose(_apply(estimate_norm(lm, size), lm), arcface_template(size), atol=1e-9)
    gray = out[:, :, 0].astype(np.float64)
    for tx, ty in arcface_template(size):
        x0, y0 = int(tx) - 5, int(ty) - 5
        patch = gray[y0:y0 + 11, x0:x0 + 11]
        ys, xs = np.mgrid[y0:y0 + 11, x0:x0 + 11]
        cx, cy = (patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()
        assert abs(cx - tx) < 0.5 and abs(cy - ty) < 0.5



def test_align_synthfaces_with_their_landmarks_and_68_points():
    image, lm = SynthFaces(1, 1, seed=3, difficulty=1.0).render(0, 0)
    out = align_face(image, lm)
    assert out.shape == (112, 112, 3)
    # pseudo-3D yaw is not a similarity, yet the least-squares fit keeps every point within a few pixels
    assert np.abs(_apply(estimate_norm(lm), lm) - ARCFACE_TEMPLATE).max() < 6.0
    lm68 = np.zeros((68, 2))
    lm68[36:42], lm68[42:48], lm68[30], lm68[48], lm68[54] = lm[0], lm[1], lm[2], lm[3], lm[4]
    np.testing.assert_array_equal(align_face(image, lm68), out)
    with pytest.raises(ValueError, match="landmarks must have shape"):
        align_face(image, lm[:4])
