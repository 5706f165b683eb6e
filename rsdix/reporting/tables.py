"""The tables of ``RESULTS.md`` and the README, built from a summary over seeds
(:func:`rsdix.results.summarise`): one compact table per task (rows = models, columns =
datasets, cells = mean with its 95% CI and seed count), the README's five-row headline, and the
published numbers once per dataset (paper, model, backbone, parameter count, number, source).

A cell reads ``31.2 ± 0.4 (n=3)`` (Student-t CI over 3 seeds), ``0.43 [0.40, 0.46] (n=1)`` (one
seed with the notebook's own CI, e.g. a bootstrap) or ``31.2 (n=1)``; :func:`cell` writes it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import torch

from rsdix.data.registry import REGISTRY
from rsdix.evaluation.datasets import base_split, split_images
from rsdix.results import reference_numbers

# splits shown in the headline tables; validation rows (model selection) are in the full table only
HEADLINE_SPLITS = ("test", "all", "")


@dataclass(frozen=True)
class Headline:
    """One headline table: ``tasks`` (or every task starting with ``prefix``), their ``metrics``."""
    title: str
    metrics: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    prefix: str = ""

    def selects(self, task: str) -> bool:
        return task in self.tasks or bool(self.prefix and task.startswith(self.prefix))


HEADLINES = [
    Headline("Zero-shot classification, top-1 % (notebook 05)", ("top1",), ("zero-shot",)),
    Headline("Image-text retrieval, mean recall mR % (notebook 05)", ("mR",), ("retrieval",)),
    Headline("Linear probe, top-1 % (notebook 05)", ("top1",), ("linear-probe",)),
    Headline("k-NN, top-1 % (notebook 05)", ("top1",), ("knn",)),
    Headline("Few-shot linear probe, top-1 % (notebook 05)", ("top1",), prefix="few-shot-"),
    Headline("Counting, top-1 % (notebook 05)", ("top1",), ("counting",)),
    Headline("Captioning, corpus-level coco-caption (notebook 04)", ("BLEU-4", "METEOR", "CIDEr", "SBERT-sim"),
             ("captioning",)),
    Headline("Captioning, mean of per-image scores as RSDiX reports (notebook 04)",
             ("BLEU-4", "METEOR", "CIDEr", "SBERT-sim"), ("captioning-per-image",)),
]

# the README's headline: (column title, dataset, task, metric); its rows are the first
# README_ROWS models by the first column (variants: EMA teachers and data-share runs left out)
README_COLUMNS = [("UCM retrieval mR", "UCM", "retrieval", "mR"),
                  ("WHU-RS19 zero-shot top-1", "WHU-RS19", "zero-shot", "top1"),
                  ("EuroSAT-MS zero-shot top-1", "EuroSAT-MS", "zero-shot", "top1"),
                  ("UCM zero-shot top-1", "UCM", "zero-shot", "top1"),
                  ("WHU-RS19 linear probe top-1", "WHU-RS19", "linear-probe", "top1")]
README_ROWS = 5
VARIANT_MARKS = ("-ema", "_frac")

# the papers of the published numbers, by the first word of reference_numbers.csv's ``source``
PAPERS = {"RSDiX-CLIP": "RSDiX", "RemoteCLIP": "RemoteCLIP", "RS-M-CLIP": "RS-M-CLIP"}


def decimals(value: float) -> int:
    """Decimals that show three significant digits (at most 4, none from 100 up)."""
    if value == 0 or not math.isfinite(value):
        return 1
    return int(min(4, max(0, 2 - math.floor(math.log10(abs(value))))))


def cell(mean: float, low: float | None, high: float | None, count: int) -> str:
    """``mean ± half (n=count)`` over several seeds, ``mean [low, high] (n=1)`` for one seed with
    its own interval, ``mean (n=1)`` without one."""
    d = decimals(mean)
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{mean:.{d}f} (n={count})"
    if count > 1:
        return f"{mean:.{d}f} ± {(high - low) / 2:.{d}f} (n={count})"
    return f"{mean:.{d}f} [{low:.{d}f}, {high:.{d}f}] (n={count})"


def _cells(summary: pd.DataFrame) -> pd.Series:
    return summary.apply(lambda r: cell(r["mean"], r["ci_low"], r["ci_high"], int(r["count"])), axis=1)


def headline_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows a headline table may show: test (or all-image) splits only, whole or
    subsampled (``test: 120 of 210``) or restricted to a caption split's images (``ucm_captions:test``).
    Where a model has a number on the whole split and on a subsample of it (notebook 03's capped
    quick check beside notebook 05), the one on the most images is shown."""
    rows = summary[summary["split"].map(base_split).isin(HEADLINE_SPLITS)]
    keys = [k for k in ("section", "model", "dataset", "task", "metric") if k in rows]
    order = rows["split"].map(split_images).rank(ascending=False, method="first")
    return rows.assign(_order=order).sort_values("_order", kind="stable").drop_duplicates(keys) \
        .drop(columns="_order").sort_index()


def _column(part: pd.DataFrame, prefix: str) -> pd.Series:
    """Column titles: the dataset, with the metric (several metrics) or the task's tail (``prefix``)."""
    title = part["dataset"].astype(str)
    if prefix:
        title = title + " " + part["task"].str[len(prefix):] + "-shot"
    if part["metric"].nunique() > 1:
        title = title + " " + part["metric"]
    if not prefix and part["task"].nunique() > 1:
        title = title + " " + part["task"]
    return title


