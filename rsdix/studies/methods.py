"""Notebook 03's experiment: the CLIP objectives compared at matched steps over seeds, DINO.

:class:`MethodsConfig` (``rsdix/configs/methods/<profile>.yaml``) says what a profile trains: every
method at the same steps, at each of its ``seeds`` (a seed fixes the initial weights, the image
order and the augmentation draws, so the methods' runs of one seed are paired);
:class:`MethodComparison` trains it (every run through :func:`train_run`: resumable, saved for the
later notebooks, quick-checked by the callables it is handed, e.g.
:class:`rsdix.evaluation.quick_check.QuickCheck`); the functions below turn the runs into
tables (one row per run, :func:`methods_table`; mean and 95% CI over seeds per method and the
paired differences against InfoNCE, :func:`comparison_table`), figures and the notebook's
conclusions::

    study = MethodComparison(profile, data_root, seed, dirs)
    main_runs = study.train_methods(check, val_check)
    table = methods_table(main_runs)
    display(Markdown(conclusions(comparison_table(table), study)))

Nothing is chosen on the numbers: no method is picked on a validation score and trained again
(a choice between means one noise-width apart says nothing), so no test number is selected
either. Run names follow :func:`rsdix.paths.run_name` (the convention the later notebooks read). The data-efficiency question (does RSDiX need fewer images?) is its own study, with paired
seeds at a justified length: :mod:`rsdix.studies.efficiency` (``make study``); notebook 03 shows its
stored results.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from rsdix import config, viz
from rsdix.config import option
from rsdix.errors import ConfigError
from rsdix.intervals import t_interval
from rsdix.log import get_logger
from rsdix.models import count_parameters
from rsdix.paths import run_name
from rsdix.results import Result
from rsdix.training.clip import ClipTrainConfig, load_clip_config, method_label, train_and_save
from rsdix.training.loop import resolve_precision

log = get_logger(__name__)

Check = Callable[[object], dict]

METHOD_COLUMNS = ["run", "method", "seed", "steps", "train_s", "val_mR", "i2t_R@1", "i2t_R@5", "i2t_R@10",
                  "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR", "zs_top1", "ema_mR", "ema_zs_top1"]
# what the comparison table and the conclusions summarise over seeds: column -> what it is
COMPARED = {"mR": "UCM test mR", "zs_top1": "WHU-RS19 zero-shot top-1 %", "val_mR": "UCM val mR"}
BASELINE = "infonce"   # the paired differences are against this method


@dataclass
class MethodsConfig:
    """What notebook 03 trains in a profile (``rsdix/configs/methods/<profile>.yaml``): every method
    at ``steps`` and at each of ``seeds``."""
    methods: list = field(default_factory=lambda: ["infonce", "rsdix", "rsdix-sbert", "rsdix-siglip"])
    seeds: list | None = None                 # every run at each seed (paired); None: the notebook's seed only
    steps: int | None = option(None, min=1)   # every run; None: the profile's loop.steps (or epochs)
    zero_shot_max: int | None = option(None, min=1)  # subsample WHU-RS19 for the quick check (None: all)
    dino_steps: int | None = option(None, min=0)     # the RS-M-CLIP DINO run: None = main steps, 0 = skip
    check_teacher: bool = True                # also quick-check the EMA teacher of distillation runs

    def validate(self) -> None:
        if not self.methods:
            raise ConfigError("methods: empty; name at least one method")
        if self.seeds is not None:
            if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.seeds):
                raise ConfigError(f"seeds: {self.seeds!r}; expected a non-empty list of integers >= 0 (or null)")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"seeds: {self.seeds!r} repeats a seed")


def load_methods_config(profile: str = "cpu", **overrides) -> MethodsConfig:
    return config.load("methods", profile, **overrides)


# ---------------------------------------------------------------- one run

def train_run(cfg: ClipTrainConfig, name: str, dirs, check: Check | None = None, save: bool = True,
              resume: bool = True, val_check: Check | None = None, check_teacher: bool = False) -> dict:
    """Train one run into ``dirs.run/train/<name>`` (resuming a finished or interrupted run of the
    same configuration; a run whose configuration changed is moved to ``<name>.previous`` and
    trained anew), save the model to ``dirs.models/<name>`` with its ``train_log.csv``, and
    quick-check it: ``check`` (test retrieval + zero-shot), ``val_check`` (validation retrieval,
    as ``val_mR``, for choosing between runs) and, with ``check_teacher``, the EMA teacher's
    weights too (as ``ema_<key>``; runs without a teacher have none)."""
    res = train_and_save(cfg, name, dirs, resume=resume, save=save)
    method = method_label(res.config)
    out = {"run": name, "method": method, "seed": cfg.loop.seed, "fraction": cfg.data.fraction,
           "steps": res.step, "train_s": res.seconds, "history": res.history}
    if check is not None:
        out.update(check(res.bundle))
    if val_check is not None:
        out["val_mR"] = val_check(res.bundle)["mR"]
    if check_teacher and check is not None and res.teacher is not None:
        ema = dataclasses.replace(res.bundle, model=res.teacher.module)  # the averaged weights
        out.update({f"ema_{k}": v for k, v in check(ema).items()})
    return out


def report_line(r: dict) -> str:
    """One line per run: steps, training time, validation and test checks (and the EMA teacher's)."""
    ema = f"  (EMA teacher: mR {r['ema_mR']:.1f}, {r['ema_zs_top1']:.1f}%)" if "ema_mR" in r else ""
    val = f"  val mR {r['val_mR']:.1f}" if "val_mR" in r else ""
    return (f"{r['run']:>20}: {r['steps']} steps in {r['train_s']:.0f}s{val}  UCM mR "
            f"{r['mR']:.1f}  WHU-RS19 zero-shot top-1 {r['zs_top1']:.1f}%{ema}")


def result_rows(runs: Sequence[dict], profile: str, retrieval_title: str = "UCM",
                zero_shot_title: str = "WHU-RS19", zero_shot_split: str = "all") -> list:
    """Tidy :class:`rsdix.results.Result` rows from :func:`train_run` outputs. ``zero_shot_split``
    names the images the zero-shot check used (the check's ``zero_shot_split`` attribute, e.g.
    :class:`rsdix.evaluation.quick_check.QuickCheck`)."""
    rows = []
    for r in runs:
        extra = {"method": r["method"], "fraction": r["fraction"], "steps": r["steps"]}
        for key, value in r.items():
            model = r["run"]
            if key.startswith("ema_"):  # the EMA teacher's weights: a model of its own
                key, model = key[len("ema_"):], f"{r['run']}-ema"
            split = "val" if key == "val_mR" else "test"
            if key.startswith(("i2t_", "t2i_")) or key in ("mR", "val_mR"):
                rows.append(Result(model=model, dataset=retrieval_title, task="retrieval", metric="mR" if
                                   key == "val_mR" else key, value=value, seed=r["seed"], split=split,
                                   profile=profile, extra=extra))
            elif key == "zs_top1":
                rows.append(Result(model=model, dataset=zero_shot_title, task="zero-shot", metric="top1",
                                   value=value, seed=r["seed"], split=zero_shot_split, profile=profile,
                                   extra=extra))
    return rows


# ---------------------------------------------------------------- the study of a profile

@dataclass
class MethodComparison:
    """The runs notebook 03 trains in ``profile``: its training config (``base``, from
    ``rsdix/configs/train/<profile>.yaml``) and study config (``cfg``); ``seeds`` are the config's
    (``seed``, the notebook's parameter, where the config names none); ``minutes`` collects the
    wall time of each part (training and checks)."""
    profile: str
    data_root: str | os.PathLike
    seed: int
    dirs: object                              # RunDirs: run, models, figures
    cfg: MethodsConfig | None = None
    minutes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.cfg = self.cfg or load_methods_config(self.profile)
        self.seeds = list(self.cfg.seeds) if self.cfg.seeds else [self.seed]
        self.base = self.config()

    @property
    def steps(self) -> int | None:
        """Steps of the main runs (None: the profile's ``epochs`` set them, as in the paper profile)."""
        return self.cfg.steps or (None if self.base.epochs else self.base.loop.steps)

    def config(self, source: str | None = None, seed: int | None = None, **overrides) -> ClipTrainConfig:
        """The profile's training config (or the train config named ``source``) on this data root at
        ``seed`` (default: the first of :attr:`seeds`); explicit ``loop__steps`` win over the config's
        ``epochs`` (None: keep the config's)."""
        seed = self.seeds[0] if seed is None else seed
        overrides = {"data__data_root": str(self.data_root), "loop__seed": seed, **overrides}
        if overrides.get("loop__steps") is not None:
            overrides["epochs"] = None
        else:
            overrides.pop("loop__steps", None)
        return load_clip_config(source or self.profile, **overrides)

    @contextmanager
    def timed(self, part: str):
        start = time.time()
        try:
            yield
        finally:
            self.minutes[part] = self.minutes.get(part, 0.0) + (time.time() - start) / 60

    def train_methods(self, check: Check, val_check: Check | None = None) -> list[dict]:
        """Every method of the study at the same steps, at every seed (``<method>_s<seed>``); seed by
        seed, so the runs finished when an interrupted notebook stops are complete pairs."""
        runs = []
        with self.timed("main runs"):
            for seed in self.seeds:
                for method in self.cfg.methods:
                    cfg = self.config(method=method, seed=seed, loop__steps=self.steps)
                    runs.append(train_run(cfg, run_name(method, seed), self.dirs, check=check, val_check=val_check,
                                          check_teacher=self.cfg.check_teacher))
                    log.info(report_line(runs[-1]))
        log.info(f"main runs: {self.minutes['main runs']:.1f} min")
        return runs

    def run_dino(self, check: Check, val_check: Check | None = None) -> list[dict]:
        """RS-M-CLIP's CLIP + DINO run (``train/<profile>_dino.yaml``, ``dino_s<seed>``) at every seed, with
        the first seed's loss-terms figure (``03_dino_terms.png``); none where the study skips it
        (``dino_steps: 0``)."""
        steps = self.steps if self.cfg.dino_steps is None else self.cfg.dino_steps
        if steps == 0:
            log.info(f"DINO run skipped in the {self.profile} profile (methods/{self.profile}.yaml: dino_steps: 0): "
                     f"it does not fit the time budget here; set dino_steps to run it (a CLIP+DINO step costs ~3.5x an "
                     f"InfoNCE step, `make bench`).")
            return []
        runs = []
        for seed in self.seeds:
            cfg = self.config(f"{self.profile}_dino", seed=seed, loop__steps=steps)
            if not runs:
                log.info(describe_dino(cfg))
            with self.timed("main runs"):
                runs.append(train_run(cfg, run_name("dino", seed), self.dirs, check=check, val_check=val_check))
            log.info(report_line(runs[-1]))
        run = runs[0]
        plot_dino_terms(run, path=Path(self.dirs.figures) / "03_dino_terms.png")
        h = pd.DataFrame(run["history"])
        log.info(f"DINO term: {h['dino/loss'].iloc[0]:.3f} at step {int(h['step'].iloc[0])}, {h['dino/loss'].iloc[-1]:.3f} "
                 f"at step {int(h['step'].iloc[-1])}; a uniform teacher (centred outputs all alike) gives log K = "
                 f"{math.log(cfg.dino.out_dim):.3f}, so the gap below it is what the image tower learned from DINO.")
        return runs


# ---------------------------------------------------------------- tables, figures, conclusions

def describe_config(study: MethodComparison, bundle) -> pd.DataFrame:
    """The profile's training setup in one column (read from the YAML files, not typed)."""
    base, cfg = study.base, study.cfg
    n_all, n_train = count_parameters(bundle.model), count_parameters(bundle.model, trainable_only=True)
    summary = {
        "model": base.model, "pretrained": base.pretrained, "image size (px)": bundle.image_size,
        "text trunk locked": base.lock_text, "parameters (M)": round(n_all / 1e6, 1),
        "trainable (M)": round(n_train / 1e6, 1), "training data": ", ".join(base.data.datasets),
        "batch": base.loop.batch_size, "lr": base.loop.lr, "weight decay": base.loop.weight_decay,
        "warmup steps": base.loop.warmup_steps, "steps (every run)": study.steps or "epochs",
        "seeds (every method)": ", ".join(map(str, study.seeds)),
        "methods": ", ".join(cfg.methods),
        "precision": f"{base.loop.precision} -> {resolve_precision(base.loop.precision, base.loop.cpu)}"
                     + (", channels_last" if base.loop.channels_last else ""),
        "frozen": ", ".join(base.loop.freeze) or "-",
        "alpha": base.loss.alpha, "Sinkhorn eps / iters": f"{base.loss.sinkhorn_eps} / {base.loss.sinkhorn_iters}",
        "augmentation": f"{base.data.augment} (crop scale {tuple(base.data.crop_scale)}, zoom-out up to "
                        f"{base.data.zoom_out:g}x, colour jitter {base.data.color_jitter:g}, flips, 90-degree rotations)",
    }
    return pd.Series(summary, name=study.profile).to_frame()


def describe_dino(cfg: ClipTrainConfig) -> str:
    """The DINO settings of a CLIP + DINO config in one line."""
    d = cfg.dino
    return (f"DINO: {d.crops.n_global} global crops (scale {tuple(d.crops.global_scale)}), {d.crops.n_local} local "
            f"crops (scale {tuple(d.crops.local_scale)}, {d.crops.local_size or 'auto'} px), K = {d.out_dim}, "
            f"lambda = {d.weight}, teacher temperature {d.warmup_teacher_temp} -> {d.teacher_temp}, "
            f"EMA momentum {d.momentum_teacher} -> {d.momentum_final}, CLIP loss method: {cfg.loss.method}")


def methods_table(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per run: seed, steps, training seconds, the checks (no history)."""
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in runs])
    return table[[c for c in METHOD_COLUMNS if c in table]]


def comparison_table(table: pd.DataFrame, baseline: str = BASELINE,
                     columns: dict[str, str] = COMPARED) -> pd.DataFrame:
    """Per method and check (:data:`COMPARED`): the mean over seeds with its Student-t 95% CI
    (:func:`rsdix.intervals.t_interval`, n - 1 degrees of freedom; one seed: no interval) and,
    for every other method, the paired difference to ``baseline`` over the seeds both ran (same
    seed = same initial weights, image order and augmentation draws), with its t interval;
    ``separated`` says whether that interval excludes 0. Rows: ``method``, ``check``, ``n``,
    ``mean``, ``ci_low``, ``ci_high``, ``diff``, ``diff_low``, ``diff_high``, ``n_pairs``, ``separated``."""
    rows = []
    for method, part in table.groupby("method", sort=False):
        for column, title in columns.items():
            if column not in part or part[column].isna().all():
                continue
            values = part.dropna(subset=[column])
            mean, low, high = t_interval(values[column])
            n = len(values)
            row = {"method": method, "check": title, "n": n, "mean": mean,
                   "ci_low": low if n > 1 else float("nan"), "ci_high": high if n > 1 else float("nan"),
                   "diff": float("nan"), "diff_low": float("nan"), "diff_high": float("nan"), "n_pairs": 0,
                   "separated": ""}
            base = table[(table["method"] == baseline)].dropna(subset=[column]).set_index("seed")[column]
            if method != baseline and len(base):
                mine = values.set_index("seed")[column]
                seeds = mine.index.intersection(base.index)
                if len(seeds):
                    diff, dlow, dhigh = t_interval(mine.loc[seeds] - base.loc[seeds])
                    row.update(diff=diff, n_pairs=len(seeds))
                    if len(seeds) > 1:   # a zero-width interval (pairs that all differ alike) orders nothing
                        row.update(diff_low=dlow, diff_high=dhigh,
                                   separated="yes" if dhigh > dlow and (dlow > 0 or dhigh < 0) else "no")
            rows.append(row)
    return pd.DataFrame(rows)


def plot_dino_terms(run: dict, path: str | os.PathLike | None = None):
    """The DINO run's loss terms and its teacher temperature schedule."""
    h = pd.DataFrame(run["history"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(h["step"], h["dino/loss"], label="DINO term")
    axes[0].plot(h["step"], h["hard"], label="InfoNCE term")
    axes[0].set_title(f"{run['run']}: loss terms")
    axes[0].legend(fontsize=7)
    axes[1].plot(h["step"], h["dino/teacher_temp"], label="teacher temperature")
    axes[1].set_title("teacher temperature schedule")
    for ax in axes:
        ax.set_xlabel("step")
    if path is not None:
        viz.save(fig, path)
    return fig


LOSS_PANELS = [("hard", "contrastive term (InfoNCE / SigLIP)", "contrastive loss (per batch)"),
               ("distill", "distillation term (RSDiX methods)", "distillation loss (KL / soft-target BCE)"),
               ("loss", "total loss", "training loss (what the optimizer sees)")]


def plot_loss_curves(runs: Sequence[dict], path: str | os.PathLike | None = None):
    """Contrastive term, distillation term and total loss of every run, per step; one fixed colour
    per model (:func:`rsdix.viz.model_colour`) in every panel. The SigLIP terms (sigmoid loss, soft
    binary targets) are on another scale than InfoNCE's and the KL term: compare a run with itself."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for r in runs:
        h = pd.DataFrame(r["history"])
        for ax, (key, _, _) in zip(axes, LOSS_PANELS):
            if key in h:
                ax.plot(h["step"], h[key], label=r["run"], color=viz.model_colour(r["run"]), lw=1)
    for ax, (_, title, ylabel) in zip(axes, LOSS_PANELS):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    viz.caption(fig, "Logged training loss of each run (one batch per point, no smoothing); one colour per method "
                     "in all panels, one line per seed.")
    if path is not None:
        viz.save(fig, path)
    return fig


def _ci(mean: float, low: float, high: float, n: int, sign: bool = False) -> str:
    value = f"{mean:+.1f}" if sign else f"{mean:.1f}"
    return f"{value} (n={n})" if n < 2 or pd.isna(low) else f"{value} [{low:.1f}, {high:.1f}] (n={n})"


def conclusions(comparison: pd.DataFrame, study: MethodComparison, baseline: str = BASELINE) -> str:
    """What the numbers say, as markdown built from :func:`comparison_table`: each method's mean
    and 95% CI over seeds per check, the paired differences against ``baseline`` and whether
    their intervals exclude 0 (an order is stated only then), the time spent. (RSDiX against
    InfoNCE per share of the data is the efficiency study's:
    :func:`rsdix.studies.efficiency.analysis.answer_sentences`.)"""
    seeds = ", ".join(map(str, study.seeds))
    length = f"{study.steps} steps" if study.steps else "the profile's epochs"
    lines = [f"Every method at {length}, seeds {seeds} (a seed gives every method the same initial weights, image "
             "order and augmentation draws); mean [95% Student-t CI] over seeds."]
    for check, part in comparison.groupby("check", sort=False):
        cells = ", ".join(f"{r.method} {_ci(r.mean, r.ci_low, r.ci_high, r.n)}" for r in part.itertuples())
        lines.append(f"{check}: {cells}.")
        for r in part[part["n_pairs"] > 0].itertuples():
            verdict = (f"{r.method} {'above' if r.diff > 0 else 'below'} {baseline}" if r.separated == "yes" else
                       "the interval includes 0: no order at this number of seeds" if r.separated == "no" else
                       "one pair: no interval, no order")
            lines.append(f"  {check}, {r.method} - {baseline} (paired by seed): "
                         f"{_ci(r.diff, r.diff_low, r.diff_high, r.n_pairs, sign=True)}; {verdict}.")
    lines.append(f"Time: {study.minutes.get('main runs', 0.0):.1f} min for every run and its checks.")
    return "\n".join(f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in lines)
