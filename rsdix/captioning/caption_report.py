"""Notebook 04's summaries: score tables beside RSDiX's published row, run times, the goal check,
the decoding comparison, the example figure and the written conclusions."""
from __future__ import annotations

import os
import random
import time
from typing import Sequence

import pandas as pd

from rsdix.captioning.decoding import DECODING_METHODS, DecodeConfig, decode_config
from rsdix.captioning.experiment import CaptioningGoal, CaptionRun, embedding_cache, for_scoring
from rsdix.captioning.metrics import TASK_CORPUS, TASK_PER_IMAGE, evaluate_captions
from rsdix.captioning.training import caption_images
from rsdix.data.images import load_image
from rsdix.results import with_reference, write_table
from rsdix.viz import captioned_images, save

DECODING_METRICS = ("BLEU-4", "ROUGE-L", "CIDEr")
REFERENCE_MODEL = "RSDiX-CLIPCap"


def results_frame(rows: Sequence) -> pd.DataFrame:
    """The result rows of the runs as one frame (without ``extra``)."""
    return pd.DataFrame([r.__dict__ for r in rows]).drop(columns=["extra"])


def times_table(outputs: Sequence[dict]) -> pd.DataFrame:
    """One row per run: seconds spent embedding, training, decoding, scoring (and in all)."""
    return pd.DataFrame([out["times"] for out in outputs])


NOT_COMPUTED = "not computed"


