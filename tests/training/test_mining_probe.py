"""The mining probe's measures and the triplet grid: collapse indicators, groups, hostile plot inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from massface.evaluation.plots import plot_grouped_shares, plot_seed_bands, plot_triplet_grid
from massface.mining import BatchHardestMiner
from massface.training.mining_probe import (
    SLACK_EDGES,
    ProbeBatch,
    effective_rank,
    embedding_spread,
    probe_mining,
    triplet_groups,
)


def test_collapse_indicators():
    collapsed = torch.ones(8, 4) + 1e-9 * torch.randn(8, 4)
    assert embedding_spread(collapsed) < 1e-6
    spread = torch.cat([torch.eye(4), -torch.eye(4)])  # the centroid of +-e_i is 0
    assert embedding_spread(spread) == pytest.approx(1.0)
    line = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]).repeat(4, 1)
    assert effective_rank(line) == pytest.approx(1.0)
    assert effective_rank(spread) == pytest.approx(4.0)
    assert effective_rank(collapsed * 0 + 1) == 1.0  # no variance at all


def _batch(truth):
    images = torch.tensor([[0.0], [0.1], [2.0], [2.1], [0.05], [2.05]])  # identities 0, 0, 1, 1, 2, 2
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return ProbeBatch(images, [np.zeros((4, 4, 3), np.uint8)] * 6, labels, truth, np.arange(6))


class Lift(torch.nn.Module):
    """x -> (cos x, sin x): points on the circle, so that distances follow x."""

    def forward(self, x):
        return torch.cat([torch.cos(x), torch.sin(x)], dim=1)


def test_probe_mining_counts_false_negatives_against_the_truth():
    truth = torch.tensor([0, 0, 1, 1, 0, 1])  # identity 2's images are truly persons 0 and 1
    record, triplets = probe_mining(Lift(), BatchHardestMiner(), _batch(truth), torch.device("cpu"))
    fn = triplets["false_negative"]
    assert fn.tolist() == [truth[a] == truth[n] for a, n in zip(triplets["a"], triplets["n"])]
    assert record["false_negative_fraction"] == pytest.approx(fn.mean()) and fn.any()
    assert len(record["slack_hist"]) == len(SLACK_EDGES) - 1 and sum(record["slack_hist"]) == pytest.approx(1.0)
    np.testing.assert_allclose(triplets["slack"], triplets["d_an"] - triplets["d_ap"])
    plain, _ = probe_mining(Lift(), BatchHardestMiner(), _batch(None), torch.device("cpu"))
    assert "false_negative_fraction" not in plain
    groups = triplet_groups(triplets, count=2)
    assert np.all(np.diff(triplets["slack"][groups["hardest"]]) >= 0) and len(groups["random"]) == 2
    assert all(fn[groups["false negatives"]])
    assert "false negatives" not in triplet_groups({k: v for k, v in triplets.items() if k != "false_negative"})


def test_plot_inputs_are_checked(tmp_path):
    triplets = {"a": [0], "p": [1], "n": [2], "d_ap": [0.1], "d_an": [0.2]}
    thumbs = [np.zeros((4, 4, 3), np.uint8)] * 3
    with pytest.raises(ValueError, match="at least one non-empty group"):
        plot_triplet_grid(thumbs, triplets, {"hardest": []})
    with pytest.raises(ValueError, match="group 'hardest' indexes triplet 3 of 1"):
        plot_triplet_grid(thumbs, triplets, {"hardest": [3]})
    with pytest.raises(ValueError, match="indexes image 2 of 2"):
        plot_triplet_grid(thumbs[:2], triplets, {"hardest": [0]})
    with pytest.raises(ValueError, match="no panel has data"):
        plot_seed_bands({"a": [[{"step": 1}]]}, [("loss", "loss")])
    with pytest.raises(ValueError, match="one share per bin"):
        plot_grouped_shares({"a": [[0.5, 0.5]]}, ["x", "y", "z"])
    fig = plot_seed_bands({"a": [[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}],
                                 [{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}]]},
                          [("loss", "loss"), ("absent", "absent")], tmp_path / "bands.png")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1, "a key no configuration has: no panel"
    line = fig.axes[0].lines[0]
    assert line.get_xdata().tolist() == [1.0] and line.get_ydata().tolist() == [1.5], \
        "a step is drawn only where every seed has a finite value"
