"""Evaluation metrics on hand-computed cases, the feature cache, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.errors import ConfigError, DataError
from rsdix.evaluate import (EvalConfig, class_embeddings, classification_metrics, counting_accuracy,
                            evaluate_model, few_shot, knn_classify, linear_probe, load_classification,
                            load_retrieval, retrieval_metrics, sample_shots, zero_shot, zero_shot_weights)
from rsdix.features import FeatureCache, encode_images, encode_texts


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


# --- retrieval ------------------------------------------------------------------------------

def test_retrieval_three_images_six_captions_by_hand():
    # images are the three axes; captions 0,1 -> image 0, 2,3 -> image 1, 4,5 -> image 2
    images = unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    texts = unit([1, 0.1, 0], [0, 1, 0.2],       # image 0: one caption right, one pointing at image 1
                 [0.9, 0.3, 0], [0.2, 0.8, 0.1],  # image 1: first points at image 0, second at image 1
                 [1, 0, 0.5], [0.6, 0, 0.4])      # image 2: both point at image 0
    t2i = [0, 0, 1, 1, 2, 2]
    m = retrieval_metrics(images, texts, t2i, ks=(1, 2, 5))
    # by hand (normalised captions): image 0 ranks caption 0 first; image 1 ranks caption 1 (not
    # its own) first and its caption 3 second; image 2 ranks caption 5 first.
    # text->image: caption 0 -> image 0 first; caption 1 puts image 0 last (third);
    # caption 2 -> image 0 then image 1; caption 3 -> image 1 first; captions 4, 5 -> image 0 first.
    sims = images @ texts.T
    i2t_rank = [min(torch.argsort(sims[i], descending=True).tolist().index(j) for j in range(6) if t2i[j] == i)
                for i in range(3)]
    t2i_rank = [torch.argsort(sims[:, j], descending=True).tolist().index(t2i[j]) for j in range(6)]
    assert i2t_rank == [0, 1, 0]
    assert t2i_rank == [0, 2, 1, 0, 1, 1]
    assert m["i2t_R@1"] == pytest.approx(100 * 2 / 3)
    assert m["i2t_R@2"] == pytest.approx(100.0)
    assert m["t2i_R@1"] == pytest.approx(100 * 2 / 6)
    assert m["t2i_R@2"] == pytest.approx(100 * 5 / 6)
    assert m["t2i_R@5"] == pytest.approx(100.0)
    assert m["mR"] == pytest.approx(np.mean([100 * 2 / 3, 100, 100, 100 * 2 / 6, 100 * 5 / 6, 100]))


def test_retrieval_chunking_does_not_change_results():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(37 * 3, 8, generator=g), dim=-1)
    t2i = [i // 3 for i in range(len(txt))]
    assert retrieval_metrics(img, txt, t2i, chunk_size=5) == retrieval_metrics(img, txt, t2i, chunk_size=1000)


def test_retrieval_perfect_and_bad_inputs():
    img = torch.eye(4)
    assert retrieval_metrics(img, img.repeat_interleave(2, 0), [0, 0, 1, 1, 2, 2, 3, 3])["mR"] == 100.0
    with pytest.raises(DataError, match="no caption"):
        retrieval_metrics(img, img[:3], [0, 1, 2])
    with pytest.raises(DataError, match="empty"):
        retrieval_metrics(img[:0], img, [0, 1, 2, 3])


# --- zero-shot and classification metrics ---------------------------------------------------

def test_zero_shot_weights_average_templates_then_renormalise():
    feats = torch.stack([unit([1, 0], [0, 1]), unit([1, 1], [1, 1])])  # 2 classes x 2 templates
    w = zero_shot_weights(feats)
    assert torch.allclose(w[0], unit([1, 1])[0])
    assert torch.allclose(w.norm(dim=1), torch.ones(2))


def test_classification_metrics_known_answers():
    # 6 samples, 5 classes; scores chosen so predictions are 0,1,1,3,4,0
    labels = [0, 1, 2, 3, 4, 4]
    scores = torch.tensor([[9, 1, 0, 0, 0], [0, 9, 1, 0, 0], [0, 9, 8, 0, 0],
                           [0, 0, 0, 9, 1], [0, 0, 0, 1, 9], [9, 0, 0, 0, 8]], dtype=torch.float32)
    m = classification_metrics(scores, labels)
    assert m["top1"] == pytest.approx(100 * 4 / 6)
    assert m["top5"] == 100.0
    # per-class recall: 1, 1, 0, 1, 0.5 -> mean 0.7
    assert m["balanced_acc"] == pytest.approx(70.0)
    assert "top5" not in classification_metrics(scores[:, :3], [0, 1, 2, 0, 1, 2])


class _DictModel(torch.nn.Module):
    """A model whose image features are stored per pixel value and text features per word:
    lets a zero-shot test know the right answers exactly."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.image_calls = 0
        self.text_calls = 0

    def encode_image(self, x):
        self.image_calls += 1
        # image i is a constant image with value i/10 in channel 0: feature = axis of its class
        cls = (x[:, 0, 0, 0] * 10).round().long() % 3
        return torch.nn.functional.one_hot(cls, 3).float() + self.w

    def encode_text(self, tokens):
        self.text_calls += 1
        return tokens.float()


