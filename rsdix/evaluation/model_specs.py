"""Which models an evaluation run covers: the checkpoints notebook 03 saved, the config's
baselines and any extra ``label=open_clip_name@pretrained`` specs, and loading them.

    specs = models_to_evaluate(dirs.models, cfg, extra=["RemoteCLIP=ViT-B-32@/ckpt/RemoteCLIP-ViT-B-32.pt"])
    bundles, not_evaluated = load_bundles(specs)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rsdix.data.files import read_json
from rsdix.errors import ConfigError, DataError, OfflineError
from rsdix.log import get_logger
from rsdix.models import load_model
from rsdix.models.zoo import get_entry
from rsdix.paths import weights_root
from rsdix.utils import pick_device

log = get_logger(__name__)

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """One model to evaluate: its row label, an open_clip name or checkpoint folder, the
    pretrained tag or weights path, the seed its rows carry, whether it is a trained checkpoint and
    the caption sets it was trained on (zero-shot rows on sets built on them are marked)."""
    label: str
    name: str
    pretrained: str | None = None
    seed: int = 0
    trained: bool = False
    trained_on: tuple = ()


def training_sets(folder: str | os.PathLike) -> tuple:
    """The caption sets a model folder saved by rsdix was trained on (``rsdix.datasets`` of its
    ``open_clip_config.json``), or a zoo checkpoint's training sets (``zoo:NAME``, its
    ``trained_on``); ``()`` for anything else."""
    if str(folder).startswith("zoo:"):
        return tuple(get_entry(str(folder)).trained_on)
    config = Path(folder) / "open_clip_config.json"
    if not config.is_file():
        return ()
    meta = read_json(config, "model config")
    datasets = meta.get("rsdix", {}).get("datasets", []) if isinstance(meta, dict) else []
    return tuple(str(d) for d in datasets or [])


def list_checkpoints(models_dir: str | os.PathLike) -> list[Path]:
    """Model folders saved by :func:`rsdix.models.save_model` under ``models_dir`` (sorted)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if (p / "open_clip_config.json").is_file())


