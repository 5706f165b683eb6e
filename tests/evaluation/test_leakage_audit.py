"""The leakage audit: feature (cosine) near-duplicates of made-up copies, exclusion lists that
training reads back (data.exclude), the audit on real data (UCM-Captions' byte-identical train
images) and the command line."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.cli import main
from rsdix.data.duplicates import (COSINE_THRESHOLD, Duplicate, exclusion_rows, feature_duplicates, read_exclusions,
                                write_exclusions)
from rsdix.errors import DataError
from rsdix.evaluation.leakage_audit import ImageFiles, count_table, default_feature_model, leakage_audit
from rsdix.models.features import FeatureCache, encode_images
from rsdix.models import load_model
from rsdix.training.clip import load_clip_config
from rsdix.training.clip_data import build_train_dataset


def scenes(n, seed=0):
    """``n`` distinct textured scenes (smooth random fields, 256 px)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8")).resize((256, 256), Image.BICUBIC)
            for _ in range(n)]


def test_feature_duplicates_find_resized_and_reencoded_copies_not_other_scenes(tmp_path):
    images = scenes(12)
    paths = []
    for i, im in enumerate(images):
        im.save(tmp_path / f"s{i}.png")
        paths.append(tmp_path / f"s{i}.png")
    images[0].resize((128, 128)).save(tmp_path / "small.png")          # resized copy of scene 0
    images[1].save(tmp_path / "re.jpg", quality=70)                     # re-encoded copy of scene 1
    paths += [tmp_path / "small.png", tmp_path / "re.jpg"]
    records = [("x", "train" if i < 12 else "test", p) for i, p in enumerate(paths)]
    feats = encode_images(default_feature_model(), ImageFiles(paths), FeatureCache(), dataset_name="t")
    rows = feature_duplicates(records, feats.numpy())
    pairs = {frozenset(r.file for r in rows if r.group == g) for g in {r.group for r in rows}}
    assert pairs == {frozenset({str(paths[0]), str(tmp_path / "small.png")}),
                     frozenset({str(paths[1]), str(tmp_path / "re.jpg")})}
    assert all(r.distance <= 1 - COSINE_THRESHOLD for r in rows)
    # the exclusion list: the train member of each pair (the test copy is what it leaks into)
    excl = exclusion_rows(rows)
    assert sorted(r["file"] for r in excl) == sorted([str(paths[0]), str(paths[1])])
    assert all(r["reason"] == "cosine duplicate of x/test" for r in excl)


def test_feature_duplicates_refuse_mismatched_or_non_finite_features():
    with pytest.raises(DataError, match="2 feature rows for 3 images"):
        feature_duplicates([("x", "a", "p")] * 3, np.zeros((2, 4)))
    with pytest.raises(DataError, match="NaN or infinite"):
        feature_duplicates([("x", "a", "p")] * 2, np.array([[np.nan, 1.0], [1.0, 0.0]]))


def test_exclusion_rows_only_train_members_touching_another_split():
    rows = [Duplicate(0, "d", "train", "/r/d/a.jpg", "exact", 0.0), Duplicate(0, "d", "train", "/r/d/b.jpg", "exact", 0.0),
            Duplicate(1, "d", "train", "/r/d/c.jpg", "phash", 2.0), Duplicate(1, "e", "all", "/r/e/c.jpg", "phash", 2.0)]
    assert exclusion_rows(rows) == [{"dataset": "d", "split": "train", "file": "/r/d/c.jpg",
                                     "reason": "phash duplicate of e/all"}]
    table = count_table(rows)
    assert table.to_dict("records") == [{"a": "d/train", "b": "d/train", "exact": 1, "phash": 0, "cosine": 0},
                                        {"a": "d/train", "b": "e/all", "exact": 0, "phash": 1, "cosine": 0}]


def test_exclusion_rows_keep_only_the_kinds_asked_for():
    # the random-weight feature model's cosine groups are look-alikes: the audit excludes them only
    # when a trained model gave the features
    rows = [Duplicate(0, "d", "train", "/r/d/a.jpg", "cosine", 0.9995), Duplicate(0, "d", "test", "/r/d/b.jpg", "cosine", 0.9995),
            Duplicate(1, "d", "train", "/r/d/c.jpg", "exact", 0.0), Duplicate(1, "d", "val", "/r/d/e.jpg", "exact", 0.0)]
    assert [r["file"] for r in exclusion_rows(rows)] == ["/r/d/a.jpg", "/r/d/c.jpg"]
    assert [r["file"] for r in exclusion_rows(rows, kinds=("exact", "phash"))] == ["/r/d/c.jpg"]


