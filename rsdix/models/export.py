"""Export a model to the two layouts other tools load: a transformers ``CLIPModel`` folder
(``config.json``, ``model.safetensors``, the image processor and the CLIP tokenizer) and the
open_clip hub layout (``open_clip_config.json`` + ``open_clip_model.safetensors``), each with a
model card (``README.md``) holding the model's evaluated rows.

    export_model(bundle, "out/hf", "hf", rows=results)          # CLIPModel.from_pretrained("out/hf")
    export_model(bundle, "out/oc", "open_clip")                  # open_clip "local-dir:out/oc"

The weight mapping between open_clip's CLIP (a ViT image tower and its own text transformer) and
transformers' ``CLIPModel`` is written once (:func:`weight_pairs`) and used both ways: export
(:func:`open_clip_to_hf`) and reading transformers CLIP weights into open_clip
(:func:`hf_to_open_clip`, RSDiX-CLIP's checkpoints). A model ``CLIPModel`` cannot hold (a ResNet or
timm image tower, a Hugging Face text tower such as MiniLM, attentional pooling, layer scale, a
SigLIP bias) is refused with one line saying why (:func:`hf_problem`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file

from rsdix.errors import DataError
from rsdix.models.bundle import ModelBundle
from rsdix.models.presets import PRESET_PREPROCESS
from rsdix.utils import atomic_path, atomic_write_text

FORMATS = ("hf", "open_clip")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"


# ----------------------------------------------------------------------------- what CLIPModel holds

def hf_problem(model: torch.nn.Module) -> str | None:
    """Why transformers' ``CLIPModel`` cannot represent ``model`` exactly (None: it can)."""
    visual = getattr(model, "visual", None)
    kind = type(visual).__name__
    if kind != "VisionTransformer":
        what = {"ModifiedResNet": "a ResNet image tower (CLIP RN50 family)",
                "TimmModel": "a timm image tower (e.g. the rsdix-cnn ResNet presets)"}.get(kind, f"a {kind} image tower")
        return f"{what}; transformers' CLIPModel holds only a ViT image tower"
    if not hasattr(model, "token_embedding"):
        text = type(getattr(model, "text", None)).__name__
        return f"a {text} text tower (e.g. MiniLM, XLM-RoBERTa); CLIPModel holds only CLIP's own text transformer"
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
        return "attentional or average pooling in the image tower; CLIPModel pools the class token"
    if getattr(visual, "final_ln_after_pool", False) or isinstance(getattr(visual, "ln_pre", None), torch.nn.Identity):
        return "a layer-norm placement CLIPModel does not have (final_ln_after_pool / no_ln_pre)"
    if getattr(model, "text_pool_type", "argmax") != "argmax":
        return f"text pooling {model.text_pool_type!r}; CLIPModel pools the end-of-text token"
    if getattr(model, "logit_bias", None) is not None:
        return "a logit bias (SigLIP); CLIPModel has none"
    if not isinstance(getattr(model, "text_projection", None), torch.nn.Parameter):
        return "a text projection with a bias; CLIPModel's has none"
    for block in list(visual.transformer.resblocks) + list(model.transformer.resblocks):
        if not isinstance(block.ls_1, torch.nn.Identity) or getattr(block.attn, "ln_inner", None) is not None \
                or not isinstance(getattr(block, "ln_attn", torch.nn.Identity()), torch.nn.Identity):
            return "layer scale or extra layer norms in the transformer blocks; CLIPModel has neither"
    return None


def activation(model: torch.nn.Module) -> str:
    """``quick_gelu`` or ``gelu``: the MLP activation of ``model``'s transformer blocks."""
    return "quick_gelu" if isinstance(model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU) else "gelu"


