"""The study's grid: every arm x data share x seed, in an order whose partial results are useful
(seed 0 of every cell, then seed 1, ...), each run's rows appended as it finishes (a crash loses
only the run under way), finished runs skipped on resume, a progress bar per run and one over all.
Several worker processes may run the grid together (:mod:`rsdix.studies.efficiency.workers`): each
takes the next run no other live worker holds.

Rows are tidy (:class:`rsdix.results.Result`, ``figures/study/runs.csv``): model ``<arm>_frac<f>``
(``pt-`` first in the pretrained regime; ``-ema`` for the EMA teacher's weights of the same run),
dataset, task, metric, value, seed, split, with ``regime``, ``run``, ``arm``, ``fraction``,
``weights`` (student | ema), ``steps``, ``train_s`` and ``train_images`` columns. Beside it: every
run's per-query hits (``queries/<run>.csv.gz``, :mod:`rsdix.studies.efficiency.endpoints`) and the
soft targets' statistics over training of every distillation run (``targets.csv``).

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

from rsdix.config import deep_update
from rsdix.studies.efficiency.arms import arm_config, arm_setup, equal_time_steps, timed_steps
from rsdix.studies.efficiency.endpoints import EndpointCheck, write_queries
from rsdix.studies.efficiency.design import EfficiencyConfig
from rsdix.studies.efficiency.regimes import RegimeState, regime_state, run_prefix
from rsdix.studies.efficiency.shared import SharedCaches
from rsdix.studies.efficiency.workers import Claims, work_through
from rsdix.errors import DataError
from rsdix.log import get_logger
from rsdix.paths import RunDirs, run_name, runs_dir
from rsdix.results import Result, append_results, read_table, table_lock
from rsdix.training.clip import build_model, train_and_save
from rsdix.training.clip_data import build_train_dataset
from rsdix.training.loop import NonFiniteLossError, resolve_precision
from rsdix.utils import atomic_path, atomic_write_text, progress

log = get_logger(__name__)

RUNS_CSV = "runs.csv"
DIVERGED_CSV = "diverged.csv"
TARGETS_CSV = "targets.csv"
QUERIES_DIR = "queries"
TARGET_TERMS = ("p_diag", "p_entropy", "p_top1", "teacher_top1", "distill", "hard", "distill_tau", "logit_scale")


def plan(cfg: EfficiencyConfig) -> list[tuple[int, str, float]]:
    """``(seed, arm, share)`` in run order: phase by phase (``grid``, then each of ``extra``), and in a
    phase all its cells of a seed before the next seed; a run listed in two phases runs in the first."""
    order = [(seed, arm, fraction) for grid, seeds in zip(cfg.grids(), cfg.phase_seeds())
             for seed in seeds for arm, fraction in cfg.cells(grid)]
    return list(dict.fromkeys(order))


def finished_runs(path: str | Path) -> set[str]:
    """Names of the runs whose rows are in the table at ``path`` (and, beside it, those recorded as
    diverged: they ended too, without a result)."""
    path = Path(path)
    names = set(read_diverged(path.parent)["run"].astype(str))
    if not path.exists() or path.stat().st_size == 0:
        return names
    return names | set(read_table(path, usecols=["run"])["run"].astype(str))


def read_diverged(out_dir: str | Path) -> pd.DataFrame:
    """The runs of ``out_dir`` that stopped on a non-finite loss (empty frame if none)."""
    path = Path(out_dir) / DIVERGED_CSV
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=["run", "arm", "fraction", "seed", "error"])
    return read_table(path)


def record_diverged(out_dir: Path, arm: str, fraction: float, seed: int, error: Exception, prefix: str = "") -> None:
    """Add one line for a run that stopped on a non-finite loss to ``out_dir/diverged.csv``."""
    row = pd.DataFrame([{"run": run_name(prefix + arm, seed, fraction), "arm": arm, "fraction": fraction,
                         "seed": seed, "error": str(error)}])
    with table_lock(out_dir / DIVERGED_CSV):
        old = read_diverged(out_dir)
        table = pd.concat([old[old.run != row.run[0]], row], ignore_index=True) if len(old) else row
        with atomic_path(out_dir / DIVERGED_CSV) as tmp:
            table.to_csv(tmp, index=False)


def append_frame(frame: pd.DataFrame, path: Path) -> None:
    """Append ``frame`` to the CSV at ``path`` under its lock (several workers write it)."""
    with table_lock(path):
        if path.exists() and path.stat().st_size > 0:
            frame = pd.concat([read_table(path), frame], ignore_index=True)
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)


def study_dirs(profile: str, out_dir: str | Path) -> RunDirs:
    """The study's runs train in ``runs/efficiency/<profile>/train/<run>`` and save their model folders
    to ``runs/efficiency/<profile>/models/<run>``; its tables and figures go to ``out_dir``."""
    base = profile if profile in ("smoke", "cpu", "paper") else profile.split("_")[0]
    return RunDirs(base if base in ("smoke", "cpu", "paper") else "cpu", out_dir=out_dir,
                   run_dir=runs_dir() / "efficiency" / profile)


def rows_of(metrics: dict, *, model: str, seed: int, profile: str, extra: dict,
            n_images: dict) -> list[Result]:
    return [Result(model=model, dataset=dataset, task=task, metric=metric, value=value, seed=seed, split=split,
                   n=n_images.get(dataset), profile=profile, extra=extra)
            for (dataset, task, metric, split), value in metrics.items()]


@dataclass
class EfficiencyContext:
    """What the runs of one process share: the caches, the check, the DINO step time, where the runs
    train and save their model folders (``dirs``; default :func:`study_dirs`), the regime's additions
    (``state``), each arm's learning rate (``lrs``, from the lr grid) and the claims of the workers."""
    cfg: EfficiencyConfig
    profile: str
    out_dir: Path
    dirs: RunDirs | None = None
    data_root: str | None = None
    shared: SharedCaches = field(default_factory=SharedCaches)
    check: EndpointCheck | None = None
    dino_step_s: float | None = None
    captions: list = field(default_factory=list)
    state: RegimeState | None = None
    lrs: dict = field(default_factory=dict)
    claims: Claims | None = None

    def __post_init__(self):
        self.dirs = self.dirs or study_dirs(self.profile, self.out_dir)
        self.claims = self.claims or Claims(Path(self.dirs.run) / "claims")

    @property
    def prefix(self) -> str:
        return run_prefix(self.cfg)

    def regime(self) -> RegimeState:
        if self.state is None:
            self.state = regime_state(self.cfg, Path(self.dirs.run), self.data_root)
        return self.state

    def lr_of(self, arm: str, fraction: float) -> float | None:
        """The arm's learning rate at ``fraction`` from the lr grid (an arm with ``lr_from`` takes that arm's)."""
        source = self.cfg.arm_spec(arm).lr_from or arm
        key = float(fraction)
        return self.lrs.get((source, key), self.lrs.get((arm, key)))

    def extra(self, arm: str, fraction: float) -> dict:
        """The training overrides of ``arm`` in this study: the regime's and the arm's learning rate."""
        lr = self.lr_of(arm, fraction)
        return deep_update(self.regime().overrides, {"loop": {"lr": float(lr)}} if lr is not None else {})

    def config(self, arm: str, fraction: float, seed: int, steps: int | None = None):
        return arm_config(self.cfg, arm, fraction, seed, self.data_root, steps=steps, extra=self.extra(arm, fraction))

    def prepare(self) -> None:
        """Build the check (decodes the evaluation images once) and fill the text cache with every
        training caption, so no run's training time includes encoding captions."""
        base = self.config("infonce", 1.0, self.cfg.seeds[0], steps=1)
        bundle = build_model(base)
        self.shared.install(bundle)
        self.check = self.check or EndpointCheck(bundle, self.data_root, self.cfg.zero_shot, self.cfg.zero_shot_max,
                                                 self.cfg.retrieval_specs(), self.cfg.val_spec(), self.regime().keep,
                                                 self.cfg.retrieval_max)
        dataset = build_train_dataset(base, bundle)
        captions = sorted({c for p in getattr(dataset, "datasets", [dataset]) for r in p.records for c in r.captions})
        if self.shared.caches_text(bundle):   # a locked, cached text trunk (the cpu profiles): encode once
            warm_text_cache(bundle, captions, resolve_precision(base.loop.precision, base.loop.cpu))
        self.captions = captions      # the S-BERT arm embeds them on its first run

    def warm_sbert(self) -> None:
        if not self.shared.sbert.cache:
            self.shared.sbert.embed(self.captions, "cpu")

    def seconds_of(self, table: Path, arm: str, fraction: float, seed: int) -> float:
        runs = read_table(table)
        name = run_name(self.prefix + arm, seed, fraction)
        hit = runs[runs["run"] == name]
        if hit.empty:
            raise DataError(table, f"no {name} row: the dino arm needs its time first")
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
    """Train and check one run; returns its rows (student, and the EMA teacher's where it has one).
    Its per-query hits go to ``queries/<run>.csv.gz``, its soft targets' statistics to ``targets.csv``."""
    cfg, table = ctx.cfg, ctx.out_dir / RUNS_CSV
    name = run_name(ctx.prefix + arm, seed, fraction)
    train_cfg = ctx.config(arm, fraction, seed)
    target_s = None
    if arm == "dino" and cfg.dino_length == "time":  # equal wall-clock: the DINO steps InfoNCE's time of this seed allows
        target_s = ctx.seconds_of(table, "infonce", fraction, seed)
        if ctx.dino_step_s is None:
            ctx.dino_step_s = timed_steps(train_cfg, ctx.shared, cfg.dino_probe_steps)
        steps = equal_time_steps(target_s, ctx.dino_step_s)
        train_cfg = ctx.config(arm, fraction, seed, steps=steps)
    if cfg.arm_spec(arm).method == "rsdix-sbert":
        ctx.warm_sbert()   # before the clock starts: its training time is the objective's, not the cache's
    start = time.time()
    res = train_and_save(train_cfg, name, ctx.dirs, resume=False, save=cfg.save_weights,
                         setup=arm_setup(train_cfg, ctx.shared), weights_dtype=torch.bfloat16)
    bundle = res.bundle
    extra = {"regime": cfg.regime, "run": name, "arm": arm, "fraction": fraction, "steps": res.step,
             "train_s": round(res.seconds, 2), "train_images": train_images(bundle, train_cfg), "target_s": target_s}
    metrics, queries = ctx.check.evaluate(bundle)
    rows = rows_of(metrics, model=f"{ctx.prefix}{arm}_frac{fraction:g}", seed=seed, profile=ctx.profile,
                   extra={**extra, "weights": "student"}, n_images=ctx.check.n_images)
    if cfg.store_queries:
        write_queries(queries, ctx.out_dir / QUERIES_DIR / f"{name}.csv.gz")
    if cfg.check_teacher and res.teacher is not None:
        ema = dataclasses.replace(bundle, model=res.teacher.module)
        rows += rows_of(ctx.check(ema), model=f"{ctx.prefix}{arm}_frac{fraction:g}-ema", seed=seed,
                        profile=ctx.profile, extra={**extra, "weights": "ema"}, n_images=ctx.check.n_images)
    for r in rows:
        r.extra["wall_s"] = round(time.time() - start, 1)
    log_targets(ctx.out_dir, res.history, {"regime": cfg.regime, "run": name, "arm": arm, "fraction": fraction,
                                           "seed": seed})
    return rows


