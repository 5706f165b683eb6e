"""Shared fixtures. Real-data tests use the data root (``RSDIX_DATA_ROOT`` or ``../shared/data``)
and skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RSDIX_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1))))
except ImportError:  # pragma: no cover
    pass


def _data_root() -> Path | None:
    from rsdix.paths import data_root

    try:
        return data_root(required=True)
    except Exception:  # noqa: BLE001
        return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("real data root not found: set RSDIX_DATA_ROOT or place the data at ../shared/data")
    return root


def need(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.exists():
        pytest.skip(f"{relative} not present under the data root {root}")
    return path


@pytest.fixture(scope="session")
def ucm_root(data_root) -> Path:
    return need(data_root, "ucm_captions/dataset_ucm.json").parent


@pytest.fixture(scope="session")
def whu_root(data_root) -> Path:
    return need(data_root, "whu_rs19")


@pytest.fixture(scope="session")
def eurosat_ms_root(data_root) -> Path:
    return need(data_root, "sentinel2/eurosat_ms")


@pytest.fixture(scope="session")
def tiny_bundle():
    from rsdix.models import load_model

    return load_model("rsdix-tiny")


@pytest.fixture(autouse=True)
def _warn_once_forgets_between_tests():
    """rsdix.log.warn_once warns once per process; each test starts afresh."""
    from rsdix.log import forget_warned   # the package is importable once conftest has run
    forget_warned()
    yield
