"""evaluation.quality: error-versus-discard curves, pAUC, the random baseline, quality sources."""

from __future__ import annotations

import math

import numpy as np
import pytest

from massface.data import DataFormatError
from massface.evaluation.fairness import threshold_at_fmr
from massface.evaluation.quality import (
    DEFAULT_DISCARD,
    error_vs_discard,
    feature_norms,
    format_quality_table,
    read_quality_scores,
)


def _hand_case():
    """100 pairs: 50 impostors at distinct 2.00, 2.02, ...; 50 genuine at 0.5 except pairs 10..14 at 2.9 (false
    non-matches at any τ below 2.9). Those five pairs have quality 0 in their first image, all others 1."""
    y = np.arange(100) % 2 == 0
    d = np.empty(100)
    d[~y] = 2.0 + 0.02 * np.arange(50)
    d[y] = 0.5
    bad = np.array([10, 12, 14, 16, 18])
    d[bad] = 2.9
    q1 = np.ones(100)
    q1[bad] = 0.0
    return d, y, q1, np.ones(100), bad


def test_hand_computed_curve_drops_to_zero() -> None:
    d, y, q1, q2, bad = _hand_case()
    c = error_vs_discard(d, y, q1, q2, fmr=0.02, pauc_limit=0.05)
    # m = floor(0.02 · 50) = 1 -> τ = the second impostor distance, 2.02; one impostor (2.00) accepted
    assert c.threshold == pytest.approx(2.02) and c.fmr_achieved == pytest.approx(0.02)
    assert np.array_equal(c.discard, DEFAULT_DISCARD)
    expected = [5 / 50, 4 / 49, 3 / 48, 2 / 47, 1 / 46, 0.0]  # k = 0..5 of the bad pairs removed
    assert c.fnmr[:6] == pytest.approx(expected)
    assert np.all(c.fnmr[5:] == 0.0)  # at 5 % exactly the false non-matches are gone
    assert c.num_discarded[:6].tolist() == [0, 1, 2, 3, 4, 5]
    # ties (quality 1) are discarded in pair order: at 6 % pair 0 (genuine) goes, at 7 % pair 1 (impostor)
    assert c.num_genuine[5:8].tolist() == [45, 44, 44]
    area = sum((expected[i] + expected[i + 1]) / 2 * 0.01 for i in range(5))
    assert c.pauc == pytest.approx(area)
    assert c.pauc_normalized == pytest.approx(area / (0.1 * 0.05))
    assert np.all(c.baseline_fnmr == 0.1)
    # a limit between grid points: the curve is interpolated linearly there
    c2 = error_vs_discard(d, y, q1, q2, fmr=0.02, pauc_limit=0.015)
    mid = expected[1] + 0.5 * (expected[2] - expected[1])
    assert c2.pauc == pytest.approx((expected[0] + expected[1]) / 2 * 0.01 + (expected[1] + mid) / 2 * 0.005)
    s = c.summary()
    assert s["fnmr"][5] == 0.0 and s["fnmr_at_0"] == pytest.approx(0.1) and len(s["discard"]) == 96
    assert "pAUC" in format_quality_table({"m": c})


def test_similarity_convention_gives_the_same_curve() -> None:
    d, y, q1, q2, _ = _hand_case()
    c_d = error_vs_discard(d, y, q1, q2, fmr=0.02)
    c_s = error_vs_discard(1 - d / 2, y, q1, q2, fmr=0.02, higher_is_genuine=True)  # cosine similarity
    assert np.array_equal(c_d.fnmr, c_s.fnmr) and c_s.higher_is_genuine
    assert c_s.threshold == pytest.approx(1 - c_d.threshold / 2)  # accept s > τ_s  <=>  d < τ


def _plain_curve(scores, issame, q1, q2, fmr, xs):
    """Loops: τ by counting, stable order by pair quality, FNMR of what is left."""
    n = len(scores)
    tau = threshold_at_fmr(scores, issame, fmr)
    q = [min(a, b) for a, b in zip(q1, q2)]
    order = sorted(range(n), key=lambda i: (q[i], i))
    out = []
    for x in xs:
        keep = order[int(math.floor(x * n + 1e-9)):]
        gen = [i for i in keep if issame[i]]
        out.append(sum(1 for i in gen if not scores[i] < tau) / len(gen) if gen else math.nan)
    return np.array(out)


@pytest.mark.parametrize("seed", range(6))
def test_against_plain_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 120))
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    d = np.clip(np.where(y, rng.normal(1.0, 0.5, n), rng.normal(2.0, 0.4, n)), 0, 4)
    q1 = np.round(rng.random(n), 1)  # ties on purpose
    q2 = np.round(rng.random(n), 1)
    fmr = float(rng.choice([0.01, 0.1, 0.3]))
    c = error_vs_discard(d, y, q1, q2, fmr=fmr, pauc_limit=0.3)
    ref = _plain_curve(d, y, q1, q2, fmr, DEFAULT_DISCARD)
    np.testing.assert_array_equal(np.isnan(c.fnmr), np.isnan(ref))
    np.testing.assert_allclose(c.fnmr[~np.isnan(ref)], ref[~np.isnan(ref)])
    xs = DEFAULT_DISCARD[DEFAULT_DISCARD <= 0.3 + 1e-12]
    area = sum((ref[i] + ref[i + 1]) / 2 * (xs[i + 1] - xs[i]) for i in range(xs.size - 1))
    assert c.pauc == pytest.approx(area)
    if ref[0] > 0:
        assert c.pauc_normalized == pytest.approx(area / (ref[0] * 0.3))


