"""massface eval --groups / --quality end to end on tiny .bin sets, and their hostile inputs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from massface.data.verification import write_bin
from massface.evaluation.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script announces its deprecation


@pytest.fixture(name="setup")
def _setup(tmp_path, TinyNet, _pairs):
    imgs, issame = _pairs(40)
    data = tmp_path / "data"
    data.mkdir()
    write_bin(data / "lfw.bin", imgs, issame)
    ts = tmp_path / "net.pt"
    torch.jit.script(TinyNet().eval()).save(str(ts))
    base = ["--model", str(ts), "--trust-torchscript", "--data-dir", str(data), "--quiet", "--batch-size", "40",
            "--far", "0.1"]
    return tmp_path, data, base


def _groups_file(path, n=40):
    # pair k: group a for k mod 4 in {0, 1}, b otherwise -> 20 pairs and 10 genuine in each
    path.write_text("# one label per pair\n" + "".join("a\n" if k % 4 < 2 else "b\n" for k in range(n)))
    return path


def test_groups_and_quality_files_end_to_end(setup) -> None:
    tmp, _, base = setup
    g = _groups_file(tmp / "groups.txt")
    q = tmp / "q.txt"
    q.write_text("".join(f"{(k % 7) / 7:.3f}\n" for k in range(80)))
    out = tmp / "out"
    assert main([*base, "--out", str(out), "--groups", str(g), "--quality", str(q)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert set(data["groups"]["groups"]) == {"a", "b"} and data["groups"]["source"] == str(g)
    assert data["groups"]["groups"]["a"]["num_pairs"] == 20 and data["groups"]["far"] == 0.1
    assert data["quality"]["sets"]["lfw"]["fmr"] == 0.1 and len(data["quality"]["sets"]["lfw"]["fnmr"]) == 96
    assert data["sets"]["lfw"]["num_pairs"] == 40  # the usual table is untouched
    report = (out / "report.md").read_text()
    assert "## Groups" in report and "## Error versus discard" in report
    for name in ("group_roc.png", "error_vs_discard.png"):
        assert (out / name).stat().st_size > 0


def test_groups_sets_and_quality_norm(setup) -> None:
    tmp, data, base = setup
    shutil.copy(data / "lfw.bin", data / "cfp_fp.bin")
    out = tmp / "out2"
    assert main([*base, "--out", str(out), "--groups", "sets", "--quality", "norm", "--no-plots"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["groups"]["groups"]) == {"lfw", "cfp_fp"}
    assert res["groups"]["groups"]["lfw"]["accuracy"] == res["groups"]["groups"]["cfp_fp"]["accuracy"]
    assert res["groups"]["ser"] == 1.0
    assert set(res["quality"]["sets"]) == {"lfw", "cfp_fp"} and res["quality"]["source"] == "norm"
    assert not (out / "group_roc.png").exists()


def test_hostile_flags(setup, capsys) -> None:
    tmp, data, base = setup
    out = str(tmp / "bad")
    g = _groups_file(tmp / "groups.txt")
    # --groups sets with one set; a missing groups file; a blank line: refused before any embedding (exit 2)
    assert main([*base, "--out", out, "--groups", "sets"]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main([*base, "--out", out, "--groups", str(tmp / "missing.txt")]) == 2
    (tmp / "blank.txt").write_text("a\n\nb\n")
    assert main([*base, "--out", out, "--groups", str(tmp / "blank.txt")]) == 2
    assert "blank.txt: line 2: blank line" in capsys.readouterr().err
    (tmp / "nan.txt").write_text("0.5\nnan\n")
    assert main([*base, "--out", out, "--quality", str(tmp / "nan.txt")]) == 2
    assert "nan.txt: line 2: quality must be a finite number" in capsys.readouterr().err
    # wrong counts are found once the set is read (exit 1), with the file and both counts named
    _groups_file(tmp / "short.txt", n=39)
    assert main([*base, "--out", out, "--groups", str(tmp / "short.txt"), "--no-plots"]) == 1
    assert "39 group labels for the 40 pairs of lfw" in capsys.readouterr().err
    (tmp / "q79.txt").write_text("1\n" * 79)
    assert main([*base, "--out", out, "--quality", str(tmp / "q79.txt"), "--no-plots"]) == 1
    assert "79 quality scores for the 80 images of lfw" in capsys.readouterr().err
    # one group with a single class
    (tmp / "mono.txt").write_text("".join("a\n" if k % 2 == 0 else "b\n" for k in range(40)))
    assert main([*base, "--out", out, "--groups", str(tmp / "mono.txt"), "--no-plots"]) == 1
    assert "group 'a' has 20 genuine and 0 impostor" in capsys.readouterr().err
    # a per-pair / per-image FILE with two evaluated sets is ambiguous
    shutil.copy(data / "lfw.bin", data / "cfp_fp.bin")
    assert main([*base, "--out", out, "--groups", str(g)]) == 2
    assert "labels the pairs of one set" in capsys.readouterr().err
    assert main([*base, "--out", out, "--quality", str(tmp / "q79.txt")]) == 2
    assert "scores the images of one set" in capsys.readouterr().err
