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

import csv
import math
import numbers
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from scipy import stats

from rsdix.data.registry import REGISTRY
from rsdix.errors import DataError, require_finite
from rsdix.paths import DRY_RUN_MARK, is_dry_run
from rsdix.utils import atomic_path, remove_stale_temps

COLUMNS = ["model", "dataset", "task", "metric", "value", "seed", "split", "n", "ci_low", "ci_high",
           "profile", "note", "section", "source"]
# `make reproduce` names the notebook run writing rows (``<notebook>@<start time>``) in this
# environment variable; rows carry it as ``source``, so a notebook's rows from an earlier run that
# it no longer writes can be dropped after it succeeds (:func:`drop_stale_rows`).
SOURCE_ENV = "RSDIX_RESULTS_SOURCE"
KEY_TEXT = ("model", "dataset", "task", "metric")      # non-blank text in every row
TEXT_COLUMNS = KEY_TEXT + ("split", "profile", "note", "section", "source")
INTEGER_COLUMNS = ("seed", "n")                       # integers or blank
NUMBER_COLUMNS = ("ci_low", "ci_high")                # finite numbers or blank ("value": finite, never blank)
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
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
        if is_dry_run():   # every row of a dry run says so (docs/paper.md section 7)
            rec["dry_run"] = DRY_RUN_MARK
        records.append(_checked_row(rec))
    frame = pd.DataFrame.from_records(records)
    for col in COLUMNS:
        if col not in frame:
            frame[col] = None
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]


MAX_EXACT_INTEGER = 2 ** 53   # the largest integer a float64 (a CSV column with blanks) holds exactly


def _checked_row(rec: dict) -> dict:
    """A row as it may be written: what :func:`read_results` would refuse is refused here, naming
    the row (blank key fields, a value that is not a finite number, a seed that is not an integer,
    text the CSV cannot hold)."""
    where = f"{rec.get('model')}/{rec.get('dataset')}/{rec.get('metric')}"
    value = rec.get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(where, "result value is missing or NaN; refusing to record it")
    if not _is_number(value) or not math.isfinite(float(value)):
        raise DataError(where, f"result value {value!r} is not a finite number; refusing to record it")
    rec["value"] = float(value)
    for col in KEY_TEXT:
        if not isinstance(rec.get(col), str) or not rec[col].strip():
            raise DataError(where, f"result field {col!r} is {rec.get(col)!r}: a non-blank text is needed")
    for col in INTEGER_COLUMNS + NUMBER_COLUMNS:
        v = rec.get(col)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if not _is_number(v) or not math.isfinite(float(v)) or (col in INTEGER_COLUMNS and not float(v).is_integer()):
            kind = "an integer" if col in INTEGER_COLUMNS else "a finite number"
            raise DataError(where, f"result field {col!r} is {v!r}, not {kind}")
        if col in INTEGER_COLUMNS and abs(v) > MAX_EXACT_INTEGER:
            raise DataError(where, f"result field {col!r} is {v!r}: beyond 2**53 it would not read back exactly "
                                   "(pandas reads a column with blanks as floats)")
    for col, v in rec.items():
        if isinstance(v, str) and (("\x00" in v or "\r" in v) or not _utf8(v)):
            raise DataError(where, f"result field {col!r} holds a NUL, a carriage return or text that is not "
                                   f"UTF-8 ({v[:40]!r}): the table could not be read back")
    return rec


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


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


ROW_KEY = ["model", "dataset", "task", "metric", "seed", "split", "protocol"]   # protocol: blank where absent


def _key_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))   # a seed read back from CSV as 0.0 (its column has blanks) is seed 0
    return str(value)


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    """One string per row from :data:`ROW_KEY`, the same for a row before and after a CSV round
    trip (blank = None = NaN; 0.0 = 0)."""
    return frame.reindex(columns=ROW_KEY).apply(lambda row: "|".join(_key_text(v) for v in row), axis=1)


def append_results(rows: Iterable[Result | dict], path: str | os.PathLike,
                   replace: bool = True) -> pd.DataFrame:
    """Append rows to the CSV results table at ``path`` (created if absent).

    With ``replace`` (default), earlier rows with the same (model, dataset, task,
    metric, seed, split, protocol) are replaced, so rerunning a notebook does not duplicate rows.
    A damaged table (:func:`check_table` finds a problem) is refused, naming the file and the
    line, and nothing is written. Returns the whole table.
    """
    path = Path(path)
    new = _rows_to_frame(rows)
    with table_lock(path):
        if path.exists() and path.stat().st_size > 0:
            old = _valid_frame(check_table(path), "refusing to append to it (nothing was written)")
            if replace and len(old):
                old_keys = _row_keys(old)
                old = old[~old_keys.isin(set(_row_keys(new)))]
            table = pd.concat([old, new], ignore_index=True) if len(old) else new
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
        table = _valid_frame(check_table(path), "refusing to change it (nothing was written)")
        if "source" not in table:
            return 0
        notebook = source.split("@")[0] + "@"
        src = table["source"].map(_key_text)   # blank (float NaN) for rows written outside make reproduce
        stale = src.str.startswith(notebook) & (src != source)
        if stale.any():
            with atomic_path(path) as tmp:
                table[~stale].to_csv(tmp, index=False)
    return int(stale.sum())


