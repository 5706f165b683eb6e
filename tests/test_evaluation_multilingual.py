"""Evaluation per language (rsdix.evaluation.multilingual) on a tiny hand-made parallel set
(English, Portuguese, German): one caption set per language, the same images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.errors import DataError
from rsdix.evaluation.multilingual import evaluate_per_language, language_subsets, retrieval_per_language
from rsdix.features import FeatureCache
from rsdix.training.multilingual import read_parallel

PARALLEL = {
    "en": [["many planes at the airport", "an airport with two runways"], ["a river through green fields"],
           ["a dense residential area", "many houses close together"]],
    "pt": [["muitos aviões no aeroporto", "um aeroporto com duas pistas"], ["um rio entre campos verdes"],
           ["uma área residencial densa", "muitas casas próximas"]],
    "de": [["viele Flugzeuge am Flughafen", "ein Flughafen mit zwei Landebahnen"], ["ein Fluss durch grüne Felder"],
           ["ein dichtes Wohngebiet", "viele Häuser dicht beieinander"]],
}
NAMES = ["airport.png", "river.png", "houses.png"]


@pytest.fixture
def parallel_dir(tmp_path):
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    files = {}
    for lang, caps in PARALLEL.items():
        recs = [CaptionRecord(n, "test", c) for n, c in zip(NAMES, caps)]
        files[lang] = write_karpathy(recs, tmp_path / f"captions_{lang}.json")
    return tmp_path, files


def to_tensor(img):
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 255


def test_evaluate_per_language(parallel_dir):
    root, files = parallel_dir
    records = read_parallel(files)
    subsets = language_subsets(records, ["en", "de"])
    assert [r.captions for r in subsets["de"]] == PARALLEL["de"]
    seen = []

    def fake_eval(ds):
        seen.append(ds.texts())
        return {"mean_recall": float(len(ds.texts()))}

    rows = evaluate_per_language(fake_eval, records, root / "images", transform=to_tensor, model="m",
                                 dataset="toy", seed=0)
    assert [(r.dataset, r.metric, r.value, r.extra["lang"]) for r in rows] == [
        ("toy/en", "mean_recall", 5.0, "en"), ("toy/de", "mean_recall", 5.0, "de"), ("toy/pt", "mean_recall", 5.0, "pt")]
    assert seen[1] == [c for caps in PARALLEL["de"] for c in caps]
    partial = records[:1] + [CaptionRecord(NAMES[1], "test", PARALLEL["en"][1])] + records[2:]
    with pytest.raises(DataError, match=r"toy_test\.json.*1 image\(s\) have no 'pt' caption"):
        language_subsets(partial, ["pt"], source="toy_test.json")


def test_retrieval_per_language_through_the_evaluation_suite(parallel_dir, tiny_bundle, tmp_path):
    root, files = parallel_dir
    merged = write_karpathy(read_parallel(files), root / "dataset_toy.json")
    cache = FeatureCache()
    rows = retrieval_per_language(tiny_bundle, merged, languages=["en", "pt"], model="tiny", seed=0, cache=cache)
    by = {(r.dataset, r.metric): r.value for r in rows}
    assert {d for d, _ in by} == {"toy/en", "toy/pt"}
    for lang in ("en", "pt"):
        assert 0 <= by[(f"toy/{lang}", "i2t_R@1")] <= 100
        assert by[(f"toy/{lang}", "i2t_R@10")] == 100.0  # 3 images: every caption is within the top 10
    assert cache.stats.images_encoded == 3  # the images were encoded once for both languages
