"""Evaluation reports: a printed table, ``report.md``, ``results.json`` and plots in one directory."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from massface.evaluation.verification import PairEvaluation

__all__ = ["format_table", "write_report"]


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.2f}"


def format_table(results: Mapping[str, PairEvaluation], markdown: bool = False) -> str:
    """One row per set: accuracy ± std (%), standard error, mean threshold, TAR@FAR, AUC, EER, pairs."""
    fars: list[float] = sorted({f for r in results.values() for f in r.tar_at_far})
    head = ["set", "acc %", "± std", "s.e.", "threshold", *[f"TAR@FAR={f:g} %" for f in fars], "AUC %", "EER %", "pairs"]
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{100 * r.accuracy:.2f}",
                f"{100 * r.std:.2f}",
                f"{100 * r.stderr:.2f}",
                f"{r.threshold:.3f}",
                *[_pct(r.tar_at_far.get(f, float("nan"))) for f in fars],
                f"{100 * r.auc:.3f}",
                f"{100 * r.eer:.2f}",
                str(r.num_pairs),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*row) for row in rows)])


def write_report(
    results: Mapping[str, PairEvaluation],
    out_dir: str | Path,
    title: str = "massface evaluation",
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
    formats: Sequence[str] = ("png", "svg"),
) -> dict[str, Path]:
    """Write ``report.md``, ``results.json`` and (optionally) per-set distance plots + a joint ROC/DET.

    ``meta`` (model path, protocol flags, ...) is stored in the JSON and listed in the report.
    Returns ``{"report": ..., "results": ..., <plot name>: ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if plots and results:
        from massface.evaluation.plots import plot_distance_distribution, plot_roc

        for name, r in results.items():
            plot_distance_distribution(r, out / f"{name}_distances", title=f"{name}: pair distances", formats=formats)
            written[f"{name}_distances"] = out / f"{name}_distances.{formats[0]}"
        curves = {f"{n} (AUC {100 * r.auc:.2f})": (r.fpr, r.tpr) for n, r in results.items()}
        plot_roc(curves, out / "roc", kind="roc", title="ROC", formats=formats)
        plot_roc(curves, out / "det", kind="det", title="DET", formats=formats)
        written["roc"] = out / f"roc.{formats[0]}"
        written["det"] = out / f"det.{formats[0]}"
    payload = {"title": title, "meta": dict(meta or {}), "sets": {n: r.summary() for n, r in results.items()}}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    written["results"] = out / "results.json"
    lines = [f"# {title}", ""]
    for k, v in (meta or {}).items():
        lines.append(f"- **{k}**: {v}")
    if meta:
        lines.append("")
    lines += [
        format_table(results, markdown=True),
        "",
        "Accuracy: mean of the 10 contiguous folds (insightface protocol), ± population std; s.e. = std(ddof=1)/√n.",
        "TAR@FAR: insightface's VAL at a training-fold threshold; AUC / EER from the pooled ROC.",
        "",
    ]
    if plots and results:
        ext = "png" if "png" in formats else formats[0]
        lines += [f"![ROC](roc.{ext})", f"![DET](det.{ext})"]
        lines += [f"![{n}]({n}_distances.{ext})" for n in results]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    written["report"] = out / "report.md"
    return written
