"""Model specs on the command line: a spec to ``(label, bundle, name)`` and the default folder of
``rsdix evaluate``."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rsdix.paths import runs_dir
from rsdix.utils import pick_device


def model_from_spec(spec: str, device: str | None, label: str | None = None, seed: int = 0):
    """``(label, bundle, name)`` of a model spec (:func:`rsdix.evaluation.model_specs.parse_model_spec`).
    A preset (random weights) is built after seeding with ``seed`` and, unless labelled, named
    ``<preset>-random-weights-s<seed>`` in every row and table."""
    from rsdix.evaluation.model_specs import parse_model_spec  # stage import when the command runs
    from rsdix.models import load_model  # stage import when the command runs
    from rsdix.models.presets import preset_configs  # stage import when the command runs
    from rsdix.utils import seed_everything  # stage import when the command runs

    label, name, pretrained = parse_model_spec(spec, label)
    if name in preset_configs() and pretrained is None:   # a preset: random weights, seeded so a rerun agrees
        seed_everything(seed)
        label = f"{label}-random-weights-s{seed}" if label == name else label   # unless the user named it
    return label, load_model(name, pretrained=pretrained, device=pick_device(device)), name


def default_evaluate_dir(spec: str, label: str) -> Path:
    """``runs/evaluate/<label>``; for a model given as a path, the label plus a short hash of the
    absolute path, so two model folders of the same name (``a/model``, ``b/model``) never share one."""
    path = spec.partition("=")[2] if "=" in spec and not os.path.exists(spec) else spec
    if not os.path.exists(path):
        return runs_dir() / "evaluate" / label
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return runs_dir() / "evaluate" / f"{label}-{digest}"
