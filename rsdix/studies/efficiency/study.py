"""The study end to end (``make study``, ``rsdix study efficiency``): stage 1 (pretrained regime), learning
curves and the lr grid, the grid, the report of both regimes.

    study("cpu_pretrained")       # figures/study/: runs.csv, learning_curves.csv, queries/, targets.csv, ...
    write_report("figures/study") # the report alone, from the stored rows of every regime there

Everything resumes: finished curves and runs are read back, not trained again.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import pandas as pd
import torch

from rsdix import config
from rsdix.studies.efficiency.design import EfficiencyConfig, load_efficiency_config
from rsdix.studies.efficiency.curves import CURVES_CSV, choose_lrs, derived_steps, learning_curves, read_curves
from rsdix.studies.efficiency.pretrain import pretrain
from rsdix.studies.efficiency.plots import plot_curves, plot_mechanism, plot_paired
from rsdix.studies.efficiency.analysis import (CURVE_SUMMARY_CSV, FAMILY_CSV, INTERACTION_CSV, MECHANISM_CSV,
                                               PAIRED_CSV, STUDY_MD, Queries, arm_title, curve_lengths,
                                               interaction_table, paired_table, primary_family, read_runs,
                                               read_targets, target_summary)
from rsdix.studies.efficiency import report
from rsdix.studies.efficiency.regimes import PRETRAIN_CURVE_CSV, PRETRAIN_SCORE_CSV
from rsdix.studies.efficiency.runs import DIVERGED_CSV, RUNS_CSV, EfficiencyContext, plan, read_diverged, run_study, study_dirs
from rsdix.data.registry import get_info
from rsdix.errors import DataError
from rsdix.paths import figures_dir, runs_dir
from rsdix.utils import atomic_path, atomic_write_text

FIGURES = {"paired": "03_study_paired.png", "teacher": "03_study_teacher.png", "curves": "03_study_curves.png"}


def default_out_dir(profile: str = "cpu") -> Path:
    """``figures/study`` for the cpu profiles (the committed results of both regimes), ``runs/<profile>/study``
    else."""
    return figures_dir() / "study" if profile.split("_")[0] == "cpu" else runs_dir() / profile / "study"


def study(profile: str = "cpu", out_dir=None, data_root=None, overrides=(), max_minutes: float | None = None,
          curves: bool = True, report: bool = True) -> Path:
    """Stage 1 (the pretrained regime), the learning curves and lr grid (unless ``curves=False``: read
    back), every run of the grid, the report. Several processes may run it at once: each takes the next
    unit no other holds. Returns ``out_dir``."""
    cfg = load_efficiency_config(profile, overrides=overrides)
    out_dir = Path(out_dir) if out_dir else default_out_dir(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = EfficiencyContext(cfg, profile, out_dir, study_dirs(profile, out_dir), data_root)
    if cfg.regime == "pretrained" and cfg.pretrain.enabled:
        pretrain(ctx)
    if curves and cfg.curve_steps:
        learning_curves(ctx)
    cfg = resolve_from_curves(ctx)
    run_study(cfg, out_dir, profile, data_root, max_minutes=max_minutes, ctx=ctx)
    if report:
        write_report(out_dir)
    return out_dir


def set_threads(n: int) -> None:
    """Torch threads of this process (several study workers on a shared CPU: 1 each)."""
    torch.set_num_threads(max(1, int(n)))


def resolve_from_curves(ctx: EfficiencyContext) -> EfficiencyConfig:
    """The config the runs use: each curve arm's lr from the lr grid (``ctx.lrs``) and, with
    ``steps_from_curves``, the steps per share from the curves' plateaus (the context takes it too)."""
    cfg = ctx.cfg
    stored = read_curves(ctx.out_dir, cfg.regime)
    if cfg.lr_grid and not ctx.lrs:
        ctx.lrs = choose_lrs(stored, cfg.curve_arms, cfg.lr_grid, cfg.plateau_tolerance)
        missing = sorted({(a, float(f)) for a in cfg.curve_arms for f in cfg.curve_steps} - set(ctx.lrs))
        if missing:
            raise DataError(Path(ctx.out_dir) / CURVES_CSV, f"no lr-grid curves of {missing}: run with the curves")
    if cfg.steps_from_curves:
        steps = derived_steps(stored, ctx.lrs, cfg.plateau_tolerance)
        missing = sorted({f for _, _, f in plan(cfg)} - set(steps))
        if missing:
            raise DataError(Path(ctx.out_dir) / CURVES_CSV, f"no curves at share(s) {missing}: run with the curves")
        cfg = dataclasses.replace(cfg, steps=steps)
        ctx.cfg = cfg
    return cfg


