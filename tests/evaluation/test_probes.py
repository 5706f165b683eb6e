"""Probes on frozen features: weighted k-NN by hand, the linear probe, few-shot sampling."""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest

from evaluation_fixtures import unit
from rsdix.errors import DataError
from rsdix.evaluation import probes
from rsdix.evaluation.probes import few_shot, knn_classify, linear_probe, sample_shots


def test_knn_weighted_vote_by_hand():
    train = unit([1, 0], [0.9, 0.1], [0, 1])
    labels = [0, 0, 1]
    test = unit([0.2, 1])
    scores = knn_classify(train, labels, test, k=2, temperature=1.0, n_classes=2)
    s = (unit([0.2, 1]) @ train.T)[0]
    # the two nearest are train 2 (class 1) and train 1 (class 0)
    assert scores[0, 1].item() == pytest.approx(math.exp(s[2].item()))
    assert scores[0, 0].item() == pytest.approx(math.exp(s[1].item()))
    # a small temperature sharpens; k larger than the training set is clipped
    assert knn_classify(train, labels, test, k=50, temperature=0.07).argmax().item() == 1


def _blobs(n_per_class=20, n_classes=4, dim=8, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    x = np.concatenate([centres[c] + noise * rng.normal(size=(n_per_class, dim)) for c in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y


def test_linear_probe_separable_and_chance():
    x, y = _blobs()
    xt, yt = _blobs(seed=0)
    m = linear_probe(x, y, xt, yt, Cs=[0.01, 1.0])
    assert m["top1"] == 100.0 and m["C"] in (0.01, 1.0)
    # labels independent of features: accuracy near chance (4 classes -> 25%)
    rng = np.random.default_rng(1)
    xr = rng.normal(size=(400, 8)).astype(np.float32)
    m = linear_probe(xr[:200], rng.integers(0, 4, 200), xr[200:], rng.integers(0, 4, 200))
    assert m["top1"] < 45


def test_few_shot_sampling_and_rows():
    x, y = _blobs(n_per_class=10)
    idx = sample_shots(y, 3, seed=0)
    assert np.bincount(y[idx]).tolist() == [3, 3, 3, 3]
    assert not np.array_equal(idx, sample_shots(y, 3, seed=1))
    table = few_shot(x, y, x, y, shots=(1, 4), draws=3, seed=0)
    assert len(table) == 6 and set(table["shots"]) == {1, 4}
    assert table["top1"].between(0, 100).all()
    with pytest.raises(DataError, match="only 10 training images"):
        sample_shots(y, 16, seed=0)


def test_few_shot_draws_do_not_collide_across_seeds():
    """seed 0 draw 10 and seed 1 draw 0 once shared a stream (seed*1000 + draw*100 + k)."""
    labels = np.repeat(np.arange(3), 50)
    a = sample_shots(labels, 4, seed=[0, 10, 4])
    b = sample_shots(labels, 4, seed=[1, 0, 4])
    assert not np.array_equal(a, b)
    assert np.array_equal(a, sample_shots(labels, 4, seed=[0, 10, 4]))


@pytest.mark.parametrize("probe", ["knn", "linear", "few_shot"])
@pytest.mark.parametrize("which", ["train", "test"])
def test_non_finite_features_are_refused_naming_the_probe(probe, which):
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(8, 3)), rng.normal(size=(4, 3))
    train_y, test_y = [0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1]
    bad = train_x if which == "train" else test_x
    bad[1, 2] = np.nan
    bad[3, 0] = np.inf
    n = len(bad)
    pattern = rf"{which} features: 2 of {n} feature rows are NaN or infinite: rows 1, 3"
    with pytest.raises(DataError, match=pattern):
        if probe == "knn":
            knn_classify(train_x, train_y, test_x, k=3)
        elif probe == "linear":
            linear_probe(train_x, train_y, test_x, test_y, Cs=(1.0,))
        else:
            few_shot(train_x, train_y, test_x, test_y, shots=(1,), draws=1)


def test_sklearn_warnings_go_to_the_log_once_per_kind(monkeypatch, caplog, capfd):
    """Before, each probe fit that stopped at max_iter printed a ConvergenceWarning into the
    notebook's output (one per C and per few-shot draw); now one log record per kind, counted."""
    fit = probes.fit_logistic
    monkeypatch.setattr(probes, "fit_logistic", lambda x, y, C, seed=0: fit(x, y, C, seed, max_iter=1))
    x, y = _blobs()
    rsdix_logger = logging.getLogger("rsdix")   # as a program with its own logging (caplog) sees it,
    monkeypatch.setattr(rsdix_logger, "handlers", [])   # whether or not an earlier test ran log.setup()
    monkeypatch.setattr(rsdix_logger, "propagate", True)
    caplog.set_level(logging.WARNING, logger="rsdix")
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        linear_probe(x[::2], y[::2], x[1::2], y[1::2], Cs=[1.0, 100.0])
        few_shot(x[::2], y[::2], x[1::2], y[1::2], shots=[1, 2], draws=2)
    assert leaked == []
    assert capfd.readouterr().err == ""   # nothing printed by warnings (the log's handler is caplog's here)
    records = [r.getMessage() for r in caplog.records if r.name == "rsdix.evaluation.probes"]
    assert len(records) == 2
    assert records[0].startswith("sklearn ConvergenceWarning x3 during the linear probe: lbfgs failed to converge")
    assert records[1].startswith("sklearn ConvergenceWarning x4 during the few-shot probe: ")
