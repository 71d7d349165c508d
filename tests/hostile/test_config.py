"""Hostile and careless training configurations: every one is a ConfigError naming the dotted key or the file.

Covers ``--set`` overrides (malformed values, values of the right type but the wrong meaning), YAML files
(duplicate keys, non-UTF-8 bytes, alias bombs, deep nesting, Python object tags), the schedule checks shared
with ``build_scheduler``, and ``massface export-onnx --set`` parsing. Valid configs must keep loading.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path

import pytest
import torch
import yaml

from massface.training.config import (
    Config,
    ConfigError,
    ScheduleConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_value,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HUGE = str(10**30)

# (overrides, text the ConfigError must contain: the dotted key, or the override itself)
HOSTILE_OVERRIDES = [
    # optimizer
    (["optim.lr=.nan"], "optim.lr must be a finite number > 0, got nan"),
    (["optim.lr=.inf"], "optim.lr"),
    (["optim.lr=-.inf"], "optim.lr"),
    (["optim.lr=0"], "optim.lr"),
    (["optim.lr=-0.1"], "optim.lr"),
    (["optim.lr=1.0e+400"], "optim.lr"),
    (["optim.lr=!!binary aGk="], "optim.lr"),
    (["optim.momentum=1.0"], "optim.momentum"),
    (["optim.momentum=-0.1"], "optim.momentum"),
    (["optim.betas=[0.9, 1.0]"], "optim.betas[1]"),
    (["optim.betas=[.nan, 0.9]"], "optim.betas[0]"),
    (["optim.betas=[0.9]"], "optim.betas"),
    (["optim.eps=0"], "optim.eps"),
    (["optim.weight_decay=-0.0001"], "optim.weight_decay"),
    (["optim.weight_decay=.nan"], "optim.weight_decay"),
    # schedule
    (["schedule.gamma=-5"], "schedule.gamma"),
    (["schedule.gamma=0"], "schedule.gamma"),
    (["schedule.gamma=2.0"], "schedule.gamma"),
    (["schedule.power=0"], "schedule.power"),
    (["schedule.power=.nan"], "schedule.power"),
    (["schedule.min_lr=-0.1"], "schedule.min_lr"),
    (["schedule.min_lr=0.5"], "schedule.min_lr must be a finite number in [0, optim.lr = 0.1]"),
    (["schedule.min_lr=.inf"], "schedule.min_lr"),
    (["schedule.warmup_steps=1000"], "schedule.warmup_steps must be < train.steps"),
    (["train.steps=10", "schedule.warmup_steps=50"], "schedule.warmup_steps"),
    (["schedule.warmup_steps=-1"], "schedule.warmup_steps"),
    (["schedule.milestones=[-5]"], "schedule.milestones[0]"),
    (["schedule.milestones=[0]"], "schedule.milestones[0]"),
    (["schedule.milestones=[20, 10]"], "schedule.milestones must be strictly increasing"),
    (["schedule.milestones=[10, 10]"], "schedule.milestones"),
    (["schedule.milestones=[10, 1000]"], "schedule.milestones[1] must be < train.steps"),
    (["schedule.milestones=[1.5]"], "schedule.milestones[0]"),
    (["schedule.milestones=7"], "schedule.milestones"),
    # loss
    (["loss.triplet.margin=-1"], "loss.triplet.margin"),
    (["loss.triplet.margin=.nan"], "loss.triplet.margin"),
    (["loss.triplet.weight=-1"], "loss.triplet.weight"),
    (["loss.triplet.weight=0"], "loss.triplet.weight"),
    (["loss.head.name=arcface", "loss.triplet.weight=0", "loss.head.weight=0"],
     "loss.triplet.weight and loss.head.weight are both 0"),
    (["loss.head.name=arcface", "loss.head.weight=.inf"], "loss.head.weight"),
    (["loss.head.name=arcface", "loss.head.s=0"], "loss.head.s"),
    (["loss.head.name=arcface", "loss.head.s=.nan"], "loss.head.s"),
    (["loss.head.name=arcface", "loss.head.lr_scale=0"], "loss.head.lr_scale"),
    (["loss.head.name=arcface", "loss.head.m=.nan"], "loss.head.m"),
    (["loss.head.name='  '"], "loss.head.name"),
    (["loss.head.pretrain_steps=-1"], "loss.head.pretrain_steps"),
    (["loss.triplet.max_triplets=0"], "loss.triplet.max_triplets"),
    # eval / train
    (["eval.every=-3"], "eval.every"),
    (["eval.batch_size=0"], "eval.batch_size"),
    (["eval.sets=['']"], "eval.sets[0]"),
    (["train.device=gpu"], "train.device"),
    (["train.device=cuda:-1"], "train.device"),
    (["train.device=meta"], "train.device"),
    (["train.device="], "train.device"),
    (["train.clip_norm=0"], "train.clip_norm"),
    (["train.clip_norm=.inf"], "train.clip_norm"),
    (["train.steps=0"], "train.steps"),
    ([f"train.steps={HUGE}"], "train.steps"),
    ([f"train.grad_accum={HUGE}"], "train.grad_accum"),
    # sizes and data
    ([f"data.p={HUGE}"], "data.p"),
    (["data.k=2000000000"], "data.k"),
    (["data.p=" + "9" * 5000], "data.p"),
    ([f"model.embedding_size={HUGE}"], "model.embedding_size"),
    ([f"mining.memory_size={HUGE}"], "mining.memory_size"),
    (["mining.refresh_every=-1"], "mining.refresh_every"),
    (["data.max_pixels=0"], "data.max_pixels"),
    ([f"data.max_pixels={HUGE}"], "data.max_pixels"),
    (["data.workers=100000"], "data.workers"),
    (["data.synthetic_difficulty=.nan"], "data.synthetic_difficulty"),
    (["model.dropout=1.0"], "model.dropout"),
    (["model.input_size=1000000000000"], "model.input_size"),
    (["model.init_checkpoint=''"], "model.init_checkpoint"),
    (["seed=-1"], "seed"),
    ([f"seed={2**63}"], "seed"),
    (["seed=true"], "seed"),
    (["output_dir=''"], "output_dir"),
    (["output_dir='   '"], "output_dir"),
    (["data.format=rec", "data.path=''"], "data.path"),
    (["data.format=tfrecord", "data.path=x.idx", "data.data_root=''"], "data.data_root"),
    # malformed --set items and values
    (["optim.lr=[1,"], "override 'optim.lr=[1,': optim.lr"),
    (["optim.lr={"], "optim.lr"),
    (["optim.lr=*undefined"], "optim.lr"),
    (["optim.lr=&a [*a]"], "optim.lr"),
    (["optim.lr=1\n---\n2"], "optim.lr"),
    (["optim.lr='unterminated"], "optim.lr"),
    (["optim.lr"], "override 'optim.lr' must look like key.path=value"),
    (["optim..lr=1"], "override 'optim..lr=1' has an empty key part"),
    (["=1"], "override '=1'"),
    (["optim.lr.x=1"], "optim.lr"),
    (["optim.nope=1"], "unknown key optim.nope"),
    (["optim=3"], "optim"),
]


@pytest.mark.parametrize("overrides, key", HOSTILE_OVERRIDES, ids=[" ".join(o)[:60] for o, _ in HOSTILE_OVERRIDES])
def test_hostile_override_is_a_config_error_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(None, overrides)


def test_python_tag_in_override_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(None, [f'optim.lr=!!python/object/apply:os.system ["touch {marker}"]'])
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- YAML files
def _alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
        prev = name
    lines.append("eval: {sets: *i}")
    return "\n".join(lines) + "\n"


HOSTILE_FILES = [
    ("duplicate", b"optim:\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.2\n", r"duplicate key 'optim\.lr' at line 4"),
    ("duplicate_top", b"seed: 1\noutput_dir: x\nseed: 2\n", r"duplicate key 'seed' at line 3"),
    ("duplicate_section", b"optim: {lr: 0.1}\ntrain: {steps: 5}\noptim: {lr: 0.2}\n", r"duplicate key 'optim'"),
    ("non_utf8", b"seed: 1\noutput_dir: r\xff\xfeuns\n", "not UTF-8"),
    ("latin1", "output_dir: caf\u00e9\n".encode("latin-1"), "line 1"),
    ("alias_bomb", _alias_bomb().encode(), "expands to more than"),
    ("recursive_alias", b"eval: {sets: &s [*s]}\n", "recursive alias"),
    ("deep_list", b"eval: {sets: " + b"[" * 5000 + b"]" * 5000 + b"}\n", "nesting deeper than"),
    ("deep_map", b"data: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n", "nesting deeper than"),
    ("wide_list", b"eval: {sets: [" + b"x," * 50_000 + b"]}\n", "more than"),
    ("python_name", b"seed: !!python/name:os.system\n", "could not determine a constructor"),
    ("python_object", b"seed: !!python/object:collections.OrderedDict {}\n", "could not determine a constructor"),
    ("unknown_tag", b"seed: !evil 1\n", "could not determine a constructor"),
    ("unhashable_key", b"? [a, b]\n: 1\n", "unhashable key"),
    ("int_key", b"1: 2\nseed: 3\n", "key 1 at line 1 is not a name"),
    ("bool_key", b"optim:\n  lr: 0.1\n  yes: 2\n", "key True in optim at line 3 is not a name"),
    ("two_documents", b"seed: 1\n---\nseed: 2\n", "single document"),
    ("top_level_list", b"- seed\n- 1\n", "mapping at the top level"),
    ("top_level_scalar", b"hello\n", "mapping at the top level"),
    ("tab_indent", b"optim:\n\tlr: 0.1\n", "not valid YAML"),
    ("unterminated", b"optim: {lr: 0.1\n", "not valid YAML"),
]


@pytest.mark.parametrize("name, content, message", HOSTILE_FILES, ids=[n for n, _, _ in HOSTILE_FILES])
def test_hostile_yaml_file_is_a_config_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(str(path))) as info:
        load_config(path)
    assert re.search(message, str(info.value)), str(info.value)


@pytest.mark.parametrize("section, key", [("data", "p"), ("train", "steps"), ("mining", "memory_size")])
def test_huge_integer_in_file_names_the_key(tmp_path, section, key):
    path = tmp_path / "huge.yaml"
    path.write_text(f"{section}:\n  {key}: {HUGE}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{section}.{key}")):
        load_config(path)


def test_python_object_tag_in_file_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(f'seed: !!python/object/apply:os.system ["touch {marker}"]\n'
                    f'output_dir: !!python/object/apply:subprocess.call [["touch", "{marker}"]]\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)
    assert not marker.exists()


def test_unreadable_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path)) + ".*not a regular file"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="config file"):
        load_config("bad\x00name.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (5 * 2**20) + b"\nseed: 1\n")
    with pytest.raises(ConfigError, match=re.escape(str(big)) + ".*larger than"):
        load_config(big)


# ------------------------------------------------------------------------- every float / int is checked
def _leaf_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, typing.Any]]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out += _leaf_fields(tp, key + ".")
        else:
            out.append((key, tp))
    return out


def _with(key: str, value) -> dict:
    data: dict = {"loss": {"head": {"name": "arcface"}}}  # the head's keys are live
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


FLOAT_KEYS = [k for k, tp in _leaf_fields() if float in (tp, *typing.get_args(tp))]
LIST_FLOAT_KEYS = [k for k, tp in _leaf_fields() if tp == list[float]]
INT_KEYS = [k for k, tp in _leaf_fields() if int in (tp, *typing.get_args(tp))]


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_every_float_key_refuses_non_finite_values(key, bad):
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_from_dict(_with(key, bad))


@pytest.mark.parametrize("key", LIST_FLOAT_KEYS)
def test_every_float_list_refuses_nan(key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_from_dict(_with(key, [float("nan"), 0.5]))


@pytest.mark.parametrize("key", INT_KEYS)
def test_every_int_key_refuses_a_huge_integer(key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_from_dict(_with(key, 10**30))


def test_key_lists_cover_the_config():
    assert {"optim.lr", "loss.head.s", "train.clip_norm", "loss.head.m", "schedule.min_lr"} <= set(FLOAT_KEYS)
    assert {"data.p", "data.max_pixels", "seed", "train.steps", "mining.memory_size"} <= set(INT_KEYS)
    assert LIST_FLOAT_KEYS == ["optim.betas"]


# ------------------------------------------------------------------------------- schedules built by hand
@pytest.mark.parametrize("schedule, steps, lr, key", [
    (ScheduleConfig(gamma=-5.0), 100, 0.1, "schedule.gamma"),
    (ScheduleConfig(warmup_steps=100), 100, 0.1, "schedule.warmup_steps"),
    (ScheduleConfig(kind="step", milestones=[-1]), 100, 0.1, "schedule.milestones[0]"),
    (ScheduleConfig(min_lr=0.2), 100, 0.1, "schedule.min_lr"),
    (ScheduleConfig(), 100, float("nan"), "optim.lr"),
    (ScheduleConfig(), 0, 0.1, "train.steps"),
])
def test_build_scheduler_refuses_a_bad_schedule(schedule, steps, lr, key):
    from massface.training.schedules import build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    with pytest.raises(ConfigError, match=re.escape(key)):
        build_scheduler(opt, schedule, steps, lr)


# ------------------------------------------------------------------------------------- valid configs
@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_still_loads(path):
    cfg = load_config(path)
    assert cfg.data.max_pixels == 40_000_000
    raw = yaml.safe_load(path.read_text())
    assert cfg.seed == raw.get("seed", 0) and cfg.output_dir == raw["output_dir"]


def test_examples_are_found():
    assert len(list(EXAMPLES.rglob("*.yaml"))) >= 6


def test_defaults_and_written_config_round_trip(tmp_path):
    cfg = load_config(None)
    assert config_to_dict(cfg) == config_to_dict(Config())
    path = tmp_path / "config.yaml"  # what the trainer writes into its run directory
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    assert config_to_dict(load_config(path)) == config_to_dict(cfg)


def test_valid_edge_values_pass(tmp_path):
    cfg = load_config(None, [
        "train.steps=100", "schedule.warmup_steps=99", "schedule.kind=step", "schedule.milestones=[1, 99]",
        "schedule.gamma=1.0", "schedule.min_lr=0.1", "optim.lr=0.1", "optim.momentum=0", "optim.betas=[0, 0.999999]",
        "optim.eps=1.0e-12", "eval.every=0", f"seed={2**63 - 1}", "loss.head.name=arcface",
        "loss.triplet.weight=0", "loss.triplet.margin=0", "train.clip_norm=null", "data.max_pixels=1",
        "data.workers=0", "model.dropout=0.0", "mining.refresh_every=0", "model.fc_bn=false",
    ])
    assert cfg.schedule.warmup_steps == 99 and cfg.schedule.milestones == [1, 99]
    assert cfg.seed == 2**63 - 1 and cfg.model.fc_bn is False and cfg.data.max_pixels == 1
    for device in ("auto", "cpu", "cuda", "cuda:7", "mps"):  # parsed, not required to exist
        assert load_config(None, [f"train.device={device}"]).train.device == device
    merged = tmp_path / "merge.yaml"  # YAML merge keys may override, they are not duplicates
    merged.write_text("optim:\n  <<: {lr: 0.05, momentum: 0.5}\n  lr: 0.2\n")
    cfg = load_config(merged)
    assert (cfg.optim.lr, cfg.optim.momentum) == (0.2, 0.5)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffseed: 3\n".encode())
    assert load_config(bom).seed == 3
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\noptim:\n")
    assert load_config(empty, ["optim.lr=0.5"]).optim.lr == 0.5


def test_demo_and_benchmark_shaped_configs_load(tmp_path):
    steps = 3  # massface demo / compare build this shape with warmup max(1, steps // 20)
    cfg = config_from_dict({
        "seed": 0, "output_dir": str(tmp_path / "run"),
        "data": {"format": "rec", "path": str(tmp_path / "train.rec"), "p": 8, "k": 4, "workers": 0,
                 "transform": "light"},
        "model": {"backbone": "mobilefacenet", "embedding_size": 64, "input_size": 112},
        "loss": {"triplet": {"miner": "min_max", "margin": 0.25},
                 "head": {"name": "cosface", "s": 64.0, "m": 0.25, "weight": 0.5}},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "cosine", "warmup_steps": max(1, steps // 20)},
        "train": {"steps": steps, "log_every": max(1, steps // 20), "checkpoint_every": steps},
        "eval": {"sets": [str(tmp_path / "lfw.bin")], "every": 2, "batch_size": 128},
    })
    assert cfg.train.steps == 3


def test_override_values_parse_as_yaml():
    assert parse_value("false", "k") is False and parse_value("no", "k") is False
    assert parse_value("0.25", "k") == 0.25 and parse_value("[1, 2]", "k") == [1, 2]
    assert parse_value("null", "k") is None and parse_value("", "k") == ""
    with pytest.raises(ConfigError, match="fc_bn"):
        parse_value("[", "fc_bn")


# ------------------------------------------------------------------------------- export-onnx --set
@pytest.mark.parametrize("text, expected", [
    ("fc_bn=false", ("fc_bn", False)), ("fc_bn=False", ("fc_bn", False)), ("fc_bn=true", ("fc_bn", True)),
    ("dropout=0.4", ("dropout", 0.4)), ("width=32", ("width", 32)), ("widths=[32, 64, 128, 256]",
                                                                        ("widths", [32, 64, 128, 256])),
])
def test_export_onnx_set_values_are_parsed(text, expected):
    from massface.backbones.onnx import _parse_option

    assert _parse_option(text) == expected


@pytest.mark.parametrize("text, key", [("fc_bn=[", "fc_bn"), ("fc_bn", "--set"), ("1bad=2", "1bad"),
                                       ("dropout=!!python/name:os.system", "dropout")])
def test_export_onnx_malformed_set_is_an_argparse_error(text, key):
    from massface.backbones.onnx import _parse_option

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(key)):
        _parse_option(text)


@pytest.mark.parametrize("option, message", [("fc_bn=maybe", "fc_bn: expected true or false"),
                                             ("dropout=.nan", "dropout: expected a finite number"),
                                             ("width=1.5", "width: expected an integer"),
                                             ("nope=1", "nope")])
def test_export_onnx_refuses_bad_option_values(tmp_path, capsys, option, message):
    from massface.backbones.onnx import main

    rc = main(["--backbone", "mobilefacenet", "--output", str(tmp_path / "x.onnx"), "--set", option, "--no-verify"])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export_onnx_passes_false_as_false(tmp_path, monkeypatch):
    import massface.backbones.registry as registry
    from massface.backbones.onnx import main

    seen = {}

    def fake_build(name, embedding_size=None, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(registry, "build_backbone", fake_build)
    assert main(["--backbone", "mobilefacenet", "--output", str(tmp_path / "x.onnx"), "--set", "fc_bn=false"]) == 2
    assert seen["fc_bn"] is False
