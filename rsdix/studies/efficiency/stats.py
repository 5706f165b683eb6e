"""Paired statistics of a comparison over seeds: arm A and arm B trained with the same seed share
initial weights, image subset and data order, so the seed-wise differences A - B are the data.

:func:`paired_difference` gives the mean difference with two 95% intervals (Student t on the
differences, and a percentile bootstrap over seeds), the paired t p-value, the exact Wilcoxon
signed-rank p (scipy; with n = 5 its smallest two-sided value is 2/32 = 0.0625, so it cannot
reach 0.05 there), the minimum detectable effect (:func:`minimum_detectable_effect`) and, given a
margin declared in advance, the one-sided tests of :func:`margin_tests`: non-superiority (A is not
better than B by the margin or more) and equivalence (TOST: the difference lies within +-margin).
:func:`holm` adjusts the p-values of a comparison family.

The percentile bootstrap over seeds is kept beside the t interval to show its small-n problem: it
resamples n values and takes quantiles without a t factor, so its width is about
sqrt((n - 1) / n) z / t(n - 1) of the t interval's (0.65 at n = 5), too narrow.
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
    upper: float = math.nan      # one-sided 95% upper bound of the mean difference
    lower: float = math.nan      # one-sided 95% lower bound
    p_nonsup: float = math.nan   # H0: A - B >= margin (A better by the margin or more); small p: not superior
    p_tost: float = math.nan     # equivalence: max of the two one-sided p; small p: within +-margin

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


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family's p-values (same order back): the k-th smallest is
    multiplied by (m - k + 1), made monotone, capped at 1. NaN stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def margin_tests(d: Sequence[float], margin: float, alpha: float = 0.05) -> dict:
    """One-sided t tests of the paired differences ``d`` against a margin: ``p_nonsup`` (H0: mean >=
    margin), ``p_tost`` (equivalence: the larger p of H0 mean <= -margin and H0 mean >= margin) and the
    one-sided (1 - alpha) bounds ``lower`` / ``upper`` (the two-sided 1 - 2 alpha interval)."""
    d = np.asarray(d, dtype=float)
    n, mean = len(d), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    crit = stats.t.ppf(1 - alpha, n - 1)
    if se == 0:
        above, below = float(mean >= margin), float(mean <= -margin)
        return {"lower": mean, "upper": mean, "p_nonsup": above, "p_tost": max(above, below)}
    p_high = float(stats.t.cdf((mean - margin) / se, n - 1))    # H0: mean >= margin
    p_low = float(stats.t.sf((mean + margin) / se, n - 1))      # H0: mean <= -margin
    return {"lower": mean - crit * se, "upper": mean + crit * se, "p_nonsup": p_high, "p_tost": max(p_high, p_low)}


def paired_difference(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, power: float = 0.8,
                      n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0, margin: float | None = None) -> Paired:
    """Statistics of the paired differences ``a[i] - b[i]`` (seed ``i`` in both); with ``margin`` also
    the non-superiority and equivalence tests (:func:`margin_tests`)."""
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
    extra = margin_tests(d, margin, alpha) if margin is not None else {}
    return Paired(n=n, mean=mean, sd=sd, t_low=t_low, t_high=t_high, boot_low=low, boot_high=high,
                  t_p=t_p, wilcoxon_p=wilcoxon_p, mde=minimum_detectable_effect(sd, n, alpha, power), **extra)