def log_targets(out_dir: Path, history: list[dict], keys: dict) -> None:
    """The soft targets' statistics of a distillation run over training (its logged steps) into
    ``targets.csv``; runs without targets add nothing."""
    rows = [{**keys, "step": int(h["step"]), **{t: h[t] for t in TARGET_TERMS if t in h}}
            for h in history if "p_diag" in h]
    if rows:
        append_frame(pd.DataFrame(rows), Path(out_dir) / TARGETS_CSV)


def train_images(bundle, train_cfg) -> int:
    return len(build_train_dataset(train_cfg, bundle))


def run_study(cfg: EfficiencyConfig, out_dir: str | Path, profile: str, data_root=None,
              dirs: RunDirs | None = None, max_minutes: float | None = None,
              ctx: EfficiencyContext | None = None) -> pd.DataFrame:
    """Every run of :func:`plan` not yet in ``out_dir/runs.csv`` and not held by another worker; rows
    appended per run. Stops starting runs after ``max_minutes`` (the rows so far are the study's).
    Returns the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / RUNS_CSV
    ctx = ctx or EfficiencyContext(cfg, profile, out_dir, dirs, data_root)
    start = time.time()
    took: dict = {}      # (arm, share) -> wall seconds of its last run here: no run starts that would end late
    units = plan(cfg)

    def name(unit):
        seed, arm, fraction = unit
        return run_name(ctx.prefix + arm, seed, fraction)

    def stop(unit):
        spent = time.time() - start
        if max_minutes is not None and spent + took.get((unit[1], unit[2]), 0.0) > 60 * max_minutes:
            log.info(f"stopping after {spent / 60:.0f} of {max_minutes:g} min (run again to resume)")
            return True
        return False

    def run(unit):
        seed, arm, fraction = unit
        if ctx.check is None:   # (the learning curves may have prepared it already)
            ctx.prepare()
        t0 = time.time()
        try:
            rows = run_one(ctx, arm, fraction, seed)
        except NonFiniteLossError as exc:   # one run's divergence is a finding, not the grid's end
            log.warning(f"{name(unit)} diverged ({exc}); recorded in {DIVERGED_CSV}, going on")
            record_diverged(out_dir, arm, fraction, seed, exc, ctx.prefix)
            return
        append_results(rows, table)
        took[(arm, fraction)] = time.time() - t0

    work_through(units, name=name, finished=lambda: finished_runs(table), run=run, claims=ctx.claims, stop=stop)
    config_name = "config.json" if cfg.regime == "scratch" else f"config_{cfg.regime}.json"
    atomic_write_text(out_dir / config_name, json.dumps(dataclasses.asdict(cfg), indent=1, default=str))
    return read_table(table) if table.exists() else pd.DataFrame()