def parse_model_spec(spec: str, label: str | None = None) -> tuple[str, str, str | None]:
    """``"label=name@pretrained"`` (``label=`` and ``@pretrained`` optional) ->
    ``(label, name, pretrained)``; e.g. ``"RemoteCLIP=ViT-B-32@/ckpt/RemoteCLIP-ViT-B-32.pt"``.

    A spec (or its part after ``label=``) that is an existing path is a model folder or file as it
    is, never split: a sweep folder ``runs/sweep/lr=0.001`` keeps its ``=``. A label is the text
    before the first ``=`` and holds no ``/``. ``label`` (``rsdix evaluate --label``) names the model
    instead, and the spec is then not searched for one. Without a label: a folder's own name, else
    ``name-pretrained`` or ``name``. A spec that names no model is a ConfigError naming it."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"model spec {spec!r}: empty; expected [label=]open_clip_name[@pretrained] or a model folder")
    given, rest = label, spec
    if label is None and not os.path.exists(spec):
        left, sep, right = spec.partition("=")
        if sep and "/" not in left and os.sep not in left:
            given, rest = left, right
    name, at, pretrained = (rest, "", None) if os.path.exists(rest) else rest.partition("@")
    if not name.strip() or (given is not None and not given.strip()) or (at and not pretrained.strip()):
        raise ConfigError(f"model spec {spec!r}: expected '[label=]open_clip_name[@pretrained]' or a model folder "
                          f"(a label or a pretrained tag, when given, is not blank)")
    if not given and name.startswith("zoo:"):   # a zoo checkpoint's rows carry its zoo name
        given = name[len("zoo:"):]
    if not given:
        folder = Path(name)
        given = (folder.name or folder.resolve().name or name) if folder.is_dir() else \
            (f"{name}-{pretrained}" if pretrained else name)
    return given, name, pretrained or None


def run_seed(run_name: str, default: int = 0) -> int:
    """The seed in a run name such as ``rsdix_s1`` or ``infonce_frac0.1_s2``."""
    m = re.search(r"_s(\d+)$", run_name)
    return int(m.group(1)) if m else default


def models_to_evaluate(models_dir: str | os.PathLike, config, extra: Sequence[str] = (), seed: int = 0
                       ) -> list[ModelSpec]:
    """The checkpoints under ``models_dir`` (seed read from the run name; only those ``config.trained_models``
    names, where it is set), or, when there is none,
    ``config.fallback_preset`` untrained (a chance-level reference), then ``config.baselines`` and
    ``extra`` (model specs, :func:`parse_model_spec`) with ``seed``."""
    folders = list_checkpoints(models_dir)
    wanted = getattr(config, "trained_models", None)
    if wanted is not None:   # the config names the checkpoints to evaluate
        found = {folder.name: folder for folder in folders}
        missing = [name for name in wanted if name not in found]
        if missing and folders:
            raise DataError(Path(models_dir) / missing[0], f"trained_models names {missing}, not among the "
                                                           f"checkpoints there: {sorted(found)}")
        folders = [found[name] for name in wanted if name in found]
    specs = [ModelSpec(folder.name, str(folder), None, run_seed(folder.name), trained=True,
                       trained_on=training_sets(folder))
             for folder in folders]
    if not specs and config.fallback_preset:
        specs.append(ModelSpec(f"{config.fallback_preset}-untrained", config.fallback_preset, None, seed))
    for spec in list(config.baselines) + list(extra):
        label, name, pretrained = parse_model_spec(spec)
        specs.append(ModelSpec(label, name, resolve_weights(pretrained), seed, trained_on=training_sets(name)))
    return specs


def resolve_weights(pretrained: str | None) -> str | None:
    """A relative weights path in a config (``checkpoints/RemoteCLIP-ViT-B-32.pt``) is relative to
    the repository root (``$RSDIX_WEIGHTS_ROOT`` if set: rsdix.paths.weights_root), wherever the caller runs (papermill runs notebooks in ``notebooks/``);
    open_clip tags and absolute paths are returned as they are."""
    if not pretrained or os.path.isabs(pretrained) or not pretrained.endswith(WEIGHT_SUFFIXES):
        return pretrained
    return str(weights_root() / pretrained)   # the repository root; a dry run's stand-ins folder


def describe_models(specs: Sequence[ModelSpec], models_dir: str | os.PathLike, config) -> str:
    """What will be evaluated: the trained checkpoints found (or why there are none) and every label."""
    trained = [s.label for s in specs if s.trained]
    lines = [f"{len(trained)} trained checkpoint(s) under {models_dir}: " + (", ".join(trained) or "none")]
    if not trained:
        lines.append("No trained checkpoints yet: run notebook 03 (03_distillation_training) first.")
        if config.fallback_preset:
            lines.append(f"Evaluating the untrained preset {config.fallback_preset!r} instead "
                         f"(a chance-level reference).")
    lines.append(f"models to evaluate: {[s.label for s in specs]}")
    return "\n".join(lines)


def load_bundles(specs: Sequence[ModelSpec], device: str | None = None) -> tuple[dict, list[str]]:
    """``({label: bundle}, [labels not evaluated])``, each model on ``device`` (default: CUDA when
    present, :func:`rsdix.utils.pick_device`): a model whose weights cannot be had (offline, or a
    weights file not downloaded yet) is reported (one line) and left out."""
    device = pick_device(device)
    bundles, not_evaluated = {}, []
    for spec in specs:
        try:
            bundles[spec.label] = load_model(spec.name, pretrained=spec.pretrained, device=device)
        except (OfflineError, DataError) as exc:
            log.warning(f"{spec.label}: not evaluated: {exc}")
            not_evaluated.append(spec.label)
    return bundles, not_evaluated
