"""The study's tables, per regime, from the rows (``runs.csv``), the stored per-query hits and the
learning curves: the paired comparisons (:func:`paired_table`, each with its paired t interval, the
seed bootstrap, the hierarchical bootstrap over seeds x test images where the queries are stored,
the margin tests of the primary endpoint and the minimum detectable effect), the data-efficiency
interaction (:func:`interaction_table`), the primary family with Holm's correction
(:func:`primary_family`), the curves' lengths (:func:`curve_lengths`) and the soft targets over
training (:func:`target_summary`). The sentences are :mod:`rsdix.studies.efficiency.report`'s."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsdix.data.registry import get_info
from rsdix.errors import DataError
from rsdix.studies.efficiency.bootstrap import hierarchical_interval, read_queries
from rsdix.studies.efficiency.curves import flattened, plateau_step, study_curves
from rsdix.studies.efficiency.design import EfficiencyConfig
from rsdix.studies.efficiency.runs import QUERIES_DIR, RUNS_CSV, TARGETS_CSV
from rsdix.studies.efficiency.stats import holm, paired_difference
from rsdix.results import read_table

ARM_TITLES = {"infonce": "InfoNCE", "rsdix": "RSDiX-CLIP", "siglip": "SigLIP", "rsdix-siglip": "RSDiX-SigLIP",
              "rsdix-sbert": "RSDiX (S-BERT teacher)", "dino": "InfoNCE+DINO"}
PAIRED_CSV, CURVE_SUMMARY_CSV, STUDY_MD = "paired.csv", "curve_lengths.csv", "STUDY.md"
INTERACTION_CSV, FAMILY_CSV, MECHANISM_CSV = "interaction.csv", "primary_family.csv", "mechanism.csv"


def arm_title(arm: str, cfg: EfficiencyConfig | None = None) -> str:
    spec = cfg.arms.get(arm) if cfg is not None else None
    if spec is not None and getattr(spec, "title", None):
        return spec.title
    return ARM_TITLES.get(arm, arm)


def read_runs(out_dir) -> pd.DataFrame:
    path = Path(out_dir) / RUNS_CSV
    if not path.exists():
        raise DataError(path, "no study results yet: run `make study` (docs/study.md)")
    runs = read_table(path)
    runs["split"] = runs["split"].astype(str)
    runs["regime"] = runs["regime"].fillna("scratch") if "regime" in runs else "scratch"
    return runs


def label_of(dataset: str, task: str, metric: str, split: str) -> str | None:
    """The headline label of a row: ``<set> test mR`` or ``<set> zero-shot top-1 (%)``; None for others."""
    if task == "retrieval" and metric == "mR" and str(split).split(":")[0] == "test":   # "test: 12 of 1093" capped
        return f"{dataset} test mR"
    if task == "zero-shot" and metric == "top1":
        return f"{dataset} zero-shot top-1 (%)"
    return None


def headline(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of the headline metrics (every set's test mR and every zero-shot top-1), labelled."""
    labels = [label_of(*k) for k in zip(runs.dataset, runs.task, runs.metric, runs.split)]
    out = runs.assign(label=labels)
    return out[out.label.notna()].copy()


def labels_in_order(rows: pd.DataFrame, primary: str) -> list[str]:
    rest = sorted(set(rows.label) - {primary}, key=lambda s: (not s.endswith("mR"), s))
    return ([primary] if primary in set(rows.label) else []) + rest


def _pairs(rows: pd.DataFrame, a: dict, b: dict):
    def pick(sel):
        mask = pd.Series(True, index=rows.index)
        for k, v in sel.items():
            mask &= rows[k] == v
        return rows[mask].drop_duplicates("seed").set_index("seed")["value"]
    va, vb = pick(a).round(9), pick(b).round(9)   # rows read back from CSV: no float noise in A - B
    seeds = sorted(set(va.index) & set(vb.index))
    return seeds, va.loc[seeds].to_numpy(), vb.loc[seeds].to_numpy()


