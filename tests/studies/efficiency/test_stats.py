"""Paired statistics of the data-efficiency study against hand-computed cases and scipy."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rsdix import config
from rsdix.studies.efficiency.curves import plateau_step
from rsdix.studies.efficiency.analysis import interaction_table, paired_table, primary_family
from rsdix.studies.efficiency.report import answer_paragraph, family_sentences
from rsdix.intervals import bootstrap_mean
from rsdix.studies.efficiency.stats import (holm, margin_tests, minimum_detectable_effect, paired_difference,
                                            paired_power)
from rsdix.errors import DataError


def test_paired_difference_matches_a_hand_computed_case():
    # differences 1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.776445
    p = paired_difference([11, 12, 13, 14, 15], [10, 10, 10, 10, 10])
    half = 2.7764451 * math.sqrt(0.5)
    assert p.n == 5 and p.mean == pytest.approx(3.0) and p.sd == pytest.approx(math.sqrt(2.5))
    assert (p.t_low, p.t_high) == pytest.approx((3 - half, 3 + half), abs=1e-6)
    assert p.t_p == pytest.approx(2 * stats.t.sf(3 / math.sqrt(0.5), 4))      # t = 4.2426
    # exact signed-rank: all five differences positive, W- = 0: P = 2 / 2^5
    assert p.wilcoxon_p == pytest.approx(2 / 32)
    assert 1 <= p.boot_low <= 3 <= p.boot_high <= 5


def test_paired_interval_agrees_with_scipy_and_is_narrower_than_unpaired():
    rng = np.random.default_rng(1)
    base = rng.normal(30, 3, 8)                 # seeds differ a lot; arms differ little within a seed
    a, b = base + 0.8 + rng.normal(0, 0.3, 8), base + rng.normal(0, 0.3, 8)
    p = paired_difference(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (p.t_low, p.t_high) == pytest.approx((ci.low, ci.high))
    assert p.wilcoxon_p == pytest.approx(stats.wilcoxon(a - b).pvalue)
    unpaired = stats.ttest_ind(a, b).confidence_interval(0.95)
    assert p.t_high - p.t_low < (unpaired.high - unpaired.low) / 3


def test_minimum_detectable_effect_has_the_stated_power():
    for n in (3, 5, 10, 30):
        mde = minimum_detectable_effect(2.0, n)
        df, crit = n - 1, stats.t.ppf(0.975, n - 1)
        nc = mde / 2.0 * math.sqrt(n)           # peer: scipy's noncentral t where it is finite
        assert stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc) == pytest.approx(0.8, abs=1e-6)
    # for many pairs the normal approximation (z_.975 + z_.8) sd / sqrt(n) is close
    assert minimum_detectable_effect(1.0, 400) == pytest.approx((1.959964 + 0.841621) / 20, rel=0.01)
    assert minimum_detectable_effect(1.0, 2) > minimum_detectable_effect(1.0, 5) > 0
    assert paired_power(0.0, 1.0, 5) == pytest.approx(0.05, abs=1e-6)   # no effect: the test's size


def test_degenerate_and_bad_inputs():
    p = paired_difference([1, 2, 3], [1, 2, 3])
    assert p.mean == 0 and p.wilcoxon_p == 1.0 and p.t_p == 1.0 and p.mde == 0.0
    assert bootstrap_mean([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(DataError, match="seeds"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="NaN"):
        paired_difference([1, float("nan")], [1, 2])


def test_plateau_step_is_where_the_running_mean_reaches_the_best():
    steps = [10, 20, 30, 40, 50, 60]
    values = [5, 10, 15, 20, 20, 20]       # running means (centred, 3): 7.5 10 15 18.3 20 20
    assert plateau_step(steps, values, tolerance=0.0) == 50
    assert plateau_step(steps, values, tolerance=2.0) == 40


def _rows(values: dict) -> pd.DataFrame:
    rows = []
    for (arm, fraction, weights), seeds in values.items():
        for seed, v in enumerate(seeds):
            for dataset, task, metric, split in [("UCM", "retrieval", "mR", "test"),
                                                 ("WHU-RS19", "zero-shot", "top1", "all")]:
                rows.append({"model": f"{arm}_frac{fraction:g}", "dataset": dataset, "task": task,
                             "metric": metric, "split": split, "value": v, "seed": seed, "arm": arm,
                             "fraction": fraction, "weights": weights, "run": f"{arm}_frac{fraction:g}_s{seed}"})
    return pd.DataFrame(rows)


def test_the_answer_is_generated_from_the_paired_rows():
    runs = _rows({("infonce", 0.1, "student"): [10, 11, 12, 13, 14],
                  ("rsdix", 0.1, "student"): [11, 12, 13, 14, 15],      # +1 at every seed
                  ("rsdix", 0.1, "ema"): [11, 12, 13, 14, 16],
                  ("infonce", 1.0, "student"): [20, 21, 22, 23, 24],
                  ("rsdix", 1.0, "student"): [20, 21.5, 21.5, 23, 24]})  # mean 0
    runs["regime"] = "scratch"
    cfg = config.load("efficiency", {"grid": {"infonce": [0.1, 1.0], "rsdix": [0.1, 1.0]}, "steps": {0.1: 2, 1.0: 3},
                                     "primary": {"shares": [0.1, 1.0], "interaction": [0.1, 1.0], "margin": 1.0}})
    paired = paired_table(runs, cfg, n_boot=200)
    main = paired[(paired.a == "rsdix") & (paired.b == "infonce") & (paired.metric == "UCM test mR")]
    assert main.set_index("fraction")["mean"].to_dict() == pytest.approx({0.1: 1.0, 1.0: 0.0})
    assert list(main.family) == ["primary", "primary"]
    teacher = paired[paired.kind == "teacher vs student"]
    assert teacher["mean"].iloc[0] == pytest.approx(0.2)
    inter = interaction_table(runs, cfg, n_boot=200)
    assert inter["mean"].iloc[0] == pytest.approx(1.0)
    fam = primary_family(paired, inter)
    assert len(fam) == 3                                 # 10%, 100%, the interaction
    assert fam.holm_p.tolist() == pytest.approx(holm(fam.t_p.tolist()).tolist())
    text = " ".join(family_sentences(fam, cfg))
    assert "RSDiX-CLIP - InfoNCE in UCM test mR at 10%: +1.00 [+1.00, +1.00] (paired t 95% CI, n=5" in text
    assert "Holm-adjusted p=" in text and "Interaction: (RSDiX-CLIP - InfoNCE) at 10% minus at 100%" in text
    answer = answer_paragraph(fam, cfg, "scratch regime")
    assert "In the scratch regime, RSDiX-CLIP - InfoNCE in UCM test mR: 10% +1.00" in answer
    assert "Detected after Holm's correction: 10% (better, +1.00)" in answer


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03,
    0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06; back in order."""
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])         # capped at 1
    out = holm([0.01, float("nan"), 0.02])
    assert math.isnan(out[1]) and out[[0, 2]].tolist() == pytest.approx([0.02, 0.02])


