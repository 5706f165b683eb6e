"""The evaluation entry point: rows of every task, the cache shared across calls and models,
missing datasets, the multilingual hook, the task table, and the configs validated at load."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from PIL import Image

from evaluation_fixtures import caption_file, class_folder, dict_bundle  # noqa: F401 (pytest fixtures)
from rsdix.models import features
from rsdix.data.registry import REGISTRY, DatasetInfo
from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.datasets import load_classification
from rsdix.evaluation.suite import (TASKS, EvalConfig, evaluate_model, load_eval_config, load_task_dataset,
                                   prefetch_image_features)
from rsdix.models.features import FeatureCache, encode_images
from rsdix.paths import RunDirs


def test_evaluate_model_rows_and_cache(caption_file, class_folder, tmp_path, monkeypatch):
    bundle = dict_bundle()
    # two toy sets registered under the data root tmp_path
    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    monkeypatch.setitem(REGISTRY, "toy_caps", DatasetInfo("toy_caps", "Toy", "captions", "karpathy",
                                                          caption_file.parent.name, caption_file.name))
    dirs = RunDirs("smoke", run_dir=tmp_path / "run")
    cfg = EvalConfig(zero_shot=["toy_cls"], retrieval=["Toy"], probe=["toy_cls"], counting=["toy_caps"],
                     retrieval_split="train", counting_split="all", few_shot_shots=[1], few_shot_draws=2, train_fraction=0.67)
    details = {}
    rows = evaluate_model(bundle, None, dirs=dirs, seed=3, model_name="toy_s3", config=cfg,
                          data_root=tmp_path, details=details)
    assert set(rows["task"]) == {"zero-shot", "retrieval", "linear-probe", "knn", "few-shot-1", "counting"}
    assert (rows["seed"] == 3).all() and (rows["model"] == "toy_s3").all() and (rows["dataset"] == "Toy").all()
    zs = rows[(rows.task == "zero-shot") & (rows.metric == "top1")]["value"].item()
    assert zs == pytest.approx(100 * 8 / 9)
    assert rows[(rows.task == "counting") & (rows.metric == "top1")]["n"].item() == 4
    stored = pd.read_csv(dirs.results)
    assert len(stored) == len(rows)
    calls = bundle.model.image_calls
    evaluate_model(bundle, ["zero-shot", "knn:Toy"], dirs=dirs, seed=3, config=cfg, data_root=tmp_path,
                   details=details)
    assert bundle.model.image_calls == calls and details["cache_stats"].images_encoded == 0
    with pytest.raises(ConfigError, match="unknown evaluation task"):
        evaluate_model(bundle, ["segmentation"], config=cfg)
    # a registered set absent from the data root: an error naming the folder, or skipped and listed
    monkeypatch.setitem(REGISTRY, "gone", DatasetInfo("gone", "Gone", "classification", "folders", "gone"))
    with pytest.raises(DataError, match="not found") as err:
        evaluate_model(bundle, ["zero-shot:gone"], config=cfg, data_root=tmp_path, write=False)
    assert str(tmp_path / "gone") in str(err.value)
    cfg.skip_missing = True
    with pytest.warns(UserWarning, match="skipping gone"):
        out = evaluate_model(bundle, ["zero-shot:gone"], config=cfg, data_root=tmp_path, details=details)
    assert out.empty and details["skipped"][0]["dataset"] == "gone"


def test_evaluate_model_multilingual_hook(caption_file, class_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    monkeypatch.setitem(REGISTRY, "toy_caps", DatasetInfo("toy_caps", "Toy", "captions", "karpathy",
                                                          caption_file.parent.name, caption_file.name))
    cfg = EvalConfig(retrieval_split="train")
    bundle = dict_bundle()
    rows = evaluate_model(bundle, ["zero-shot:toy_cls", "retrieval:toy_caps"], config=cfg, data_root=tmp_path,
                          templates=["una foto di {}."], languages=["fr"],
                          class_names={"Toy": ["beach (spiaggia)", "forest (bosco)", "river (fiume)"]})
    zs = rows[rows.task == "zero-shot"]
    assert zs[zs.metric == "top1"]["value"].item() == pytest.approx(100 * 8 / 9)
    assert "una foto di" in zs["note"].iloc[0] and "class names given" in zs["note"].iloc[0]
    ret = rows[rows.task == "retrieval"]
    assert "captions in ['fr']" in ret["note"].iloc[0] and ret["n"].iloc[0] == 3


def test_prefetch_for_several_models_decodes_once(class_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    a, b = dict_bundle(), dict_bundle()
    with torch.no_grad():
        b.model.w += 0.5                      # different weights, same transform
    loads = []
    real = features._ImagesOnly.__getitem__
    monkeypatch.setattr(features._ImagesOnly, "__getitem__", lambda self, i: loads.append(i) or real(self, i))
    cfg = EvalConfig(zero_shot=["toy_cls"], probe=["toy_cls"])
    cache = FeatureCache(tmp_path / "f")
    sizes = prefetch_image_features({"a": a, "b": b}, ["zero-shot", "knn"], cfg, tmp_path, cache)
    assert sizes == {"Toy classification": 9} and len(loads) == 9          # 9 images decoded once for 2 models
    calls = (a.model.image_calls, b.model.image_calls)
    for bundle in (a, b):
        evaluate_model(bundle, ["zero-shot", "knn"], config=cfg, data_root=tmp_path, cache=cache)
    assert (a.model.image_calls, b.model.image_calls) == calls and len(loads) == 9
    # the shared pass gives the same features as encoding model b alone
    ds = load_classification("toy_cls", tmp_path)
    alone = encode_images(b, ds, FeatureCache(), dataset_name="toy_cls")
    assert torch.allclose(alone, encode_images(b, ds, cache, dataset_name="toy_cls"))


def test_profile_configs():
    for profile in ("smoke", "cpu", "paper"):
        cfg = load_eval_config(profile)
        assert cfg.knn_k == 20 and cfg.knn_temperature == 0.07
    assert load_eval_config("smoke").max_images is not None and load_eval_config("cpu").max_images is None
    with pytest.raises(ConfigError):
        load_eval_config("cpu", knn_kk=3)


@pytest.mark.parametrize("override,message", [
    ({"retrieval_split": "tset"}, "retrieval_split"), ({"templates": "nope"}, "templates"),
    ({"train_fraction": 1.0}, "train_fraction"), ({"train_fraction": 0}, "train_fraction"),
    ({"knn_k": 0}, "knn_k"), ({"knn_temperature": 0}, "knn_temperature"), ({"probe_Cs": [1.0, -1.0]}, "probe_Cs"),
    ({"few_shot_shots": [0, 2]}, "few_shot_shots"), ({"max_images": 0}, "max_images"),
    ({"zero_shot": ["not_a_set"]}, "zero_shot"), ({"retrieval": ["whu_rs19"]}, "retrieval"),
    ({"baselines": ["label="]}, "model spec"), ({"max_images_per_dataset": {"not_a_set": 3}}, "max_images_per_dataset"),
    ({"max_images_per_dataset": {"eurosat_ms": 0}}, "max_images_per_dataset")])
def test_config_checked_at_load(override, message):
    with pytest.raises(ConfigError, match=message):
        load_eval_config("cpu", **override)


def test_task_table_in_the_published_order():
    assert list(TASKS) == ["zero-shot", "retrieval", "linear-probe", "knn", "few-shot", "counting"]
    assert {name: spec.kind for name, spec in TASKS.items()}["counting"] == "captions"
    assert TASKS["retrieval"].split_of(EvalConfig(retrieval_split="val")) == "val"
    assert TASKS["knn"].split_of(EvalConfig()) == "all"


def test_caption_sets_take_their_own_image_cap(ucm_root, whu_root):
    """max_caption_images caps retrieval/counting sets (five text encodings per image); the
    classification sets keep max_images."""
    from rsdix.evaluation.suite import load_task_dataset
    cfg = EvalConfig(max_images=40, max_caption_images=7)
    root = ucm_root.parent
    assert len(load_task_dataset("captions", "ucm_captions", "test", cfg, root)) == 7
    assert len(load_task_dataset("classification", "whu_rs19", "all", cfg, root)) == 38   # stratified: 2 x 19 classes
    assert len(load_task_dataset("captions", "ucm_captions", "test", EvalConfig(max_images=40), root)) == 40


def test_a_row_on_a_subsample_never_shares_its_key_with_the_whole_split(caption_file, class_folder, tmp_path,
                                                                        monkeypatch):
    """Rows on a capped set (the smoke profile's max_images, the dry run's caps) name the subset in
    ``split``. Before, a 120-image UCM retrieval row of notebook 05 had split "test", the key of
    notebook 03's 210-image row, and replaced it in results.csv with a different number."""
    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    monkeypatch.setitem(REGISTRY, "toy_caps", DatasetInfo("toy_caps", "Toy", "captions", "karpathy",
                                                          caption_file.parent.name, caption_file.name))
    whole = EvalConfig(zero_shot=["toy_cls"], retrieval=["toy_caps"], probe=[], counting=["toy_caps"],
                       retrieval_split="train", counting_split="all", few_shot_shots=[])
    capped = EvalConfig(**{**whole.__dict__, "max_images": 3, "max_caption_images": 2})
    splits = {}
    for name, cfg in (("whole", whole), ("capped", capped)):
        rows = evaluate_model(dict_bundle(), ["zero-shot", "retrieval", "counting"], config=cfg,
                              data_root=tmp_path, write=False)
        splits[name] = rows.groupby("task")["split"].first().to_dict()
    assert splits["whole"] == {"zero-shot": "all", "retrieval": "train", "counting": "all"}
    n_cls = len(load_classification("toy_cls", tmp_path))
    assert splits["capped"] == {"zero-shot": f"all: 3 of {n_cls}", "retrieval": "train: 2 of 3",
                                "counting": "all: 2 of 4"}