class Queries:
    """Per-query frames of the runs, read once (``queries/<run>.csv.gz``)."""

    def __init__(self, out_dir):
        self.folder, self.cache = Path(out_dir) / QUERIES_DIR, {}

    def frames(self, rows: pd.DataFrame, seeds) -> dict | None:
        """seed -> frame of the student run of each seed in ``rows``; None if any is missing."""
        out = {}
        for seed in seeds:
            run = rows.loc[rows.seed == seed, "run"]
            if run.empty:
                return None
            name = str(run.iloc[0])
            if name not in self.cache:
                self.cache[name] = read_queries(self.folder, name)
            if self.cache[name] is None:
                return None
            out[seed] = self.cache[name]
        return out


def _hb(queries: Queries, terms_rows, seeds, label, n_boot) -> tuple[float, float]:
    """The hierarchical bootstrap interval of ``sum sign * arm`` where every run's queries are stored."""
    if queries is None:
        return np.nan, np.nan
    dataset = label.rsplit(" test mR", 1)[0] if label.endswith("test mR") else label.rsplit(" zero-shot", 1)[0]
    task = "retrieval" if label.endswith("test mR") else "zero-shot"
    titles = dataset[len("mean of "):].split(" + ") if dataset.startswith("mean of ") else [dataset]
    terms = []
    for sign, rows in terms_rows:
        frames = queries.frames(rows, seeds)
        if frames is None:
            return np.nan, np.nan
        terms.append((sign, frames))
    _, low, high = hierarchical_interval(terms, titles, task, n_boot=n_boot, seed=0)
    return low, high


def paired_table(runs: pd.DataFrame, cfg: EfficiencyConfig, n_boot: int = 10000, queries: Queries | None = None
                 ) -> pd.DataFrame:
    """One row per comparison x share x headline metric of ``cfg``'s regime: A - B over the seeds both
    have (the arms of ``cfg.pairs()``, student weights; and each distillation arm's EMA teacher against
    its own student), with :class:`~rsdix.studies.efficiency.stats.Paired` (margin tests on the primary
    metric), the hierarchical bootstrap interval (``hb_low``, ``hb_high``) and the family it belongs to."""
    rows = headline(runs[runs.regime == cfg.regime])
    student = rows[rows.weights == "student"]
    pm = cfg.primary
    comparisons = [(a, "student", b, "student", "arms") for a, b in cfg.pairs()]
    comparisons += [(arm, "ema", arm, "student", "teacher vs student")
                    for arm in sorted(set(rows.loc[rows["weights"] == "ema", "arm"]))]
    out = []
    for a, wa, b, wb, kind in comparisons:
        for fraction in sorted(set(rows.loc[rows.arm == a, "fraction"]) & set(rows.loc[rows.arm == b, "fraction"])):
            for label in labels_in_order(rows, pm.metric):
                sub = rows[(rows.fraction == fraction) & (rows.label == label)]
                seeds, va, vb = _pairs(sub, {"arm": a, "weights": wa}, {"arm": b, "weights": wb})
                if len(seeds) < 2:
                    continue
                primary_metric = label == pm.metric
                p = paired_difference(va, vb, n_boot=n_boot, seed=0,
                                      margin=pm.margin if primary_metric and kind == "arms" else None)
                hb = (np.nan, np.nan) if kind != "arms" else _hb(
                    queries, [(1, sub[(sub.arm == a) & (sub.weights == "student")]),
                              (-1, student[(student.fraction == fraction) & (student.label == label) & (student.arm == b)])],
                    seeds, label, n_boot)
                family = "primary" if (kind == "arms" and (a, b) == (pm.a, pm.b) and primary_metric
                                       and any(np.isclose(fraction, s) for s in pm.shares)) else "secondary"
                out.append({"regime": cfg.regime, "family": family, "kind": kind, "a": a, "a_weights": wa, "b": b,
                            "b_weights": wb, "fraction": fraction, "metric": label, "a_mean": va.mean(),
                            "b_mean": vb.mean(), **p.as_dict(), "hb_low": hb[0], "hb_high": hb[1],
                            "seeds": " ".join(str(int(s)) for s in seeds)})
    return pd.DataFrame(out)


