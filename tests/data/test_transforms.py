"""Albumentations pipelines: output contract, presets, determinism, synthetic occlusion; bit-identical to the code before issue 13."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from massface.data.synthetic import SynthFaces
from massface.data.transforms import (
    TRAIN_PRESETS,
    SyntheticOcclusion,
    build_eval_transform,
    build_train_transform,
)


def test_transforms_are_bit_identical(_digest) -> None:
    from massface.data.transforms import build_eval_transform, build_train_transform

    img = SynthFaces(1, 1, seed=2).image(0, 0)
    t = build_train_transform("occlusion", seed=0, occlusion_p=1.0)
    assert _digest(np.stack([t(img).numpy() for _ in range(6)])) == "623406e81325bb4dc5537e7f9b740824"
    # (height, width) = (112, 96): the SphereFace crop; before issue 13 this was written (96, 112) (width first)
    out = build_eval_transform((112, 96))(img)
    assert tuple(out.shape) == (3, 112, 96)
    assert _digest(out.numpy()) == "eb47d57cfbb5d744882116c9ba9ee99e"



@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    ds = SynthFaces(3, 2, seed=11, difficulty=0.3)
    return [ds[k][0] for k in range(len(ds))]



def test_eval_transform_is_exact_normalisation(faces):
    out = build_eval_transform()(faces[0])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (3, 112, 112)
    expected = (torch.from_numpy(faces[0]).permute(2, 0, 1).double() / 255 - 0.5) / 0.5
    torch.testing.assert_close(out.double(), expected, atol=1e-6, rtol=0)
    assert build_eval_transform(64)(faces[0]).shape == (3, 64, 64)
    assert build_eval_transform((112, 96))(faces[0]).shape == (3, 112, 96)  # (height, width)



@pytest.mark.parametrize("preset", sorted(TRAIN_PRESETS))
def test_train_presets_output_contract(preset, faces):
    t = build_train_transform(preset, seed=0)
    for img in faces:
        out = t(img)
        assert out.dtype == torch.float32 and out.shape == (3, 112, 112)
        assert out.min() >= -1.0 and out.max() <= 1.0
    assert t(image=faces[0])["image"].shape == (3, 112, 112)  # albumentations-style call



def test_seeded_pipelines_are_reproducible(faces):
    a = build_train_transform("occlusion", seed=42)
    b = build_train_transform("occlusion", seed=42)
    c = build_train_transform("occlusion", seed=43)
    outs_a = [a(img) for img in faces * 2]
    outs_b = [b(img) for img in faces * 2]
    outs_c = [c(img) for img in faces * 2]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b))
    assert not all(torch.equal(x, y) for x, y in zip(outs_a, outs_c))



def test_flip_override_and_light_preset(faces):
    t = build_train_transform("light", flip_p=1.0)
    flipped = build_eval_transform()(np.ascontiguousarray(faces[1][:, ::-1]))
    torch.testing.assert_close(t(faces[1]), flipped)
    none = build_train_transform("light", flip_p=0.0)
    torch.testing.assert_close(none(faces[1]), build_eval_transform()(faces[1]))



def test_synthetic_occlusion_transform(faces):
    for kind in ("hand", "mask", "sunglasses", "bar"):
        occ = SyntheticOcclusion(kinds=(kind,), p=1.0)
        out = occ(image=faces[0])["image"]
        assert out.dtype == np.uint8 and out.shape == faces[0].shape
        assert (out != faces[0]).any()
    mask = SyntheticOcclusion(kinds=("mask",), p=1.0)(image=faces[0])["image"]
    changed = (mask != faces[0]).any(-1)
    assert changed[75:100, 40:72].mean() > 0.8  # lower face covered
    assert changed[:30].mean() < 0.05  # forehead untouched
    with pytest.raises(ValueError, match="kinds"):
        SyntheticOcclusion(kinds=("scarf",))



def test_bad_inputs_and_options(faces):
    t = build_train_transform("default", seed=0)
    with pytest.raises(ValueError, match="uint8"):
        t(faces[0].astype(np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        t(faces[0][:, :, 0])
    with pytest.raises(ValueError, match="unknown preset"):
        build_train_transform("heavy")
    with pytest.raises(ValueError, match="unknown option"):
        build_train_transform("default", flip_probability=0.5)
    with pytest.raises(ValueError, match="probability"):
        build_train_transform("default", erase_p=1.5)



def test_seeded_pipeline_reseeds_per_dataloader_worker(faces, monkeypatch):
    import types

    worker = types.SimpleNamespace(id=0, seed=1000)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: worker)

    def stream(worker_seed: int) -> list[torch.Tensor]:
        worker.seed = worker_seed
        t = build_train_transform("occlusion", seed=7)
        return [t(img) for img in faces * 2]

    a, b, c = stream(1000), stream(1000), stream(1001)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # same worker seed: reproducible
    assert not all(torch.equal(x, y) for x, y in zip(a, c))  # another worker / epoch: another stream
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    main = build_train_transform("occlusion", seed=7)
    plain = build_train_transform("occlusion", seed=7).compose
    assert all(torch.equal(main(img), plain(image=img)["image"]) for img in faces)
