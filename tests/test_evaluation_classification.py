"""Classification metrics and zero-shot class weights on hand-computed cases."""
from __future__ import annotations

import pytest
import torch

from evaluation_fixtures import unit
from rsdix.evaluation.classification import classification_metrics, zero_shot_weights


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
