"""Protocol sensitivity: one model evaluated under every protocol, and per model x dataset the value
under each protocol with the spread (min, max, range); the zoo's checkpoints beside their
published numbers.

    rows = evaluate_protocols(bundle, config=cfg, model_name="RemoteCLIP-ViT-B-32")
    table = sensitivity_table(rows)              # model, dataset, task, metric, <protocol>..., min, max, range
    sensitivity_figure(table, rows, "figures/protocols/sensitivity.png")

How to read it: a row's range is what the choice of evaluator alone moves the number by, with
model and images' source fixed. Zero-shot rows differ in images scored (``n``), templates, class
strings and ensemble; retrieval rows in the query convention and caption transforms (each
protocol's row in ``results.csv`` says which in ``note``). A range wider than the Wilson
intervals of the values is a protocol effect, not sampling noise.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rsdix.data.registry import REGISTRY
from rsdix.errors import DataError
from rsdix.evaluation.protocols import protocol_markdown, protocols
from rsdix.evaluation.suite import EvalConfig, evaluate_model
from rsdix.intervals import wilson_interval
from rsdix.models.features import FeatureCache
from rsdix.models.zoo import zoo_markdown
from rsdix.paths import cache_dir, repo_root
from rsdix.results import write_table
from rsdix.viz import EXTRA_COLOURS, caption, save

HEADLINE = {"zero-shot": ("top1",), "retrieval": ("mR", "i2t_mean", "t2i_mean")}
SPREAD = ["min", "max", "range"]
FIGURE_METRICS = ("top1", "mR")   # the directional means stay in the table
DOCS_PAGE = repo_root() / "docs" / "evaluation.md"


def headline_tasks(config: EvalConfig) -> list[str]:
    """The config's zero-shot and retrieval tasks: what protocols disagree on."""
    return ["zero-shot", "retrieval"] if (config.zero_shot or config.retrieval) else []


def evaluate_protocols(bundle, protocol_names: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                       config: EvalConfig | None = None, model_name: str | None = None,
                       data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None,
                       trained_on: Sequence[str] = (), seed: int = 0, details: dict | None = None) -> pd.DataFrame:
    """:func:`evaluate_model` once per protocol (default: every one), images encoded once (the
    feature cache is shared); all rows, each naming its protocol. ``details["skipped"]`` lists
    what a protocol left out (no retrieval in RS-TransCLIP's) and sets absent from the data root."""
    config = config or EvalConfig()
    names = list(protocol_names or protocols())
    tasks = list(tasks) if tasks else headline_tasks(config)
    cache = cache if cache is not None else FeatureCache(cache_dir() / "features")   # on disk: a rerun resumes
    frames, skipped = [], []
    for name in names:
        info: dict = {}
        frames.append(evaluate_model(bundle, tasks, seed=seed, model_name=model_name,
                                     config=dataclasses.replace(config, protocol=name), data_root=data_root,
                                     cache=cache, write=False, details=info, trained_on=trained_on))
        skipped += [{**s, "protocol": name} for s in info.get("skipped", [])]
    if details is not None:
        details["skipped"], details["cache_stats"] = skipped, cache.stats
    return pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else pd.DataFrame()


def sensitivity_table(rows: pd.DataFrame, metrics: dict[str, Sequence[str]] = HEADLINE) -> pd.DataFrame:
    """Per model x dataset x task x metric: the value under each protocol (a column each, in
    protocols.yaml's order; blank where a protocol reports none), ``min``, ``max``, ``range``,
    how many protocols gave a value, and the caveat (a set inside the training data)."""
    keep = rows[[m in metrics.get(t, ()) for t, m in zip(rows["task"], rows["metric"])]]
    if not len(keep):
        return pd.DataFrame()
    order = [p for p in protocols() if p in set(keep["protocol"])]
    keys = ["model", "dataset", "task", "metric"]
    wide = keep.pivot_table(index=keys, columns="protocol", values="value", aggfunc="first")[order]
    values = wide.to_numpy(dtype=float)
    out = wide.reset_index()
    out.columns.name = None
    counted = (~np.isnan(values)).sum(axis=1)
    out["min"], out["max"] = np.nanmin(values, axis=1), np.nanmax(values, axis=1)
    out["range"] = out["max"] - out["min"]
    out["protocols"] = counted
    caveat = keep["caveat"].fillna("") if "caveat" in keep else pd.Series("", index=keep.index)
    first = keep.assign(caveat=caveat).groupby(keys)["caveat"].agg(lambda c: next((x for x in c if x), ""))
    out["caveat"] = [first.get(tuple(k), "") for k in out[keys].itertuples(index=False)]
    return out


