"""Evaluation metrics on hand-computed cases, the feature cache, and bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.suite import (EvalConfig, class_embeddings, classification_metrics, counting_accuracy,
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


def test_retrieval_matches_an_argsort_reference_at_real_sizes():
    # UCM test size (210 images x 5 captions, 256-d): a query's own item must never count against
    # it. The own score used to come from a separate dot product, which differs from the matmul in
    # the last bits; the strict comparison then halved t2i R@1 (measured on a trained model).
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(210, 256, generator=g), dim=-1)
    t2i = torch.arange(210).repeat_interleave(5)
    txt = torch.nn.functional.normalize(img[t2i] + 0.7 * torch.randn(1050, 256, generator=g), dim=-1)
    sims = img @ txt.T
    order_t = sims.argsort(dim=1, descending=True)                # image -> texts
    i2t_rank = torch.stack([(t2i[order_t[i]] == i).nonzero()[0, 0] for i in range(210)])
    t2i_rank = (sims.T.argsort(dim=1, descending=True) == t2i[:, None]).nonzero()[:, 1]
    m = retrieval_metrics(img, txt, t2i.tolist())
    for k in (1, 5, 10):
        assert m[f"i2t_R@{k}"] == pytest.approx(100 * (i2t_rank < k).float().mean().item())
        assert m[f"t2i_R@{k}"] == pytest.approx(100 * (t2i_rank < k).float().mean().item())
    assert 5 < m["t2i_R@1"] < 95  # neither trivial nor hopeless


def test_retrieval_breaks_exact_ties_at_random_in_expectation():
    # identical captions (UCM repeats sentences across images): exact ties between images
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])   # image 0 owns captions 0 and 1, image 1 owns 2
    m = retrieval_metrics(img, txt, [0, 0, 1], ks=(1, 2))
    # image 0: 2 own + 1 other tied -> P(top-1 is own) = 2/3; image 1: 1 own + 2 others -> 1/3
    assert m["i2t_R@1"] == pytest.approx(100 * (2 / 3 + 1 / 3) / 2)
    assert m["i2t_R@2"] == pytest.approx(100 * (1 + (1 - 1 / 3)) / 2)  # image 1: 1 - C(2,2)/C(3,2)
    assert m["t2i_R@1"] == pytest.approx(50.0) and m["t2i_R@2"] == pytest.approx(100.0)


@pytest.mark.parametrize("above,tied,own,k", [(0, 3, 1, 1), (1, 4, 2, 3), (0, 0, 1, 1), (2, 1, 1, 2), (0, 5, 3, 4)])
def test_hit_probability_matches_enumerating_every_order(above, tied, own, k):
    import itertools

    from rsdix.evaluation.suite import hit_probability

    block = ["own"] * own + ["other"] * tied
    orders = list(itertools.permutations(range(len(block))))
    hits = sum(any(block[i] == "own" for i in order[:max(0, k - above)]) for order in orders)
    p = hit_probability(torch.tensor([above]), torch.tensor([tied]), torch.tensor([own]), k)
    assert p.item() == pytest.approx(hits / len(orders))


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
    with pytest.raises(DataError, match="unknown classification dataset"):
        load_classification("NotASet")
    with pytest.raises(DataError, match="unknown captions dataset"):
        load_retrieval("whu_rs19")   # a classification set asked for as captions


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
    from rsdix.evaluation.suite import retrieval

    fr = load_retrieval("toy", path=caption_file, split="train", languages=["fr"])
    assert fr.texts() == ["une plage"] * 3
    m = retrieval(tiny_bundle, fr, dataset_name="toy-fr", split="train")
    assert set(m) == {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"}
    assert m["i2t_R@5"] == 100.0  # 3 images: everything is in the top 5


# --- probes ---------------------------------------------------------------------------------

def test_knn_weighted_vote_by_hand():
    train = unit([1, 0], [0.9, 0.1], [0, 1])
    labels = [0, 0, 1]
    test = unit([0.2, 1])
    scores = knn_classify(train, labels, test, k=2, temperature=1.0, n_classes=2)
    s = (unit([0.2, 1]) @ train.T)[0]
    # the two nearest are train 2 (class 1) and train 1 (class 0)
    assert scores[0, 1].item() == pytest.approx(math.exp(s[2].item()))
    assert scores[0, 0].item() == pytest.approx(math.exp(s[1].item()))
    # a small temperature sharpens; k larger than the training set is clipped
    assert knn_classify(train, labels, test, k=50, temperature=0.07).argmax().item() == 1


def _blobs(n_per_class=20, n_classes=4, dim=8, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    x = np.concatenate([centres[c] + noise * rng.normal(size=(n_per_class, dim)) for c in range(n_classes)])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y


def test_linear_probe_separable_and_chance():
    x, y = _blobs()
    xt, yt = _blobs(seed=0)
    m = linear_probe(x, y, xt, yt, Cs=[0.01, 1.0])
    assert m["top1"] == 100.0 and m["C"] in (0.01, 1.0)
    # labels independent of features: accuracy near chance (4 classes -> 25%)
    rng = np.random.default_rng(1)
    xr = rng.normal(size=(400, 8)).astype(np.float32)
    m = linear_probe(xr[:200], rng.integers(0, 4, 200), xr[200:], rng.integers(0, 4, 200))
    assert m["top1"] < 45


def test_few_shot_sampling_and_rows():
    x, y = _blobs(n_per_class=10)
    idx = sample_shots(y, 3, seed=0)
    assert np.bincount(y[idx]).tolist() == [3, 3, 3, 3]
    assert not np.array_equal(idx, sample_shots(y, 3, seed=1))
    table = few_shot(x, y, x, y, shots=(1, 4), draws=3, seed=0)
    assert len(table) == 6 and set(table["shots"]) == {1, 4}
    assert table["top1"].between(0, 100).all()
    with pytest.raises(DataError, match="only 10 training images"):
        sample_shots(y, 16, seed=0)


# --- counting -------------------------------------------------------------------------------

def test_count_variants_constructed_cases():
    from rsdix.evaluation.counting import count_distribution, count_variants, find_counts

    value, variants = count_variants("There are two airplanes in the airport .")
    assert value == 2 and len(variants) == 10
    assert variants[0] == "There are one airplanes in the airport ."
    assert variants[9] == "There are ten airplanes in the airport ."
    assert count_variants("Four cars are parked .")[1][6] == "Seven cars are parked ."
    assert count_variants("There are 3 tanks .") == (3, [f"There are {k} tanks ." for k in range(1, 11)])
    assert count_variants("One ship is in the harbour .")[0] == 1
    # not counts: pronoun "one", "one of", two counts, none, out of range, ordinal-like digits
    assert count_variants("A big airplane and a small one are in the airport .") is None
    assert count_variants("One of the roads is wide .") is None
    assert count_variants("There are two airplanes and two cars .") is None
    assert count_variants("Many buildings are dense .") is None
    assert count_variants("There are 12 tanks .") is None
    assert find_counts("the 2nd road and 3.5 km") == []
    assert count_variants("someone is near the tone .") is None
    assert count_distribution(["two cars .", "Two planes .", "one ship is here", "a small one"]) == {1: 1, 2: 2}


def test_counting_accuracy_by_hand():
    img = unit([1, 0], [0, 1])
    variants = torch.zeros(2, 10, 2)
    variants[0, 2] = torch.tensor([1.0, 0])     # image 0: count 3 ranks first (true: 3)
    variants[1, 0] = torch.tensor([0, 1.0])     # image 1: count 1 first, count 5 second (true: 5)
    variants[1, 4] = torch.tensor([0, 0.5])
    m = counting_accuracy(img, variants, [3, 5])
    assert m["top1"] == 50.0 and m["top3"] == 100.0
    assert m["mean_abs_error"] == pytest.approx((0 + 4) / 2)


# --- checkpoints ----------------------------------------------------------------------------

def test_checkpoint_of_the_wrong_architecture(tmp_path, tiny_bundle):
    import json

    from rsdix.models import load_model, save_model

    folder = save_model(tiny_bundle, tmp_path / "infonce_s0")
    meta = json.loads((folder / "open_clip_config.json").read_text())
    meta["model_cfg"]["embed_dim"] = 48            # config says another architecture
    (folder / "open_clip_config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match") as err:
        load_model(str(folder))
    assert "open_clip_model.safetensors" in str(err.value)
    # a plain state dict (RemoteCLIP-style .pt) of a wider model, loaded into rsdix-tiny
    import open_clip

    from rsdix.models import _preset_configs, register_model_config

    wide = _preset_configs()["rsdix-tiny"]
    wide["vision_cfg"]["width"] = 96
    register_model_config("rsdix-tiny-wide-test", wide)
    torch.save(open_clip.create_model("rsdix-tiny-wide-test").state_dict(), tmp_path / "wide.pt")
    with pytest.raises(DataError, match="does not match architecture") as err:
        load_model("rsdix-tiny", pretrained=str(tmp_path / "wide.pt"))
    assert "wide.pt" in str(err.value)


# --- the entry point ------------------------------------------------------------------------

def test_evaluate_model_rows_and_cache(caption_file, class_folder, tmp_path, monkeypatch):
    import rsdix.evaluation.suite as ev
    from rsdix.paths import RunDirs

    bundle = _dict_bundle()
    from rsdix.data.registry import REGISTRY, DatasetInfo

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
    stored = ev.pd.read_csv(dirs.results)
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


# --- real data (skipped when absent) --------------------------------------------------------

def test_real_sets_load_with_official_split_and_names(ucm_root, whu_root, data_root):
    ucm = load_retrieval("UCM", data_root, split="test")   # by title: the caption set
    assert len(ucm) == 210 and len(ucm.texts()) == 1050
    whu = load_classification("WHU-RS19", data_root, max_images=38, seed=0)
    assert len(whu) == 38 and np.bincount(whu.labels).tolist() == [2] * 19
    assert "football field" in whu.class_names and "railway station" in whu.class_names
    ucm_cls = load_classification("UCM", data_root)
    assert len(ucm_cls) == 2100 and "dense residential" in ucm_cls.class_names
    test_only = load_classification("UCM", data_root, split_from="ucm_captions:test")
    assert len(test_only) == 210
    assert {Path(f).name for f in test_only.filenames()} == set(ucm.filenames())


def test_real_eurosat_ms_zero_shot_runs(eurosat_ms_root, data_root, tiny_bundle):
    ds = load_classification("eurosat_ms", data_root, max_images=20, seed=0)
    res = zero_shot(tiny_bundle, ds, templates="rsdix")
    assert res.confusion.sum() == len(ds) == 20
    assert 0 <= res.metrics["top1"] <= 100 and "top5" in res.metrics


def test_compare_with_published_side_by_side():
    import pandas as pd

    from rsdix.evaluation.suite import compare_with_published

    rows = pd.DataFrame([
        dict(model="infonce_s0", dataset="UCM", task="retrieval", metric="mR", value=10.0, seed=0),
        dict(model="infonce_s1", dataset="UCM", task="retrieval", metric="mR", value=14.0, seed=1),
        dict(model="infonce_s0", dataset="WHU-RS19", task="knn", metric="top1", value=50.0, seed=0),
        dict(model="infonce_s0", dataset="UCM", task="retrieval", metric="mR", value=99.0, seed=0, split="val")])
    table = compare_with_published(rows).set_index(["dataset", "task", "metric"])
    assert table.loc[("UCM", "retrieval", "mR"), "infonce"] == 12.0      # mean over the two seeds, no val row
    assert table.loc[("UCM", "retrieval", "mR"), "published: RemoteCLIP ViT-B/32"] == 56.36
    assert pd.isna(table.loc[("WHU-RS19", "knn", "top1"), "published: RemoteCLIP ViT-B/32"])


def test_list_checkpoints_and_run_seed(tmp_path, tiny_bundle):
    from rsdix.evaluation.suite import list_checkpoints, run_seed
    from rsdix.models import save_model

    assert list_checkpoints(tmp_path / "absent") == []
    save_model(tiny_bundle, tmp_path / "rsdix_s1")
    (tmp_path / "not_a_model").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["rsdix_s1"]
    assert run_seed("rsdix_s1") == 1 and run_seed("infonce_frac0.1_s2") == 2 and run_seed("RemoteCLIP") == 0


def test_parse_model_spec_and_profile_configs():
    from rsdix.evaluation.suite import load_eval_config, parse_model_spec

    assert parse_model_spec("RemoteCLIP=ViT-B-32@/c/R.pt") == ("RemoteCLIP", "ViT-B-32", "/c/R.pt")
    assert parse_model_spec("ViT-B-32@openai") == ("ViT-B-32-openai", "ViT-B-32", "openai")
    assert parse_model_spec("rsdix-tiny") == ("rsdix-tiny", "rsdix-tiny", None)
    with pytest.raises(ConfigError):
        parse_model_spec("label=")
    for profile in ("smoke", "cpu", "paper"):
        cfg = load_eval_config(profile)
        assert cfg.knn_k == 20 and cfg.knn_temperature == 0.07
    assert load_eval_config("smoke").max_images is not None and load_eval_config("cpu").max_images is None
    with pytest.raises(ConfigError):
        load_eval_config("cpu", knn_kk=3)


def test_prefetch_for_several_models_decodes_once(class_folder, tmp_path, monkeypatch):
    import rsdix.features as features
    from rsdix.data.registry import REGISTRY, DatasetInfo
    from rsdix.evaluation.suite import prefetch_image_features

    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    a, b = _dict_bundle(), _dict_bundle()
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


def test_text_features_same_with_padding_trimmed():
    """rsdix-small's MiniLM tower masks padding: encode_texts trims it and sorts by length, and
    must give the features of a plain full-length encode, in the input order."""
    from rsdix.features import _trimmable_pad_id
    from rsdix.models import load_model

    bundle = load_model("rsdix-small")
    assert _trimmable_pad_id(bundle.model) == 0
    texts = ["There are two airplanes in the airport near some buildings and a road .", "a beach",
             "many green trees", "a river"] * 3
    modes = [m.training for m in bundle.model.modules()]
    fast = encode_texts(bundle, texts, batch_size=5)
    assert [m.training for m in bundle.model.modules()] == modes   # every submodule's mode restored
    bundle.model.eval()
    with torch.no_grad():
        plain = torch.nn.functional.normalize(bundle.model.encode_text(bundle.tokenizer(texts)), dim=-1)
    assert torch.allclose(fast, plain, atol=1e-5)


def test_evaluate_model_multilingual_hook(caption_file, class_folder, tmp_path, monkeypatch):
    from rsdix.data.registry import REGISTRY, DatasetInfo

    monkeypatch.setitem(REGISTRY, "toy_cls", DatasetInfo("toy_cls", "Toy", "classification", "folders",
                                                         class_folder.name))
    monkeypatch.setitem(REGISTRY, "toy_caps", DatasetInfo("toy_caps", "Toy", "captions", "karpathy",
                                                          caption_file.parent.name, caption_file.name))
    cfg = EvalConfig(retrieval_split="train")
    bundle = _dict_bundle()
    rows = evaluate_model(bundle, ["zero-shot:toy_cls", "retrieval:toy_caps"], config=cfg, data_root=tmp_path,
                          templates=["una foto di {}."], languages=["fr"],
                          class_names={"Toy": ["beach (spiaggia)", "forest (bosco)", "river (fiume)"]})
    zs = rows[rows.task == "zero-shot"]
    assert zs[zs.metric == "top1"]["value"].item() == pytest.approx(100 * 8 / 9)
    assert "una foto di" in zs["note"].iloc[0] and "class names given" in zs["note"].iloc[0]
    ret = rows[rows.task == "retrieval"]
    assert "captions in ['fr']" in ret["note"].iloc[0] and ret["n"].iloc[0] == 3


def test_cache_fingerprint_survives_a_reused_object_id(monkeypatch):
    """CPython reuses the id of a freed model for the next one (notebooks load checkpoints in a
    loop): a same-architecture model must never inherit the previous model's fingerprint."""
    from rsdix import features
    from rsdix.models import load_model

    monkeypatch.setattr(features, "id", lambda obj: 1234, raising=False)   # every object: the same id
    cache = FeatureCache()
    torch.manual_seed(0)
    first = load_model("rsdix-tiny")
    torch.manual_seed(1)
    second = load_model("rsdix-tiny")
    assert first.fingerprint() != second.fingerprint()
    assert cache.fingerprint(first) == first.fingerprint()
    assert cache.fingerprint(second) == second.fingerprint()


def test_compare_with_published_pools_seeds_as_results_summary_does():
    import pandas as pd

    from rsdix.evaluation.suite import compare_with_published
    from rsdix.results import summarise

    rows = pd.DataFrame([dict(model=f"rsdix_s{s}-locked", dataset="UCM", task="retrieval", metric="mR",
                              value=10.0 + 4 * s, seed=s, split="test") for s in (0, 1)])
    table = compare_with_published(rows).set_index(["dataset", "task", "metric"])
    pooled = summarise(rows)
    assert list(pooled["model"]) == ["rsdix-locked"]
    assert table.loc[("UCM", "retrieval", "mR"), "rsdix-locked"] == pooled["mean"].iloc[0] == 12.0


def test_few_shot_draws_do_not_collide_across_seeds():
    """seed 0 draw 10 and seed 1 draw 0 once shared a stream (seed*1000 + draw*100 + k)."""
    from rsdix.evaluation.suite import sample_shots

    labels = np.repeat(np.arange(3), 50)
    a = sample_shots(labels, 4, seed=[0, 10, 4])
    b = sample_shots(labels, 4, seed=[1, 0, 4])
    assert not np.array_equal(a, b)
    assert np.array_equal(a, sample_shots(labels, 4, seed=[0, 10, 4]))