def _dict_bundle():
    from rsdix.models import ModelBundle

    vocab = {"beach": [1.0, 0, 0], "forest": [0, 1.0, 0], "river": [0, 0, 1.0]}

    def tokenizer(texts):
        rows = []
        for t in texts:
            hit = [v for k, v in vocab.items() if k in t]
            rows.append(hit[0] if hit else [0.3, 0.3, 0.3])
        return torch.tensor(rows)

    import torchvision.transforms as T

    return ModelBundle(_DictModel(), tokenizer, T.ToTensor(), T.ToTensor(), name="dict")


@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "cls"
    for c, cls in enumerate(["beach", "forest", "river"]):
        (root / cls).mkdir(parents=True)
        for j in range(3):
            # mis-label one forest image as a river image to get a known error
            value = c if not (cls == "forest" and j == 0) else 2
            Image.new("RGB", (4, 4), (value * 255 // 10 + 1, 0, 0)).save(root / cls / f"{cls}{j}.png")
    return root


def test_zero_shot_known_answers(class_folder):
    bundle = _dict_bundle()
    ds = load_classification("toy", path=class_folder)
    res = zero_shot(bundle, ds, templates=["a photo of {}."])
    assert res.class_names == ["beach", "forest", "river"]
    assert res.metrics["top1"] == pytest.approx(100 * 8 / 9)
    assert res.confusion.tolist() == [[3, 0, 0], [0, 2, 1], [0, 0, 3]]
    # the same in another language: names and templates given, same answers
    res_it = zero_shot(bundle, ds, templates=["una foto di {}."],
                       class_names={"beach": "beach (spiaggia)", "forest": "forest (bosco)",
                                    "river": "river (fiume)"})
    assert res_it.metrics == res.metrics


def test_feature_cache_second_run_encodes_nothing(class_folder, tmp_path):
    bundle = _dict_bundle()
    ds = load_classification("toy", path=class_folder)
    cache = FeatureCache(tmp_path / "features")
    first = zero_shot(bundle, ds, templates="rs", cache=cache, dataset_name="toy")
    calls = (bundle.model.image_calls, bundle.model.text_calls)
    assert calls[0] > 0 and calls[1] > 0
    again = zero_shot(bundle, ds, templates="rs", cache=cache, dataset_name="toy")
    assert (bundle.model.image_calls, bundle.model.text_calls) == calls
    # a new cache object on the same folder (a new session) reads from disk
    fresh = FeatureCache(tmp_path / "features")
    zero_shot(bundle, ds, templates="rs", cache=fresh, dataset_name="toy")
    assert (bundle.model.image_calls, bundle.model.text_calls) == calls
    assert fresh.stats.misses == 0 and fresh.stats.images_encoded == 0
    assert again.metrics == first.metrics
    # changed weights -> a different fingerprint -> encoded again
    with torch.no_grad():
        bundle.model.w += 1
    zero_shot(bundle, ds, templates="rs", cache=cache, dataset_name="toy")
    assert bundle.model.image_calls > calls[0]


def test_class_names_that_do_not_match_folders(class_folder):
    ds = load_classification("toy", path=class_folder)
    with pytest.raises(DataError, match="3 classes") as err:
        zero_shot(_dict_bundle(), ds, class_names=["beach", "forest"])
    assert str(class_folder) in str(err.value)
    with pytest.raises(DataError, match="missing \\['river'\\], unknown \\['lake'\\]") as err:
        load_classification("toy", path=class_folder, class_names={"beach": "b", "forest": "f", "lake": "l"})
    assert str(class_folder) in str(err.value)


def test_bad_templates_and_unknown_dataset():
    with pytest.raises(ConfigError, match="exactly one"):
        class_embeddings(_dict_bundle(), ["beach"], ["no placeholder"])
    with pytest.raises(ConfigError, match="unknown template set"):
        class_embeddings(_dict_bundle(), ["beach"], "nope")
    with pytest.raises(DataError, match="unknown classification set"):
        load_classification("NotASet")


# --- retrieval on a caption file ------------------------------------------------------------

@pytest.fixture
def caption_file(tmp_path):
    import json

    images = tmp_path / "caps" / "images"
    images.mkdir(parents=True)
    entries = []
    for i in range(4):
        Image.new("RGB", (4, 4), (i * 255 // 10 + 1, 0, 0)).save(images / f"{i}.png")
        entries.append({"filename": f"{i}.png", "split": "train" if i < 3 else "val",
                        "sentences": [{"raw": f"There are {['two', 'three', '4', 'one'][i]} planes ."},
                                      {"raw": "une plage", "lang": "fr"}]})
    path = tmp_path / "caps" / "dataset_toy.json"
    path.write_text(json.dumps({"images": entries}))
    return path


def test_empty_split_is_a_clear_error(caption_file):
    with pytest.raises(DataError, match="split 'test' does not exist") as err:
        load_retrieval("toy", path=caption_file, split="test")
    assert str(caption_file) in str(err.value)


def test_retrieval_language_filter(caption_file, tiny_bundle):
    from rsdix.evaluate import retrieval

    fr = load_retrieval("toy", path=caption_file, split="train", languages=["fr"])
    assert fr.texts() == ["une plage"] * 3
    m = retrieval(tiny_bundle, fr, dataset_name="toy-fr", split="train")
    assert set(m) == {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"}
    assert m["i2t_R@5"] == 100.0  # 3 images: everything is in the top 5
