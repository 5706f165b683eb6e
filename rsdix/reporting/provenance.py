"""Provenance of a profile's results: ``MANIFEST.json`` in its figures folder, written by
``make reproduce`` (:func:`rsdix.reporting.reproduce.run`) and checked by
``rsdix reproduce --status --profile P`` (:func:`status`).

The manifest records what the run was made from and what it made:

* ``commit``: the git commit the run started at, and ``dirty``: whether ``rsdix/`` or
  ``notebooks/`` had uncommitted changes then (the hashes below are what counts either way);
* ``inputs.code``: a sha256 per folder of the ``rsdix`` package (``rsdix/training``,
  ``rsdix/configs/methods``, ``rsdix/studies/caption_metrics``, ... and ``rsdix`` for the root
  modules): every file's relative path and content, so a changed stage or config area is named.
  ``rsdix/benchmarks``, ``rsdix/cli`` and ``rsdix/__main__.py`` (:data:`NOT_READ`) are recorded
  but no notebook imports them: a change there leaves results current (and :func:`input_files`
  leaves them out of the notebooks' reproduce stamps too);
* ``inputs.notebooks``: a sha256 of each numbered notebook's cell sources (not outputs);
* ``inputs.data``: a sha256 per top-level entry of the data root (``ucm_captions``, ``whu_rs19``,
  ...), over every file's relative path and **content** (not sizes or modification times, so a
  copy of the same data elsewhere hashes the same); the whole data root, because notebook 01
  checks every dataset under it. File hashes are cached by (path, size, mtime) in
  ``<cache>/data_hashes.json``, so a second status check reads nothing;
* ``outputs``: every file of the figures folder with the notebook that wrote it and its sha256.
  The writer is found by comparing the folder before and after each notebook (new or changed
  files: any writer, ``write_table``, ``viz.save`` or a plain ``savefig``); the run folder keeps
  each notebook's files (``outputs.json`` beside the reproduce stamps), so a notebook skipped as
  up to date keeps its files, and a file a rerun notebook no longer writes is deleted; after a run
  in which every notebook ran (a fresh run folder, another machine), so is every output of the
  previous manifest that no notebook wrote (:func:`remove_unwritten`).
  ``RESULTS.md``, ``results.csv``, ``notebook_times.csv`` and ``run_environment.json`` are the
  runner's (:data:`RUNNER`);
* ``environment``: Python and package versions (reported by :func:`status` when they differ,
  not counted as stale: the numbers are compared on the same environment).

Not hashed: pretrained weights in the Hugging Face cache and feature caches under ``.cache``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from rsdix.paths import cache_dir, repo_root
from rsdix.utils import atomic_write_text, file_sha256

MANIFEST = "MANIFEST.json"
OUTPUTS = "outputs.json"          # in the run folder: the files each notebook wrote when it last ran
RUNNER = "reproduce"              # the writer of RESULTS.md and the files beside it
PACKAGE = Path(__file__).resolve().parents[1]
NOT_READ = ("benchmarks", "cli", "__main__.py")   # what no notebook imports (tests/reporting/test_manifest.py)
ENV_PACKAGES = ("torch", "torchvision", "open_clip", "transformers", "numpy", "pandas", "scipy", "sklearn")


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo")


def input_files(package: Path | None = None) -> list[Path]:
    """The files of the ``rsdix`` package a notebook can read: code, ``configs/**.yaml``, protocol
    and reference tables; not ``__pycache__`` and not the folders of :data:`NOT_READ`."""
    package = Path(package or PACKAGE)
    return sorted(p for p in package.rglob("*") if p.is_file() and not _skip(p)
                  and p.relative_to(package).parts[0] not in NOT_READ)


def code_hashes(package: Path | None = None) -> dict[str, str]:
    """sha256 per folder of the package (``rsdix/training``, ``rsdix/configs/train``, ``rsdix`` for
    the root modules), over each file's path relative to the package and its content; the
    :data:`NOT_READ` folders included."""
    package = Path(package or PACKAGE)
    groups: dict[str, hashlib._Hash] = {}
    for path in sorted(p for p in package.rglob("*") if p.is_file() and not _skip(p)):
        rel = path.relative_to(package)
        key = "/".join((package.name,) + (rel.parts[:-1] if rel.parts[0] not in NOT_READ else rel.parts[:1]))
        h = groups.setdefault(key, hashlib.sha256())
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return {k: groups[k].hexdigest() for k in sorted(groups)}


def notebook_source(nb: Path) -> str:
    """A notebook's cell sources (not outputs or metadata), joined: what its results depend on."""
    cells = json.loads(Path(nb).read_text()).get("cells", [])
    return "\0".join("".join(cell.get("source", "")) for cell in cells)


def notebook_hashes(notebooks: list[Path]) -> dict[str, str]:
    return {nb.name: hashlib.sha256(notebook_source(nb).encode()).hexdigest() for nb in notebooks}




def data_hashes(root: str | os.PathLike | None) -> dict[str, str]:
    """sha256 per top-level entry of the data root over every file's relative path and content
    (hidden files left out); ``{}`` when there is no data root. File hashes are cached by
    (relative path, size, mtime) in ``<cache>/data_hashes.json``."""
    if root is None or not Path(root).is_dir():
        return {}
    root = Path(root)
    cache_path = cache_dir() / "data_hashes.json"
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    except (OSError, ValueError):
        cache = {}
    fresh, groups = {}, {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        st = path.stat()
        key = f"{root.resolve()}/{rel}|{st.st_size}|{st.st_mtime_ns}"
        digest = cache.get(key) or file_sha256(path)
        fresh[key] = digest
        h = groups.setdefault(rel.parts[0], hashlib.sha256())
        h.update(str(rel).encode() + b"\0" + bytes.fromhex(digest))
    if fresh != cache:
        try:
            atomic_write_text(cache_path, json.dumps(fresh))
        except OSError:
            pass      # a read-only cache: hashed again next time
    return {k: groups[k].hexdigest() for k in sorted(groups)}


def git_commit() -> dict:
    """``{"commit": full sha, "dirty": uncommitted changes under rsdix/ or notebooks/}`` (empty
    outside a git checkout)."""
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=repo_root(), capture_output=True,  # noqa: E731
                                           text=True, timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode:
            return {}
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "rsdix", "notebooks").stdout.strip()
        return {"commit": head.stdout.strip(), "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {}


def environment_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ENV_PACKAGES:
        try:
            out[name] = str(__import__(name).__version__)
        except Exception:  # noqa: BLE001 - a package missing or without a version: not recorded
            pass
    return out


def inputs(notebooks: list[Path], data_root, package: Path | None = None) -> dict:
    """What a run is made from (see the module docstring)."""
    return {"code": code_hashes(package), "notebooks": notebook_hashes(notebooks), "data": data_hashes(data_root)}


# ---------------------------------------------------------------- outputs

def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` (relative path -> (size, mtime_ns)); hidden files, temporary
    files of atomic writes and the manifest left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    out = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not any(p.startswith(".") for p in rel.parts) and rel.name != MANIFEST \
                and not rel.name.endswith(".tmp"):
            st = path.stat()
            out[str(rel)] = (st.st_size, st.st_mtime_ns)
    return out


def written(before: dict, after: dict) -> list[str]:
    """Files new or changed between two :func:`snapshot` s."""
    return sorted(name for name, stat in after.items() if before.get(name) != stat)


def read_outputs(run_dir: Path) -> dict[str, list[str]]:
    path = Path(run_dir) / OUTPUTS
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}


def record_outputs(run_dir: Path, figures: Path, notebook: str, files: list[str]) -> list[str]:
    """Record ``files`` as what ``notebook`` wrote (taking them from any other notebook that wrote
    them before) and delete from ``figures`` the files it wrote when it last ran and no longer
    writes (and no other notebook claims). Returns the deleted files."""
    record = read_outputs(run_dir)
    previous = set(record.get(notebook, []))
    for other in record:
        if other != notebook:
            record[other] = [f for f in record[other] if f not in files]
    record[notebook] = sorted(files)
    claimed = {f for name, fs in record.items() for f in fs}
    removed = []
    for name in sorted(previous - claimed):
        path = Path(figures) / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    atomic_write_text(Path(run_dir) / OUTPUTS, json.dumps(record, indent=1, sort_keys=True))
    return removed


def remove_unwritten(figures: Path, previous: dict, written: set[str]) -> list[str]:
    """After a run in which every notebook ran: delete the files ``previous`` (the manifest before
    the run) listed as outputs that no notebook wrote this time (files it never listed stay)."""
    removed = []
    for name in sorted(set(previous.get("outputs", {})) - set(written)):
        path = Path(figures) / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    return removed


def write_manifest(figures: Path, run_dir: Path, profile: str, made_from: dict, started: dict,
                   params: dict, runner_files: list[str]) -> Path:
    """``MANIFEST.json`` in ``figures``: the commit and inputs recorded when the run started
    (``started``: :func:`git_commit`; ``made_from``: :func:`inputs`), and every file of the folder
    with its writer and sha256 (files no notebook and not the runner wrote: writer ``unknown``)."""
    figures = Path(figures)
    writers = {f: nb for nb, files in read_outputs(run_dir).items() for f in files}
    writers.update({f: RUNNER for f in runner_files})
    outputs = {}
    for name in sorted(snapshot(figures)):
        outputs[name] = {"notebook": writers.get(name, "unknown"), "sha256": file_sha256(figures / name)}
    manifest = {"profile": profile, **started,
                "made_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                "parameters": {k: v for k, v in params.items() if k in ("profile", "seed")},
                "data_root": params.get("data_root"), "data_hash": "sha256 of each file's relative path and content",
                "inputs": made_from, "environment": environment_versions(), "outputs": outputs}
    path = figures / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def read_manifest(figures: Path) -> dict | None:
    path = Path(figures) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------- status

def _changed(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def compare(manifest: dict, current: dict, figures: Path) -> dict[str, list[str]]:
    """What differs between a manifest and the present (``current``: :func:`inputs`): changed code
    folders (those no notebook reads apart), notebooks, data entries (none when there is no data
    root now), and outputs modified, missing or without a manifest entry."""
    made = manifest.get("inputs", {})
    code = _changed(made.get("code", {}), current["code"])
    read = [k for k in code if k.split("/")[1:2] and k.split("/")[1] in NOT_READ]
    out = {"code": [k for k in code if k not in read], "not read": read,
           "notebooks": _changed(made.get("notebooks", {}), current["notebooks"]),
           "data": _changed(made.get("data", {}), current["data"]) if current["data"] else []}
    files = snapshot(figures)
    recorded = manifest.get("outputs", {})
    out["missing"] = sorted(set(recorded) - set(files))
    out["without entry"] = sorted(set(files) - set(recorded))
    out["modified"] = sorted(f for f in set(files) & set(recorded) if file_sha256(Path(figures) / f)
                             != recorded[f]["sha256"])
    out["unknown writer"] = sorted(f for f, e in recorded.items() if e.get("notebook") == "unknown")
    return out


STALE_KEYS = ("code", "notebooks", "data", "missing", "without entry", "modified", "unknown writer")


def status(figures: Path, notebooks: list[Path], data_root, package: Path | None = None) -> tuple[bool, str]:
    """``(current, text)``: ``current`` when the manifest's inputs equal the present ones and the
    folder holds exactly the manifest's files with their hashes; the text's first word is
    ``current`` or ``stale``, then what changed (by code folder, notebook, data entry, output)
    and the commit the results come from."""
    figures = Path(figures)
    manifest = read_manifest(figures)
    if manifest is None:
        return False, f"stale: {figures} has no {MANIFEST} (run make reproduce for this profile)"
    diff = compare(manifest, inputs(notebooks, data_root, package), figures)
    commit = (manifest.get("commit") or "unknown")[:12] + (" (with uncommitted changes)" if manifest.get("dirty") else "")
    origin = f"results from commit {commit}, made {manifest.get('made_utc', '?')} UTC"
    stale = any(diff[k] for k in STALE_KEYS)
    lines = [f"{'stale' if stale else 'current'}: {figures} ({origin})"]
    labels = {"code": "code or configs changed since", "notebooks": "notebooks changed since",
              "data": "data changed since", "modified": "outputs modified since the run",
              "missing": "outputs missing", "without entry": "files without a manifest entry",
              "unknown writer": "outputs no notebook is known to have written"}
    for key, label in labels.items():
        if diff[key]:
            lines.append(f"  {label}: {', '.join(diff[key])}")
    if diff["not read"]:
        lines.append(f"  changed, read by no notebook (results still current): {', '.join(diff['not read'])}")
    if not data_root or not Path(data_root).is_dir():
        lines.append(f"  data not checked: no data root at {data_root}")
    env = environment_versions()
    moved = [f"{k} {v} (run: {manifest.get('environment', {}).get(k)})" for k, v in env.items()
             if manifest.get("environment", {}).get(k) not in (None, v)]
    if moved:
        lines.append(f"  note: environment differs from the run's: {', '.join(moved)}")
    if stale:
        lines.append(f"  rerun: make reproduce PROFILE={manifest.get('profile', '?')}")
    return not stale, "\n".join(lines)
