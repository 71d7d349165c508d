"""Plots render headless to non-empty PNG / SVG files."""

from __future__ import annotations

import numpy as np
import pytest

from massface.evaluation.plots import plot_distance_distribution, plot_distance_distributions, plot_roc
from massface.evaluation.verification import evaluate_distances


def _result():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.5
    d = np.where(y, rng.normal(0.8, 0.2, 400), rng.normal(1.8, 0.2, 400)).clip(0, 4)
    return evaluate_distances(d, y)



def test_distance_plot_png_and_svg(tmp_path):
    res = _result()
    plot_distance_distribution(res, tmp_path / "dist", formats=("png", "svg"), title="toy")
    png, svg = tmp_path / "dist.png", tmp_path / "dist.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000]



def test_distance_plots_side_by_side_share_their_axes(tmp_path):
    results = {f"miner {i}": _result() for i in range(5)}
    fig = plot_distance_distributions(results, tmp_path / "grid.png", columns=3, title="five")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 5 and [ax.get_title() for ax in visible] == list(results)
    assert len({ax.get_xlim() for ax in visible}) == 1, "shared axes compare directly"
    assert (tmp_path / "grid.png").stat().st_size > 10000
    with pytest.raises(ValueError, match="at least one"):
        plot_distance_distributions({})



@pytest.mark.parametrize("kind", ["roc", "det"])
def test_roc_and_det(tmp_path, kind):
    res = _result()
    fig = plot_roc({"a": (res.fpr, res.tpr), "b": (res.fpr, res.tpr ** 2)}, tmp_path / f"{kind}.png", kind=kind)
    assert len(fig.axes[0].lines) == 2
    assert (tmp_path / f"{kind}.png").stat().st_size > 5000
    plot_roc(res, tmp_path / f"{kind}_single.svg", kind=kind)
    assert (tmp_path / f"{kind}_single.svg").stat().st_size > 1000



def test_plot_errors(tmp_path):
    res = _result()
    with pytest.raises(ValueError, match=".png or .svg"):
        plot_roc(res, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="kind"):
        plot_roc(res, kind="cmc")
    with pytest.raises(ValueError, match="differ in length"):
        plot_distance_distribution(distances=np.zeros(3), issame=np.zeros(4, bool))
