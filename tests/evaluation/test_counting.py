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


def test_a_model_that_ignores_the_image_scores_the_share_of_the_count_it_answers():
    """The counting explanation's two numbers by hand: five captions with true counts 2, 2, 2, 1, 4;
    every image leans towards the "four" variant (the images differ, the answer does not), so top-1 =
    1/5 (the share of 4 among the true counts), the modal answer covers 100% and the mean image
    scores the same top-1."""
    from rsdix.evaluation.counting import count_predictions

    dim = 11
    variants = torch.zeros(5, 10, dim)
    for k in range(10):
        variants[:, k, k] = 1.0           # number word k + 1: its own direction
    variants[:, :, 10] = 1.0              # the caption's shared part
    images = torch.zeros(5, dim)
    images[:, 10] = 1.0
    images[:, 3] = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9])   # all lean to "four", by different amounts
    images[:, 1] = torch.tensor([0.4, 0.0, 0.1, 0.0, 0.2])   # some towards "two" too, less
    assert count_predictions(images, variants).tolist() == [4, 4, 4, 4, 4]
    m = counting_accuracy(images, variants, [2, 2, 2, 1, 4])
    assert (m["top1"], m["modal_share"], m["mean_image_top1"]) == pytest.approx((20.0, 100.0, 20.0))
    images[0, 1] = 0.95                   # one image now answers "two": it is right, the mean image is not
    m = counting_accuracy(images, variants, [2, 2, 2, 1, 4])
    assert (m["top1"], m["modal_share"], m["mean_image_top1"]) == pytest.approx((40.0, 80.0, 20.0))

