"""The dry run's stand-ins load through the real code paths: open_clip's ``openai`` tag from a hub
cache (QuickGELU), RemoteCLIP's plain state dict at ``checkpoints/``, GPT-2 and its byte-level BPE
by the hub name ``gpt2``; the stand-in datasets in their layouts, an image for every file name."""
from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from rsdix.data import registry
from rsdix.data.captions import CaptionDataset, read_karpathy
from rsdix.evaluation.model_specs import resolve_weights
from rsdix.models import load_model
from rsdix.paths import WEIGHTS_ROOT_ENV
from rsdix.reporting import standin_data, standins
from rsdix.s2.dataset import load_s2lcd

CAPTIONS = ["many buildings are around the green forest .", "there is a long bridge over the river .",
            "a plane is parked at the airport near the runway .", "some green trees are near the pond ."] * 20


@pytest.fixture(scope="module")
def b32_state():
    return standins.random_clip_state("ViT-B-32", seed=3)


def _activation(model):
    return type(model.visual.transformer.resblocks[0].mlp.gelu)


@pytest.mark.slow
def test_openai_standin_is_what_open_clip_loads_offline(tmp_path, b32_state):
    hub = tmp_path / "hub"
    path = standins.write_openai_clip(hub, "ViT-B-32", state=b32_state)
    # the hub's layout: refs/main -> snapshots/<rev>/open_clip_model.safetensors -> blobs/<sha256>
    repo = hub / "models--timm--vit_base_patch32_clip_224.openai"
    assert (repo / "refs" / "main").read_text() == path.parent.name and path.is_symlink()
    assert path.resolve().parent == (repo / "blobs").resolve()
    model, _, _ = open_clip.create_model_and_transforms("ViT-B-32", pretrained="openai", cache_dir=str(hub),
                                                        force_quick_gelu=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, b32_state[key]), key
    # rsdix's load path (the paper configs' ViT-B-32 @ openai) adds QuickGELU itself
    bundle = load_model("ViT-B-32", pretrained="openai", cache_dir=str(hub))
    assert _activation(bundle.model) is open_clip.transformer.QuickGELU
    assert bundle.model_config["quick_gelu"] is True
    assert torch.equal(bundle.model.visual.proj, b32_state["visual.proj"])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["ViT-B-16", "ViT-L-14"])
def test_larger_openai_standins_load(tmp_path, arch):
    state = standins.random_clip_state(arch, seed=1)
    standins.write_openai_clip(tmp_path, arch, state=state)
    bundle = load_model(arch, pretrained="openai", cache_dir=str(tmp_path))
    assert _activation(bundle.model) is open_clip.transformer.QuickGELU
    key = "visual.conv1.weight"
    assert torch.equal(bundle.model.state_dict()[key], state[key])
    del bundle, state


def test_remoteclip_standin_resolves_like_the_config_path(tmp_path, monkeypatch, b32_state):
    path = standins.write_remoteclip(tmp_path, "ViT-B-32", state=b32_state)
    assert path == tmp_path / "checkpoints" / "RemoteCLIP-ViT-B-32.pt"
    monkeypatch.setenv(WEIGHTS_ROOT_ENV, str(tmp_path))
    resolved = resolve_weights("checkpoints/RemoteCLIP-ViT-B-32.pt")   # evaluate/paper.yaml's baseline
    assert Path(resolved) == path
    assert isinstance(torch.load(path, weights_only=True), dict)         # a plain state dict, as released
    bundle = load_model("ViT-B-32", pretrained=resolved)
    assert torch.equal(bundle.model.state_dict()["text_projection"], b32_state["text_projection"])


def test_gpt2_config_is_gpt2s():
    cfg = GPT2Config()   # what write_gpt2 builds from: gpt2's published config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions, cfg.vocab_size) == (12, 12, 768, 1024, 50257)


def test_gpt2_standin_from_pretrained_by_hub_name(tmp_path):
    hub = tmp_path / "hub"
    snapshot = standins.write_gpt2(hub, CAPTIONS, n_layer=1)   # one layer: seconds (the dry run builds 12)
    assert (hub / "models--gpt2" / "refs" / "main").read_text() == snapshot.name
    assert (snapshot / "merges.txt").read_text().startswith("#version: 0.2")
    vocab = json.loads((snapshot / "vocab.json").read_text())
    assert "<|endoftext|>" in vocab and "Ġthe" in vocab   # byte-level BPE, GPT-2's space marker
    model = GPT2LMHeadModel.from_pretrained("gpt2", cache_dir=str(hub), local_files_only=True)
    tok = AutoTokenizer.from_pretrained("gpt2", cache_dir=str(hub), local_files_only=True)
    assert model.config.n_embd == 768 and model.config.vocab_size == 50257 and len(tok) <= 50257
    ids = tok("many buildings are around the river .")["input_ids"]
    assert tok.decode(ids) == "many buildings are around the river ." and tok.eos_token == "<|endoftext|>"
    out = model(torch.tensor([ids]))
    assert out.logits.shape == (1, len(ids), 50257)


