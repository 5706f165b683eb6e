"""Learning curves: InfoNCE's UCM *validation* mR every ``curve_every`` steps at each data share,
and the length at which it stopped rising (:func:`plateau_step`), which sets the study's
``steps`` per share. The curve of a share is one run with the cosine schedule of its longest
length, so the learning rate at step s is higher than a run of length s would have there: a
length read off the curve is, if anything, longer than needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rsdix.paths import run_name
from rsdix.studies.efficiency.arms import arm_config, arm_setup
from rsdix.training.clip import train_and_save
from rsdix.studies.efficiency.runs import EfficiencyContext
from rsdix.utils import atomic_path

CURVES_CSV = "learning_curves.csv"


def plateau_step(steps, values, tolerance: float, window: int = 3) -> int:
    """The first step whose running mean (over ``window`` checks, centred) is within ``tolerance``
    of the curve's best running mean: where the curve has stopped rising."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("an empty learning curve has no plateau")
    smooth = pd.Series(values).rolling(window, center=True, min_periods=1).mean().to_numpy()
    best = smooth.max()
    return int(steps[np.flatnonzero(smooth >= best - tolerance)[0]])


def learning_curves(ctx: EfficiencyContext, arm: str = "infonce") -> pd.DataFrame:
    """Train ``arm`` at each share of ``curve_steps`` for each curve seed, checking UCM val mR every
    ``curve_every`` steps (and at the end); appends to ``out_dir/learning_curves.csv``, skipping
    (share, seed) curves already there. Returns the table."""
    cfg, path = ctx.cfg, Path(ctx.out_dir) / CURVES_CSV
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["arm", "fraction", "seed"])
    lengths = sorted((float(k), int(v)) for k, v in cfg.curve_steps.items())
    todo = [(fraction, total, seed) for fraction, total in lengths for seed in cfg.curve_seeds
            if not ((done["arm"] == arm) & (done["fraction"] == fraction) & (done["seed"] == seed)).any()]
    if todo and ctx.check is None:
        ctx.prepare()
    for fraction, total, seed in todo:
        train_cfg = arm_config(cfg, arm, fraction, seed, ctx.data_root, steps=total)
        rows = []

        def watch(bundle, step, logs, fraction=fraction, seed=seed, total=total, rows=rows):
            if step % cfg.curve_every == 0 or step == total:
                rows.append({"arm": arm, "fraction": fraction, "seed": seed, "step": step,
                             "val_mR": ctx.check.val_mR(bundle), "loss": float(logs.get("loss", np.nan)),
                             "total_steps": total})

        setup = arm_setup(train_cfg, ctx.shared)
        res = train_and_save(train_cfg, run_name(f"curve-{arm}", seed, fraction), ctx.dirs, resume=False,
                             save=cfg.save_weights, setup=setup, weights_dtype=torch.bfloat16,
                             callbacks=[lambda step, logs: watch(setup.bundle, step, logs)],
                             desc=f"curve {arm} {fraction:g} s{seed}")
        frame = pd.DataFrame(rows)
        frame["seconds_per_step"] = res.seconds / max(1, res.step)
        done = pd.concat([done, frame], ignore_index=True)
        with atomic_path(path) as tmp:
            done.to_csv(tmp, index=False)
    return done
