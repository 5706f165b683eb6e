"""Confidence intervals, one implementation each, used by every figure, table and study:

* :func:`wilson_interval`: a proportion measured on ``n`` items (an accuracy over the test images of
  one run); it stays inside ``[0, scale]``;
* :func:`t_interval`: the Student-t interval of a mean (seeds, paired differences);
* :func:`bootstrap_mean`: the percentile bootstrap of a mean; it never leaves
  ``[min(values), max(values)]``, so it respects any metric's range;
* :func:`accuracy_interval`: the interval a figure draws for an accuracy (Wilson for one run,
  the bootstrap over seeds for several).

Every function refuses NaN or infinite values with one :class:`~rsdix.errors.DataError` line.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from rsdix.errors import DataError, require_finite

BOOTSTRAP_RESAMPLES = 10000   # the one default of every bootstrap here
Z95 = 1.959964


def _finite(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise DataError(what, "no values")
    require_finite(arr, what, "values")
    return arr


def wilson_interval(p: float, n: int, z: float = Z95, scale: float = 100.0) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` (given on ``scale``: 100 for percent) measured on
    ``n`` items; inside ``[0, scale]`` for every ``p`` and ``n``."""
    if n is None or not n > 0:
        raise ValueError(f"Wilson interval needs a positive number of items, got {n!r}")
    q = float(p) / scale
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"Wilson interval: proportion {p} outside [0, {scale:g}]")
    denom = 1 + z * z / n
    centre = (q + z * z / (2 * n)) / denom
    half = z * np.sqrt(q * (1 - q) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half) * scale), float(min(1.0, centre + half) * scale)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval of the mean of ``values`` (n - 1 degrees of
    freedom); one value, or values all alike, give ``(v, v, v)``."""
    arr = _finite(values, "t interval")
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(1 - (1 - level) / 2, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return mean, mean - half, mean + half


def bootstrap_mean(values: Sequence[float], level: float = 0.95, n_boot: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement, seeded);
    one value, or values all alike, give ``(v, v)``."""
    arr = _finite(values, "bootstrap interval")
    if arr.size == 1 or np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(int(n_boot), arr.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def accuracy_interval(values: Sequence[float], n: int | None) -> tuple[float, float, str]:
    """95% interval of an accuracy in percent and what it is: for one value, Wilson over its ``n``
    test items (``"wilson"``; no interval, ``"none"``, without ``n``); for several seeds, the
    percentile bootstrap of their mean (``"bootstrap"``)."""
    values = [float(v) for v in values]
    if len(values) > 1:
        return (*bootstrap_mean(values), "bootstrap")
    if n is not None and n == n and n > 0:
        return (*wilson_interval(values[0], int(n)), "wilson")
    return values[0], values[0], "none"
