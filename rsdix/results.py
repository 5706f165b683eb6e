"""Tidy results: one row per model x dataset x task x metric x seed.

Every number a notebook shows comes from rows written by code through
:func:`append_results`, read back with :func:`read_results`, and compared with the
published numbers (``rsdix/data/reference/reference_numbers.csv``) through
:func:`with_reference`. Tables are written as CSV + markdown with :func:`write_table`.

A row names the headline section of ``RESULTS.md`` that shows it (``section``, its title): the
stage that writes the row declares it, and the report reads it back from the table
(:func:`declared_sections`), so the report knows no stage and needs no import of one.
"""
from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from filelock import FileLock, Timeout
from scipy import stats

from rsdix.data.registry import REGISTRY
from rsdix.errors import DataError, require_finite
from rsdix.utils import atomic_path, remove_stale_temps

COLUMNS = ["model", "dataset", "task", "metric", "value", "seed", "split", "n", "ci_low", "ci_high",
           "profile", "note", "section", "source"]
# `make reproduce` names the notebook run writing rows (``<notebook>@<start time>``) in this
# environment variable; rows carry it as ``source``, so a notebook's rows from an earlier run that
# it no longer writes can be dropped after it succeeds (:func:`drop_stale_rows`).
SOURCE_ENV = "RSDIX_RESULTS_SOURCE"
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
    section: str = ""   # title of the RESULTS.md headline section showing this row; blank: none
    manifest: str = ""  # hash of the evaluated files (rsdix.evaluation.split_manifest); blank: not recorded
    extra: dict = field(default_factory=dict)


def _rows_to_frame(rows: Iterable[Result | dict]) -> pd.DataFrame:
    records = []
    for row in rows:
        rec = asdict(row) if isinstance(row, Result) else dict(row)
        extra = rec.pop("extra", None) or {}
        rec.update(extra)
        rec.setdefault("source", os.environ.get(SOURCE_ENV, ""))
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


LOCK_SECONDS = 600


@contextmanager
def table_lock(path: Path):
    """Hold ``.<name>.lock`` beside the table while it is read, changed and written, so appends of
    several processes keep every row; stale temporary files of killed writes in its folder go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    try:
        with FileLock(str(lock), timeout=LOCK_SECONDS):
            remove_stale_temps(path.parent)
            yield
    except Timeout as exc:
        raise DataError(path, f"results table locked by another process for {LOCK_SECONDS} s "
                              f"(lock file {lock}; delete it if no rsdix process runs)") from exc


ROW_KEY = ["model", "dataset", "task", "metric", "seed", "split"]


def _key_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))   # a seed read back from CSV as 0.0 (its column has blanks) is seed 0
    return str(value)


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    """One string per row from :data:`ROW_KEY`, the same for a row before and after a CSV round
    trip (blank = None = NaN; 0.0 = 0)."""
    return frame[ROW_KEY].apply(lambda row: "|".join(_key_text(v) for v in row), axis=1)


def append_results(rows: Iterable[Result | dict], path: str | os.PathLike,
                   replace: bool = True) -> pd.DataFrame:
    """Append rows to the CSV results table at ``path`` (created if absent).

    With ``replace`` (default), earlier rows with the same (model, dataset, task,
    metric, seed, split) are replaced, so rerunning a notebook does not duplicate rows.
    Returns the whole table.
    """
    path = Path(path)
    new = _rows_to_frame(rows)
    with table_lock(path):
        if path.exists() and path.stat().st_size > 0:
            old = pd.read_csv(path)
            if replace and len(old):
                old_keys = _row_keys(old)
                old = old[~old_keys.isin(set(_row_keys(new)))]
            table = pd.concat([old, new], ignore_index=True)
        else:
            table = new
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    return table


def drop_stale_rows(path: str | os.PathLike, source: str) -> int:
    """Drop the rows an earlier run of the same notebook wrote (``source`` ``<notebook>@<run>``:
    rows of ``<notebook>@<another run>``); rows of other notebooks and of this run stay.
    Returns how many rows were dropped."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with table_lock(path):
        table = pd.read_csv(path)
        if "source" not in table:
            return 0
        notebook = source.split("@")[0] + "@"
        src = table["source"].map(_key_text)   # blank (float NaN) for rows written outside make reproduce
        stale = src.str.startswith(notebook) & (src != source)
        if stale.any():
            with atomic_path(path) as tmp:
                table[~stale].to_csv(tmp, index=False)
    return int(stale.sum())


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "results table not found: run the notebook that writes it first")
    return pd.read_csv(path)


