"""The generated results summary (``RESULTS.md``) and the README's results block, from a run's
tidy results table; nothing in them is typed by hand.

``RESULTS.md`` reads headline first: one compact table per task (rows = models, columns =
datasets, cells = mean with its 95% CI and seed count, :mod:`rsdix.reporting.tables`), the
sections the rows themselves name (``Result.section``, e.g. the metric study's: the report imports
no stage), then the published numbers once per dataset, then every summary row in a collapsible
section, the time per notebook and the environment. Beside it in the figures folder go the tidy
table itself (``results.csv``), the notebook times and the environment, so
:func:`regenerate_summary` rewrites ``RESULTS.md`` and the README block from the committed files
without rerunning a notebook."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from rsdix.evaluation.published import published_pairs
from rsdix.paths import RunDirs, figures_dir, repo_root
from rsdix.reporting.provenance import git_commit
from rsdix.reporting.tables import (BASELINE, README_COLUMNS, compact_markdown, paired_table, published_reference,
                                    readme_table, task_tables)
from rsdix.results import REFERENCE_CSV, read_results, read_table, summarise
from rsdix.utils import atomic_path, atomic_write_text

# written beside RESULTS.md in the figures folder (committed with it)
RESULTS_CSV, TIMES_CSV, ENV_JSON = "results.csv", "notebook_times.csv", "run_environment.json"
RUNNER_FILES = ["RESULTS.md", RESULTS_CSV, TIMES_CSV, ENV_JSON]   # the manifest names the runner their writer
FULL_COLUMNS = ["model", "dataset", "task", "split", "metric", "mean", "ci_low", "ci_high", "seeds"]


def environment() -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu_model": cpu_model(),
           "cpu_count": os.cpu_count(), "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")}
    env["torch"] = torch.__version__
    env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    for mod in ("open_clip", "transformers", "accelerate"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    env.update(git_state())
    return env


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state() -> dict:
    """``git_commit`` (short HEAD) and ``git_dirty`` (uncommitted changes under rsdix/ or
    notebooks/, :func:`rsdix.reporting.provenance.git_commit`); empty outside a git checkout."""
    state = git_commit()
    return {"git_commit": state["commit"][:7], "git_dirty": state["dirty"]} if state else {}


def _rel(path: Path) -> str:
    path = Path(path)
    return str(path.relative_to(repo_root())) if path.is_relative_to(repo_root()) else str(path)


def results_markdown(results: pd.DataFrame, profile: str, source: str, times: pd.DataFrame | None = None,
                     env: dict | None = None, training_s: float | None = None) -> str:
    """The text of ``RESULTS.md`` for a tidy results table (see the module docstring)."""
    env = env or environment()
    lines = [f"# Results of the `{profile}` profile", "",
             f"Generated from the run's tidy results table (`{source}`, one row per model x dataset x task x "
             "metric x seed x split); no number here is typed by hand. A cell is the mean over seeds "
             "(run names `_s0`, `_s1`, ... pooled) with its 95% CI and the seed count: `31.2 ± 0.4 (n=3)` is a "
             "Student-t CI over 3 seeds, `0.43 [0.40, 0.46] (n=1)` one seed with the notebook's own CI "
             "(bootstrap), `31.2 (n=1)` one seed without one. Headline tables show test (or all-image) "
             "splits; validation rows are in the full table. The published numbers follow once per dataset "
             "(other models and budgets: the paper profile is the comparable one).", ""]
    if len(results):
        summary = summarise(results, keep=["section"])
        lines += ["## Headline", ""]
        current = ""
        for section, title, table in task_tables(summary):
            if section and section != current:
                lines += [f"### {section}", ""]
                current = section
            lines += [f"{'####' if section else '###'} {title}", "", table.to_markdown(index=False), ""]
        lines += ["## Published numbers (reference)", "",
                  "The papers' numbers for the datasets, tasks and metrics above, once per dataset; parameters "
                  "count both towers of the CLIP backbone (open_clip config). All published numbers: "
                  f"`{_rel(REFERENCE_CSV)}`.", ""]
        paired = paired_table(results)
        if len(paired):
            lines += ["## Paired differences", "",
                      f"Each headline model minus `{BASELINE}`, seed by seed (notebook 03 gives the methods of one "
                      "seed the same initial weights, image order and augmentation draws): the mean difference with "
                      "its Student-t 95% CI over the pairs; an order is stated only where that interval excludes 0.",
                      "", paired.to_markdown(index=False), ""]
        for heading, table in published_reference(summary):
            lines += [f"### {heading}", "", table.to_markdown(index=False), ""]
        lines += like_for_like(results)
        full = summary.assign(seeds=summary["count"])[FULL_COLUMNS]
        lines += ["## All rows", "",
                  f"Every metric, split and dataset of the {len(results)} rows, pooled over seeds; the tidy rows: "
                  f"[`{RESULTS_CSV}`]({RESULTS_CSV}) in this folder.", "",
                  f"<details><summary>{len(full)} summary rows</summary>", "",
                  compact_markdown(full), "", "</details>", ""]
    else:
        lines += ["No results table was written by this run.", ""]
    if times is not None and len(times):
        lines += ["## Time per notebook", "",
                  "`seconds`: this invocation of `make reproduce`; `last_run_s`: the notebook's latest real "
                  "run (a notebook skipped as up to date, or left out with `--only`, keeps its earlier time).", "",
                  times.to_markdown(index=False, floatfmt=".1f"), ""]
        if "last_run_s" in times:
            lines += [f"End to end (sum of the latest runs): {times['last_run_s'].sum() / 60:.1f} min; "
                      f"this invocation: {times['seconds'].sum() / 60:.1f} min.", ""]
        if training_s:
            lines += [f"Notebook 03's runs trained for {training_s / 60:.1f} min in all (`train_s` in "
                      f"`{METHODS_TABLE}`, measured when each run trained); a rerun that finds their finished "
                      "checkpoints only re-checks them, so notebook 03's time above can be far shorter.", ""]
    lines += ["## Environment", ""] + [f"- {k}: {v}" for k, v in env.items()] + [""]
    return "\n".join(_wrapped(line) for line in lines)


PAIR_SHOWN = ["dataset", "task", "metric", "model", "ours", "our_protocol", "our_split", "our_backbone",
              "published_model", "published", "their_protocol", "their_split", "their_backbone"]


def like_for_like(results: pd.DataFrame) -> list[str]:
    """The section of ``RESULTS.md`` that puts a published number beside ours: only the pairs
    with the same dataset release, split, protocol and backbone (:func:`published_pairs`), with
    the protocol, split and backbone of both sides; every other pair is left out and counted by
    its first reason."""
    pairs = published_pairs(results[results["task"].isin(["zero-shot", "retrieval"])]) \
        if "task" in results else pd.DataFrame()
    lines = ["## Published numbers beside ours (like for like)", "",
             "A published number stands beside ours only where dataset release, split, evaluation protocol "
             "(templates, test images, class names; `rsdix/evaluation/protocols/protocols.yaml`) and backbone "
             "match and neither side is in-domain (`rsdix.evaluation.published.published_pairs`).", ""]
    if not len(pairs):
        return lines + ["No zero-shot or retrieval row of this run has a published number on its dataset.", ""]
    same = pairs[pairs["comparable"] == "yes"]
    lines += [same[PAIR_SHOWN].to_markdown(index=False, floatfmt=".2f") if len(same) else
              "No pair matches: none of this run's numbers can be read beside a published one.", ""]
    left = pairs[pairs["comparable"] != "yes"]
    if len(left):
        first = left["comparable"].str.removeprefix("no: ").str.split("; ").str[0].str.replace(r" \(.*", "", regex=True)
        counts = first.value_counts()
        lines += [f"Left out: {len(left)} of {len(pairs)} pairs, by their first reason: " +
                  ", ".join(f"{reason} ({n})" for reason, n in counts.items()) +
                  ". Every pair with all its reasons: notebook 05's `05_*_published_pairs` tables.", ""]
    return lines


def _wrapped(line: str, width: int = 100) -> str:
    """A prose line wrapped at ``width`` (tables, headings and list items unchanged)."""
    if len(line) <= width or line.startswith(("|", "#", "- ", "<")):
        return line
    return "\n".join(textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False))


def write_results_summary(dirs: RunDirs, times: pd.DataFrame | None = None) -> str:
    """``RESULTS.md`` of the run in ``dirs`` (and the README block for the repository's cpu run);
    the tidy table, the times and the environment are copied beside it (see
    :func:`regenerate_summary`). Returns the path of ``RESULTS.md``."""
    figures = Path(dirs.figures)
    results = read_results(dirs.results) if dirs.results.exists() else pd.DataFrame()
    env = environment()
    if dirs.results.exists() and dirs.results.resolve() != (figures / RESULTS_CSV).resolve():
        with atomic_path(figures / RESULTS_CSV) as tmp:
            shutil.copyfile(dirs.results, tmp)
    if times is not None and len(times):
        with atomic_path(figures / TIMES_CSV) as tmp:
            times.to_csv(tmp, index=False)
    atomic_write_text(figures / ENV_JSON, json.dumps(env, indent=1) + "\n")
    return _write(figures, dirs.profile, results, _rel(dirs.results), times, env)


METHODS_TABLE = "03_methods.csv"   # notebook 03's runs, with the seconds each trained (train_s)


def training_seconds(figures: Path) -> float | None:
    """The seconds notebook 03's runs trained, summed (``train_s`` of :data:`METHODS_TABLE`)."""
    table = Path(figures) / METHODS_TABLE
    if not table.exists():
        return None
    runs = read_table(table)
    return float(runs["train_s"].sum()) if "train_s" in runs and runs["train_s"].notna().any() else None


def _write(figures: Path, profile: str, results: pd.DataFrame, source: str, times, env) -> str:
    path = figures / "RESULTS.md"
    atomic_write_text(path, results_markdown(results, profile, source, times, env, training_seconds(figures)))
    if profile == "cpu" and figures.resolve() == (repo_root() / "figures" / "cpu").resolve() and len(results):
        update_readme(results, env)
    return str(path)


def regenerate_summary(profile: str = "cpu", figures: str | os.PathLike | None = None) -> str:
    """Rewrite ``RESULTS.md`` (and, for the repository's cpu run, the README block) from the files
    :func:`write_results_summary` left in the figures folder: ``results.csv``, the notebook times
    and the run's environment; no notebook runs."""
    figures = Path(figures) if figures else figures_dir() / profile
    table = figures / RESULTS_CSV
    if not table.exists():
        raise FileNotFoundError(f"{table}: no results table to summarise (written by make reproduce)")
    results = read_results(table)
    times = read_table(figures / TIMES_CSV) if (figures / TIMES_CSV).exists() else None
    env = json.loads((figures / ENV_JSON).read_text()) if (figures / ENV_JSON).exists() else environment()
    return _write(figures, profile, results, _rel(table), times, env)


README_START, README_END = "<!-- results:cpu:start -->", "<!-- results:cpu:end -->"


def commit_text(env: dict) -> str:
    """``commit abc1234`` (``, with uncommitted changes to rsdix/ or notebooks/`` where the run had some)."""
    commit = f"commit {env.get('git_commit') or 'unknown'}"
    return commit + (" with uncommitted changes to rsdix/ or notebooks/" if env.get("git_dirty") else "")


def _caveats(results: pd.DataFrame) -> dict[str, str]:
    """README column title -> the caveat its rows carry (e.g. "not zero-shot: trained on ucm_captions")."""
    if "caveat" not in results:
        return {}
    out = {}
    for title, dataset, task, metric in README_COLUMNS:
        rows = results[(results["dataset"] == dataset) & (results["task"] == task) & (results["metric"] == metric)]
        found = sorted({c for c in rows["caveat"] if isinstance(c, str) and c})
        if found:
            out[title] = "; ".join(found)
    return out


def readme_block(results: pd.DataFrame, env: dict) -> str:
    """The README's results block (between the markers): the headline table, the differences to
    the baseline paired by seed, and where it came from (the commit, the manifest)."""
    table = readme_table(summarise(results))
    caveats = _caveats(results)
    marks = {title: "†‡§¶"[i % 4] * (1 + i // 4) for i, title in enumerate(caveats)}
    table = table.rename(columns={t: f"{t}{m}" for t, m in marks.items()})
    note = (f"_Generated by `make reproduce PROFILE=cpu` on {env.get('time_utc')} UTC ({env.get('cpu_count')} CPU "
            f"cores, torch {env.get('torch')}, {commit_text(env)}; what it was made from and which file each "
            "notebook wrote: [figures/cpu/MANIFEST.json](figures/cpu/MANIFEST.json), checked by "
            "`rsdix reproduce --status`). Cells: mean ± half-width of the Student-t 95% CI over the n seeds; "
            "rank: by the first column, a range where the intervals overlap (no order); every task and the "
            "published numbers: [figures/cpu/RESULTS.md](figures/cpu/RESULTS.md)._")
    wrap = lambda text: "\n".join(textwrap.wrap(text, 100, break_on_hyphens=False, break_long_words=False))  # noqa: E731
    lines = [wrap(note), "", table.to_markdown(index=False)]
    if caveats:
        lines += [""] + [wrap(f"{marks[t]} {c}.") for t, c in caveats.items()]
    paired = paired_table(results)
    if len(paired):
        lines += ["", wrap(f"Paired by seed (same initial weights, image order and augmentation draws), minus "
                           f"`{BASELINE}`, mean difference [Student-t 95% CI]:"), "", paired.to_markdown(index=False)]
    return f"{README_START}\n" + "\n".join(lines) + f"\n{README_END}"


def update_readme(results: pd.DataFrame, env: dict | None = None, readme: str | os.PathLike | None = None) -> bool:
    """Replace the README's results block (between the markers) with the run's headline table."""
    readme = Path(readme) if readme else repo_root() / "README.md"
    if not readme.exists():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    body = readme_block(results, env or environment())
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    atomic_write_text(readme, text[:start] + body + text[end:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsdix.reporting.summary",
                                     description="rewrite RESULTS.md from the figures folder's results.csv")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--figures", default=None, help="figures folder (default figures/<profile>)")
    args = parser.parse_args(argv)
    print(regenerate_summary(args.profile, args.figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