def interaction_table(runs: pd.DataFrame, cfg: EfficiencyConfig, n_boot: int = 10000,
                      queries: Queries | None = None) -> pd.DataFrame:
    """The data-efficiency claim itself: (A - B at share f) - (A - B at the largest share), paired by
    seed, for the primary pair and every smaller share f: positive means A's gain is larger with less data."""
    rows = headline(runs[(runs.regime == cfg.regime) & (runs.weights == "student")])
    pm, out = cfg.primary, []
    shares = sorted(set(rows.loc[rows.arm == pm.a, "fraction"]) & set(rows.loc[rows.arm == pm.b, "fraction"]))
    if len(shares) < 2:
        return pd.DataFrame(out)
    top = shares[-1]
    for label in labels_in_order(rows, pm.metric):
        sub = rows[rows.label == label]
        s_top, a_top, b_top = _pairs(sub[sub.fraction == top], {"arm": pm.a}, {"arm": pm.b})
        for fraction in shares[:-1]:
            s_f, a_f, b_f = _pairs(sub[sub.fraction == fraction], {"arm": pm.a}, {"arm": pm.b})
            seeds = sorted(set(s_f) & set(s_top))
            if len(seeds) < 2:
                continue
            d_f = pd.Series(a_f - b_f, index=s_f).loc[seeds].to_numpy()
            d_top = pd.Series(a_top - b_top, index=s_top).loc[seeds].to_numpy()
            primary_metric = label == pm.metric
            p = paired_difference(d_f, d_top, n_boot=n_boot, seed=0, margin=pm.margin if primary_metric else None)
            pick = lambda arm, f: sub[(sub.arm == arm) & (sub.fraction == f)]  # noqa: E731
            hb = _hb(queries, [(1, pick(pm.a, fraction)), (-1, pick(pm.b, fraction)), (-1, pick(pm.a, top)),
                               (1, pick(pm.b, top))], seeds, label, n_boot)
            family = "primary" if (primary_metric and list(pm.interaction) == [fraction, top]) else "secondary"
            out.append({"regime": cfg.regime, "family": family, "a": pm.a, "b": pm.b, "fraction": fraction,
                        "versus": top, "metric": label, **p.as_dict(), "hb_low": hb[0], "hb_high": hb[1],
                        "seeds": " ".join(str(int(s)) for s in seeds)})
    return pd.DataFrame(out)


def primary_family(paired: pd.DataFrame, inter: pd.DataFrame) -> pd.DataFrame:
    """The declared family (A - B at each primary share, and the interaction) with Holm-adjusted p."""
    parts = []
    if len(paired):
        p = paired[paired.family == "primary"].copy()
        p["comparison"] = [f"{r.a} - {r.b} at {100 * r.fraction:g}%" for r in p.itertuples()]
        parts.append(p)
    if len(inter):
        i = inter[inter.family == "primary"].copy()
        i["comparison"] = [f"({r.a} - {r.b}) at {100 * r.fraction:g}% minus at {100 * r.versus:g}%" for r in i.itertuples()]
        parts.append(i)
    if not parts:
        return pd.DataFrame()
    fam = pd.concat(parts, ignore_index=True)
    fam["holm_p"] = holm(fam["t_p"].to_numpy())
    return fam


