"""Notebook 05's tables and summary, read off the result rows of :func:`~rsdix.evaluation.suite.evaluate_model`:
zero-shot with chance, probes in task order, counting with its chance and majority baselines, and
a markdown summary per model. Every number comes from the rows (nothing typed by hand)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rsdix.data.captions import CaptionDataset
from rsdix.evaluation.counting import NUMBER_WORDS, count_distribution


def class_counts(details: Mapping[str, dict]) -> dict[str, int]:
    """Dataset title -> number of classes, from ``evaluate_model``'s details per model."""
    return {ds: len(res.class_names) for info in details.values() for ds, res in info["zero_shot"].items()}


def skipped_datasets(details: Mapping[str, dict]) -> list[str]:
    """The datasets absent from the data root that some model's evaluation skipped (sorted)."""
    return sorted({s["dataset"] for info in details.values() for s in info.get("skipped", [])})


def chance(n_classes: int, metric: str) -> float:
    """Chance accuracy (%) of a classifier over ``n_classes`` classes: top-1 (and balanced) or top-5."""
    return 100.0 / n_classes if metric != "top5" else min(100.0, 500.0 / n_classes)


def metric_table(results: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per dataset x metric of ``task``, one column per model."""
    rows = results[results["task"] == task]
    return rows.pivot_table(index=["dataset", "metric"], columns="model", values="value").reset_index()


def zero_shot_table(results: pd.DataFrame, n_classes: Mapping[str, int]) -> pd.DataFrame:
    """:func:`metric_table` of zero-shot with a ``chance`` column, the images used (``images``: the
    rows' split, e.g. ``ucm_captions:test``) and ``caveat``: the models for which a row is not
    zero-shot ("model: not zero-shot: trained on ucm_captions"), blank where it is."""
    table = metric_table(results, "zero-shot")
    table.insert(2, "chance", [chance(n_classes[d], m) for d, m in zip(table["dataset"], table["metric"])])
    rows = results[results["task"] == "zero-shot"]
    if "split" in rows:
        table.insert(1, "images", table["dataset"].map(rows.groupby("dataset")["split"].first()))
    if "caveat" in rows:
        marked = rows[rows["caveat"].fillna("").astype(bool)]
        marks = {d: "; ".join(sorted({f"{m}: {c}" for m, c in zip(g["model"], g["caveat"])}))
                 for d, g in marked.groupby("dataset")}
        table["caveat"] = [marks.get(d, "") for d in table["dataset"]]
    return table


def best_zero_shot(results: pd.DataFrame) -> tuple[str, str]:
    """``(model, dataset)``: the model with the best mean zero-shot top-1, on its best dataset."""
    top1 = results[(results["task"] == "zero-shot") & (results["metric"] == "top1")]
    model = top1.groupby("model")["value"].mean().idxmax()
    return model, top1[top1["model"] == model].set_index("dataset")["value"].idxmax()


def probe_tasks(results: pd.DataFrame) -> list[str]:
    """linear-probe, knn, then few-shot-<k> by increasing k."""
    shots = {t for t in results["task"] if t.startswith("few-shot-")}
    return ["linear-probe", "knn"] + sorted(shots, key=lambda t: int(t.rsplit("-", 1)[1]))


def probe_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The top-1 rows of the probes."""
    return results[results["task"].isin(probe_tasks(results)) & (results["metric"] == "top1")]


def probe_table(results: pd.DataFrame) -> pd.DataFrame:
    """Probe top-1: one row per dataset x task (in :func:`probe_tasks` order), one column per model."""
    tasks = probe_tasks(results)
    return probe_rows(results).pivot_table(index=["dataset", "task"], columns="model", values="value").reindex(
        tasks, level="task").reset_index()


def probe_note(results: pd.DataFrame) -> str:
    """How the probes split and chose their settings (the note of the first probe row)."""
    rows = probe_rows(results)
    return rows["note"].iloc[0] if len(rows) else "no probe rows"


def retrieval_chance(dataset: CaptionDataset) -> str:
    """Images, captions and the chance R@1 both ways of a retrieval set, in one line."""
    n_img, n_txt = len(dataset), len(dataset.texts())
    per = n_txt / n_img
    return (f"{n_img} images, {n_txt} captions; chance R@1: image->text {100 * per / n_txt:.2f}% "
            f"({per:g} of {n_txt} captions), text->image {100 / n_img:.2f}%")


@dataclass
class CountingBaselines:
    """The true counts among a caption set's qualifying captions: chance is 10%, the majority
    baseline always answers the most common count."""
    distribution: dict[int, int]

    @property
    def n(self) -> int:
        return sum(self.distribution.values())

    @property
    def majority_count(self) -> int:
        return max(self.distribution, key=self.distribution.get)

    @property
    def majority(self) -> float:
        return 100.0 * max(self.distribution.values()) / self.n

    def describe(self) -> str:
        return (f"{self.n} qualifying captions; true counts: {self.distribution}\n"
                f"chance top-1: 10.0%; always answering {self.majority_count}: {self.majority:.1f}%")


def counting_baselines(dataset: CaptionDataset) -> CountingBaselines:
    """:class:`CountingBaselines` of every caption of ``dataset``."""
    return CountingBaselines(count_distribution([c for rec in dataset.records for c in rec.captions]))


BLIND_POINTS = 5.0   # counting_note: a top-1 within this of the mean-image top-1 "hardly depends on the image"


def counting_note(results: pd.DataFrame, baselines: CountingBaselines, dataset: str = "UCM") -> str:
    """What the counting rows say, from the numbers (:func:`rsdix.evaluation.counting.counting_accuracy`):
    the spread of top-1, how often each model gives its most frequent answer, and its top-1 with
    every image replaced by its mean image beside its top-1 with the images."""
    rows = results[(results["task"] == "counting") & (results["dataset"] == dataset)]
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    if wide.empty or not {"top1", "modal_share", "mean_image_top1"} <= set(wide.columns):
        return ""
    lo, hi = wide["top1"].idxmin(), wide["top1"].idxmax()
    shares = ", ".join(f'"{NUMBER_WORDS[k - 1]}" {100.0 * v / baselines.n:.1f}%'
                       for k, v in sorted(baselines.distribution.items(), key=lambda kv: -kv[1])[:3])
    gap = (wide["top1"] - wide["mean_image_top1"]).abs()
    text = (f"Counting top-1 on {dataset} runs from {wide.at[lo, 'top1']:.1f}% ({lo}) to {wide.at[hi, 'top1']:.1f}% "
            f"({hi}), chance 10.0%, majority baseline {baselines.majority:.1f}%. Each model gives its most frequent "
            f"answer to {wide['modal_share'].min():.0f}-{wide['modal_share'].max():.0f}% of the captions, and with every "
            f"image replaced by the model's mean image its top-1 moves by at most {gap.max():.1f} points "
            f"({wide['mean_image_top1'].min():.1f}-{wide['mean_image_top1'].max():.1f}%)")
    if gap.max() > BLIND_POINTS:
        return text + "."
    return text + (f": the answer hardly depends on the image. A model's top-1 is then the share of the count it "
                   f"keeps answering among the true counts ({shares}), so a model near chance and one near the "
                   "majority baseline differ in where their average image feature lies among the number words' text "
                   "features, not in counting.")



def describe_results(results: pd.DataFrame, n_classes: Mapping[str, int], majority: float | None = None,
                     not_evaluated: Sequence[str] = ()) -> str:
    """Markdown bullets, one per model: mean zero-shot top-1, UCM retrieval mR, linear probe and
    k-NN top-1, counting top-1 beside the majority baseline; then chance and the models not evaluated."""
    lines = []
    for model in results["model"].unique():
        r = results[results["model"] == model].set_index(["dataset", "task", "metric"])["value"]
        zs_mean = r.xs("zero-shot", level="task").xs("top1", level="metric").mean()
        parts = [f"mean zero-shot top-1 {zs_mean:.1f}%"]
        zs = results[(results["model"] == model) & (results["task"] == "zero-shot")]
        caveats = sorted({f"{d} ({c})" for d, c in zip(zs["dataset"], zs["caveat"]) if c}) if "caveat" in zs else []
        if caveats:
            parts[0] += " (includes " + ", ".join(caveats) + ")"
        if ("UCM", "retrieval", "mR") in r.index:
            parts.append(f"UCM retrieval mR {r[('UCM', 'retrieval', 'mR')]:.1f}")
        for task, label in (("linear-probe", "linear probe"), ("knn", "k-NN")):
            if task in r.index.get_level_values("task"):
                hit = r.xs(task, level="task", drop_level=False)
                parts.append(f"{label} {hit.xs('top1', level='metric').iloc[0]:.1f}%")
        if ("UCM", "counting", "top1") in r.index:
            parts.append(f"counting top-1 {r[('UCM', 'counting', 'top1')]:.1f}% (majority baseline {majority:.1f}%)")
        lines.append(f"* **{model}**: " + ", ".join(parts))
    chance_zs = np.mean([100.0 / n for n in n_classes.values()])
    lines.append(f"* chance: mean zero-shot top-1 {chance_zs:.1f}% over these datasets")
    if not_evaluated:
        lines.append("* not evaluated (weights unavailable offline): " + ", ".join(not_evaluated))
    return "\n".join(lines)