CONFIG_FILES = {"scratch": "config.json", "pretrained": "config_pretrained.json"}
DEFAULT_PROFILES = {"scratch": "cpu", "pretrained": "cpu_pretrained"}
FIGURES = {"paired": "03_study_paired.png", "teacher": "03_study_teacher.png", "curves": "03_study_curves.png",
           "paired_pretrained": "03_study_paired_pretrained.png", "curves_pretrained": "03_study_curves_pretrained.png",
           "mechanism": "03_study_mechanism.png"}
REGIME_WORDS = {"pretrained": "pretrained-teacher regime (issue #29: every arm fine-tunes a pretrained CLIP, so the EMA "
                              "teacher is meaningful from the first step)",
                "scratch": "scratch regime (issue #18: every tower from random weights, so the teacher is the EMA of "
                           "an untrained tower at first)"}


def config_of(out_dir: Path, regime: str) -> EfficiencyConfig | None:
    """The config a regime's runs were made with (``config.json`` / ``config_<regime>.json``, written by
    the study), else the cpu profile of that regime; None if the folder has no run of it."""
    path = Path(out_dir) / CONFIG_FILES[regime]
    if path.exists():
        data = json.loads(path.read_text())
        for key in ("steps", "curve_steps"):   # JSON keeps mapping keys as text
            data[key] = {float(k): v for k, v in data.get(key, {}).items()}
        data.setdefault("regime", regime)
        return config.load("efficiency", data)
    return load_efficiency_config(DEFAULT_PROFILES[regime])