def hf_config(model: torch.nn.Module) -> dict:
    """The transformers ``CLIPConfig`` (as a dict) of an open_clip ViT CLIP (read off its weights)."""
    if problem := hf_problem(model):
        raise DataError("export --format hf", f"cannot be a transformers CLIPModel: {problem}")
    v, t = model.visual, model
    act = activation(model)
    v_width = v.conv1.weight.shape[0]
    t_width = t.token_embedding.weight.shape[1]
    heads = v.transformer.resblocks[0].attn.num_heads
    vision = {"hidden_size": v_width, "intermediate_size": v.transformer.resblocks[0].mlp.c_fc.weight.shape[0],
              "num_hidden_layers": len(v.transformer.resblocks), "num_attention_heads": heads,
              "image_size": int(v.image_size[0] if isinstance(v.image_size, tuple) else v.image_size),
              "patch_size": int(v.conv1.weight.shape[-1]), "hidden_act": act, "layer_norm_eps": 1e-5,
              "num_channels": 3}
    text = {"vocab_size": t.token_embedding.weight.shape[0], "hidden_size": t_width,
            "intermediate_size": t.transformer.resblocks[0].mlp.c_fc.weight.shape[0],
            "num_hidden_layers": len(t.transformer.resblocks),
            "num_attention_heads": t.transformer.resblocks[0].attn.num_heads,
            "max_position_embeddings": t.positional_embedding.shape[0], "hidden_act": act, "layer_norm_eps": 1e-5,
            "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
    return {"text_config": text, "vision_config": vision, "projection_dim": int(v.proj.shape[1]),
            "logit_scale_init_value": float(t.logit_scale.detach())}


# ----------------------------------------------------------------------------- the weight mapping

def weight_pairs(vision_layers: int, text_layers: int) -> list[tuple[str, str, str]]:
    """``(open_clip key, transformers key, how)``: ``same``, ``transpose`` (projections), or ``q``/``k``/``v``
    (a third of open_clip's fused ``in_proj``)."""
    pairs = [("visual.class_embedding", "vision_model.embeddings.class_embedding", "same"),
             ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", "same"),
             ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", "same"),
             ("visual.proj", "visual_projection.weight", "transpose"),
             ("token_embedding.weight", "text_model.embeddings.token_embedding.weight", "same"),
             ("positional_embedding", "text_model.embeddings.position_embedding.weight", "same"),
             ("text_projection", "text_projection.weight", "transpose"),
             ("logit_scale", "logit_scale", "same")]
    for oc, hf in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                   ("ln_final", "text_model.final_layer_norm")):
        pairs += [(f"{oc}.{p}", f"{hf}.{p}", "same") for p in ("weight", "bias")]
    for prefix, hf_prefix, n in (("visual.transformer", "vision_model.encoder", vision_layers),
                                 ("transformer", "text_model.encoder", text_layers)):
        for i in range(n):
            oc, hf = f"{prefix}.resblocks.{i}", f"{hf_prefix}.layers.{i}"
            for part, hf_part in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
                                  ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                pairs += [(f"{oc}.{part}.{p}", f"{hf}.{hf_part}.{p}", "same") for p in ("weight", "bias")]
            for j, name in enumerate("qkv"):
                pairs += [(f"{oc}.attn.in_proj_weight", f"{hf}.self_attn.{name}_proj.weight", name),
                          (f"{oc}.attn.in_proj_bias", f"{hf}.self_attn.{name}_proj.bias", name)]
    return pairs


def _layers(keys, prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in keys if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def open_clip_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An open_clip ViT CLIP state dict as transformers ``CLIPModel`` weights."""
    pairs = weight_pairs(_layers(state, "visual.transformer.resblocks."), _layers(state, "transformer.resblocks."))
    out = {}
    for oc, hf, how in pairs:
        value = state[oc]
        if how == "transpose":
            value = value.T
        elif how in ("q", "k", "v"):
            value = value.chunk(3, dim=0)["qkv".index(how)]
        out[hf] = value.detach().contiguous().clone()
    return out


def hf_to_open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Transformers ``CLIPModel`` weights as an open_clip ViT CLIP state dict (the inverse of
    :func:`open_clip_to_hf`); a key the mapping expects and the file lacks is one DataError."""
    pairs = weight_pairs(_layers(state, "vision_model.encoder.layers."), _layers(state, "text_model.encoder.layers."))
    missing = sorted({hf for _, hf, _ in pairs if hf not in state})
    if missing:
        raise DataError("transformers CLIP weights", f"{len(missing)} key(s) missing, first {missing[0]!r}")
    out, fused = {}, {}
    for oc, hf, how in pairs:
        value = state[hf]
        if how in ("q", "k", "v"):
            fused.setdefault(oc, {})[how] = value
            continue
        out[oc] = (value.T if how == "transpose" else value).contiguous().clone()
    for oc, parts in fused.items():
        out[oc] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# ----------------------------------------------------------------------------- tokenizer, processor

def write_clip_tokenizer(folder: Path, context_length: int) -> None:
    """open_clip's CLIP BPE as a transformers ``CLIPTokenizer`` (``vocab.json`` + ``merges.txt``)."""
    from transformers import CLIPTokenizer  # heavy: only when a transformers folder is written

    bpe = SimpleTokenizer()
    specials = {bpe.decoder[bpe.all_special_ids[0]]: SOT, bpe.decoder[bpe.all_special_ids[1]]: EOT}
    vocab_ids = {specials.get(token, token): i for token, i in bpe.encoder.items()}   # OpenAI's names
    merges = [" ".join(pair) for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])]
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps(vocab_ids, ensure_ascii=False), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        tok = CLIPTokenizer(str(vocab), str(merges_file), bos_token=SOT, eos_token=EOT, pad_token=EOT,
                            unk_token=EOT, model_max_length=context_length)
        tok.save_pretrained(str(folder))


