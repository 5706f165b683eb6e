"""The WordNet swap check: the swapped word found, the labels joined, the share with its Wilson CI."""
from __future__ import annotations

import pandas as pd
import pytest

from rsdix.errors import DataError
from rsdix.intervals import wilson_interval
from rsdix.studies.caption_metrics.synonym_check import (check_sentences, check_swaps, read_labels, swap_sample,
                                                         swapped_word)


def test_the_swapped_word_is_found_with_article_fixes_and_multiword_synonyms():
    assert swapped_word("a part of a golf course", "a component part of a golf course") == ("part", "component part")
    assert swapped_word("there is an area near a lake", "there is a country near a lake") == ("area", "country")
    assert swapped_word("many plants near the road", "many industrial plant near the road") == (
        "plants", "industrial plant")
    with pytest.raises(DataError, match="no swap"):
        swapped_word("same", "same")


def test_the_share_of_synonyms_comes_from_the_labels_with_a_wilson_interval():
    pairs = pd.DataFrame({"dataset": ["d"] * 4 + ["e"], "filename": list("abcde"), "perturbation": "synonym-1",
                          "original": ["big road", "green tree", "an area", "small lake", "x y"],
                          "candidate": ["large road", "greenish tree", "a country", "little lake", "x z"]})
    sample = swap_sample(pairs, per_dataset=10, seed=0)
    labels = pd.DataFrame({"dataset": ["d"] * 4, "filename": list("abcd"), "word": ["big", "green", "area", "small"],
                           "replacement": ["large", "greenish", "country", "little"],
                           "synonym_in_context": ["yes", "no", "no", "yes"], "kind": ["", "hedge", "", ""]})
    table = check_swaps(sample, labels).set_index("dataset")
    assert table.loc["d", "share_%"] == 50.0 and table.loc["d", "share_with_hedges_%"] == 75.0
    assert (table.loc["d", "ci_low"], table.loc["d", "ci_high"]) == pytest.approx(wilson_interval(50.0, 4))
    assert table.loc["e", "labelled"] == 0 and table.loc["all", "sampled"] == 5 and table.loc["all", "labelled"] == 4
    text = " ".join(check_sentences(table.reset_index()))
    assert "2 of 4 sampled one-word swaps (50%" in text and "1 sampled swaps have no label" in text


def test_the_committed_labels_are_complete():
    labels = read_labels()
    assert len(labels) >= 100 and set(labels["synonym_in_context"]) == {"yes", "no"}
    assert (labels["reason"] != "").all() and set(labels["kind"]) <= {"", "hedge"}
