"""rsdix.evaluation.quick_check: notebook 03's quick check reports what the evaluation suite reports."""
import dataclasses
import json

import pytest
import torch

from rsdix.evaluation.datasets import load_classification, load_retrieval, split_label
from rsdix.evaluation.quick_check import QuickCheck, eval_templates
from rsdix.evaluation.suite import load_eval_config
from rsdix.evaluation.retrieval import retrieval
from rsdix.evaluation.zero_shot import zero_shot


def test_quick_check_reports_what_the_evaluation_suite_reports(tmp_path, ucm_root, whu_root, tiny_bundle):
    """Notebook 03's check and notebook 05's evaluation write rows with the same key (model,
    dataset, task, metric, split): they must be the same numbers, not two definitions.
    On a small slice of the real data (40 UCM test images, 4 WHU-RS19 classes x 6 images)."""
    ann = json.loads((ucm_root / "dataset_ucm.json").read_text())
    ann["images"] = [im for im in ann["images"] if im["split"] == "test"][:40]
    (tmp_path / "ucm_captions").mkdir()
    (tmp_path / "ucm_captions" / "dataset_ucm.json").write_text(json.dumps(ann))
    (tmp_path / "ucm_captions" / "images").symlink_to(ucm_root / "images")
    for cls in sorted(p.name for p in whu_root.iterdir() if p.is_dir())[:4]:
        (tmp_path / "whu_rs19" / cls).mkdir(parents=True)
        for img in sorted((whu_root / cls).iterdir())[:6]:
            (tmp_path / "whu_rs19" / cls / img.name).symlink_to(img)

    check = QuickCheck(tiny_bundle, tmp_path)
    quick = check(tiny_bundle)
    assert check.zero_shot_split == "all"
    ret = retrieval(tiny_bundle, load_retrieval("ucm_captions", tmp_path))
    zs = zero_shot(tiny_bundle, load_classification("whu_rs19", tmp_path), templates="rs")
    assert set(ret) <= set(quick)
    for key, value in ret.items():
        assert quick[key] == pytest.approx(value, abs=1e-6), key
    assert quick["zs_top1"] == pytest.approx(zs.metrics["top1"], abs=1e-6)
    torch.testing.assert_close(check.zero_shot_scores(tiny_bundle), torch.as_tensor(zs.scores).float(),
                               rtol=1e-4, atol=1e-5)  # same prompts, same class embeddings

    # the paper profile scores zero-shot under RSDiX's protocol (its one template, set "rsdix"):
    # notebook 03 passes that set (eval_templates); the check must not fall back to "rs"
    assert eval_templates(load_eval_config("paper")) == "rsdix"
    assert eval_templates(load_eval_config("paper", protocol="rsdix", templates="rs+clip")) == "rs+clip"
    clip_check = QuickCheck(tiny_bundle, tmp_path, templates=eval_templates(load_eval_config("paper")))
    zs_clip = zero_shot(tiny_bundle, load_classification("whu_rs19", tmp_path), templates="rsdix")
    torch.testing.assert_close(clip_check.zero_shot_scores(tiny_bundle), torch.as_tensor(zs_clip.scores).float(),
                               rtol=1e-4, atol=1e-5)

    # capped (the smoke profile and the dry run cap both notebooks): the same seeded, stratified
    # 8 images as notebook 05 at max_images=8, and a split label that says so; on the old code the
    # check took a torch.randperm subset labelled "random 8", which 05 labelled "all"
    capped = QuickCheck(tiny_bundle, tmp_path, max_zero_shot=8)
    suite_set = load_classification("whu_rs19", tmp_path, max_images=8, seed=0)
    assert capped.zero_shot_split == split_label("all", suite_set) == "all: 8 of 24"
    zs8 = zero_shot(tiny_bundle, suite_set, templates="rs")
    assert capped(tiny_bundle)["zs_top1"] == pytest.approx(zs8.metrics["top1"], abs=1e-6)



