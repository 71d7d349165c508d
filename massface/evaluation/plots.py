"""Headless evaluation plots: distance distributions and ROC / DET curves, written as PNG and/or SVG.

Every function builds its own ``matplotlib.figure.Figure`` on an Agg canvas (no pyplot, no global
backend switch, no shared state), so it is safe in servers, threads and test runs without a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from massface.evaluation.verification import PairEvaluation

__all__ = ["plot_distance_distribution", "plot_distance_distributions", "plot_roc", "save_figure"]

_FORMATS = ("png", "svg")


def _new_figure(width: float = 6.4, height: float = 4.4) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] | None = None) -> list[Path]:
    """Write ``fig`` to ``path``; with ``formats`` (e.g. ``("png", "svg")``) one file per format.

    ``path`` with a ``.png`` / ``.svg`` suffix and no ``formats`` writes that single file.
    Returns the written paths.
    """
    path = Path(path)
    if formats is None:
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in _FORMATS:
            raise ValueError(f"{path}: plot files must end in .png or .svg (or pass formats=('png', 'svg'))")
        formats = (suffix,)
        stem = path.with_suffix("")
    else:
        bad = [f for f in formats if f not in _FORMATS]
        if bad:
            raise ValueError(f"unsupported plot formats {bad}; allowed: {list(_FORMATS)}")
        stem = path.with_suffix("") if path.suffix.lower().lstrip(".") in _FORMATS else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for fmt in formats:
        target = stem.with_suffix(f".{fmt}")
        fig.savefig(target, format=fmt)
        out.append(target)
    return out


def _pair_arrays(result: PairEvaluation | None, distances: Any, issame: Any, thresholds: Any):
    if result is not None:
        distances, issame = result.distances, result.issame
        thresholds = result.thresholds if thresholds is None else thresholds
    if distances is None or issame is None:
        raise ValueError("plot_distance_distribution needs a PairEvaluation or distances and issame")
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(issame, dtype=bool).ravel()
    if d.shape != y.shape:
        raise ValueError(f"distances ({d.shape[0]}) and issame ({y.shape[0]}) differ in length")
    return d, y, thresholds


def _draw_distance_histogram(ax: Any, d: np.ndarray, y: np.ndarray, thresholds: Any, bins: int, title: str,
                             edges: np.ndarray | None = None) -> None:
    """Same / different histograms of ``d`` on ``ax``, with the mean threshold and its range over folds."""
    if edges is None:
        edges = np.linspace(min(0.0, float(d.min())), max(4.0, float(d.max())), bins + 1)
    style = dict(bins=edges, histtype="stepfilled", alpha=0.6, density=True)
    ax.hist(d[y], color="tab:blue", label=f"same ({int(y.sum())})", **style)
    ax.hist(d[~y], color="tab:red", label=f"different ({int((~y).sum())})", **style)
    if thresholds is not None:
        t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
        if t.size > 1 and t.max() > t.min():
            ax.axvspan(float(t.min()), float(t.max()), color="k", alpha=0.15, label="threshold range over folds")
        ax.axvline(float(t.mean()), color="k", linestyle="--", label=f"threshold {t.mean():.3f}")
    ax.set_xlabel("squared L2 distance (L2-normalised embeddings)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")


def plot_distance_distribution(
    result: PairEvaluation | None = None,
    path: str | Path | None = None,
    *,
    distances: Any = None,
    issame: Any = None,
    thresholds: Any = None,
    bins: int = 100,
    title: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """Histogram of squared-L2 distances of same vs. different pairs with the chosen threshold.

    Pass a :class:`~massface.evaluation.verification.PairEvaluation` or ``distances`` + ``issame``
    (+ optional per-fold ``thresholds``). The mean threshold is drawn as a line and its spread over the
    folds (min..max) as a shaded band. Saved to ``path`` when given. ``O(N)`` time and memory.
    """
    d, y, thresholds = _pair_arrays(result, distances, issame, thresholds)
    fig = _new_figure()
    _draw_distance_histogram(fig.add_subplot(1, 1, 1), d, y, thresholds, bins, title or "pair distance distribution")
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_distance_distributions(
    results: Mapping[str, PairEvaluation],
    path: str | Path | None = None,
    *,
    columns: int = 3,
    bins: int = 80,
    title: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """The distance distributions of several evaluations side by side, one panel per entry of ``results``
    (e.g. one per miner), on shared axes so that the panels compare directly."""
    if not results:
        raise ValueError("plot_distance_distributions needs at least one result")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    arrays = {name: _pair_arrays(r, None, None, None) for name, r in results.items()}
    low = min(0.0, min(float(d.min()) for d, _, _ in arrays.values()))
    high = max(4.0, max(float(d.max()) for d, _, _ in arrays.values()))
    edges = np.linspace(low, high, bins + 1)
    cols = min(columns, len(arrays))
    rows = -(-len(arrays) // cols)
    fig = _new_figure(4.2 * cols, 3.3 * rows)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for ax, (name, (d, y, t)) in zip(axes.ravel(), arrays.items()):
        _draw_distance_histogram(ax, d, y, t, bins, str(name), edges=edges)
    for ax in axes.ravel()[len(arrays):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_roc(
    curves: Mapping[str, tuple[Any, Any]] | PairEvaluation,
    path: str | Path | None = None,
    *,
    kind: str = "roc",
    title: str = "",
    min_far: float | None = None,
    formats: Sequence[str] | None = None,
) -> Figure:
    """ROC (TPR vs FAR) or DET (FRR vs FAR) curves on a logarithmic FAR axis.

    Args:
        curves: ``{label: (fpr, tpr)}`` or a single ``PairEvaluation``.
        kind: ``"roc"`` (TPR on a linear axis) or ``"det"`` (FRR = 1 - TPR, both axes logarithmic).
        min_far: left end of the FAR axis; default a decade below the smallest positive FAR.
    """
    if kind not in ("roc", "det"):
        raise ValueError(f"kind must be 'roc' or 'det', got {kind!r}")
    if hasattr(curves, "fpr") and hasattr(curves, "tpr"):
        curves = {f"{curves.mode} (AUC {curves.auc:.4f})": (curves.fpr, curves.tpr)}  # type: ignore[union-attr]
    if not curves:
        raise ValueError("plot_roc needs at least one curve")
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    smallest, smallest_frr = 1.0, 1.0
    for label, (fpr, tpr) in curves.items():
        fpr = np.asarray(fpr, dtype=np.float64)
        tpr = np.asarray(tpr, dtype=np.float64)
        if fpr.shape != tpr.shape:
            raise ValueError(f"curve {label!r}: fpr and tpr differ in length ({fpr.size} vs {tpr.size})")
        keep = fpr > 0
        if keep.any():
            smallest = min(smallest, float(fpr[keep].min()))
        if kind == "roc":
            ax.plot(fpr[keep], tpr[keep], label=str(label))
        else:
            frr = 1.0 - tpr
            k = keep & (frr > 0)
            if k.any():
                smallest_frr = min(smallest_frr, float(frr[k].min()))
            ax.plot(fpr[k], frr[k], label=str(label))
    ax.set_xscale("log")
    ax.set_xlim(min_far if min_far is not None else min(smallest, 1e-3) / 10.0, 1.0)
    ax.set_xlabel("false accept rate")
    if kind == "roc":
        ax.set_ylabel("true accept rate")
        ax.set_ylim(0.0, 1.0)
    else:
        ax.set_yscale("log")
        ax.set_ylim(min(smallest_frr, 1e-3) / 10.0, 1.0)  # also when a curve has no error at all
        ax.set_ylabel("false reject rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or kind.upper())
    ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize="small")
    if path is not None:
        save_figure(fig, path, formats)
    return fig
