"""The study's tables and its answer, from the rows (``runs.csv``) and the learning curves: the
paired comparisons (:func:`paired_table`), the data-efficiency interaction (does RSDiX gain more
at a small share than at 100%?), the EMA teacher against its student, sentences generated from
the numbers (:func:`answer_sentences`), and ``STUDY.md`` (:func:`write_report`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from rsdix.studies.efficiency.design import COMPARISONS
from rsdix.studies.efficiency.curves import plateau_step
from rsdix.studies.efficiency.runs import RUNS_CSV
from rsdix.studies.efficiency.stats import paired_difference
from rsdix.data.registry import get_info
from rsdix.errors import DataError

# the metrics the answer is about: (dataset, task, metric, split) -> label
HEADLINE = {("UCM", "retrieval", "mR", "test"): "UCM test mR",
            ("WHU-RS19", "zero-shot", "top1", "all"): "WHU-RS19 zero-shot top-1 (%)",
            ("EuroSAT-MS", "zero-shot", "top1", "all"): "EuroSAT-MS zero-shot top-1 (%)"}
ARM_TITLES = {"infonce": "InfoNCE", "rsdix": "RSDiX-CLIP", "siglip": "SigLIP", "rsdix-siglip": "RSDiX-SigLIP",
              "rsdix-sbert": "RSDiX (S-BERT teacher)", "dino": "InfoNCE+DINO"}
PAIRED_CSV, CURVE_SUMMARY_CSV, STUDY_MD = "paired.csv", "curve_lengths.csv", "STUDY.md"


def read_runs(out_dir) -> pd.DataFrame:
    path = Path(out_dir) / RUNS_CSV
    if not path.exists():
        raise DataError(path, "no study results yet: run `make study` (docs/study.md)")
    runs = pd.read_csv(path)
    runs["split"] = runs["split"].astype(str)
    return runs


def headline(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows of the headline metrics, labelled."""
    keys = runs[["dataset", "task", "metric", "split"]].apply(tuple, axis=1)
    out = runs[keys.isin(list(HEADLINE))].copy()
    out["label"] = [HEADLINE[k] for k in keys[keys.isin(list(HEADLINE))]]
    return out


def _pairs(rows: pd.DataFrame, a: dict, b: dict):
    def pick(sel):
        mask = pd.Series(True, index=rows.index)
        for k, v in sel.items():
            mask &= rows[k] == v
        return rows[mask].set_index("seed")["value"]
    va, vb = pick(a).round(9), pick(b).round(9)   # rows read back from CSV: no float noise in A - B
    seeds = sorted(set(va.index) & set(vb.index))
    return seeds, va.loc[seeds].to_numpy(), vb.loc[seeds].to_numpy()


def paired_table(runs: pd.DataFrame, n_boot: int = 10000) -> pd.DataFrame:
    """One row per comparison x share x headline metric: A - B over the seeds both have (A, B:
    the arms of :data:`rsdix.studies.efficiency.design.COMPARISONS`, student weights; and each
    distillation arm's EMA teacher against its own student), with :class:`~rsdix.studies.efficiency.stats.Paired`."""
    rows, out = headline(runs), []
    comparisons = [(a, "student", b, "student", "arms") for a, b in COMPARISONS]
    comparisons += [(arm, "ema", arm, "student", "teacher vs student")
                    for arm in sorted(set(rows.loc[rows["weights"] == "ema", "arm"]))]
    for a, wa, b, wb, kind in comparisons:
        for fraction in sorted(set(rows.loc[rows.arm == a, "fraction"]) & set(rows.loc[rows.arm == b, "fraction"])):
            for label in HEADLINE.values():
                sub = rows[(rows.fraction == fraction) & (rows.label == label)]
                seeds, va, vb = _pairs(sub, {"arm": a, "weights": wa}, {"arm": b, "weights": wb})
                if len(seeds) < 2:
                    continue
                p = paired_difference(va, vb, n_boot=n_boot, seed=0)
                out.append({"kind": kind, "a": a, "a_weights": wa, "b": b, "b_weights": wb, "fraction": fraction,
                            "metric": label, "a_mean": va.mean(), "b_mean": vb.mean(), **p.as_dict(),
                            "seeds": " ".join(str(int(s)) for s in seeds)})
    return pd.DataFrame(out)


