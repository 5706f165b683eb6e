"""The study end to end (``make study``, ``rsdix study efficiency``): learning curves, the grid, the report.

    study("cpu")                  # figures/study/: runs.csv, learning_curves.csv, paired.csv, figures, STUDY.md
    write_report("figures/study") # the report alone, from the stored rows

Everything resumes: finished curves and runs are read back, not trained again.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import torch

from rsdix.studies.efficiency.design import EfficiencyConfig, load_efficiency_config
from rsdix.studies.efficiency.curves import CURVES_CSV, choose_lrs, derived_steps, learning_curves, read_curves
from rsdix.studies.efficiency.pretrain import pretrain
from rsdix.studies.efficiency.plots import plot_curves, plot_paired
from rsdix.studies.efficiency.analysis import (ARM_TITLES, CURVE_SUMMARY_CSV, PAIRED_CSV, STUDY_MD, answer_sentences,
                                     curve_lengths, interaction_table, paired_table, read_runs, sentence,
                                     verdict_paragraph)
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
        missing = sorted(set(cfg.curve_arms) - set(ctx.lrs))
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


def _config_of(out_dir: Path) -> EfficiencyConfig | None:
    path = out_dir / "config.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    for key in ("steps", "curve_steps"):   # JSON keeps mapping keys as text
        data[key] = {float(k): v for k, v in data.get(key, {}).items()}
    return EfficiencyConfig(**data)


def _md(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    return frame.to_markdown(index=False, floatfmt=floatfmt)


def write_report(out_dir, cfg: EfficiencyConfig | None = None) -> str:
    """Tables (``paired.csv``, ``interaction.csv``, ``curve_lengths.csv``), figures and ``STUDY.md``
    from the stored rows of ``out_dir``; returns STUDY.md's text."""
    out_dir = Path(out_dir)
    cfg = cfg or _config_of(out_dir) or load_efficiency_config("cpu")
    runs = read_runs(out_dir)
    paired = paired_table(runs, cfg.bootstrap)
    inter = interaction_table(runs, n_boot=cfg.bootstrap)
    for frame, name in ((paired, PAIRED_CSV), (inter, "interaction.csv")):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    lines = ["# The data-efficiency study (issue #18)", "",
             "Generated by `rsdix study efficiency` (rsdix/studies/efficiency/study.py) from `runs.csv`; no number here is typed.", ""]
    lines += _setup(runs, cfg) + _diverged(out_dir)
    curves_path = out_dir / CURVES_CSV
    if curves_path.exists():
        curves = pd.read_csv(curves_path)
        lengths = curve_lengths(curves, cfg.steps, cfg.plateau_tolerance)
        val = runs[(runs.metric == "mR") & (runs.split == "val") & (runs.weights == "student")]
        val = val.groupby(["arm", "fraction"])["value"].agg(["mean", "count"]).reset_index()
        lengths = lengths.merge(val.rename(columns={"mean": "study_val_mR", "count": "study_seeds"}),
                                on=["arm", "fraction"], how="left")
        with atomic_path(out_dir / CURVE_SUMMARY_CSV) as tmp:
            lengths.to_csv(tmp, index=False)
        plot_curves(curves, lengths, out_dir / FIGURES["curves"])
        lines += ["## Training length: InfoNCE learning curves", "",
                  f"![learning curves]({FIGURES['curves']})", "", _md(lengths, ".1f"), "",
                  "plateau_step: the first check whose 3-check running mean is within "
                  f"{cfg.plateau_tolerance:g} mR of the curve's best. A curve's cosine schedule spans its whole "
                  "length, so at step s its learning rate is higher than a run of s steps has there; "
                  "study_val_mR is the mean UCM val mR the study's own runs of that arm reached at study_steps "
                  "(over study_seeds seeds), to compare with best_val_mR. plateau_at_curve_end True would mean "
                  "the curve was still rising where it ended.", ""]
        gaps = [f"{100 * r.fraction:g}%: {r.study_val_mR - r.best_val_mR:+.1f}" for r in lengths.itertuples()
                if pd.notna(r.study_val_mR)]
        if gaps:
            lines += ["The study's InfoNCE runs (own, fully annealed schedule of study_steps) against the curve's "
                      "best validation mR, per share: " + "; ".join(gaps) + " mR points (one curve seed against "
                      "the study seeds' mean: a negative gap means the runs may stop before InfoNCE's plateau).", ""]
    if len(paired):
        plot_paired(paired, runs, "arms", out_dir / FIGURES["paired"])
        lines += ["## The answer: RSDiX-CLIP - InfoNCE, paired by seed", "",
                  f"![paired differences]({FIGURES['paired']})", ""]
        lines += [f"- {s}" for s in answer_sentences(paired, inter)] + [""]
        other = paired[(paired.kind == "arms") & ~((paired.a == "rsdix") & (paired.b == "infonce"))]
        if len(other):
            lines += ["## The other comparisons", ""] + [f"- {sentence(r)}" for _, r in other.iterrows()] + [""]
        teacher = paired[paired.kind == "teacher vs student"]
        if len(teacher):
            plot_paired(paired, runs, "teacher vs student", out_dir / FIGURES["teacher"])
            lines += ["## Does the EMA teacher evaluate better than its student? (same runs)", "",
                      f"![teacher vs student]({FIGURES['teacher']})", ""]
            lines += [f"- {sentence(r)}" for _, r in teacher.iterrows()] + [""]
        lines += _dino(runs)
        cols = ["kind", "a", "a_weights", "b", "fraction", "metric", "n", "a_mean", "b_mean", "mean", "t_low",
                "t_high", "boot_low", "boot_high", "t_p", "wilcoxon_p", "mde"]
        lines += ["## All paired comparisons", "",
                  "mean = mean of A - B over the seeds both have; t_low/t_high: Student-t 95% CI of it; "
                  "boot_low/boot_high: percentile bootstrap over seeds; wilcoxon_p: exact signed-rank (at n=5 its "
                  "smallest value is 0.0625); mde: the true difference a paired t test at alpha 0.05 finds with "
                  "power 0.8, given the observed spread. The intervals are per comparison, not corrected "
                  "for the number of comparisons in this table.", "", _md(paired[cols], ".3g"), ""]
        if len(inter):
            lines += ["## Interaction: RSDiX's gain at a small share minus its gain at 100%", "",
                      _md(inter[["fraction", "metric", "n", "mean", "t_low", "t_high", "wilcoxon_p", "mde"]], ".3g"),
                      ""]
        lines += ["## Closing note", "", verdict_paragraph(paired, inter), ""]
    text = "\n".join(lines)
    atomic_write_text(out_dir / STUDY_MD, text)
    return text


