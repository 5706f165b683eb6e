"""Classification metrics and zero-shot class weights on hand-computed cases."""
from __future__ import annotations

import pytest
import torch

from evaluation_fixtures import unit
from rsdix.errors import DataError
from rsdix.evaluation.accuracy import classification_metrics, confusion, zero_shot_weights


def test_zero_shot_weights_average_templates_then_renormalise():
    feats = torch.stack([unit([1, 0], [0, 1]), unit([1, 1], [1, 1])])  # 2 classes x 2 templates
    w = zero_shot_weights(feats)
    assert torch.allclose(w[0], unit([1, 1])[0])
    assert torch.allclose(w.norm(dim=1), torch.ones(2))


def test_classification_metrics_known_answers():
    # 6 samples, 5 classes; scores chosen so predictions are 0,1,1,3,4,0
    labels = [0, 1, 2, 3, 4, 4]
    scores = torch.tensor([[9, 1, 0, 0, 0], [0, 9, 1, 0, 0], [0, 9, 8, 0, 0],
                           [0, 0, 0, 9, 1], [0, 0, 0, 1, 9], [9, 0, 0, 0, 8]], dtype=torch.float32)
    m = classification_metrics(scores, labels)
    assert m["top1"] == pytest.approx(100 * 4 / 6)
    assert m["top5"] == 100.0
    # per-class recall: 1, 1, 0, 1, 0.5 -> mean 0.7
    assert m["balanced_acc"] == pytest.approx(70.0)
    assert "top5" not in classification_metrics(scores[:, :3], [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_score_rows_are_refused_naming_task_and_count(bad):
    scores = torch.eye(4)[[0, 1, 2, 3, 0, 1]]
    scores[2, 1] = bad
    scores[4, 0] = bad
    with pytest.raises(DataError, match=r"^zero-shot toy: 2 of 6 score rows are NaN or \+inf: rows 2, 4$"):
        classification_metrics(scores, [0, 1, 2, 3, 0, 1], task="zero-shot toy")
    with pytest.raises(DataError, match="confusion: 2 of 6 score rows"):
        confusion(scores, [0, 1, 2, 3, 0, 1], 4)


def test_minus_inf_scores_mean_never_this_class():
    """-inf is the probes' score for a class absent from training: allowed, never predicted."""
    scores = torch.tensor([[0.1, -float("inf")], [-float("inf"), 0.3]])
    assert classification_metrics(scores, [0, 1])["top1"] == 100.0


def test_balanced_accuracy_equals_sklearns_and_warns_nothing_when_a_prediction_names_an_absent_class():
    """Issue 31: sklearn's warning "y_pred contains classes not in y_true" leaked into notebook 05 on
    every subsampled set; the value is the same mean recall over the classes present."""
    import warnings
    import torch
    from sklearn.metrics import balanced_accuracy_score
    from rsdix.evaluation.accuracy import classification_metrics
    labels = [0, 0, 1, 1, 1, 2]
    scores = torch.zeros(6, 5)
    for i, p in enumerate([0, 3, 1, 1, 4, 2]):   # classes 3 and 4 predicted, never true
        scores[i, p] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = classification_metrics(scores, labels, 5)["balanced_acc"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = 100 * balanced_accuracy_score(labels, [0, 3, 1, 1, 4, 2])
    assert got == pytest.approx(want) == pytest.approx(100 * (0.5 + 2 / 3 + 1) / 3) and caught == []
