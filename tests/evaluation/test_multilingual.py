"""Evaluation per language (rsdix.evaluation.multilingual) on a tiny hand-made parallel set
(English, Portuguese, German): one caption set per language, the same images."""
from __future__ import annotations

import pytest

from multilingual_fixtures import NAMES, PARALLEL, parallel_dir, to_tensor  # noqa: F401 (parallel_dir: a fixture)
from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.errors import DataError
from rsdix.evaluation.multilingual import evaluate_per_language, language_subsets, retrieval_per_language
from rsdix.models.features import FeatureCache
from rsdix.data.parallel_captions import read_parallel


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