@pytest.mark.slow
def test_caption_standins_have_an_image_for_every_file_name(data_root, tmp_path):
    need = ["rsicd", "rsitmd", "sydney_captions"]
    for name in need:
        if not (data_root / registry.CAPTIONS_ONLY[name]).exists():
            pytest.skip(f"{registry.CAPTIONS_ONLY[name]} not under the data root")
    rows = standin_data.make_data_root(data_root, tmp_path / "data", need)
    kinds = {r["dataset"]: r["kind"] for r in rows}
    assert all(kinds[n] == "stand-in" for n in need)
    for name in need:
        info = registry.get_info(name)
        caption_file = tmp_path / "data" / info.path / info.annotation
        assert caption_file.resolve() == (data_root / registry.CAPTIONS_ONLY[name]).resolve()  # the real file
        names = [im["filename"] for im in json.loads(caption_file.read_text())["images"]]
        missing = [f for f in names if not (caption_file.parent / "images" / f).exists()]
        assert not missing, f"{name}: {len(missing)} file names without an image, e.g. {missing[:3]}"
        with Image.open(caption_file.parent / "images" / names[0]) as im:
            assert im.size == (standin_data.SIZES[name],) * 2
            assert im.format == ("TIFF" if names[0].endswith(".tif") else "JPEG")
        records = read_karpathy(caption_file, allow_empty=True)   # RSITMD's real file has empty captions
        test = [r for r in records if r.split == "test"]
        ds = CaptionDataset(test, caption_file.parent / "images", mode="eval")
        assert len(ds) == info.splits["test"] and ds[0] is not None


def test_real_datasets_are_linked_capped(data_root, tmp_path):
    if not (data_root / "ucm_captions").is_dir() or not (data_root / "whu_rs19").is_dir():
        pytest.skip("UCM-Captions / WHU-RS19 not under the data root")
    standin_data.make_data_root(data_root, tmp_path / "data", [], images_per_split=4, images_per_class=2)
    ucm = tmp_path / "data" / "ucm_captions"
    splits = [im["split"] for im in json.loads((ucm / "dataset_ucm.json").read_text())["images"]]
    assert sorted(splits) == ["test"] * 4 + ["train"] * 4 + ["val"] * 4
    names = [im["filename"] for im in json.loads((ucm / "dataset_ucm.json").read_text())["images"]]
    assert (ucm / "images" / names[0]).resolve() == (data_root / "ucm_captions/images" / names[0]).resolve()
    assert len({(int(n.split(".")[0]) - 1) // 100 for n in names}) >= 4   # evenly spaced: several classes
    labels = (ucm / "labels.csv").read_text().splitlines()
    assert labels[0] == "filename,label" and len(labels) == 13
    whu = registry.load_dataset("whu_rs19", tmp_path / "data")
    assert len(whu.class_names) == 19 and len(whu) == 38
    assert (tmp_path / "data" / "sentinel2").resolve() == (data_root / "sentinel2").resolve()


def test_nwpu_s2lcd_and_class_standins_in_their_layouts(data_root, tmp_path):
    names = ["nwpu_captions", "s2lcd"] + sorted(standin_data.CLASS_NAMES.keys() - {"nwpu_captions"})
    rows = standin_data.make_data_root(data_root, tmp_path / "data", names + ["whu_earth"], images_per_class=2)
    assert {r["dataset"]: r["kind"] for r in rows}["whu_earth"] == "absent"
    root = tmp_path / "data"
    nwpu = registry.load_dataset("nwpu_captions", root, split="train")
    assert len(nwpu) == 45 and len(nwpu.texts()) == 45 * 5
    raw = json.loads((root / "s2lcd" / "dataset_s2lcd.json").read_text())
    assert all("split" not in im for im in raw["images"])           # as published: no splits
    s2 = load_s2lcd(root / "s2lcd", split=None)
    assert len(s2) == 30 and {r.split for r in s2.records} == {"train", "val", "test"}   # by scene
    for name in sorted(standin_data.CLASS_NAMES.keys() - {"nwpu_captions"}):
        info = registry.get_info(name)
        ds = registry.load_dataset(name, root)
        assert len(ds.class_names) == info.classes, name          # the registry's class count
        assert len(ds) == 2 * info.classes
