"""METEOR's penalty on controlled cases: one unmatched word costs METEOR about half its score
(BLEU-1 one word's share), a WordNet synonym almost nothing."""
from __future__ import annotations

import pytest

from rsdix.captioning.pycoco import java_available
from rsdix.studies.caption_metrics.fragmentation import changed_words, fragmentation_sentences, fragmentation_table


def test_changed_words_counts_new_words_not_order():
    assert changed_words("many buildings are near a river", "near a river are many buildings") == 0
    assert changed_words("many buildings are near a river", "many forests are near a river") == 1


@pytest.mark.java
@pytest.mark.skipif(not java_available(), reason="no Java runtime: METEOR 1.5 runs in Java")
def test_one_unmatched_word_halves_meteor_but_not_bleu_1():
    table = fragmentation_table(metrics=("BLEU-1", "METEOR", "ROUGE-L"))
    by_kind = table.drop_duplicates("kind").set_index("kind")
    swap = by_kind.loc["class swap, last word (river -> forest)"]
    assert swap["BLEU-1"] == pytest.approx(5 / 6, abs=1e-3)            # 5 of 6 words
    assert 0.35 < swap["METEOR"] < 0.55                                 # about half
    assert by_kind.loc["identity", "METEOR"] == pytest.approx(1.0, abs=1e-6)
    assert by_kind.loc["WordNet synonym (buildings -> edifices)", "METEOR"] > 0.9   # its synonym module
    one = table[(table.words_changed == 1) & ~table.kind.str.startswith("WordNet")]
    assert (one["METEOR / BLEU-1"] < 0.65).all()
    text = " ".join(fragmentation_sentences(table))
    assert f"BLEU-1 gives {one['BLEU-1'].min():.2f}" in text and "built into the metric" in text