class OnMeta(torch.nn.Module):
    """A CLIP model that says it lives on the ``meta`` device (a stand-in for a GPU): it records the
    device of every input it is given and answers with features on the CPU."""

    def __init__(self, dim=8):
        super().__init__()
        self.dim, self.seen = dim, []
        self.anchor = torch.nn.Linear(2, 2)   # what the fingerprint hashes (on the CPU)

    def parameters(self, recurse=True):   # where the model's inputs must go: the device
        yield torch.empty(0, device="meta")

    def _features(self, x):
        self.seen.append(x.device.type)
        g = torch.Generator().manual_seed(len(self.seen))
        return torch.nn.functional.normalize(torch.randn(x.shape[0], self.dim, generator=g), dim=-1)

    def encode_image(self, x, normalize=False):
        return self._features(x)

    def encode_text(self, x, normalize=False):
        return self._features(x)


def test_the_check_feeds_a_model_on_a_device_and_answers_on_the_cpu(tmp_path, ucm_root, whu_root, tiny_bundle):
    """issue #28: after fit the model stays on the GPU, and the check fed it CPU images and tokens
    (notebook 03, ``rsdix train --quick-check``, the efficiency study). Every input now goes to the
    model's device, and the scores come back to the CPU."""
    ann = json.loads((ucm_root / "dataset_ucm.json").read_text())
    ann["images"] = [im for im in ann["images"] if im["split"] == "test"][:10]
    (tmp_path / "ucm_captions").mkdir()
    (tmp_path / "ucm_captions" / "dataset_ucm.json").write_text(json.dumps(ann))
    (tmp_path / "ucm_captions" / "images").symlink_to(ucm_root / "images")
    for cls in sorted(p.name for p in whu_root.iterdir() if p.is_dir())[:3]:
        (tmp_path / "whu_rs19" / cls).mkdir(parents=True)
        for img in sorted((whu_root / cls).iterdir())[:2]:
            (tmp_path / "whu_rs19" / cls / img.name).symlink_to(img)
    check = QuickCheck(tiny_bundle, tmp_path)
    model = OnMeta()
    bundle = dataclasses.replace(tiny_bundle, model=model)
    out = check(bundle)
    assert set(model.seen) == {"meta"} and len(model.seen) >= 3
    assert 0 <= out["zs_top1"] <= 100 and 0 <= out["mR"] <= 100
    assert check.zero_shot_scores(bundle).device.type == "cpu"


def test_the_check_encodes_the_texts_once_per_text_tower(tmp_path, ucm_root, tiny_bundle, monkeypatch):
    """A locked text tower (the cpu profile) gives the same text features for every run: the check
    encodes the captions once, and again only when a text weight changes (not the image tower or
    the logit scale)."""
    import copy

    from rsdix.evaluation.quick_check import text_tower_key

    check = QuickCheck(tiny_bundle, ucm_root.parent, split="val", zero_shot=None)
    calls = []
    encode = QuickCheck._texts
    monkeypatch.setattr(QuickCheck, "_texts", staticmethod(lambda *a, **k: calls.append(1) or encode(*a, **k)))
    check(tiny_bundle)
    other = copy.deepcopy(tiny_bundle)
    with torch.no_grad():
        next(other.model.visual.parameters()).add_(0.5)
        other.model.logit_scale.add_(1.0)
    assert text_tower_key(other.model) == text_tower_key(tiny_bundle.model)
    second = check(other)
    assert len(calls) == 1                                           # texts reused
    assert second == QuickCheck(tiny_bundle, ucm_root.parent, split="val", zero_shot=None)(other)  # same numbers
    with torch.no_grad():
        next(p for n, p in other.model.named_parameters() if not n.startswith("visual.") and "logit" not in n).add_(0.5)
    assert text_tower_key(other.model) != text_tower_key(tiny_bundle.model)
    check(other)
    assert len(calls) == 3                                           # (the second: the fresh check above)