def with_published(table: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the published numbers of each row (same model, dataset, task, metric) beside
    it: ``published``, the protocol it was published under, ``ours_same_protocol`` (our value
    under that protocol, where we evaluated it) and the source. A published number on a set not
    evaluated here gets a row of its own (our values blank)."""
    if published is None or not len(published):
        return table.assign(published=np.nan, published_protocol="", ours_same_protocol=np.nan, ref_source="")
    pub = published.rename(columns={"protocol": "published_protocol"})
    aliases = [pub[pub["dataset"] == info.published_as].assign(dataset=info.title, ref_source=lambda f: [
        f"{s} (published on {info.published_as})" for s in f["ref_source"]])
        for info in REGISTRY.values() if info.published_as and info.title in set(table.get("dataset", []))]
    pub = pd.concat([pub, *aliases], ignore_index=True)   # EuroSAT-MS rows beside EuroSAT's numbers, so noted
    keys = ["model", "dataset", "task", "metric"]
    merged = table.merge(pub, on=keys, how="outer") if len(table) else pub.copy()
    ours = [row.get(row["published_protocol"], np.nan) if isinstance(row.get("published_protocol"), str)
            and row.get("published_protocol") in merged.columns else np.nan for _, row in merged.iterrows()]
    merged["ours_same_protocol"] = ours
    return merged


def sensitivity_figure(table: pd.DataFrame, rows: pd.DataFrame, path: str | os.PathLike,
                       title: str = "The same model under each evaluator's protocol") -> Path:
    """One panel per model: a line per dataset x metric from min to max, a dot per protocol
    (one colour per protocol), Wilson 95% intervals on zero-shot accuracies."""
    names = [c for c in protocols() if c in table.columns]
    colours = {p: EXTRA_COLOURS[i % len(EXTRA_COLOURS)] for i, p in enumerate(protocols())}
    table = table[table["metric"].isin(FIGURE_METRICS)]
    models = list(dict.fromkeys(table["model"]))
    heights = [0.42 * len(table[table["model"] == m]) + 0.9 for m in models]
    header = 0.9
    fig, axes = plt.subplots(len(models), 1, figsize=(8.5, sum(heights) + header), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    n_of = {(r.model, r.dataset, r.task, r.metric, r.protocol): r.n for r in rows.itertuples()}
    for ax, model in zip(axes[:, 0], models):
        part = table[table["model"] == model].reset_index(drop=True)
        labels = [f"{d} {t} {m}" for d, t, m in zip(part["dataset"], part["task"], part["metric"])]
        for y, row in part.iterrows():
            ax.plot([row["min"], row["max"]], [y, y], color="0.6", lw=3, zorder=1, solid_capstyle="round")
            for k, proto in enumerate(names):
                value = row[proto]
                if pd.isna(value):
                    continue
                offset = (k - (len(names) - 1) / 2) * 0.08
                n = n_of.get((model, row["dataset"], row["task"], row["metric"], proto))
                if row["task"] == "zero-shot" and n and 0 <= value <= 100:
                    lo, hi = wilson_interval(value, int(n))
                    ax.plot([lo, hi], [y + offset] * 2, color=colours[proto], lw=0.8, zorder=2)
                ax.scatter([value], [y + offset], color=colours[proto], s=26, zorder=3, label=proto)
        ax.set_yticks(range(len(part)), labels, fontsize=8)
        ax.set_ylim(len(part) - 0.5, -0.5)
        ax.set_xlabel("value (%)")
        ax.set_title(model, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    top = 1 - header / (sum(heights) + header)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, top))
    fig.suptitle(title, y=0.995, fontsize=11)
    caption(fig, "Dots: the value under each protocol (rsdix/evaluation/protocols/protocols.yaml); grey line: "
                 "min to max over protocols; thin lines on zero-shot dots: 95% Wilson score interval over the "
                 "images that protocol scores (n differs: RemoteCLIP's protocol scores the last 20% per class).")
    out = save(fig, path)
    plt.close(fig)
    return out


def write_sensitivity(rows: pd.DataFrame, out_dir: str | os.PathLike, published: pd.DataFrame | None = None,
                      name: str = "sensitivity") -> dict[str, Path]:
    """``results.csv`` (every row), ``<name>.csv``/``.md`` (the table, with published numbers when
    given) and ``<name>.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    table = sensitivity_table(rows)
    shown = with_published(table, published) if published is not None else table
    csv, md = write_table(shown, name, out_dir, floatfmt=".2f")
    written = {"rows": write_table(rows, "results", out_dir)[0], "table": csv, "markdown": md}
    if len(table):
        written["figure"] = sensitivity_figure(table, rows, out_dir / f"{name}.png")
    return written


DOCS_BLOCKS = {"protocols": protocol_markdown, "zoo": zoo_markdown}


def docs_block(text: str, name: str) -> str | None:
    """The generated block ``name`` of a page (between ``<!-- name:start -->`` and ``<!-- name:end -->``)."""
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0]


def update_docs(path: str | os.PathLike = DOCS_PAGE) -> Path:
    """Rewrite docs/evaluation.md's generated tables (the protocols and the zoo) from the YAML files."""
    path = Path(path)
    text = path.read_text()
    for name, make in DOCS_BLOCKS.items():
        old = docs_block(text, name)
        if old is None:
            raise DataError(path, f"no <!-- {name}:start --> / <!-- {name}:end --> markers")
        text = text.replace(f"<!-- {name}:start -->\n{old}", f"<!-- {name}:start -->\n{make()}")
    path.write_text(text)
    return path


if __name__ == "__main__":   # python -m rsdix.evaluation.sensitivity: regenerate the docs tables
    print(f"written {update_docs()}")
