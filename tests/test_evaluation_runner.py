"""Embedding of verification images, model loading, the .bin sets, report and the `massface eval` CLI."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

torch = pytest.importorskip("torch")

from massface.evaluation.embedding import embed_images  # noqa: E402
from massface.evaluation.models import load_model  # noqa: E402
from massface.evaluation.report import format_table, write_report  # noqa: E402
from massface.evaluation.verification import evaluate_pairs  # noqa: E402
from massface.evaluation.verification_sets import find_bins  # noqa: E402
from massface.serialization import CheckpointError  # noqa: E402


class TinyNet(torch.nn.Module):
    """Deterministic small embedding net: conv -> pool -> linear, 8-d output."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 * 4 * 4, 8)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(x.flatten(1))


def _pairs(n_pairs=40, size=16, seed=0):
    rng = np.random.default_rng(seed)
    issame = np.arange(n_pairs) % 2 == 0
    imgs = np.empty((2 * n_pairs, size, size, 3), np.uint8)
    for k in range(n_pairs):
        a = rng.integers(0, 256, (size, size, 3))
        b = np.clip(a + rng.integers(-6, 7, a.shape), 0, 255) if issame[k] else rng.integers(0, 256, a.shape)
        imgs[2 * k], imgs[2 * k + 1] = a, b
    return imgs, issame


def test_embed_images_insightface_and_massface():
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


def test_embed_images_errors():
    net = TinyNet()
    with pytest.raises(ValueError, match="uint8"):
        embed_images(net, np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="variant"):
        embed_images(net, np.zeros((2, 16, 16, 3), np.uint8), variant="tface")

    def nan_model(x):
        return torch.full((x.shape[0], 4), float("nan"))

    with pytest.raises(ValueError, match="NaN/inf embeddings for 2 of 2"):
        embed_images(nan_model, np.zeros((2, 16, 16, 3), np.uint8))


def test_load_model_torchscript_and_onnx(tmp_path):
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


def test_report_files(tmp_path):
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


def _write_bin(path, imgs, issame):
    cv2 = pytest.importorskip("cv2")
    bins = [cv2.imencode(".png", im[:, :, ::-1])[1].tobytes() for im in imgs]  # lossless, BGR in file
    with open(path, "wb") as fh:
        pickle.dump((bins, list(map(bool, issame))), fh, protocol=4)


def test_find_bins(tmp_path):
    (tmp_path / "lfw.bin").write_bytes(b"x")
    (tmp_path / "other.bin").write_bytes(b"x")
    assert list(find_bins(tmp_path)) == ["lfw"]
    with pytest.raises(FileNotFoundError, match="present"):
        find_bins(tmp_path, ["cfp_fp"])


def _reader_available(monkeypatch):
    """Use massface.data.verification.read_bin; stand in a minimal pickle reader if that module is absent."""
    try:
        import massface.data.verification  # noqa: F401
    except ImportError:
        import sys
        import types

        cv2 = pytest.importorskip("cv2")

        def read_bin(path):
            with open(path, "rb") as fh:
                bins, issame = pickle.load(fh)
            imgs = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for b in bins])
            return imgs, np.asarray(issame, bool)

        mod = types.ModuleType("massface.data.verification")
        mod.read_bin = read_bin
        monkeypatch.setitem(sys.modules, "massface.data.verification", mod)


def test_evaluate_bin_and_cli(tmp_path, monkeypatch):
    _reader_available(monkeypatch)
    from massface.evaluation.cli import main
    from massface.evaluation.verification_sets import evaluate_bin

    imgs, issame = _pairs(40)
    _write_bin(tmp_path / "lfw.bin", imgs, issame)
    net = TinyNet().eval()
    res = evaluate_bin(net, tmp_path / "lfw.bin", batch_size=16)
    emb = embed_images(net, imgs)
    ref = evaluate_pairs(emb[0::2], emb[1::2], issame)
    assert res.accuracy == pytest.approx(ref.accuracy)
    assert res.accuracy > 0.8

    (tmp_path / "bad").mkdir()
    _write_bin(tmp_path / "bad" / "lfw.bin", imgs[:-1], issame)
    with pytest.raises(ValueError, match="(?i)pair|image"):
        evaluate_bin(net, tmp_path / "bad" / "lfw.bin")

    ts = tmp_path / "net.pt"
    torch.jit.script(net).save(str(ts))
    assert main(["--model", str(ts), "--data-dir", str(tmp_path), "--out", str(tmp_path / "refused")]) == 2
    assert not (tmp_path / "refused").exists()
    rc = main(["--model", str(ts), "--trust-torchscript", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet",
               "--batch-size", "16", "--thresholds", "exact", "--no-plots"])
    assert rc == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(data["sets"]) == {"lfw"} and data["meta"]["thresholds"] == "exact"
    assert main(["--model", str(ts), "--data-dir", str(tmp_path / "nowhere")]) == 2


def test_lfw_pairs_txt_through_cli(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from massface.evaluation.cli import main
    from massface.evaluation.verification_sets import evaluate_lfw_pairs

    imgs, _ = _pairs(40)
    root = tmp_path / "lfw"
    # 2 sets x (5 same + 5 different): person P<k> holds images of pair k
    lines = ["2\t5"]
    for s in range(2):
        for k in range(5):
            lines.append(f"P{s}{k}\t1\t2")
        for k in range(5):
            lines.append(f"Q{s}{k}\t1\tR{s}{k}\t1")
    people = {}
    i = 0
    for line in lines[1:]:
        f = line.split("\t")
        names = [f[0], f[0]] if len(f) == 3 else [f[0], f[2]]
        nums = [int(f[1]), int(f[2])] if len(f) == 3 else [int(f[1]), int(f[3])]
        for name, num in zip(names, nums):
            people[(name, num)] = imgs[i]
            i += 1
    for (name, num), im in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name / f"{name}_{num:04d}.png"), im[:, :, ::-1])
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    net = TinyNet().eval()
    res = evaluate_lfw_pairs(net, tmp_path / "pairs.txt", root, ext="png")
    assert res.num_pairs == 20 and int(res.issame.sum()) == 10
    ts = tmp_path / "net.pt"
    torch.jit.script(net).save(str(ts))
    argv = ["--model", str(ts), "--trust-torchscript", "--lfw-pairs", str(tmp_path / "pairs.txt"), "--lfw-root", str(root),
            "--lfw-ext", "png", "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "o" / "results.json").read_text())["sets"]["lfw_pairs"]["num_pairs"] == 20
    assert main(argv[:5]) == 2  # --lfw-pairs without --lfw-root
