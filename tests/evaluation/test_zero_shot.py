"""Zero-shot classification: known answers with a model whose features are known, in two
languages; class names and templates that do not fit; a real EuroSAT-MS run."""
from __future__ import annotations

import pytest

from evaluation_fixtures import class_folder, dict_bundle  # noqa: F401 (class_folder: a pytest fixture)
from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.datasets import load_classification
from rsdix.evaluation.zero_shot import class_embeddings, zero_shot


def test_zero_shot_known_answers(class_folder):
    bundle = dict_bundle()
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


def test_class_names_that_do_not_match_folders(class_folder):
    ds = load_classification("toy", path=class_folder)
    with pytest.raises(DataError, match="3 classes") as err:
        zero_shot(dict_bundle(), ds, class_names=["beach", "forest"])
    assert str(class_folder) in str(err.value)
    with pytest.raises(DataError, match="missing \\['river'\\], unknown \\['lake'\\]") as err:
        load_classification("toy", path=class_folder, class_names={"beach": "b", "forest": "f", "lake": "l"})
    assert str(class_folder) in str(err.value)


def test_bad_templates():
    with pytest.raises(ConfigError, match="exactly one"):
        class_embeddings(dict_bundle(), ["beach"], ["no placeholder"])
    with pytest.raises(ConfigError, match="unknown template set"):
        class_embeddings(dict_bundle(), ["beach"], "nope")


def test_real_eurosat_ms_zero_shot_runs(eurosat_ms_root, data_root, tiny_bundle):
    ds = load_classification("eurosat_ms", data_root, max_images=20, seed=0)
    res = zero_shot(tiny_bundle, ds, templates="rsdix")
    assert res.confusion.sum() == len(ds) == 20
    assert 0 <= res.metrics["top1"] <= 100 and "top5" in res.metrics


def test_nan_image_features_are_refused_naming_the_task(class_folder, monkeypatch):
    """Features that bypass the encoder's own check (e.g. a hand-made cache entry) still give no
    accuracy: the zero-shot scores are checked, naming the task and dataset."""
    import torch

    from rsdix.evaluation import zero_shot as zs
    real = zs.encode_images

    def nan_rows(*args, **kwargs):
        feats = real(*args, **kwargs).clone()
        feats[[1, 4, 7]] = float("nan")
        return feats

    monkeypatch.setattr(zs, "encode_images", nan_rows)
    ds = load_classification("toy", path=class_folder)
    with pytest.raises(DataError, match=r"zero-shot toy: 3 of 9 score rows are NaN or \+inf"):
        zero_shot(dict_bundle(), ds, templates=["a photo of {}"], dataset_name="toy")
    assert torch.isfinite(real(dict_bundle(), ds)).all()
