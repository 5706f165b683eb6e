"""Caption tokenizers: trained tokenizers round-trip captions, token ids end with the end token."""
from __future__ import annotations

import pytest

from captioning_fixtures import CAPTIONS
from rsdix.captioning.tokenizers import load_tokenizer, pad_tokens, tokenize_captions
from rsdix.errors import ConfigError, DataError


@pytest.mark.parametrize("kind", ["words", "bpe"])
def test_trained_tokenizers_round_trip_captions(kind):
    tok = load_tokenizer(kind, CAPTIONS * 3, vocab_size=60)
    ids = tokenize_captions(CAPTIONS, tok)
    assert all(row[-1] == tok.eos_token_id for row in ids)
    assert [tok.decode(row[:-1], skip_special_tokens=True) for row in ids] == CAPTIONS
    with pytest.raises(ConfigError, match="train_captions"):
        load_tokenizer(kind)


def test_truncation_is_counted_and_padding_masks_the_tail():
    tok = load_tokenizer("words", CAPTIONS)
    with pytest.warns(UserWarning, match="1 of 2 captions truncated to 3 tokens"):
        ids = tokenize_captions([CAPTIONS[0], "a ."], tok, max_tokens=3)
    assert [len(row) for row in ids] == [3, 3] and ids[0][-1] == tok.eos_token_id
    ids, mask = pad_tokens([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_empty_caption_names_where_it_came_from():
    tok = load_tokenizer("words", CAPTIONS)
    with pytest.raises(DataError, match=r"caps\.json.*empty caption \(caption 1\)"):
        tokenize_captions(["a road .", "  "], tok, where="caps.json")
