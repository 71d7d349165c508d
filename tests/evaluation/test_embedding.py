"""evaluation.embedding: embed_images / embed_batch (insightface and massface preprocessing, flip, the output contract)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from massface.evaluation.embedding import embed_images  # noqa: E402

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



def test_embedding_contract_types_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from massface.evaluation.embedding import embed_batch, embed_images

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(6))
    net(torch.zeros(1, 3, 16, 16))
    net.train()
    imgs = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    e, ef = embed_batch(net, imgs)
    assert e.dtype == ef.dtype == np.float32 and e.shape == ef.shape == (5, 6) and isinstance(e, np.ndarray)
    emb = embed_images(net, imgs, batch_size=2, progress=True, desc="toy")
    assert emb.dtype == np.float64 and emb.shape == (5, 6) and net.training  # training flag restored
    assert "toy" in capsys.readouterr().err
    with pytest.warns(DeprecationWarning, match="progress"):
        old = embed_images(net, imgs, batch_size=2, progress="toy")
    np.testing.assert_array_equal(old, emb)
    capsys.readouterr()
    embed_images(net, imgs, batch_size=2)
    assert capsys.readouterr().err == ""  # progress is off by default



def test_embed_images_insightface_and_massface(TinyNet, _pairs):
    net = TinyNet()
    imgs, _ = _pairs(6)
    x = (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        f, ff = net(x).double().numpy(), net(torch.flip(x, dims=[3])).double().numpy()
    got = embed_images(net, imgs, batch_size=5)
    ref = (f + ff) / np.linalg.norm(f + ff, axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    got_m = embed_images(net, imgs, variant="massface", batch_size=4)
    c = f - f.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(got_m, c / np.linalg.norm(c, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert embed_images(net, imgs, variant="massface", flip=True).shape == (12, 16)  # concatenation
    net.train()
    embed_images(net, imgs)
    assert net.training  # mode restored



def test_embed_images_errors(TinyNet):
    net = TinyNet()
    with pytest.raises(ValueError, match="uint8"):
        embed_images(net, np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="variant"):
        embed_images(net, np.zeros((2, 16, 16, 3), np.uint8), variant="tface")

    def nan_model(x):
        return torch.full((x.shape[0], 4), float("nan"))

    with pytest.raises(ValueError, match="NaN/inf embeddings for 2 of 2"):
        embed_images(nan_model, np.zeros((2, 16, 16, 3), np.uint8))
