"""The model zoo: the data file checked at load (one error naming entry and key), every entry's
loading path on a random-weight stand-in in its own format (keys and shapes of the big ViTs on the
meta device), download and the offline line, and the zoo: model spec with its leakage caveats."""
from __future__ import annotations

import io
import shutil
import zipfile

import open_clip
import pytest
import torch

from rsdix.errors import ConfigError, DataError, OfflineError
from rsdix.evaluation.model_specs import parse_model_spec, training_sets
from rsdix.evaluation.protocols import not_zero_shot, protocols
from rsdix.models import load_model, load_zoo_model
from rsdix.models import zoo as zoo_module
from rsdix.models.zoo import (FOLDER_FORMATS, check_zoo_file, fetch, get_entry, is_present, local_path, parse_entry,
                              read_zoo_weights, zoo)
from rsdix.models.zoo_standins import write_standin

GOOD = {"family": "X", "title": "X ViT-B/32", "format": "state_dict", "arch": "ViT-B-32-quickgelu",
        "hub": "someone/x", "file": "x.pt", "local": "x.pt", "image_size": 224, "mean": "clip", "std": "clip",
        "source": "a paper", "published": []}
REQUIRED_FAMILIES = {"RemoteCLIP", "GeoRSCLIP", "SkyCLIP", "Git-RSCLIP", "RS-M-CLIP", "FarSLIP", "RSDiX-CLIP",
                     "OpenAI CLIP"}
CHEAP = [n for n, e in zoo().items() if e.format in ("state_dict", "training_checkpoint")]


def test_the_zoo_lists_every_public_checkpoint_with_a_source():
    entries = zoo()
    assert len(entries) >= 12 and {e.family for e in entries.values()} >= REQUIRED_FAMILIES
    for name in ("RemoteCLIP-RN50", "RemoteCLIP-ViT-B-32", "RemoteCLIP-ViT-L-14", "GeoRSCLIP-ViT-B-32",
                 "GeoRSCLIP-ViT-L-14", "GeoRSCLIP-ViT-H-14", "SkyCLIP-ViT-B-32", "SkyCLIP-ViT-L-14", "Git-RSCLIP",
                 "Git-RSCLIP-base", "RS-M-CLIP", "FarSLIP1-ViT-B-32", "FarSLIP1-ViT-B-16", "RSDiX-CLIP-ViT-B-32",
                 "OpenAI-CLIP-ViT-B-32"):
        entry = entries[name]
        assert entry.where and entry.download_url.startswith("https://") and entry.source
    # QuickGELU where the weights were trained with it, GELU where the init was a GELU model
    assert get_entry("RemoteCLIP-ViT-B-32").arch == "ViT-B-32-quickgelu"
    assert get_entry("GeoRSCLIP-ViT-H-14").arch == "ViT-H-14" and get_entry("SkyCLIP-ViT-B-32").arch == "ViT-B-32"
    assert get_entry("Git-RSCLIP").image_size == 256 and get_entry("Git-RSCLIP").mean == (0.5, 0.5, 0.5)
    known = set(protocols())
    for entry in entries.values():   # every published number names a protocol rsdix has, or none
        assert all(p.protocol in known | {""} for p in entry.published), entry.name


@pytest.mark.parametrize("key, value, message", [
    ("format", "pickle", "X.format: 'pickle' is not one of"),
    ("arch", "ViT-B-33", "X.arch: 'ViT-B-33' is not an open_clip model name"),
    ("mean", [0.5, 0.5], "X.mean: [0.5, 0.5] must be 3 numbers"),
    ("image_size", "224", "X.image_size"),
    ("colour", "red", "X.colour: unknown key"),
    ("published", [{"dataset": "AID", "task": "zero-shot", "metric": "top1", "value": "high", "source": "s"}],
     "X.published[0].value: 'high' is not a number"),
])
def test_a_bad_entry_is_one_line_naming_entry_and_key(key, value, message):
    with pytest.raises(ConfigError) as err:
        parse_entry("X", {**GOOD, key: value})
    assert message in str(err.value) and "\n" not in str(err.value) and "zoo.yaml" in str(err.value)
    with pytest.raises(ConfigError, match=r"X\.source: missing"):
        parse_entry("X", {k: v for k, v in GOOD.items() if k != "source"})
    with pytest.raises(ConfigError, match="unknown checkpoint 'nope'; known: RemoteCLIP-RN50"):
        get_entry("nope")


