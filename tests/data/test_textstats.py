"""Caption tokenizer and corpus statistics: hand-computed cases."""
from __future__ import annotations

import pytest

from rsdix.data.textstats import caption_stats, tokenize


def test_tokenize_english_as_karpathy_tokens():
    assert tokenize("Many buildings, and the river's bank; 3 planes.") == \
        ["many", "buildings", "and", "the", "river's", "bank", "3", "planes"]


def test_tokenize_keeps_accented_and_non_latin_words():
    """Multilingual captions (RS-M-CLIP translations) must not lose letters outside a-z."""
    assert tokenize("Un café près de la rivière") == ["un", "café", "près", "de", "la", "rivière"]
    assert tokenize("Straße über Brücke") == ["straße", "über", "brücke"]
    assert tokenize("Дорога и река") == ["дорога", "и", "река"]


def test_caption_stats_hand_computed():
    stats = caption_stats([["a red roof", "a roof"], ["a beach"]], "toy")
    assert stats["images"] == 2 and stats["captions"] == 3 and stats["vocabulary"] == 4
    assert stats["tokens_per_caption_mean"] == pytest.approx(7 / 3)
    assert stats["distinct_1"] == pytest.approx(4 / 7)              # a, red, roof, beach of 7 tokens
    assert stats["distinct_words_per_image"] == pytest.approx((3 + 2) / 2)
