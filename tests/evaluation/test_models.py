"""evaluation.models: TorchScript and ONNX models, refused checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from massface.evaluation.embedding import embed_images  # noqa: E402
from massface.evaluation.models import load_model  # noqa: E402
from massface.serialization import CheckpointError  # noqa: E402

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_load_model_torchscript_and_onnx(tmp_path, TinyNet, _pairs):
    net = TinyNet().eval()
    imgs, _ = _pairs(4)
    ref = embed_images(net, imgs)
    ts = tmp_path / "net.pt"
    torch.jit.script(net).save(str(ts))
    with pytest.raises(CheckpointError, match="TorchScript program"):
        load_model(ts)  # a program: refused unless trusted
    np.testing.assert_allclose(embed_images(load_model(ts, trust_torchscript=True), imgs), ref, rtol=1e-6)
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "net.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), str(onnx_path), input_names=["data"],
                      output_names=["embedding"], dynamic_axes={"data": {0: "b"}}, dynamo=False)
    np.testing.assert_allclose(embed_images(load_model(onnx_path), imgs), ref, rtol=1e-4, atol=1e-5)
    sd = tmp_path / "sd.pt"
    torch.save(net.state_dict(), sd)
    with pytest.raises(ValueError, match="backbone"):
        load_model(sd)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.onnx")


def test_load_model_detects_an_arcface_torch_checkpoint(tmp_path):
    from massface.backbones import build_backbone, export_pretrained

    net = build_backbone("mobilefacenet_x2", 128).eval()  # insightface's mbf
    path = export_pretrained(net, tmp_path / "model.pt", "arcface_torch")
    x = torch.randn(2, 3, 112, 112)
    loaded = load_model(path)  # no --backbone: the family, depth and size come from the keys
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    with pytest.raises(CheckpointError, match="model.pt"):
        load_model(path, source="massface")  # forcing the wrong family is refused, naming the file
