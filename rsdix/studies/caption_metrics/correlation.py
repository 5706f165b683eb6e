"""Agreement between caption metrics: Spearman correlation across caption pairs
(:func:`metric_correlation`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rsdix.studies.caption_metrics.scoring import METRICS


def metric_correlation(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                       exclude: Sequence[str] = ("identity",)) -> pd.DataFrame:
    """Spearman correlation (scipy) between metrics across all non-identity caption pairs,
    per dataset and pooled (``dataset='all'``): tidy (dataset, metric_a, metric_b, rho, n)."""
    data = scored[~scored.perturbation.isin(exclude)]
    rows = []
    for dataset, group in [("all", data)] + list(data.groupby("dataset", sort=False)):
        rho = sps.spearmanr(group[list(metrics)].to_numpy(float)).statistic
        if np.ndim(rho) == 0:  # scipy returns a scalar for two variables
            rho = np.array([[1.0, rho], [rho, 1.0]])
        for a, ma in enumerate(metrics):
            for b, mb in enumerate(metrics):
                rows.append({"dataset": dataset, "metric_a": ma, "metric_b": mb, "rho": float(rho[a, b]),
                             "n": len(group)})
    return pd.DataFrame(rows)