def reference_numbers(path: str | os.PathLike | None = None, aliases: bool = True) -> pd.DataFrame:
    """Published numbers of the three papers (public numbers, not data).

    With ``aliases``, a registry dataset compared with another one's published numbers
    (``DatasetInfo.published_as``: EuroSAT-MS rendered to RGB vs the papers' EuroSAT RGB) gets a
    copy of those rows under its own title, noted as such and with ``published_on`` naming the
    dataset the number was published on (blank on the papers' own rows)."""
    ref = pd.read_csv(path or REFERENCE_CSV)
    if not aliases:
        return ref
    copies = []
    for info in REGISTRY.values():
        rows = ref[ref["dataset"] == info.published_as] if info.published_as else ref.iloc[:0]
        if len(rows):
            note = f"published on {info.published_as}"
            copies.append(rows.assign(dataset=info.title, published_on=info.published_as, note=[
                f"{note}; {n}" if isinstance(n, str) and n else note for n in rows["note"]]))
    return pd.concat([ref, *copies], ignore_index=True) if copies else ref


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
    return re.sub(r"_s\d+(?=$|[-_])", "", str(model))


def summarise(results: pd.DataFrame, by=("model", "dataset", "task", "metric", "split"),
              keep: Sequence[str] = ()) -> pd.DataFrame:
    """Mean, std and count over seeds, with a Student-t 95% CI of the mean; for a single seed,
    the row's own CI (``ci_low``/``ci_high``, e.g. a bootstrap interval) when it has one.

    Run names that differ only in their seed suffix (``_s0``, ``_s1``) are pooled. Columns in
    ``keep`` (e.g. ``section``) come along: the first non-blank value of each group. A NaN or
    infinite ``value`` is an error naming how many rows (a mean/CI over it would be wrong).
    """
    require_finite(results["value"].to_numpy(dtype=float), "results summary", "result values")
    results = results.assign(model=results["model"].map(method_name),
                             **{c: results[c].mask(results[c].eq("")) for c in keep if c in results})
    if "split" in by:
        results = results.assign(split=results["split"].fillna(""))
    grouped = results.groupby(list(by), dropna=False)
    out = grouped["value"].agg(["mean", "std", "count"]).reset_index()
    tcrit = stats.t.ppf(0.975, (out["count"] - 1).clip(lower=1))
    half = tcrit * out["std"] / out["count"].clip(lower=1) ** 0.5
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    # one seed: keep the interval the notebook computed for that row (e.g. a bootstrap CI), if any
    if {"ci_low", "ci_high"} <= set(results.columns):
        own = grouped[["ci_low", "ci_high"]].first().reset_index(drop=True)
        single = out["count"] == 1
        out.loc[single, "ci_low"] = own.loc[single, "ci_low"].astype(float)
        out.loc[single, "ci_high"] = own.loc[single, "ci_high"].astype(float)
    for col in keep:
        out[col] = grouped[col].first().reset_index(drop=True) if col in results else None
    return out


def declared_sections(results: pd.DataFrame) -> list[str]:
    """The headline sections the rows of a results table name (``section``), in the order they
    first appear."""
    if "section" not in results:
        return []
    return list(dict.fromkeys(s for s in results["section"] if isinstance(s, str) and s))
