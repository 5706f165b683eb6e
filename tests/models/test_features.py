"""The feature cache (hits across sessions, fingerprints) and text encoding with padding trimmed."""
from __future__ import annotations


import pytest
import torch

from evaluation_fixtures import class_folder, dict_bundle  # noqa: F401 (class_folder: a pytest fixture)
from malicious import Touch
from rsdix.models import features, load_model
from rsdix.evaluation.datasets import load_classification
from rsdix.evaluation.zero_shot import zero_shot
from rsdix.errors import DataError
from rsdix.models.features import FeatureCache, encode_texts, trimmable_pad_id


def test_feature_cache_second_run_encodes_nothing(class_folder, tmp_path):
    bundle = dict_bundle()
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


def test_text_features_same_with_padding_trimmed():
    """rsdix-small's MiniLM tower masks padding: encode_texts trims it and sorts by length, and
    must give the features of a plain full-length encode, in the input order."""
    bundle = load_model("rsdix-small")
    assert trimmable_pad_id(bundle.model) == 0
    texts = ["There are two airplanes in the airport near some buildings and a road .", "a beach",
             "many green trees", "a river"] * 3
    modes = [m.training for m in bundle.model.modules()]
    fast = encode_texts(bundle, texts, batch_size=5)
    assert [m.training for m in bundle.model.modules()] == modes   # every submodule's mode restored
    bundle.model.eval()
    with torch.no_grad():
        plain = torch.nn.functional.normalize(bundle.model.encode_text(bundle.tokenizer(texts)), dim=-1)
    assert torch.allclose(fast, plain, atol=1e-5)


def test_cache_fingerprint_survives_a_reused_object_id(monkeypatch):
    """CPython reuses the id of a freed model for the next one (notebooks load checkpoints in a
    loop): a same-architecture model must never inherit the previous model's fingerprint."""
    monkeypatch.setattr(features, "id", lambda obj: 1234, raising=False)   # every object: the same id
    cache = FeatureCache()
    torch.manual_seed(0)
    first = load_model("rsdix-tiny")
    torch.manual_seed(1)
    second = load_model("rsdix-tiny")
    assert first.fingerprint() != second.fingerprint()
    assert cache.fingerprint(first) == first.fingerprint()
    assert cache.fingerprint(second) == second.fingerprint()



def test_a_cache_entry_that_would_run_code_or_is_torn_is_one_line_naming_it(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    torch.save({"features": Touch(tmp_path / "marker")}, tmp_path / "cache" / "img-bad.pt")
    cache.put("img-good", torch.ones(2, 3))
    good = tmp_path / "cache" / "img-good.pt"
    (tmp_path / "cache" / "img-torn.pt").write_bytes(good.read_bytes()[:40])
    for key in ("img-bad", "img-torn"):
        with pytest.raises(DataError, match=f"{key}.pt: unreadable feature-cache entry") as err:
            FeatureCache(tmp_path / "cache").get(key)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "marker").exists()


def test_non_finite_image_features_are_refused_naming_model_and_dataset(class_folder, monkeypatch):
    """The encoder's outputs are checked once, before they are cached."""
    bundle = dict_bundle()
    real = bundle.model.encode_image

    def nan_image(images):
        out = real(images).clone()
        out[0] = float("nan")
        return out

    monkeypatch.setattr(bundle.model, "encode_image", nan_image)
    cache = FeatureCache()
    ds = load_classification("toy", path=class_folder)
    with pytest.raises(DataError, match=r"dict on toy: 1 of 9 feature rows are NaN or infinite"):
        features.encode_images(bundle, ds, cache, dataset_name="toy", batch_size=16)
    with pytest.raises(DataError, match="dict on toy"):  # nothing was cached
        features.encode_images(bundle, ds, cache, dataset_name="toy", batch_size=16)


def test_an_image_overwritten_under_its_name_is_encoded_again(class_folder, tmp_path):
    from PIL import Image

    bundle = dict_bundle()
    cache = FeatureCache(tmp_path / "features")
    zero_shot(bundle, load_classification("toy", path=class_folder), templates="rs", cache=cache, dataset_name="toy")
    calls = bundle.model.image_calls
    zero_shot(bundle, load_classification("toy", path=class_folder), templates="rs",
              cache=FeatureCache(tmp_path / "features"), dataset_name="toy")
    assert bundle.model.image_calls == calls                                    # unchanged: read from the cache
    Image.new("RGB", (4, 4), (250, 0, 0)).save(class_folder / "beach" / "beach0.png")   # new content, same name
    fresh = FeatureCache(tmp_path / "features")
    zero_shot(bundle, load_classification("toy", path=class_folder), templates="rs", cache=fresh, dataset_name="toy")
    assert bundle.model.image_calls > calls and fresh.stats.images_encoded == 9


def test_clip_text_features_same_with_padding_trimmed():
    """CLIP's own text transformer (causal mask, pooled at the end-of-text token) gives the same
    features on 77 positions as on the ones up to the last end-of-text token: encode_texts now
    cuts the padding (a ViT-B/32 prompt of ~10 tokens ran 77: 53 ms a text on 2 cores, the paper
    dry run's largest cost), restoring the model's positional embedding and mask after."""
    bundle = load_model("ViT-B-32")   # random weights, open_clip's CLIP class
    model = bundle.model.eval()
    assert trimmable_pad_id(model) == 0
    pos, mask = model.positional_embedding, model.attn_mask
    texts = ["Aerial photograph of dense residential.", "a satellite photo of airport.", "Harbor",
             "There are many buildings and green trees on both sides of a long straight road ."] * 2
    fast = encode_texts(bundle, texts, batch_size=3)
    assert model.positional_embedding is pos and model.attn_mask is mask   # restored
    with torch.no_grad():
        plain = torch.nn.functional.normalize(model.encode_text(bundle.tokenizer(texts)), dim=-1)
    assert torch.allclose(fast, plain, atol=1e-5)