@pytest.mark.parametrize("name", CHEAP)
def test_every_state_dict_entry_maps_its_keys_and_shapes(name, tmp_path):
    # zero-stride stand-ins (one number per tensor) of the entry's format, read by the zoo's own
    # reader and checked against its architecture built on the meta device: ViT-H-14 in seconds
    path = write_standin(name, tmp_path, cheap=True)
    assert path.stat().st_size < 400_000
    assert check_zoo_file(name, path) is None
    # the activation the entry's architecture builds: QuickGELU for OpenAI-initialised weights
    entry = get_entry(name)
    with torch.device("meta"):
        model = open_clip.create_model(entry.arch, device="meta")
    act = model.transformer.resblocks[0].mlp.gelu
    assert isinstance(act, open_clip.transformer.QuickGELU) == entry.arch.endswith("-quickgelu")


def test_a_file_of_another_architecture_is_named(tmp_path):
    path = write_standin("RemoteCLIP-ViT-B-32", tmp_path, cheap=True)
    problem = check_zoo_file("RemoteCLIP-RN50", path)
    assert problem and "missing keys" in problem


@pytest.mark.slow
def test_remoteclip_loads_with_quickgelu_and_its_own_features(tmp_path, monkeypatch):
    # the stand-in in RemoteCLIP's format under $RSDIX_WEIGHTS_ROOT/checkpoints, loaded through
    # load_model("zoo:..."): the same features as open_clip's ViT-B-32-quickgelu holding the same
    # weights (GELU would differ)
    monkeypatch.setenv("RSDIX_WEIGHTS_ROOT", str(tmp_path))
    write_standin("RemoteCLIP-ViT-B-32", tmp_path, seed=3)
    state = torch.load(local_path("RemoteCLIP-ViT-B-32"), weights_only=True)
    bundle = load_model("zoo:RemoteCLIP-ViT-B-32")
    assert bundle.name == "RemoteCLIP-ViT-B-32" and bundle.model_config.get("quick_gelu") is True
    assert isinstance(bundle.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    ref = open_clip.create_model("ViT-B-32-quickgelu")
    ref.load_state_dict(state)
    x = torch.randn(1, 3, 224, 224)
    tokens = bundle.tokenizer(["a satellite photo of a beach."])
    with torch.no_grad():
        assert torch.allclose(bundle.model.encode_image(x), ref.eval().encode_image(x), atol=1e-5)
        assert torch.allclose(bundle.model.encode_text(tokens), ref.encode_text(tokens), atol=1e-5)
    assert bundle.preprocess_config["mean"] == pytest.approx((0.48145466, 0.4578275, 0.40821073))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SkyCLIP-ViT-B-32", "FarSLIP1-ViT-B-16", "OpenAI-CLIP-RN50", "RSDiX-CLIP-ViT-B-32",
                                  "RemoteCLIP-RN50"])
def test_every_format_loads_from_its_stand_in(name, tmp_path):
    # training checkpoint (module. keys), safetensors, a Lightning checkpoint of a transformers
    # CLIPModel: the full load path of each format, with random weights
    write_standin(name, tmp_path, seed=1)
    bundle = load_zoo_model(name, root=tmp_path)
    with torch.no_grad():
        feats = bundle.model.encode_image(torch.randn(1, 3, 224, 224))
    assert feats.shape[-1] == bundle.embed_dim and torch.isfinite(feats).all()


def test_the_lightning_format_maps_transformers_keys_back_to_open_clip(tmp_path):
    # RSDiX-CLIP's checkpoints hold a transformers CLIPModel as `_student`: read through the
    # transformers <-> open_clip key mapping, the weights come back exactly (rsdix-tiny's shapes)
    from rsdix.models.export import open_clip_to_hf

    state = load_model("rsdix-tiny").model.state_dict()
    hf = open_clip_to_hf(state)
    path = tmp_path / "rsdix.ckpt"
    torch.save({"epoch": 1, "state_dict": {**{f"_student.{k}": v for k, v in hf.items()},
                                           **{f"_teacher.{k}": 0 * v for k, v in hf.items()}}}, path)
    back = read_zoo_weights(get_entry("RSDiX-CLIP-ViT-B-32"), path)
    assert set(back) == set(state) - {"attn_mask"} and all(torch.equal(back[k], state[k]) for k in back)