def interaction_table(runs: pd.DataFrame, a: str = "rsdix", b: str = "infonce", n_boot: int = 10000) -> pd.DataFrame:
    """The data-efficiency claim itself: (A - B at share f) - (A - B at 100%), paired by seed, for
    every smaller share f: positive means A's gain is larger with less data."""
    rows, out = headline(runs), []
    for label in HEADLINE.values():
        sub = rows[(rows.label == label) & (rows.weights == "student")]
        full = sub[sub.fraction == 1.0]
        s_full, a_full, b_full = _pairs(full, {"arm": a}, {"arm": b})
        for fraction in sorted(set(sub.fraction) - {1.0}):
            s_f, a_f, b_f = _pairs(sub[sub.fraction == fraction], {"arm": a}, {"arm": b})
            seeds = sorted(set(s_f) & set(s_full))
            if len(seeds) < 2:
                continue
            d_f = pd.Series(a_f - b_f, index=s_f).loc[seeds].to_numpy()
            d_full = pd.Series(a_full - b_full, index=s_full).loc[seeds].to_numpy()
            p = paired_difference(d_f, d_full, n_boot=n_boot, seed=0)
            out.append({"a": a, "b": b, "fraction": fraction, "metric": label, **p.as_dict(),
                        "seeds": " ".join(str(int(s)) for s in seeds)})
    return pd.DataFrame(out)


def curve_lengths(curves: pd.DataFrame, steps: dict, tolerance: float) -> pd.DataFrame:
    """Per share: the step where InfoNCE's val mR stopped rising (:func:`plateau_step`), the best
    val mR on the curve, the curve's length and the study's training length."""
    out = []
    for (arm, fraction), g in curves.groupby(["arm", "fraction"]):
        g = g.groupby("step", as_index=False)["val_mR"].mean().sort_values("step")
        used = {float(k): int(v) for k, v in steps.items()}.get(float(fraction))
        top = int(g["step"].max())
        plateau = plateau_step(g["step"], g["val_mR"], tolerance)
        out.append({"arm": arm, "fraction": fraction, "plateau_step": plateau, "curve_steps": top,
                    "best_val_mR": float(g["val_mR"].max()), "study_steps": used,
                    "plateau_at_curve_end": plateau >= top - 1e-9 and top > g["step"].min()})
    return pd.DataFrame(out)


def chance_levels() -> dict:
    """Headline label -> chance accuracy (%) of the zero-shot sets (100 / classes, from the registry)."""
    out = {}
    for (dataset, task, _, _), label in HEADLINE.items():
        if task == "zero-shot":
            try:
                out[label] = 100.0 / get_info(dataset, "classification").classes
            except DataError:
                continue
    return out


def _share(f: float) -> str:
    return f"{100 * f:g}%"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def sentence(row) -> str:
    """One generated sentence of a paired comparison row."""
    a = ARM_TITLES.get(row["a"], row["a"]) + (" (EMA teacher)" if row.get("a_weights") == "ema" else "")
    b = ARM_TITLES.get(row["b"], row["b"]) + (" (its student)" if row.get("a_weights") == "ema" else "")
    lo, hi = row["t_low"], row["t_high"]
    verdict = ("the 95% CI excludes 0" if lo > 0 or hi < 0 else
               f"no difference detectable at this n (the minimum detectable effect is {row['mde']:.1f})")
    return (f"At {_share(row['fraction'])} of the data {a} changes {row['metric']} against {b} by "
            f"{row['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] (paired t 95% CI; seed bootstrap "
            f"[{row['boot_low']:+.2f}, {row['boot_high']:+.2f}]), paired t p={_p(row['t_p'])}, Wilcoxon "
            f"p={_p(row['wilcoxon_p'])}, n={int(row['n'])}: {verdict} ({row['a_mean']:.2f} vs {row['b_mean']:.2f}).")