def test_margin_tests_by_hand_and_against_scipy():
    """d = 0.1, 0.3, 0.2, 0.4, 0.0: mean 0.2, sd sqrt(0.025), se sqrt(0.005); margin 1: the one-sided t tests."""
    d = [0.1, 0.3, 0.2, 0.4, 0.0]
    out = margin_tests(d, 1.0)
    se = math.sqrt(0.025 / 5)
    assert out["p_nonsup"] == pytest.approx(stats.t.cdf((0.2 - 1) / se, 4))
    assert out["p_nonsup"] == pytest.approx(stats.ttest_1samp(d, 1.0, alternative="less").pvalue)
    low = stats.ttest_1samp(d, -1.0, alternative="greater").pvalue
    assert out["p_tost"] == pytest.approx(max(out["p_nonsup"], low))
    assert out["upper"] == pytest.approx(0.2 + stats.t.ppf(0.95, 4) * se)
    wide = margin_tests([-3, 4, -2, 5, 0], 1.0)              # an interval far wider than the margin
    assert wide["p_tost"] > 0.05 and wide["upper"] > 1
    p = paired_difference([1.2, 1.3], [1.0, 1.0], margin=1.0)
    assert p.p_nonsup == pytest.approx(margin_tests([0.2, 0.3], 1.0)["p_nonsup"])
