"""Classification metrics over scores: zero-shot class weights from prompt features, top-1/top-5
and balanced accuracy, the confusion matrix. Accuracies are percentages, as in the papers' tables."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from rsdix.errors import DataError, require_finite


def zero_shot_weights(text_features: torch.Tensor) -> torch.Tensor:
    """Class embeddings from ``(classes, templates, dim)`` normalised prompt features:
    the mean over templates, renormalised -> ``(classes, dim)``."""
    if text_features.ndim != 3:
        raise ValueError(f"expected (classes, templates, dim), got shape {tuple(text_features.shape)}")
    text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)
    return torch.nn.functional.normalize(text_features.mean(dim=1), dim=-1)


def classification_metrics(scores: torch.Tensor | np.ndarray, labels: Sequence[int],
                           n_classes: int | None = None, task: str = "classification") -> dict[str, float]:
    """top1, top5 (only with at least 5 classes) and balanced accuracy (mean per-class recall),
    in percent. ``scores`` is ``(n, classes)``; ties resolve to the lower class index. A score row
    with NaN or +inf is an error naming ``task`` (-inf is allowed: "never this class")."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    require_finite(scores, task, "score rows", allow_neg_inf=True)
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels_t) == 0:
        raise DataError("labels", "no samples to score")
    n_classes = n_classes or scores.shape[1]
    pred = scores.argmax(dim=1)
    out = {"top1": 100.0 * float((pred == labels_t).float().mean())}
    if n_classes >= 5:
        top5 = scores.topk(5, dim=1).indices
        out["top5"] = 100.0 * float((top5 == labels_t[:, None]).any(dim=1).float().mean())
    # balanced accuracy: the mean recall over the classes present (sklearn's balanced_accuracy_score,
    # without its warning when a prediction names a class absent from a subsample)
    truth, guess = labels_t.numpy(), pred.numpy()
    out["balanced_acc"] = 100.0 * float(np.mean([(guess[truth == c] == c).mean() for c in np.unique(truth)]))
    return out


def confusion(scores, labels: Sequence[int], n_classes: int) -> np.ndarray:
    """Confusion matrix ``(true, predicted)`` counts."""
    require_finite(scores, "confusion", "score rows", allow_neg_inf=True)
    pred = torch.as_tensor(scores).argmax(dim=1).numpy()
    return confusion_matrix(np.asarray(labels), pred, labels=list(range(n_classes)))
