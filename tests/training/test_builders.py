"""Every config key takes effect: each section is built with NON-default values and the built objects carry them.

Each test below names the keys it covers (``@covers``); :func:`test_every_config_key_is_covered` walks every
dataclass field of :class:`Config` and fails for a key no test covers — a new key that does nothing (the next
``model.fc_bn``) cannot slip in unnoticed."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from massface.serialization import CheckpointError
from massface.training import builders
from massface.training.config import Config, ConfigError, config_from_dict
from massface.training.trainer import Trainer

COVERED: set[str] = set()



QUIET = dict(log=lambda message: None)



def covers(*keys: str):
    """Register the dotted config keys a test checks."""
    COVERED.update(keys)
    return lambda fn: fn



def _leaf_keys(cls: type = Config, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out



def _default(key: str):
    node = Config()
    for part in key.split("."):
        node = getattr(node, part)
    return node



def config(out: Path, **keys) -> Config:
    """A tiny runnable config with ``keys`` (dotted, ``__`` for ``.``) set; each must differ from its default."""
    data: dict = {
        "seed": 3, "output_dir": str(out),
        "data": {"format": "synthetic", "synthetic_identities": 12, "synthetic_images_per_identity": 4,
                 "p": 4, "k": 2, "workers": 0, "transform": "none", "synthetic_image_size": 32},
        "model": {"backbone": "mobilefacenet", "embedding_size": 16, "input_size": 32},
        "loss": {"head": {"name": "cosface"}},
        "train": {"steps": 4, "log_every": 1, "checkpoint_every": 100},
    }
    for dotted, value in keys.items():
        key = dotted.replace("__", ".")
        if key not in ("output_dir",):
            assert value != _default(key), f"{key}: {value!r} is the default; the test must use another value"
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config_from_dict(data)



# ---------------------------------------------------------------------------------------------- top level, data
@covers("seed", "output_dir", "data.p", "data.k", "data.small", "data.min_images", "data.workers",
        "data.synthetic_identities", "data.synthetic_images_per_identity", "data.synthetic_difficulty",
        "data.synthetic_image_size", "data.transform")
def test_data_and_sampler_carry_their_keys(tmp_path):
    from massface.data.transforms import build_train_transform

    cfg = config(tmp_path / "run", seed=7, output_dir=str(tmp_path / "run"), data__p=3, data__k=3,
                 data__small="take_all", data__min_images=3, data__workers=1, data__synthetic_identities=10,
                 data__synthetic_images_per_identity=5, data__synthetic_difficulty=0.25,
                 data__synthetic_image_size=48, data__transform="light", model__input_size=48)
    trainer = Trainer(cfg, **QUIET)
    s = trainer.sampler
    assert (s.p, s.k, s.small, s.min_images, s.seed) == (3, 3, "take_all", 3, 7)
    assert trainer.loader.num_workers == 1
    base = trainer.dataset.base
    assert (base.num_identities, base.images_per_identity, base.difficulty, base.image_size, base.seed) == (
        10, 5, 0.25, 48, 7)
    assert repr(trainer.dataset.transform.compose) == repr(build_train_transform("light", seed=7).compose)
    assert repr(trainer.dataset.transform.compose) != repr(build_train_transform("default", seed=7).compose)
    assert trainer.out == tmp_path / "run" and trainer.ckpt.directory == tmp_path / "run" / "checkpoints"



@covers("data.format", "data.path", "data.data_root", "data.max_pixels")
def test_data_format_path_root_and_max_pixels_reach_the_reader(tmp_path):
    from massface.data.folder import write_folder
    from massface.data.tfrecord import write_tfrecords

    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    samples = [(images[i], i // 2) for i in range(8)]
    write_folder(tmp_path / "faces", samples)
    cfg = config(tmp_path / "a", data__format="folder", data__path=str(tmp_path / "faces"), data__max_pixels=5000)
    base = builders.build_dataset(cfg).base
    assert type(base).__name__ == "FolderDataset" and Path(base.root) == tmp_path / "faces"
    assert base.max_pixels == 5000
    index = write_tfrecords(tmp_path / "tf", samples)
    cfg = config(tmp_path / "b", data__format="tfrecord", data__path=str(index), data__data_root=str(tmp_path / "tf"))
    base = builders.build_dataset(cfg).base
    assert type(base).__name__ == "TFRecordIndexDataset" and len(base) == 8
    assert str(tmp_path / "tf") in {str(v) for v in vars(base).values() if isinstance(v, (str, Path))}



# ---------------------------------------------------------------------------------------------- model
@covers("model.backbone", "model.embedding_size", "model.fc_bn", "model.dropout", "model.input_size")
def test_backbone_carries_every_model_option(tmp_path):
    model = builders.build_model(config(tmp_path, model__embedding_size=24, model__fc_bn=False, model__dropout=0.3,
                                        model__input_size=48))
    assert model.embedding_size == 24 and model.input_size == 48
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules()), "model.fc_bn: false removes the BN"
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3]
    with_bn = builders.build_model(config(tmp_path, model__embedding_size=24))
    assert any(isinstance(m, nn.BatchNorm1d) for m in with_bn.modules()), "the default keeps it"
    assert model(torch.zeros(2, 3, 48, 48)).shape == (2, 24)
    other = builders.build_model(config(tmp_path, model__backbone="ghostnet"))
    assert type(other).__name__ == "GhostNet"



@covers("model.init_checkpoint", "model.channels_last")
def test_init_checkpoint_and_channels_last(tmp_path):
    source = builders.build_model(config(tmp_path / "x"))
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    torch.save(source.state_dict(), tmp_path / "stage1.pt")
    cfg = config(tmp_path / "run", model__init_checkpoint=str(tmp_path / "stage1.pt"), model__channels_last=True)
    trainer = Trainer(cfg, **QUIET)
    for (name, a), b in zip(source.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.equal(a, b), name
    conv = next(m for m in trainer.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and trainer.placement.channels_last
    x = trainer.placement.images(torch.zeros(2, 3, 32, 32))
    assert x.is_contiguous(memory_format=torch.channels_last)



def test_model_options_the_backbone_does_not_take_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(builders, "_options_of", lambda cls: frozenset({"dropout"}))  # a backbone without them
    with pytest.raises(ConfigError, match=r"model\.(fc_bn|input_size): backbone 'mobilefacenet'"):
        builders.build_model(config(tmp_path))
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="model.backbone"):
        builders.build_model(config(tmp_path, model__backbone="resnet9000"))



# ---------------------------------------------------------------------------------------------- loss
@covers("loss.head.name", "loss.head.s", "loss.head.m", "loss.head.weight", "loss.head.lr_scale",
        "loss.triplet.enabled", "loss.triplet.weight")
def test_head_and_loss_weights(tmp_path):
    trainer = Trainer(config(tmp_path / "a", loss__head__name="arcface", loss__head__s=30.0, loss__head__m=0.3,
                             loss__head__weight=0.7, loss__head__lr_scale=0.5, loss__triplet__weight=0.2,
                             optim__lr=0.02), **QUIET)
    head = trainer.head
    assert type(head).__name__ == "ArcFace" and head.s == 30.0 and head.m2 == pytest.approx(0.3)
    assert trainer.criterion.head_weight == 0.7 and trainer.criterion.metric_weight == 0.2
    head_params = {id(p) for p in head.parameters()}
    head_lrs = {g["initial_lr"] for g in trainer.optimizer.param_groups if id(g["params"][0]) in head_params}
    assert len(head_lrs) == 1 and head_lrs.pop() == pytest.approx(0.01)
    off = Trainer(config(tmp_path / "b", loss__triplet__enabled=False), **QUIET)
    assert off.miner is None and off.criterion.metric is None



def test_head_scale_none_reaches_the_heads_own_default(tmp_path):
    sphere = builders.build_head(config(tmp_path, loss__head__name="sphereface"), 8, 4)
    assert sphere.s is None, "loss.head.s unset: SphereFace scales by the feature norm"
    assert builders.build_head(config(tmp_path, loss__head__name="cosface"), 8, 4).s == 64.0
    with pytest.raises(ConfigError, match="loss.head.s: head 'softmax'"):
        builders.build_head(config(tmp_path, loss__head__name="softmax", loss__head__s=10.0), 8, 4)
    with pytest.raises(ConfigError, match="loss.head.m: head 'normface'"):
        builders.build_head(config(tmp_path, loss__head__name="normface", loss__head__m=0.2), 8, 4)



@covers("loss.head.pretrain_steps")
def test_head_pretraining_freezes_the_backbone(tmp_path):
    trainer = Trainer(config(tmp_path, loss__head__pretrain_steps=2, train__steps=3), **QUIET)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    head_before = trainer.head.weight.detach().clone()
    trainer.fit(until=2)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert not torch.equal(head_before, trainer.head.weight)
    assert all("loss_metric" not in h for h in trainer.history)



@covers("loss.triplet.margin", "loss.triplet.miner", "loss.triplet.distance", "loss.triplet.soft",
        "loss.triplet.reduction", "loss.triplet.global_mining", "loss.triplet.max_triplets")
def test_miner_and_triplet_loss(tmp_path):
    trainer = Trainer(config(tmp_path, loss__triplet__margin=0.4, loss__triplet__miner="hardest",
                             loss__triplet__distance="cosine", loss__triplet__soft=True,
                             loss__triplet__reduction="sum", loss__triplet__global_mining=False,
                             loss__triplet__max_triplets=5), **QUIET)
    miner, metric = trainer.miner, trainer.criterion.metric
    assert type(miner).__name__ == "BatchHardestMiner" and miner.margin == 0.4 and miner.max_triplets == 5
    assert type(miner.distance).__name__ == "CosineSimilarity"
    loss = metric.loss
    assert (loss.margin, loss.soft, loss.reduction) == (0.4, True, "sum")
    assert type(loss.distance).__name__ == "CosineSimilarity"
    assert metric.gather is False and metric.miner is miner



# ---------------------------------------------------------------------------------------------- mining modes
@covers("mining.mode", "mining.memory_size", "mining.memory_start")
def test_xbm_mode(tmp_path):
    from massface.training.batch_sources import OnlineSource

    trainer = Trainer(config(tmp_path, mining__mode="xbm", mining__memory_size=16, mining__memory_start=2), **QUIET)
    memory = trainer.memory
    assert memory is trainer.criterion.metric.loss and memory.miner is trainer.miner
    assert (memory.memory_size, memory.start_after) == (16, 2)
    assert isinstance(trainer.batch_source, OnlineSource) and trainer.batch_source.memory is memory



@covers("mining.scale", "mining.pool_bn", "mining.max_batches_per_pool")
def test_semi_online_mode(tmp_path):
    from massface.training.batch_sources import SemiOnlineSource

    trainer = Trainer(config(tmp_path, mining__mode="semi_online", mining__scale=2, mining__pool_bn="train",
                             mining__max_batches_per_pool=2), **QUIET)
    source = trainer.batch_source
    assert isinstance(source, SemiOnlineSource) and trainer.sampler.p == 2 * 4
    assert (source.pools.bn, source.pools.max_batches, source.pools.batch_size) == ("train", 2, 4 * 2)
    assert source.model is trainer.model and source.pools.miner is trainer.miner



@covers("mining.refresh_every", "mining.subset", "mining.index", "mining.neighbours", "mining.nprobe",
        "mining.nlist", "mining.hnsw_m", "mining.ef_search", "mining.embed_batch_size")
def test_offline_mode(tmp_path):
    from massface.training.batch_sources import OfflineSource

    trainer = Trainer(config(tmp_path, mining__mode="offline", mining__refresh_every=3, mining__subset=20,
                             mining__index="ivf", mining__neighbours=8, mining__nprobe=4, mining__nlist=5,
                             mining__hnsw_m=7, mining__ef_search=11, mining__embed_batch_size=16), **QUIET)
    source = trainer.batch_source
    assert isinstance(source, OfflineSource) and source.model is trainer.model
    assert (source.refresh_every, source.subset, source.embed_batch_size) == (3, 20, 16)
    index = source.offline.index_config
    assert (index.kind, index.nprobe, index.nlist, index.hnsw_m, index.ef_search) == ("ivf", 4, 5, 7, 11)
    assert source.offline.neighbours == 8 and source.offline.miner is trainer.miner



# ---------------------------------------------------------------------------------------------- optimisation
@covers("optim.name", "optim.lr", "optim.momentum", "optim.weight_decay", "optim.no_decay_bn_bias")
def test_sgd(tmp_path):
    trainer = Trainer(config(tmp_path, optim__lr=0.02, optim__momentum=0.5, optim__weight_decay=1e-3,
                             optim__no_decay_bn_bias=False, schedule__kind="constant"), **QUIET)
    groups = trainer.optimizer.param_groups
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert {g["momentum"] for g in groups} == {0.5} and {g["weight_decay"] for g in groups} == {1e-3}
    assert {g["initial_lr"] for g in groups} == {0.02}
    adam = Trainer(config(tmp_path / "adam", optim__name="adamw"), **QUIET).optimizer
    assert isinstance(adam, torch.optim.AdamW)
    plain = Trainer(config(tmp_path / "plain"), **QUIET).optimizer.param_groups
    assert 0.0 in {g["weight_decay"] for g in plain}, "default: BN weights and biases without decay"



@covers("optim.eps", "optim.betas")
def test_adam_betas_and_eps(tmp_path):
    optimizer = Trainer(config(tmp_path, optim__name="adam", optim__eps=1e-6, optim__betas=[0.8, 0.99]),
                        **QUIET).optimizer
    assert isinstance(optimizer, torch.optim.Adam)
    assert {g["eps"] for g in optimizer.param_groups} == {1e-6}
    assert {tuple(g["betas"]) for g in optimizer.param_groups} == {(0.8, 0.99)}



@covers("model.init_source")
def test_init_checkpoint_from_an_arcface_torch_file(tmp_path):
    from massface.backbones import export_pretrained
    from massface.serialization import CheckpointError

    source = Trainer(config(tmp_path / "a"), **QUIET).model
    path = export_pretrained(source, tmp_path / "model.pt", "arcface_torch")  # insightface's mbf layout
    started = Trainer(config(tmp_path / "b", model__init_checkpoint=str(path), model__init_source="arcface_torch"),
                      **QUIET).model
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), started.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"model.pt: \(model.init_checkpoint\)"):
        Trainer(config(tmp_path / "c", model__init_checkpoint=str(path), model__init_source="massface"), **QUIET)


@covers("loss.head.init_from_checkpoint")
def test_head_centres_from_the_init_checkpoint(tmp_path):
    from massface.serialization import CheckpointError

    first = Trainer(config(tmp_path / "a", train__steps=2), **QUIET)
    first.fit()
    latest = str(tmp_path / "a" / "checkpoints" / "latest.pt")
    second = Trainer(config(tmp_path / "b", model__init_checkpoint=latest, loss__head__init_from_checkpoint=True),
                     **QUIET)
    assert torch.equal(second.head.weight, first.head.weight)
    with pytest.raises(CheckpointError, match=r"head.weight: shape"):
        Trainer(config(tmp_path / "c", model__init_checkpoint=latest, loss__head__init_from_checkpoint=True,
                       data__synthetic_identities=10), **QUIET)  # another class count: named, not truncated
    bare = tmp_path / "bare.pt"
    torch.save(first.model.state_dict(), bare)
    with pytest.raises(CheckpointError, match=r"bare.pt: \(loss.head.init_from_checkpoint\).*no class centres"):
        Trainer(config(tmp_path / "d", model__init_checkpoint=str(bare), loss__head__init_from_checkpoint=True),
                **QUIET)
    with pytest.raises(ConfigError, match="loss.head.init_from_checkpoint needs"):
        config(tmp_path / "e", loss__head__init_from_checkpoint=True)


def _foreign_checkpoint(tmp_path: Path, source: str, classes: int = 12) -> tuple[Path, torch.Tensor]:
    """An AdaFace Lightning .ckpt or a MagFace DataParallel checkpoint of a 32x32 r18-sized net, D = 16."""
    from massface.backbones import build_backbone, export_pretrained
    from massface.serialization import load_checkpoint

    torch.manual_seed(0)
    name, target = ("ir18", "tface") if source == "adaface" else ("iresnet18", "arcface_torch")
    network = load_checkpoint(export_pretrained(build_backbone(name, 16, input_size=32), tmp_path / "n.pt", target))
    kernel = torch.randn(16, classes)  # both heads store D x C
    if source == "adaface":
        state = {**{f"model.{k}": v for k, v in network.items()}, "head.kernel": kernel}
    else:
        state = {**{f"module.features.{k}": v for k, v in network.items()}, "module.fc.weight": kernel}
    path = tmp_path / f"{source}.ckpt"
    torch.save({"epoch": 1, "state_dict": state}, path)
    return path, kernel


@covers("model.init_source")
@pytest.mark.parametrize("source", ["adaface", "magface"])
def test_fine_tuning_starts_from_adaface_and_magface_with_their_centres(source, tmp_path):
    from massface.backbones import load_pretrained

    path, kernel = _foreign_checkpoint(tmp_path, source)
    backbone = "ir18" if source == "adaface" else "iresnet18"
    trainer = Trainer(config(tmp_path / "run", model__backbone=backbone, model__init_checkpoint=str(path),
                             model__init_source=source, loss__head__init_from_checkpoint=True, train__steps=1),
                      **QUIET)
    assert torch.equal(trainer.head.weight, kernel.t())
    assert (trainer.model.input_affine is not None) == (source == "magface")  # MagFace's BGR x / 255 input
    trainer.fit()
    back = load_pretrained(tmp_path / "run" / "checkpoints" / "latest.pt")  # the run's own checkpoint
    assert (back.input_affine is not None) == (source == "magface")
    with pytest.raises(CheckpointError, match=r"class centres of shape \(12, 16\).*head.weight \(10, 16\)"):
        Trainer(config(tmp_path / "other", model__backbone=backbone, model__init_checkpoint=str(path),
                       loss__head__init_from_checkpoint=True, data__synthetic_identities=10), **QUIET)


@covers("model.lr_scale", "model.freeze_bn", "loss.head.lr_scale")
def test_fine_tuning_keys(tmp_path):
    trainer = Trainer(config(tmp_path, optim__lr=0.2, model__lr_scale=0.1, loss__head__lr_scale=2.0,
                             model__freeze_bn=True, schedule__kind="constant", train__steps=2), **QUIET)
    backbone = {id(p) for p in trainer.model.parameters()}
    lrs = {("backbone" if id(g["params"][0]) in backbone else "head"): g["initial_lr"]
           for g in trainer.optimizer.param_groups}
    assert lrs == {"backbone": pytest.approx(0.02), "head": pytest.approx(0.4)}
    bns = [m for m in trainer.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before = [m.running_mean.clone() for m in bns]
    bn_weight = bns[0].weight.detach().clone()
    trainer.fit()
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, bns)), "model.freeze_bn: statistics kept"
    assert not torch.equal(bn_weight, bns[0].weight), "model.freeze_bn: the affine weights still learn"
    moving = Trainer(config(tmp_path / "moving", train__steps=1), **QUIET)
    stats = [m.running_mean.clone() for m in moving.model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    moving.fit()
    after = [m.running_mean for m in moving.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert any(not torch.equal(a, b) for a, b in zip(stats, after)), "default: the statistics move"


@covers("schedule.kind", "schedule.warmup_steps", "schedule.milestones", "schedule.gamma", "schedule.power",
        "schedule.min_lr", "train.steps")
def test_schedule(tmp_path):
    def factors(**keys):
        scheduler = Trainer(config(tmp_path / str(len(keys)) / keys.get("schedule__kind", "cos"), **keys),
                            **QUIET).scheduler
        return [scheduler.lr_lambdas[0](s) for s in range(10)]

    step = factors(schedule__kind="step", schedule__warmup_steps=2, schedule__milestones=[4, 6],
                   schedule__gamma=0.5, train__steps=10)
    assert step == pytest.approx([0.5, 1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    poly = factors(schedule__kind="poly", schedule__power=3.0, train__steps=10)
    assert poly[5] == pytest.approx(0.5 ** 3)
    cosine = factors(schedule__min_lr=0.05, train__steps=10)
    assert cosine[0] == pytest.approx(1.0) and cosine[5] == pytest.approx(0.5 + 0.5 * 0.5)  # floor 0.5 of lr 0.1



# ---------------------------------------------------------------------------------------------- the loop
@covers("train.grad_accum", "train.clip_norm", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
        "train.on_nan")
def test_loop_keys(tmp_path, monkeypatch, nan_on_call):
    clipped = []
    original_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm, *a, **k: clipped.append(max_norm) or original_clip(params, max_norm))
    trainer = Trainer(config(tmp_path, train__grad_accum=2, train__clip_norm=0.5, train__log_every=2,
                             train__checkpoint_every=1, train__keep_checkpoints=1, train__on_nan="skip",
                             train__steps=4), **QUIET)
    calls = nan_on_call(trainer, 3)
    result = trainer.fit()
    assert result["skipped_steps"] == 1 and result["step"] == 4, "train.on_nan: skip"
    assert len(calls) == 2 * 5, "train.grad_accum: two micro-batches per step (4 steps + 1 skipped)"
    assert clipped == [0.5] * 4
    assert [h["step"] for h in trainer.history] == [2, 4]
    assert [p.name for p in trainer.ckpt.periodic()] == ["step_00000004.pt"]



@covers("train.amp", "train.device", "train.deterministic")
def test_amp_device_and_determinism(tmp_path):
    was = torch.are_deterministic_algorithms_enabled()
    try:
        trainer = Trainer(config(tmp_path, train__amp="bf16", train__device="cpu", train__deterministic=True),
                          **QUIET)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(was)
    assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
    assert trainer.device == torch.device("cpu") and trainer.placement.device == torch.device("cpu")



@covers("eval.sets", "eval.every", "eval.batch_size", "eval.flip")
def test_eval_keys(tmp_path, monkeypatch):
    import massface.evaluation

    seen = []

    class Result:
        accuracy, auc = 0.5, 0.75
        tar_at_far = {1e-3: 0.25, 1e-4: 0.125}

    def fake_evaluate_bin(model, path, **kwargs):
        seen.append((Path(path).name, kwargs))
        return Result()

    monkeypatch.setattr(massface.evaluation, "evaluate_bin", fake_evaluate_bin)
    (tmp_path / "lfw.bin").write_bytes(b"")
    trainer = Trainer(config(tmp_path / "run", eval__sets=[str(tmp_path / "lfw.bin")], eval__every=2,
                             eval__batch_size=7, eval__flip=False, train__steps=4, data__max_pixels=10_000),
                      **QUIET)
    result = trainer.fit()
    assert result["eval"] == {"lfw": 0.5}
    assert len(seen) == 2, "eval.every = 2 in a 4-step run: at step 2, and at the end"
    assert all(name == "lfw.bin" and kw["batch_size"] == 7 and kw["flip"] is False and kw["max_pixels"] == 10_000
               and kw["far_targets"] == (1e-3, 1e-4) for name, kw in seen)
    import json

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    detail = [r["eval_detail"] for r in records if "eval_detail" in r]
    assert detail[-1] == {"lfw": {"accuracy": 0.5, "auc": 0.75, "tar@0.001": 0.25, "tar@0.0001": 0.125}}



# ---------------------------------------------------------------------------------------------- coverage
def test_every_config_key_is_covered():
    keys = set(_leaf_keys())
    missing = sorted(keys - COVERED)
    assert not missing, f"config keys no test shows to take effect: {missing}"
    assert not COVERED - keys, f"covered keys that are not in the config: {sorted(COVERED - keys)}"


@covers("model.freeze_stages", "model.freeze_steps")
def test_early_stages_frozen_for_the_first_steps(tmp_path):
    trainer = Trainer(config(tmp_path, model__freeze_stages=2, model__freeze_steps=2, train__steps=3,
                             optim__weight_decay=0.1), **QUIET)
    groups = trainer.model.stages()  # mobilefacenet: the 56x56 stem, then 28, 14, 7
    frozen = [p for unit in groups[0] + groups[1] for p in unit.parameters()]
    frozen_ids = {id(p) for p in frozen}
    free = [p for p in trainer.model.parameters() if id(p) not in frozen_ids]
    bns = [m for unit in groups[0] + groups[1] for m in unit.modules() if isinstance(m, nn.BatchNorm2d)]
    start = [p.detach().clone() for p in frozen], [p.detach().clone() for p in free]
    stats = [bn.running_mean.clone() for bn in bns]
    trainer.fit(until=2)
    assert all(torch.equal(a, p) for a, p in zip(start[0], frozen)), "no update, no weight decay while frozen"
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(stats, bns)), "BN statistics kept"
    assert all(p.grad is None for p in frozen)
    assert any(not torch.equal(a, p) for a, p in zip(start[1], free)), "the later stages learn"
    trainer.fit()  # step 3: released
    assert any(not torch.equal(a, p) for a, p in zip(start[0], frozen))
    with pytest.raises(ConfigError, match=r"model.freeze_stages: 5 is more than the 4 stage groups"):
        Trainer(config(tmp_path / "b", model__freeze_stages=5), **QUIET)
    with pytest.raises(ConfigError, match=r"model.freeze_steps needs model.freeze_stages"):
        config(tmp_path / "c", model__freeze_steps=3)
    with pytest.raises(ConfigError, match=r"model.freeze_steps"):
        config(tmp_path / "d", model__freeze_stages=1, model__freeze_steps=0)
    with pytest.raises(ConfigError, match=r"model.freeze_stages"):
        config(tmp_path / "e", model__freeze_stages=-1)


@covers("loss.triplet.negative_range", "loss.triplet.skip_nearest", "loss.triplet.same_identity_pairs",
        "loss.triplet.false_negative_gap")
def test_false_negative_guards_reach_the_miner(tmp_path):
    from massface.data._errors import DataFormatError

    pairs = tmp_path / "duplicates.txt"
    pairs.write_text("# suspected duplicate identities\n0 1\n3,5\n")
    cfg = config(tmp_path, loss__triplet__negative_range=[0.1, 3.0], loss__triplet__skip_nearest=2,
                 loss__triplet__same_identity_pairs=str(pairs), loss__triplet__false_negative_gap=0.05)
    guards = builders.build_miner(cfg).guards
    assert guards.negative_range == (0.1, 3.0) and guards.skip_nearest == 2 and guards.false_negative_gap == 0.05
    assert guards.same_identity_pairs.numel() == 4  # both orders of both pairs
    Trainer(cfg, **QUIET).fit(until=1)  # the guarded miner trains
    pairs.write_text("0 1\n2 x\n")
    with pytest.raises(DataFormatError, match=r"duplicates.txt: line 2: expected two non-negative integer"):
        builders.build_miner(cfg)
    with pytest.raises(ConfigError, match=r"loss.triplet.negative_range must be \[lo, hi\]"):
        config(tmp_path / "b", loss__triplet__negative_range=[2.0, 1.0])
    with pytest.raises(ConfigError, match=r"loss.triplet.skip_nearest"):
        config(tmp_path / "c", loss__triplet__skip_nearest=-1)
    with pytest.raises(ConfigError, match=r"loss.triplet.false_negative_gap"):
        config(tmp_path / "d", loss__triplet__false_negative_gap=-0.5)


@covers("loss.head.interclass_filter")
def test_interclass_filter_reaches_the_head(tmp_path):
    head = Trainer(config(tmp_path, loss__head__interclass_filter=0.4), **QUIET).head
    assert head.interclass_filter == 0.4
    with pytest.raises(ConfigError, match=r"loss.head.interclass_filter: head 'softmax' has no cosines"):
        Trainer(config(tmp_path / "b", loss__head__name="softmax", loss__head__interclass_filter=0.4), **QUIET)
    with pytest.raises(ConfigError, match=r"loss.head.interclass_filter"):
        config(tmp_path / "c", loss__head__interclass_filter=1.5)


def test_every_miner_preset_is_a_config_value_and_trains(tmp_path):
    from massface.mining import PRESETS
    from massface.training.config import TripletConfig

    assert set(typing.get_args(typing.get_type_hints(TripletConfig)["miner"])) == set(PRESETS)
    trainer = Trainer(config(tmp_path, loss__triplet__miner="distance_weighted"), **QUIET)
    assert type(trainer.miner).__name__ == "DistanceWeightedMiner"
    assert trainer.fit(until=1)["step"] == 1


@covers("train.collapse_steps", "train.collapse_d_an", "train.collapse_active", "train.on_collapse")
def test_collapse_alarm_warns_or_stops(tmp_path):
    from massface.training.callbacks import CollapseAlarm
    from massface.training.trainer import TrainingStopped

    messages: list[str] = []
    warn = Trainer(config(tmp_path / "a", train__collapse_steps=2, train__collapse_active=0.0), log=messages.append)
    warn.fit()  # active fraction >= 0 holds at every mined step: "collapsed" from step 1 on
    assert warn.step == 4 and sum("embedding collapse at step" in m for m in messages) == 2  # steps 2 and 4
    stop = Trainer(config(tmp_path / "b", train__collapse_steps=3, train__collapse_active=0.0,
                          train__on_collapse="stop"), **QUIET)
    with pytest.raises(TrainingStopped, match="embedding collapse at step 3"):
        stop.fit()
    quiet: list[str] = []
    Trainer(config(tmp_path / "c", train__collapse_d_an=1e-9), log=quiet.append).fit()
    assert not any("collapse" in m for m in quiet), "a training embedding is not collapsed"
    alarm = CollapseAlarm(5, 0.01, None, "warn", inverted=True)  # cosine: similarities near 1 are collapsed
    assert alarm.collapsed({"mean_d_an": 0.995}) and not alarm.collapsed({"mean_d_an": 0.5})
    assert not alarm.collapsed({"mean_d_an": float("nan")})
    with pytest.raises(ConfigError, match="train.collapse_active"):
        config(tmp_path / "d", train__collapse_active=1.5)
    with pytest.raises(ConfigError, match="train.on_collapse"):
        config(tmp_path / "e", train__on_collapse="ignore")


@covers("data.keep_indices", "data.synthetic_duplicates", "data.synthetic_label_noise")
def test_keep_indices_filter_and_dirty_synthetic_data(tmp_path):
    from massface.data._errors import DataFormatError

    keep = tmp_path / "keep_indices.txt"
    keep.write_text("# massface clean\n" + "".join(f"{i}\n" for i in range(0, 48, 2)))
    cfg = config(tmp_path / "a", data__keep_indices=str(keep), data__synthetic_duplicates=0.25,
                 data__synthetic_label_noise=0.1)
    dataset = builders.build_dataset(cfg)
    full = builders.build_dataset(config(tmp_path / "b", data__synthetic_duplicates=0.25,
                                         data__synthetic_label_noise=0.1))
    assert len(dataset) == 24 and len(full) == 48
    assert np.array_equal(dataset.labels, full.labels[::2]) and dataset.num_classes == full.num_classes
    assert full.base.duplicate_pairs.shape == (3, 2) and (full.base.labels != np.repeat(np.arange(12), 4)).sum() == 5
    assert torch.equal(dataset[1][0], full[2][0])
    assert builders.build_embedding_dataset(dataset).labels.tolist() == dataset.labels.tolist()
    keep.write_text("0\n99\n")
    with pytest.raises(DataFormatError, match=r"keep_indices.txt: line 2: sample index 99 is out of range"):
        builders.build_dataset(cfg)
    with pytest.raises(ConfigError, match="data.synthetic_duplicates"):
        config(tmp_path / "c", data__synthetic_duplicates=0.8)
    with pytest.raises(ConfigError, match="data.synthetic_label_noise"):
        config(tmp_path / "d", data__synthetic_label_noise=1.0)


@covers("data.sampler", "data.neighbour_group", "data.neighbour_hard_fraction", "data.neighbour_k",
        "data.neighbour_source", "data.neighbour_refresh")
@pytest.mark.parametrize("source", ["head", "embeddings"])
def test_neighbour_sampler_refreshes_its_graph_at_epoch_starts(tmp_path, monkeypatch, source):
    from massface.sampling import NeighbourPKSampler

    calls: list[int] = []
    real = builders.build_identity_graph

    def counting(cfg, model, head, dataset, device):
        graph = real(cfg, model, head, dataset, device)
        calls.append(int((graph >= 0).sum()))
        return graph

    monkeypatch.setattr(builders, "build_identity_graph", counting)
    keys = dict(data__sampler="neighbour", data__neighbour_group=2, data__neighbour_hard_fraction=0.5,
                data__neighbour_k=3, data__neighbour_refresh=2, train__steps=7, train__checkpoint_every=4)
    if source == "embeddings":
        keys["data__neighbour_source"] = "embeddings"
    trainer = Trainer(config(tmp_path / "run", **keys), **QUIET)
    assert isinstance(trainer.sampler, NeighbourPKSampler) and trainer.sampler.group == 2
    trainer.fit()  # 12 identities / p=4: 3 batches an epoch; epochs 0, 1, 2 start; refresh every 2nd
    assert calls == [12 * 3, 12 * 3], "epochs 0 and 2, each identity with its 3 nearest"
    calls.clear()
    resumed = Trainer(config(tmp_path / "run", **{**keys, "train__steps": 8}), **QUIET)  # from step 7 (epoch 2)
    assert torch.equal(torch.as_tensor(resumed.sampler.state_dict()["neighbours"]),
                       torch.as_tensor(trainer.sampler.state_dict()["neighbours"]))
    resumed.fit()
    assert calls == [], "the resumed epoch keeps the graph its checkpoint saved"
    headless = config(tmp_path / "b", data__sampler="neighbour")
    headless.loss.head.name = None
    with pytest.raises(ConfigError, match="data.neighbour_source: 'head' needs loss.head.name"):
        headless.validate()
    with pytest.raises(ConfigError, match="data.neighbour_group: 5 identities per group"):
        Trainer(config(tmp_path / "c", data__sampler="neighbour", data__neighbour_group=5), **QUIET)
    with pytest.raises(ConfigError, match="data.neighbour_hard_fraction"):
        config(tmp_path / "d", data__neighbour_hard_fraction=2.0)
    with pytest.raises(ConfigError, match="data.sampler: 'neighbour' lays out P×K batches"):
        config(tmp_path / "e", data__sampler="neighbour", mining__mode="offline")


@covers("train.probe_every", "train.probe_identities", "train.triplet_grid_steps")
def test_mining_probe_logs_the_fixed_batch_and_writes_triplet_grids(tmp_path):
    import json

    trainer = Trainer(config(tmp_path / "a", train__probe_every=2, train__probe_identities=3,
                             train__triplet_grid_steps=[3], data__synthetic_label_noise=0.3), **QUIET)
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in records if "probe" in r]
    assert [r["step"] for r in probes] == [2, 3, 4], "every probe_every steps and at each grid step"
    first = probes[0]["probe"]
    assert first["num_triplets"] == 6  # 3 identities x K = 2 images, one triplet per anchor (min_max)
    assert abs(sum(first["slack_hist"]) - 1.0) < 1e-9 and 0.0 <= first["false_negative_fraction"] <= 1.0
    assert 0.0 <= first["spread"] <= 1.0 and 1.0 <= first["effective_rank"] <= 6.0
    grid = json.loads((tmp_path / "a" / "triplets" / "step_3.json").read_text())
    assert len(grid["dataset_indices"]) == 6 and len(grid["triplets"]) == 6 and "false_negative" in grid["triplets"][0]
    assert (tmp_path / "a" / "triplets" / "step_3.png").stat().st_size > 10_000
    again = Trainer(config(tmp_path / "b", train__probe_every=3, train__probe_identities=3,
                           data__synthetic_label_noise=0.3, loss__triplet__miner="semihard"), **QUIET)
    assert again.callbacks[-1].batch.indices.tolist() == trainer.callbacks[-1].batch.indices.tolist(), \
        "one probe batch per seed: every run of a comparison sees the same images"
    with pytest.raises(ConfigError, match=r"train.triplet_grid_steps\[1\]"):
        config(tmp_path / "c", train__triplet_grid_steps=[2, 5])
    with pytest.raises(ConfigError, match="train.probe_identities"):
        config(tmp_path / "d", train__probe_identities=1)
    with pytest.raises(ConfigError, match="train.probe_every"):
        config(tmp_path / "e", train__probe_every=-1)
    with pytest.raises(ConfigError, match="the mining probe needs a miner"):
        Trainer(config(tmp_path / "f", train__probe_every=2, loss__triplet__enabled=False), **QUIET)


@covers("loss.triplet.fused")
def test_online_batch_all_and_semihard_train_with_the_fused_loss_and_match_the_mined_one(tmp_path):
    from massface.losses import FusedTripletLoss, TripletLoss

    for miner in ("all", "semihard"):
        fused = Trainer(config(tmp_path / f"f{miner}", loss__triplet__miner=miner), **QUIET)
        plain = Trainer(config(tmp_path / f"p{miner}", loss__triplet__miner=miner, loss__triplet__fused=False),
                        **QUIET)
        assert isinstance(fused.criterion.metric.loss, FusedTripletLoss)
        assert isinstance(plain.criterion.metric.loss, TripletLoss)
        fused.fit()
        plain.fit()
        for a, b in zip(fused.history, plain.history, strict=True):  # same data, weights and loss: same run
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)
            assert a["miner_num_triplets"] == b["miner_num_triplets"]
            assert a["miner_mean_d_an"] == pytest.approx(b["miner_mean_d_an"], rel=1e-4)
    # a guard or a triplet cap needs the list: the mined loss stays
    guarded = Trainer(config(tmp_path / "g", loss__triplet__miner="all", loss__triplet__skip_nearest=1), **QUIET)
    assert not isinstance(guarded.criterion.metric.loss, FusedTripletLoss)
    capped = Trainer(config(tmp_path / "c", loss__triplet__miner="all", loss__triplet__max_triplets=5), **QUIET)
    assert not isinstance(capped.criterion.metric.loss, FusedTripletLoss)
    with pytest.raises(ConfigError, match="loss.triplet.fused"):
        config(tmp_path / "h", loss__triplet__fused="yes")


@covers("loss.triplet.shard_mining")
def test_shard_mining_is_built_into_the_online_loss_and_checked(tmp_path):
    assert Trainer(config(tmp_path / "c"), **QUIET).criterion.metric.shard is True  # the default
    trainer = Trainer(config(tmp_path / "a", loss__triplet__shard_mining=False), **QUIET)
    assert trainer.criterion.metric.shard is False  # every rank mines the whole gathered batch
    trainer.fit()
    assert trainer.history[-1]["miner_num_triplets"] > 0
    with pytest.raises(ConfigError, match="loss.triplet.shard_mining"):
        config(tmp_path / "b", loss__triplet__shard_mining="yes")
