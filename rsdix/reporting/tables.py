"""The tables of ``RESULTS.md`` and the README, built from a summary over seeds
(:func:`rsdix.results.summarise`): one compact table per task (rows = models, columns =
datasets, cells = mean with its 95% CI and seed count), the README's headline (with a rank that
orders two models only where their intervals separate, :func:`rank_ranges`), the differences to
the baseline paired by seed (:func:`paired_table`), and the published numbers once per dataset
(paper, model, backbone, parameter count, number, source).

A cell reads ``31.2 ± 0.4 (n=3)`` (the half-width of the Student-t 95% CI of the mean over 3 seeds,
n - 1 degrees of freedom, as :func:`rsdix.results.summarise` and :func:`rsdix.intervals.t_interval`
compute it), ``0.43 [0.40, 0.46] (n=1)`` (one seed with the notebook's own CI, e.g. a bootstrap)
or ``31.2 (n=1)``; :func:`cell` writes it. A paired difference reads ``+0.8 [0.1, 1.5] (n=3)``."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import torch

from rsdix.data.registry import REGISTRY
from rsdix.evaluation.datasets import base_split, split_images
from rsdix.intervals import t_interval
from rsdix.results import method_name, reference_numbers, summarise

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
# README_ROWS models by the first column (variants: EMA teachers and data-share runs left out),
# ranked by it only where their intervals separate (rank_ranges)
README_COLUMNS = [("UCM retrieval mR", "UCM", "retrieval", "mR"),
                  ("WHU-RS19 zero-shot top-1", "WHU-RS19", "zero-shot", "top1"),
                  ("EuroSAT-MS zero-shot top-1", "EuroSAT-MS", "zero-shot", "top1"),
                  ("UCM zero-shot top-1", "UCM", "zero-shot", "top1"),
                  ("WHU-RS19 linear probe top-1", "WHU-RS19", "linear-probe", "top1")]
README_ROWS = 5
VARIANT_MARKS = ("-ema", "_frac")
BASELINE = "infonce"    # paired_table: every other headline model minus this one, seed by seed

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


def rank_ranges(means, lows, highs) -> list[str]:
    """The rank (1 = highest mean) each item can take given its interval: ``"1"`` where every
    other interval lies wholly above or below its own, ``"1-2"`` where it overlaps another's. A
    missing interval (one seed without one) or one of zero width (seeds that all scored alike: the
    t interval is degenerate, not certain) overlaps everything. Lower rank bound: 1 + the number
    of intervals wholly above; upper: n - the number wholly below."""
    n = len(means)
    known = [not (pd.isna(a) or pd.isna(b) or a == b) for a, b in zip(lows, highs)]
    lo = [a if ok else -math.inf for a, ok in zip(lows, known)]
    hi = [b if ok else math.inf for b, ok in zip(highs, known)]
    out = []
    for i in range(n):
        above = sum(1 for j in range(n) if j != i and lo[j] > hi[i])
        below = sum(1 for j in range(n) if j != i and hi[j] < lo[i])
        first, last = 1 + above, n - below
        out.append(str(first) if first == last else f"{first}-{last}")
    return out


def _headline_models(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[~rows["model"].astype(str).str.contains("|".join(VARIANT_MARKS), regex=True)]


def _readme_columns(rows: pd.DataFrame) -> list[tuple[str, str, str, str, pd.DataFrame]]:
    out = []
    for title, dataset, task, metric in README_COLUMNS:
        part = rows[(rows["dataset"] == dataset) & (rows["task"] == task) & (rows["metric"] == metric)]
        if len(part):
            out.append((title, dataset, task, metric, part.drop_duplicates("model").set_index("model")))
    return out


def readme_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The README's headline: :data:`README_ROWS` models (by the first column present, highest
    mean first) x the :data:`README_COLUMNS` the run has; ``rank`` is the rank by that first column
    where the 95% intervals separate, a range where they overlap (:func:`rank_ranges`)."""
    columns = _readme_columns(_headline_models(headline_rows(summary)))
    if not columns:
        return pd.DataFrame(columns=["model"])
    first = columns[0][-1].sort_values("mean", ascending=False).iloc[:README_ROWS]
    models = first.index.tolist()
    table = pd.DataFrame({"rank": rank_ranges(first["mean"], first["ci_low"], first["ci_high"]), "model": models})
    for title, *_, part in columns:
        table[title] = [cell(part.at[m, "mean"], part.at[m, "ci_low"], part.at[m, "ci_high"],
                             int(part.at[m, "count"])) if m in part.index else "" for m in models]
    return table


def diff_cell(mean: float, low: float, high: float, count: int) -> str:
    """A paired difference: ``+0.8 [0.1, 1.5] (n=3)`` (one pair: ``+0.8 (n=1)``)."""
    if count < 2 or pd.isna(low):
        return f"{mean:+.{decimals(mean)}f} (n={count})"
    d = decimals(max(abs(mean), abs(low), abs(high)))
    return f"{mean:+.{d}f} [{low:.{d}f}, {high:.{d}f}] (n={count})"


def paired_table(results: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Every headline model minus ``baseline`` on the :data:`README_COLUMNS`, paired by seed (the
    seeds both have; notebook 03 gives the methods of one seed the same initial weights, image
    order and augmentation draws), as the mean difference with its Student-t 95% CI
    (:func:`rsdix.intervals.t_interval`) and the number of pairs; ``order`` says where the
    interval excludes 0 (never for a zero-width interval: pairs that all differ alike). Empty
    without the baseline."""
    if not len(results):
        return pd.DataFrame()
    shown = _headline_models(headline_rows(summarise(results)))
    raw = results.assign(method=results["model"].map(method_name), split=results["split"].fillna(""))
    rows = []
    columns = _readme_columns(shown)
    others = [m for m in (columns[0][-1].sort_values("mean", ascending=False).index if columns else [])
              if m != baseline]
    for other in others:
        row, order = {"difference": f"{other} - {baseline}"}, []
        for title, dataset, task, metric, part in columns:
            if baseline not in part.index or other not in part.index:
                row[title] = ""
                continue
            split = part.at[baseline, "split"]
            sel = raw[(raw["dataset"] == dataset) & (raw["task"] == task) & (raw["metric"] == metric)
                      & (raw["split"] == split)]
            a = sel[sel["method"] == other].drop_duplicates("seed").set_index("seed")["value"]
            b = sel[sel["method"] == baseline].drop_duplicates("seed").set_index("seed")["value"]
            seeds = a.index.intersection(b.index)
            if not len(seeds):
                row[title] = ""
                continue
            mean, low, high = t_interval((a.loc[seeds] - b.loc[seeds]).to_numpy(float))
            row[title] = diff_cell(mean, low, high, len(seeds))
            if len(seeds) > 1 and high > low and (low > 0 or high < 0):   # a zero-width interval orders nothing
                order.append(f"{title}: {other} {'above' if mean > 0 else 'below'}")
        row["order (interval excludes 0)"] = "; ".join(order) or "none"
        rows.append(row)
    return pd.DataFrame(rows)


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
