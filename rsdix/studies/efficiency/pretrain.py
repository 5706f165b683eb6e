"""Stage 1 of the pretrained regime (:mod:`rsdix.studies.efficiency.regimes`): InfoNCE on the source
pool with the source classes' validation mR every ``pretrain.curve_every`` steps (``pretrain_curve.csv``),
the model folder every fine-tuning run starts from, and what that model scores on the target before
any fine-tuning (``pretrain_score.csv``, with each endpoint's chance level): the teacher is worth
something on the target only if this is well above chance. One worker trains it; the others wait.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from rsdix.data.registry import get_info
from rsdix.errors import DataError
from rsdix.paths import run_name
from rsdix.studies.efficiency.arms import arm_setup
from rsdix.studies.efficiency.design import RetrievalSpec
from rsdix.studies.efficiency.endpoints import EndpointCheck
from rsdix.studies.efficiency.regimes import (PRETRAIN_CURVE_CSV, PRETRAIN_RUN, PRETRAIN_SCORE_CSV, chance_mR,
                                              pretrain_overrides, pretrained_weights)
from rsdix.studies.efficiency.runs import EfficiencyContext
from rsdix.studies.efficiency.workers import work_through
from rsdix.training.clip import load_clip_config, train_and_save
from rsdix.utils import atomic_path
from rsdix.results import read_table


def source_val_spec(ctx: EfficiencyContext) -> RetrievalSpec:
    """Stage 1's validation set: the source classes' validation images (split by classes), else the
    validation set of the curves (split by images: no validation image is in either pool)."""
    val = ctx.cfg.val_spec()
    if ctx.cfg.pretrain.split != "classes":
        return val
    return dataclasses.replace(val, classes="source", title=f"{val.title.split('-')[0]}-source")


def pretrain(ctx: EfficiencyContext) -> pd.DataFrame:
    """Stage 1 once (resumable: skipped when its score is in ``out_dir``); returns the score table."""
    cfg, out = ctx.cfg, Path(ctx.out_dir)
    state = ctx.regime()
    score_path = out / PRETRAIN_SCORE_CSV

    def finished():
        return {"pretrain"} if score_path.exists() and pretrained_weights(ctx.dirs.run).exists() else set()

    def run(_):
        train_cfg = load_clip_config(cfg.train_profile, **pretrain_overrides(cfg, state))
        setup = arm_setup(train_cfg, ctx.shared)
        # split by classes: also the target classes' validation images (the curves' set) before fine-tuning
        more = [cfg.val_spec()] if cfg.pretrain.split == "classes" else []
        check = EndpointCheck(setup.bundle, ctx.data_root, cfg.zero_shot, cfg.zero_shot_max,
                              [*cfg.retrieval_specs(), *more], source_val_spec(ctx), state.keep, cfg.retrieval_max)
        rows = []

        def watch(step, logs):
            if step % cfg.pretrain.curve_every == 0 or step == train_cfg.loop.steps:
                rows.append({"step": step, "val_mR": check.val_mR(setup.bundle), "loss": float(logs.get("loss", 0.0)),
                             "val_set": check.val.spec.title})

        res = train_and_save(train_cfg, run_name(PRETRAIN_RUN, 0), ctx.dirs, resume=True, save=True, setup=setup,
                             callbacks=[watch], desc="stage 1: pretraining on the source pool")
        curve = pd.DataFrame(rows)
        curve["seconds_per_step"] = res.seconds / max(1, res.step)
        curve["train_images"] = len(setup.dataset)
        with atomic_path(out / PRETRAIN_CURVE_CSV) as tmp:
            curve.to_csv(tmp, index=False)
        metrics, _ = check.evaluate(res.bundle)
        score = pd.DataFrame([{"dataset": d, "task": t, "metric": m, "split": s, "value": v,
                               "n": _size(check, d, s), "chance": _chance(check, d, t, m, s)}
                              for (d, t, m, s), v in metrics.items() if not d.startswith("mean of")])
        with atomic_path(score_path) as tmp:
            score.to_csv(tmp, index=False)

    work_through(["pretrain"], name=lambda u: u, finished=finished, run=run, claims=ctx.claims)
    return read_table(score_path)


def _size(check: EndpointCheck, dataset: str, split: str) -> int | None:
    sets = [s for s in check.sets + [check.val] if s.spec.title == dataset and s.split == split]
    return len(sets[0].images) if sets else next((len(z.images) for z in check.zs if z.title == dataset), None)


def _chance(check: EndpointCheck, dataset: str, task: str, metric: str, split: str) -> float | None:
    """The expected value of ``metric`` for random scores: mR of the retrieval set, 100 / classes for
    zero-shot top-1."""
    if task == "zero-shot":
        try:
            return 100.0 / get_info(dataset, "classification").classes
        except DataError:
            return None
    sets = [s for s in check.sets + [check.val] if s.spec.title == dataset and s.split == split]
    if metric != "mR" or not sets:
        return None
    owner = sets[0].owner.tolist()
    return chance_mR(len(sets[0].images), [owner.count(i) for i in range(len(sets[0].images))])
