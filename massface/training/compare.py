"""``massface compare GRID --out DIR``: a grid of training runs that differ only in their axis values, with
statistics over seeds.

The grid is a YAML file::

    base: examples/compare/base.yaml        # a training config (paths relative to the grid file)
    seeds: [0, 1, 2]
    axes:                                    # dotted config keys -> the values to try (each axis optional)
      loss.triplet.miner: [hardest, min_max, semihard]
      mining.mode: [online, xbm]
    baseline: {loss.triplet.miner: hardest}  # optional: compared against, seed by seed
    metric: lfw                              # optional: the eval set the comparison sentences use
    stage1: examples/compare/stage1.yaml     # optional: MassFace's two-stage regime (see below)
    init_checkpoint: r50/backbone.pth        # optional instead of stage1: start every run from this file

Regimes: from scratch (neither key); two-stage -- the ``stage1`` config (CosFace or softmax pre-training) is
trained once, into ``DIR/stage1`` with its own seed, and every run fine-tunes from its final checkpoint
(``model.init_checkpoint``), so all runs share one starting point; or from a pretrained file of the field
(``init_checkpoint``: arcface_torch, TFace, AdaFace, MagFace, massface -- read by ``load_pretrained``).

Every run is the base config with one combination of axis values and one seed (``seed`` sets the initial
weights and the data order, so runs of one seed start identically); its ``output_dir`` is
``DIR/runs/<name>``. A run whose ``result.json`` exists is skipped and an interrupted one resumes from its
checkpoint, so an interrupted comparison continues where it stopped. ``--jobs N`` trains N runs at once in
separate processes (the machine's cores shared among them). Outputs: ``DIR/results.json`` (one entry per run:
axis values, seed, final evaluation, the evaluation curve, the per-step mining statistics ``dynamics``, the
mining probe's records ``probe`` (:mod:`massface.training.mining_probe`, when the base config sets
``train.probe_every``), wall time) and ``DIR/report.md`` with

- per configuration the mean and 95 % interval over seeds of every eval set and measure (accuracy, TAR at FAR
  1e-3 / 1e-4, AUC), and against the baseline a paired test per configuration
  (:mod:`massface.evaluation.statistics`), in plain sentences;
- ``dynamics.png``: the mining dynamics with bands over seeds (active share, hard share, d_ap / d_an
  percentiles, the false-negative share where the data knows its true identities, collapse indicators) and
  ``hardness.png``: the probe's hardness histogram at its last step;
- ``distances.png``: the held-out distance distributions side by side;
- ``triplets/``: each configuration's triplet grid (``train.triplet_grid_steps``) -- what its miner picked.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from massface.training.config import ConfigError

__all__ = ["CompareGrid", "GridRun", "load_grid", "run_grid", "write_compare_report", "main"]

_MAX_GRID_BYTES = 1 << 20
_MAX_RUNS = 10_000


@dataclass(frozen=True)
class GridRun:
    """One run of the grid: its axis values, its seed and the directory name derived from them."""

    values: tuple[tuple[str, Any], ...]
    seed: int

    @property
    def config_name(self) -> str:
        """The configuration without the seed, e.g. ``loss.triplet.miner=hardest,mining.mode=online``."""
        return ",".join(f"{k}={_text(v)}" for k, v in self.values) or "base"

    @property
    def name(self) -> str:
        """A file-system-safe directory name of the configuration and seed."""
        return re.sub(r"[^A-Za-z0-9_.=,-]+", "_", f"{self.config_name},seed={self.seed}")

    def overrides(self) -> list[str]:
        """``--set`` style overrides of this run (axis values and seed; ``output_dir`` is added by the runner)."""
        return [f"{k}={json.dumps(v)}" for k, v in self.values] + [f"seed={self.seed}"]


@dataclass(frozen=True)
class CompareGrid:
    """A parsed grid file (see the module docstring)."""

    base: Path
    seeds: tuple[int, ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    baseline: tuple[tuple[str, Any], ...] | None = None
    metric: str | None = None
    runs: tuple[GridRun, ...] = field(default=())
    stage1: Path | None = None  # two-stage regime: this config is trained once, every run starts from it
    init_checkpoint: Path | None = None  # or every run starts from this pretrained file


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (reports name no home directories)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def load_grid(path: str | os.PathLike[str]) -> CompareGrid:
    """Read and check a grid file; every run's config is built once to validate it.

    Raises:
        ConfigError: naming the grid file and the key -- an unreadable or oversized file, a missing ``base``
            or ``seeds``, an axis that is not a list, a value the config refuses (with the config's own
            message), a baseline that is not a point of the grid, or more than 10 000 runs.
    """
    from massface.training.config import _load_yaml, load_config

    path = Path(path)
    where = f"compare grid {path}"
    try:
        if not path.is_file():
            raise ConfigError(f"{where}: not a regular file")
        raw = path.read_bytes()[: _MAX_GRID_BYTES + 1]
    except OSError as err:
        raise ConfigError(f"{where}: cannot be read: {err.strerror or err}") from None
    if len(raw) > _MAX_GRID_BYTES:
        raise ConfigError(f"{where}: larger than 1 MiB; a grid is a few lines")
    try:
        data = _load_yaml(raw.decode("utf-8"), str(path))
    except Exception as err:  # YAML, decoding, bounds: all named by the loader's message
        raise ConfigError(f"{where}: not a valid YAML mapping: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with base, seeds and axes")
    keys = ("base", "seeds", "axes", "baseline", "metric", "stage1", "init_checkpoint")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(keys)})")
    if data.get("stage1") is not None and data.get("init_checkpoint") is not None:
        raise ConfigError(f"{where}: stage1 and init_checkpoint are two regimes; give one")
    stage1 = init = None
    for key in ("stage1", "init_checkpoint"):
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise ConfigError(f"{where}: {key} must be a path")
            target = (path.parent / data[key]).resolve()
            if not target.is_file():
                raise ConfigError(f"{where}: {key} {target} is not a file")
            stage1, init = (target, init) if key == "stage1" else (stage1, target)
    if stage1 is not None:
        try:
            load_config(stage1, ["output_dir=/tmp/massface-compare-check"])
        except ConfigError as err:
            raise ConfigError(f"{where}: stage1: {err}") from None
    if not isinstance(data.get("base"), str):
        raise ConfigError(f"{where}: base must be the path of a training config")
    base = (path.parent / data["base"]).resolve()
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of distinct non-negative integers")
    axes_raw = data.get("axes") or {}
    if not isinstance(axes_raw, dict):
        raise ConfigError(f"{where}: axes must map dotted config keys to lists of values")
    axes = []
    for key, values in axes_raw.items():
        if key in ("seed", "output_dir"):
            raise ConfigError(f"{where}: axes.{key}: set by the grid itself (use seeds)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: axes.{key} must be a non-empty list of values")
        axes.append((str(key), tuple(values)))
    combos = list(itertools.product(*[[(k, v) for v in vs] for k, vs in axes]))
    if len(combos) * len(seeds) > _MAX_RUNS:
        raise ConfigError(f"{where}: {len(combos) * len(seeds)} runs; a grid is limited to {_MAX_RUNS}")
    runs = tuple(GridRun(tuple(c), s) for c in combos for s in seeds)
    for run in runs[:: len(seeds)]:  # each configuration once: the config's own checks name the key
        try:
            load_config(base, [*run.overrides(), "output_dir=/tmp/massface-compare-check"])
        except ConfigError as err:
            raise ConfigError(f"{where}: run {run.config_name}: {err}") from None
    baseline = None
    if data.get("baseline") is not None:
        if not isinstance(data["baseline"], dict):
            raise ConfigError(f"{where}: baseline must map axis keys to one value each")
        baseline = tuple((k, data["baseline"][k]) for k, _ in axes if k in data["baseline"])
        extra = sorted(set(data["baseline"]) - {k for k, _ in axes})
        if extra or not any(tuple(v for v in r.values if v[0] in dict(baseline)) == baseline for r in runs):
            raise ConfigError(f"{where}: baseline {data['baseline']} is not a configuration of the grid")
    metric = data.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise ConfigError(f"{where}: metric must be the name of an eval set")
    return CompareGrid(base, tuple(seeds), tuple(axes), baseline, metric, runs, stage1, init)


def _train(base: str, overrides: list[str], out: str, threads: int | None = None) -> dict[str, Any]:
    """One run (in this process or a worker): train, then read its metrics file -- the evaluation curve, the
    per-step mining statistics (``dynamics``: loss and ``miner_*``) and the mining probe (``probe``).
    ``threads``: torch's intra-op threads in a worker (the machine's cores shared by the parallel runs)."""
    import time

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from massface.training.config import load_config
    from massface.training.trainer import Trainer

    cfg = load_config(base, [*overrides, f"output_dir={json.dumps(out)}"])
    t0 = time.perf_counter()
    fit = Trainer(cfg, resume=True, log=lambda message: None).fit()
    seconds = time.perf_counter() - t0
    curve, detail, dynamics, probe = [], {}, [], []
    metrics = Path(out) / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "eval" in record:
                curve.append({"step": record["step"], **record["eval"]})
                detail = record.get("eval_detail", detail)
            elif "probe" in record:
                probe.append({"step": record["step"], **record["probe"]})
            elif "loss" in record:
                dynamics.append({k: v for k, v in record.items()
                                 if k in ("step", "loss", "loss_triplet") or k.startswith("miner_")})
    grids = sorted((Path(out) / "triplets").glob("step_*.png"), key=lambda q: int(q.stem.split("_")[1]))
    return {"status": fit["status"], "step": fit["step"], "eval": fit["eval"], "metrics": detail, "curve": curve,
            "dynamics": dynamics, "probe": probe, "seconds": seconds,
            "triplet_grids": [str(g.relative_to(out)) for g in grids]}


def run_grid(grid: CompareGrid, out: str | os.PathLike[str], *, jobs: int = 1,
             log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train every run of ``grid`` not finished in ``out`` (``jobs`` at a time) and return every run's result,
    in grid order; writes ``out/results.json``."""
    out = Path(out)
    todo = []
    for run in grid.runs:
        if not (out / "runs" / run.name / "result.json").exists():
            todo.append(run)
    log(f"compare: {len(grid.runs)} runs, {len(grid.runs) - len(todo)} already finished, {len(todo)} to train")

    def finish(run: GridRun, result: dict[str, Any]) -> None:
        target = out / "runs" / run.name / "result.json"
        row = {"name": run.name, "config": run.config_name, "values": dict(run.values), "seed": run.seed, **result}
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(row, indent=2) + "\n")
        os.replace(tmp, target)
        log(f"compare: {run.name}: {result['status']} at step {result['step']}, eval {result['eval']}")

    start = grid.init_checkpoint
    if grid.stage1 is not None and todo:
        stage1_out = out / "stage1"
        log(f"compare: stage 1 ({grid.stage1}) into {stage1_out}")
        result = _train(str(grid.stage1), [], str(stage1_out))
        if result["status"] != "completed":
            raise ConfigError(f"compare: stage 1 ended {result['status']} at step {result['step']}")
        row = {"name": "stage1", **{k: v for k, v in result.items() if k != "triplet_grids"}}
        (stage1_out / "result.json").write_text(json.dumps(row, indent=2) + "\n")
        start = stage1_out / "checkpoints" / "latest.pt"
    extra = [f"model.init_checkpoint={json.dumps(str(start))}"] if start is not None else []
    args = [(str(grid.base), [*run.overrides(), *extra], str(out / "runs" / run.name)) for run in todo]
    if jobs <= 1:
        for run, a in zip(todo, args):
            finish(run, _train(*a))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            threads = max(1, cores // jobs)
            futures = {pool.submit(_train, *a, threads): run for run, a in zip(todo, args)}
            for future, run in futures.items():
                finish(run, future.result())
    results = [json.loads((out / "runs" / run.name / "result.json").read_text()) for run in grid.runs]
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def write_compare_report(grid: CompareGrid, results: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """``out/report.md``: per configuration, mean ± 95 % interval over seeds of every eval set; against the
    baseline (when the grid names one), one sentence per configuration and set from a paired t-test."""
    from massface.evaluation.statistics import describe_difference, mean_interval, paired_difference

    configs: dict[str, list[dict[str, Any]]] = {}
    for row in results:
        configs.setdefault(row["config"], []).append(row)
    sets = sorted({name for row in results for name in row["eval"]})
    measures = sorted({m for row in results for d in row.get("metrics", {}).values() for m in d},
                      key=lambda m: (m != "accuracy", m))
    lines = ["# Comparison", "", f"Base config `{_shown(grid.base)}`, seeds {list(grid.seeds)}; mean ± 95 % interval over "
             "seeds (Student t), in %. TAR at a FAR is insightface's 10-fold VAL (a FAR below one over a fold's "
             "negative pairs is beyond what the set resolves: read those columns as noise); AUC of the pooled ROC."]
    if grid.stage1 is not None:
        lines += ["", f"Two-stage regime: every run fine-tunes one model, `{_shown(grid.stage1)}` trained once into "
                  "`stage1/`."]
    elif grid.init_checkpoint is not None:
        lines += ["", f"Every run starts from the pretrained `{_shown(grid.init_checkpoint)}`."]
    tables = dict(configs)
    start = Path(out) / "stage1" / "result.json"
    if grid.stage1 is not None and start.is_file():  # the model every run starts from, as the tables' first row
        tables = {"stage 1 alone (every run's start)": [json.loads(start.read_text())], **configs}
    for measure in measures or ["accuracy"]:
        lines += ["", f"**{measure}**", "", "| configuration | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        for name, rows in tables.items():
            cells = []
            for s in sets:
                values = [r["metrics"][s][measure] if r.get("metrics") else r["eval"][s]
                          for r in rows if s in r.get("metrics", r["eval"])]
                if not values:
                    cells.append("-")
                    continue
                i = mean_interval(values)
                cells.append(f"{100 * i.mean:.2f} ± {100 * i.half_width:.2f}" if i.n > 1 else f"{100 * i.mean:.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if grid.baseline is not None:
        base_name = ",".join(f"{k}={_text(v)}" for k, v in grid.baseline)
        base_rows = [r for r in results if all(r["values"].get(k) == v for k, v in grid.baseline)]
        metric_sets = [grid.metric] if grid.metric else sets
        lines += ["", f"Against the baseline `{base_name}` (paired by seed):", ""]
        for name, rows in configs.items():
            if rows and all(rows[0]["values"].get(k) == v for k, v in grid.baseline):
                continue
            for s in metric_sets:
                own = {r["seed"]: r["eval"][s] for r in rows if s in r["eval"]}
                ref = {r["seed"]: r["eval"][s] for r in base_rows
                       if s in r["eval"] and r["values"] == {**rows[0]["values"], **dict(grid.baseline)}}
                if own and set(own) == set(ref):
                    lines.append("- " + describe_difference(name, base_name, paired_difference(own, ref), s))
    seconds = [r["seconds"] for r in results if isinstance(r.get("seconds"), (int, float))]
    if seconds:
        lines += ["", f"{len(results)} runs; training and evaluation took {sum(seconds) / 60:.1f} min in all "
                  f"(median {sorted(seconds)[len(seconds) // 2]:.0f} s per run)."]
    lines += _mining_table(configs)
    lines += _mining_dynamics(configs, Path(out))
    figure = _plot_distances(grid, configs, Path(out))
    if figure is not None:
        lines += ["", f"Held-out distance distributions ({figure[1]}, seed {grid.seeds[0]} of each configuration):",
                  "", f"![distances]({figure[0].name})"]
    lines += _triplet_grids(grid, configs, Path(out))
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


#: the mining probe's measures in the report's table: (probe key, column title, shown in %)
PROBE_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("active_fraction", "active share %", True),
    ("hard_fraction", "hard share %", True),
    ("false_negative_fraction", "false-negative share %", True),
    ("spread", "spread", False),
    ("effective_rank", "effective rank", False),
)


def _mining_table(configs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per configuration, each probe measure averaged over a run's probes, then mean ± 95 % interval over
    seeds; no lines when no run has probe records."""
    from massface.evaluation.statistics import mean_interval

    columns = [c for c in PROBE_COLUMNS
               if any(c[0] in q for rows in configs.values() for r in rows for q in r.get("probe", []))]
    if not columns:
        return []
    lines = ["", "**mining** (the probe batch, averaged over a run's probes; mean ± 95 % interval over seeds)", "",
             "| configuration | " + " | ".join(title for _, title, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, rows in configs.items():
        cells = []
        for key, _, percent in columns:
            per_run = [sum(q[key] for q in r["probe"] if key in q) / n for r in rows
                       if (n := sum(key in q for q in r.get("probe", [])))]
            if not per_run:
                cells.append("-")
                continue
            i = mean_interval(per_run)
            scale = 100.0 if percent else 1.0
            cells.append(f"{scale * i.mean:.2f} ± {scale * i.half_width:.2f}" if i.n > 1 else f"{scale * i.mean:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


#: the panels of ``dynamics.png``: (record key, title); ``miner_*`` keys are the training miner's statistics of
#: each logged step, ``probe_*`` the mining probe's (:mod:`massface.training.mining_probe`)
DYNAMICS_PANELS: tuple[tuple[str, str], ...] = (
    ("eval", "held-out accuracy"),
    ("loss", "training loss"),
    ("miner_active_fraction", "active share (d_an < d_ap + m: non-zero loss)"),
    ("miner_hard_fraction", "hard share (d_an < d_ap: order violated)"),
    ("miner_d_ap_p50", "median d_ap of mined triplets"),
    ("miner_d_an_p50", "median d_an of mined triplets"),
    ("miner_d_an_p10", "10th percentile d_an"),
    ("probe_false_negative_fraction", "false-negative share (probe; true identities)"),
    ("probe_spread", "collapse: spread 1 - |mean|^2 (probe)"),
    ("probe_effective_rank", "collapse: effective rank (probe)"),
)


def _series(rows: Sequence[dict[str, Any]], metric: str | None) -> list[list[dict[str, float]]]:
    """One record list per seed: the logged steps' statistics, the probes' (``probe_`` prefixed) and the
    evaluation of ``metric`` (as ``eval``)."""
    out = []
    for r in rows:
        records = [dict(d) for d in r.get("dynamics", [])]
        records += [{"step": q["step"], **{f"probe_{k}": v for k, v in q.items() if k != "step"}}
                    for q in r.get("probe", [])]
        records += [{"step": c["step"], "eval": c[metric]} for c in r.get("curve", []) if metric in c]
        out.append(records)
    return out


def _mining_dynamics(configs: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """``dynamics.png`` (curves with min-max bands over seeds) and ``hardness.png`` (the last probe's slack
    histogram per configuration); the report lines that show them (none without logged statistics)."""
    import matplotlib.pyplot as plt

    from massface.evaluation.plots import plot_grouped_shares, plot_seed_bands
    from massface.training.mining_probe import SLACK_EDGES

    lines: list[str] = []
    rows_all = [r for rows in configs.values() for r in rows]
    metric = next((k for r in rows_all for c in r.get("curve", []) for k in c if k != "step"), None)
    series = {name: _series(rows, metric) for name, rows in configs.items()}
    if any(len(records) > 1 for seeds in series.values() for records in seeds):
        try:
            fig = plot_seed_bands(series, DYNAMICS_PANELS, out / "dynamics.png",
                                  title="mining dynamics: mean over seeds, band from the lowest to the highest seed")
        except ValueError:
            fig = None
        if fig is not None:
            plt.close(fig)
            lines += ["", "Mining dynamics (the training miner's statistics per logged step; probe: a fixed batch "
                      "mined every `train.probe_every` steps; eval: held-out "
                      f"{metric}):", "", "![dynamics](dynamics.png)"]
    shares: dict[str, list[list[float]]] = {}
    unit = None
    for name, rows in configs.items():
        last = [r["probe"][-1] for r in rows if r.get("probe") and "slack_hist" in r["probe"][-1]]
        if last and len(last) == len(rows):
            shares[name] = [q["slack_hist"] for q in last]
            unit = last[0].get("slack_unit", unit)
    if shares and unit is not None:
        edges = [f"{e:g}" for e in SLACK_EDGES]
        bins = [f"[{lo}, {hi})" for lo, hi in zip(edges, edges[1:])]
        step = next(r["probe"][-1]["step"] for rows in configs.values() for r in rows if r.get("probe"))
        plt.close(plot_grouped_shares(shares, bins, out / "hardness.png",
                                      title=f"hardness of the mined triplets at step {step} (probe)",
                                      xlabel=f"slack d_an - d_ap in units of {unit:g} (the margin): < 0 hard, "
                                             "[0, 1) semi-hard, >= 1 easy"))
        lines += ["", f"Hardness histogram at step {step} (probe batch; bars: mean over seeds, whiskers: lowest "
                  "and highest seed):", "", "![hardness](hardness.png)"]
    return lines


def _triplet_grids(grid: CompareGrid, configs: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
    """The last triplet grid of each configuration's first-seed run, copied to ``out/triplets/`` and linked."""
    import shutil

    from massface.training.mining_probe import redraw_triplet_grid

    lines: list[str] = []
    for i, (name, rows) in enumerate(configs.items()):
        first = next((r for r in rows if r["seed"] == grid.seeds[0]), rows[0])
        if not first.get("triplet_grids"):
            continue
        source = out / "runs" / first["name"] / first["triplet_grids"][-1]
        if not source.is_file():
            continue
        target = out / "triplets" / f"{i:02d}_{source.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:  # drawn again from the saved triplets, so that the report has the current plot's style
            redraw_triplet_grid(source.parents[1], int(source.stem.split("_")[1]), target)
        except ValueError:
            shutil.copyfile(source, target)
        if not lines:
            lines += ["", f"What the miners pick (probe batch, seed {grid.seeds[0]}; the hardest triplets, a random "
                      "sample and any false negatives, in red):"]
        lines += ["", f"`{name}`, {source.stem.replace('_', ' ')}:", "",
                  f"![triplets {name}]({target.relative_to(out).as_posix()})"]
    return lines


def _plot_distances(grid: CompareGrid, configs: dict[str, list[dict[str, Any]]],
                    out: Path) -> tuple[Path, str] | None:
    """``distances.png``: the held-out pair distances of each configuration's first-seed model on the grid's
    ``metric`` set (else the first eval set), side by side on shared axes; None without eval sets."""
    from massface.backbones import load_pretrained
    from massface.evaluation import evaluate_bin, find_bins, plot_distance_distributions
    from massface.training.config import load_config

    cfg = load_config(grid.base, ["output_dir=/tmp/massface-compare-check"])
    sets: dict[str, Path] = {}
    for entry in cfg.eval.sets:
        p = Path(entry)
        sets.update(find_bins(p) if p.is_dir() else {p.stem: p})
    if not sets:
        return None
    name = grid.metric if grid.metric in sets else next(iter(sets))
    evaluations = {}
    for config, rows in configs.items():
        first = next((r for r in rows if r["seed"] == grid.seeds[0]), rows[0])
        checkpoint = out / "runs" / first["name"] / "checkpoints" / "latest.pt"
        if checkpoint.exists():
            model = load_pretrained(checkpoint)
            evaluations[config] = evaluate_bin(model, sets[name], flip=cfg.eval.flip, batch_size=cfg.eval.batch_size)
    if not evaluations:
        return None
    path = out / "distances.png"
    import matplotlib.pyplot as plt

    plt.close(plot_distance_distributions(evaluations, path, title=f"held-out {name}"))
    return path, name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="massface compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", help="the grid YAML file")
    parser.add_argument("--out", required=True, help="output directory (finished runs in it are skipped)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (default: 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    try:
        grid = load_grid(args.grid)
        results = run_grid(grid, args.out, jobs=args.jobs, log=lambda m: print(m, file=sys.stderr))
    except ConfigError as err:
        print(f"massface compare: {err}", file=sys.stderr)
        return 2
    report = write_compare_report(grid, results, args.out)
    print(json.dumps({"runs": len(results), "report": str(report), "results": str(Path(args.out) / "results.json")}))
    return 0
