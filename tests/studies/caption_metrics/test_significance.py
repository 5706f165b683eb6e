"""RSDiX's t-test, the Wilcoxon test with its effect sizes and the p-value corrections agree with scipy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metric_study_toys import toy_scored
from scipy import stats as sps

from rsdix.errors import DataError
from rsdix.studies.caption_metrics.significance import correct, rsdix_ttest, wilcoxon_paired


def test_wilcoxon_and_effect_sizes_against_scipy():
    x = np.array([1.0, 2.0, 0.0, 4.0, 2.5, 3.0])
    y = np.array([0.0, 0.0, 3.0, 0.0, 2.5, 1.5])
    res = wilcoxon_paired(x, y, alternative="greater")
    ref = sps.wilcoxon(x, y, alternative="greater")
    assert res["p"] == pytest.approx(ref.pvalue) and res["W"] == pytest.approx(ref.statistic)
    # d = [1, 2, -3, 4, 0, 1.5]: zero dropped, ranks of |d| = [1, 3, 4, 5, 2]
    assert res["rank_biserial"] == pytest.approx((1 + 3 + 5 + 2 - 4) / 15)
    d = x - y
    assert res["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))


def test_ttest_and_corrections_against_scipy():
    scored = toy_scored()
    table = rsdix_ttest(scored, metrics=("A",), reference="B")
    syn = scored[scored.perturbation == "synonym"]
    ref = sps.ttest_ind(syn["A"], syn["B"], alternative="less")
    assert table.t.iloc[0] == pytest.approx(ref.statistic) and table.p.iloc[0] == pytest.approx(ref.pvalue)
    frame = pd.DataFrame({"dataset": ["a"] * 4 + ["b"], "p": [0.01, 0.04, 0.03, 0.5, 0.02]})
    out = correct(frame, ["dataset"])
    np.testing.assert_allclose(out.p_bh[:4], sps.false_discovery_control([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(out.p_bonferroni, [0.04, 0.16, 0.12, 1.0, 0.02])



def test_non_finite_scores_are_refused_naming_the_test_and_count():
    x = np.array([0.1, 0.2, np.nan, 0.4, 0.5, 0.6])
    y = np.array([0.2, 0.1, 0.3, np.inf, 0.4, 0.2])
    with pytest.raises(DataError, match=r"Wilcoxon signed-rank: 2 of 6 pairs are NaN or infinite: rows 2, 3"):
        wilcoxon_paired(x, y)
    scored = toy_scored()
    scored.loc[scored.index[scored.perturbation == "synonym"][:2], "A"] = np.nan
    with pytest.raises(DataError, match=r"t-test A vs B \(toy, synonym\): 2 of 30 scores are NaN or infinite"):
        rsdix_ttest(scored, metrics=("A",), reference="B")
