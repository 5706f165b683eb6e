"""The study's grid: every arm x data share x seed, in an order whose partial results are useful
(seed 0 of every cell, then seed 1, ...), each run's rows appended as it finishes (a crash loses
only the run under way), finished runs skipped on resume, a progress bar per run and one over all.

Rows are tidy (:class:`rsdix.results.Result`, ``figures/study/runs.csv``): model ``<arm>_frac<f>``
(``-ema`` for the EMA teacher's weights of the same run), dataset, task, metric, value, seed, split,
with ``run``, ``arm``, ``fraction``, ``weights`` (student | ema), ``steps``, ``train_s`` and
``train_images`` columns.

A run whose loss turns NaN/inf is not a result: it gets a line in ``diverged.csv`` (run, arm, share,
seed, the loop's message), resume skips it like a finished run, the grid goes on, and the report
lists it and pairs only the seeds both arms finished. Delete its line to try it again.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from rsdix.studies.efficiency.arms import arm_config, arm_setup, equal_time_steps, timed_steps
from rsdix.studies.efficiency.endpoints import EndpointCheck
from rsdix.studies.efficiency.design import EfficiencyConfig
from rsdix.studies.efficiency.shared import SharedCaches
from rsdix.errors import DataError
from rsdix.log import get_logger
from rsdix.paths import RunDirs, run_name, runs_dir
from rsdix.results import Result, append_results
from rsdix.training.clip import build_model, train_and_save
from rsdix.training.clip_data import build_train_dataset
from rsdix.training.loop import NonFiniteLossError, resolve_precision
from rsdix.utils import atomic_path, atomic_write_text, progress

log = get_logger(__name__)

RUNS_CSV = "runs.csv"
DIVERGED_CSV = "diverged.csv"


def plan(cfg: EfficiencyConfig) -> list[tuple[int, str, float]]:
    """``(seed, arm, share)`` in run order: phase by phase (``grid``, then each of ``extra``), and in a
    phase all its cells of a seed before the next seed; a run listed in two phases runs in the first."""
    order = [(seed, arm, fraction) for grid in cfg.grids() for seed in cfg.seeds for arm, fraction in cfg.cells(grid)]
    return list(dict.fromkeys(order))


def finished_runs(path: str | Path) -> set[str]:
    """Names of the runs whose rows are in the table at ``path`` (and, beside it, those recorded as
    diverged: they ended too, without a result)."""
    path = Path(path)
    names = set(read_diverged(path.parent)["run"].astype(str))
    if not path.exists() or path.stat().st_size == 0:
        return names
    return names | set(pd.read_csv(path, usecols=["run"])["run"].astype(str))


def read_diverged(out_dir: str | Path) -> pd.DataFrame:
    """The runs of ``out_dir`` that stopped on a non-finite loss (empty frame if none)."""
    path = Path(out_dir) / DIVERGED_CSV
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["run", "arm", "fraction", "seed", "error"])
    return pd.read_csv(path)


def record_diverged(out_dir: Path, arm: str, fraction: float, seed: int, error: Exception) -> None:
    """Add one line for a run that stopped on a non-finite loss to ``out_dir/diverged.csv``."""
    row = pd.DataFrame([{"run": run_name(arm, seed, fraction), "arm": arm, "fraction": fraction, "seed": seed,
                         "error": str(error)}])
    old = read_diverged(out_dir)
    table = pd.concat([old[old.run != row.run[0]], row], ignore_index=True) if len(old) else row
    with atomic_path(out_dir / DIVERGED_CSV) as tmp:
        table.to_csv(tmp, index=False)


def study_dirs(profile: str, out_dir: str | Path) -> RunDirs:
    """The study's runs train in ``runs/efficiency/<profile>/train/<run>`` and save their model folders
    to ``runs/efficiency/<profile>/models/<run>``; its tables and figures go to ``out_dir``."""
    return RunDirs(profile, out_dir=out_dir, run_dir=runs_dir() / "efficiency" / profile)


def rows_of(metrics: dict, *, model: str, seed: int, profile: str, extra: dict,
            n_images: dict) -> list[Result]:
    return [Result(model=model, dataset=dataset, task=task, metric=metric, value=value, seed=seed, split=split,
                   n=n_images.get(dataset), profile=profile, extra=extra)
            for (dataset, task, metric, split), value in metrics.items()]


@dataclass
class EfficiencyContext:
    """What the runs of one process share: the caches, the check, the DINO step time, and where the
    runs train and save their model folders (``dirs``; default :func:`study_dirs`)."""
    cfg: EfficiencyConfig
    profile: str
    out_dir: Path
    dirs: RunDirs | None = None
    data_root: str | None = None
    shared: SharedCaches = field(default_factory=SharedCaches)
    check: EndpointCheck | None = None
    dino_step_s: float | None = None
    captions: list = field(default_factory=list)

    def __post_init__(self):
        self.dirs = self.dirs or study_dirs(self.profile, self.out_dir)

    def prepare(self) -> None:
        """Build the check (decodes the evaluation images once) and fill the text cache with every
        training caption, so no run's training time includes encoding captions."""
        base = arm_config(self.cfg, "infonce", 1.0, self.cfg.seeds[0], self.data_root, steps=1)
        bundle = build_model(base)
        self.shared.install(bundle)
        self.check = self.check or EndpointCheck(bundle, self.data_root, self.cfg.zero_shot, self.cfg.zero_shot_max)
        dataset = build_train_dataset(base, bundle)
        captions = sorted({c for p in getattr(dataset, "datasets", [dataset]) for r in p.records for c in r.captions})
        warm_text_cache(bundle, captions, resolve_precision(base.loop.precision, base.loop.cpu))
        self.captions = captions      # the S-BERT arm embeds them on its first run

    def warm_sbert(self) -> None:
        if not self.shared.sbert.cache:
            self.shared.sbert.embed(self.captions, "cpu")

    def seconds_of(self, table: Path, arm: str, fraction: float, seed: int) -> float:
        runs = pd.read_csv(table)
        hit = runs[runs["run"] == run_name(arm, seed, fraction)]
        if hit.empty:
            raise DataError(table, f"no {run_name(arm, seed, fraction)} row: the dino arm needs its time first")
        return float(hit["train_s"].iloc[0])