def _setup(runs: pd.DataFrame, cfg: EfficiencyConfig) -> list[str]:
    student = runs[runs.weights == "student"].drop_duplicates("run")
    done = student.groupby(["arm", "fraction"]).agg(seeds=("seed", "nunique"), steps=("steps", "median"),
                                                    train_s=("train_s", "mean")).reset_index()
    planned = pd.DataFrame(sorted({(a, f) for _, a, f in plan(cfg)}), columns=["arm", "fraction"])
    done = planned.merge(done, on=["arm", "fraction"], how="left").fillna({"seeds": 0})
    done["arm"] = [ARM_TITLES.get(a, a) for a in done.arm]
    done["fraction"] = [f"{100 * f:g}%" for f in done.fraction]
    model = cfg.train.get("model", "(train profile's)")
    return ["## Setup", "",
            f"Base training config `train/{cfg.train_profile}.yaml` with model `{model}` and the overrides of "
            f"`efficiency/<profile>.yaml`; seeds {cfg.seeds}; training steps per share "
            f"{', '.join(f'{100 * float(k):g}%: {v}' for k, v in sorted(cfg.steps.items()))}; the DINO arm "
            f"trains for InfoNCE's wall-clock time of the same seed. {len(student)} runs finished "
            f"({student.train_s.sum() / 60:.0f} min of training).", "",
            "Runs per cell (seeds finished; mean training seconds):", "", _md(done, ".0f"), "",
            "Evaluation sets: " + "; ".join(_chance(runs)) + ".", ""]


def _diverged(out_dir: Path) -> list[str]:
    """The runs that stopped on a non-finite loss: no rows, so their seeds drop out of their pairs."""
    bad = read_diverged(out_dir)
    if bad.empty:
        return []
    lines = [f"Diverged runs ({len(bad)}, from `{DIVERGED_CSV}`): they have no result, so each comparison "
             "with that arm and share pairs only the other seeds (the n column below).", ""]
    lines += [f"- {r.run}: {r.error}" for r in bad.itertuples()]
    return lines + [""]


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


def _dino(runs: pd.DataFrame) -> list[str]:
    d = runs[(runs.arm == "dino") & (runs.weights == "student")].drop_duplicates("run")
    if d.empty:
        return []
    i = runs[(runs.arm == "infonce") & (runs.weights == "student")].drop_duplicates("run")
    i = i[i.fraction.isin(set(d.fraction))]
    return ["## InfoNCE + DINO at InfoNCE's wall-clock time", "",
            f"DINO runs trained {d.steps.mean():.0f} steps in {d.train_s.mean():.0f} s on average, InfoNCE "
            f"{i.steps.mean():.0f} steps in {i.train_s.mean():.0f} s (the same seeds' target times).", ""]


__all__ = ["study", "write_report", "default_out_dir", "FIGURES", "RUNS_CSV"]
