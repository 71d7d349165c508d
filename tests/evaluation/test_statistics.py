"""Statistics over seeds: t intervals, paired tests against a baseline, the report's sentence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from massface.evaluation.statistics import describe_difference, mean_interval, paired_difference


def test_mean_interval_is_students_t():
    x = [0.81, 0.85, 0.83, 0.86]
    interval = mean_interval(x)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert interval.mean == pytest.approx(0.8375) and interval.half_width == pytest.approx(half)
    assert interval.low == pytest.approx(0.8375 - half) and interval.n == 4
    lo, hi = stats.t.interval(0.9, 3, loc=np.mean(x), scale=stats.sem(x))
    wide = mean_interval(x, confidence=0.9)
    assert (wide.low, wide.high) == pytest.approx((lo, hi))
    single = mean_interval([0.5])
    assert single.mean == 0.5 and math.isnan(single.low) and math.isnan(single.half_width)


def test_paired_difference_matches_scipy_and_pairs_by_seed():
    a = {0: 0.86, 1: 0.84, 2: 0.88}
    b = {2: 0.85, 0: 0.85, 1: 0.82}  # another order: paired by seed, not by position
    t = paired_difference(a, b)
    assert t.seeds == (0, 1, 2) and t.difference.mean == pytest.approx((0.01 + 0.02 + 0.03) / 3)
    assert t.p_value == pytest.approx(stats.ttest_rel([0.86, 0.84, 0.88], [0.85, 0.82, 0.85]).pvalue)
    w = paired_difference(a, b, test="wilcoxon")
    assert w.p_value == pytest.approx(stats.wilcoxon([0.86, 0.84, 0.88], [0.85, 0.82, 0.85]).pvalue)
    same = paired_difference({0: 0.8, 1: 0.9}, {0: 0.8, 1: 0.9})
    assert same.p_value == 1.0 and same.inside_noise
    shifted = paired_difference({0: 0.81, 1: 0.91}, {0: 0.8, 1: 0.9})
    assert shifted.p_value == 0.0


def test_sentences_say_when_a_difference_is_inside_the_noise():
    noisy = paired_difference({0: 0.86, 1: 0.80, 2: 0.88}, {0: 0.85, 1: 0.84, 2: 0.84})
    text = describe_difference("min_max", "hardest", noisy)
    assert text.startswith("min_max vs hardest, accuracy: +0.33 points (95 % CI") and text.endswith("inside the noise.")
    assert "paired t-test p = " in text and "3 seeds" in text
    clear = paired_difference({0: 0.90, 1: 0.91, 2: 0.92, 3: 0.905}, {0: 0.80, 1: 0.815, 2: 0.81, 3: 0.80})
    assert describe_difference("semihard", "hardest", clear).endswith("better than hardest beyond the seed-to-seed "
                                                                       "noise.")
    one = paired_difference({0: 0.9}, {0: 0.8})
    assert describe_difference("a", "b", one).endswith("1 seed: no interval, no test): not evidence either way.")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: mean_interval([]), "no values"),
    (lambda: mean_interval([0.5, float("nan")]), "NaN or infinite"),
    (lambda: mean_interval([0.5, 0.6], confidence=1.0), "confidence"),
    (lambda: paired_difference({0: 0.5, 1: 0.6}, {0: 0.5, 2: 0.6}), r"seeds on one side only: \['1', '2'\]"),
    (lambda: paired_difference({0: 0.5}, {0: 0.5}, test="z"), "test must be"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
