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
separate processes. Outputs: ``DIR/results.json`` (one entry per run: axis values, seed, final evaluation, the
evaluation curve) and ``DIR/report.md`` (per configuration the mean and 95 % interval over seeds of every eval
set, and against the baseline a paired test per configuration, :mod:`massface.evaluation.statistics`).
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


def _train(base: str, overrides: list[str], out: str) -> dict[str, Any]:
    """One run (in this process or a worker): train, then read the eval curve from its metrics file."""
    from massface.training.config import load_config
    from massface.training.trainer import Trainer

    cfg = load_config(base, [*overrides, f"output_dir={json.dumps(out)}"])
    fit = Trainer(cfg, resume=True, log=lambda message: None).fit()
    curve, detail = [], {}
    metrics = Path(out) / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            record = json.loads(line)
            if "eval" in record:
                curve.append({"step": record["step"], **record["eval"]})
                detail = record.get("eval_detail", detail)
    return {"status": fit["status"], "step": fit["step"], "eval": fit["eval"], "metrics": detail, "curve": curve}


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
            futures = {pool.submit(_train, *a): run for run, a in zip(todo, args)}
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
    lines = ["# Comparison", "", f"Base config `{grid.base}`, seeds {list(grid.seeds)}; mean ± 95 % interval over "
             "seeds (Student t), in %. TAR at a FAR is insightface's 10-fold VAL; AUC of the pooled ROC."]
    for measure in measures or ["accuracy"]:
        lines += ["", f"**{measure}**", "", "| configuration | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        for name, rows in configs.items():
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
    figure = _plot_distances(grid, configs, Path(out))
    if figure is not None:
        lines += ["", f"Held-out distance distributions ({figure[1]}, seed {grid.seeds[0]} of each configuration):",
                  "", f"![distances]({figure[0].name})"]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


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
