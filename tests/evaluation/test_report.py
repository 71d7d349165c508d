"""evaluation.report: the table and report files."""

from __future__ import annotations

import json

import pytest

from massface.evaluation.embedding import embed_images  # noqa: E402
from massface.evaluation.report import format_table, write_report  # noqa: E402
from massface.evaluation.verification import evaluate_pairs  # noqa: E402

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_report_files(tmp_path, TinyNet, _pairs):
    imgs, issame = _pairs(40)
    emb = embed_images(TinyNet(), imgs)
    res = {"toy": evaluate_pairs(emb[0::2], emb[1::2], issame, far_targets=(1e-1,))}
    table = format_table(res)
    assert "toy" in table and "TAR@FAR=0.1" in table
    written = write_report(res, tmp_path / "out", meta={"model": "tiny"}, formats=("png",))
    data = json.loads(written["results"].read_text())
    assert data["sets"]["toy"]["accuracy"] == res["toy"].accuracy
    assert (tmp_path / "out" / "toy_distances.png").stat().st_size > 0
    assert (tmp_path / "out" / "roc.png").stat().st_size > 0
    assert "| toy |" in written["report"].read_text()
