"""Tidy results: one row per model x dataset x task x metric x seed.

Every number a notebook shows comes from rows written by code through
:func:`append_results`, read back with :func:`read_results`, and compared with the
published numbers (``rsdix/data/reference/reference_numbers.csv``) through
:func:`with_reference`. Tables are written as CSV + markdown with :func:`write_table`.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from rsdix.errors import DataError
from rsdix.utils import atomic_path

COLUMNS = ["model", "dataset", "task", "metric", "value", "seed", "split", "n", "ci_low", "ci_high",
           "profile", "note"]
REFERENCE_CSV = Path(__file__).resolve().parent / "data" / "reference" / "reference_numbers.csv"


@dataclass
class Result:
    model: str
    dataset: str
    task: str
    metric: str
    value: float
    seed: int | None = None
    split: str = "test"
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    profile: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


def _rows_to_frame(rows: Iterable[Result | dict]) -> pd.DataFrame:
    records = []
    for row in rows:
        rec = asdict(row) if isinstance(row, Result) else dict(row)
        extra = rec.pop("extra", None) or {}
        rec.update(extra)
        value = rec.get("value")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise DataError(f"{rec.get('model')}/{rec.get('dataset')}/{rec.get('metric')}",
                            "result value is missing or NaN; refusing to record it")
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in frame:
            frame[col] = None
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


def append_results(rows: Iterable[Result | dict], path: str | os.PathLike,
                   replace: bool = True) -> pd.DataFrame:
    """Append rows to the CSV results table at ``path`` (created if absent).

    With ``replace`` (default), earlier rows with the same (model, dataset, task,
    metric, seed, split) are replaced, so rerunning a notebook does not duplicate rows.
    Returns the whole table.
    """
    path = Path(path)
    new = _rows_to_frame(rows)
    if path.exists() and path.stat().st_size > 0:
        old = pd.read_csv(path)
        if replace and len(old):
            key = ["model", "dataset", "task", "metric", "seed", "split"]
            old_keys = old[key].astype(str).agg("|".join, axis=1)
            new_keys = set(new[key].astype(str).agg("|".join, axis=1))
            old = old[~old_keys.isin(new_keys)]
        table = pd.concat([old, new], ignore_index=True)
    else:
        table = new
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return table


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "results table not found: run the notebook that writes it first")
    return pd.read_csv(path)


def reference_numbers(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Published numbers of the three papers (public numbers, not data)."""
    return pd.read_csv(path or REFERENCE_CSV)


def with_reference(results: pd.DataFrame, on=("dataset", "task", "metric"), reference=None,
                   ref_model: str | None = None, ref_backbone: str | None = None) -> pd.DataFrame:
    """Join our rows with published rows on dataset/task/metric, side by side.

    The reference frame's ``model``/``backbone``/``value`` become ``ref_model``,
    ``ref_backbone``, ``published``; filter them with ``ref_model``/``ref_backbone``.
    """
    ref = reference_numbers() if reference is None else reference
    if ref_model is not None:
        ref = ref[ref["model"] == ref_model]
    if ref_backbone is not None:
        ref = ref[ref["backbone"] == ref_backbone]
    ref = ref.rename(columns={"model": "ref_model", "backbone": "ref_backbone", "value": "published",
                              "source": "ref_source", "note": "ref_note"})
    return results.merge(ref, on=list(on), how="left")


def write_table(frame: pd.DataFrame, name: str, out_dir: str | os.PathLike,
                floatfmt: str = ".4g") -> tuple[Path, Path]:
    """Write ``frame`` as ``<name>.csv`` and ``<name>.md`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False)
    shown = frame.copy()
    for col in shown.columns:   # integer counts stored as floats (NaN elsewhere) print as integers
        values = shown[col]
        if values.dtype.kind == "f" and values.notna().any() and (values.dropna() % 1 == 0).all() \
                and values.abs().max() < 1e12:
            shown[col] = values.astype("Int64")
    with atomic_path(md_path) as tmp:
        tmp.write_text(shown.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv_path, md_path


def method_name(model: str) -> str:
    """A run name without its seed (``rsdix_frac0.1_s2`` -> ``rsdix_frac0.1``)."""
    import re

    return re.sub(r"_s\d+(?=$|[-_])", "", str(model))


def summarise(results: pd.DataFrame, by=("model", "dataset", "task", "metric", "split")) -> pd.DataFrame:
    """Mean, std and count over seeds, with a Student-t 95% CI of the mean (NaN for one seed).

    Run names that differ only in their seed suffix (``_s0``, ``_s1``) are pooled.
    """
    from scipy import stats

    results = results.assign(model=results["model"].map(method_name))
    if "split" in by:
        results = results.assign(split=results["split"].fillna(""))
    grouped = results.groupby(list(by))["value"]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    tcrit = stats.t.ppf(0.975, (out["count"] - 1).clip(lower=1))
    half = tcrit * out["std"] / out["count"].clip(lower=1) ** 0.5
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out
