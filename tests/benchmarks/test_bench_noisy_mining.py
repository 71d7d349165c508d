"""The noisy-set mining benchmark runs end to end at smoke size: ground-truth false negatives are counted."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_noisy_mining.py"


@pytest.mark.slow
def test_noisy_mining_benchmark_smoke(tmp_path, capsys):
    main = runpy.run_path(str(BENCH))["main"]
    out = tmp_path / "noisy.json"
    assert main(["--seeds", "0", "1", "--steps", "3", "--identities", "24", "--images", "4", "--p", "6",
                 "--k", "2", "--pairs-per-fold", "6", "--duplicates", "0.25", "--label-noise", "0.1", "--threads", "1",
                 "--runs", "batch_hard", "bh_same_identity_pairs", "bh_neighbour_batches", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| batch_hard | noisy |" in table and "| bh_neighbour_batches | clean |" in table and " ± " in table
    results = json.loads(out.read_text())["results"]
    assert len(results) == 2 * 2 * 3
    for row in results:
        assert 0.0 <= row["false_negative_share"] <= 1.0 and 0.0 <= row["heldout_accuracy"] <= 1.0
    assert all(r["false_negative_share"] == 0.0 for r in results if not r["noisy"]), "a clean set has none"
