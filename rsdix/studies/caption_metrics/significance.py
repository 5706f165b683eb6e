"""RSDiX's test and the paired tests beside it: the one-sided t-test of an n-gram metric's mean
against S-BERT similarity's (:func:`rsdix_ttest`), Wilcoxon signed-rank tests with effect sizes
(:func:`wilcoxon_paired`, :func:`paired_metric_vs_reference`, :func:`paired_preserved_vs_changed`)
and the multiple-comparison corrections (:func:`correct`). Tests come from ``scipy.stats``."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rsdix.errors import DataError, require_finite
from rsdix.studies.caption_metrics.perturb import CHANGING, PRESERVING
from rsdix.studies.caption_metrics.scoring import METRICS, NGRAM_METRICS, REFERENCE_METRIC


def correct(frame: pd.DataFrame, by: Sequence[str], p_col: str = "p") -> pd.DataFrame:
    """Bonferroni and Benjamini-Hochberg (scipy) within each family given by ``by``."""
    frame = frame.copy()
    frame["p_bonferroni"] = np.nan
    frame["p_bh"] = np.nan
    for _, sub in frame.groupby(list(by)):
        idx = sub.index
        p = frame.loc[idx, p_col].to_numpy(dtype=float)
        frame.loc[idx, "p_bonferroni"] = np.minimum(1.0, p * len(p))
        frame.loc[idx, "p_bh"] = sps.false_discovery_control(p, method="bh")
    frame["family_size"] = frame.groupby(list(by))[p_col].transform("size")
    return frame


def rsdix_ttest(scored: pd.DataFrame, metrics: Sequence[str] = NGRAM_METRICS, perturbation: str = "synonym",
                reference: str = REFERENCE_METRIC, equal_var: bool = True) -> pd.DataFrame:
    """RSDiX's test: for each n-gram metric, a one-sided two-sample t-test (scipy ``ttest_ind``,
    ``alternative='less'``) that its mean over the paraphrase pairs is below S-BERT similarity's.
    Reported as RSDiX did: each metric's mean and std, t statistic and p-value."""
    rows = []
    for dataset, group in scored[scored.perturbation == perturbation].groupby("dataset", sort=False):
        ref = group[reference].to_numpy(float)
        for m in metrics:
            x = group[m].to_numpy(float)
            require_finite(np.stack([x, ref], axis=1), f"t-test {m} vs {reference} ({dataset}, {perturbation})",
                           "scores")
            res = sps.ttest_ind(x, ref, alternative="less", equal_var=equal_var)
            rows.append({"dataset": dataset, "metric": m, "n": len(x), "mean": x.mean(), "std": x.std(ddof=1),
                         "sbert_mean": ref.mean(), "sbert_std": ref.std(ddof=1), "t": res.statistic,
                         "p": res.pvalue, "test": f"ttest_ind({'Student' if equal_var else 'Welch'}, less)"})
    return correct(pd.DataFrame(rows), ["dataset"])


def _paired_effects(d: np.ndarray) -> dict:
    """Effect sizes of paired differences: matched-pairs rank-biserial r and Cohen's d_z."""
    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))
    total = ranks.sum()
    rbc = float((ranks[nz > 0].sum() - ranks[nz < 0].sum()) / total) if total else 0.0
    sd = d.std(ddof=1) if len(d) > 1 else np.nan
    return {"rank_biserial": rbc, "cohens_dz": float(d.mean() / sd) if sd and sd > 0 else np.nan}


def wilcoxon_paired(x: np.ndarray, y: np.ndarray, alternative: str = "two-sided",
                    where: str = "Wilcoxon signed-rank") -> dict:
    """scipy's Wilcoxon signed-rank test of x - y with effect sizes (zero differences dropped,
    as in scipy's default ``zero_method='wilcox'``). NaN/inf pairs are an error naming ``where``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape:
        raise DataError(where, f"{len(x)} scores paired with {len(y)}")
    require_finite(np.stack([x, y], axis=1), where, "pairs")
    d = x - y
    if np.all(d == 0):
        return {"n": len(d), "n_nonzero": 0, "median_diff": 0.0, "W": np.nan, "p": 1.0,
                **_paired_effects(d)}
    res = sps.wilcoxon(x, y, alternative=alternative)
    return {"n": len(d), "n_nonzero": int((d != 0).sum()), "median_diff": float(np.median(d)),
            "W": float(res.statistic), "p": float(res.pvalue), **_paired_effects(d)}


def paired_metric_vs_reference(scored: pd.DataFrame, metrics: Sequence[str] = NGRAM_METRICS,
                               perturbation: str = "synonym", reference: str = REFERENCE_METRIC) -> pd.DataFrame:
    """The paired version of RSDiX's test: Wilcoxon signed-rank (one-sided, metric < S-BERT) on
    the same paraphrase pairs, with effect sizes and correction across metrics per dataset."""
    rows = []
    for dataset, group in scored[scored.perturbation == perturbation].groupby("dataset", sort=False):
        for m in metrics:
            res = wilcoxon_paired(group[m], group[reference], alternative="less",
                                  where=f"Wilcoxon {m} vs {reference} ({dataset}, {perturbation})")
            rows.append({"dataset": dataset, "metric": m, "vs": reference, **res})
    return correct(pd.DataFrame(rows), ["dataset"])


def paired_preserved_vs_changed(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                                preserved: str | Sequence[str] = PRESERVING,
                                changed: Sequence[str] = CHANGING) -> pd.DataFrame:
    """Within each metric (no cross-scale comparison): for the same original caption, is the
    meaning-preserving paraphrase scored above the meaning-changing edit? One-sided Wilcoxon
    signed-rank (greater), rank-biserial r in [-1, 1] (1: paraphrase always higher), corrected
    across preserved kinds x edits x metrics per dataset."""
    preserved = [preserved] if isinstance(preserved, str) else list(preserved)
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        for pkind in preserved:
            pres = group[group.perturbation == pkind].set_index("image")
            for kind in changed:
                chg = group[group.perturbation == kind].set_index("image")
                both = pres.index.intersection(chg.index)
                if len(both) < 5:
                    continue
                for m in metrics:
                    res = wilcoxon_paired(pres.loc[both, m], chg.loc[both, m], alternative="greater",
                                          where=f"Wilcoxon {m} {pkind} vs {kind} ({dataset})")
                    rows.append({"dataset": dataset, "metric": m, "preserved": pkind, "changed": kind, **res})
    return correct(pd.DataFrame(rows), ["dataset"])
