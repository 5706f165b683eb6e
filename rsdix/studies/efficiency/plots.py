"""The study's figures: paired differences per data share with their 95% CIs and a zero line
(:func:`plot_paired`), the learning curves that set the training length (:func:`plot_curves`), and the
mechanism (:func:`plot_mechanism`: the soft targets over training per arm and regime, and RSDiX's
effect against its teacher's quality). Colours are the package palette (:func:`rsdix.viz.model_colour`)."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rsdix import viz
from rsdix.studies.efficiency.analysis import ARM_TITLES, headline

REGIME_MARKERS = {"scratch": "o", "pretrained": "s"}


def _title(arm, titles):
    return (titles or {}).get(arm, ARM_TITLES.get(arm, arm))


def _label(a, wa, b, titles=None) -> str:
    if wa == "ema":
        return f"{_title(a, titles)}: EMA teacher - student"
    return f"{_title(a, titles)} - {_title(b, titles)}"


def plot_paired(paired: pd.DataFrame, runs: pd.DataFrame, kind: str = "arms",
                path: str | os.PathLike | None = None, metrics: list | None = None, titles: dict | None = None,
                xlabel: str = "share of the training images"):
    """One panel per headline metric: for each comparison, the mean paired difference at each
    data share with its paired-t 95% CI (bars) and the seed-wise differences (dots); zero line."""
    sub = paired[paired.kind == kind]
    metrics = metrics or list(dict.fromkeys(sub.metric))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.4), squeeze=False)
    comps = list(dict.fromkeys(zip(sub.a, sub.a_weights, sub.b)))
    shares = sorted(set(sub.fraction))
    rows = headline(runs)
    if "regime" in sub and len(sub):
        rows = rows[rows.regime == sub.regime.iloc[0]]
    for ax, metric in zip(axes[0], metrics):
        for j, (a, wa, b) in enumerate(comps):
            g = sub[(sub.a == a) & (sub.a_weights == wa) & (sub.b == b) & (sub.metric == metric)]
            if g.empty:
                continue
            offset = (j - (len(comps) - 1) / 2) * min(0.12, 0.8 / max(1, len(comps)))
            x = np.array([shares.index(f) for f in g.fraction]) + offset
            colour = viz.model_colour(a)
            ax.errorbar(x, g["mean"], yerr=[g["mean"] - g["t_low"], g["t_high"] - g["mean"]], fmt="o",
                        capsize=4, color=colour, label=f"{_label(a, wa, b, titles)} (n={int(g['n'].max())})")
            for xi, r in zip(x, g.itertuples()):   # the seeds' own differences
                seeds = [int(s) for s in r.seeds.split()]
                m = rows[(rows.label == metric) & (rows.fraction == r.fraction)]
                va = m[(m.arm == a) & (m.weights == wa)].drop_duplicates("seed").set_index("seed")["value"]
                vb = m[(m.arm == b) & (m.weights == "student")].drop_duplicates("seed").set_index("seed")["value"]
                d = (va.loc[seeds] - vb.loc[seeds]).to_numpy()
                ax.scatter(np.full(len(d), xi + 0.04), d, s=9, color=colour, alpha=0.45, linewidths=0)
        ax.axhline(0, color="black", lw=0.8, ls="--")
        ax.set_xlim(-0.5, len(shares) - 0.5)
        ax.set_xticks(range(len(shares)))
        ax.set_xticklabels([f"{100 * f:g}%" for f in shares])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("paired difference A - B (points)" if "%" in metric else "paired difference A - B (mR)")
        ax.set_title(metric)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    lo, hi = (int(sub["n"].min()), int(sub["n"].max())) if len(sub) else (0, 0)
    n = f"{lo}" if lo == hi else f"{lo} to {hi}"
    fig.tight_layout(rect=(0, 0.06, 1, 0.86 if len(comps) > 3 else 0.92))
    viz.caption(fig, f"A - B as in the legend. Bars: mean paired difference (same seed: same initial weights, image subset and data "
                     f"order) with its Student-t 95% CI over n={n} paired seeds (n per comparison in the legend); dots: "
                     f"the seeds' own differences; dashed: no difference. Unadjusted intervals (STUDY.md gives Holm's "
                     f"adjustment of the primary family).")
    if path is not None:
        viz.save(fig, path)
    return fig


def plot_curves(curves: pd.DataFrame, lengths: pd.DataFrame, path: str | os.PathLike | None = None,
                pretrain: pd.DataFrame | None = None, titles: dict | None = None, val_label: str = "validation mR",
                start: float | None = None):
    """Validation mR against training step per data share: each curve arm's seeds (thin) and their mean
    (thick), the mean curve's plateau and the study's training length; first, stage 1's curve when given."""
    shares = sorted(set(curves.fraction))
    extra = pretrain is not None and len(pretrain) > 0
    n = len(shares) + int(extra)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.9), squeeze=False)
    axes = list(axes[0])
    if extra:
        ax = axes.pop(0)
        ax.plot(pretrain["step"], pretrain["val_mR"], marker=".", color="black")
        ax.set_title("stage 1: InfoNCE on the source pool")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{pretrain['val_set'].iloc[0]} validation mR")
    for ax, f in zip(axes, shares):
        sub = curves[curves.fraction == f]
        for arm, g in sub.groupby("arm", sort=False):
            colour = viz.model_colour(arm)
            for _, s in g.groupby("seed"):
                ax.plot(s["step"], s["val_mR"], color=colour, lw=0.7, alpha=0.35)
            mean = g.groupby("step")["val_mR"].mean()
            ax.plot(mean.index, mean.values, color=colour, lw=1.8,
                    label=f"{_title(arm, titles)} (mean of {g.seed.nunique()})")
            row = lengths[(lengths.fraction == f) & (lengths.arm == arm)] if len(lengths) else lengths
            if len(row):
                ax.axvline(row.iloc[0].plateau_step, color=colour, ls=":", lw=1)
        if start is not None:
            ax.axhline(start, color="grey", ls="-.", lw=1, label=f"before fine-tuning: {start:.1f}")
        row = lengths[lengths.fraction == f] if len(lengths) else lengths
        if len(row) and pd.notna(row.iloc[0].study_steps):
            ax.axvline(row.iloc[0].study_steps, color="black", ls="--", lw=1,
                       label=f"study length: {int(row.iloc[0].study_steps)}")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(val_label)
        ax.set_title(f"{100 * f:g}% of the training images")
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    viz.caption(fig, "Thin: one seed's curve (cosine schedule over the curve's whole length, checked every few steps on "
                     "the validation images); thick: their mean; dotted: where the mean curve stopped rising (its 3-check "
                     "running mean within the tolerance of its best); dashed: the steps the study's runs train.")
    if path is not None:
        viz.save(fig, path)
    return fig


