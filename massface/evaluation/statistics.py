"""Statistics over seeds for comparing training configurations: confidence intervals, paired tests against a
baseline, and the plain sentence a report prints (Musgrave et al. 2020, "A Metric Learning Reality Check": the
same budget, several seeds, the spread reported).

* :func:`mean_interval` -- mean and two-sided ``confidence`` interval of one configuration's metric over its
  seeds, Student's t with n - 1 degrees of freedom: mean ± t_{(1+c)/2, n-1} · s / sqrt(n), s the sample
  standard deviation (``ddof=1``); one seed has no interval (NaN bounds).
* :func:`paired_difference` -- a configuration against a baseline run on the *same seeds* (same initial weights
  and data order, so the seed's luck cancels): the per-seed differences, their mean and t interval, and the
  p-value of a paired test (``"t"``: ``scipy.stats.ttest_rel``; ``"wilcoxon"``: ``scipy.stats.wilcoxon``, exact
  for small n). Differences that are all equal have no spread: p = 1 when they are all 0, 0 otherwise.
* :func:`describe_difference` -- one sentence: the difference with its interval, the p-value and the test, and
  "inside the noise" whenever the interval covers 0 (or p >= ``alpha``).

Cost: O(n) per call (n seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from massface._checks import check_real

__all__ = ["Interval", "PairedComparison", "mean_interval", "paired_difference", "describe_difference"]

PairedTest = Literal["t", "wilcoxon"]


@dataclass(frozen=True)
class Interval:
    """Mean of n values and its two-sided ``confidence`` interval [low, high] (NaN bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def half_width(self) -> float:
        """(high - low) / 2: the "±" of the report."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class PairedComparison:
    """A configuration minus its baseline, seed by seed."""

    difference: Interval  # of the per-seed differences
    p_value: float
    test: PairedTest
    seeds: tuple[object, ...]

    @property
    def inside_noise(self) -> bool:
        """Whether the interval of the difference covers 0 (or cannot be computed)."""
        d = self.difference
        return not (d.low > 0 or d.high < 0)


def _values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name}: no values")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} of {array.size} values are NaN or infinite")
    return array


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean and Student-t ``confidence`` interval of ``values`` (e.g. one configuration's accuracy per seed).

    Raises:
        ValueError: no values, a NaN / infinite value, or a confidence outside (0, 1).
    """
    from scipy import stats

    confidence = check_real("confidence", confidence, "mean_interval", low=0.0, high=1.0, low_open=True,
                            high_open=True)
    x = _values(values, "mean_interval")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan, 1, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size), confidence)


def paired_difference(values: Mapping[object, float], baseline: Mapping[object, float], *,
                      test: PairedTest = "t", confidence: float = 0.95) -> PairedComparison:
    """``values[seed] - baseline[seed]`` over the seeds both have run: interval and paired-test p-value.

    Raises:
        ValueError: the two have no seed in common or different seeds (a paired test needs every seed on both
            sides), an unknown ``test``, or a NaN / infinite value.
    """
    from scipy import stats

    if test not in ("t", "wilcoxon"):
        raise ValueError(f"paired_difference: test must be 't' or 'wilcoxon'; got {test!r}")
    if set(values) != set(baseline):
        only = sorted(map(str, set(values) ^ set(baseline)))
        raise ValueError(f"paired_difference: the runs must share their seeds; seeds on one side only: {only}")
    seeds = tuple(sorted(values, key=str))
    a = _values([values[s] for s in seeds], "paired_difference values")
    b = _values([baseline[s] for s in seeds], "paired_difference baseline")
    diff = a - b
    interval = mean_interval(diff, confidence)
    if diff.size < 2:
        p = math.nan
    elif np.all(diff == diff[0]):
        p = 1.0 if diff[0] == 0 else 0.0  # no spread: scipy returns NaN; the sign is certain
    elif test == "t":
        p = float(stats.ttest_rel(a, b).pvalue)
    else:
        p = float(stats.wilcoxon(a, b).pvalue)
    return PairedComparison(interval, p, test, seeds)


def describe_difference(name: str, baseline: str, comparison: PairedComparison, metric: str = "accuracy", *,
                        scale: float = 100.0, unit: str = " points", alpha: float = 0.05) -> str:
    """One sentence for a report, e.g. ``"min_max vs hardest, accuracy: +1.20 points (95 % CI -0.80 to +3.20,
    paired t-test p = 0.21, 3 seeds): inside the noise."``; ``scale`` / ``unit`` format the difference (100 and
    points for accuracies in [0, 1])."""
    d = comparison.difference
    seeds = f"{d.n} seed{'s' if d.n != 1 else ''}"
    test = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}[comparison.test]
    head = f"{name} vs {baseline}, {metric}: {scale * d.mean:+.2f}{unit}"
    if d.n < 2:
        return f"{head} ({seeds}: no interval, no test): not evidence either way."
    level = round(100 * d.confidence)
    body = (f"{head} ({level} % CI {scale * d.low:+.2f} to {scale * d.high:+.2f}, {test} p = "
            f"{comparison.p_value:.2g}, {seeds})")
    if comparison.inside_noise or not comparison.p_value < alpha:
        return f"{body}: inside the noise."
    return f"{body}: {'better' if d.mean > 0 else 'worse'} than {baseline} beyond the seed-to-seed noise."
