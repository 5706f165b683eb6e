"""Counting: which captions hold a count, their ten variants, counting accuracy by hand."""
from __future__ import annotations

import pytest
import torch

from evaluation_fixtures import unit
from rsdix.errors import DataError
from rsdix.evaluation.counting import count_distribution, count_variants, counting_accuracy, find_counts


def test_count_variants_constructed_cases():
    value, variants = count_variants("There are two airplanes in the airport .")
    assert value == 2 and len(variants) == 10
    assert variants[0] == "There are one airplanes in the airport ."
    assert variants[9] == "There are ten airplanes in the airport ."
    assert count_variants("Four cars are parked .")[1][6] == "Seven cars are parked ."
    assert count_variants("There are 3 tanks .") == (3, [f"There are {k} tanks ." for k in range(1, 11)])
    assert count_variants("One ship is in the harbour .")[0] == 1
    # not counts: pronoun "one", "one of", two counts, none, out of range, ordinal-like digits
    assert count_variants("A big airplane and a small one are in the airport .") is None
    assert count_variants("One of the roads is wide .") is None
    assert count_variants("There are two airplanes and two cars .") is None
    assert count_variants("Many buildings are dense .") is None
    assert count_variants("There are 12 tanks .") is None
    assert find_counts("the 2nd road and 3.5 km") == []
    assert count_variants("someone is near the tone .") is None
    assert count_distribution(["two cars .", "Two planes .", "one ship is here", "a small one"]) == {1: 1, 2: 2}


def test_counting_accuracy_by_hand():
    img = unit([1, 0], [0, 1])
    variants = torch.zeros(2, 10, 2)
    variants[0, 2] = torch.tensor([1.0, 0])     # image 0: count 3 ranks first (true: 3)
    variants[1, 0] = torch.tensor([0, 1.0])     # image 1: count 1 first, count 5 second (true: 5)
    variants[1, 4] = torch.tensor([0, 0.5])
    m = counting_accuracy(img, variants, [3, 5])
    assert m["top1"] == 50.0 and m["top3"] == 100.0
    assert m["mean_abs_error"] == pytest.approx((0 + 4) / 2)


def test_non_finite_features_are_refused_naming_counting():
    img = torch.eye(3)
    var = torch.eye(10, 3).expand(3, 10, 3).clone()
    img[1, 0] = float("nan")
    with pytest.raises(DataError, match=r"counting image features: 1 of 3 feature rows are NaN or infinite: rows 1"):
        counting_accuracy(img, var, [1, 2, 3])
    img[1, 0] = 0.0
    var[2, 4, 1] = float("inf")
    with pytest.raises(DataError, match=r"counting caption features: 1 of 3 feature rows .*rows 2"):
        counting_accuracy(img, var, [1, 2, 3])
