"""pycocoevalcap's machinery: the PTB tokenizer in one Java call, the Java-free tokenizer."""
from __future__ import annotations

import pytest

from rsdix.captioning.pycoco import java_available, ptb_tokenize, tokenize_texts


@pytest.mark.java
@pytest.mark.skipif(not java_available(), reason="no Java runtime: pycocoevalcap's PTB tokenizer needs one "
                                                 "(apt-get install default-jre-headless)")
def test_ptb_tokenizer_one_call_lowercases_and_strips_punctuation():
    out = ptb_tokenize(["A plane, parked near the runway.", "Two planes!", "..."])
    assert out == ["a plane parked near the runway", "two planes", ""]


def test_simple_tokenizer_and_unknown_tokenizer():
    assert tokenize_texts(["A plane, parked!"], "simple") == ["a plane parked"]
    with pytest.raises(ValueError, match="unknown tokenizer 'nltk'"):
        tokenize_texts(["a"], "nltk")
