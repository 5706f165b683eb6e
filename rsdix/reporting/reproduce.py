"""Run the numbered notebooks through papermill: ``rsdix reproduce --profile cpu`` (``make reproduce``).

* notebooks ``notebooks/NN_*.ipynb`` run in order with parameters ``profile``, ``data_root``,
  ``seed``, ``out_dir``; executed copies (with outputs) go to ``runs/<profile>/notebooks/``;
* a notebook that fails stops the run with its name and the failing cell; the executed copies
  of the notebooks that finished (and the failing one, up to its failing cell) are kept;
* a notebook whose inputs did not change since its last successful run (its own source, the
  rsdix package and configs, its parameters, and every earlier notebook) is skipped, unless
  ``--force`` (which, without ``--only``, also starts the results table afresh, keeping the old
  one as ``results.previous.csv``); expensive steps inside notebooks (checkpoints, feature
  caches) skip on their own;
* result rows carry the notebook run that wrote them (``source``): after a notebook succeeds,
  the rows its earlier runs wrote and this run did not write again are dropped (a renamed model
  or a relabelled split leaves no stale row behind, with ``--only`` too);
* each notebook's output files are found by comparing the figures folder before and after it
  runs (:mod:`rsdix.reporting.provenance`); a file a rerun notebook no longer writes is deleted;
* at the end: the elapsed time per notebook, ``RESULTS.md`` (the run's headline numbers
  beside the published ones, with the environment) and ``MANIFEST.json`` (the commit, hashes of
  the code by folder, of the notebooks and of the data, and every output file with the notebook
  that wrote it and its sha256) in the profile's figures folder; :func:`status`
  (``rsdix reproduce --status``) says whether they are still what the code, configs and data give.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jupyter_client.kernelspec import KernelSpecManager

from rsdix.data.synthetic import root_or_synthetic
from rsdix.errors import ConfigError
from rsdix.log import get_logger
from rsdix.paths import RunDirs, data_root as resolve_data_root, repo_root
from rsdix.reporting import provenance
from rsdix.reporting.summary import RUNNER_FILES, write_results_summary
from rsdix.results import SOURCE_ENV, drop_stale_rows

log = get_logger(__name__)
# the kernel's own log (IPKernelApp): without this each notebook prints "Kernel is running over TCP
# without encryption" (localhost, HMAC-signed) and "KeyboardInterrupt caught in kernel" at shutdown
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


def notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


KERNEL = "rsdix"   # the notebooks' kernelspec; `make setup` installs it (this venv's python)


def kernel_name(kernel: str | None = None) -> str:
    """The kernel papermill starts: ``kernel`` when given, else the notebooks' own ``rsdix`` when it is
    installed, else ``python3`` (this interpreter's, e.g. after a bare ``pip install -e .``)."""
    if kernel:
        return kernel
    return KERNEL if KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


PACKAGE = Path(__file__).resolve().parents[1]   # the rsdix package: code, configs, reference tables


def package_hash(package: Path | None = None) -> str:
    """A hash of every file of the ``rsdix`` package a notebook can read (code, ``configs/**.yaml``,
    protocol and reference tables; not ``__pycache__``, not ``benchmarks/`` and ``cli/``, which no
    notebook imports: :func:`rsdix.reporting.provenance.input_files`), by relative path and content:
    any change to any stage or config makes every notebook's inputs change."""
    package = package or PACKAGE
    h = hashlib.sha1()
    for path in provenance.input_files(package):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def notebook_stamp(nb: Path, params: dict, upstream: str, package: str) -> str:
    """What a notebook's results depend on: its cells' source (not outputs or metadata), its
    parameters, the package hash (:func:`package_hash`) and ``upstream``, the stamp of the notebook
    before it (so a rerun of 01 reruns everything after it)."""
    h = hashlib.sha1()
    nb_json = json.loads(nb.read_text())
    for cell in nb_json.get("cells", []):       # source only: outputs and metadata do not count
        h.update("".join(cell.get("source", "")).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(package.encode())
    h.update(upstream.encode())
    return h.hexdigest()


def notebook_stamps(params: dict, folder: Path | None = None, package: Path | None = None) -> dict[str, str]:
    """The stamp of every numbered notebook in order (each chained to the one before it); ``package``
    defaults to the installed ``rsdix`` (:data:`PACKAGE`)."""
    code, upstream, out = package_hash(package or PACKAGE), "", {}
    for nb in notebooks(folder) if folder else notebooks():
        upstream = out[nb.name] = notebook_stamp(nb, params, upstream, code)
    return out


def run(profile: str = "cpu", data_root: str | None = None, seed: int = 0, force: bool = False,
        only: list[str] | None = None, out_dir: str | None = None, kernel: str | None = None,
        parameters: dict | None = None) -> pd.DataFrame:
    """Run the notebooks of ``profile`` through papermill (those whose stamp changed, or all with
    ``force``). ``parameters``: more notebook parameters (``rsdix reproduce -p extra_models=[...]``),
    part of each notebook's stamp; the four of every notebook are given by their own arguments."""
    import papermill as pm  # optional (the notebooks extra): loads only when notebooks run

    dirs = RunDirs(profile, out_dir)
    executed_dir = dirs.run / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    stamps_path = dirs.run / "reproduce_stamps.json"
    stamps = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
    # notebooks run with their own folder as working directory: relative paths are the caller's
    absolute = lambda p: str(Path(p).expanduser().resolve()) if p else None  # noqa: E731
    if profile == "smoke":   # a first run needs no data: a synthetic sample when the root is missing
        data_root = str(root_or_synthetic(data_root, dirs.run / "synthetic-data", "the smoke profile")[0])
    elif not resolve_data_root(data_root, required=False).is_dir():
        raise SystemExit(f"[reproduce] no data root at {resolve_data_root(data_root, required=False)}: set "
                         f"DATA_ROOT=... (make) or RSDIX_DATA_ROOT, or pass --data-root; `rsdix data plan --profile "
                         f"{profile}` lists the datasets this profile reads (`make smoke` runs without data)")
    params = {"profile": profile, "data_root": absolute(data_root), "seed": seed, "out_dir": absolute(out_dir)}
    taken = sorted(set(parameters or {}) & set(params))
    if taken:
        raise ConfigError(f"reproduce parameters {taken}: given by --profile/--data-root/--seed/--out-dir instead")
    params.update(parameters or {})
    times_path = dirs.run / "reproduce_times.csv"
    if force and not only and dirs.results.exists():
        # every notebook runs again and writes its rows again: start the results table afresh, so
        # rows whose key a code change retired (a renamed model, a relabelled split) do not linger
        dirs.results.replace(dirs.results.with_name("results.previous.csv"))
        log.info(f"--force: previous results table kept as {dirs.results.with_name('results.previous.csv')}")
    last = _last_runs(times_path)              # notebook -> (seconds, finished_utc) of its latest real run
    rows, total_start = [], time.time()
    current = notebook_stamps(params)          # every notebook's, so --only runs see the same upstream
    # what this run is made from, taken before any notebook runs (MANIFEST.json at the end)
    started = provenance.git_commit()
    root = params["data_root"] or str(resolve_data_root(None, required=False))
    made_from = provenance.inputs(notebooks(), root, PACKAGE)
    previous = provenance.read_manifest(dirs.figures) or {}   # its outputs: files an earlier run generated
    written_now: set[str] = set()
    for nb in notebooks():
        stamp = current[nb.name]
        if only and not any(nb.name.startswith(o) for o in only):
            if nb.name in last:
                rows.append({"notebook": nb.name, "status": "not run", "seconds": 0.0,
                             "last_run_s": last[nb.name][0], "last_run_utc": last[nb.name][1]})
            continue
        target = executed_dir / nb.name
        if not force and stamps.get(nb.name) == stamp and target.exists():
            log.info(f"{nb.name}: up to date, skipped")
            prev = last.get(nb.name, (float("nan"), ""))
            rows.append({"notebook": nb.name, "status": "skipped", "seconds": 0.0,
                         "last_run_s": prev[0], "last_run_utc": prev[1]})
            continue
        status = CellStatus(nb.name)
        log.info(f"{nb.name}: running (profile={profile}, {status.count(nb)} code cells)")
        start = time.time()
        source = f"{nb.name}@{datetime.now(timezone.utc).isoformat(timespec='microseconds')}"
        os.environ[SOURCE_ENV] = source    # the kernel inherits it: its result rows carry it
        before = provenance.snapshot(dirs.figures)
        try:
            pm.execute_notebook(str(nb), str(target), parameters=params, cwd=str(nb.parent),
                                kernel_name=kernel_name(kernel), progress_bar=False, log_output=False,
                                extra_arguments=KERNEL_ARGS, **status.hooks())
        except pm.PapermillExecutionError as exc:
            elapsed = time.time() - start
            stamps.pop(nb.name, None)
            stamps_path.write_text(json.dumps(stamps, indent=1))
            rows.append({"notebook": nb.name, "status": "failed", "seconds": elapsed})
            _print_times(rows, time.time() - total_start)
            raise SystemExit(f"[reproduce] FAILED: {failure_line(nb, target, exc)}; "
                             f"executed copy with outputs: {target}")
        finally:
            status.close()
            os.environ.pop(SOURCE_ENV, None)
        elapsed = time.time() - start
        dropped = drop_stale_rows(dirs.results, source)   # rows it wrote before and no longer writes
        if dropped:
            log.info(f"{nb.name}: dropped {dropped} result rows of its earlier runs that it no longer writes")
        files = provenance.written(before, provenance.snapshot(dirs.figures))
        written_now.update(files)
        removed = provenance.record_outputs(dirs.run, dirs.figures, nb.name, files)
        if removed:
            log.info(f"{nb.name}: deleted {len(removed)} files of its earlier runs that it no longer writes: "
                     + ", ".join(removed))
        stamps[nb.name] = stamp
        stamps_path.write_text(json.dumps(stamps, indent=1))
        rows.append({"notebook": nb.name, "status": "ran", "seconds": elapsed, "last_run_s": elapsed,
                     "last_run_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())})
        log.info(f"{nb.name}: done in {elapsed:.0f}s")
    times = pd.DataFrame(rows)
    total = time.time() - total_start
    _print_times(rows, total)
    times.to_csv(times_path, index=False)
    if rows and all(row["status"] == "ran" for row in rows):
        # every notebook ran: an output of the previous manifest that none wrote now is no code's any more
        gone = provenance.remove_unwritten(dirs.figures, previous, written_now | set(RUNNER_FILES))
        if gone:
            log.info(f"deleted {len(gone)} files of the previous manifest that no notebook writes any more: "
                     + ", ".join(gone))
    summary = write_results_summary(dirs, times)
    log.info(f"summary: {summary}")
    path = provenance.write_manifest(dirs.figures, dirs.run, profile, made_from, started, {**params, "data_root": root},
                                   RUNNER_FILES)
    unknown = [f for f, e in provenance.read_manifest(dirs.figures)["outputs"].items() if e["notebook"] == "unknown"]
    log.info(f"manifest: {path}" + (f"; files no notebook of this run folder wrote (delete them if no code makes "
                                    f"them): {', '.join(unknown)}" if unknown else ""))
    return times


def status(profile: str = "cpu", data_root: str | None = None, out_dir: str | None = None) -> tuple[bool, str]:
    """``rsdix reproduce --status``: whether the profile's figures folder is what the present code,
    configs, notebooks and data give (:func:`rsdix.reporting.provenance.status`)."""
    figures = Path(out_dir) if out_dir else RunDirs(profile).figures
    root = resolve_data_root(data_root, required=False)
    return provenance.status(figures, notebooks(), root, PACKAGE)


def failure_line(source_nb: Path, executed_nb: Path, exc) -> str:
    """One line naming a papermill failure: the notebook, the cell's position, the line that raised
    (from the traceback; the cell's first line when the traceback names none) and the exception's
    first message line, e.g. ``01_data.ipynb, cell 5, line 3 (`ds = load(...)`) raised DataError: ...``."""
    cell_no, first_line = _failing_cell(source_nb, executed_nb, exc.exec_count)
    line_no, text = raising_line(exc.source or "", exc.traceback or [], exc.exec_count)
    where = f"cell {cell_no}, line {line_no} (`{text}`)" if line_no else f"cell {cell_no} (`{first_line}`)"
    message = next((line.strip() for line in str(exc.evalue).splitlines() if line.strip()), "")
    return f"{source_nb.name}, {where} raised {exc.ename}: {message[:500]}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# a traceback frame in a cell: IPython >= 8 writes "Cell In[5], line 3"; older ones "<ipython-input-5-ab12>"
_CELL_FRAME = re.compile(r"^(?:Cell In\[(\d+)\], line (\d+)|.*<ipython-input-(\d+)-[0-9a-f]+>)")
_ARROW = re.compile(r"^-+>\s*(\d+)")


def raising_line(source: str, traceback: list[str], exec_count) -> tuple[int | None, str]:
    """The 1-based line of the failing cell's ``source`` that raised and its text: the last frame
    of the traceback in that cell (In[exec_count]); ``(None, "")`` when the traceback names none."""
    found = None
    for frame in traceback:
        lines = _ANSI.sub("", frame).splitlines()
        head = _CELL_FRAME.match(lines[0].strip()) if lines else None
        if not head:
            continue
        count, line = (head.group(1), head.group(2)) if head.group(1) else (head.group(3), None)
        if exec_count is not None and count != str(exec_count):
            continue   # a function defined in another cell
        if line is None:
            line = next((m.group(1) for m in map(_ARROW.match, lines[1:]) if m), None)
        if line is not None:
            found = int(line)
    code = source.splitlines()
    if found is None or not 1 <= found <= len(code):
        return None, ""
    return found, code[found - 1].strip()[:80]


def _failing_cell(source_nb: Path, executed_nb: Path, exec_count) -> tuple[int | str, str]:
    """The failing cell's 1-based position in the source notebook and its first line."""
    try:
        executed = json.loads(executed_nb.read_text())
        failing = next(c for c in executed["cells"]
                       if c["cell_type"] == "code" and c.get("execution_count") == exec_count)
        text = "".join(failing["source"])
        source_cells = json.loads(source_nb.read_text())["cells"]
        for i, cell in enumerate(source_cells, start=1):
            if "".join(cell.get("source", "")) == text:
                return i, text.strip().splitlines()[0][:80] if text.strip() else ""
    except (OSError, ValueError, StopIteration, KeyError):
        pass
    return f"#{exec_count} (execution count)", ""


def _last_runs(path: Path) -> dict:
    """From a previous ``reproduce_times.csv``: each notebook's latest real run (seconds, UTC)."""
    if not path.exists():
        return {}
    try:
        prev = pd.read_csv(path)
    except (OSError, ValueError):
        return {}
    if "last_run_s" not in prev:  # written before last_run_s existed: the rows that ran are the last runs
        prev = prev[prev["status"] == "ran"].assign(last_run_s=prev["seconds"], last_run_utc="")
    prev = prev.dropna(subset=["last_run_s"]).fillna({"last_run_utc": ""})
    return {r.notebook: (float(r.last_run_s), str(r.last_run_utc)) for r in prev.itertuples()}


def _print_times(rows, total):
    lines = ["elapsed per notebook:"] + [f"  {row['notebook']:38s} {row['status']:8s} {row['seconds']:8.1f} s"
                                        for row in rows]
    lines.append(f"  {'total':38s} {'':8s} {total:8.1f} s ({total / 60:.1f} min)")
    log.info("\n".join(lines))


class CellStatus:
    """One line per code cell while papermill runs a notebook (nbclient's cell hooks):
    ``[reproduce] 03_distillation_training.ipynb cell 7/21 `runs = study.train_methods(...)` 12.3 s``
    (the cell's position in the notebook, as a failure names it). The line starts when the cell starts (so a long cell shows which one is running) and ends with
    its seconds (``failed`` when it raised). Written to stderr, unless rsdix logs warnings only."""

    def __init__(self, name: str, stream=None, width: int = 60):
        self.name, self.stream, self.width = name, stream, width
        self.total, self.injected, self.start, self.open = 0, False, 0.0, False

    def count(self, nb: Path) -> int:
        """The number of code cells of ``nb`` (its cells, markdown included, number the lines)."""
        cells = json.loads(nb.read_text()).get("cells", [])
        self.total = len(cells)
        return sum(1 for c in cells if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip())

    def hooks(self) -> dict:
        return {"on_cell_execute": self.cell_start, "on_cell_executed": self.cell_end} if self._shown() else {}

    def _shown(self) -> bool:
        return log.isEnabledFor(logging.INFO)

    def _write(self, text: str) -> None:
        out = self.stream or sys.stderr
        out.write(text)
        out.flush()

    def cell_start(self, cell, cell_index: int, **_) -> None:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            self.injected = True   # papermill's cell, not one of the notebook's: later ones sit one further
            return
        self.close()
        position = cell_index + 1 - int(self.injected)
        first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
        first = first if len(first) <= self.width else first[:self.width - 3] + "..."
        self.start, self.open = time.time(), True
        self._write(f"[reproduce] {self.name} cell {position}/{self.total} `{first}` ")

    def cell_end(self, cell, cell_index: int, execute_reply=None, **_) -> None:
        if not self.open:
            return
        status = (execute_reply or {}).get("content", {}).get("status", "ok")
        self._write(f"{time.time() - self.start:.1f} s{'' if status == 'ok' else ' failed'}\n")
        self.open = False

    def close(self) -> None:
        """End a line left open (the kernel died or papermill stopped mid-cell)."""
        if self.open:
            self._write(f"{time.time() - self.start:.1f} s, stopped\n")
            self.open = False