def test_transformers_and_open_clip_hub_entries_load_from_their_folders(tmp_path):
    # Git-RSCLIP: a (reduced) SigLIP folder at 256 px with mean/std 0.5, its preprocessing taken
    # from the folder; RS-M-CLIP: the open_clip hub layout (a tiny architecture: XLM-RoBERTa needs the hub)
    write_standin("Git-RSCLIP", tmp_path)
    bundle = load_zoo_model("Git-RSCLIP", root=tmp_path)
    assert bundle.image_size == 256 and bundle.preprocess_config["mean"] == (0.5, 0.5, 0.5)
    assert bundle.tokenizer(["a beach"]).shape == (1, 64)          # SigLIP pads to max length
    load_model("rsdix-tiny")                                         # registers the tiny config
    write_standin("RS-M-CLIP", tmp_path, arch="rsdix-tiny")
    hub = load_zoo_model("RS-M-CLIP", root=tmp_path)
    with torch.no_grad():
        assert hub.model.encode_text(hub.tokenizer(["a beach"])).shape[-1] == 32
    assert all(is_present(n, tmp_path) for n in ("Git-RSCLIP", "RS-M-CLIP"))


def test_longclip_checkpoints_are_refused_in_one_line(tmp_path):
    path = write_standin("FarSLIP2-ViT-B-32", tmp_path, cheap=True)
    with pytest.raises(DataError) as err:
        load_zoo_model("FarSLIP2-ViT-B-32", root=tmp_path)
    assert "LongCLIP" in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    assert not get_entry("FarSLIP2-ViT-B-32").loadable


def test_offline_get_says_the_url_and_the_path_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_module, "hub_reachable", lambda host="", timeout=3.0: False)
    with pytest.raises(OfflineError) as err:
        fetch("RemoteCLIP-ViT-B-32", tmp_path)
    text = str(err.value)
    assert "\n" not in text and "https://huggingface.co/chendelong/RemoteCLIP/resolve/main/RemoteCLIP-ViT-B-32.pt" in text
    assert str(tmp_path / "checkpoints" / "RemoteCLIP-ViT-B-32.pt") in text
    with pytest.raises(OfflineError, match="unzip it and put SkyCLIP_ViT_B32_top50pct/epoch_20.pt at"):
        fetch("SkyCLIP-ViT-B-32", tmp_path)
    with pytest.raises(OfflineError, match="Google Drive"):
        fetch("RSDiX-CLIP-ViT-B-32", tmp_path)
    with pytest.raises(OfflineError, match="weights not found at .*rsdix zoo get RemoteCLIP-ViT-B-32"):
        load_zoo_model("RemoteCLIP-ViT-B-32", root=tmp_path)


def test_get_unzips_the_member_and_checks_the_hash(tmp_path, monkeypatch):
    # SkyCLIP ships a zip with the checkpoint inside: the member lands at the entry's local path
    payload = io.BytesIO()
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, payload)
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("SkyCLIP_ViT_B32_top50pct/epoch_20.pt", payload.getvalue())
    monkeypatch.setattr(zoo_module, "hub_reachable", lambda host="", timeout=3.0: True)
    monkeypatch.setattr(zoo_module.urllib.request, "urlretrieve", lambda url, dest: shutil.copyfile(archive, dest))
    path = fetch("SkyCLIP-ViT-B-32", tmp_path / "w")
    assert path == tmp_path / "w" / "checkpoints" / "SkyCLIP_ViT_B32_top50pct.pt" and path.read_bytes() == payload.getvalue()
    assert fetch("SkyCLIP-ViT-B-32", tmp_path / "w") == path          # present: kept, nothing fetched


def test_zoo_model_specs_carry_the_training_data_as_leakage_caveats():
    assert parse_model_spec("zoo:RemoteCLIP-ViT-B-32") == ("RemoteCLIP-ViT-B-32", "zoo:RemoteCLIP-ViT-B-32", None)
    remote = training_sets("zoo:RemoteCLIP-ViT-B-32")
    assert "ucm_captions" in remote and not_zero_shot("ucm_classification", remote) == \
        "not zero-shot: trained on ucm_captions"
    assert not_zero_shot("whu_rs19", remote) == ""
    # RSDiX-CLIP trained on NWPU-Captions: RESISC45 is not zero-shot for it
    assert not_zero_shot("resisc45", training_sets("zoo:RSDiX-CLIP-ViT-B-32")) == \
        "not zero-shot: trained on nwpu_captions"
    assert set(FOLDER_FORMATS) == {"transformers", "open_clip_hub"}

