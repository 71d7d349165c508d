"""The miner comparison report runs end to end at smoke size and writes its table and figures."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "compare_miners.py"


@pytest.mark.slow
def test_compare_miners_quick_writes_the_report(tmp_path):
    main = runpy.run_path(str(BENCH))["main"]
    assert main(["--quick", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]) == 0
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    assert "| hardest · online | hardest | online |" in report
    assert "| hardest · semi_online | hardest | semi_online |" in report
    results = json.loads((out / "results.json").read_text())
    assert [r["mode"] for r in results["runs"]] == ["online", "semi_online"]
    for r in results["runs"]:
        assert r["steps"] == 4 and 0.0 <= r["accuracy"] <= 1.0 and r["mean_triplets"] > 0
        assert [s for s, _ in r["curve"]] == [0, 2, 4], "held-out accuracy every --eval-every steps and at the end"
    for figure in ("curves.png", "distances.png", "roc.png"):
        assert (out / figure).stat().st_size > 10_000