def processor_config(bundle: ModelBundle) -> dict:
    """A ``CLIPImageProcessor`` doing open_clip's eval transform: bicubic resize of the short side,
    centre crop, mean/std of the bundle."""
    size = bundle.image_size
    mean = list(bundle.preprocess_config.get("mean") or CLIP_MEAN)
    std = list(bundle.preprocess_config.get("std") or CLIP_STD)
    return {"image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
            "do_resize": True, "size": {"shortest_edge": size}, "resample": 3, "do_center_crop": True,
            "crop_size": {"height": size, "width": size}, "do_rescale": True, "rescale_factor": 1 / 255,
            "do_normalize": True, "image_mean": mean, "image_std": std, "do_convert_rgb": True}


# ----------------------------------------------------------------------------- the two layouts

def export_hf(bundle: ModelBundle, out: str | os.PathLike) -> Path:
    """A transformers ``CLIPModel`` folder: ``config.json``, ``model.safetensors``,
    ``preprocessor_config.json`` and the tokenizer files."""
    config = hf_config(bundle.model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = open_clip_to_hf({k: v.float() for k, v in bundle.model.state_dict().items()})
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    full = {"architectures": ["CLIPModel"], "model_type": "clip", "torch_dtype": "float32", **config}
    atomic_write_text(out / "config.json", json.dumps(full, indent=2))
    atomic_write_text(out / "preprocessor_config.json", json.dumps(processor_config(bundle), indent=2))
    write_clip_tokenizer(out, config["text_config"]["max_position_embeddings"])
    return out


def portable_config(model_config: dict) -> dict:
    """The open_clip model config with a local MiniLM folder named by its hub id (another machine
    has no such path); other keys unchanged."""
    config = json.loads(json.dumps(model_config, default=str))
    text = config.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text.get(key) and os.path.isdir(str(text[key])) and "minilm" in str(text[key]).lower():
            text[key] = MINILM_HUB
    return config


def export_open_clip(bundle: ModelBundle, out: str | os.PathLike) -> Path:
    """open_clip's hub layout: ``open_clip_config.json`` (``model_cfg``, ``preprocess_cfg``) and
    ``open_clip_model.safetensors``; loads with ``create_model_and_transforms("local-dir:" + out)``
    or, uploaded, ``"hf-hub:OWNER/NAME"``."""
    if not bundle.model_config:
        raise DataError("export --format open_clip", f"{bundle.name}: no open_clip model config (a transformers "
                                                     "folder is already a hub layout of its own)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in bundle.model.state_dict().items()}
    with atomic_path(out / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp))
    pre = {"mean": list(bundle.preprocess_config.get("mean") or PRESET_PREPROCESS["mean"]),
           "std": list(bundle.preprocess_config.get("std") or PRESET_PREPROCESS["std"]),
           "interpolation": "bicubic", "resize_mode": "shortest", "size": bundle.image_size}
    meta = {"model_cfg": portable_config(bundle.model_config), "preprocess_cfg": pre,
            "rsdix": {"name": bundle.name, "base_pretrained": str(bundle.pretrained or "")}}
    atomic_write_text(out / "open_clip_config.json", json.dumps(meta, indent=2))
    return out


# ----------------------------------------------------------------------------- model card

ROW_COLUMNS = ["dataset", "task", "metric", "value", "split", "n", "protocol", "caveat"]


def rows_markdown(rows: pd.DataFrame | None) -> str:
    """The evaluated rows as a markdown table (blank columns dropped), or a line saying there are none."""
    if rows is None or not len(rows):
        return ("No evaluated rows were given: run `rsdix evaluate` on the model and pass its results.csv "
                "with `--results`.\n")
    shown = rows[[c for c in ROW_COLUMNS if c in rows]].copy()
    shown = shown.loc[:, [c for c in shown if shown[c].astype(str).str.strip().replace("nan", "").any()]]
    return shown.to_markdown(index=False, floatfmt=".4g") + "\n"


def model_card(bundle: ModelBundle, fmt: str, label: str, rows: pd.DataFrame | None = None,
               about: dict | None = None) -> str:
    """``README.md`` of an exported folder: what the model is, how to load it, its evaluated rows.
    ``about``: the zoo entry's facts (source, training data, licence), where it has one."""
    about = about or {}
    library = "transformers" if fmt == "hf" else "open_clip"
    act = activation(bundle.model) if type(getattr(bundle.model, "visual", None)).__name__ == "VisionTransformer" \
        else "as in the architecture"
    lines = ["---", f"library_name: {library}", "tags: [clip, remote-sensing, rsdix]"]
    if about.get("licence"):
        lines.append(f"license_note: {json.dumps(str(about['licence']))}")
    lines += ["---", "", f"# {label}", "",
              f"Exported by `rsdix export` ({'transformers CLIPModel' if fmt == 'hf' else 'open_clip hub layout'}) "
              f"from `{bundle.name}`" + (f" with weights `{Path(str(bundle.pretrained)).name}`" if bundle.pretrained else "")
              + ".", ""]
    for key, text in (("source", "Source"), ("trained_on", "Training data"), ("licence", "Licence"),
                      ("notes", "Notes")):
        if about.get(key):
            value = about[key]
            lines.append(f"- {text}: {', '.join(value) if isinstance(value, (list, tuple)) else value}")
    mean = bundle.preprocess_config.get("mean")
    lines += [f"- Image input: {bundle.image_size} px, bicubic resize of the short side, centre crop"
              + (f", mean {list(mean)}, std {list(bundle.preprocess_config.get('std'))}" if mean else ""),
              f"- Activation of the transformer MLPs: {act}", ""]
    if fmt == "hf":
        lines += ["```python", "from transformers import CLIPModel, CLIPProcessor",
                  "model = CLIPModel.from_pretrained(FOLDER)", "processor = CLIPProcessor.from_pretrained(FOLDER)", "```"]
    else:
        lines += ["```python", "import open_clip",
                  "model, _, preprocess = open_clip.create_model_and_transforms('local-dir:' + FOLDER)",
                  "tokenizer = open_clip.get_tokenizer('local-dir:' + FOLDER)", "```"]
    lines += ["", "## Evaluated rows", "", "Tidy rows of `rsdix evaluate` (percentages; `protocol`: "
              "rsdix/evaluation/protocols/protocols.yaml; `caveat`: a set inside the training data).", "",
              rows_markdown(rows)]
    return "\n".join(lines)


def export_model(bundle: ModelBundle, out: str | os.PathLike, fmt: str, label: str | None = None,
                 rows: pd.DataFrame | None = None, about: dict | None = None) -> Path:
    """``bundle`` as ``fmt`` (:data:`FORMATS`) in folder ``out`` with its model card."""
    if fmt not in FORMATS:
        raise DataError("export --format", f"{fmt!r} is not one of {FORMATS}")
    folder = export_hf(bundle, out) if fmt == "hf" else export_open_clip(bundle, out)
    atomic_write_text(folder / "README.md", model_card(bundle, fmt, label or bundle.name, rows, about))
    return folder


def read_rows(paths: Sequence[str | os.PathLike], model: str | None = None) -> pd.DataFrame | None:
    """The rows of results tables (``results.csv``) for the model card; only ``model``'s where
    the tables name several models."""
    frames = [pd.read_csv(p, keep_default_na=False) for p in paths]
    if not frames:
        return None
    rows = pd.concat(frames, ignore_index=True)
    if model is not None and "model" in rows and rows["model"].nunique() > 1:
        rows = rows[rows["model"] == model]
    return rows
