"""Separation: AUC against sklearn and by hand, directions of separation, retention and the paired
test on a toy where the answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from metric_study_toys import toy_scored
from sklearn.metrics import roc_auc_score

from rsdix.studies.caption_metrics.separation import ANY_EDIT, auc, auc_ci, normalised_retention, separation_auc
from rsdix.studies.caption_metrics.significance import paired_preserved_vs_changed


def test_auc_hand_computed_and_against_sklearn():
    assert auc(np.array([3., 4, 5]), np.array([1., 2, 3])) == pytest.approx(8.5 / 9)
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.5, 1, 80).round(1), rng.normal(0, 1, 120).round(1)
    expected = roc_auc_score(np.r_[np.ones(80), np.zeros(120)], np.r_[pos, neg])
    assert auc(pos, neg) == pytest.approx(expected)
    value, lo, hi = auc_ci(pos, neg, n_resamples=300, seed=1)
    assert lo < value < hi and (value, lo, hi) == auc_ci(pos, neg, n_resamples=300, seed=1)


def test_separation_retention_and_paired_directions():
    scored = toy_scored()
    sep = separation_auc(scored, metrics=("A", "B"), preserved="synonym", changed=("swap-class", "unrelated"),
                            n_resamples=200)
    assert set(sep.changed) == {"swap-class", "unrelated", ANY_EDIT}
    a = sep[(sep.metric == "A") & (sep.changed == ANY_EDIT)].iloc[0]
    b = sep[(sep.metric == "B") & (sep.changed == ANY_EDIT)].iloc[0]
    assert a.n_changed == 30  # 'any edit' pools the minimal edits, not the unrelated captions
    assert a.auc == 1.0 and b.auc < 0.01  # A ranks the paraphrase above the edits, B the reverse
    ret = normalised_retention(scored, metrics=("A",)).set_index("perturbation")["retention"]
    assert ret["identity"] == pytest.approx(1.0) and ret["unrelated"] == pytest.approx(0.0)
    assert 0.7 < ret["synonym"] < 0.8
    paired = paired_preserved_vs_changed(scored, metrics=("A", "B"), preserved="synonym", changed=("swap-class",))
    assert paired.set_index("metric").loc["A", "rank_biserial"] == 1.0
    assert paired.set_index("metric").loc["B", "p"] > 0.99



def test_non_finite_scores_are_refused_naming_auc_and_count():
    from rsdix.errors import DataError
    pos, neg = np.array([0.9, np.nan, 0.7]), np.array([0.1, 0.2, -np.inf, np.nan])
    with pytest.raises(DataError, match=r"AUC preserved scores: 1 of 3 scores are NaN or infinite: rows 1"):
        auc(pos, neg)
    with pytest.raises(DataError, match=r"AUC changed scores: 2 of 4 scores are NaN or infinite: rows 2, 3"):
        auc_ci(pos[[0, 2]], neg)
