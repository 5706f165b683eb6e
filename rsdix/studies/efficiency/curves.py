"""Learning curves: validation mR every ``curve_every`` steps per curve arm, data share and curve seed
(``EfficiencyConfig.curve_arms`` / ``curve_seeds`` / ``curve_steps``), the learning rate per arm from a
small grid on the same curves (:func:`choose_lrs`), and the length at which the curves stopped
rising (:func:`plateau_step`; with ``steps_from_curves`` that length, the largest over the arms, is
each share's training length: :func:`derived_steps`). A curve is one run with the cosine schedule of
its whole length, so at step s its learning rate is higher than a run of s steps has there: a
length read off the curve is, if anything, longer than needed. :func:`flattened` says whether a
curve had stopped rising before its end. The lr grid runs at every share (the first curve seed), so
each arm gets its lr per share: fine-tuning a pretrained model on a few images wants another lr than
on all of them.

Rows (``learning_curves.csv``): regime, arm, fraction, seed, lr, step, val_mR, loss, total_steps,
seconds_per_step. Several workers may compute curves together (:mod:`rsdix.studies.efficiency.workers`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rsdix.paths import run_name
from rsdix.studies.efficiency.arms import arm_setup
from rsdix.studies.efficiency.runs import EfficiencyContext, append_frame
from rsdix.studies.efficiency.workers import work_through
from rsdix.training.clip import train_and_save
from rsdix.results import read_table

CURVES_CSV = "learning_curves.csv"


def plateau_step(steps, values, tolerance: float, window: int = 3) -> int:
    """The first step whose running mean (over ``window`` checks, centred) is within ``tolerance``
    of the curve's best running mean: where the curve has stopped rising."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("an empty learning curve has no plateau")
    smooth = _smooth(values, window)
    best = smooth.max()
    return int(steps[np.flatnonzero(smooth >= best - tolerance)[0]])


def _smooth(values, window: int = 3) -> np.ndarray:
    return pd.Series(np.asarray(values, dtype=float)).rolling(window, center=True, min_periods=1).mean().to_numpy()


def flattened(steps, values, tolerance: float, window: int = 3) -> bool:
    """Whether a curve had stopped rising: its running mean gained less than ``tolerance`` over the last
    quarter of its length (a curve still climbing at its end did not flatten)."""
    steps, smooth = np.asarray(steps, dtype=float), _smooth(values, window)
    quarter = steps[-1] - 0.25 * (steps[-1] - steps[0])
    return bool(smooth[-1] - smooth[np.flatnonzero(steps >= quarter)[0]] < tolerance)


def read_curves(out_dir, regime: str | None = None) -> pd.DataFrame:
    """The curves table (rows of the scratch study written before the regime and lr columns:
    regime ``scratch``, lr blank = the base config's)."""
    path = Path(out_dir) / CURVES_CSV
    cols = ["regime", "arm", "fraction", "seed", "lr", "step", "val_mR", "loss", "total_steps", "seconds_per_step"]
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=cols)
    curves = read_table(path)
    for col, default in (("regime", "scratch"), ("lr", np.nan)):
        if col not in curves:
            curves[col] = default
        curves[col] = curves[col].fillna(default) if col == "regime" else curves[col]
    return curves if regime is None else curves[curves.regime == regime]


def _lr_key(lr) -> str:
    return "" if lr is None or (isinstance(lr, float) and np.isnan(lr)) else f"-lr{float(lr):g}"


def curve_name(ctx: EfficiencyContext, arm: str, fraction: float, seed: int, lr) -> str:
    return run_name(f"{ctx.prefix}curve-{arm}{_lr_key(lr)}", seed, fraction)


def _finished(ctx: EfficiencyContext) -> set:
    curves = read_curves(ctx.out_dir, ctx.cfg.regime)
    lr = curves["lr"].astype(float).where(curves["lr"].notna(), None)
    return {curve_name(ctx, a, f, s, v) for a, f, s, v in zip(curves.arm, curves.fraction, curves.seed, lr)}