def answer_sentences(paired: pd.DataFrame, interaction: pd.DataFrame | None = None) -> list[str]:
    """The answer to the headline question (RSDiX-CLIP vs InfoNCE, every share and metric), then the
    data-efficiency interaction, as sentences built from the numbers."""
    lines = [sentence(r) for _, r in paired[(paired.a == "rsdix") & (paired.b == "infonce")].iterrows()]
    if interaction is not None:
        for _, r in interaction.iterrows():
            lo, hi = r["t_low"], r["t_high"]
            verdict = "the CI excludes 0" if lo > 0 or hi < 0 else "the CI includes 0"
            lines.append(f"RSDiX's gain over InfoNCE in {r['metric']} at {_share(r['fraction'])} minus its gain "
                         f"at 100%: {r['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] (paired t 95% CI), Wilcoxon "
                         f"p={_p(r['wilcoxon_p'])}, n={int(r['n'])}: {verdict}.")
    return lines


def verdict_paragraph(paired: pd.DataFrame, interaction: pd.DataFrame) -> str:
    """The closing paragraph: what the comparisons say overall, from the rows."""
    main = paired[(paired.a == "rsdix") & (paired.b == "infonce")]
    if main.empty:
        return "No paired RSDiX-CLIP vs InfoNCE results yet."
    up = main[main.t_low > 0]
    down = main[main.t_high < 0]
    ucm = main[main.metric == HEADLINE[("UCM", "retrieval", "mR", "test")]].sort_values("fraction")
    ucm_text = "; ".join(f"{_share(r.fraction)}: {r.mean:+.2f} [{r.t_low:+.2f}, {r.t_high:+.2f}] (n={int(r.n)})"
                         for r in ucm.itertuples())
    parts = [f"Does OT self-distillation make CLIP more data-efficient here? Paired by seed, RSDiX-CLIP "
             f"minus InfoNCE in UCM test mR is {ucm_text} (paired t 95% CIs; n = seeds)."]
    if up.empty and down.empty:
        parts.append(f"None of the {len(main)} share x metric comparisons has a CI excluding 0: at this scale "
                     f"the study finds no effect of RSDiX in either direction; effects smaller than the minimum "
                     f"detectable effects ({main.mde.min():.1f} to {main.mde.max():.1f} points at power 0.8) "
                     f"would go unseen.")
    else:
        if len(up):
            parts.append("RSDiX is better with a CI excluding 0 in: " + "; ".join(
                f"{r.metric} at {_share(r.fraction)} ({r.mean:+.2f})" for r in up.itertuples()) + ".")
        if len(down):
            parts.append("RSDiX is worse with a CI excluding 0 in: " + "; ".join(
                f"{r.metric} at {_share(r.fraction)} ({r.mean:+.2f})" for r in down.itertuples()) + ".")
        rest = len(main) - len(up) - len(down)
        parts.append(f"The other {rest} of {len(main)} comparisons have CIs that include 0.")
    chance = chance_levels()
    near = [m for m, level in chance.items() if len(main[main.metric == m])
            and main.loc[main.metric == m, ["a_mean", "b_mean"]].to_numpy().max() < 1.5 * level]
    for metric in near:
        parts.append(f"{metric}: both arms stay below 1.5x chance ({chance[metric]:.1f}%) at every share, so its "
                     f"differences say little about transfer at this scale.")
    if interaction is not None and len(interaction):
        sig = interaction[(interaction.t_low > 0) | (interaction.t_high < 0)]
        parts.append("The data-efficiency claim proper (a larger gain at a smaller share than at 100%) "
                     + ("is supported in: " + "; ".join(f"{r.metric} at {_share(r.fraction)} ({r.mean:+.2f})"
                                                        for r in sig.itertuples() if r.mean > 0)
                        if (sig["mean"] > 0).any() else "is not supported: no share's gain exceeds the 100% gain "
                        "with a CI excluding 0") + ".")
    return " ".join(parts)
