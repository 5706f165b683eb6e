"""Speed and memory benchmarks (``rsdix bench``, ``make bench``).

Each module here has ``run(quick) -> list[dict]``; rows are ``{"benchmark", "metric", "value",
"unit", "goal", "ok", ...}``. Targets are measured as ratios within one run, never as timed
tests, and only in full mode: ``quick`` runs smaller sizes (the whole ``rsdix bench --quick`` in
about a minute) that the goals were not set for, so :func:`run_all` marks every row with its
``mode`` (``full`` or ``quick``) and clears ``goal`` and ``ok`` of quick rows, and leaves out the
modules of :data:`CUDA_ONLY_QUICK` without a CUDA device (a row says so); a quick run writes to
``runs/bench-quick`` unless told otherwise, never over the committed full-mode page.
:func:`run_all` runs every module and writes the CSV (every row and field) and a markdown page with
one small table per benchmark (:func:`bench_markdown`: what, value, goal, ok, mode, machine (the
CPU model too), and the benchmark's own measurements under it); with ``only`` the other modules'
rows already in the table are kept. :func:`regenerate_markdown` rewrites the page from the CSV.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import textwrap
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

from rsdix.log import get_logger
from rsdix.models import load_model, lock_text_trunk
from rsdix.reporting.summary import environment
from rsdix.utils import atomic_path, atomic_write_text

log = get_logger(__name__)

ENV_COLUMNS = ("torch", "cpu_count", "cpu_model", "device", "git_commit", "time_utc")
ROW_COLUMNS = ("module", "benchmark", "metric", "value", "unit", "goal", "ok", "mode")
FULL_OUT, QUICK_OUT = "figures/bench", "runs/bench-quick"   # run_all's default output prefix per mode
# modules whose quick run on a CPU takes minutes (a ViT-B/32 stand-in in three processes): without a
# CUDA device `rsdix bench --quick` leaves them out with a row saying so (their own __main__ runs them)
CUDA_ONLY_QUICK = ("gpu",)


def _number(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.0f}" if abs(value) >= 1000 or value.is_integer() else f"{value:.4g}"
    return "" if value is None else str(value)


def _given(row: dict, key: str) -> bool:
    value = row.get(key)
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""


def machine(row: dict) -> str:
    """Where a row was measured: device, CPU model and cores, torch (a row written before the CPU
    model was recorded says so)."""
    model = str(row["cpu_model"]) if _given(row, "cpu_model") else "CPU model not recorded"
    parts = [str(row["device"]) if _given(row, "device") else "",
             f"{model}, {_number(row['cpu_count'])} cores" if _given(row, "cpu_count") else "",
             f"torch {row['torch']}" if _given(row, "torch") else ""]
    return ", ".join(p for p in parts if p)


def bench_markdown(table: pd.DataFrame, csv_name: str = "bench.csv") -> str:
    """One small table per benchmark: what (the metric, or the stage of a staged benchmark), value
    (with its unit), goal, ok, machine; the benchmark's own measurements (the fields only its rows
    fill) and the commit and time follow as one line."""
    intro = (f"Generated from [`{csv_name}`]({csv_name}) (every row and field). Each target is a ratio measured "
             "within one run in full mode (`goal`, `ok`); rows without a goal are measurements, and quick-mode "
             "rows (`rsdix bench --quick`: smaller sizes) are judged against no goal. Each row names the machine "
             "it was measured on: a speed-up holds there, not on another CPU.")
    lines = ["# Benchmarks (`make bench`)", "", *textwrap.wrap(intro, 100, break_long_words=False), ""]
    records = table.to_dict("records")
    for module, benchmark in dict.fromkeys((r.get("module"), r["benchmark"]) for r in records):
        rows = [r for r in records if r.get("module") == module and r["benchmark"] == benchmark]
        lines += [f"## {benchmark}", "", "| what | value | goal | ok | mode | machine |", "|---|---|---|---|---|---|"]
        shown = set(ROW_COLUMNS) | set(ENV_COLUMNS)
        for r in rows:
            what = r["metric"] if _given(r, "metric") else (r.get("stage") if _given(r, "stage") else "")
            shown.add("stage" if not _given(r, "metric") else "metric")
            value = _number(r.get("value")) if _given(r, "value") else _number(r.get("seconds"))
            unit = r.get("unit") if _given(r, "unit") else ("s" if not _given(r, "value") and _given(r, "seconds")
                                                            else "")
            if not _given(r, "value"):
                shown.add("seconds")
            ok = "" if not _given(r, "ok") else ("yes" if str(r["ok"]).lower() in ("true", "1") else "**no**")
            mode = r.get("mode") if _given(r, "mode") else "full"
            lines.append(f"| {what} | {value} {unit} | {_number(r.get('goal'))} | {ok} | {mode} | {machine(r)} |"
                         .replace("  |", " |"))
        details = []
        for key in table.columns:
            if key in shown or not any(_given(r, key) for r in rows):
                continue
            values = list(dict.fromkeys(_number(r.get(key)) for r in rows if _given(r, key)))
            details.append(f"{key} {' / '.join(values)}")
        first = rows[0]
        where = [f"commit {first['git_commit']}" if _given(first, "git_commit") else "",
                 f"{first['time_utc']} UTC" if _given(first, "time_utc") else ""]
        lines += ["", "; ".join([", ".join(details)] * bool(details) + [", ".join(w for w in where if w)]), ""]
    return "\n".join(lines)


def write_bench(table: pd.DataFrame, out: str | Path) -> tuple[Path, Path]:
    """``<out>.csv`` (every row and field) and ``<out>.md`` (:func:`bench_markdown`)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    csv, md = out.with_suffix(".csv"), out.with_suffix(".md")
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_text(md, bench_markdown(table, csv.name) + "\n")
    return csv, md


