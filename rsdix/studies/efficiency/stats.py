"""Paired statistics of a comparison over seeds: arm A and arm B trained with the same seed share
initial weights, image subset and data order, so the seed-wise differences A - B are the data.

:func:`paired_difference` gives the mean difference with two 95% intervals (Student t on the
differences, and a percentile bootstrap over seeds), the paired t p-value, the exact Wilcoxon
signed-rank p (scipy; with n = 5 its smallest two-sided value is 2/32 = 0.0625, so it cannot
reach 0.05 there) and the minimum detectable effect (:func:`minimum_detectable_effect`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import integrate, optimize, stats

from rsdix.errors import DataError
from rsdix.intervals import BOOTSTRAP_RESAMPLES, bootstrap_mean, t_interval


@dataclass
class Paired:
    n: int
    mean: float            # mean of the differences A - B
    sd: float              # their standard deviation (ddof 1)
    t_low: float           # Student t 95% CI of the mean difference
    t_high: float
    boot_low: float        # percentile bootstrap (over seeds) 95% CI of the mean difference
    boot_high: float
    t_p: float             # paired t test, two-sided
    wilcoxon_p: float      # Wilcoxon signed-rank, exact, two-sided (1.0 when every difference is 0)
    mde: float             # smallest true mean difference the paired t test finds with power `power`

    def as_dict(self) -> dict:
        return asdict(self)


def paired_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test at ``alpha`` for a true mean difference ``effect``
    with differences of standard deviation ``sd`` over ``n`` pairs: the noncentral t tail
    P(|T| > t_crit), T = (Z + nc) / sqrt(V / df), written as an integral over V ~ chi2(df) (scipy's
    ``nct`` returns NaN at large noncentrality with few degrees of freedom)."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / sd * math.sqrt(n)

    def given_v(v):
        s = crit * math.sqrt(v / df)
        return (stats.norm.sf(s - nc) + stats.norm.cdf(-s - nc)) * stats.chi2.pdf(v, df)

    lo, hi = stats.chi2.ppf([1e-12, 1 - 1e-12], df)
    value, _ = integrate.quad(given_v, lo, hi, limit=200, points=[df])
    return float(min(1.0, max(0.0, value)))


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The mean difference the paired t test detects with probability ``power`` (two-sided,
    ``alpha``), given the differences' standard deviation ``sd`` and ``n`` pairs; in the metric's
    units. 0 when ``sd`` is 0; needs n >= 2."""
    if n < 2:
        raise DataError("paired differences", f"a minimum detectable effect needs at least 2 pairs, got {n}")
    if sd == 0:
        return 0.0
    crit = stats.t.ppf(1 - alpha / 2, n - 1)
    hi = 2 * (crit + 1) * sd / math.sqrt(n)       # noncentrality 2 (crit + 1): power near 1 at every n >= 2
    while paired_power(hi, sd, n, alpha) < power:
        hi *= 1.5
    return float(optimize.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-10 * sd))


def paired_difference(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, power: float = 0.8,
                      n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Paired:
    """Statistics of the paired differences ``a[i] - b[i]`` (seed ``i`` in both)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise DataError("paired differences", f"arms have {len(a)} and {len(b)} seeds; pairs need both")
    if len(a) < 2:
        raise DataError("paired differences", f"need at least 2 paired seeds, got {len(a)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("paired differences", "a value is NaN or infinite")
    d = a - b
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        t_p = 1.0 if mean == 0 else 0.0
    else:
        t_p = float(stats.ttest_rel(a, b).pvalue)
    wilcoxon_p = 1.0 if not np.any(d) else float(stats.wilcoxon(d, method="auto" if n > 50 else "exact",
                                                                    zero_method="wilcox").pvalue)
    low, high = bootstrap_mean(d, 1 - alpha, n_boot, seed)
    _, t_low, t_high = t_interval(d, 1 - alpha)
    return Paired(n=n, mean=mean, sd=sd, t_low=t_low, t_high=t_high, boot_low=low, boot_high=high,
                  t_p=t_p, wilcoxon_p=wilcoxon_p, mde=minimum_detectable_effect(sd, n, alpha, power))
