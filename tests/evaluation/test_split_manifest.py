"""Split manifests: the files a protocol's split rule picks, written once per distinct list, the
hash every row carries; the committed manifests of the shared data still match it."""
from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from evaluation_fixtures import class_folder  # noqa: F401 (a pytest fixture)
from rsdix.cli import main
from rsdix.data.manifest import manifest_hash, read_manifest
from rsdix.data.registry import REGISTRY, DatasetInfo
from rsdix.evaluation.protocols import get_protocol
from rsdix.evaluation.split_manifest import MANIFEST_DIR, dataset_manifest, write_dataset_manifests
from rsdix.evaluation.suite import EvalConfig, load_eval_config

SHARED = {"whu_rs19": ["all", "sorted_80_20"], "ucm_classification": ["all", "sorted_80_20"],
          "eurosat_ms": ["all", "sorted_80_20"], "ucm_captions": ["test"]}


def test_protocols_sharing_a_file_list_share_one_manifest(class_folder, monkeypatch, tmp_path):
    monkeypatch.setitem(REGISTRY, "whu_rs19", DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "cls"))
    done = write_dataset_manifests("whu_rs19", ["all"], tmp_path / "m", EvalConfig(split_from={}), class_folder.parent)
    files = {r["path"] for r in done}
    assert {p.rsplit("/", 1)[1] for p in files} == {"whu_rs19.all.csv", "whu_rs19.sorted_80_20.csv"}
    every, header = read_manifest(tmp_path / "m" / "whu_rs19.all.csv")
    assert len(every) == 9 and "rsdix" in header["protocol"] and "rs_transclip" in header["protocol"]
    last, header = read_manifest(tmp_path / "m" / "whu_rs19.sorted_80_20.csv")
    assert len(last) == 3 and header["protocol"] == "remoteclip"
    assert {r["manifest"] for r in done if r["protocol"] == "georsclip"} == {manifest_hash(every)}


def test_a_caption_split_lists_its_images_and_the_caption_file(caption_file_registry):
    root, cfg = caption_file_registry
    frame, header = dataset_manifest("ucm_captions", get_protocol("rs_transclip"), cfg, root)
    assert list(frame["label"]) == ["test", "captions"] and frame["path"].iloc[1] == "caps/dataset_toy.json"
    assert "reports no retrieval" in header["files"]


@pytest.fixture
def caption_file_registry(tmp_path, monkeypatch):
    images = tmp_path / "caps" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(images / "0.png")
    (tmp_path / "caps" / "dataset_toy.json").write_text(
        '{"images": [{"filename": "0.png", "split": "test", "sentences": [{"raw": "a beach"}]}]}')
    monkeypatch.setitem(REGISTRY, "ucm_captions", DatasetInfo("ucm_captions", "UCM", "captions", "karpathy", "caps",
                                                              "dataset_toy.json"))
    return tmp_path, EvalConfig(split_from={})


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(SHARED))
def test_the_committed_manifests_match_the_shared_data(name, data_root):
    # `rsdix data manifest NAME --protocol all` wrote them from the cpu config; the data is unchanged
    cfg = load_eval_config("cpu")
    for rule in SHARED[name]:
        committed, header = read_manifest(MANIFEST_DIR / f"{name}.{rule}.csv")
        protocol = get_protocol(header["protocol"].split(", ")[0])
        frame, _ = dataset_manifest(name, protocol, cfg, data_root)
        assert manifest_hash(frame) == header["manifest_sha256"] == manifest_hash(committed), f"{name}.{rule}"


def test_the_command_writes_a_manifest(class_folder, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(REGISTRY, "whu_rs19", DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "cls"))
    assert main(["data", "manifest", "whu_rs19", "--protocol", "remoteclip", "--root", str(class_folder.parent),
                 "--out", str(tmp_path)]) == 0
    assert "whu_rs19 under remoteclip: 3 files" in capsys.readouterr().out
    rows = pd.read_csv(tmp_path / "whu_rs19.sorted_80_20.csv", comment="#")
    assert list(rows.columns) == ["path", "label", "sha256", "bytes"]
