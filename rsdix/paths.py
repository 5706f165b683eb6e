"""Where things live: data root, caches, run folders, figures.

Every location can be set explicitly, through an environment variable, or left to
the default. The folder functions create the folder they return; :class:`RunDirs` creates a
profile's run, figures and models folders and sets up the ``rsdix`` log lines; nothing here
creates data.

* data root: ``RSDIX_DATA_ROOT`` (default: ``<repo>/../shared/data`` when it exists,
  else ``<repo>/data``)
* cache: ``RSDIX_CACHE`` (default ``<repo>/.cache``): feature caches, tokenizers
* runs: ``RSDIX_RUNS`` (default ``<repo>/runs``): checkpoints, logs, executed notebooks
* figures: ``RSDIX_FIGURES`` (default ``<repo>/figures``): tables and figures
"""
from __future__ import annotations

import os
from pathlib import Path

from rsdix.errors import DataError
from rsdix.log import setup as setup_logging


def repo_root() -> Path:
    """The repository root when running from a checkout, else the current directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_root(root: str | os.PathLike | None = None, required: bool = True) -> Path:
    """Resolve the data root: explicit ``root`` > ``$RSDIX_DATA_ROOT`` > defaults."""
    if root is not None and str(root) != "":
        path = Path(root).expanduser().resolve()
    elif os.environ.get("RSDIX_DATA_ROOT"):
        path = Path(os.environ["RSDIX_DATA_ROOT"]).expanduser().resolve()
    else:
        shared = (repo_root() / ".." / "shared" / "data").resolve()
        path = shared if shared.exists() else repo_root() / "data"
    if required and not path.is_dir():
        raise DataError(path, "data root does not exist; pass root=... or set RSDIX_DATA_ROOT")
    return path


def cache_dir() -> Path:
    path = _env_path("RSDIX_CACHE", repo_root() / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = _env_path("RSDIX_RUNS", repo_root() / "runs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    path = _env_path("RSDIX_FIGURES", repo_root() / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


PROFILES = ("smoke", "cpu", "paper")

# dry run of a profile (``rsdix reproduce --dry-run``, rsdix.reporting.dry_run): set to 1 for the
# notebooks' kernel; runs and figures then go to ``runs/<profile>-dry/`` and paper configs get the
# caps of ``rsdix/configs/dry_run.yaml`` (rsdix.config.load)
DRY_RUN_ENV = "RSDIX_DRY_RUN"
# what a dry run's tables (a `dry_run` column on every row), figures and executed notebooks say
DRY_RUN_MARK = "dry run: random weights, stand-in data"
# where relative weights paths of configs (``checkpoints/RemoteCLIP-ViT-B-32.pt``) are resolved
WEIGHTS_ROOT_ENV = "RSDIX_WEIGHTS_ROOT"


def is_dry_run() -> bool:
    return os.environ.get(DRY_RUN_ENV, "") not in ("", "0")


def weights_root() -> Path:
    """``$RSDIX_WEIGHTS_ROOT`` (a dry run's stand-in folder), else the repository root."""
    return _env_path(WEIGHTS_ROOT_ENV, repo_root())


def run_name(method: str, seed: int, fraction: float | None = None) -> str:
    """The name of a training run, under ``RunDirs.run/train`` and ``RunDirs.models``: ``rsdix_s0``,
    and with a data share ``infonce_frac0.1_s1`` (the efficiency study names every run by its share,
    ``infonce_frac1_s0`` at 100%). The later notebooks and the palette (:func:`rsdix.viz.model_key`)
    read it back."""
    return f"{method}_s{seed}" if fraction is None else f"{method}_frac{fraction:g}_s{seed}"


class RunDirs:
    """Where one profile's run writes: ``run`` (checkpoints, logs, caches, results table),
    ``figures`` (tables CSV+markdown and PNG figures), ``models`` (saved models), ``results``
    (the tidy results CSV that later notebooks read back).

    The cpu and paper profiles write figures to ``figures/<profile>/``; the smoke profile
    (CI) writes everything under ``runs/smoke/`` so it never overwrites real results.
    """

    def __init__(self, profile: str = "cpu", out_dir: str | os.PathLike | None = None,
                 run_dir: str | os.PathLike | None = None):
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {PROFILES}")
        self.profile = profile
        setup_logging()   # a notebook's first call: rsdix's log lines show (unless logging is set up)
        dry = is_dry_run()  # a dry run writes under runs/<profile>-dry/ only, never figures/<profile>
        self.run = Path(run_dir) if run_dir else runs_dir() / (f"{profile}-dry" if dry else profile)
        if out_dir:
            self.figures = Path(out_dir)
        elif profile == "smoke" or dry:
            self.figures = self.run / "figures"
        else:
            self.figures = figures_dir() / profile
        self.models = self.run / "models"
        self.results = self.run / "results.csv"
        for path in (self.run, self.figures, self.models):
            path.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"RunDirs(profile={self.profile!r}, run={self.run}, figures={self.figures})"