def curve_lengths(curves: pd.DataFrame, cfg: EfficiencyConfig, lrs: dict, runs: pd.DataFrame) -> pd.DataFrame:
    """Per curve arm and share: the plateau step of the mean curve over its seeds, whether each seed's
    curve and the mean flattened (:func:`~rsdix.studies.efficiency.curves.flattened`), the best mean val
    mR, the study's steps and the study's own runs' val mR there."""
    used = study_curves(curves, lrs)
    val = runs[(runs.regime == cfg.regime) & (runs.metric == "mR") & (runs.split == "val") & (runs.weights == "student")]
    val = val.groupby(["arm", "fraction"])["value"].agg(["mean", "count"])
    images = (runs[(runs.regime == cfg.regime)].groupby("fraction")["train_images"].median()
              if "train_images" in runs else pd.Series(dtype=float))
    batch = int(cfg.train.get("loop", {}).get("batch_size", 64))
    out = []
    for (arm, fraction), g in used.groupby(["arm", "fraction"]):
        mean = g.groupby("step", as_index=False)["val_mR"].mean().sort_values("step")
        per_seed = [flattened(s.sort_values("step").step, s.sort_values("step").val_mR, cfg.plateau_tolerance)
                    for _, s in g.groupby("seed")]
        steps = {float(k): int(v) for k, v in cfg.steps.items()}.get(float(fraction))
        n_img = images.get(fraction, np.nan)
        out.append({"arm": arm, "fraction": fraction, "lr": lrs.get((arm, float(fraction)), np.nan), "seeds": g.seed.nunique(),
                    "plateau_step": plateau_step(mean.step, mean.val_mR, cfg.plateau_tolerance),
                    "curve_steps": int(mean.step.max()), "best_val_mR": float(mean.val_mR.max()),
                    "flattened_seeds": f"{sum(per_seed)} of {len(per_seed)}",
                    "mean_flattened": flattened(mean.step, mean.val_mR, cfg.plateau_tolerance),
                    "study_steps": steps, "study_epochs": steps * batch / n_img if steps and n_img == n_img else np.nan,
                    "study_val_mR": val["mean"].get((arm, fraction), np.nan),
                    "study_seeds": val["count"].get((arm, fraction), 0)})
    return pd.DataFrame(out)


def read_targets(out_dir) -> pd.DataFrame:
    path = Path(out_dir) / TARGETS_CSV
    return read_table(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def target_summary(targets: pd.DataFrame, paired: pd.DataFrame, runs: pd.DataFrame, label_by_regime: dict
                   ) -> pd.DataFrame:
    """Per regime, arm and share: the soft targets over training averaged over seeds and steps (mass on
    the matching pair, entropy in nats, the share of rows whose top target is the matching pair), the
    teacher's quality (its in-batch image-text top-1 over training where logged, and the EMA teacher's
    primary metric at the end of the runs), next to the arm's paired difference from InfoNCE in the
    regime's primary metric: RSDiX's effect against its teacher."""
    if targets.empty:
        return pd.DataFrame()
    if "teacher_top1" not in targets:
        targets = targets.assign(teacher_top1=np.nan)
    g = targets.groupby(["regime", "arm", "fraction"])
    out = g.agg(p_diag=("p_diag", "mean"), p_entropy=("p_entropy", "mean"), p_top1=("p_top1", "mean"),
                teacher_top1=("teacher_top1", "mean"), seeds=("seed", "nunique")).reset_index()
    rows = headline(runs)
    extra = []
    for r in out.itertuples():
        metric = label_by_regime.get(r.regime)
        ema = rows[(rows.regime == r.regime) & (rows.arm == r.arm) & np.isclose(rows.fraction, r.fraction)
                   & (rows.weights == "ema") & (rows.label == metric)]
        sel = paired[(paired.regime == r.regime) & (paired.kind == "arms") & (paired.a == r.arm)
                     & (paired.b == "infonce") & np.isclose(paired.fraction, r.fraction)
                     & (paired.metric == metric)] if len(paired) else paired
        row = sel.iloc[0] if len(sel) else None
        extra.append({"metric": metric, "teacher_end": ema.value.mean() if len(ema) else np.nan,
                      "effect": row["mean"] if row is not None else np.nan,
                      "effect_low": row["t_low"] if row is not None else np.nan,
                      "effect_high": row["t_high"] if row is not None else np.nan,
                      "effect_n": int(row["n"]) if row is not None else 0})
    return pd.concat([out, pd.DataFrame(extra)], axis=1)


def chance_level(label: str) -> float | None:
    """Chance accuracy (%) of a zero-shot label (100 / classes, from the registry); None otherwise."""
    if "zero-shot" not in label:
        return None
    try:
        return 100.0 / get_info(label.split(" zero-shot")[0], "classification").classes
    except DataError:
        return None
