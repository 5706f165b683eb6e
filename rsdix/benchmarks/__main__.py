"""``python -m rsdix.benchmarks [--quick] [--only NAME] --out figures/bench``: run every benchmark
module and write one table (CSV + markdown); with ``--only`` the other modules' rows already in
the table are kept."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import pandas as pd

import rsdix.benchmarks as pkg
from rsdix.reporting.summary import environment
from rsdix.results import write_table


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--only", nargs="*", help="benchmark modules to run")
    parser.add_argument("--out", default="figures/bench", help="output prefix (writes PREFIX.csv and .md)")
    args = parser.parse_args(argv)
    rows, failed = [], []
    for name in modules():
        if args.only and name not in args.only:
            continue
        print(f"[bench] {name} ...", flush=True)
        start = time.time()
        try:
            for row in importlib.import_module(f"rsdix.benchmarks.{name}").run(quick=args.quick):
                rows.append({"module": name, **row})
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            failed.append(name)
            traceback.print_exc()
        print(f"[bench] {name} done in {time.time() - start:.0f}s", flush=True)
    out = Path(args.out)
    table = pd.DataFrame(rows)
    env = environment()
    for key in ("torch", "cpu_count", "device", "git_commit", "time_utc"):
        table[key] = env.get(key)
    csv = out.with_suffix(".csv")
    if args.only and csv.exists():  # a partial run replaces its modules' rows, keeps the others
        previous = pd.read_csv(csv)
        table = pd.concat([previous[~previous["module"].isin(table["module"].unique())], table],
                          ignore_index=True).sort_values("module", kind="stable")
    write_table(table, out.name, out.parent)
    print(table.drop(columns=["torch", "cpu_count", "device", "git_commit", "time_utc"],
                     errors="ignore").to_string(index=False))
    print(f"[bench] written {out}.csv and {out}.md")
    if failed:
        print(f"[bench] FAILED modules: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