def _md(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    return frame.to_markdown(index=False, floatfmt=floatfmt)


def _save(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_report(out_dir, cfg: EfficiencyConfig | None = None) -> str:
    """Tables (``paired.csv``, ``interaction.csv``, ``primary_family.csv``, ``curve_lengths.csv``,
    ``mechanism.csv``), figures and ``STUDY.md`` from the stored rows of ``out_dir``, every regime there
    (``cfg``: the config of a folder with one regime); returns STUDY.md's text."""
    out_dir = Path(out_dir)
    runs = read_runs(out_dir)
    curves = read_curves(out_dir)
    regimes = [r for r in ("pretrained", "scratch") if (runs.regime == r).any() or (curves.regime == r).any()
               or (r == "pretrained" and (out_dir / PRETRAIN_SCORE_CSV).exists())]
    cfgs = {r: (cfg if cfg is not None and cfg.regime == r else config_of(out_dir, r)) for r in regimes}
    queries = Queries(out_dir)
    tables = {}
    for regime in regimes:
        c = cfgs[regime]
        lrs = choose_lrs(curves[curves.regime == regime], c.curve_arms, c.lr_grid, c.plateau_tolerance) if c.lr_grid else {}
        if c.steps_from_curves and (curves.regime == regime).any():
            c = cfgs[regime] = dataclasses.replace(c, steps=derived_steps(curves[curves.regime == regime], lrs,
                                                                          c.plateau_tolerance))
        paired = paired_table(runs, c, c.bootstrap, queries)
        inter = interaction_table(runs, c, c.bootstrap, queries)
        tables[regime] = {"paired": paired, "inter": inter, "family": primary_family(paired, inter), "lrs": lrs,
                          "lengths": curve_lengths(curves[curves.regime == regime], c, lrs, runs)
                          if (curves.regime == regime).any() else pd.DataFrame()}
    joined = {k: pd.concat([t[k].assign(regime=r) for r, t in tables.items() if len(t[k])], ignore_index=True)
              if any(len(t[k]) for t in tables.values()) else pd.DataFrame()
              for k in ("paired", "inter", "family", "lengths")}
    for key, name in (("paired", PAIRED_CSV), ("inter", INTERACTION_CSV), ("family", FAMILY_CSV),
                      ("lengths", CURVE_SUMMARY_CSV)):
        _save(joined[key], out_dir / name)
    targets = read_targets(out_dir)
    primary_labels = {r: cfgs[r].primary.metric for r in regimes}
    mechanism = target_summary(targets, joined["paired"], runs, primary_labels)
    if len(mechanism):
        _save(mechanism, out_dir / MECHANISM_CSV)
    lines = ["# The data-efficiency study (issues #18 and #29)", "",
             "Generated by `rsdix study efficiency` (rsdix/studies/efficiency/study.py) from `runs.csv` and the tables "
             "beside it; no number here is typed. Which regime each result comes from:", ""]
    lines += [f"- **{r}**: the {REGIME_WORDS[r]}; {int((runs[(runs.regime == r) & (runs.weights == 'student')].run.nunique()))} "
              f"runs, in the sections marked ({r})." for r in regimes]
    lines += [""] + _diverged(out_dir)
    lines += ["Every interval is a 95% interval. The primary family of each regime (declared in its config before "
              "the runs: the primary metric, the pair of arms, the shares, the interaction, the margin) is tested with "
              "Holm's correction; everything else is secondary and unadjusted.", ""]
    for regime in regimes:
        lines += _regime_section(out_dir, runs, cfgs[regime], tables[regime], curves[curves.regime == regime],
                                 regime, joined)
    if len(mechanism):
        plot_mechanism(targets, mechanism, out_dir / FIGURES["mechanism"],
                       titles={a: arm_title(a, cfgs.get("pretrained") or cfgs[regimes[0]]) for a in set(targets.arm)})
        lines += ["## The mechanism: the soft targets over training, per regime (both regimes)", "",
                  f"![mechanism]({FIGURES['mechanism']})", ""]
        lines += [f"- {s}" for s in report.mechanism_sentences(mechanism, cfgs)] + [""]
    lines += ["## Closing note", ""]
    lines += [report.answer_paragraph(tables[r]["family"], cfgs[r], REGIME_WORDS[r].split(" (")[0]) for r in regimes]
    if "pretrained" in regimes:
        lines += [s for s in [fine_tuning_gain(out_dir, tables["pretrained"]["family"], cfgs["pretrained"])] if s]
    lines += [""]
    text = "\n".join(lines)
    atomic_write_text(out_dir / STUDY_MD, text)
    if out_dir.resolve() == (figures_dir() / "study").resolve() and DOCS.exists():   # the committed results
        update_docs(DOCS, docs_answer(out_dir))
    return text


DOCS = Path(__file__).resolve().parents[3] / "docs" / "study.md"
ANSWER_OPEN, ANSWER_CLOSE = "<!-- answer:", "<!-- /answer -->"


def docs_answer(out_dir) -> str:
    """docs/study.md's answer block from ``primary_family.csv``: per regime the family's table and the
    closing answer."""
    out_dir = Path(out_dir)
    path = out_dir / FAMILY_CSV
    fam = pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()
    parts = []
    for regime in ("pretrained", "scratch"):
        sub = fam[fam.regime == regime] if len(fam) else fam
        if sub.empty:
            continue
        cfg = config_of(out_dir, regime)
        a, b = arm_title(cfg.primary.a, cfg), arm_title(cfg.primary.b, cfg)
        versus = sub["versus"] if "versus" in sub else pd.Series(np.nan, index=sub.index)
        table = sub.assign(comparison=[f"{a} - {b} at {100 * f:g}%" if pd.isna(v) else
                                       f"({a} - {b}) at {100 * f:g}% minus at {100 * v:g}%"
                                       for f, v in zip(sub.fraction, versus)])
        cols = ["comparison", "n", "mean", "t_low", "t_high", "hb_low", "hb_high", "t_p", "holm_p", "mde", "upper", "p_tost"]
        parts += [f"**{regime}** ({cfg.primary.metric}; margin {cfg.primary.margin:g}):", "",
                  _md(table[[c for c in cols if c in table]], ".3g"), "",
                  report.answer_paragraph(sub.assign(versus=versus), cfg, REGIME_WORDS[regime].split(" (")[0]), ""]
    return "\n".join(parts)


def update_docs(path: Path, block: str) -> None:
    """Replace the text between the answer markers of ``path`` with ``block``."""
    text = path.read_text()
    if ANSWER_OPEN not in text or ANSWER_CLOSE not in text:
        raise DataError(path, "no answer markers (<!-- answer: ... --> and <!-- /answer -->)")
    head, rest = text.split(ANSWER_OPEN, 1)
    marker, _ = rest.split("\n", 1)
    _, tail = rest.split(ANSWER_CLOSE, 1)
    atomic_write_text(path, f"{head}{ANSWER_OPEN}{marker}\n{block}\n{ANSWER_CLOSE}{tail}")


def _regime_section(out_dir: Path, runs: pd.DataFrame, cfg: EfficiencyConfig, t: dict, curves: pd.DataFrame,
                    regime: str, joined: dict) -> list[str]:
    """STUDY.md's part of one regime: the answer (primary family), the teacher before fine-tuning, the
    setup, the lengths, the secondary comparisons, the table."""
    paired, inter, fam = t["paired"], t["inter"], t["family"]
    titles = {a: arm_title(a, cfg) for a in set(runs.arm.dropna())}
    suffix = "" if regime == "scratch" else "_pretrained"
    lines = [f"## The answer ({regime}): {arm_title(cfg.primary.a, cfg)} - {arm_title(cfg.primary.b, cfg)}, "
             f"primary family", ""]
    if len(fam):
        lines += [f"- {s}" for s in report.family_sentences(fam, cfg)] + [""]
        lines += [f"Primary metric {cfg.primary.metric}; margin {cfg.primary.margin:g} (the smallest difference that "
                  f"matters, declared before the runs); alpha {cfg.primary.alpha:g}; Holm over the "
                  f"{len(fam)} members above.", ""]
    else:
        lines += ["No primary comparison has two paired seeds yet.", ""]
    notes = report.chance_notes(paired, [(cfg.primary.a, cfg.primary.b)]) if len(paired) else []
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    if regime == "pretrained":
        lines += _teacher_score(out_dir)
    lines += _setup(runs[runs.regime == regime], cfg)
    if len(t["lengths"]):
        pre = out_dir / PRETRAIN_CURVE_CSV
        start = _start_val(out_dir, cfg) if regime == "pretrained" else None
        plot_curves(curves[_used(curves, t["lrs"])], t["lengths"], out_dir / FIGURES[f"curves{suffix}"],
                    pretrain=pd.read_csv(pre) if regime == "pretrained" and pre.exists() else None, titles=titles,
                    start=start)
        lines += _lengths(t["lengths"], t["lrs"], cfg, curves, suffix)
        if start is not None:
            best = t["lengths"].groupby("fraction")["best_val_mR"].max()
            lines += [f"Before any fine-tuning the pretrained model scores {start:.1f} validation mR; the best mean "
                      f"curve per share reaches " + "; ".join(f"{100 * f:g}%: {v:.1f} ({v - start:+.1f})"
                                                               for f, v in best.items()) + ".", ""]
    if len(paired):
        arms_rows = paired[paired.kind == "arms"]
        plot_paired(arms_rows, runs, "arms", out_dir / FIGURES[f"paired{suffix}"], titles=titles)
        lines += [f"## All arms against their controls ({regime})", "", f"![paired differences]({FIGURES[f'paired{suffix}']})",
                  "", "Secondary (unadjusted) comparisons:", ""]
        rest = arms_rows[arms_rows.family == "secondary"]
        lines += [f"- {report.comparison_sentence(r, cfg, label='(secondary) ')}" for _, r in rest.iterrows()] + [""]
        if len(inter):
            lines += [f"- {report.interaction_sentence(r, cfg, label='(secondary interaction) ')}"
                      for _, r in inter[inter.family == "secondary"].iterrows()]
            lines += [""]
        teacher = paired[paired.kind == "teacher vs student"]
        if len(teacher) and regime == "scratch":
            plot_paired(paired, runs, "teacher vs student", out_dir / FIGURES["teacher"], titles=titles)
            lines += [f"![teacher vs student]({FIGURES['teacher']})", ""]
        if len(teacher):
            lines += [f"EMA teacher against its own student ({regime}, secondary):", ""]
            lines += [f"- {report.comparison_sentence(r, cfg)}" for _, r in teacher.iterrows()] + [""]
        note = report.bootstrap_note(paired)
        if note:
            lines += [note, ""]
        lines += _dino(runs[runs.regime == regime], cfg)
        cols = ["family", "kind", "a", "a_weights", "b", "fraction", "metric", "n", "a_mean", "b_mean", "mean", "t_low",
                "t_high", "hb_low", "hb_high", "boot_low", "boot_high", "t_p", "wilcoxon_p", "mde", "upper", "p_nonsup",
                "p_tost"]
        lines += [f"### Table: every paired comparison ({regime})", "",
                  "mean = mean of A - B over the seeds both have; t_low/t_high: Student-t 95% CI; hb_low/hb_high: "
                  "hierarchical bootstrap over seeds x test images (blank where a run's per-query hits are not stored); "
                  "boot_low/boot_high: percentile bootstrap over seeds (too narrow at small n); wilcoxon_p: exact "
                  "signed-rank; mde: the true difference a paired t test at alpha 0.05 finds with power 0.8 at the "
                  "observed spread; upper: one-sided 95% upper bound; p_nonsup / p_tost: non-superiority and "
                  "equivalence against the margin (primary metric only). Unadjusted except in the family above.", "",
                  _md(paired[[c for c in cols if c in paired]], ".3g"), ""]
    return lines


def _diverged(out_dir: Path) -> list[str]:
    """The runs that stopped on a non-finite loss: no rows, so their seeds drop out of their pairs."""
    bad = read_diverged(out_dir)
    if bad.empty:
        return []
    lines = [f"Diverged runs ({len(bad)}, from `{DIVERGED_CSV}`): they have no result, so each comparison "
             "with that arm and share pairs only the other seeds (the n column below).", ""]
    return lines + [f"- {r.run}: {r.error}" for r in bad.itertuples()] + [""]


def fine_tuning_gain(out_dir: Path, family: pd.DataFrame, cfg: EfficiencyConfig) -> str:
    """How far the control arm's fine-tuning moved the primary metric from the pretrained model's score
    (pretrain_score.csv) at each share of the family: where the move is below the margin, both arms
    stay near their starting point and that share cannot show a data-efficiency gain of the margin's
    size. Empty without the score or the family."""
    path = out_dir / PRETRAIN_SCORE_CSV
    rows = family[(family.kind == "arms") & family.fraction.notna()] if len(family) else family
    if not path.exists() or not len(rows):
        return ""
    score = pd.read_csv(path)
    test = score[(score.task == "retrieval") & (score.metric == "mR") & (score.split.astype(str) == "test")]
    if not len(test):
        return ""
    start = float(test.value.iloc[0])
    moves = {float(r.fraction): float(r.b_mean) - start for r in rows.itertuples()}
    small = [f for f, m in moves.items() if abs(m) < cfg.primary.margin]
    text = (f"What fine-tuning adds in the pretrained-teacher regime: {arm_title(cfg.primary.b, cfg)}'s "
            f"{cfg.primary.metric} minus the pretrained model's "
            f"({start:.2f}): " + "; ".join(f"{100 * f:g}% {m:+.2f}" for f, m in sorted(moves.items())) + ".")
    if small:
        text += (" At " + ", ".join(f"{100 * f:g}%" for f in sorted(small)) + " that is below the margin "
                 f"({cfg.primary.margin:g}): both arms stay near the pretrained model there, so that share's "
                 "comparison says little about data efficiency (a regime where fine-tuning barely moves the model).")
    return text


def _start_val(out_dir: Path, cfg: EfficiencyConfig) -> float | None:
    """The pretrained model's validation mR before fine-tuning (the curves' set), from pretrain_score.csv."""
    path = out_dir / PRETRAIN_SCORE_CSV
    if not path.exists():
        return None
    score = pd.read_csv(path)
    val = cfg.val_spec()
    hit = score[(score.dataset == val.title) & (score.metric == "mR") & (score.split.astype(str).str.startswith(val.split))]
    return float(hit.value.iloc[0]) if len(hit) else None


def _used(curves: pd.DataFrame, lrs: dict) -> np.ndarray:
    if not lrs:
        return np.ones(len(curves), dtype=bool)
    return np.array([(a, float(f)) not in lrs or (pd.notna(lr) and np.isclose(lr, lrs[(a, float(f))]))
                     for a, f, lr in zip(curves.arm, curves.fraction, curves.lr)])


def _teacher_score(out_dir: Path) -> list[str]:
    path = out_dir / PRETRAIN_SCORE_CSV
    if not path.exists():
        return []
    score = pd.read_csv(path)
    keep = score[(score.metric.isin(["mR", "top1"]))]
    above = [f"{r.dataset} {r.split} {r.metric} {r.value:.1f} ({r.value / r.chance:.1f}x chance {r.chance:.1f})"
             for r in keep.itertuples() if pd.notna(r.chance) and r.chance > 0]
    lines = ["## The teacher before fine-tuning (pretrained)", "",
             "What the stage-1 model (InfoNCE on the source pool) scores on the evaluation sets before any fine-tuning, "
             "against the expected score of random similarities: " + "; ".join(above) + ".", ""]
    target = keep[(keep.task == "retrieval") & (keep.split == "test") & keep.chance.notna()]
    if len(target):
        r = target.iloc[0]
        ratio = r.value / r.chance
        lines += [f"On the target test set the pretrained model is at {ratio:.1f}x chance: "
                  + ("the pretrained regime is reached (its similarities rank the right captions well above chance "
                     "before any target data)." if ratio >= 2 else
                     "below twice chance, so the pretrained regime is NOT reached: read its results as a weak teacher's."),
                  ""]
    lines += [_md(score, ".2f"), ""]
    first = out_dir / "pretrain_class_split" / PRETRAIN_SCORE_CSV
    if first.exists():   # the first design: a split by classes
        old = pd.read_csv(first)
        test = old[(old.task == "retrieval") & (old.metric == "mR") & (old.split == "test") & old.chance.notna()]
        src = old[(old.task == "retrieval") & (old.metric == "mR") & (old.split == "val") & ~old.dataset.eq(
            test.dataset.iloc[0] if len(test) else "")]
        if len(test):
            t = test.iloc[0]
            lines += [f"A first design split UCM-Captions by class (stage 1 on 11 classes' training images, "
                      f"`pretrain_class_split/`): its model reached {src.value.iloc[0]:.1f} mR on the source classes' "
                      f"validation images but {t.value:.1f} on the other classes' test images ({t.value / t.chance:.1f}x "
                      f"the chance level {t.chance:.1f}), so a teacher of the target classes would have meant nothing "
                      f"there; the study splits each class's images instead (decided before any fine-tuning run).", ""]
    return lines


def _setup(runs: pd.DataFrame, cfg: EfficiencyConfig) -> list[str]:
    student = runs[runs.weights == "student"].drop_duplicates("run")
    if "train_images" not in student:
        student = student.assign(train_images=np.nan)
    done = student.groupby(["arm", "fraction"]).agg(seeds=("seed", "nunique"), steps=("steps", "median"),
                                                    train_s=("train_s", "mean"),
                                                    images=("train_images", "median")).reset_index()
    planned = pd.DataFrame(sorted({(a, f) for _, a, f in plan(cfg)}), columns=["arm", "fraction"])
    done = planned.merge(done, on=["arm", "fraction"], how="outer").fillna({"seeds": 0})
    done["arm"] = [arm_title(a, cfg) for a in done.arm]
    done["fraction"] = [f"{100 * f:g}%" for f in done.fraction]
    model = cfg.train.get("model", "(train profile's)")
    dino = ("the DINO arm trains InfoNCE's steps at its share" if cfg.dino_length == "steps" else
            "the DINO arm trains for InfoNCE's wall-clock time of the same seed")
    return [f"## Setup ({cfg.regime})", "",
            f"Base training config `train/{cfg.train_profile}.yaml` with model `{model}` and the overrides of the "
            f"study's config; seeds per phase {cfg.phase_seeds()}; training steps per share "
            f"{', '.join(f'{100 * float(k):g}%: {v}' for k, v in sorted(cfg.steps.items()))}; {dino}. "
            f"{len(student)} runs finished ({student.train_s.sum() / 60:.0f} min of training).", "",
            "Runs per cell (seeds finished; median steps and training images; mean training seconds):", "",
            _md(done, ".0f"), "", "Evaluation sets: " + "; ".join(_chance(runs)) + ".", ""]


def _lengths(lengths: pd.DataFrame, lrs: dict, cfg: EfficiencyConfig, curves: pd.DataFrame, suffix: str) -> list[str]:
    lines = [f"## Training length and learning rate ({cfg.regime})", "",
             f"![learning curves]({FIGURES[f'curves{suffix}']})", ""]
    if lrs:
        first = curves[curves.lr.notna()]
        first = first[first.seed == first.seed.min()]
        grid = first.groupby(["arm", "fraction", "lr"])["val_mR"].max().reset_index()
        lines += ["Learning rate per arm and share from the grid " + ", ".join(f"{v:g}" for v in cfg.lr_grid)
                  + " (each share's curve of the first curve seed; the best smoothed validation mR): "
                  + "; ".join(f"{arm_title(a, cfg)} at {100 * f:g}%: {lr:g}" for (a, f), lr in sorted(lrs.items()))
                  + ". Peak validation mR per lr: " + "; ".join(
                      f"{arm_title(r.arm, cfg)} {100 * r.fraction:g}% at {r.lr:g}: {r.val_mR:.1f}" for r in grid.itertuples())
                  + ".", ""]
        edge = [f"{arm_title(a, cfg)} at {100 * f:g}%" for (a, f), lr in sorted(lrs.items())
                if np.isclose(lr, min(cfg.lr_grid)) or np.isclose(lr, max(cfg.lr_grid))]
        if edge:
            lines += ["At the edge of the grid (a value beyond it might do better): " + "; ".join(edge) + ".", ""]
    flat = lengths.mean_flattened.all()
    lines += [_md(lengths, ".1f"), "",
              f"plateau_step: the first check whose 3-check running mean is within {cfg.plateau_tolerance:g} mR of the "
              f"mean curve's best; flattened: the running mean gained less than the tolerance over the curve's last "
              f"quarter. " + ("Every mean curve flattened before its end." if flat else
                              "Not every curve flattened: " + "; ".join(
                                  f"{arm_title(r.arm, cfg)} at {100 * r.fraction:g}%" for r in
                                  lengths[~lengths.mean_flattened].itertuples()) + " still rose in its last quarter.")
              + (" Each share's steps are the larger of the two arms' plateaus." if cfg.steps_from_curves else ""), ""]
    gaps = [f"{arm_title(r.arm, cfg)} {100 * r.fraction:g}%: {r.study_val_mR - r.best_val_mR:+.1f}"
            for r in lengths.itertuples() if pd.notna(r.study_val_mR)]
    if gaps:
        lines += ["The study's own runs (a fully annealed schedule of study_steps) against the mean curve's best "
                  "validation mR: " + "; ".join(gaps) + " mR points.", ""]
    return lines


def _chance(runs: pd.DataFrame) -> list[str]:
    """Each evaluation set's image count and, for zero-shot sets, the chance level (1 / classes)."""
    out = []
    for (dataset, task), g in runs.groupby(["dataset", "task"], sort=False):
        n = int(g["n"].dropna().iloc[0]) if g["n"].notna().any() else None
        text = f"{dataset} {task} ({n} images" if n else f"{dataset} {task} ("
        if task == "zero-shot":
            try:
                classes = get_info(dataset, "classification").classes
                text += f", {classes} classes, chance {100 / classes:.1f}%"
            except DataError:
                pass
        out.append(text + ")")
    return out


def _dino(runs: pd.DataFrame, cfg: EfficiencyConfig) -> list[str]:
    d = runs[(runs.arm == "dino") & (runs.weights == "student")].drop_duplicates("run")
    if d.empty:
        return []
    i = runs[(runs.arm == "infonce") & (runs.weights == "student")].drop_duplicates("run")
    i = i[i.fraction.isin(set(d.fraction)) & i.seed.isin(set(d.seed))]
    how = "at InfoNCE's steps" if cfg.dino_length == "steps" else "at InfoNCE's wall-clock time (measured on a shared machine)"
    return [f"InfoNCE + DINO {how} ({cfg.regime}): DINO runs trained {d.steps.mean():.0f} steps in {d.train_s.mean():.0f} s "
            f"on average, InfoNCE {i.steps.mean():.0f} steps in {i.train_s.mean():.0f} s (the same seeds).", ""]


__all__ = ["study", "write_report", "default_out_dir", "FIGURES", "RUNS_CSV", "DIVERGED_CSV", "read_diverged"]