def run_curve(ctx: EfficiencyContext, arm: str, fraction: float, seed: int, lr, total: int) -> pd.DataFrame:
    """One learning curve: ``arm`` at ``fraction`` and ``seed`` (learning rate ``lr``; None: the arm's),
    val mR every ``curve_every`` steps and at the end; its rows appended to the curves table."""
    cfg = ctx.cfg
    if ctx.check is None:
        ctx.prepare()
    train_cfg = ctx.config(arm, fraction, seed, steps=total)
    if lr is not None:
        train_cfg.loop.lr = float(lr)
    rows = []
    setup = arm_setup(train_cfg, ctx.shared)

    def watch(step, logs):
        if step % cfg.curve_every == 0 or step == total:
            rows.append({"regime": cfg.regime, "arm": arm, "fraction": fraction, "seed": seed,
                         "lr": float(lr) if lr is not None else np.nan, "step": step,
                         "val_mR": ctx.check.val_mR(setup.bundle), "loss": float(logs.get("loss", np.nan)),
                         "total_steps": total})

    res = train_and_save(train_cfg, curve_name(ctx, arm, fraction, seed, lr), ctx.dirs, resume=False,
                         save=cfg.save_weights, setup=setup, weights_dtype=torch.bfloat16, callbacks=[watch],
                         desc=f"curve {arm} {fraction:g} s{seed}{_lr_key(lr)}")
    frame = pd.DataFrame(rows)
    frame["seconds_per_step"] = res.seconds / max(1, res.step)
    append_frame(frame, Path(ctx.out_dir) / CURVES_CSV)
    return frame


def choose_lrs(curves: pd.DataFrame, arms, grid, tolerance: float) -> dict:
    """(arm, share) -> the lr of ``grid`` whose curve at that share (the first curve seed: the grid's) has the
    highest smoothed val mR peak (ties: the smaller lr); only where every lr of the grid has its curve."""
    out = {}
    if curves.empty:
        return out
    for (arm, fraction), mine in curves[curves.arm.isin(list(arms))].groupby(["arm", "fraction"]):
        mine = mine[mine.seed == mine.seed.min()]
        peaks = {}
        for lr in sorted(grid):
            g = mine[np.isclose(mine["lr"].astype(float), float(lr))].sort_values("step")
            if len(g):
                peaks[float(lr)] = _smooth(g.val_mR).max()
        if len(peaks) == len(grid):
            best = max(peaks.values())
            out[(arm, float(fraction))] = min(lr for lr, v in peaks.items() if v >= best - 1e-12)
    return out


def learning_curves(ctx: EfficiencyContext, wait: bool = True) -> pd.DataFrame:
    """The lr grid (if any; it sets ``ctx.lrs``), then every curve arm x share x curve seed at the arm's
    lr; units finished or held by another worker are skipped, and (``wait``) the call returns when every
    curve is in the table. Returns this regime's curves."""
    cfg = ctx.cfg
    lengths = sorted(((float(k), int(v)) for k, v in cfg.curve_steps.items()), reverse=True)
    name = lambda u: curve_name(ctx, u[0], u[1], u[2], u[3])  # noqa: E731
    run = lambda u: run_curve(ctx, *u)  # noqa: E731
    if cfg.lr_grid:
        units = [(arm, fraction, cfg.curve_seeds[0], float(lr), total) for fraction, total in lengths
                 for arm in cfg.curve_arms for lr in cfg.lr_grid]
        work_through(units, name=name, finished=lambda: _finished(ctx), run=run, claims=ctx.claims, wait=wait)
        ctx.lrs = choose_lrs(read_curves(ctx.out_dir, cfg.regime), cfg.curve_arms, cfg.lr_grid, cfg.plateau_tolerance)
    units = [(arm, fraction, seed, ctx.lrs.get((arm, fraction)), total) for fraction, total in lengths
             for seed in cfg.curve_seeds for arm in cfg.curve_arms]
    work_through(units, name=name, finished=lambda: _finished(ctx), run=run, claims=ctx.claims, wait=wait)
    return read_curves(ctx.out_dir, cfg.regime)


def study_curves(curves: pd.DataFrame, lrs: dict) -> pd.DataFrame:
    """The curves the lengths come from: each arm's at its chosen lr at that share (all of them without
    an lr grid)."""
    if not lrs:
        return curves[curves["lr"].isna()] if curves["lr"].notna().any() and curves["lr"].isna().any() else curves
    keep = []
    for a, f, lr in zip(curves.arm, curves.fraction, curves["lr"]):
        chosen = lrs.get((a, float(f)))
        keep.append(pd.isna(lr) if chosen is None else (pd.notna(lr) and np.isclose(float(lr), chosen)))
    return curves[np.asarray(keep, dtype=bool)]


def derived_steps(curves: pd.DataFrame, lrs: dict, tolerance: float) -> dict:
    """fraction -> training steps: the largest over the arms of the plateau step of the arm's mean curve
    (over its curve seeds) at that share."""
    used = study_curves(curves, lrs)
    out = {}
    for fraction, g in used.groupby("fraction"):
        steps = []
        for _, a in g.groupby("arm"):
            mean = a.groupby("step", as_index=False)["val_mR"].mean().sort_values("step")
            steps.append(plateau_step(mean["step"], mean["val_mR"], tolerance))
        out[float(fraction)] = int(max(steps))
    return out
