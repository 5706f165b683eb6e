"""Every published checkpoint format loads a random-weight stand-in with identical features;
a wrong architecture or a bad file gives one DataError naming the file; no pickle code runs."""
from __future__ import annotations

import json

import open_clip
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from malicious import Touch
from rsdix.cli import main
from rsdix.errors import DataError, OfflineError
from rsdix.models import load_model, read_state_dict, save_model

TEXTS = ["a red house", "green field with trees", "house"]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("rsdix-tiny").model.eval()


def _features(model, tokens):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return model.encode_image(images, normalize=True), model.encode_text(tokens, normalize=True)


def _same(a, b):
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))


def _check_loads(tiny, path):
    tokens = open_clip.get_tokenizer("rsdix-tiny")(TEXTS)
    bundle = load_model("rsdix-tiny", pretrained=str(path))
    assert _same(_features(tiny, tokens), _features(bundle.model, tokens))
    assert bundle.model is not tiny


def test_plain_state_dict(tiny, tmp_path):
    torch.save(tiny.state_dict(), tmp_path / "plain.pt")
    _check_loads(tiny, tmp_path / "plain.pt")


def test_training_checkpoint_with_module_prefix(tiny, tmp_path):
    state = {"module." + k: v for k, v in tiny.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {"lr": 0.1}}, tmp_path / "epoch_3.pt")
    _check_loads(tiny, tmp_path / "epoch_3.pt")


def test_safetensors(tiny, tmp_path):
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(tmp_path / "m.safetensors"))
    _check_loads(tiny, tmp_path / "m.safetensors")


def test_torchscript(tiny, tmp_path):
    tokens = open_clip.get_tokenizer("rsdix-tiny")(TEXTS[:2])
    traced = torch.jit.trace(tiny, (torch.randn(2, 3, 32, 32), tokens), check_trace=False, strict=False)
    traced.save(str(tmp_path / "ViT-tiny.pt"))
    assert set(tiny.state_dict()) <= set(read_state_dict(tmp_path / "ViT-tiny.pt"))
    _check_loads(tiny, tmp_path / "ViT-tiny.pt")


def test_wrong_architecture_is_one_line(tmp_path):
    torch.save(load_model("rsdix-tiny").model.state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(DataError) as err:
        load_model("RN50", pretrained=str(tmp_path / "tiny.pt"))
    msg = str(err.value)
    assert "tiny.pt" in msg and "\n" not in msg
    assert "missing keys" in msg and "unexpected keys" in msg


def test_shape_mismatch_is_named(tiny, tmp_path):
    state = dict(tiny.state_dict())
    state["text_projection"] = torch.zeros(64, 16)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"bad\.pt.*shape mismatch.*text_projection"):
        load_model("rsdix-tiny", pretrained=str(tmp_path / "bad.pt"))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file_is_one_line(tiny, tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    if suffix == ".pt":
        torch.save(tiny.state_dict(), good)
    else:
        save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(good))
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(DataError) as err:
        load_model("rsdix-tiny", pretrained=str(bad))
    assert f"cut{suffix}" in str(err.value) and "\n" not in str(err.value)



def test_pickle_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Touch(marker)}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="evil.pt"):
        load_model("rsdix-tiny", pretrained=str(tmp_path / "evil.pt"))
    assert not marker.exists()


