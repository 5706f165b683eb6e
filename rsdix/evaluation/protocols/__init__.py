"""Evaluation protocols as data (the YAML files beside this module): for each published evaluator,
the template set, the probe split, which images zero-shot is scored on, the class strings, the
prompt-ensemble arithmetic, the retrieval convention (one query per caption, or identical texts
merged, with or without separate I2T/T2I means) and caption transforms; the official split and the
class list of every registry dataset, and which classification sets are built on a caption set's
images.

    p = get_protocol("remoteclip")            # p.templates == "remoteclip", p.test_images == "sorted_80_20"
    template_set(p, "whu_rs19", "rs")         # "remoteclip"
    class_names_for(get_protocol("georsclip"), "eurosat_ms", classes, cleaned)   # ["annualcrop", ...]
    not_zero_shot("ucm_classification", ["ucm_captions"])   # "not zero-shot: trained on ucm_captions"

``rsdix evaluate --protocol NAME`` picks one (``all``: every one); every result row names it
(column ``protocol``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from rsdix.data.files import read_yaml
from rsdix.data.manifest import read_manifest, relative
from rsdix.data.registry import REGISTRY
from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.probes import train_test_split_indices
from rsdix.evaluation.templates import TEMPLATE_SETS

HERE = Path(__file__).resolve().parent
PROTOCOLS_FILE, CLASSES_FILE = HERE / "protocols.yaml", HERE / "classes.yaml"
NAMES_FILE = HERE / "class_names.yaml"
PROBE_SPLITS = ("seeded", "sorted_80_20")
TEST_IMAGES = ("all", "sorted_80_20", "lists")
NAME_RULES = ("rsdix", "raw", "lower", "georsclip")
ENSEMBLES = ("normalised_mean", "raw_mean")
RETRIEVALS = ("per_caption", "unique_text", None)
CAPTION_RULES = ("as_is", "capitalize")   # or "prefix:<text>"
RETRIEVAL_MEANS = ("six", "directional")
PRECISIONS = ("fp32", "amp")


@dataclass(frozen=True)
class Protocol:
    """One protocol (the keys are explained at the top of protocols.yaml): template set (a name,
    ``dataset -> name`` with a ``default``, or None for the config's), probe split, zero-shot test
    images, class-name rule, ensemble arithmetic, retrieval convention, caption transform, the
    retrieval means reported, resolution and precision, and where it comes from."""
    name: str
    description: str
    source: str
    templates: str | dict | None
    probe_split: str
    test_images: str = "all"
    class_names: str | dict = "rsdix"
    ensemble: str = "normalised_mean"
    retrieval: str | None = "per_caption"
    captions: str = "as_is"
    retrieval_means: str = "six"
    resolution: str = ""
    precision: str = "fp32"
    lists: dict | None = None


@lru_cache(maxsize=None)
def protocol_data() -> dict:
    """protocols.yaml, checked: every template set exists, every split rule is known, every
    registry dataset has an official-split entry."""
    data = read_yaml(PROTOCOLS_FILE, "protocol file")
    for name, entry in data["protocols"].items():
        sets = entry["templates"] if isinstance(entry["templates"], dict) else {"": entry["templates"]}
        for key, value in sets.items():
            if value is not None and value not in TEMPLATE_SETS:
                raise DataError(f"{PROTOCOLS_FILE}: {name}", f"unknown template set {value!r} ({key or 'all'})")
        check_protocol_entry(name, entry)
    missing = sorted(set(REGISTRY) - set(data["official_splits"]))
    if missing:
        raise DataError(PROTOCOLS_FILE, f"official_splits lacks registry dataset(s) {missing}")
    return data


def check_protocol_entry(name: str, entry: dict) -> None:
    """Every key of a protocols.yaml entry known and each value one of its choices (one DataError
    naming the protocol and the key)."""
    where = f"{PROTOCOLS_FILE}: {name}"
    known = {f.name for f in fields(Protocol)} - {"name"}
    if set(entry) - known:
        raise DataError(where, f"unknown key(s) {sorted(set(entry) - known)}")
    for key, choices in (("probe_split", PROBE_SPLITS), ("test_images", TEST_IMAGES), ("ensemble", ENSEMBLES),
                         ("retrieval", RETRIEVALS), ("retrieval_means", RETRIEVAL_MEANS), ("precision", PRECISIONS)):
        if key in entry and entry[key] not in choices:
            raise DataError(where, f"{key} {entry[key]!r} not in {choices}")
    captions = entry.get("captions", "as_is")
    if captions not in CAPTION_RULES and not str(captions).startswith("prefix:"):
        raise DataError(where, f"captions {captions!r} not in {CAPTION_RULES} or 'prefix:<text>'")
    rules = entry.get("class_names", "rsdix")
    for key, rule in (rules.items() if isinstance(rules, dict) else [("", rules)]):
        if rule not in NAME_RULES and not (str(rule).startswith("list:") and str(rule)[5:] in name_lists()):
            raise DataError(where, f"class_names {rule!r} ({key or 'all'}) not in {NAME_RULES} or 'list:<a list of "
                                   f"{NAMES_FILE.name}>'")
    for dataset, path in (entry.get("lists") or {}).items():
        if not (HERE / path).is_file():
            raise DataError(where, f"lists: {dataset}: {HERE / path} not found")


def protocols() -> dict[str, Protocol]:
    return {name: Protocol(name, **e) for name, e in protocol_data()["protocols"].items()}


def get_protocol(name: str) -> Protocol:
    known = protocols()
    if name not in known:
        raise ConfigError(f"protocol: unknown {name!r}; known: {', '.join(known)}")
    return known[name]


def template_set(protocol: Protocol, dataset: str, default: str) -> str:
    """The template set ``protocol`` uses on registry dataset ``dataset`` (``default``: the config's)."""
    t = protocol.templates
    if isinstance(t, dict):
        t = t.get(dataset, t.get("default"))
    return t or default


def official_split(dataset: str) -> str | None:
    """The published split of a registry dataset, in words (None: none published)."""
    return protocol_data()["official_splits"].get(dataset)


def built_on(dataset: str) -> list[str]:
    """Caption sets whose images make up classification set ``dataset``."""
    return list(protocol_data().get("built_on", {}).get(dataset, []))


def not_zero_shot(dataset: str, trained_on: Sequence[str] = ()) -> str:
    """``"not zero-shot: trained on <set>"`` when a model trained on ``trained_on`` (registry keys,
    caption files, or a zoo entry's training sets) has seen ``dataset``'s images or classes: the set
    itself or a caption set built on its images; else ``""``."""
    names = {Path(str(t)).stem if str(t).endswith(".json") else str(t) for t in trained_on}
    seen = [dataset] if dataset in names else []
    seen += [c for c in built_on(dataset)
             if c in names or (REGISTRY[c].annotation and Path(REGISTRY[c].annotation).stem in names)]
    return f"not zero-shot: trained on {', '.join(seen)}" if seen else ""


@lru_cache(maxsize=None)
def class_lists() -> dict[str, dict[str, str] | None]:
    """classes.yaml: registry dataset -> ``{class folder: prompt name}`` (None: not verified here)."""
    data = read_yaml(CLASSES_FILE, "class-list file")
    return {name: (dict(entry["classes"]) if entry.get("classes") else None) for name, entry in data.items()}


def sorted_split_indices(paths: Sequence, labels: Sequence[int], train_fraction: float = 0.8,
                         need_train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """RemoteCLIP's split: per class, file names sorted, the first ``floor(train_fraction * n)``
    train, the rest test. Returns sorted index arrays ``(train, test)``. A class of one image
    has no train part (floor(0.8) = 0): an error where the train part is needed (probes), its
    image a test image where only the test part is (zero-shot)."""
    labels = np.asarray(labels)
    names = [Path(str(p)).name for p in paths]
    train, test = [], []
    for c in np.unique(labels):
        members = sorted(np.flatnonzero(labels == c), key=lambda i: names[i])
        cut = int(np.floor(train_fraction * len(members)))
        if (cut == 0 and need_train) or cut == len(members):
            raise DataError("sorted_80_20", f"class {int(c)} has {len(members)} image(s): cannot split it")
        train += members[:cut]
        test += members[cut:]
    return np.array(sorted(train)), np.array(sorted(test))


def probe_split(protocol: Protocol, paths: Sequence, labels: Sequence[int], train_fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train, test, note)`` of the probes under ``protocol``."""
    if protocol.probe_split == "sorted_80_20":
        tr, te = sorted_split_indices(paths, labels, 0.8)
        return tr, te, "per class, file names sorted, first 80% train (RemoteCLIP's split)"
    tr, te = train_test_split_indices(np.asarray(labels), train_fraction, seed)
    return tr, te, (f"no official split: seeded stratified {train_fraction:g}/{1 - train_fraction:g} split "
                    f"(split_seed={seed})")


# ---------------------------------------------------------------------------- what a protocol does

def for_dataset(value, dataset: str, default):
    """A protocol key that is one value or ``dataset -> value`` with a ``default``."""
    if isinstance(value, dict):
        return value.get(dataset, value.get("default", default))
    return default if value is None else value


@lru_cache(maxsize=None)
def name_lists() -> dict[str, dict]:
    """class_names.yaml: list name -> {registry dataset: {class folder: name}}."""
    data = read_yaml(NAMES_FILE, "class-name list file")
    out = {}
    for name, entry in (data or {}).items():
        if not isinstance(entry, dict) or not entry.get("source") or not isinstance(entry.get("lists"), dict):
            raise DataError(f"{NAMES_FILE}: {name}", "needs a source and lists (dataset -> {folder: name})")
        out[name] = {dataset: dict(mapping) for dataset, mapping in entry["lists"].items()}
    return out


def class_names_for(protocol: Protocol, dataset: str, classes: Sequence[str], cleaned: Sequence[str]
                    ) -> tuple[list[str], str]:
    """``(names, note)``: the class strings ``protocol`` puts into its prompts for ``dataset``, given
    the class folders and rsdix's cleaned names; the note is blank for rsdix's own cleaning."""
    rule = for_dataset(protocol.class_names, dataset, "rsdix")
    if rule == "rsdix":
        return list(cleaned), ""
    if rule == "raw":
        return list(classes), "class names: folder names as they are"
    if rule == "lower":
        return [c.lower() for c in classes], "class names: folder names lower-cased"
    if rule == "georsclip":
        return [re.sub(r"[_/]", " ", c).lower() for c in classes], "class names: folder names, _ and / as spaces, lower-cased"
    list_name = rule[len("list:"):]
    mapping = name_lists()[list_name].get(dataset)
    if mapping is None:
        return list(cleaned), f"no {list_name} class list for {dataset}: rsdix's cleaning"
    missing = [c for c in classes if c not in mapping]
    if missing:
        raise DataError(f"{NAMES_FILE}: {list_name}.{dataset}", f"no name for class folder(s) {missing}")
    return [mapping[c] for c in classes], f"class names: {list_name}'s list"


def zero_shot_indices(protocol: Protocol, dataset: str, paths: Sequence, labels: Sequence[int],
                      root: str | os.PathLike) -> tuple[np.ndarray | None, str]:
    """``(indices or None for every image, note)``: the images ``protocol`` scores zero-shot on."""
    if protocol.test_images == "sorted_80_20":
        _, test = sorted_split_indices(paths, labels, 0.8, need_train=False)
        return test, "last 20% of each class (file names sorted; RemoteCLIP's test split)"
    if protocol.test_images == "lists":
        listed = (protocol.lists or {}).get(dataset)
        if not listed:
            return None, f"{protocol.name}'s file list for {dataset} is not available here: every image"
        frame, _ = read_manifest(HERE / listed)
        wanted = set(frame["path"])
        keep = np.array([i for i, p in enumerate(paths) if relative(p, root) in wanted])
        if len(keep) != len(wanted):
            raise DataError(HERE / listed, f"{len(wanted)} files listed, {len(keep)} of them in the data root")
        return keep, f"{protocol.name}'s file list {listed}"
    return None, ""


def transform_captions(protocol: Protocol, texts: Sequence[str]) -> list[str]:
    """The captions as ``protocol`` feeds them to the text tower."""
    if protocol.captions == "capitalize":
        return [t.capitalize() for t in texts]
    if protocol.captions.startswith("prefix:"):
        prefix = protocol.captions[len("prefix:"):]
        return [prefix + t for t in texts]
    return list(texts)


def retrieval_note(protocol: Protocol) -> str:
    """How ``protocol``'s retrieval rows were computed, in words (blank for rsdix's own)."""
    parts = []
    if protocol.retrieval == "unique_text":
        parts.append("identical captions merged into one query (SkyScript/FarSLIP)")
    if protocol.captions == "capitalize":
        parts.append("captions capitalised")
    elif protocol.captions.startswith("prefix:"):
        parts.append(f"captions prefixed {protocol.captions[len('prefix:'):]!r}")
    if protocol.precision == "amp":
        parts.append("the evaluator used amp; rsdix fp32")
    return "; ".join(parts)


IMAGE_WORDS = {"all": "every image", "sorted_80_20": "last 20% per class (file names sorted)",
               "lists": "the evaluator's file lists (every image where none is here)"}
NAME_WORDS = {"rsdix": "rsdix's cleaning", "raw": "folder names as they are", "lower": "folder names lower-cased",
              "georsclip": "folder names, `_` `/` as spaces, lower-cased"}
RETRIEVAL_WORDS = {"per_caption": "one query per caption, duplicates kept", None: "none reported",
                   "unique_text": "identical captions merged, I2T and T2I means"}


def _words(value, table: dict) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_words(v, table)}" for k, v in value.items())
    return table.get(value, f"{value[len('list:'):]}'s list" if str(value).startswith("list:") else str(value))


def protocol_markdown() -> str:
    """The protocol table of docs/evaluation.md, generated from protocols.yaml and templates.yaml
    (a test keeps the page equal to it)."""
    lines = ["| protocol | test images (zero-shot) | templates | class names | ensemble | retrieval | captions "
             "| resolution, precision | source |", "|" + "---|" * 9]
    for p in protocols().values():
        sets = p.templates if isinstance(p.templates, dict) else {"": p.templates}
        templates = "; ".join(f"{k + ': ' if k else ''}`{v or 'config'}`"
                              + (f" ({len(TEMPLATE_SETS[v])})" if v else "") for k, v in sets.items())
        captions = {"as_is": "as written", "capitalize": "`str.capitalize`"}.get(
            p.captions, f"prefixed `{p.captions[len('prefix:'):]}`")
        ensemble = {"normalised_mean": "normalised mean", "raw_mean": "raw mean"}[p.ensemble]
        lines.append(f"| `{p.name}` | {_words(p.test_images, IMAGE_WORDS)} | {templates} | "
                     f"{_words(p.class_names, NAME_WORDS)} | {ensemble} | {RETRIEVAL_WORDS[p.retrieval]} | {captions} "
                     f"| {p.resolution}; {p.precision} | {p.source} |")
    return "\n".join(lines) + "\n"
