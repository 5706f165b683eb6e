"""Are n-gram caption metrics fit for remote-sensing captioning? (RSDiX's metric study, made rigorous)

RSDiX replaces 30-50% of the eligible words of reference captions by WordNet synonyms, scores each
paraphrase against its original with BLEU/ROUGE-L/S-BERT and runs a one-sided t-test that the
n-gram metric's mean is below S-BERT similarity's. Means of metrics on different scales say
little, so the study adds meaning-CHANGING edits beside the paraphrase, a natural paraphrase
(another annotator's caption of the same image), separation AUCs, paired tests, retention,
discrimination (is an image's own reference ranked above same-class distractors?) and the
correlation between metrics, and checks its own tools: METEOR's penalty on controlled cases, the
WordNet swaps by hand, RSDiX's original test beside the corrected one. The modules of
:mod:`rsdix.studies.caption_metrics` hold those steps; this one holds the study itself: its config
(:class:`CaptionMetricsConfig`, :func:`load_study_config`), the written :func:`conclusions` (and
:func:`write_conclusions`, the committed markdown beside the tables), and its rows for the tidy
results table (:func:`to_results`, with the task names and the RESULTS.md section they are shown in).

Unit of analysis: one original caption per image (seeded choice), so units are independent.
Every table is tidy (one row per dataset x metric x comparison); tests come from ``scipy.stats``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from rsdix import config
from rsdix.config import option
from rsdix.errors import ConfigError
from rsdix.studies.caption_metrics.caption_sets import DATASET_NAMES, DATASETS
from rsdix.studies.caption_metrics.discrimination import DISTRACTORS
from rsdix.studies.caption_metrics.perturb import EDITS, PRESERVING
from rsdix.studies.caption_metrics.scoring import METRICS, REFERENCE_METRIC
from rsdix.studies.caption_metrics.separation import ANY_EDIT
from rsdix.results import Result
from rsdix.utils import atomic_write_text

# RESULTS.md shows the study's headline rows in this section (their ``Result.section``): the
# separation AUCs of both paraphrase kinds and the discrimination AUC with these distractors
SECTION = "Caption-metric study: paraphrase vs meaning-changing edits, discrimination (notebook 06)"
CONCLUSIONS = "metric_study_conclusions.md"   # written beside the study's tables (write_conclusions)
SECTION_DISTRACTORS = "same-class"


@dataclass
class CaptionMetricsConfig:
    datasets: tuple = DATASETS        # some of DATASETS
    split: str | None = None          # None: all splits (the study uses reference captions only)
    n_images: int | None = option(400, min=1)         # images per dataset (one original caption each)
    n_discrimination: int | None = option(150, min=1)
    k_distractors: int = option(4, min=1)
    distractors: tuple = DISTRACTORS  # some of DISTRACTORS
    min_frac: float = option(0.3, min=0, max=1, min_exclusive=True)
    max_frac: float = option(0.5, min=0, max=1, min_exclusive=True)
    sense: Literal["frequent", "any"] = "frequent"
    n_resamples: int = option(1000, min=1)
    metrics: tuple = METRICS          # some of METRICS
    tokenizer: Literal["ptb", "simple"] = "ptb"
    n_original_images: int | None = option(100, min=1)  # RSDiX's original test: images per dataset, every caption
    n_synonym_check: int = option(25, min=1)            # one-word swaps per dataset checked by hand (synonym_labels.csv)

    def validate(self) -> None:
        if self.min_frac > self.max_frac:
            raise ConfigError(f"min_frac: {self.min_frac} is above max_frac {self.max_frac}")
        for key, known in (("datasets", DATASETS), ("distractors", DISTRACTORS), ("metrics", METRICS)):
            unknown = [v for v in getattr(self, key) if v not in known]
            if unknown:
                raise ConfigError(f"{key}: {unknown} not among {list(known)}")


def load_study_config(profile: str, **overrides) -> CaptionMetricsConfig:
    return config.load("caption_metrics", profile, **overrides)


def _names(frame: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(frame.metric)) or "none"


def _auc_lines(separation: pd.DataFrame, pkind: str, label: str) -> list[str]:
    sub = separation[(separation.preserved == pkind) & (separation.changed == ANY_EDIT)]
    if sub.empty:
        return []
    mean_auc = sub.groupby("metric")["auc"].mean().sort_values(ascending=False)
    ranking = ", ".join(f"{m} {v:.2f}" for m, v in mean_auc.items())
    below, above = sub[sub.ci_high < 0.5], sub[sub.ci_low > 0.5]
    return [f"Separation of the {label} from one-word meaning-changing edits, AUC averaged over datasets "
            f"(0.5 = blind to meaning): {ranking}.",
            f"  95% CI above 0.5 in {len(above)} of {len(sub)} (dataset, metric) cases ({_names(above)}); "
            f"entirely below 0.5, i.e. the edit scored higher than the paraphrase, in {len(below)} ({_names(below)})."]


def _discrimination_lines(discrimination: pd.DataFrame, versus: pd.DataFrame | None) -> list[str]:
    lines = []
    for mode, group in discrimination.groupby("distractors", sort=False):
        a = group.groupby("metric")["auc"].mean().sort_values(ascending=False)
        lines.append(f"Ranking an image's own reference above {mode} distractors (leave one reference out, mean AUC "
                     f"over datasets): " + ", ".join(f"{m} {v:.2f}" for m, v in a.items())
                     + f"; spread {a.iloc[0] - a.iloc[-1]:.2f}.")
        if versus is not None and len(versus):
            v = versus[versus.distractors == mode]
            ahead, behind = v[v.reference_ahead == "yes"], v[v.reference_ahead == "behind"]
            lines.append(f"  S-BERT minus each metric, paired by query (bootstrap 95% CI): S-BERT ahead in {len(ahead)} "
                         f"of {len(v)} (dataset, metric) cases ({_names(ahead)}), behind in {len(behind)} "
                         f"({_names(behind)}), no difference shown in {len(v) - len(ahead) - len(behind)}.")
    return lines


def conclusions(ttest: pd.DataFrame, separation: pd.DataFrame, retention: pd.DataFrame,
                discrimination: pd.DataFrame, alpha: float = 0.05, versus: pd.DataFrame | None = None,
                extra: dict[str, list[str]] | None = None) -> str:
    """A written conclusion generated from the computed tables (no number typed by hand), the
    realistic tests first: the natural paraphrase (another annotator's caption) against one-word
    edits, and the ranking of an image's own reference among same-class distractors (``versus``:
    :func:`rsdix.studies.caption_metrics.discrimination.discrimination_vs_reference`); then the
    synthetic WordNet paraphrases, RSDiX's test and retention. ``extra``: sentences of the checks,
    by heading (METEOR's penalty, the WordNet swap check, the original test), each generated
    from its own table."""
    lines = ["**The realistic tests.**"]
    lines += _auc_lines(separation, "human", "natural paraphrase (another annotator's caption of the same image)")
    if not discrimination.empty:
        order = {"same-class": 0, "random": 1}
        ordered = discrimination.sort_values("distractors", key=lambda c: c.map(order).fillna(2), kind="stable")
        lines += _discrimination_lines(ordered, versus)
    lines.append("**The synthetic WordNet paraphrases (RSDiX's design).**")
    labels = {"synonym": "RSDiX paraphrase (30-50% of the eligible words)",
              "synonym-1": "one-word synonym (the same edit size as the meaning-changing edits)"}
    for pkind, label in labels.items():
        lines += _auc_lines(separation, pkind, label)
    per_edit = separation[(separation.metric == REFERENCE_METRIC) & separation.changed.isin(EDITS)
                          & (separation.preserved == "synonym-1")]
    if not per_edit.empty:
        weakest = per_edit.groupby("changed")["auc"].mean().sort_values()
        lines.append(f"S-BERT (one-word synonym vs one-word edit) is weakest against '{weakest.index[0]}' edits "
                     f"(mean AUC {weakest.iloc[0]:.2f}) and strongest against '{weakest.index[-1]}' "
                     f"({weakest.iloc[-1]:.2f}).")
    sig = ttest[ttest.p_bh < alpha]
    bleu4 = ttest[ttest.metric == "BLEU-4"]["mean"]
    lines.append(f"RSDiX's test as rsdix runs it (one caption per image, one-sided t-test, BH-adjusted p < {alpha}): "
                 f"in {len(sig)} of {len(ttest)} (dataset, metric) cases the metric's mean on synonym paraphrases is "
                 f"significantly below S-BERT similarity's; mean S-BERT similarity "
                 f"{ttest.sbert_mean.min():.3f}-{ttest.sbert_mean.max():.3f}"
                 + (f", mean BLEU-4 {bleu4.min():.3f}-{bleu4.max():.3f}" if len(bleu4) else "") + ".")
    cider = ttest[ttest.metric == "CIDEr"]
    if len(cider) and (cider.p > alpha).all():
        lines.append(f"The same test calls CIDEr robust (mean {cider['mean'].min():.2f}-{cider['mean'].max():.2f} on its "
                     "0-10 scale, never below S-BERT): a comparison of means across scales, not evidence.")
    syn = retention[retention.perturbation == "synonym"]
    if not syn.empty:
        r = syn.groupby("metric")["retention"].mean().sort_values(ascending=False)
        lines.append("Retention under the RSDiX paraphrase (1 = scored like the caption itself, 0 = like an unrelated "
                     "caption): " + ", ".join(f"{m} {v:.2f}" for m, v in r.items()) + ".")
    for heading, sentences in (extra or {}).items():
        if sentences:
            lines.append(f"**{heading}.**")
            lines += sentences
    out = []
    for line in lines:
        if line.startswith("**"):
            out += ["", f"### {line.strip('*').rstrip('.')}", ""]
        else:
            out.append(f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}")
    return "\n".join(out).strip("\n")


def write_conclusions(text: str, figures, profile: str) -> Path:
    """The conclusions as ``metric_study_conclusions.md`` beside the study's tables (committed with
    them: the notebook's own output is not)."""
    head = (f"# Caption-metric study: conclusions ({profile} profile, notebook 06)\n\n"
            "Generated by notebook 06 from the tables beside this file (`metric_study_*.csv`); every number "
            "below is printed from them by `rsdix.studies.caption_metrics.study.conclusions`.\n\n")
    return atomic_write_text(Path(figures) / CONCLUSIONS, head + text + "\n")


def separation_task(preserved: str) -> str:
    """The results-table task of separation AUC for a paraphrase kind (vs the pooled minimal edits)."""
    return f"metric-separation-{preserved}"


def discrimination_task(distractors: str) -> str:
    """The results-table task of discrimination AUC with ``random`` or ``same-class`` distractors."""
    return f"metric-discrimination-{distractors}"


def to_results(separation: pd.DataFrame, discrimination: pd.DataFrame, seed: int, profile: str) -> list:
    """Headline rows for the tidy results table: separation AUC against the pooled minimal edits
    (per paraphrase kind) and discrimination AUC, each with its bootstrap CI; ``model`` is the
    caption metric. Rows of the paraphrase kinds in PRESERVING and of the SECTION_DISTRACTORS
    discrimination name :data:`SECTION` as their RESULTS.md section. The full tables go to
    CSV/markdown through ``write_table``."""
    rows = []
    for r in separation[separation.changed == ANY_EDIT].itertuples():
        rows.append(Result(model=r.metric, dataset=DATASET_NAMES.get(r.dataset, r.dataset),
                           task=separation_task(r.preserved), metric="AUC", value=r.auc, seed=seed,
                           split="all", n=int(r.n_preserved + r.n_changed), ci_low=r.ci_low, ci_high=r.ci_high,
                           profile=profile, note=f"{r.preserved} paraphrase vs one-word meaning-changing edits",
                           section=SECTION if r.preserved in PRESERVING else ""))
    for r in discrimination.itertuples():
        rows.append(Result(model=r.metric, dataset=DATASET_NAMES.get(r.dataset, r.dataset),
                           task=discrimination_task(r.distractors), metric="AUC", value=r.auc, seed=seed,
                           split="all", n=int(r.n_queries), ci_low=r.auc_low, ci_high=r.auc_high, profile=profile,
                           note=f"own-image reference vs {r.k} {r.distractors} distractors",
                           section=SECTION if r.distractors == SECTION_DISTRACTORS else ""))
    return rows
