"""Speed and memory benchmarks (``rsdix bench``, ``make bench``).

Each module here has ``run(quick) -> list[dict]``; rows are ``{"benchmark", "metric", "value",
"unit", "goal", "ok", ...}``. Targets are measured as ratios within one run, never as timed
tests. :func:`run_all` runs every module and writes one table (CSV + markdown); with ``only``
the other modules' rows already in the table are kept.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

from rsdix.models import load_model, lock_text_trunk
from rsdix.reporting.summary import environment
from rsdix.results import write_table

ENV_COLUMNS = ("torch", "cpu_count", "device", "git_commit", "time_utc")


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


def run_all(quick: bool = False, only: list[str] | None = None, out: str = "figures/bench") -> int:
    """Run the benchmark modules (``only``: these), write ``<out>.csv`` and ``<out>.md``;
    0 when every module ran, 1 when one failed (the others still run and are written)."""
    rows, failed = [], []
    for name in modules():
        if only and name not in only:
            continue
        print(f"[bench] {name} ...", flush=True)
        start = time.time()
        try:
            for row in importlib.import_module(f"rsdix.benchmarks.{name}").run(quick=quick):
                rows.append({"module": name, **row})
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            failed.append(name)
            traceback.print_exc()
        print(f"[bench] {name} done in {time.time() - start:.0f}s", flush=True)
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
    write_table(table, out.name, out.parent)
    print(table.drop(columns=list(ENV_COLUMNS), errors="ignore").to_string(index=False))
    print(f"[bench] written {out}.csv and {out}.md")
    if failed:
        print(f"[bench] FAILED modules: {failed}", file=sys.stderr)
        return 1
    return 0
