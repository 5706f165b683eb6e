"""Evaluation protocols as data (the YAML files beside this module): which template set and
which probe split each published protocol used, the official split and the class list of every
registry dataset, and which classification sets are built on a caption set's images.

    p = get_protocol("remoteclip")            # p.templates == "remoteclip", p.probe_split == "sorted_80_20"
    template_set(p, "whu_rs19", "rs")         # "remoteclip"
    not_zero_shot("ucm_classification", ["ucm_captions"])   # "not zero-shot: trained on ucm_captions"

``rsdix evaluate --protocol NAME`` picks one; every result row names it (column ``protocol``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from rsdix.data.files import read_yaml
from rsdix.data.registry import REGISTRY
from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.probes import train_test_split_indices
from rsdix.evaluation.templates import TEMPLATE_SETS

HERE = Path(__file__).resolve().parent
PROTOCOLS_FILE, CLASSES_FILE = HERE / "protocols.yaml", HERE / "classes.yaml"
PROBE_SPLITS = ("seeded", "sorted_80_20")


@dataclass(frozen=True)
class Protocol:
    """One protocol: template set (a name, ``dataset -> name`` with a ``default``, or None for the
    config's), the probe split rule (:data:`PROBE_SPLITS`) and where it comes from."""
    name: str
    description: str
    source: str
    templates: str | dict | None
    probe_split: str


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
        if entry["probe_split"] not in PROBE_SPLITS:
            raise DataError(f"{PROTOCOLS_FILE}: {name}", f"probe_split {entry['probe_split']!r} not in {PROBE_SPLITS}")
    missing = sorted(set(REGISTRY) - set(data["official_splits"]))
    if missing:
        raise DataError(PROTOCOLS_FILE, f"official_splits lacks registry dataset(s) {missing}")
    return data


def protocols() -> dict[str, Protocol]:
    return {name: Protocol(name, e["description"], e["source"], e["templates"], e["probe_split"])
            for name, e in protocol_data()["protocols"].items()}


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
    """``"not zero-shot: trained on <caption set>"`` when a model trained on ``trained_on``
    (registry keys or caption files) has seen ``dataset``'s images or classes; else ``""``."""
    names = {Path(str(t)).stem if str(t).endswith(".json") else str(t) for t in trained_on}
    seen = [c for c in built_on(dataset)
            if c in names or (REGISTRY[c].annotation and Path(REGISTRY[c].annotation).stem in names)]
    return f"not zero-shot: trained on {', '.join(seen)}" if seen else ""


@lru_cache(maxsize=None)
def class_lists() -> dict[str, dict[str, str] | None]:
    """classes.yaml: registry dataset -> ``{class folder: prompt name}`` (None: not verified here)."""
    data = read_yaml(CLASSES_FILE, "class-list file")
    return {name: (dict(entry["classes"]) if entry.get("classes") else None) for name, entry in data.items()}


def sorted_split_indices(paths: Sequence, labels: Sequence[int], train_fraction: float = 0.8
                         ) -> tuple[np.ndarray, np.ndarray]:
    """RemoteCLIP's split: per class, file names sorted, the first ``floor(train_fraction * n)``
    train, the rest test. Returns sorted index arrays ``(train, test)``."""
    labels = np.asarray(labels)
    names = [Path(str(p)).name for p in paths]
    train, test = [], []
    for c in np.unique(labels):
        members = sorted(np.flatnonzero(labels == c), key=lambda i: names[i])
        cut = int(np.floor(train_fraction * len(members)))
        if cut == 0 or cut == len(members):
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
