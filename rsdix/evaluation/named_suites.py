"""Named evaluation suites (which task runs on which dataset), as data, and the markdown summary
of ``rsdix evaluate`` (one table per task, rows dataset x metric).

    suite_tasks("remoteclip", config)   # ["zero-shot:aid", ..., "retrieval:rsicd", ...]
    suite_tasks(["whu_rs19"], config)   # every task of the config that fits a classification set

``rsdix``: the tasks and datasets of the evaluate config. ``remoteclip``: the registry datasets
RemoteCLIP (Liu et al., TGRS 2024) reports, per task (Tables: zero-shot, linear probe, k-NN,
few-shot on the classification sets; retrieval on RSICD, RSITMD, UCM-Captions). ``all``: both.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from rsdix.data.registry import REGISTRY
from rsdix.errors import ConfigError
from rsdix.evaluation.suite import TASKS, parse_tasks

REMOTECLIP_CLASSIFICATION = ("aid", "eurosat_rgb", "optimal31", "patternnet", "resisc45", "rsc11", "rsi_cb128",
                             "rsi_cb256", "rsscn7", "ucm_classification", "whu_earth", "whu_rs19")
SUITES: dict[str, dict[str, tuple[str, ...]]] = {
    "remoteclip": {
        "zero-shot": REMOTECLIP_CLASSIFICATION,
        "retrieval": ("rsicd", "rsitmd", "ucm_captions"),
        "linear-probe": REMOTECLIP_CLASSIFICATION,
        "knn": REMOTECLIP_CLASSIFICATION,
        "few-shot": REMOTECLIP_CLASSIFICATION,
    },
}
SUITE_NAMES = ("rsdix", "remoteclip", "all")


def suite_tasks(suite: str | Sequence[str] | None, config, tasks: Sequence[str] | None = None) -> list[str]:
    """``task:dataset`` pairs of a suite name or of dataset names (each with the config's tasks of
    its kind), kept to ``tasks`` (task names) when given; duplicates dropped, order kept."""
    names = [suite] if isinstance(suite, str) else list(suite or ["rsdix"])
    wanted = set(tasks) if tasks else None
    pairs: list[tuple[str, str]] = []
    for name in names:
        if name in ("rsdix", "all"):
            pairs += parse_tasks(None, config)
        if name in ("remoteclip", "all"):
            pairs += [(t, d) for t, datasets in SUITES["remoteclip"].items() for d in datasets]
        if name not in SUITE_NAMES:
            if name not in REGISTRY:
                raise ConfigError(f"--suite: {name!r} is neither a suite ({', '.join(SUITE_NAMES)}) nor a "
                                  f"registry dataset ({', '.join(REGISTRY)})")
            kind = REGISTRY[name].kind
            pairs += [(t, name) for t, spec in TASKS.items() if spec.kind == kind]
    out = [f"{t}:{d}" for t, d in pairs if wanted is None or t in wanted]
    return list(dict.fromkeys(out))


def summary_markdown(rows: pd.DataFrame, title: str, floatfmt: str = ".2f") -> str:
    """``# title``, the protocol, then one table per task: a row per dataset, split and metric (mean
    over seeds/draws), with the ``caveat`` column where a row has one (not zero-shot)."""
    lines = [f"# {title}", ""]
    if not len(rows):
        return "\n".join(lines + ["(no results)", ""])
    if "protocol" in rows:
        lines += [f"Protocol: {', '.join(rows['protocol'].dropna().unique())} "
                  "(rsdix/evaluation/protocols/protocols.yaml)", ""]
    for task, part in rows.groupby("task", sort=False):
        keys = ["dataset"] + [c for c in ("split", "protocol") if c in part] + ["metric"]
        if "caveat" in part and part["caveat"].fillna("").astype(bool).any():
            keys.append("caveat")     # "not zero-shot: trained on ucm_captions"
        part = part.fillna({k: "" for k in keys})
        table = part.groupby(keys, sort=False)["value"].mean().reset_index()
        lines += [f"## {task}", "", table.to_markdown(index=False, floatfmt=floatfmt), ""]
    return "\n".join(lines)