def pivot(part: pd.DataFrame, prefix: str = "", order: list[str] | None = None) -> pd.DataFrame:
    """Rows = models, columns = datasets (x metric), cells from :func:`cell`; blank where a model
    has no number. Columns in ``order`` (metrics) then first appearance."""
    part = part.assign(column=_column(part, prefix), cell=_cells(part))
    if order:
        rank = {m: i for i, m in enumerate(order)}
        part = part.assign(_rank=part["metric"].map(rank)).sort_values(["dataset", "_rank"], kind="stable")
    if prefix:
        part = part.assign(_k=part["task"].str[len(prefix):].astype(float)).sort_values(["dataset", "_k"],
                                                                                        kind="stable")
    columns = list(dict.fromkeys(part["column"]))
    wide = part.pivot_table(index="model", columns="column", values="cell", aggfunc="first")
    wide = wide.reindex(columns=columns).fillna("")
    wide.columns.name = None
    return wide.reset_index()


def task_tables(summary: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """``(section, title, table)``: the headline tables of :data:`HEADLINES` that have rows
    (section blank), then one per task of each section the rows name (``section``), titled
    ``<task>, <metric>``; rows of a section are shown there only."""
    rows = headline_rows(summary)
    named = (rows["section"].astype(object).where(rows["section"].notna(), "").astype(str) if "section" in rows
             else pd.Series("", index=rows.index))
    out = []
    for spec in HEADLINES:
        part = rows[(named == "") & rows["task"].map(spec.selects) & rows["metric"].isin(spec.metrics)]
        if len(part):
            out.append(("", spec.title, pivot(part, spec.prefix, order=list(spec.metrics))))
    for section in dict.fromkeys(s for s in named if s):
        for task, part in rows[named == section].groupby("task", sort=False):
            metrics = ", ".join(dict.fromkeys(part["metric"]))
            out.append((section, f"{task}, {metrics}", pivot(part)))
    return out


def readme_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The README's headline: :data:`README_ROWS` models (best first by the first column present)
    x the :data:`README_COLUMNS` the run has."""
    rows = headline_rows(summary)
    rows = rows[~rows["model"].astype(str).str.contains("|".join(VARIANT_MARKS), regex=True)]
    columns = []
    for title, dataset, task, metric in README_COLUMNS:
        part = rows[(rows["dataset"] == dataset) & (rows["task"] == task) & (rows["metric"] == metric)]
        if len(part):
            columns.append((title, part.drop_duplicates("model").set_index("model")))
    if not columns:
        return pd.DataFrame(columns=["model"])
    first = columns[0][1]
    models = first.sort_values("mean", ascending=False).index[:README_ROWS].tolist()
    table = pd.DataFrame({"model": models})
    for title, part in columns:
        table[title] = [cell(part.at[m, "mean"], part.at[m, "ci_low"], part.at[m, "ci_high"],
                             int(part.at[m, "count"])) if m in part.index else "" for m in models]
    return table


def compact_markdown(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A markdown table without alignment padding (long tables stay small); floats as ``floatfmt``,
    blanks for NaN."""
    def text(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else format(value, floatfmt)
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


@lru_cache(maxsize=None)
def parameter_count(backbone: str) -> str:
    """Parameters of a published CLIP backbone (``ViT-B/32``: image and text towers), counted
    from open_clip's model config on the meta device (no weights); blank when not a CLIP config."""
    import open_clip  # heavy, and only the published table needs it

    cfg = open_clip.get_model_config(str(backbone).replace("/", "-"))
    if cfg is None:
        return ""
    with torch.device("meta"):
        model = open_clip.model.CLIP(**cfg)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"


def published_reference(summary: pd.DataFrame, reference: pd.DataFrame | None = None
                        ) -> list[tuple[str, pd.DataFrame]]:
    """The published numbers once per dataset of the headline tables, for the tasks and metrics
    those show: ``(heading, table)`` with paper, model, backbone, parameters, task, metric,
    number and source. A dataset whose numbers were published on another release
    (``DatasetInfo.published_as``) is headed as that release, not as ours."""
    ref = reference_numbers(aliases=False) if reference is None else reference
    shown = headline_rows(summary)
    keys = shown[shown["task"].map(lambda t: any(h.selects(t) for h in HEADLINES))
                 & shown.apply(lambda r: any(h.selects(r["task"]) and r["metric"] in h.metrics
                                             for h in HEADLINES), axis=1)]
    releases = {info.title: info.published_as for info in REGISTRY.values() if info.published_as}
    out = []
    for dataset in dict.fromkeys(keys["dataset"]):
        published_on = releases.get(dataset, dataset)
        mine = keys[keys["dataset"] == dataset][["task", "metric"]].drop_duplicates()
        rows = ref[ref["dataset"] == published_on].merge(mine, on=["task", "metric"])
        if rows.empty:
            continue
        table = pd.DataFrame({
            "paper": rows["source"].map(lambda s: PAPERS.get(str(s).split()[0], str(s).split()[0])),
            "model": rows["model"], "backbone": rows["backbone"],
            "parameters": rows["backbone"].map(parameter_count),
            "task": rows["task"], "metric": rows["metric"], "number": rows["value"].map("{:g}".format),
            "source": rows["source"]})
        heading = dataset if published_on == dataset else (
            f"{published_on} (the papers' release; ours is {dataset}, another release of its scenes: "
            "not like for like)")
        out.append((heading, table))
    return out
