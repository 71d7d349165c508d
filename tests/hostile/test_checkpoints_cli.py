"""Hostile and careless checkpoints, output directories and command lines.

Nothing in a checkpoint runs (every load is ``weights_only=True``; malicious pickles write a marker file if
executed, and the marker must never appear), nothing of an old run is lost (a refused ``--no-resume`` leaves it
byte-identical), every refusal is a :class:`CheckpointError` naming the file and the first bad field or key, and
a run resumes from any step — exactly at an epoch boundary and after its last step included. The sampler works
as other code drives it (``len()``-counted epochs, PML's trainers), and the console script works.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from massface.sampling import PKSampler
from massface.serialization import CheckpointError, load_backbone_weights, load_checkpoint
from massface.training.checkpoint import TRAINER_FIELDS, CheckpointManager, atomic_save
from massface.training.config import config_from_dict
from massface.training.trainer import ExistingRunError, Trainer, TrainingStopped

QUIET = dict(log=lambda message: None)
ROOT = Path(__file__).resolve().parents[2]


def tiny_config(out, head: bool = True, **train):
    loss = {"triplet": {"miner": "min_max", "margin": 0.25}}
    if head:
        loss["head"] = {"name": "cosface", "m": 0.25, "weight": 0.5}
    return config_from_dict({
        "seed": 3,
        "output_dir": str(out),
        "data": {"format": "synthetic", "synthetic_identities": 12, "synthetic_images_per_identity": 4,
                 "p": 4, "k": 2, "workers": 0, "transform": "none", "synthetic_image_size": 32},
        "model": {"backbone": "mobilefacenet", "embedding_size": 32, "input_size": 32},
        "loss": loss,
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"kind": "cosine", "warmup_steps": 1},
        "train": {"steps": 4, "log_every": 1, "checkpoint_every": 2, **train},
    })


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def equal_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ----------------------------------------------------------------------------------------- malicious pickles
class _Exploit:
    """Unpickling this calls ``exec``, which writes the marker file (if anything ever unpickles it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('executed')",)


def _write_malicious(path: Path, kind: str, marker: Path) -> Path:
    evil = _Exploit(marker)
    if kind == "zip":  # torch.save of a trainer-looking dict with a payload inside
        torch.save({**{f: 0 for f in TRAINER_FIELDS}, "model": {"w": torch.zeros(1)}, "payload": evil}, path)
    elif kind == "legacy":  # the pre-1.6 tar/pickle format
        torch.save({"state_dict": evil}, path, _use_new_zipfile_serialization=False)
    elif kind == "bare-pickle":  # a plain pickle named .pt
        path.write_bytes(pickle.dumps({"model": evil}, protocol=2))
    elif kind == "state-dict-value":  # a state dict whose tensor is replaced by the payload
        torch.save({"conv.weight": evil}, path)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


MALICIOUS = ["zip", "legacy", "bare-pickle", "state-dict-value"]


def _assert_refused(err: BaseException, path: Path, marker: Path) -> None:
    text = str(err)
    assert str(path) in text
    assert "weights_only=False" not in text and "weights_only" not in text.replace("weights_only=True", "")
    assert not marker.exists(), "the checkpoint's code ran"


@pytest.mark.parametrize("kind", MALICIOUS)
def test_malicious_checkpoint_is_refused_by_every_loader(tmp_path, kind):
    marker = tmp_path / "MARKER"
    bad = _write_malicious(tmp_path / f"evil_{kind}.pt", kind, marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    _assert_refused(err.value, bad, marker)
    from massface.backbones import build_backbone

    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(build_backbone("mobilefacenet", 32, input_size=32), bad)
    _assert_refused(err.value, bad, marker)


@pytest.mark.parametrize("kind", MALICIOUS)
def test_malicious_latest_pt_is_refused_on_resume(tmp_path, kind):
    marker = tmp_path / "MARKER"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    bad = _write_malicious(tmp_path / "run" / "checkpoints" / "latest.pt", kind, marker)
    with pytest.raises(CheckpointError) as err:
        Trainer(tiny_config(tmp_path / "run"), **QUIET)
    _assert_refused(err.value, bad, marker)


@pytest.mark.parametrize("kind", MALICIOUS)
def test_malicious_init_checkpoint_is_refused(tmp_path, kind):
    marker = tmp_path / "MARKER"
    bad = _write_malicious(tmp_path / "pretrained.pt", kind, marker)
    cfg = tiny_config(tmp_path / "run")
    cfg.model.init_checkpoint = str(bad)
    with pytest.raises(CheckpointError, match=r"\(model.init_checkpoint\)") as err:
        Trainer(cfg, **QUIET)
    _assert_refused(err.value, bad, marker)


@pytest.mark.parametrize("kind", MALICIOUS)
def test_malicious_checkpoint_through_eval_and_export_cli(tmp_path, kind, capsys):
    from massface.backbones.onnx import main as export_main
    from massface.evaluation.cli import main as eval_main

    marker = tmp_path / "MARKER"
    bad = _write_malicious(tmp_path / "model.pt", kind, marker)
    assert eval_main(["--model", str(bad), "--backbone", "mobilefacenet", "--data-dir", str(tmp_path),
                      "--out", str(tmp_path / "eval")]) == 2
    assert export_main(["--backbone", "mobilefacenet", "--checkpoint", str(bad),
                        "--output", str(tmp_path / "m.onnx"), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 2 and "plain-data checkpoints only" in err
    assert not marker.exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_needs_an_explicit_trust_flag(tmp_path):
    from massface.evaluation.models import is_torchscript, load_model

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    ts = tmp_path / "net.pt"
    torch.jit.script(net).save(str(ts))
    sd = tmp_path / "sd.pt"
    torch.save(net.state_dict(), sd)
    assert is_torchscript(ts) and not is_torchscript(sd) and not is_torchscript(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="TorchScript program") as err:
        load_model(ts)
    assert str(ts) in str(err.value)
    assert load_model(ts, trust_torchscript=True)(torch.zeros(1, 3, 8, 8)).shape == (1, 4)
    with pytest.raises(CheckpointError, match="unknown layout") as err:
        load_model(sd)  # a state dict of no known family: named, with the families tried
    assert str(sd) in str(err.value) and "arcface_torch" in str(err.value)


# ----------------------------------------------------------------------------------------- broken checkpoints
def _broken_checkpoints(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, fragment the error must contain)."""
    d = tmp_path / "broken"
    d.mkdir()
    good = d / "good.pt"
    torch.save({"step": 1, "model": {"w": torch.zeros(3)}}, good)
    out: dict[str, tuple[Path, str]] = {}
    torch.save({}, d / "empty_dict.pt")
    out["empty dict"] = (d / "empty_dict.pt", "lacks field 'step'")
    (d / "dir.pt").mkdir()
    out["directory"] = (d / "dir.pt", "is a directory")
    out["missing"] = (d / "missing.pt", "does not exist")
    data = good.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    out["truncated"] = (d / "truncated.pt", "truncated or not a torch checkpoint")
    (d / "zero_bytes.pt").write_bytes(b"")
    out["zero bytes"] = (d / "zero_bytes.pt", "checkpoint")
    (d / "garbage.pt").write_bytes(os.urandom(256))
    out["random bytes"] = (d / "garbage.pt", "checkpoint")
    (d / "text.pt").write_text("model: weights\n")
    out["text file"] = (d / "text.pt", "checkpoint")
    torch.save([1, 2, 3], d / "list.pt")
    out["a list"] = (d / "list.pt", "holds a list")
    torch.save(torch.zeros(2), d / "tensor.pt")
    out["a tensor"] = (d / "tensor.pt", "holds a Tensor")
    os.symlink(d / "loop_b.pt", d / "loop_a.pt")
    os.symlink(d / "loop_a.pt", d / "loop_b.pt")
    out["symlink loop"] = (d / "loop_a.pt", "cannot be accessed")
    os.symlink(d / "nowhere.pt", d / "dangling.pt")
    out["dangling symlink"] = (d / "dangling.pt", "does not exist")
    os.mkfifo(d / "fifo.pt")
    out["FIFO"] = (d / "fifo.pt", "not a regular file")
    os.symlink("/dev/zero", d / "devzero.pt")
    out["symlink to /dev/zero"] = (d / "devzero.pt", "not a regular file")
    return out


BROKEN = ["empty dict", "directory", "missing", "truncated", "zero bytes", "random bytes", "text file", "a list",
          "a tensor", "symlink loop", "dangling symlink", "FIFO", "symlink to /dev/zero"]


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the block blocks longer than ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_trainer_checkpoint_names_file_and_field(tmp_path, name):
    path, fragment = _broken_checkpoints(tmp_path)[name]
    with deadline(20), pytest.raises(CheckpointError) as err:
        load_checkpoint(path, required=TRAINER_FIELDS)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert err.value.path == str(path)


@pytest.mark.parametrize("name", ["empty dict", "directory", "truncated", "random bytes", "a list"])
def test_broken_latest_pt_never_restarts_silently(tmp_path, name):
    src, fragment = _broken_checkpoints(tmp_path)[name]
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    os.replace(src, ckpt / "latest.pt")
    with pytest.raises(CheckpointError, match="latest.pt") as err:
        Trainer(tiny_config(tmp_path / "run"), **QUIET)
    assert fragment in str(err.value)


def test_missing_latest_with_periodic_checkpoints_is_not_a_fresh_start(tmp_path):
    Trainer(tiny_config(tmp_path / "run"), **QUIET).fit(until=2)
    (tmp_path / "run" / "checkpoints" / "latest.pt").unlink()
    with pytest.raises(CheckpointError, match="latest.pt: is missing although .* holds periodic"):
        Trainer(tiny_config(tmp_path / "run"), **QUIET)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    Trainer(tiny_config(out), **QUIET).fit()
    return out


def _resume_error(tmp_path: Path, finished_run: Path, edit, **cfg_changes) -> CheckpointError:
    state = torch.load(finished_run / "checkpoints" / "latest.pt", weights_only=True)
    edit(state)
    run = tmp_path / "edited"
    atomic_save(state, run / "checkpoints" / "latest.pt")
    cfg = tiny_config(run)
    for dotted, value in cfg_changes.items():
        section, key = dotted.split("__")
        setattr(getattr(cfg, section), key, value)
    with pytest.raises(CheckpointError) as err:
        Trainer(cfg, **QUIET)
    assert str(run / "checkpoints" / "latest.pt") in str(err.value)
    return err.value


def _drop(field):
    return lambda state: state.pop(field)


def _set(field, value):
    return lambda state: state.__setitem__(field, value)


EDITS = {
    "no step": (_drop("step"), "lacks field 'step'"),
    "no optimizer": (_drop("optimizer"), "lacks field 'optimizer'"),
    "step beyond the run": (_set("step", 10 ** 30), "step: expected an integer in [0, train.steps=4]"),
    "negative step": (_set("step", -1), "step: expected an integer"),
    "step as a string": (_set("step", "2"), "step: expected an integer"),
    "model missing a key": (lambda s: s["model"].pop(next(iter(s["model"]))),
                            "model does not match this MobileFaceNet: missing key"),
    "model with an extra key": (lambda s: s["model"].__setitem__("extra.weight", torch.zeros(1)),
                                "unexpected key 'extra.weight'"),
    "model not a dict": (_set("model", [1, 2]), "model: expected a state dict"),
    "head dropped": (_set("head", None), "head: the checkpoint has no classification head"),
    "optimizer garbage": (_set("optimizer", {"state": 3}), "optimizer: "),
    "sampler garbage": (_set("sampler", {"epoch": "x"}), "sampler: "),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_edited_trainer_checkpoint_names_the_field(tmp_path, finished_run, name):
    edit, fragment = EDITS[name]
    assert fragment in str(_resume_error(tmp_path, finished_run, edit))


def test_checkpoint_of_another_class_count_or_backbone_names_file_and_key(tmp_path, finished_run):
    err = _resume_error(tmp_path, finished_run, lambda s: None, data__synthetic_identities=10)
    assert "head.weight: shape (12, 32) in the checkpoint, (10, 32)" in str(err)
    err = _resume_error(tmp_path / "b", finished_run, lambda s: None, model__embedding_size=16)
    assert "model." in str(err) and "shape" in str(err)
    # init_checkpoint of another backbone: the file and the first key
    from massface.backbones import build_backbone

    other = tmp_path / "iresnet.pt"
    torch.save({"state_dict": build_backbone("iresnet18", 32).state_dict()}, other)
    cfg = tiny_config(tmp_path / "init")
    cfg.model.init_checkpoint = str(other)
    with pytest.raises(CheckpointError, match=r"iresnet.pt: \(model.init_checkpoint\) model does not match this "
                                              r"MobileFaceNet: missing key '[^']+' \(\+\d+ more\), unexpected key"):
        Trainer(cfg, **QUIET)


def test_init_checkpoint_accepts_trainer_checkpoints_and_ddp_prefixes(tmp_path, finished_run):
    latest = finished_run / "checkpoints" / "latest.pt"
    cfg = tiny_config(tmp_path / "a")
    cfg.model.init_checkpoint = str(latest)
    a = Trainer(cfg, **QUIET)
    ref = Trainer(tiny_config(finished_run), **QUIET)  # resumes the finished run
    assert equal_weights(a.model, ref.model) and a.step == 0
    state = torch.load(latest, weights_only=True)["model"]
    ddp = tmp_path / "ddp.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, ddp)
    cfg = tiny_config(tmp_path / "b")
    cfg.model.init_checkpoint = str(ddp)
    assert equal_weights(Trainer(cfg, **QUIET).model, ref.model)


# ----------------------------------------------------------------------------------------- never lose a run
def test_no_resume_into_an_existing_run_is_refused_and_the_run_is_intact(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "notes.txt").write_text("mine")
    before = tree_digest(run)
    with pytest.raises(ExistingRunError, match="already holds a run .*--overwrite"):
        Trainer(tiny_config(run), resume=False, **QUIET)
    assert tree_digest(run) == before

    from massface.training.cli import main

    argv = ["--set", f"output_dir={run}", "--set", "data.format=synthetic", "--set", "train.steps=4"]
    assert main(argv + ["--no-resume"]) == 2
    assert main(argv + ["--overwrite"]) == 2  # --overwrite alone: refused (the default resumes)
    assert tree_digest(run) == before


def test_overwrite_removes_only_the_old_run(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "notes.txt").write_text("mine")
    trainer = Trainer(tiny_config(run, steps=2, checkpoint_every=1), resume=False, overwrite=True, **QUIET)
    assert trainer.step == 0
    trainer.fit()
    assert (run / "notes.txt").read_text() == "mine"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # the old run's 4 lines are gone, not mixed in
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.pt", "step_00000001.pt",
                                                                      "step_00000002.pt"]


def test_orphan_tmp_files_of_a_killed_write_are_removed_on_start(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    orphan = run / "checkpoints" / ".latest.pt.k1ll3d.tmp"
    orphan.write_bytes(b"partial")
    keep = run / "checkpoints" / "user-notes.tmp"  # not the shape atomic_save gives its temporaries
    keep.write_text("mine")
    messages: list[str] = []
    Trainer(tiny_config(run), log=messages.append)
    assert not orphan.exists() and keep.exists()
    assert any(".latest.pt.k1ll3d.tmp" in m for m in messages)
    assert CheckpointManager(run / "checkpoints").remove_orphans() == []


# ----------------------------------------------------------------------------------------- resume from any step
def test_resume_exactly_at_an_epoch_boundary_and_after_the_last_step(tmp_path):
    probe = Trainer(tiny_config(tmp_path / "probe"), **QUIET)
    epoch = len(probe.sampler)
    assert epoch == 3
    steps = 2 * epoch + 1
    straight = Trainer(tiny_config(tmp_path / "a", steps=steps, checkpoint_every=100), **QUIET)
    straight.fit()
    first = Trainer(tiny_config(tmp_path / "b", steps=steps, checkpoint_every=100), **QUIET)
    assert first.fit(until=epoch)["status"] == "paused"
    second = Trainer(tiny_config(tmp_path / "b", steps=steps, checkpoint_every=100), **QUIET)
    assert second.step == epoch
    assert second.fit(until=2 * epoch)["step"] == 2 * epoch  # and again at the next boundary
    third = Trainer(tiny_config(tmp_path / "b", steps=steps, checkpoint_every=100), **QUIET)
    assert third.fit()["status"] == "completed"
    assert equal_weights(straight.model, third.model)
    losses = [h["loss"] for h in straight.history]
    assert [h["loss"] for h in second.history + third.history] == losses[epoch:]

    after = Trainer(tiny_config(tmp_path / "b", steps=steps, checkpoint_every=100), **QUIET)
    assert after.step == steps
    result = after.fit()
    assert result["status"] == "completed" and result["step"] == steps and after.history == []
    assert equal_weights(straight.model, after.model)
    events = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "resume"] == [epoch, 2 * epoch, steps]


# ----------------------------------------------------------------------------------------- non-finite numbers
@pytest.mark.parametrize("head", [True, False], ids=["triplet+cosface", "triplet only"])
def test_non_finite_embeddings_follow_on_nan(tmp_path, head):
    def poisoned(trainer: Trainer) -> Trainer:
        last = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.fill_(float("inf"))
        return trainer

    stop = poisoned(Trainer(tiny_config(tmp_path / "stop", head=head), **QUIET))
    with pytest.raises(TrainingStopped, match="non-finite loss at step 1"):
        stop.fit()
    skip = poisoned(Trainer(tiny_config(tmp_path / "skip", head=head, on_nan="skip"), **QUIET))
    skip.MAX_CONSECUTIVE_SKIPS = 2
    with pytest.raises(TrainingStopped, match="2 consecutive non-finite losses"):
        skip.fit()


# ------------------------------------------------------------------------------- the sampler as others drive it
@pytest.mark.parametrize("small", ["oversample", "take_all"])
def test_epochs_counted_by_len_are_all_full(small):
    s = PKSampler(torch.arange(8).repeat_interleave(4), p=4, k=2, small=small)
    it = iter(s)
    next(it), next(it)
    assert len(list(iter(s))) == 2
    loader = torch.utils.data.DataLoader(torch.arange(32), batch_sampler=s)
    per_epoch = [sum(1 for _ in zip(range(len(loader)), loader)) for _ in range(3)]
    assert per_epoch == [2, 2, 2]


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")  # inside PML
@pytest.mark.parametrize("small", ["oversample", "take_all"])
def test_pml_metric_loss_only_trains_with_pk_sampler(small):
    trainers = pytest.importorskip("pytorch_metric_learning.trainers")
    from pytorch_metric_learning import losses

    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.arange(8).repeat_interleave(4), torch.tensor([8])])  # one single-image identity

    class Points(torch.utils.data.Dataset):
        x = torch.randn(labels.numel(), 6, generator=g) + labels[:, None].float()

        def __len__(self) -> int:
            return labels.numel()

        def __getitem__(self, i: int):
            return self.x[i], int(labels[i])

    trunk = torch.nn.Linear(6, 6)
    iterations: list[int] = []
    trainer = trainers.MetricLossOnly(
        models={"trunk": trunk, "embedder": torch.nn.Identity()},
        optimizers={"trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.01)},
        batch_size=8, loss_funcs={"metric_loss": losses.TripletMarginLoss()}, mining_funcs={}, dataset=Points(),
        sampler=PKSampler(labels, p=4, k=2, small=small, seed=0), dataloader_num_workers=0,
        end_of_iteration_hook=lambda t: iterations.append(t.iteration), set_min_label_to_zero=False)
    before = trunk.weight.detach().clone()
    trainer.train(num_epochs=3)
    assert isinstance(trainer.dataloader.batch_sampler, PKSampler)
    assert len(iterations) == 3 * 2
    assert not torch.equal(before, trunk.weight)


# ----------------------------------------------------------------------------------------- the command line
def _run(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "massface", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_console_entry_point_help_and_print_config(tmp_path):
    proc = _run(["--help"], tmp_path)
    assert proc.returncode == 0 and "train" in proc.stdout and "export-onnx" in proc.stdout
    proc = _run(["train", "--print-config", "--set", "train.steps=7"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["train"]["steps"] == 7
    proc = _run(["train", "--set", "optim.lr=.nan"], tmp_path)
    assert proc.returncode == 2 and "optim.lr" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(["train", "--set", "optim.lr=[1"], tmp_path)
    assert proc.returncode == 2 and "optim.lr" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_trains_refuses_no_resume_then_resumes(tmp_path):
    run = tmp_path / "run"
    base = ["train", "--set", f"output_dir={run}", "--set", "data.format=synthetic",
            "--set", "data.synthetic_identities=8", "--set", "data.synthetic_images_per_identity=2",
            "--set", "data.synthetic_image_size=32", "--set", "data.p=4", "--set", "data.k=2",
            "--set", "data.workers=0", "--set", "data.transform=none", "--set", "model.embedding_size=16",
            "--set", "model.input_size=32", "--set", "schedule.warmup_steps=0", "--set", "eval.every=0"]
    proc = _run(base + ["--set", "train.steps=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = tree_digest(run)
    proc = _run(base + ["--set", "train.steps=3", "--no-resume"], tmp_path)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "Traceback" not in proc.stderr
    assert tree_digest(run) == before
    proc = _run(base + ["--set", "train.steps=3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from" in proc.stderr and '"step": 3' in proc.stdout


# ------------------------------------------------------------------------------- data.max_pixels reaches the readers
def test_config_max_pixels_bounds_training_and_evaluation_reads(tmp_path, capsys):
    import numpy as np

    from massface.data import DataFormatError
    from massface.data.folder import write_folder
    from massface.data.verification import write_bin
    from massface.evaluation.cli import main as eval_main

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    write_folder(tmp_path / "faces", [(images[i], i // 2) for i in range(8)])
    cfg = tiny_config(tmp_path / "run")
    cfg.data.format, cfg.data.path, cfg.data.max_pixels = "folder", str(tmp_path / "faces"), 32 * 32 - 1
    cfg.data.synthetic_identities = 4
    with pytest.raises(DataFormatError, match=r"faces/.*more than max_pixels=1,023"):
        Trainer(cfg, **QUIET).fit(until=1)
    faces = rng.integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    write_bin(tmp_path / "lfw.bin", faces, [True, False, True, False])
    model = tmp_path / "model.pt"
    from massface.backbones import build_backbone

    torch.save(build_backbone("mobilefacenet", 16).state_dict(), model)
    argv = ["--model", str(model), "--backbone", "mobilefacenet", "--embedding-size", "16", "--data-dir",
            str(tmp_path), "--out", str(tmp_path / "eval"), "--quiet", "--no-plots", "--batch-size", "8",
            "--folds", "2"]
    assert eval_main(argv + ["--max-pixels", str(112 * 112 - 1)]) == 1
    assert "lfw.bin" in capsys.readouterr().err
    assert eval_main(argv + ["--max-pixels", str(112 * 112)]) == 0