def regenerate_markdown(out: str | Path = "figures/bench") -> Path:
    """Rewrite ``<out>.md`` from ``<out>.csv`` without running a benchmark."""
    csv = Path(out).with_suffix(".csv")
    md = Path(out).with_suffix(".md")
    atomic_write_text(md, bench_markdown(pd.read_csv(csv), csv.name) + "\n")
    return md


def bench_model(quick: bool, quick_batch: int, full_batch: int = 64):
    """The benchmarks' model and batch size, seeded: ``rsdix-tiny`` when ``quick``, else
    ``rsdix-cnn`` with its pretrained text trunk locked (as notebook 03 trains it)."""
    torch.manual_seed(0)
    if quick:
        return load_model("rsdix-tiny"), quick_batch
    bundle = load_model("rsdix-cnn")
    lock_text_trunk(bundle.model)
    return bundle, full_batch


def modules() -> list[str]:
    """The benchmark modules (every public module of this package)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def run_all(quick: bool = False, only: list[str] | None = None, out: str | None = None) -> int:
    """Run the benchmark modules (``only``: these), write ``<out>.csv`` and ``<out>.md`` (default
    :data:`FULL_OUT`, or :data:`QUICK_OUT` when ``quick``); every row carries its ``mode``, and quick
    rows no ``goal`` or ``ok``. 0 when every module ran, 1 when one failed (the others still run and
    are written)."""
    out = out or (QUICK_OUT if quick else FULL_OUT)
    rows, failed = [], []
    for name in modules():
        if only and name not in only:
            continue
        if quick and name in CUDA_ONLY_QUICK and not torch.cuda.is_available():
            rows.append({"module": name, "benchmark": name, "metric": f"not run: --quick without a CUDA device "
                         f"(python -m rsdix.benchmarks.{name} runs it on the CPU, in minutes)", "value": math.nan,
                         "unit": "", "goal": None, "ok": None, "mode": "quick"})
            continue
        log.info(f"{name} ...")
        start = time.time()
        try:
            for row in importlib.import_module(f"rsdix.benchmarks.{name}").run(quick=quick):
                row = {"module": name, **row, "mode": "quick" if quick else "full"}
                if quick:   # the goals are set for the full sizes: a quick row is a measurement only
                    row.update(goal=None, ok=None)
                rows.append(row)
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            failed.append(name)
            traceback.print_exc()
        log.info(f"{name} done in {time.time() - start:.0f}s")
    out = Path(out)
    table = pd.DataFrame(rows)
    env = environment()
    for key in ENV_COLUMNS:
        table[key] = env.get(key)
    csv = out.with_suffix(".csv")
    if only and csv.exists():  # a partial run replaces its modules' rows, keeps the others
        previous = pd.read_csv(csv)
        table = pd.concat([previous[~previous["module"].isin(table["module"].unique())], table],
                          ignore_index=True).sort_values("module", kind="stable")
    csv, md = write_bench(table, out)
    print(md.read_text())     # the page itself: one small table per benchmark
    log.info(f"written {out}.csv and {out}.md")
    if failed:
        log.error(f"FAILED modules: {failed}")
        return 1
    return 0