def score_tables(ours: pd.DataFrame, out_dir: str | os.PathLike, requested: Sequence[str] = ()
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(wide, side)``: every score as (dataset, model) x (task, metric), and our scores beside
    RSDiX's published ones (where it published that metric for that dataset); both written to
    ``out_dir`` (``captioning_scores``, ``captioning_vs_published``). A metric of ``requested``
    (the config's) with no score, such as SPICE without its jars, gets a "not computed" cell in
    both tables, never a missing column."""
    wide = ours.pivot_table(index=["dataset", "model"], columns=["task", "metric"], values="value")
    missing = [m for m in requested if m not in set(ours["metric"])]
    shown = wide.round(4).reset_index().set_axis(["dataset", "model"] + [f"{t}:{m}" for t, m in wide.columns], axis=1)
    for metric in missing:
        for task in dict.fromkeys(ours["task"]):
            shown[f"{task}:{metric}"] = f"{NOT_COMPUTED} ({_why_missing(metric)})"
    write_table(shown, "captioning_scores", out_dir)
    side = with_reference(ours[["model", "dataset", "task", "metric", "value"]], ref_model=REFERENCE_MODEL)
    side = side.dropna(subset=["published"])[["dataset", "model", "task", "metric", "value", "published",
                                              "ref_backbone"]]
    if missing:
        pairs = ours[["model", "dataset", "task"]].drop_duplicates()
        ref = with_reference(pairs.merge(pd.DataFrame({"metric": missing}), how="cross"), ref_model=REFERENCE_MODEL)
        ref = ref.dropna(subset=["published"]).assign(value=lambda f: [f"{NOT_COMPUTED} ({_why_missing(m)})"
                                                                        for m in f["metric"]])
        side = pd.concat([side.astype({"value": object}), ref[side.columns]], ignore_index=True)
    side = side.rename(columns={"value": "ours", "ref_backbone": "published (RSDiX backbone)"})
    write_table(side, "captioning_vs_published", out_dir)
    return (shown.set_index(["dataset", "model"]) if missing else wide), side


def _why_missing(metric: str) -> str:
    return "Stanford CoreNLP jars absent: make spice" if metric == "SPICE" else "not run here"


# ----------------------------------------------------------------------------------------------
# the goal check
# ----------------------------------------------------------------------------------------------
def describe_goal(goal: CaptioningGoal) -> str:
    """The goal in words (from the profile's config)."""
    if not goal.min_scores:
        return "goal: none set for this profile"
    text = "goal: corpus-level " + " and ".join(f"{m} >= {v:g}" for m, v in goal.min_scores.items())
    if goal.max_train_minutes is not None:
        text += f" within {goal.max_train_minutes:g} minutes of training"
    return text


def _score(evaluation, metric: str, task: str = TASK_CORPUS) -> float | None:
    try:
        return evaluation.value(metric, task)
    except KeyError:
        return None


def goal_line(out: dict, goal: CaptioningGoal) -> str:
    """One run's corpus and per-image scores of the goal's metrics, its training time, and
    whether it meets the goal."""
    ev, t = out["evaluation"], out["times"]
    metrics = list(goal.min_scores) or ["CIDEr", "BLEU-4"]

    def shown(task):
        values = [(m, _score(ev, m, task)) for m in metrics]
        return ", ".join(f"{m} {v:.3f}" if v is not None else f"{m} not scored" for m, v in values)

    minutes = t["train_s"] / 60
    ok = all((_score(ev, m) is not None and _score(ev, m) >= v) for m, v in goal.min_scores.items()) and \
        (goal.max_train_minutes is None or minutes <= goal.max_train_minutes)
    verdict = "no goal set" if not goal.min_scores else f"goal {'met' if ok else 'NOT met'}"
    return (f"{out['run'].name} ({t['dataset']}): corpus {shown(TASK_CORPUS)}; per-image {shown(TASK_PER_IMAGE)}; "
            f"training {minutes:.1f} min -> {verdict}")


def best_output(outputs: Sequence[dict]) -> dict:
    """The run with the highest corpus-level CIDEr."""
    return max(outputs, key=lambda o: o["evaluation"].value("CIDEr"))


def goal_check(outputs: Sequence[dict], goal: CaptioningGoal) -> str:
    """The goal, one line per run (:func:`goal_line`) and the best run."""
    best = best_output(outputs)
    return "\n".join([describe_goal(goal)] + [goal_line(out, goal) for out in outputs] +
                     [f"best: {best['run'].name} (corpus CIDEr {best['evaluation'].value('CIDEr'):.3f})"])


# ----------------------------------------------------------------------------------------------
# decoding, examples, conclusions
# ----------------------------------------------------------------------------------------------
def compare_decoding(best: dict, decode: DecodeConfig, seed: int = 0, methods: Sequence[str] = DECODING_METHODS,
                     metrics: Sequence[str] = DECODING_METRICS) -> pd.DataFrame:
    """The same trained captioner decoded with each method, scored corpus-level: one row per
    method with the scores, the number of distinct captions, word-less captions and seconds."""
    rows, test = [], best["records"]
    for method in methods:
        t0 = time.perf_counter()
        gen = caption_images(best["trained"], test, best["image_dir"], decode_config(decode, method=method),
                             cache=embedding_cache(), seed=seed)
        secs = time.perf_counter() - t0
        scored, wordless = for_scoring(gen)
        ev = evaluate_captions({r.filename: g for r, g in zip(test, scored)}, {r.filename: r.captions for r in test},
                               metrics=list(metrics))
        rows.append({"decoding": method, **{m: ev.value(m) for m in metrics},
                     "distinct captions": len(set(gen)), "wordless": wordless, "decode_s": secs})
    return pd.DataFrame(rows)


def plot_examples(outputs: Sequence[dict], best: dict, decode: DecodeConfig, seed: int = 0, n: int = 8, path=None):
    """Test images of the best run's dataset with every run's generated caption (decoded with
    ``decode``) and one reference (saved to ``path`` when given)."""
    records = best["records"]
    pick = random.Random(seed).sample(range(len(records)), min(n, len(records)))
    gens = {o["run"].name: o["captions"].set_index("filename")["generated"] for o in outputs
            if o["times"]["dataset"] == best["times"]["dataset"]}
    items = []
    for i in pick:
        rec = records[i]
        lines = [(name.replace("clipcap-", ""), g[rec.filename]) for name, g in gens.items()]
        items.append((load_image(best["image_dir"] / rec.filename), lines + [("reference", rec.captions[0])]))
    method = f"beam {decode.beam_size}" if decode.method == "beam" else decode.method
    fig = captioned_images(items, ncols=4, title=f"{best['times']['dataset']} test images: generated captions "
                                                 f"({method}) and one reference")
    if path is not None:
        save(fig, path)
    return fig


def conclusions(ours: pd.DataFrame, runs: Sequence[CaptionRun]) -> str:
    """Which encoder captions best (corpus CIDEr, BLEU-4, SBERT-sim), whether the encoders are the
    untrained fallback, and how far per-image scores sit above corpus scores."""
    lines = []
    corpus = ours[ours.task == TASK_CORPUS].pivot_table(index="model", columns="metric", values="value")
    for metric in ["CIDEr", "BLEU-4", "SBERT-sim"]:
        if metric in corpus:
            col = corpus[metric].sort_values(ascending=False)
            lines.append(f"{metric} (corpus): " + ", ".join(f"{m} {v:.3f}" for m, v in col.items()))
    if any(r.fallback for r in runs):
        lines.append("These captioners use an untrained preset image encoder (notebook 03 models missing): "
                     "the numbers measure the decoder's language prior more than image understanding.")
    per = ours[ours.task == TASK_PER_IMAGE].pivot_table(index="model", columns="metric", values="value")
    gap = (per - corpus).mean()
    lines.append("per-image minus corpus, averaged over models: " +
                 ", ".join(f"{m} {v:+.3f}" for m, v in gap.dropna().items()))
    return "\n".join(lines)
