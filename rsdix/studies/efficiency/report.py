"""STUDY.md's sentences, each built from a number of the tables (:mod:`rsdix.studies.efficiency.analysis`):
the primary family with Holm-adjusted p, "detected" or "not detected" with the minimum detectable
effect, the non-superiority bound and the equivalence (TOST) test against the declared margin, the
hierarchical bootstrap beside the paired t interval, the secondary comparisons labelled so, a note
where both arms sit at or below chance, and the closing answer per regime."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from rsdix.studies.efficiency.analysis import arm_title, chance_level
from rsdix.studies.efficiency.design import EfficiencyConfig


def share(f: float) -> str:
    return f"{100 * f:g}%"


def p_text(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def interval(lo, hi) -> str:
    return f"[{lo:+.2f}, {hi:+.2f}]"


def _hb_text(r) -> str:
    if pd.isna(r.get("hb_low", np.nan)):
        return ""
    return f"; hierarchical bootstrap over seeds x test images {interval(r['hb_low'], r['hb_high'])}"


def _margin_text(r, margin: float, a: str, b: str) -> str:
    if pd.isna(r.get("p_tost", np.nan)):
        return ""
    nonsup = (f"non-superiority: the one-sided 95% upper bound {r['upper']:+.2f} is below the margin +{margin:g}, so "
              f"{a} is not better than {b} by {margin:g} or more (p={p_text(r['p_nonsup'])})"
              if r["upper"] < margin else
              f"the one-sided 95% upper bound {r['upper']:+.2f} reaches the margin +{margin:g}: a gain of {margin:g} "
              f"is not excluded (p={p_text(r['p_nonsup'])})")
    equiv = (f"equivalence within +-{margin:g} shown (TOST p={p_text(r['p_tost'])})" if r["p_tost"] < 0.05 else
             f"equivalence within +-{margin:g} not shown (TOST p={p_text(r['p_tost'])})")
    return f"; {nonsup}; {equiv}"


def verdict(r, adjusted: float | None, alpha: float) -> str:
    p = r["t_p"] if adjusted is None else adjusted
    which = "Holm-adjusted p" if adjusted is not None else "p"
    if p < alpha:
        return f"detected ({which}={p_text(p)} < {alpha:g}): A is {'better' if r['mean'] > 0 else 'worse'}"
    return (f"not detected ({which}={p_text(p)}); the minimum detectable effect at this n is {r['mde']:.2f} "
            f"(paired t, power 0.8)")


def comparison_sentence(r, cfg: EfficiencyConfig, adjusted: float | None = None, label: str = "") -> str:
    """One comparison: the difference, its intervals, its test(s) and the verdict."""
    a, b = arm_title(r["a"], cfg), arm_title(r["b"], cfg)
    a += " (EMA teacher)" if r.get("a_weights") == "ema" else ""
    b += " (its student)" if r.get("a_weights") == "ema" else ""
    head = (f"{label}{a} - {b} in {r['metric']} at {share(r['fraction'])}: {r['mean']:+.2f} "
            f"{interval(r['t_low'], r['t_high'])} (paired t 95% CI, n={int(r['n'])}{_hb_text(r)}; "
            f"{r['a_mean']:.2f} vs {r['b_mean']:.2f})" if "a_mean" in r else
            f"{label}{r['metric']}: {r['mean']:+.2f} {interval(r['t_low'], r['t_high'])} (n={int(r['n'])}{_hb_text(r)})")
    tests = f"paired t p={p_text(r['t_p'])}" + (f", Holm-adjusted p={p_text(adjusted)}" if adjusted is not None else "")
    return f"{head}; {tests}: {verdict(r, adjusted, cfg.primary.alpha)}{_margin_text(r, cfg.primary.margin, a, b)}."


def interaction_sentence(r, cfg: EfficiencyConfig, adjusted: float | None = None, label: str = "") -> str:
    """(A - B) at a small share minus (A - B) at the largest: the data-efficiency claim."""
    a, b = arm_title(r["a"], cfg), arm_title(r["b"], cfg)
    tests = f"paired t p={p_text(r['t_p'])}" + (f", Holm-adjusted p={p_text(adjusted)}" if adjusted is not None else "")
    words = (verdict(r, adjusted, cfg.primary.alpha).replace("A is better", "the gain is larger with less data")
             .replace("A is worse", "the gain is smaller with less data"))
    return (f"{label}({a} - {b}) at {share(r['fraction'])} minus at {share(r['versus'])} in {r['metric']}: "
            f"{r['mean']:+.2f} {interval(r['t_low'], r['t_high'])} (paired t 95% CI, n={int(r['n'])}{_hb_text(r)}); "
            f"{tests}: {words}{_margin_text(r, cfg.primary.margin, 'the gain at the small share', 'the gain at 100%')}.")


def family_sentences(fam: pd.DataFrame, cfg: EfficiencyConfig) -> list[str]:
    """The primary family, one sentence per member, with its Holm-adjusted p."""
    out = []
    for _, r in fam.iterrows():
        if "versus" in r and pd.notna(r.get("versus")):
            out.append(interaction_sentence(r, cfg, adjusted=r["holm_p"], label="Interaction: "))
        else:
            out.append(comparison_sentence(r, cfg, adjusted=r["holm_p"]))
    return out


def at_chance(paired: pd.DataFrame, metric: str) -> float | None:
    """The chance level of ``metric`` when both arms of every comparison in it sit at or below it."""
    level = chance_level(metric)
    rows = paired[paired.metric == metric]
    if level is None or rows.empty:
        return None
    return level if rows[["a_mean", "b_mean"]].to_numpy().max() <= level else None


def chance_notes(paired: pd.DataFrame, pairs: list) -> list[str]:
    out = []
    for metric in dict.fromkeys(paired.metric):
        for a, b in pairs:
            rows = paired[(paired.metric == metric) & (paired.a == a) & (paired.b == b) & (paired.kind == "arms")]
            level = chance_level(metric)
            if level is None or rows.empty:
                continue
            low = rows[np.maximum(rows.a_mean, rows.b_mean) <= level]
            for r in low.itertuples():
                out.append(f"{metric} at {share(r.fraction)}: both {a} ({r.a_mean:.1f}) and {b} ({r.b_mean:.1f}) sit at "
                           f"or below chance ({level:.1f}%), so this difference is left out of the headline.")
    return out


def bootstrap_note(paired: pd.DataFrame) -> str:
    """How much narrower the seed bootstrap is than the t interval, from the rows, against the factor
    expected at their n."""
    rows = paired[(paired.t_high > paired.t_low)]
    if rows.empty:
        return ""
    ratio = ((rows.boot_high - rows.boot_low) / (rows.t_high - rows.t_low)).median()
    n = int(rows.n.median())
    expected = math.sqrt((n - 1) / n) * stats.norm.ppf(0.975) / stats.t.ppf(0.975, n - 1)
    return (f"The percentile bootstrap over seeds is {100 * ratio:.0f}% as wide as the paired t interval (median over "
            f"{len(rows)} comparisons; about {100 * expected:.0f}% is expected at n={n} from its missing t factor and "
            f"its n rather than n - 1 divisor): with this few seeds it is too narrow, so the t interval is the one "
            f"read here.")


def answer_paragraph(fam: pd.DataFrame, cfg: EfficiencyConfig, regime_words: str) -> str:
    """The closing answer of a regime from its primary family."""
    if fam.empty:
        return f"No primary comparison of the {regime_words} has two paired seeds yet."
    a, b = arm_title(cfg.primary.a, cfg), arm_title(cfg.primary.b, cfg)
    alpha, margin = cfg.primary.alpha, cfg.primary.margin
    shares = fam[fam.get("versus").isna()] if "versus" in fam else fam
    hits = shares[shares.holm_p < alpha]
    text = [f"In the {regime_words}, {a} - {b} in {cfg.primary.metric}: " + "; ".join(
        f"{share(r.fraction)} {r.mean:+.2f} {interval(r.t_low, r.t_high)} (Holm p={p_text(r.holm_p)}, n={int(r.n)})"
        for r in shares.itertuples()) + "."]
    if hits.empty:
        below = shares[shares.upper < margin]
        text.append(f"No share's difference is detected after Holm's correction (minimum detectable effects "
                    f"{shares.mde.min():.2f} to {shares.mde.max():.2f})."
                    + (f" A gain of {margin:g} or more is excluded at " + ", ".join(share(f) for f in below.fraction)
                       + " (one-sided 95% upper bounds below the margin)." if len(below) else
                       f" A gain of {margin:g} is excluded at no share."))
    else:
        text.append("Detected after Holm's correction: " + "; ".join(
            f"{share(r.fraction)} ({'better' if r.mean > 0 else 'worse'}, {r.mean:+.2f})" for r in hits.itertuples()) + ".")
    inter = fam[fam["versus"].notna()] if "versus" in fam else fam.iloc[0:0]
    for r in inter.itertuples():
        text.append(f"The data-efficiency claim proper (a larger gain at {share(r.fraction)} than at {share(r.versus)}): "
                    + (f"{'supported' if r.mean > 0 else 'contradicted'}, {r.mean:+.2f} "
                       f"{interval(r.t_low, r.t_high)} (Holm p={p_text(r.holm_p)})." if r.holm_p < alpha else
                       f"not detected, {r.mean:+.2f} {interval(r.t_low, r.t_high)} (Holm p={p_text(r.holm_p)}, "
                       f"minimum detectable effect {r.mde:.2f})."))
    return " ".join(text)


def mechanism_sentences(summary: pd.DataFrame, cfg_by_regime: dict) -> list[str]:
    """The soft targets per regime and arm, the teacher's quality, and the arm's effect: the finding about
    teacher quality."""
    out = []
    for r in summary.itertuples():
        cfg = cfg_by_regime.get(r.regime)
        title = arm_title(r.arm, cfg) if cfg is not None else r.arm
        teacher = (f"the teacher ranks the matching pair first in {100 * r.teacher_top1:.0f}% of the batch's "
                   f"images and texts; " if pd.notna(r.teacher_top1) else "")
        end = f"its EMA teacher ends at {r.teacher_end:.2f} {r.metric}; " if pd.notna(r.teacher_end) else ""
        effect = (f"the arm's difference from InfoNCE in {r.metric}: {r.effect:+.2f} "
                  f"{interval(r.effect_low, r.effect_high)} (n={r.effect_n})" if pd.notna(r.effect) else
                  "no paired InfoNCE runs")
        out.append(f"{r.regime}, {title}, {share(r.fraction)}: {teacher}the targets put {r.p_diag:.2f} of each row on "
                   f"the matching pair (top target in {100 * r.p_top1:.0f}% of rows, entropy {r.p_entropy:.2f} nats; "
                   f"means over training and {int(r.seeds)} seeds); {end}{effect}.")
    return out
