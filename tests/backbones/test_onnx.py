"""ONNX export: onnxruntime parity at batch 1 and 7 (insightface #2406), static batch, ``massface export-onnx``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from massface.backbones import build_backbone, export_onnx, onnx_max_abs_diff
from massface.backbones.onnx import main

pytest.importorskip("onnxruntime")



def _calibrated(name: str, **kw: object) -> nn.Module:
    """A seeded backbone whose BatchNorm running statistics come from one batch, so that eval-mode outputs
    have the scale of a trained network (fresh 0/1 statistics make deep residual sums blow up)."""
    torch.manual_seed(0)
    model = build_backbone(name, **kw)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one pass sets the batch statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(3)))
    return model.eval()



@pytest.mark.parametrize("name", ["mobilefacenet", "iresnet18"])
def test_onnxruntime_matches_torch_at_batch_1_and_7(name: str, tmp_path: Path) -> None:
    model = _calibrated(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", dynamic_batch=True)
    diffs = onnx_max_abs_diff(model, path, batch_sizes=(1, 7))
    assert set(diffs) == {1, 7}
    assert max(diffs.values()) <= 1e-4, diffs
    assert not model.training  # flag restored (it was eval)



def test_static_batch_export_fixes_the_batch_axis(tmp_path: Path) -> None:
    import onnx

    model = _calibrated("mobilefacenet", embedding_size=128)
    model.train()
    path = export_onnx(model, tmp_path / "static.onnx", dynamic_batch=False)
    assert model.training  # training flag restored
    graph = onnx.load(str(path)).graph
    assert graph.input[0].name == "data" and graph.output[0].name == "embedding"
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 112, 112]
    out_dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [1, 128]



def test_export_rejects_missing_directory_and_meta_models(tmp_path: Path) -> None:
    with torch.device("meta"):
        meta = build_backbone("mobilefacenet")
    with pytest.raises(ValueError, match="meta device"):
        export_onnx(meta, tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(build_backbone("mobilefacenet"), tmp_path / "nope" / "m.onnx")



def test_cli_exports_a_checkpoint_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _calibrated("mobilefacenet", embedding_size=128)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"backbone": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    out = tmp_path / "cli.onnx"
    rc = main(["--backbone", "mobilefacenet", "--embedding-size", "128", "--checkpoint", str(ckpt),
               "--output", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.exists() and "OK" in text and "batch 7" in text



def test_cli_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backbone", "resnet9000", "--output", str(tmp_path / "x.onnx")]) == 2
    assert "unknown backbone 'resnet9000'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    torch.save({"weights": [1, 2, 3]}, bad)
    assert main(["--backbone", "mobilefacenet", "--checkpoint", str(bad), "--output", str(tmp_path / "y.onnx")]) == 2
    assert "expected a state dict" in capsys.readouterr().err
    wrong = tmp_path / "wrong.pt"
    torch.save(build_backbone("mobilefacenet", embedding_size=64).state_dict(), wrong)
    assert main(["--backbone", "mobilefacenet", "--checkpoint", str(wrong), "--output", str(tmp_path / "z.onnx")]) == 2
    assert "wrong.pt: model.head.linear.weight: shape (64, 512) in the checkpoint" in capsys.readouterr().err