def _tokenizer(folder, specials):
    vocab = {w: i for i, w in enumerate(specials + sorted({w for t in TEXTS for w in t.split()}))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=specials[1]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=specials[0], unk_token=specials[1])
    fast.save_pretrained(str(folder))
    return fast, len(vocab)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_transformers_folder(tmp_path, kind):
    torch.manual_seed(0)
    folder = tmp_path / kind
    fast, n_vocab = _tokenizer(folder, ["<pad>", "<unk>"])
    text = {"vocab_size": n_vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 0}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    if kind == "clip":
        text.update(bos_token_id=1, eos_token_id=1)
        hf = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    else:
        hf = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    hf.eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    bundle = load_model(str(folder))
    tokens = bundle.tokenizer(TEXTS)
    assert tokens.shape == (3, 16)
    assert torch.equal(tokens, fast(TEXTS, padding="max_length", max_length=16, return_tensors="pt").input_ids)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref_i = hf.get_image_features(pixel_values=images)
        ref_t = hf.get_text_features(input_ids=tokens)
        ref_i = ref_i if isinstance(ref_i, torch.Tensor) else ref_i.pooler_output
        ref_t = ref_t if isinstance(ref_t, torch.Tensor) else ref_t.pooler_output
        got = bundle.model.encode_image(images, normalize=True), bundle.model.encode_text(tokens, normalize=True)
    ref = torch.nn.functional.normalize(ref_i, dim=-1), torch.nn.functional.normalize(ref_t, dim=-1)
    assert _same(ref, got)
    assert bundle.image_size == 32 and bundle.preprocess_config["mean"] == (0.5, 0.5, 0.5)


@pytest.mark.data
def test_transformers_folder_through_rsdix_evaluate(whu_root, tmp_path, capsys):
    folder = tmp_path / "Git-RSCLIP-tiny"
    _, n_vocab = _tokenizer(folder, ["<pad>", "<unk>"])
    text = {"vocab_size": n_vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 16, "pad_token_id": 0}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(str(folder))
    assert main(["evaluate", str(folder), "--config", "smoke", "--suite", "whu_rs19", "--tasks", "zero-shot", "knn",
                 "--data-root", str(whu_root.parent), "--out", str(tmp_path / "eval")]) == 0
    rows = pd.read_csv(tmp_path / "eval" / "results.csv")
    assert set(rows["task"]) == {"zero-shot", "knn"} and set(rows["model"]) == {"Git-RSCLIP-tiny"}
    assert rows["value"].notna().all()


def test_hf_hub_repo_that_cannot_be_fetched_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(OfflineError) as err:
        load_model("hf-hub:nobody-here/RS-M-CLIP-missing")
    assert "RS-M-CLIP-missing" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- issue 33: library errors named, valid inputs taken

@pytest.mark.parametrize("damage, reason", [(lambda data: b"hello, not a safetensors file " * 8, "header too large"),
                                            (lambda data: data[: len(data) // 2], "incomplete metadata"),
                                            (lambda data: data[:20], "invalid header length")])
def test_a_model_folder_whose_safetensors_is_damaged_is_one_line_naming_it(tmp_path, damage, reason):
    folder = save_model(load_model("rsdix-tiny"), tmp_path / "m")
    weights = folder / "open_clip_model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(DataError, match=rf"open_clip_model\.safetensors: not a readable safetensors file: cut short .*"
                                        rf"{reason}") as err:
        load_model(str(folder))
    assert "\n" not in str(err.value)


def test_a_transformers_folder_without_config_json_names_the_missing_file(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(DataError, match=r"hf/config\.json: missing: a transformers folder needs config\.json"):
        load_model(str(folder))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DataError, match=r"config\.json: model_type 'bert' is not a CLIP or SigLIP model"):
        load_model(str(folder))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: not a model folder: neither open_clip_config\.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"absent/model: model folder not found"):
        load_model(str(tmp_path / "absent" / "model"))


def test_an_rsdix_training_checkpoint_loads_as_pretrained(tmp_path):
    from training_fixtures import SyntheticCaptions, tiny_clip
    from rsdix.training.clip import load_clip_config, train_clip

    cfg = load_clip_config("smoke", method="siglip", steps=2, batch_size=8, ckpt_every=0)
    res = train_clip(cfg, run_dir=tmp_path / "run", bundle=tiny_clip(), dataset=SyntheticCaptions())
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert any(k.startswith("objective.") for k in torch.load(checkpoint, weights_only=True)["trainee"])
    bundle = load_model("rsdix-tiny", pretrained=str(checkpoint))      # the objective's own parameters left out
    assert bundle.fingerprint() == res.bundle.fingerprint()
    assert set(read_state_dict(checkpoint)) == set(res.bundle.model.state_dict())
    with pytest.raises(DataError, match=r"run: a training run folder, not a model folder"):
        load_model(str(tmp_path / "run"))
