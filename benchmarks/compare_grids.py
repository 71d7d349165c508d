"""The shipped miner comparisons: ``massface compare`` on the grids of ``benchmarks/compare/``, with their
reports copied to ``benchmarks/reports/compare/<grid>/``.

    python benchmarks/compare_grids.py                          # the default grid: six strategies, from scratch
    python benchmarks/compare_grids.py --grid modes_two_stage   # one grid by name
    python benchmarks/compare_grids.py --grid all --jobs 2      # every grid, two runs at a time

Grids (each 3 seeds; every run of a seed has the same initial weights, data and sampling order):

- ``strategies_scratch`` -- (a) the six selection strategies online, from random weights (the default);
- ``strategies_two_stage`` -- (a) the same, fine-tuning one stage-1 CosFace model (MassFace's regime);
- ``modes_two_stage`` -- (b) min-max online / xbm / semi_online / offline, two-stage;
- ``noisy_guards`` -- (c) a noisy SynthFaces set (duplicate identities, wrong labels), min-max with and without
  the false-negative guards.

The held-out ``.bin`` (10 folds × (120 same + 120 different) pairs of unseen SynthFaces identities) is written
once to ``.cache/massface-compare/``; runs go to ``--out`` (default ``bench-output/compare``; finished runs are
skipped, so an interrupted grid resumes). Each report ends with the grid's wall time on this machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRIDS = ("strategies_scratch", "strategies_two_stage", "modes_two_stage", "noisy_guards")
HELDOUT = ROOT / ".cache" / "massface-compare" / "synth_heldout.bin"
REPORTS = ROOT / "benchmarks" / "reports" / "compare"


def write_heldout(path: Path = HELDOUT) -> Path:
    """The grids' held-out set (SynthFaces seed 0, 48 px, 10 folds × (120 + 120) pairs), written once."""
    from massface.data.synthetic import SynthFaces
    from massface.data.verification import write_bin

    if not path.is_file():
        images, issame = SynthFaces(300, 12, seed=0, image_size=48).verification_pairs(10, 120)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".bin.tmp")
        write_bin(tmp, images, issame)
        tmp.replace(path)
    return path


def _rounded(value: object) -> object:
    """Floats to 5 significant digits, all the way down (the published results.json stays small)."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _stage1_config(directory: Path) -> str | None:
    """The stage-1 config text a finished stage 1 was trained from (kept next to it), or None."""
    source = directory / "stage1_config.yaml"
    return source.read_text() if source.is_file() else None


def run(name: str, out: Path, jobs: int, publish: bool) -> float:
    """Run grid ``name`` into ``out/name``; returns its wall time in seconds."""
    from massface.training.compare import load_grid, run_grid, write_compare_report

    grid = load_grid(ROOT / "benchmarks" / "compare" / f"{name}.yaml")
    target = out / name
    if grid.stage1 is not None and not (target / "stage1").exists():
        for other in GRIDS:  # one stage-1 model for every grid that names the same stage-1 config
            done = out / other / "stage1"
            if other != name and (done / "checkpoints" / "latest.pt").is_file() and \
                    _stage1_config(done) == grid.stage1.read_text():
                shutil.copytree(done, target / "stage1")
                print(f"compare_grids: {name} shares the stage-1 model of {other}", file=sys.stderr)
                break
    todo = sum(not (target / "runs" / r.name / "result.json").exists() for r in grid.runs)
    timing = target / "wall_time.json"
    t0 = time.perf_counter()
    results = run_grid(grid, target, jobs=jobs, log=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - t0
    if grid.stage1 is not None:
        (target / "stage1" / "stage1_config.yaml").write_text(grid.stage1.read_text())
    if todo == len(grid.runs):  # a whole grid trained by this call: its wall time is the grid's
        timing.write_text(json.dumps({"seconds": seconds, "jobs": jobs}) + "\n")
    elif timing.is_file():
        seconds, jobs = (json.loads(timing.read_text())[k] for k in ("seconds", "jobs"))
    report = write_compare_report(grid, results, target)
    with report.open("a") as f:
        if todo == len(grid.runs) or timing.is_file():
            f.write(f"\nProduced by `python benchmarks/compare_grids.py --grid {name} --jobs {jobs}` on the 2-core "
                    f"CPU machine: {seconds / 60:.1f} min wall time for the whole grid (training and evaluation of "
                    "every run).\n")
        else:
            f.write(f"\nProduced by `python benchmarks/compare_grids.py --grid {name}` in several sittings (an "
                    "interrupted grid resumed), so no wall time is given.\n")
    if publish:
        dest = REPORTS / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for item in target.iterdir():
            if item.is_file() and item.suffix in (".md", ".png"):
                shutil.copyfile(item, dest / item.name)
        if (target / "triplets").is_dir():
            shutil.copytree(target / "triplets", dest / "triplets")
        slim = [_rounded({k: v for k, v in r.items() if k != "triplet_grids"}) for r in results]
        (dest / "results.json").write_text(json.dumps(slim, indent=1) + "\n")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="strategies_scratch", choices=(*GRIDS, "all"))
    parser.add_argument("--out", default=str(ROOT / "bench-output" / "compare"))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (default: 2, one per core)")
    parser.add_argument("--no-publish", action="store_true",
                        help="do not copy the reports to benchmarks/reports/compare/")
    args = parser.parse_args(argv)
    import os

    os.chdir(ROOT)  # the grids' configs name the held-out set relative to the repository
    write_heldout()
    for name in GRIDS if args.grid == "all" else (args.grid,):
        seconds = run(name, Path(args.out), args.jobs, not args.no_publish)
        print(json.dumps({"grid": name, "minutes": round(seconds / 60, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
