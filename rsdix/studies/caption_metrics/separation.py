"""Does a metric tell a meaning-preserving paraphrase from a meaning-changing edit? AUC with
bootstrap 95% CIs (:func:`auc`, :func:`auc_ci`, :func:`separation_auc`), the scale-free
:func:`normalised_retention` and the per-condition means (:func:`condition_summary`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rsdix.errors import DataError, require_finite
from rsdix.studies.caption_metrics.perturb import CHANGING, EDITS, PRESERVING
from rsdix.studies.caption_metrics.scoring import METRICS, long_scores

ANY_EDIT = "any edit"  # the minimal meaning-changing edits pooled (EDITS: all but 'unrelated')


def auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(pos > neg) + 0.5 P(tie) = Mann-Whitney U / (n_pos n_neg) (scipy), vectorised over axis.
    NaN/inf scores are an error (they would give a silently wrong AUC)."""
    require_finite(np.moveaxis(np.asarray(pos, float), axis, 0), "AUC preserved scores", "scores")
    require_finite(np.moveaxis(np.asarray(neg, float), axis, 0), "AUC changed scores", "scores")
    u = sps.mannwhitneyu(pos, neg, axis=axis, method="asymptotic", use_continuity=False).statistic
    return u / (np.shape(pos)[axis] * np.shape(neg)[axis])


def auc_ci(pos, neg, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
           method: str = "percentile") -> tuple[float, float, float]:
    """AUC with a bootstrap CI (scipy.stats.bootstrap, the two groups resampled independently)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    value = float(auc(pos, neg))  # checks both groups are finite
    if len(pos) < 2 or len(neg) < 2:
        return value, np.nan, np.nan
    res = sps.bootstrap((pos, neg), lambda a, b, axis=-1: auc(a, b, axis=axis), n_resamples=n_resamples,
                        confidence_level=confidence, method=method, vectorized=True, paired=False,
                        random_state=np.random.default_rng(seed), batch=max(1, 2_000_000 // (len(pos) * 8 + len(neg) * 8)))
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def separation_auc(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                   preserved: str | Sequence[str] = PRESERVING, changed: Sequence[str] = CHANGING,
                   n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUC of each metric for telling a meaning-preserving paraphrase from each meaning-changing
    edit, and from the minimal edits pooled (``changed == 'any edit'``: all but ``unrelated``), with
    bootstrap 95% CIs. 1 = always scores the paraphrase higher, 0.5 = blind to meaning, < 0.5 =
    prefers the meaning-changing edit."""
    preserved = [preserved] if isinstance(preserved, str) else list(preserved)
    pooled = [k for k in changed if k in EDITS]
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        for pkind in preserved:
            pos_frame = group[group.perturbation == pkind]
            for kind in list(changed) + ([ANY_EDIT] if pooled else []):
                neg_frame = group[group.perturbation.isin(pooled if kind == ANY_EDIT else [kind])]
                if len(pos_frame) < 2 or len(neg_frame) < 2:
                    continue
                for m in metrics:
                    value, lo, hi = auc_ci(pos_frame[m], neg_frame[m], n_resamples=n_resamples, seed=seed)
                    rows.append({"dataset": dataset, "metric": m, "preserved": pkind, "changed": kind,
                                 "auc": value, "ci_low": lo, "ci_high": hi, "n_preserved": len(pos_frame),
                                 "n_changed": len(neg_frame)})
    return pd.DataFrame(rows)


def normalised_retention(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Scale-free score per condition: (mean score - mean unrelated) / (mean identity - mean
    unrelated). 1 = scores like the caption itself, 0 = like an unrelated caption."""
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        means = group.groupby("perturbation")[list(metrics)].mean()
        if not {"identity", "unrelated"} <= set(means.index):
            raise DataError(f"metric study {dataset}", "retention needs the identity and unrelated conditions")
        for kind in means.index:
            for m in metrics:
                top, bottom = means.loc["identity", m], means.loc["unrelated", m]
                rows.append({"dataset": dataset, "perturbation": kind, "metric": m, "mean": means.loc[kind, m],
                             "retention": (means.loc[kind, m] - bottom) / (top - bottom) if top != bottom else np.nan})
    return pd.DataFrame(rows)


def condition_summary(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean, std and n of each metric under each perturbation."""
    tidy = long_scores(scored, metrics)
    out = tidy.groupby(["dataset", "perturbation", "group", "metric"], sort=False)["score"].agg(
        ["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n"})