def read_table(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """A CSV table other than the results table (a study's runs, curves, bootstrap draws) read with
    ``pd.read_csv(path, **kwargs)``: a damaged or undecodable file is one DataError naming it."""
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(path, f"not a readable CSV table ({exc.__class__.__name__}: {reason})") from None


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """The results table at ``path``, checked (:func:`check_table`): a damaged file is one
    DataError naming the file and the first bad line."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "results table not found: run the notebook that writes it first")
    return _valid_frame(check_table(path))


# ---------------------------------------------------------------- the table's integrity

@dataclass
class TableCheck:
    """What :func:`check_table` found in a results table: its header, the lines of each valid row
    (``rows``: first and last line, 1-based) and each problem (``problems``: line, what is wrong)."""
    path: Path
    header: list[str] | None
    lines: list[str]
    rows: list[tuple[int, int, list[str]]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    header_at: int | None = None   # the header's line (0-based): damaged lines may stand before it

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def usable_header(self) -> bool:
        return self.header is not None

    def summary(self, shown: int = 20) -> str:
        head = f"{self.path}: {len(self.rows)} valid row(s)"
        if self.ok:
            return head + ", no problem found"
        lines = [head + f", {len(self.problems)} damaged line(s):"]
        lines += [f"  line {n}: {problem}" for n, problem in self.problems[:shown]]
        if len(self.problems) > shown:
            lines.append(f"  ... and {len(self.problems) - shown} more")
        return "\n".join(lines)

    def frame(self) -> pd.DataFrame:
        """The valid rows as a frame (text columns as text, blank = NaN; numbers as numbers)."""
        columns = {c: [fields[i] for _, _, fields in self.rows] for i, c in enumerate(self.header or [])}
        return pd.DataFrame({c: _column(c, values) for c, values in columns.items()},
                            columns=list(self.header or []))


def check_table(path: str | os.PathLike) -> TableCheck:
    """Check a results table line by line: UTF-8 text, no NUL bytes, a header with the columns
    ``model, dataset, task, metric, value``, as many fields in each row as in the header, a last line
    that is not cut short (every write ends a row with a line end), non-blank model / dataset / task
    / metric, a finite ``value``, integer ``seed`` and ``n`` and finite ``ci_low`` / ``ci_high`` where
    they are given. A damaged row spanning several lines (an unmatched quote) counts as its first line,
    and reading goes on at the next."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    check = TableCheck(path, None, lines)
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        fields, end, problem = _record(lines, i)
        if problem is None and check.header is None:
            problem = _header_problem(fields)
            if problem is None:
                check.header, check.header_at = fields, i
                i = end + 1
                continue
            check.problems.append((i + 1, problem))
            return check   # without a header no row can be read
        if problem is None:
            problem = _row_problem(fields, check.header)
        if problem is None and not lines[end].endswith("\n"):
            problem = "cut short: the file ends inside this row (no line end; a write was interrupted)"
        if problem is None:
            check.rows.append((i + 1, end + 1, fields))
            i = end + 1
        else:
            check.problems.append((i + 1, problem))
            i += 1
    if check.header is None:
        check.problems.append((1, "empty: no header line"))
    return check


def _record(lines: list[str], i: int) -> tuple[list[str], int, str | None]:
    """The CSV record starting at line ``i``: (fields, index of its last line, problem or None)."""
    if "\x00" in lines[i]:
        return [], i, "NUL bytes (a write cut short by a crash, or a disk that lost data)"
    if any("\udc80" <= ch <= "\udcff" for ch in lines[i]):
        return [], i, "not UTF-8 text"
    reader = csv.reader(lines[k] for k in range(i, len(lines)))
    try:
        fields = next(reader)
    except csv.Error as exc:
        return [], i, f"not CSV ({exc})"
    end = i + reader.line_num - 1
    if end > i and any("\x00" in line or any("\udc80" <= ch <= "\udcff" for ch in line)
                       for line in lines[i + 1:end + 1]):
        return fields, end, "a quoted field runs into damaged lines"
    return fields, end, None


def _header_problem(fields: list[str]) -> str | None:
    missing = [c for c in KEY_TEXT + ("value",) if c not in fields]
    doubled = sorted({c for c in fields if fields.count(c) > 1})
    if missing or doubled or any(not c for c in fields):
        what = (f"missing column(s) {missing}" if missing else f"column(s) named twice {doubled}" if doubled
                else "a blank column name")
        return f"not a results table header ({what}): {','.join(fields)[:120]!r}"
    return None


def _row_problem(fields: list[str], header: list[str]) -> str | None:
    if len(fields) != len(header):
        return f"{len(fields)} field(s) where the header has {len(header)} (an unquoted comma, or a row cut short)"
    row = dict(zip(header, fields))
    for col in KEY_TEXT:
        if not row[col].strip():
            return f"blank {col!r}"
    if not NUMBER.fullmatch(row["value"]) or not math.isfinite(float(row["value"])):
        return f"'value' is {row['value'][:40]!r}, not a finite number"
    for col in INTEGER_COLUMNS + NUMBER_COLUMNS:
        v = row.get(col, "")
        if v and (not NUMBER.fullmatch(v) or not math.isfinite(float(v))
                  or (col in INTEGER_COLUMNS and not float(v).is_integer())):
            return f"{col!r} is {v[:40]!r}, not {'an integer' if col in INTEGER_COLUMNS else 'a finite number'}"
    return None


def _column(name: str, values: list[str]) -> pd.Series:
    """A column of the valid rows typed as :func:`pandas.read_csv` types it (blank = NaN; numbers
    as int64 or float64; text as text), except that text is never taken for a number or for NaN in
    the text columns (a model named ``1.0`` or ``NA`` stays that text)."""
    blank = [v == "" for v in values]
    numeric = name in INTEGER_COLUMNS + NUMBER_COLUMNS + ("value",) or (
        name not in TEXT_COLUMNS and all(b or NUMBER.fullmatch(v) for v, b in zip(values, blank)))
    if all(blank) or not numeric:
        return pd.Series([np.nan if b else v for v, b in zip(values, blank)],
                         dtype="float64" if all(blank) else None)
    if not any(blank) and all(re.fullmatch(r"[+-]?\d{1,18}", v) for v in values):
        return pd.Series([int(v) for v in values], dtype="int64")
    return pd.Series([math.nan if b else float(v) for v, b in zip(values, blank)], dtype="float64")


def _valid_frame(check: TableCheck, consequence: str = "") -> pd.DataFrame:
    """The table of a check without problems; else one DataError naming the file and the first bad line."""
    if check.ok:
        return check.frame()
    line, problem = check.problems[0]
    more = f" ({len(check.problems)} damaged lines in all)" if len(check.problems) > 1 else ""
    then = f"; {consequence}" if consequence else ""
    raise DataError(f"{check.path}:{line}", f"damaged results table: {problem}{more}{then}; "
                                            f"`rsdix results check {check.path}` lists the problems, "
                                            f"`rsdix results repair {check.path}` keeps the valid rows")


def repair_table(path: str | os.PathLike) -> tuple[TableCheck, Path | None]:
    """Keep the valid rows of a damaged results table (rewritten atomically, under the table's
    lock) and move the damaged lines, under the header, to ``<name>.rejected.csv`` beside it
    (``<name>.rejected-2.csv`` ... when that exists). Returns the check and the file the lines went
    to (None when nothing was wrong). A table without a usable header is a DataError: nothing to keep."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "results table not found")
    with table_lock(path):
        check = check_table(path)
        if check.ok:
            return check, None
        if not check.usable_header:
            line, problem = check.problems[0]
            raise DataError(f"{path}:{line}", f"{problem}: no header to keep rows under; nothing repaired "
                                              f"(delete the file, or restore it from a copy)")
        bad = {line for line, _ in check.problems}
        header_line = check.header_at   # not the first line: a damaged one may stand before it
        aside = path.with_name(f"{path.stem}.rejected.csv")
        n = 2
        while aside.exists():
            aside, n = path.with_name(f"{path.stem}.rejected-{n}.csv"), n + 1
        rejected = [check.lines[i - 1] for i in sorted(bad)]
        kept = [check.lines[i] for first, last, _ in check.rows for i in range(first - 1, last)]
        with atomic_path(aside) as tmp:
            tmp.write_bytes("".join([check.lines[header_line]] + [r if r.endswith("\n") else r + "\n"
                                                                  for r in rejected]).encode("utf-8", "surrogateescape"))
        with atomic_path(path) as tmp:
            tmp.write_bytes("".join([check.lines[header_line]] + kept).encode("utf-8", "surrogateescape"))
    return check, aside


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
    """Write ``frame`` as ``<name>.csv`` and ``<name>.md`` under ``out_dir``; in a dry run every
    row gets a first column ``dry_run`` saying so."""
    out_dir = Path(out_dir)
    if is_dry_run():
        frame = frame.drop(columns="dry_run", errors="ignore")
        frame.insert(0, "dry_run", DRY_RUN_MARK)
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

    Run names that differ only in their seed suffix (``_s0``, ``_s1``) are pooled; rows under
    different evaluation protocols (column ``protocol``, where present) never are. Columns in
    ``keep`` (e.g. ``section``) come along: the first non-blank value of each group. A NaN or
    infinite ``value`` is an error naming how many rows (a mean/CI over it would be wrong).
    """
    require_finite(results["value"].to_numpy(dtype=float), "results summary", "result values")
    results = results.assign(model=results["model"].map(method_name),
                             **{c: results[c].mask(results[c].eq("")) for c in keep if c in results})
    by = list(by) + (["protocol"] if "protocol" in results and "protocol" not in by else [])
    for col in ("split", "protocol"):
        if col in by:
            results = results.assign(**{col: results[col].fillna("")})
    grouped = results.groupby(by, dropna=False)
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
