"""evaluation.verification_sets: finding .bin sets, evaluating a .bin and LFW pairs, through the CLI as well."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from massface.evaluation.embedding import embed_images  # noqa: E402
from massface.evaluation.verification import evaluate_pairs  # noqa: E402
from massface.evaluation.verification_sets import find_bins  # noqa: E402

# torch.jit.script / legacy ONNX export announce their deprecation; the models under test are fine
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")



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



def test_evaluate_bin_and_cli(tmp_path, TinyNet, _pairs):
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



def test_lfw_pairs_txt_through_cli(tmp_path, TinyNet, _pairs):
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