@torch.no_grad()
def warm_text_cache(bundle, captions: list[str], precision: str, batch: int = 256) -> None:
    """Encode ``captions`` through the locked text tower under the training's autocast state (and
    fp32, the checks'), filling the shared trunk cache once."""
    states = [None] + (["bf16"] if precision == "bf16" else [])
    for state in states:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if state else torch.autocast("cpu", enabled=False)
        with ctx:
            for i in progress(range(0, len(captions), batch), desc=f"text cache ({state or 'fp32'})", leave=False):
                bundle.model.encode_text(bundle.tokenizer(captions[i:i + batch]))


def run_one(ctx: EfficiencyContext, arm: str, fraction: float, seed: int) -> list[Result]:
    """Train and check one run; returns its rows (student, and the EMA teacher's where it has one)."""
    cfg, table = ctx.cfg, ctx.out_dir / RUNS_CSV
    name = run_name(arm, seed, fraction)
    train_cfg = arm_config(cfg, arm, fraction, seed, ctx.data_root)
    target_s = None
    if arm == "dino":  # equal wall-clock time: as many DINO steps as InfoNCE's time of this seed allows
        target_s = ctx.seconds_of(table, "infonce", fraction, seed)
        if ctx.dino_step_s is None:
            ctx.dino_step_s = timed_steps(train_cfg, ctx.shared, cfg.dino_probe_steps)
        steps = equal_time_steps(target_s, ctx.dino_step_s)
        train_cfg = arm_config(cfg, arm, fraction, seed, ctx.data_root, steps=steps)
    if arm == "rsdix-sbert":
        ctx.warm_sbert()   # before the clock starts: its training time is the objective's, not the cache's
    start = time.time()
    res = train_and_save(train_cfg, name, ctx.dirs, resume=False, save=cfg.save_weights,
                         setup=arm_setup(train_cfg, ctx.shared), weights_dtype=torch.bfloat16)
    bundle = res.bundle
    extra = {"run": name, "arm": arm, "fraction": fraction, "steps": res.step, "train_s": round(res.seconds, 2),
             "train_images": train_images(bundle, train_cfg), "target_s": target_s}
    rows = rows_of(ctx.check(bundle), model=f"{arm}_frac{fraction:g}", seed=seed, profile=ctx.profile,
                   extra={**extra, "weights": "student"}, n_images=ctx.check.n_images)
    if cfg.check_teacher and res.teacher is not None:
        ema = dataclasses.replace(bundle, model=res.teacher.module)
        rows += rows_of(ctx.check(ema), model=f"{arm}_frac{fraction:g}-ema", seed=seed, profile=ctx.profile,
                        extra={**extra, "weights": "ema"}, n_images=ctx.check.n_images)
    for r in rows:
        r.extra["wall_s"] = round(time.time() - start, 1)
    return rows


def train_images(bundle, train_cfg) -> int:
    return len(build_train_dataset(train_cfg, bundle))


def run_study(cfg: EfficiencyConfig, out_dir: str | Path, profile: str, data_root=None,
              dirs: RunDirs | None = None, max_minutes: float | None = None,
              ctx: EfficiencyContext | None = None) -> pd.DataFrame:
    """Every run of :func:`plan` not yet in ``out_dir/runs.csv``; rows appended per run. Stops
    starting runs after ``max_minutes`` (the rows so far are the study's). Returns the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / RUNS_CSV
    done = finished_runs(table)
    todo = [p for p in plan(cfg) if run_name(p[1], p[0], p[2]) not in done]
    ctx = ctx or EfficiencyContext(cfg, profile, out_dir, dirs, data_root)
    start = time.time()
    if todo and ctx.check is None:   # (the learning curves may have prepared it already)
        ctx.prepare()
    bar = progress(todo, desc="study runs", unit="run")
    took: dict = {}      # (arm, share) -> wall seconds of its last run here: no run starts that would end late
    for i, (seed, arm, fraction) in enumerate(bar):
        spent = time.time() - start
        if max_minutes is not None and spent + took.get((arm, fraction), 0.0) > 60 * max_minutes:
            log.info(f"stopping after {spent / 60:.0f} of {max_minutes:g} min: {len(todo) - i} runs left "
                     f"(run again to resume)")
            break
        t0 = time.time()
        try:
            rows = run_one(ctx, arm, fraction, seed)
        except NonFiniteLossError as exc:   # one run's divergence is a finding, not the grid's end
            log.warning(f"{run_name(arm, seed, fraction)} diverged ({exc}); recorded in {DIVERGED_CSV}, going on")
            record_diverged(out_dir, arm, fraction, seed, exc)
            continue
        append_results(rows, table)
        took[(arm, fraction)] = time.time() - t0
    atomic_write_text(out_dir / "config.json", json.dumps(dataclasses.asdict(cfg), indent=1, default=str))
    return pd.read_csv(table) if table.exists() else pd.DataFrame()
