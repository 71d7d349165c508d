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

__all__ = ["plot_distance_distribution", "plot_distance_distributions", "plot_grouped_shares", "plot_roc", "plot_seed_bands",
           "plot_triplet_grid", "plot_group_roc", "plot_error_vs_discard", "save_figure"]

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


def plot_triplet_grid(
    thumbnails: Sequence[Any],
    triplets: Mapping[str, Any],
    groups: Mapping[str, Sequence[int]],
    path: str | Path | None = None,
    *,
    title: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """Mined triplets as images: for each group (e.g. ``hardest``, ``random``, ``false negatives``) three rows --
    anchors, positives, negatives -- with one column per triplet, captioned with d_ap and d_an.

    Args:
        thumbnails: the images the triplets index (uint8 / float, HWC RGB or HW grey).
        triplets: arrays ``a``, ``p``, ``n`` (indices into ``thumbnails``), ``d_ap``, ``d_an``; optional
            ``false_negative`` (bool), which marks a negative that is truly the anchor's identity in red.
        groups: group name -> positions into the triplet arrays (empty groups are left out).
    """
    groups = {name: np.asarray(list(idx), dtype=np.int64) for name, idx in groups.items() if len(idx)}
    if not groups:
        raise ValueError("plot_triplet_grid needs at least one non-empty group of triplets")
    a, p, n = (np.asarray(triplets[k], dtype=np.int64) for k in ("a", "p", "n"))
    d_ap, d_an = np.asarray(triplets["d_ap"], dtype=float), np.asarray(triplets["d_an"], dtype=float)
    fn = triplets.get("false_negative")
    for name, idx in groups.items():
        if idx.min() < 0 or idx.max() >= a.size:
            raise ValueError(f"plot_triplet_grid: group {name!r} indexes triplet {int(idx.max())} of {a.size}")
    used = np.concatenate([np.concatenate([a[i], p[i], n[i]]) for i in groups.values()])
    if used.size and (used.min() < 0 or used.max() >= len(thumbnails)):
        raise ValueError(f"plot_triplet_grid: a triplet indexes image {int(used.max())} of {len(thumbnails)}")
    cols = max(idx.size for idx in groups.values())
    fig = _new_figure(1.0 * cols + 0.9, 1.2 * 3 * len(groups) + 0.4)
    fig.set_dpi(72)  # thumbnails near their own size: a grid of 72 face crops stays a few hundred KB
    axes = fig.subplots(3 * len(groups), cols, squeeze=False)
    for g, (name, idx) in enumerate(groups.items()):
        for r, (role, which) in enumerate((("anchor", a), ("positive", p), ("negative", n))):
            row = axes[3 * g + r]
            for c, ax in enumerate(row):
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= idx.size:
                    ax.set_visible(False)
                    continue
                t = idx[c]
                image = np.asarray(thumbnails[int(which[t])])
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
                if r == 2:
                    false_negative = fn is not None and bool(np.asarray(fn)[t])
                    ax.set_xlabel(f"d_ap {d_ap[t]:.3g}\nd_an {d_an[t]:.3g}" + ("\nsame person" if false_negative
                                                                               else ""),
                                  fontsize=7, color="tab:red" if false_negative else "black")
                    if false_negative:
                        for spine in ax.spines.values():
                            spine.set_color("tab:red")
                            spine.set_linewidth(2)
            row[0].set_ylabel(f"{name}\n{role}" if r == 0 else role, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_seed_bands(
    series: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    panels: Sequence[tuple[str, str]],
    path: str | Path | None = None,
    *,
    columns: int = 3,
    title: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """Curves over training steps with bands over seeds: one panel per ``(key, title)`` of ``panels``, one line
    per entry of ``series`` (configuration -> one list of ``{"step": s, key: value}`` records per seed) at the
    mean over seeds, with a band from the smallest to the largest seed. A step is drawn where every seed has a
    finite value; a key no configuration has leaves its panel out.

    Cost: O(total records) per panel."""
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    drawn = []
    for key, label in panels:
        lines = {}
        for name, seeds in series.items():
            by_step: dict[float, list[float]] = {}
            for records in seeds:
                for r in records:
                    value = r.get(key)
                    if isinstance(value, (int, float)) and np.isfinite(value):
                        by_step.setdefault(float(r["step"]), []).append(float(value))
            steps = sorted(s for s, v in by_step.items() if len(v) == len(seeds))
            if steps:
                values = np.array([by_step[s] for s in steps])
                lines[name] = (np.array(steps), values.mean(axis=1), values.min(axis=1), values.max(axis=1))
        if lines:
            drawn.append((label, lines))
    if not drawn:
        raise ValueError("plot_seed_bands: no panel has data (keys: " + ", ".join(k for k, _ in panels) + ")")
    cols = min(columns, len(drawn))
    rows = -(-len(drawn) // cols)
    fig = _new_figure(4.4 * cols, 3.1 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    colours = {name: f"C{i % 10}" for i, name in enumerate(series)}
    for ax, (label, lines) in zip(axes.ravel(), drawn):
        for name, (steps, mean, low, high) in lines.items():
            ax.plot(steps, mean, color=colours[name], label=str(name), linewidth=1.4,
                    marker="o" if len(steps) < 3 else None, markersize=3)
            ax.fill_between(steps, low, high, color=colours[name], alpha=0.18, linewidth=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(drawn):]:
        ax.set_visible(False)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_grouped_shares(
    shares: Mapping[str, Sequence[Sequence[float]]],
    bins: Sequence[str],
    path: str | Path | None = None,
    *,
    title: str = "",
    xlabel: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """A histogram per configuration as grouped bars: ``shares`` maps a configuration to one list of bin shares
    per seed (``len(bins)`` each); bars at the mean over seeds, whiskers from the smallest to the largest."""
    if not shares:
        raise ValueError("plot_grouped_shares needs at least one configuration")
    for name, seeds in shares.items():
        if not seeds or any(len(s) != len(bins) for s in seeds):
            raise ValueError(f"plot_grouped_shares: {name!r} needs one share per bin ({len(bins)}) for each seed")
    fig = _new_figure(max(6.4, 0.9 * len(bins) * max(1, len(shares)) / 2), 4.0)
    ax = fig.subplots()
    width = 0.8 / len(shares)
    x = np.arange(len(bins))
    for i, (name, seeds) in enumerate(shares.items()):
        values = np.asarray(seeds, dtype=float)
        mean = values.mean(axis=0)
        err = np.stack([mean - values.min(axis=0), values.max(axis=0) - mean])
        ax.bar(x + (i - (len(shares) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=str(name),
               color=f"C{i % 10}", error_kw={"linewidth": 0.8})
    ax.set_xticks(x, list(bins), fontsize=7)
    ax.set_ylabel("share of mined triplets", fontsize=8)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_group_roc(
    result: Any,
    path: str | Path | None = None,
    *,
    title: str = "",
    min_far: float | None = None,
    formats: Sequence[str] | None = None,
) -> Figure:
    """One ROC per group of a :class:`~massface.evaluation.fairness.GroupEvaluation` on shared log-FAR axes, each
    curve marked where the one global threshold ``τ`` puts that group (its FPR, TPR at ``τ``).

    A group whose FPR at ``τ`` is 0 cannot sit on a log axis: its mark is drawn at the left edge (hollow).
    ``O(N)``.
    """
    groups = list(getattr(result, "groups", ()))
    if not groups:
        raise ValueError("plot_group_roc needs a GroupEvaluation with at least one group")
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    smallest = 1.0
    for r in result.per_group.values():
        pos = r.fpr[r.fpr > 0]
        if pos.size:
            smallest = min(smallest, float(pos.min()))
    left = min_far if min_far is not None else min(smallest, 1e-3) / 10.0
    for i, g in enumerate(groups):
        r = result.per_group[g]
        keep = r.fpr > 0
        color = f"C{i % 10}"
        ax.plot(r.fpr[keep], r.tpr[keep], color=color, label=f"{g} (acc {100 * result.accuracy[g]:.2f} %)")
        fx, ty = result.fpr_at_threshold[g], result.tpr_at_threshold[g]
        ax.plot([max(fx, left)], [ty], marker="o", markersize=6, color=color,
                markerfacecolor=color if fx > 0 else "none", linestyle="none")
    ax.plot([], [], marker="o", color="k", linestyle="none",
            label=f"global τ = {result.threshold:.3f} (FMR <= {result.far:g})")
    ax.set_xscale("log")
    ax.set_xlim(left, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"ROC per group (SER {result.ser:.2f})")
    ax.legend(loc="lower right", fontsize="small")
    if path is not None:
        save_figure(fig, path, formats)
    return fig


def plot_error_vs_discard(
    curves: Mapping[str, Any] | Any,
    path: str | Path | None = None,
    *,
    title: str = "",
    formats: Sequence[str] | None = None,
) -> Figure:
    """Error-versus-discard curves (:class:`~massface.evaluation.quality.ErrorDiscardCurve`, e.g. one per model
    or quality source) on one axis: FNMR at the fixed-FMR threshold against the discarded fraction, each with
    its random-discard baseline dashed in the same colour and the pAUC limit as a dotted line. ``O(points)``."""
    if hasattr(curves, "fnmr") and hasattr(curves, "discard"):
        curves = {"quality": curves}
    if not curves:
        raise ValueError("plot_error_vs_discard needs at least one curve")
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    limits = set()
    for i, (label, c) in enumerate(curves.items()):
        color = f"C{i % 10}"
        ax.plot(100 * c.discard, c.fnmr, color=color,
                label=f"{label} (pAUC/base {c.pauc_normalized:.3f}, FMR {c.fmr:g})")
        ax.plot(100 * c.discard, c.baseline_fnmr, color=color, linestyle="--", linewidth=1.0)
        limits.add(c.pauc_limit)
    ax.plot([], [], color="k", linestyle="--", linewidth=1.0, label="random discard (expected)")
    for lim in sorted(limits):
        ax.axvline(100 * lim, color="k", linestyle=":", linewidth=0.8)
    ax.set_xlabel("discarded pairs, lowest quality first [%]")
    ax.set_ylabel("FNMR")
    ax.set_ylim(bottom=0.0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "error versus discard")
    ax.legend(loc="best", fontsize="small")
    if path is not None:
        save_figure(fig, path, formats)
    return fig