def test_random_discard_averages_to_the_flat_baseline() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y = np.arange(n) % 2 == 0
    d = np.where(y, rng.uniform(0, 2.2, n), rng.uniform(1.5, 4, n))
    grid = np.array([0.0, 0.2, 0.5])
    runs = np.array([error_vs_discard(d, y, rng.random(n), np.ones(n), fmr=0.05, discard=grid, pauc_limit=0.5).fnmr
                     for _ in range(300)])
    base = runs[0, 0]
    assert base > 0.05
    np.testing.assert_allclose(runs.mean(axis=0), base, atol=0.01)  # unbiased; the exact baseline is flat


def test_no_genuine_left_is_nan() -> None:
    y = np.array([False] * 8 + [True, True])
    d = np.r_[np.linspace(2, 3, 8), [0.5, 3.5]]
    q = np.r_[np.ones(8), [0.0, 0.0]]  # the genuine pairs go first
    c = error_vs_discard(d, y, q, q, fmr=0.125, discard=[0.0, 0.1, 0.2, 0.5], pauc_limit=0.5)
    assert c.fnmr[:2].tolist() == [0.5, 1.0] and np.isnan(c.fnmr[2:]).all()
    assert math.isnan(c.pauc) and c.summary()["fnmr"][3] is None


def test_hostile_inputs() -> None:
    d, y, q1, q2, _ = _hand_case()
    with pytest.raises(ValueError, match="quality1 has 1 non-finite values \\(1 NaN; first: index 3"):
        error_vs_discard(d, y, np.where(np.arange(100) == 3, np.nan, q1), q2)
    with pytest.raises(ValueError, match="quality2 has 99 entries, expected 100"):
        error_vs_discard(d, y, q1, q2[:-1])
    with pytest.raises(ValueError, match="issame has 99"):
        error_vs_discard(d, y[:-1], q1, q2)
    with pytest.raises(ValueError, match="Similarities"):
        error_vs_discard(1 - d / 2 - 0.5, y, q1, q2)  # similarities passed as distances
    with pytest.raises(ValueError, match="scores has 1 non-finite"):
        error_vs_discard(np.r_[d[:-1], np.inf], y, q1, q2, higher_is_genuine=True)
    with pytest.raises(ValueError, match="start at 0"):
        error_vs_discard(d, y, q1, q2, discard=[0.1, 0.2])
    with pytest.raises(ValueError, match="strictly increasing"):
        error_vs_discard(d, y, q1, q2, discard=[0.0, 0.2, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        error_vs_discard(d, y, q1, q2, discard=[0.0, 1.0])
    with pytest.raises(ValueError, match="pauc_limit"):
        error_vs_discard(d, y, q1, q2, pauc_limit=0.99)
    with pytest.raises(ValueError, match="pauc_limit"):
        error_vs_discard(d, y, q1, q2, pauc_limit=0.0)
    with pytest.raises(ValueError, match="false-match rate"):
        error_vs_discard(d, y, q1, q2, fmr=0.0)
    with pytest.raises(TypeError, match="real numbers"):
        error_vs_discard(d, y, q1.astype(str), q2)


def test_plot_error_vs_discard(tmp_path) -> None:
    from massface.evaluation.plots import plot_error_vs_discard

    d, y, q1, q2, _ = _hand_case()
    curves = {"norm": error_vs_discard(d, y, q1, q2, fmr=0.02),
              "file": error_vs_discard(d, y, q2, q1 + 0.5, fmr=0.1)}
    plot_error_vs_discard(curves, tmp_path / "edc.png")
    assert (tmp_path / "edc.png").stat().st_size > 0
    plot_error_vs_discard(curves["norm"], tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0
    with pytest.raises(ValueError, match="at least one curve"):
        plot_error_vs_discard({})


def test_feature_norms(TinyNet, _pairs) -> None:
    import torch

    imgs, _ = _pairs(6)
    net = TinyNet().eval()
    norms = feature_norms(net, imgs, batch_size=5)
    with torch.no_grad():
        x = (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
        ref = torch.linalg.norm(net(x), dim=1).double().numpy()
    np.testing.assert_allclose(norms, ref, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        feature_norms(net, imgs, batch_size=0)
    with pytest.raises(ValueError, match="non-empty"):
        feature_norms(net, imgs[:0])


def test_read_quality_scores(tmp_path) -> None:
    f = tmp_path / "q.txt"
    f.write_text("# CR-FIQA scores\n0.5\n 1e-2 \n-3\n")
    np.testing.assert_array_equal(read_quality_scores(f, n_images=3), [0.5, 0.01, -3.0])
    for text, match in [("0.5\nnan\n", "line 2: quality must be a finite"), ("0.5\ninf\n", "line 2: quality"),
                        ("0.5\n\n0.7\n", "line 2: blank line"), ("0.5 0.6\n", "line 1: expected one number"),
                        ("abc\n", "line 1: expected one number"), ("# only\n", "no quality scores")]:
        f.write_text(text)
        with pytest.raises(DataFormatError, match=match) as err:
            read_quality_scores(f)
        assert str(f) in str(err.value)
    f.write_text("1\n2\n")
    with pytest.raises(DataFormatError, match="2 quality scores for 4 images"):
        read_quality_scores(f, n_images=4)
    with pytest.raises(DataFormatError, match="not found"):
        read_quality_scores(tmp_path / "missing.txt")
    f.write_bytes(b"0.5\n\xff\n")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_quality_scores(f)