def test_published_protocols_add_rows_that_name_their_protocol_and_replace_none(caption_file, class_folder, tmp_path,
                                                                                 monkeypatch):
    """Issue 31: notebook 05's second pass under the papers' protocols; the results table keeps the
    rows of each protocol (the row key includes it; on the old key the second pass replaced the first)."""
    from rsdix.evaluation.suite import evaluate_published_protocols
    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    monkeypatch.setitem(REGISTRY, "toy_caps", DatasetInfo("toy_caps", "Toy", "captions", "karpathy",
                                                          caption_file.parent.name, caption_file.name))
    dirs = RunDirs("smoke", run_dir=tmp_path / "run")
    cfg = EvalConfig(zero_shot=["toy_cls"], retrieval=["toy_caps"], probe=[], counting=[], retrieval_split="train",
                     published_protocols=["rsdix_paper", "rsdix", "remoteclip"])
    from rsdix.evaluation import suite
    published = pd.DataFrame([dict(source="s", model="M", backbone="B", task=t, dataset="Toy", metric="top1",
                                   value=1.0, protocol="rsdix_paper", split="all", caveat="", note="")
                              for t in ("zero-shot", "retrieval")])
    monkeypatch.setattr(suite, "reference_numbers", lambda aliases=True: published)
    assert suite.published_tasks(cfg, "rsdix_paper") == ["zero-shot:toy_cls", "retrieval:toy_caps"]
    assert suite.published_tasks(cfg, "remoteclip") == []    # nothing published under it: not run
    bundle, cache = dict_bundle(), FeatureCache(tmp_path / "features")
    first = evaluate_model(bundle, ["zero-shot", "retrieval"], dirs=dirs, model_name="toy_s0", config=cfg,
                           data_root=tmp_path, cache=cache)
    more = evaluate_published_protocols({"toy_s0": bundle}, {"toy_s0": 0}, dirs, cfg, tmp_path, cache)
    assert set(more["protocol"]) == {"rsdix_paper"}        # the config's own protocol is not run twice
    assert set(more["task"]) == {"zero-shot", "retrieval"} and (more["backbone"] == "dict").all()
    stored = pd.read_csv(dirs.results)
    assert len(stored) == len(first) + len(more)
    assert set(stored["protocol"]) == {"rsdix", "rsdix_paper"}
    with pytest.raises(ConfigError, match="published_protocols: unknown protocol"):
        load_eval_config("smoke", published_protocols=["nope"])


