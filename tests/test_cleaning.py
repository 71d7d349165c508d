"""massface.cleaning: suspected duplicate identities and mislabelled images, its files, and ``massface clean``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from massface.cleaning import find_label_noise, main, write_cleaning_report
from massface.data.label_lists import read_indices, read_label_pairs


def noisy_embeddings(seed: int = 0):
    """20 well-separated identities × 10 images in 32-d; labels 5 and 17 are one person; 6 images mislabelled."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, 32))
    centres[17] = centres[5]
    labels = np.repeat(np.arange(20), 10)
    x = centres[labels] + 0.15 * rng.standard_normal((200, 32))
    wrong = np.array([3, 41, 77, 120, 151, 199])
    true = labels[wrong].copy()
    labels[wrong] = (true + 7) % 20  # filed under another identity
    return x, labels, wrong


def test_duplicates_and_mislabelled_images_are_found_exactly():
    x, labels, wrong = noisy_embeddings()
    report = find_label_noise(x, labels, duplicate_similarity=0.9, mislabel_angle=60.0)
    assert report.duplicate_pairs.tolist() == [[5, 17]]
    assert report.duplicate_similarity[0] > 0.95
    assert sorted(report.mislabelled.tolist()) == sorted(wrong.tolist())
    assert np.array_equal(report.keep, np.setdiff1d(np.arange(200), wrong))
    true = (labels[wrong] - 7) % 20
    nearest = dict(zip(report.mislabelled.tolist(), report.nearest_label.tolist()))
    for i, t in zip(wrong.tolist(), true.tolist()):  # its nearest centre is its true identity (or its twin)
        assert nearest[i] in ({5, 17} if t in (5, 17) else {t})
    assert (report.own_similarity < report.nearest_similarity).all()


def test_report_files_feed_the_trainer_readers(tmp_path):
    x, labels, wrong = noisy_embeddings(1)
    report = find_label_noise(x, labels, duplicate_similarity=0.9, mislabel_angle=60.0)
    paths = write_cleaning_report(report, tmp_path / "clean", note="test")
    assert read_label_pairs(paths["duplicate_pairs"]).tolist() == [[5, 17]]
    assert np.array_equal(read_indices(paths["keep_indices"], 200), report.keep)
    rows = paths["mislabelled"].read_text().splitlines()
    assert rows[0].startswith("index\t") and len(rows) == 1 + len(wrong)
    assert json.loads(paths["summary"].read_text())["mislabelled"] == len(wrong)


@pytest.mark.parametrize(("kwargs", "message"), [(dict(duplicate_similarity=1.5), "duplicate_similarity"),
                                                 (dict(mislabel_angle=-1), "mislabel_angle"),
                                                 (dict(neighbours=0), "neighbours")])
def test_hostile_options_are_named(kwargs, message):
    x, labels, _ = noisy_embeddings()
    with pytest.raises(ValueError, match=message):
        find_label_noise(x, labels, **kwargs)
    with pytest.raises(ValueError, match="finite"):
        find_label_noise(np.full((3, 2), np.nan), np.arange(3))
    with pytest.raises(ValueError, match="integers"):
        find_label_noise(x, labels.astype(float))


def test_massface_clean_runs_on_a_dataset_and_names_bad_inputs(tmp_path, capsys):
    from massface.backbones import build_backbone
    from massface.data.synthetic import SynthFaces

    paths = SynthFaces(6, 3, seed=0, image_size=32, duplicate_identities=0.2).export(tmp_path / "faces", bin_name=None)
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    torch.save(build_backbone("mobilefacenet", 16, input_size=32).state_dict(), checkpoint)
    out = tmp_path / "clean"
    assert main(["--model", str(checkpoint), "--data", str(paths["rec"]), "--out", str(out), "--quiet",
                 "--duplicate-similarity", "0.99"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["kept"] + printed["mislabelled"] == 18
    assert len(read_indices(out / "keep_indices.txt", 18)) == printed["kept"]
    assert main(["--model", str(tmp_path / "missing.pt"), "--data", str(paths["rec"]), "--out", str(out)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    (tmp_path / "bad.rec").write_bytes(b"not a record file")
    assert main(["--model", str(checkpoint), "--data", str(tmp_path / "bad.rec"), "--out", str(out)]) == 2
    assert "bad.idx" in capsys.readouterr().err  # the reader names the missing index of bad.rec
