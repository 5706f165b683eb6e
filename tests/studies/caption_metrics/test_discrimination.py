"""Discrimination: per-query AUC and hit by hand, balanced reference sets, same-class distractors."""
from __future__ import annotations

import pandas as pd
import pytest
from metric_study_toys import toy_caption_set

from rsdix.errors import DataError
from rsdix.studies.caption_metrics.caption_sets import CaptionSet
from rsdix.studies.caption_metrics.discrimination import discrimination_queries, mean_ci, per_query_discrimination, study_queries


def test_per_query_discrimination_hand_computed():
    rows = []
    for q, own, others in ((0, 0.5, [0.2, 0.5, 0.7]), (1, 0.7, [0.7, 0.1])):
        rows.append({"dataset": "t", "distractors": "random", "query": q, "target": "own", "M": own})
        rows += [{"dataset": "t", "distractors": "random", "query": q, "target": "other", "M": o} for o in others]
    pq = per_query_discrimination(pd.DataFrame(rows), metrics=("M",)).set_index("query")
    assert pq.loc[0, "auc"] == pytest.approx(0.5) and pq.loc[0, "hit"] == 0.0
    assert pq.loc[1, "auc"] == pytest.approx(0.75) and pq.loc[1, "hit"] == 0.5
    value, lo, hi = mean_ci(pq["auc"], n_resamples=100)
    assert value == pytest.approx(0.625) and lo <= value <= hi


def test_discrimination_queries_balance_reference_sets():
    cs = toy_caption_set()
    q = discrimination_queries(cs, None, k=2, seed=0)
    own = q[q.target == "own"]
    assert (own["query"] == own["target_image"]).all()
    counts = q.groupby("target_image").size()
    assert (counts == 3).all()  # every reference set used k + 1 times: CIDEr IDF is the image set's
    for row in q[q.target == "own"].itertuples():
        assert row.candidate not in row.references and row.candidate in cs.captions[row.query]
    same = discrimination_queries(cs, None, k=1, seed=0, distractors="same-class")
    other = same[same.target == "other"]
    assert (other["class"].to_numpy() == [cs.classes[j] for j in other.target_image]).all()
    with pytest.raises(DataError, match="same-class distractors need image classes"):
        discrimination_queries(CaptionSet("x", ["1", "2"], [["a b", "c d"]] * 2, [None, None]),
                                  None, k=1, distractors="same-class")



def test_study_queries_skip_same_class_without_classes(caplog):
    caplog.set_level("INFO", logger="rsdix")
    cs = toy_caption_set()
    no_classes = CaptionSet("plain", cs.filenames, cs.captions, [None] * len(cs))
    q = study_queries([cs, no_classes], None, k=1, seed=0)
    assert set(zip(q.dataset, q.distractors)) == {("toy", "random"), ("toy", "same-class"), ("plain", "random")}
    pd.testing.assert_frame_equal(q[q.dataset == "toy"].reset_index(drop=True), pd.concat(
        [discrimination_queries(cs, None, k=1, seed=0, distractors=m) for m in ("random", "same-class")],
        ignore_index=True), check_dtype=False)
    assert "plain: no classes, same-class distractors skipped" in caplog.text


def test_mean_ci_refuses_non_finite_values_naming_the_count():
    with pytest.raises(DataError, match=r"bootstrap interval: 2 of 4 values are NaN or infinite: rows 1, 3"):
        mean_ci([0.5, float("nan"), 0.7, float("inf")])


def test_sbert_against_each_metric_is_paired_by_query():
    """Eight queries: S-BERT's per-query AUC 1 (seven times) and 0.5 against A's 0.5: mean 7 * 0.5 / 8,
    CI above 0; against B's equal values: 0, CI [0, 0] includes 0."""
    import pandas as pd

    from rsdix.studies.caption_metrics.discrimination import discrimination_vs_reference

    rows = [{"dataset": "d", "distractors": "same-class", "query": q, "metric": m, "auc": v}
            for q, (s, a) in enumerate([(1.0, 0.5)] * 7 + [(0.5, 0.5)])
            for m, v in (("SBERT-sim", s), ("A", a), ("B", s))]
    table = discrimination_vs_reference(pd.DataFrame(rows), n_resamples=500).set_index("metric")
    assert table.loc["A", "sbert_minus_metric"] == pytest.approx(3.5 / 8) and table.loc["A", "reference_ahead"] == "yes"
    assert table.loc["B", "sbert_minus_metric"] == 0.0 and table.loc["B", "reference_ahead"] == "no"
    assert table.loc["A", "n_queries"] == 8