def plot_mechanism(targets: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike | None = None,
                   titles: dict | None = None):
    """The soft targets over training (mean over seeds) per regime, arm and share: the teacher's own in-batch
    image-text top-1 (where logged), the mass of each target row on the matching pair, the row entropy; and
    each distillation arm's paired difference from InfoNCE (primary metric, t 95% CI) against its EMA
    teacher's primary metric at the end of the runs."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.3))
    for (regime, arm, fraction), g in targets.groupby(["regime", "arm", "fraction"]):
        cols = [c for c in ("teacher_top1", "p_diag", "p_entropy") if c in g]
        mean = g.groupby("step")[cols].mean()
        style = "-" if regime == "pretrained" else "--"
        colour = viz.model_colour(arm)
        alpha = 1.0 if fraction >= 1 else 0.55
        label = f"{regime}: {_title(arm, titles)}, {100 * fraction:g}%"
        if "teacher_top1" in mean and mean["teacher_top1"].notna().any():
            axes[0].plot(mean.index, 100 * mean["teacher_top1"], style, color=colour, alpha=alpha, label=label)
        axes[1].plot(mean.index, mean["p_diag"], style, color=colour, alpha=alpha, label=label)
        axes[2].plot(mean.index, mean["p_entropy"], style, color=colour, alpha=alpha)
    axes[0].set_ylabel("teacher: pair ranked first in the batch (%)")
    axes[1].set_ylabel("target mass on the matching pair")
    axes[2].set_ylabel("entropy of a target row (nats)")
    for ax in axes[:3]:
        ax.set_xlabel("optimizer step")
    axes[1].legend(fontsize=6)
    if len(summary):
        for r in summary.dropna(subset=["effect", "teacher_end"]).itertuples():
            axes[3].errorbar(r.teacher_end, r.effect, yerr=[[r.effect - r.effect_low], [r.effect_high - r.effect]],
                             fmt=REGIME_MARKERS.get(r.regime, "o"), color=viz.model_colour(r.arm), capsize=3,
                             alpha=1.0 if r.fraction >= 1 else 0.6)
            axes[3].annotate(f"{r.regime}, {100 * r.fraction:g}%", (r.teacher_end, r.effect), fontsize=6,
                             xytext=(4, 2), textcoords="offset points")
    axes[3].axhline(0, color="black", lw=0.8, ls="--")
    axes[3].set_xlabel("the EMA teacher's primary metric at the end (mean over seeds)")
    axes[3].set_ylabel("A - InfoNCE, primary metric (t 95% CI)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    viz.caption(fig, "Distillation runs, logged every 10 steps, averaged over seeds; solid: pretrained regime, dashed: "
                     "scratch; faint: the smaller share. The teacher's top-1 is logged from issue #29's pretrained runs "
                     "on (absent for the scratch runs). Right: squares pretrained, circles scratch; each point one arm and "
                     "share, its paired difference from InfoNCE in the regime's primary metric against its teacher's.")
    if path is not None:
        viz.save(fig, path)
    return fig
