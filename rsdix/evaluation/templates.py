"""Prompt-template sets for zero-shot classification, read from the package's protocol data
(``rsdix/evaluation/protocols/templates.yaml``: each set with the source it comes from).

A template is a string with one ``{}`` where the (cleaned) class name goes. Sets:

* ``rsdix``: RSDiX's single template, "Aerial photograph of {}".
* ``rs``: rsdix's own remote-sensing templates (METHODS.md section 4; the configs' default).
* ``clip``: the satellite/aerial templates the CLIP paper's prompt notebook uses for
  RESISC45 and EuroSAT.
* ``remoteclip``: RemoteCLIP's "a satellite photo of {}.".
* ``georsclip``: GeoRSCLIP's (RS5M) ensemble of 105 templates.
* ``clip_benchmark_eurosat``, ``clip_benchmark_resisc45``: CLIP_benchmark's per-dataset sets.
* ``rs+clip``: ``rs`` and ``clip`` together.

Templates in other languages go through the same functions: pass a list of strings
(e.g. ``["una foto aerea di {}."]``) together with translated class names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rsdix.data.files import read_yaml
from rsdix.errors import ConfigError, DataError

TEMPLATES_FILE = Path(__file__).resolve().parent / "protocols" / "templates.yaml"


def read_template_sets(path: str | Path = TEMPLATES_FILE) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``(name -> templates, name -> source)`` from a template-set YAML file."""
    data = read_yaml(path, "template-set file")
    if not isinstance(data, dict):
        raise DataError(path, "must map set names to {source, templates}")
    sets, sources = {}, {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not entry.get("source") or not entry.get("templates"):
            raise DataError(f"{path}: {name}", "needs a source and a non-empty list of templates")
        sets[name], sources[name] = [str(t) for t in entry["templates"]], str(entry["source"])
    return sets, sources


TEMPLATE_SETS, TEMPLATE_SOURCES = read_template_sets()
RSDIX_TEMPLATES = TEMPLATE_SETS["rsdix"]
RS_TEMPLATES = TEMPLATE_SETS["rs"]
CLIP_TEMPLATES = TEMPLATE_SETS["clip"]
TEMPLATE_SETS["rs+clip"] = RS_TEMPLATES + [t for t in CLIP_TEMPLATES if t not in RS_TEMPLATES]
TEMPLATE_SOURCES["rs+clip"] = "the rs and clip sets together"


def get_templates(templates: str | Sequence[str]) -> list[str]:
    """A template list from a set name or an explicit list; every template must hold one ``{}``."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ConfigError(f"unknown template set {templates!r}; known: {sorted(TEMPLATE_SETS)} "
                              f"(or pass a list of strings with one '{{}}')")
        out = list(TEMPLATE_SETS[templates])
    else:
        out = list(templates)
    if not out:
        raise ConfigError("empty template list")
    for t in out:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ConfigError(f"template {t!r} must contain exactly one '{{}}' for the class name")
    return out
