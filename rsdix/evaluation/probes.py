"""Probes on frozen image features: weighted k-NN, the logistic-regression linear probe (C chosen
on a validation split), few-shot probes (k images per class, seeded draws) and the seeded
stratified train/test split for sets without an official one."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from rsdix.errors import DataError, require_finite
from rsdix.evaluation.accuracy import classification_metrics
from rsdix.log import get_logger, warnings_to_log

log = get_logger(__name__)


def knn_classify(train_x: torch.Tensor, train_y: Sequence[int], test_x: torch.Tensor, k: int = 20,
                 temperature: float = 0.07, n_classes: int | None = None,
                 chunk_size: int = 4096) -> torch.Tensor:
    """Weighted k-NN class scores ``(n_test, classes)``: each of the k nearest training features
    (cosine) votes for its class with weight ``exp(sim / temperature)``."""
    _check_features("k-NN", train_x, test_x)
    train_x = torch.nn.functional.normalize(torch.as_tensor(train_x, dtype=torch.float32), dim=-1)
    test_x = torch.nn.functional.normalize(torch.as_tensor(test_x, dtype=torch.float32), dim=-1)
    train_y = torch.as_tensor(list(train_y), dtype=torch.long)
    n_classes = n_classes or int(train_y.max()) + 1
    k = min(k, len(train_x))
    out = []
    for start in range(0, len(test_x), chunk_size):
        sims = test_x[start:start + chunk_size] @ train_x.T
        top, idx = sims.topk(k, dim=1)
        weights = (top / temperature).exp()
        scores = torch.zeros(len(top), n_classes)
        scores.scatter_add_(1, train_y[idx], weights)
        out.append(scores)
    return torch.cat(out)


def _check_features(probe: str, train_x, test_x) -> None:
    """NaN/inf features give no accuracy: an error naming the probe, the side and the rows."""
    require_finite(train_x, f"{probe} train features", "feature rows")
    require_finite(test_x, f"{probe} test features", "feature rows")


def fit_logistic(train_x, train_y, C: float, seed: int = 0, max_iter: int = 1000):
    """Multinomial logistic regression (L-BFGS) on the L2-normalised features as they are."""
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return clf.fit(np.asarray(train_x), np.asarray(train_y))


def linear_probe(train_x, train_y, test_x, test_y, Cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
                 val_fraction: float = 0.2, seed: int = 0, n_classes: int | None = None) -> dict[str, float]:
    """Logistic regression on frozen features; C chosen by accuracy on a stratified validation
    split of the training set, then refit on the whole training set. Returns metrics + ``C``."""
    _check_features("linear probe", train_x, test_x)
    with warnings_to_log(log, "the linear probe"):   # sklearn's ConvergenceWarning: one log line, not one per fit
        return _linear_probe(train_x, train_y, test_x, test_y, Cs, val_fraction, seed, n_classes)


def _linear_probe(train_x, train_y, test_x, test_y, Cs, val_fraction, seed, n_classes) -> dict[str, float]:
    train_x, test_x = np.asarray(train_x, dtype=np.float32), np.asarray(test_x, dtype=np.float32)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n_classes = n_classes or int(max(train_y.max(), test_y.max())) + 1
    n_present = len(np.unique(train_y))
    n_val = max(int(round(val_fraction * len(train_y))), n_present)
    can_validate = np.bincount(train_y).max() >= 2 and np.unique(train_y, return_counts=True)[1].min() >= 2 \
        and len(train_y) - n_val >= n_present
    if len(Cs) > 1 and can_validate:
        tr_x, va_x, tr_y, va_y = train_test_split(train_x, train_y, test_size=n_val,
                                                  random_state=seed, stratify=train_y)
        val_acc = [float((fit_logistic(tr_x, tr_y, C, seed).predict(va_x) == va_y).mean()) for C in Cs]
        best_C = float(Cs[int(np.argmax(val_acc))])
    else:  # one C given, or too few images per class to hold some out: the middle of the grid
        best_C = float(sorted(Cs)[len(Cs) // 2])
    clf = fit_logistic(train_x, train_y, best_C, seed)
    out = classification_metrics(_full_scores(clf, test_x, n_classes), test_y, n_classes)
    out["C"] = best_C
    return out


def _full_scores(clf, x, n_classes: int) -> np.ndarray:
    """Decision scores with a column for every class (classes absent from training get -inf)."""
    scores = np.full((len(x), n_classes), -np.inf, dtype=np.float64)
    dec = clf.decision_function(x)
    if dec.ndim == 1:  # binary
        dec = np.stack([-dec, dec], axis=1)
    scores[:, clf.classes_] = dec
    return scores


def sample_shots(labels: Sequence[int], shots: int, seed: int | Sequence[int]) -> np.ndarray:
    """Indices of ``shots`` examples per class, seeded (``seed`` may be a sequence of ints, which
    numpy mixes into one independent stream); an error if a class has fewer."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < shots:
            raise DataError(f"class {c}", f"only {len(pool)} training images for {shots}-shot sampling")
        picked.append(rng.choice(pool, size=shots, replace=False))
    return np.sort(np.concatenate(picked))


def few_shot(train_x, train_y, test_x, test_y, shots: Sequence[int] = (1, 2, 4, 8, 16), draws: int = 5,
             seed: int = 0, C: float = 10.0, n_classes: int | None = None) -> pd.DataFrame:
    """Linear probe on k images per class, ``draws`` random draws per k: one row per (shots, draw)
    with top1 and balanced accuracy. C is fixed (there is no validation data at k shots)."""
    _check_features("few-shot probe", train_x, test_x)
    train_x, train_y = np.asarray(train_x, dtype=np.float32), np.asarray(train_y)
    n_classes = n_classes or int(max(train_y.max(), np.max(test_y))) + 1
    rows = []
    with warnings_to_log(log, "the few-shot probe"):
        for k in shots:
            for draw in range(draws):
                idx = sample_shots(train_y, k, seed=[seed, draw, k])  # independent streams, no collisions
                clf = fit_logistic(train_x[idx], train_y[idx], C, seed)
                m = classification_metrics(_full_scores(clf, np.asarray(test_x), n_classes), test_y, n_classes)
                rows.append({"shots": k, "draw": draw, **m})
    return pd.DataFrame(rows)


def train_test_split_indices(labels: Sequence[int], train_fraction: float = 0.6, seed: int = 0):
    """A fixed, seeded, stratified split (for sets without an official one, e.g. WHU-RS19)."""
    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, train_size=train_fraction, random_state=seed, stratify=np.asarray(labels))
    return np.sort(tr), np.sort(te)