def test_exclusion_list_round_trip_and_training_leaves_the_images_out(tmp_path, ucm_root):
    root = ucm_root.parent
    excluded = [ucm_root / "images" / name for name in ("102.jpg", "103.jpg")]
    rows = [{"dataset": "ucm_captions", "split": "train", "file": str(p), "reason": "test"} for p in excluded]
    out = write_exclusions(rows, tmp_path / "exclude.csv", root)
    assert [r["file"] for r in csv.DictReader(out.open())] == ["ucm_captions/images/102.jpg",
                                                                "ucm_captions/images/103.jpg"]
    assert set(read_exclusions([out], root)) == {p.resolve() for p in excluded}
    bundle = load_model("rsdix-tiny")
    full = build_train_dataset(load_clip_config("smoke", data__data_root=str(root), data__fraction=1.0), bundle, seed=0)
    cfg = load_clip_config("smoke", data__data_root=str(root), data__fraction=1.0, data__exclude=[str(out)])
    kept = build_train_dataset(cfg, bundle, seed=0)
    assert len(full) - len(kept) == 2
    assert not {"102.jpg", "103.jpg"} & {r.filename for r in kept.records}
    with pytest.raises(DataError, match="exclusion list not found"):
        read_exclusions([tmp_path / "nope.csv"], root)
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(DataError, match="needs a 'file' column"):
        read_exclusions([tmp_path / "bad.csv"], root)


@pytest.fixture
def small_caption_set(tmp_path, ucm_root):
    """A data root holding a 40-image slice of UCM-Captions (with its byte-identical pair 102/103
    in train) and a copy of image 102 in a test split of another caption set."""
    root = tmp_path / "data"
    data = json.loads((ucm_root / "dataset_ucm.json").read_text())
    keep = [im for im in data["images"] if 90 <= int(im["filename"].split(".")[0]) < 130]
    (root / "ucm_captions" / "images").mkdir(parents=True)
    for im in keep:
        (root / "ucm_captions" / "images" / im["filename"]).write_bytes(
            (ucm_root / "images" / im["filename"]).read_bytes())
    (root / "ucm_captions" / "dataset_ucm.json").write_text(json.dumps({**data, "images": keep}))
    (root / "sydney_captions" / "images").mkdir(parents=True)
    Image.open(ucm_root / "images" / "102.jpg").resize((200, 200)).save(root / "sydney_captions" / "images" / "x.png")
    sydney = {"images": [{"filename": "x.png", "split": "test", "sentences": [{"raw": "a field"}]}]}
    (root / "sydney_captions" / "dataset_sydney.json").write_text(json.dumps(sydney))
    return root


def test_audit_on_real_images_finds_the_ucm_duplicates_and_a_copy_across_datasets(small_caption_set, tmp_path):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    model = default_feature_model()
    assert torch.rand(1) == before          # the fixed random feature model leaves the global RNG alone
    assert model.fingerprint() == default_feature_model().fingerprint()
    audit = leakage_audit(["ucm_captions", "sydney_captions", "rsicd"], small_caption_set, cache=FeatureCache(),
                          skip_missing=True)
    counts = {(r["a"], r["b"]): r for r in audit.counts.to_dict("records")}
    assert counts[("ucm_captions/train", "ucm_captions/train")]["exact"] == 1      # 102.jpg == 103.jpg
    cross = counts[("sydney_captions/test", "ucm_captions/train")]
    assert cross["exact"] == 0 and cross["phash"] >= 1                            # a resized PNG copy of 102
    assert any("rsicd left out" in n for n in audit.notes)
    excluded = {r["file"].rsplit("/", 1)[1] for r in audit.exclusions}
    assert {"102.jpg", "103.jpg"} <= excluded        # 103 is 102's exact twin, 102 the test copy's source
    written = audit.write(tmp_path / "out")
    assert next(csv.DictReader(written["exclude"].open()))["file"].startswith("ucm_captions/images/")
    assert audit.settings["cosine_threshold"] == COSINE_THRESHOLD


DOC_LEAKAGE = "rsdix data leakage ucm_captions sydney_captions --out runs/leakage"


def test_cli_leakage_prints_counts_and_writes_files(small_caption_set, tmp_path, capsys):
    # the command of docs/evaluation.md (data root and output folder of the test)
    out = tmp_path / "audit"
    assert main([*DOC_LEAKAGE.split()[1:], "--root", str(small_caption_set), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sydney_captions/test" in text and "exclusion list" in text
    assert {p.name for p in out.iterdir()} >= {"leakage_groups.csv", "leakage_exclude.csv", "leakage_counts.csv"}
    assert main(["data", "leakage", "--root", str(small_caption_set)]) == 2      # no dataset named: one line


def test_max_per_split_audits_evenly_spaced_images_of_each_split_and_says_so():
    from rsdix.evaluation.leakage_audit import cap_per_split
    records = [("a", "train", Path(f"t{i}")) for i in range(10)] + [("a", "test", Path("x")), ("b", "all", Path("y"))]
    out, notes = cap_per_split(records, 4)
    assert [r[2].name for r in out if r[1] == "train"] == ["t0", "t2", "t5", "t7"]
    assert [r[2].name for r in out if r[1] != "train"] == ["x", "y"]
    assert notes == ["a/train: 4 of 10 images audited (max_per_split)"]
    assert cap_per_split(records, None) == (records, [])


def test_leakage_config_loads_per_profile_and_rejects_bad_values():
    from rsdix import config
    from rsdix.errors import ConfigError
    assert config.load("leakage", "paper").max_per_split is None
    with pytest.raises(ConfigError, match="max_bits"):
        config.load("leakage", "cpu", ["max_bits=65"])
