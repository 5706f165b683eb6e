"""Multilingual captions on a tiny hand-made parallel set (English, Portuguese, German)."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from multilingual_fixtures import NAMES, PARALLEL, parallel_dir, to_tensor  # noqa: F401 (parallel_dir: a fixture)
from rsdix.data.captions import CaptionRecord, read_karpathy, write_karpathy
from rsdix.errors import DataError, OfflineError
from rsdix.data.parallel_captions import (MultilingualCaptionDataset, language_coverage, languages_of,
                                          read_parallel)
from rsdix.data.translation import Translator, translate_records
from rsdix.training.collate import LanguageCollate, batch_language, stack_views


def fake_tokenizer(texts):
    return torch.tensor([[len(t)] for t in texts])


def test_parallel_files_merge_and_roundtrip(parallel_dir, tmp_path):
    root, files = parallel_dir
    records = read_parallel(files)
    assert [r.filename for r in records] == NAMES
    assert records[0].captions == PARALLEL["en"][0] + PARALLEL["pt"][0] + PARALLEL["de"][0]
    assert records[0].langs == ["en", "en", "pt", "pt", "de", "de"]
    assert languages_of(records) == ["en", "de", "pt"]
    assert language_coverage(records) == {"en": 3, "de": 3, "pt": 3}
    # one file with a lang field per sentence: the same records come back
    out = write_karpathy(records, tmp_path / "multi.json")
    assert json.loads(out.read_text())["images"][0]["sentences"][2]["lang"] == "pt"
    back = read_karpathy(out)
    assert [(r.captions, r.langs) for r in back] == [(r.captions, r.langs) for r in records]


def test_parallel_mismatch_names_file(parallel_dir, tmp_path):
    root, files = parallel_dir
    bad = [CaptionRecord(n, "test", c) for n, c in zip(NAMES[:2], PARALLEL["pt"][:2])]
    bad_path = write_karpathy(bad, tmp_path / "captions_pt_short.json")
    with pytest.raises(DataError, match=r"captions_pt_short\.json.*missing, first: houses\.png"):
        read_parallel({"en": files["en"], "pt": bad_path})
    wrong = [CaptionRecord(n, "test", c[:1]) for n, c in zip(NAMES, PARALLEL["pt"])]
    wrong_path = write_karpathy(wrong, tmp_path / "captions_pt_one.json")
    with pytest.raises(DataError, match=r"captions_pt_one\.json.*airport\.png: 1 sentences, the base set has 2"):
        read_parallel({"en": files["en"], "pt": wrong_path})


def test_language_per_batch_is_seeded_and_covers_languages(parallel_dir):
    root, files = parallel_dir
    records = read_parallel(files)
    ds = MultilingualCaptionDataset(records, root / "images", transform=to_tensor, languages=["en", "pt", "de"])
    collate = LanguageCollate(fake_tokenizer, ds.languages, seed=0)
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["image"].shape == (3, 3, 16, 16) and batch["text"].shape == (3, 1)
    lang = batch["lang"][0]
    assert batch["lang"] == [lang] * 3  # one language for the whole step
    for i, cap in enumerate(batch["caption"]):
        assert cap in PARALLEL[lang][i]
    # deterministic: the same batch of images draws the same language, whatever the order
    assert LanguageCollate(fake_tokenizer, ds.languages, seed=0)([ds[2], ds[0], ds[1]])["lang"][0] == lang
    # over many batches every language is drawn, about equally; weights shift the draw
    draws = Counter(batch_language([i, i + 1], ["en", "pt", "de"], seed=0) for i in range(3000))
    assert set(draws) == {"en", "pt", "de"} and min(draws.values()) > 850
    weighted = Counter(batch_language([i], ["en", "pt"], seed=0, weights=[0.9, 0.1]) for i in range(2000))
    assert 1650 < weighted["en"] < 1950
    # per-item mode mixes languages within a batch
    per_item = LanguageCollate(fake_tokenizer, ["en", "pt", "de"], seed=1, per="item")
    langs = {tuple(per_item([ds[0], ds[1], ds[2]])["lang"]) for _ in range(1)}
    assert all(len(t) == 3 for t in langs)


def test_language_filter_and_fallback(parallel_dir):
    root, files = parallel_dir
    records = read_parallel({"en": files["en"], "pt": files["pt"]})
    records[1] = CaptionRecord(records[1].filename, "test", PARALLEL["en"][1], ["en"])  # no Portuguese here
    with pytest.warns(UserWarning, match=r"images with captions: \{'pt': 2\}"):
        ds = MultilingualCaptionDataset(records, root / "images", transform=to_tensor)
    collate = LanguageCollate(fake_tokenizer, ["pt"], seed=0)
    batch = collate([ds[0], ds[1]])
    assert batch["lang"] == ["pt", "en"] and collate.fallbacks == 1
    only_de = MultilingualCaptionDataset(read_parallel(files), root / "images", transform=to_tensor, languages=["de"])
    assert set(only_de[0][1]) == {"de"}


def test_stack_views_multicrop():
    items = [{"image": torch.zeros(3, 8, 8), "crops": [torch.zeros(3, 8, 8), torch.zeros(3, 4, 4)]}] * 2
    out = stack_views(items)
    assert out["image"].shape == (2, 3, 8, 8) and [c.shape for c in out["crops"]] == [(2, 3, 8, 8), (2, 3, 4, 4)]


def test_translate_records_with_a_given_translator_and_cache(parallel_dir, tmp_path):
    root, files = parallel_dir
    en = read_karpathy(files["en"])
    lookup = {e: p for es, ps in zip(PARALLEL["en"], PARALLEL["pt"]) for e, p in zip(es, ps)}
    calls = []

    def translator(lang):
        def run(texts):
            calls.append(len(texts))
            return [lookup[t] for t in texts]
        return run

    cache = tmp_path / "mt_cache.json"
    out = translate_records(en, ["pt"], translate=translator, cache_file=cache)
    assert out[0].captions == PARALLEL["en"][0] + PARALLEL["pt"][0] and out[0].langs == ["en", "en", "pt", "pt"]
    assert calls == [5]  # every distinct English caption once
    again = translate_records(en, ["pt"], translate=translator, cache_file=cache)
    assert calls == [5] and again[2].captions == out[2].captions  # served from the cache
    with pytest.raises(DataError, match="empty translation"):
        translate_records(en, ["de"], translate=lambda lang: (lambda texts: [""] * len(texts)))


def test_translator_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        Translator("pt", backend="marian")
    message = str(info.value)
    assert "\n" not in message and "Helsinki-NLP/opus-mt-tc-big-en-pt" in message and "model=" in message
    with pytest.raises(OfflineError, match="facebook/nllb-200-distilled-600M"):
        Translator("ko", backend="nllb")
    with pytest.raises(ValueError, match="no NLLB code"):
        Translator("xx", backend="nllb")


def test_multilingual_text_tower_offline(monkeypatch):
    """The paper profile's XLM-R CLIP goes through the model factory; offline it fails clearly."""
    from rsdix.models import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        load_model("xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k")
    assert "xlm-roberta-base-ViT-B-32" in str(info.value)
