"""Captioning training data: cached image embeddings, training items and their collate."""
from __future__ import annotations

import pytest
import torch

from captioning_fixtures import CAPTIONS, tiny_captioner
from rsdix.captioning.caption_data import CaptionCollate, CaptionTrainSet, image_embeddings
from rsdix.captioning.tokenizers import load_tokenizer
from rsdix.data.captions import CaptionRecord, read_karpathy, select_split
from rsdix.errors import ConfigError, DataError


def test_items_per_pair_or_per_image_and_their_collate():
    records = [CaptionRecord("1.jpg", "train", CAPTIONS[:2]), CaptionRecord("2.jpg", "train", CAPTIONS[2:])]
    cap = tiny_captioner()
    pairs = CaptionTrainSet(records, cap.tokenizer)
    per_image = CaptionTrainSet(records, cap.tokenizer, all_captions=False)
    assert len(pairs) == 3 and len(per_image) == 2
    assert [pairs[i][0] for i in range(3)] == [0, 0, 1]
    batch = CaptionCollate(cap.tokenizer.pad_token_id, torch.arange(6.0).view(2, 3))([pairs[0], pairs[2]])
    assert batch["embeds"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    images = CaptionCollate(cap.tokenizer.pad_token_id)([(torch.zeros(3, 2, 2), pairs[0][1])])
    assert images["images"].shape == (1, 3, 2, 2)
    with pytest.raises(ConfigError, match="cached embeddings"):
        CaptionCollate(cap.tokenizer.pad_token_id)([pairs[0]])
    with pytest.raises(DataError, match=r"caps\.json \(3\.jpg\).*no captions"):
        CaptionTrainSet([CaptionRecord("3.jpg", "train", [])], cap.tokenizer, source="caps.json")


@pytest.mark.data
def test_ucm_training_captions_tokenize_with_words_tokenizer(ucm_root):
    records = select_split(read_karpathy(ucm_root / "dataset_ucm.json"), "train")
    tok = load_tokenizer("words", [c for r in records for c in r.captions])
    ds = CaptionTrainSet(records, tok)
    assert len(ds) == sum(len(r.captions) for r in records)
    unk = tok.unk_token_id
    assert all(unk not in t for toks in ds.tokens for t in toks)  # every training word is in the vocabulary
    batch = CaptionCollate(tok.pad_token_id, torch.zeros(len(records), 4))([ds[0], ds[1]])
    assert batch["embeds"].shape == (2, 4) and batch["input_ids"].shape[0] == 2


@pytest.mark.data
def test_image_embeddings_are_normalised_and_cached(ucm_root, tiny_bundle, tmp_path):
    records = read_karpathy(ucm_root / "dataset_ucm.json")[:4]
    first = image_embeddings(tiny_bundle, records, ucm_root / "images", cache=tmp_path)
    assert first.shape == (4, tiny_bundle.embed_dim)
    assert torch.allclose(first.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = image_embeddings(tiny_bundle, records, ucm_root / "images", cache=tmp_path)
    assert torch.equal(first, again)
