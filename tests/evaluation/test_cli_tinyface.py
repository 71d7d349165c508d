"""massface eval --tinyface end to end on a tiny synthetic TinyFace tree, and its hostile inputs."""

from __future__ import annotations

import json

import pytest
import torch

from massface.evaluation.cli import main
from tests.evaluation.test_tinyface import make_tree

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script announces its deprecation


@pytest.fixture(name="base")
def _base(tmp_path, TinyNet):
    ts = tmp_path / "net.pt"
    torch.jit.script(TinyNet().eval()).save(str(ts))
    return ["--model", str(ts), "--trust-torchscript", "--quiet", "--no-plots", "--tinyface-size", "16"]


def test_tinyface_flag_end_to_end(tmp_path, base, capsys) -> None:
    root = make_tree(tmp_path / "tinyface" / "Testing_Set")
    out = tmp_path / "out"
    assert main([*base, "--tinyface", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "TinyFace closed-set identification" in printed and "rank-20 %" in printed
    res = json.loads((out / "results.json").read_text())["tinyface"]
    assert res["source"] == str(tmp_path) and res["probes"] == 5 and res["distractors"] == 6
    assert res["image_size"] == [16, 16] and res["flip"] is True
    assert 0.0 <= res["rank_1"] <= res["rank_5"] <= res["rank_20"] == 1.0  # 16 gallery images: rank 20 finds all
    report = (out / "report.md").read_text()
    assert "## TinyFace" in report and "| rank-1 % |" in report
    # --no-flip and the verification --variant reach the TinyFace embedding too
    assert main([*base, "--tinyface", str(root), "--out", str(tmp_path / "o2"), "--no-flip"]) == 0
    assert json.loads((tmp_path / "o2" / "results.json").read_text())["tinyface"]["flip"] is False


def test_tinyface_flag_hostile(tmp_path, base, capsys) -> None:
    # a missing folder is refused before any embedding (exit 2), a broken image while embedding (exit 1)
    assert main([*base, "--tinyface", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "TinyFace folder not found" in capsys.readouterr().err
    root = make_tree(tmp_path / "tf", n_ids=2, n_distractors=1)
    (root / "Probe" / "bad.jpg").write_bytes(b"\xff\xd8\xff")
    assert main([*base, "--tinyface", str(root), "--out", str(tmp_path / "o")]) == 2
    assert "bad.jpg: file name must be" in capsys.readouterr().err
    (root / "Probe" / "bad.jpg").unlink()
    (root / "Probe" / "11_9.jpg").write_bytes(b"")
    assert main([*base, "--tinyface", str(root), "--out", str(tmp_path / "o")]) == 1
    assert "11_9.jpg: empty image payload" in capsys.readouterr().err
