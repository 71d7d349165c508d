"""The shipped comparison grids parse (every configuration is built once by load_grid) and describe what the
issue asked for: three seeds, the six strategies, the four modes, the guards on the noisy set."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from massface.training.compare import load_grid

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = runpy.run_path(str(ROOT / "benchmarks" / "compare_grids.py"))


@pytest.mark.parametrize("name", SCRIPT["GRIDS"])
def test_shipped_grid_loads(name):
    grid = load_grid(ROOT / "benchmarks" / "compare" / f"{name}.yaml")
    assert len(grid.seeds) >= 3 and grid.baseline is not None and grid.metric == "synth_heldout"
    axes = dict(grid.axes)
    if name.startswith("strategies"):
        assert set(axes["loss.triplet.miner"]) == {"all", "hardest", "min_min", "min_max", "random", "semihard"}
        assert (grid.stage1 is not None) == name.endswith("two_stage")
    elif name == "modes_two_stage":
        assert axes["mining.mode"] == ("online", "xbm", "semi_online", "offline") and grid.stage1 is not None
    else:
        assert axes["loss.triplet.skip_nearest"] == (0, 2) and axes["loss.triplet.false_negative_gap"] == (None, 0.0)


def test_heldout_set_is_written_once(tmp_path):
    from massface.data.verification import read_bin

    target = tmp_path / "heldout.bin"
    SCRIPT["write_heldout"](target)
    stamp = target.stat().st_mtime_ns
    images, issame = read_bin(target)
    assert len(issame) == 2400 and len(images) == 4800 and sum(issame) == 1200  # 10 folds x (120 + 120)
    SCRIPT["write_heldout"](target)
    assert target.stat().st_mtime_ns == stamp