@pytest.fixture
def big_class_folder(tmp_path, monkeypatch):
    """20 images, 5 in each of 4 class folders, registered as ``toy_big``."""
    root = tmp_path / "big"
    for c, cls in enumerate(["beach", "forest", "river", "field"]):
        (root / cls).mkdir(parents=True)
        for j in range(5):
            Image.new("RGB", (4, 4), (c * 40 + j + 1, 0, 0)).save(root / cls / f"{cls}{j}.png")
    monkeypatch.setitem(REGISTRY, "toy_big", DatasetInfo("toy_big", "Big", "classification", "folders", "big"))
    return tmp_path


def test_a_per_dataset_cap_subsamples_a_larger_set_and_keeps_a_set_of_its_size(big_class_folder):
    """max_images_per_dataset (the cpu profile caps EuroSAT-MS at the 270 tiles of the local
    subset): a larger set is capped (seeded, stratified); a set of the cap's size keeps every
    image in order, with no subset in its split label, so the local numbers do not change."""
    root = big_class_folder
    whole = load_task_dataset("classification", "toy_big", "all", EvalConfig(), root)
    capped = load_task_dataset("classification", "Big", "all", EvalConfig(max_images_per_dataset={"toy_big": 8}), root)
    assert len(capped) == 8 and capped.subset == (8, 20) and sorted(pd.Series(capped.labels).value_counts()) == [2] * 4
    same = load_task_dataset("classification", "toy_big", "all", EvalConfig(max_images_per_dataset={"toy_big": 20}),
                             root)
    assert same.samples == whole.samples and same.subset is None
    own = EvalConfig(max_images=4, max_images_per_dataset={"toy_big": 8})   # the set's own entry wins
    assert len(load_task_dataset("classification", "toy_big", "all", own, root)) == 8
    assert len(load_task_dataset("classification", "toy_big", "all", EvalConfig(max_images=4), root)) == 4
    # fewer images than classes: one image of each of 3 seeded classes, the class list whole
    few = load_task_dataset("classification", "toy_big", "all", EvalConfig(max_images=3), root)
    assert len(few) == 3 and len(set(few.labels)) == 3 and few.classes == whole.classes
    assert len(load_task_dataset("classification", "toy_big", "all", EvalConfig(max_images_per_dataset={
        "toy_big": None}), root)) == 20
    assert load_eval_config("cpu").max_images_per_dataset == {"eurosat_ms": 270}


def test_probe_rows_on_a_subsample_name_it_as_zero_shot_rows_do(big_class_folder):
    """Before, linear-probe, k-NN and few-shot rows on a capped set said split "test" while the
    zero-shot rows on the same subset said "all: 8 of 20"."""
    base = EvalConfig(zero_shot=["toy_big"], retrieval=[], probe=["toy_big"], counting=[], few_shot_shots=[1],
                      few_shot_draws=1, train_fraction=0.5, split_from={})
    for cap, suffix in ((None, ""), (8, ": 8 of 20")):
        cfg = EvalConfig(**{**base.__dict__, "max_images": cap})
        rows = evaluate_model(dict_bundle(), None, config=cfg, data_root=big_class_folder, write=False)
        splits = rows.groupby("task")["split"].first().to_dict()
        assert splits == {"zero-shot": "all" + suffix, "linear-probe": "test" + suffix, "knn": "test" + suffix,
                          "few-shot-1": "test" + suffix}
