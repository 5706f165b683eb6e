"""rsdix.intervals: the one implementation of every confidence interval, against closed forms,
scipy and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rsdix import intervals
from rsdix.errors import DataError


def test_wilson_interval_matches_the_closed_form_and_stays_in_range():
    low, high = intervals.wilson_interval(50.0, 100)                 # p=0.5, n=100, z=1.96
    assert (low, high) == pytest.approx((40.383, 59.617), abs=1e-3)
    # the Wilson endpoints are the proportions q with |p_hat - q| = z * sqrt(q (1 - q) / n) (score test)
    k, n, z = 3, 40, stats.norm.ppf(0.975)
    for q in intervals.wilson_interval(100 * k / n, n):
        q /= 100
        assert abs(k / n - q) == pytest.approx(z * np.sqrt(q * (1 - q) / n))
    assert intervals.wilson_interval(0.0, 10)[0] == 0.0 and intervals.wilson_interval(100.0, 10)[1] == pytest.approx(100.0)
    assert intervals.wilson_interval(0.4, 10, scale=1.0)[1] <= 1.0
    with pytest.raises(ValueError):
        intervals.wilson_interval(120.0, 10)


def test_bootstrap_interval_never_leaves_the_values_range():
    values = [0.5, 1.0, 20.0]                    # a Student-t interval here reaches below 0
    t_low = np.mean(values) - stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert t_low < 0
    low, high = intervals.bootstrap_mean(values)
    assert 0.5 <= low < np.mean(values) < high <= 20.0
    assert intervals.bootstrap_mean([7.0]) == (7.0, 7.0)
    assert intervals.bootstrap_mean(values) == intervals.bootstrap_mean(values)       # seeded
    with pytest.raises(ValueError):
        intervals.bootstrap_mean([1.0, float("nan")])


def test_accuracy_interval_says_which_interval_it_is():
    assert intervals.accuracy_interval([30.0], 1005)[2] == "wilson"
    assert intervals.accuracy_interval([30.0, 31.0, 35.0], None)[2] == "bootstrap"
    assert intervals.accuracy_interval([30.0], None) == (30.0, 30.0, "none")


def test_t_interval_equals_scipy():
    values = [3.0, 5.0, 4.0, 8.0, 6.5]
    mean, low, high = intervals.t_interval(values)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values)) and (low, high) == pytest.approx(ref)
    assert intervals.t_interval([2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(DataError, match="t interval: 1 of 3 values are NaN or infinite"):
        intervals.t_interval([1.0, float("inf"), 2.0])


def test_bootstrap_of_two_values_by_hand():
    """Resampling [0, 1] twice gives the means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and
    97.5% quantiles of the bootstrap distribution are 0 and 1."""
    assert intervals.bootstrap_mean([0.0, 1.0]) == (0.0, 1.0)
    assert intervals.bootstrap_mean([4.0, 4.0, 4.0]) == (4.0, 4.0)
    # one default resample count for every caller
    assert intervals.bootstrap_mean([1.0, 2.0, 9.0]) == intervals.bootstrap_mean([1.0, 2.0, 9.0], n_boot=10000)
