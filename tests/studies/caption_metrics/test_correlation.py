"""Correlation between metrics matches scipy's Spearman."""
from __future__ import annotations

import pytest
from metric_study_toys import toy_scored
from scipy import stats as sps

from rsdix.studies.caption_metrics.correlation import metric_correlation


def test_metric_correlation_matches_spearman():
    scored = toy_scored()
    corr = metric_correlation(scored, metrics=("A", "B"))
    data = scored[scored.perturbation != "identity"]
    rho = sps.spearmanr(data["A"], data["B"]).statistic
    got = corr[(corr.dataset == "all") & (corr.metric_a == "A") & (corr.metric_b == "B")].rho.iloc[0]
    assert got == pytest.approx(rho) and rho < -0.5

