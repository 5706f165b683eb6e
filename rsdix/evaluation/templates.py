"""Prompt-template sets for zero-shot classification.

A template is a string with one ``{}`` where the (cleaned) class name goes. Sets:

* ``rsdix``: RSDiX's single template, "Aerial photograph of {}".
* ``rs``: the remote-sensing templates used in the field (METHODS.md section 4).
* ``clip``: the satellite/aerial templates the CLIP paper's prompt notebook uses for
  RESISC45 and EuroSAT (as evaluated by CLIP_benchmark).
* ``rs+clip``: both.

Templates in other languages go through the same functions: pass a list of strings
(e.g. ``["una foto aerea di {}."]``) together with translated class names.
"""
from __future__ import annotations

from typing import Sequence

from rsdix.errors import ConfigError

RSDIX_TEMPLATES = ["Aerial photograph of {}"]

RS_TEMPLATES = [
    "a satellite photo of {}.",
    "an aerial view of {}.",
    "{} from above",
    "a centered satellite photo of {}.",
    "a remote sensing image of {}.",
    "an aerial photograph of {}.",
]

CLIP_TEMPLATES = [
    f"{kind} {view} of {article}{{}}."
    for article in ("", "a ", "the ")
    for kind, view in (("satellite", "imagery"), ("aerial", "imagery"), ("satellite", "photo"),
                       ("aerial", "photo"), ("satellite", "view"), ("aerial", "view"))
] + ["a centered satellite photo of {}.", "a centered satellite photo of a {}.",
     "a centered satellite photo of the {}."]

TEMPLATE_SETS = {
    "rsdix": RSDIX_TEMPLATES,
    "rs": RS_TEMPLATES,
    "clip": CLIP_TEMPLATES,
    "rs+clip": RS_TEMPLATES + [t for t in CLIP_TEMPLATES if t not in RS_TEMPLATES],
}


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
