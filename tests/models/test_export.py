"""Export: a model as a transformers CLIPModel folder and as an open_clip hub folder gives the same
image and text features (<= 1e-5) loaded back through transformers and through open_clip's
local-directory loading, for a folder rsdix saved (rsdix-tiny) and for ViT-B-32 with QuickGELU
given as ``ViT-B-32-quickgelu@weights.pt``; a model CLIPModel cannot hold is one line."""
from __future__ import annotations

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

from rsdix.cli import main
from rsdix.errors import DataError
from rsdix.models import load_model, save_model
from rsdix.models.export import export_model, hf_problem, hf_to_open_clip, open_clip_to_hf

TEXTS = ["a satellite photo of a beach.", "Many buildings and green trees are around a parking lot",
         "two planes, 3 runways!"]


def _features(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def check_round_trip(bundle, hf_dir, oc_dir, atol=1e-5):
    """Features of ``bundle`` against the exported folders, read by transformers and open_clip."""
    size = bundle.image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    model = bundle.model.eval()
    with torch.no_grad():
        ref_img, ref_txt = model.encode_image(x), model.encode_text(bundle.tokenizer(TEXTS))
        hf = CLIPModel.from_pretrained(str(hf_dir)).eval()
        tok = AutoTokenizer.from_pretrained(str(hf_dir))
        ids = tok(TEXTS, padding="max_length", max_length=tok.model_max_length, return_tensors="pt")
        assert torch.allclose(_features(hf.get_image_features(pixel_values=x)), ref_img, atol=atol)
        assert torch.allclose(_features(hf.get_text_features(**ids)), ref_txt, atol=atol)
        oc, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{oc_dir}")
        oc_tok = open_clip.get_tokenizer(f"local-dir:{oc_dir}")
        assert torch.allclose(oc.eval().encode_image(x), ref_img, atol=atol)
        assert torch.allclose(oc.encode_text(oc_tok(TEXTS)), ref_txt, atol=atol)
    # the image processor does the bundle's eval transform (bicubic short side, centre crop, mean/std):
    # transformers resizes with its own bicubic kernel, so a pixel may differ by one 8-bit level
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2 * size, 2 * size, 3), dtype=np.uint8))
    pixels = CLIPImageProcessor.from_pretrained(str(hf_dir))(image, return_tensors="pt").pixel_values[0]
    ours = bundle.preprocess_val(image)
    level = 1 / 255 / min(bundle.preprocess_config.get("std") or (0.26862954, 0.26130258, 0.27577711))
    assert pixels.shape == ours.shape and (pixels - ours).abs().max() <= level * 1.01
    assert (pixels - ours).abs().mean() < level / 20
    assert torch.allclose(preprocess(image), ours, atol=1e-6)


def test_a_folder_rsdix_saved_round_trips_through_transformers_and_open_clip(tmp_path):
    folder = save_model(load_model("rsdix-tiny"), tmp_path / "rsdix_s0", extra={"datasets": ["ucm_captions"]})
    bundle = load_model(str(folder))
    rows = pd.DataFrame([{"model": "rsdix_s0", "dataset": "WHU-RS19", "task": "zero-shot", "metric": "top1",
                          "value": 12.5, "split": "all", "n": 1005, "protocol": "rsdix", "caveat": ""}])
    hf_dir = export_model(bundle, tmp_path / "hf", "hf", label="rsdix_s0", rows=rows)
    oc_dir = export_model(bundle, tmp_path / "oc", "open_clip", label="rsdix_s0", rows=rows)
    files = {p.name for p in hf_dir.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json",
            "README.md"} <= files and ({"tokenizer.json"} <= files or {"vocab.json", "merges.txt"} <= files)
    assert {"open_clip_config.json", "open_clip_model.safetensors", "README.md"} <= {p.name for p in oc_dir.iterdir()}
    check_round_trip(bundle, hf_dir, oc_dir)
    card = (hf_dir / "README.md").read_text()
    assert "library_name: transformers" in card and "| WHU-RS19" in card and "12.5" in card
    assert "Activation of the transformer MLPs: gelu" in card
    assert "No evaluated rows" in export_model(bundle, tmp_path / "bare", "open_clip").joinpath("README.md").read_text()


@pytest.mark.slow
def test_vit_b32_quickgelu_weights_round_trip_through_the_command_line(tmp_path):
    # MODEL as `ViT-B-32-quickgelu@weights.pt` (random weights saved to a file): QuickGELU in the
    # transformers config, the same features both ways
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), weights)
    results = tmp_path / "results.csv"
    pd.DataFrame([{"model": "mine", "dataset": "UCM", "task": "retrieval", "metric": "mR", "value": 40.0}]).to_csv(
        results, index=False)
    spec = f"mine=ViT-B-32-quickgelu@{weights}"
    assert main(["export", spec, "--format", "hf", "--out", str(tmp_path / "hf"), "--results", str(results)]) == 0
    assert main(["export", spec, "--format", "open_clip", "--out", str(tmp_path / "oc")]) == 0
    config = CLIPModel.config_class.from_pretrained(str(tmp_path / "hf"))
    assert config.vision_config.hidden_act == config.text_config.hidden_act == "quick_gelu"
    check_round_trip(load_model("ViT-B-32-quickgelu", pretrained=str(weights)), tmp_path / "hf", tmp_path / "oc")
    assert "| UCM" in (tmp_path / "hf" / "README.md").read_text()


def test_a_model_transformers_cannot_hold_is_one_line(tmp_path, capsys):
    with torch.device("meta"):
        rn50 = open_clip.create_model("RN50", device="meta")
    assert "ResNet image tower" in hf_problem(rn50)
    bundle = load_model("rsdix-cnn-xs")    # timm ResNet + MiniLM text tower
    assert "timm image tower" in hf_problem(bundle.model)
    with pytest.raises(DataError) as err:
        export_model(bundle, tmp_path / "hf", "hf")
    assert "cannot be a transformers CLIPModel" in str(err.value) and "\n" not in str(err.value)
    assert main(["export", "rsdix-cnn-xs", "--format", "hf", "--out", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # the open_clip layout holds it, MiniLM named by its hub id (another machine has no local path)
    oc = export_model(bundle, tmp_path / "oc", "open_clip")
    assert "sentence-transformers/all-MiniLM-L6-v2" in (oc / "open_clip_config.json").read_text()


def test_the_weight_mapping_is_its_own_inverse():
    state = load_model("rsdix-tiny").model.state_dict()
    back = hf_to_open_clip(open_clip_to_hf(state))
    assert set(back) == set(state) - {"attn_mask"} and all(torch.equal(back[k], state[k]) for k in back)
    with pytest.raises(DataError, match="key\\(s\\) missing"):
        hf_to_open_clip({k: v for k, v in open_clip_to_hf(state).items() if "layers.1." not in k or "vision" in k}
                        | {"text_model.encoder.layers.2.mlp.fc1.weight": torch.zeros(1)})
