"""Where things live: data root, caches, run folders, figures.

Every location can be set explicitly, through an environment variable, or left to
the default. Nothing here creates data; it only resolves paths.

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
