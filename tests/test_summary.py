"""RESULTS.md and the README's table: published numbers beside ours, seeds pooled, the sections
rows name (the metric study's) shown without the report importing any study."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

from rsdix.metric_study.separation import ANY_EDIT
from rsdix.metric_study.study import to_results
from rsdix.paths import RunDirs
from rsdix.reporting.summary import SECTIONS, headline_table, write_results_summary
from rsdix.results import Result, append_results


def test_results_summary_puts_published_numbers_beside_ours(tmp_path, monkeypatch):
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    dirs = RunDirs("smoke", out_dir=tmp_path / "fig")
    append_results([Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 31.0, seed=0),
                    Result("rsdix_s1", "WHU-RS19", "zero-shot", "top1", 33.0, seed=1),
                    Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 10.0, seed=0, split="val")], dirs.results)
    text = open(write_results_summary(dirs)).read()
    assert "RSDiX-CLIP ViT-B/32: 98.4" in text and "## Environment" in text
    table = headline_table(dirs)
    row = table[(table["model"] == "rsdix") & (table["split"] == "test")].iloc[0]
    assert row["ours"].startswith("32 [") and row["seeds"] == 2     # seeds pooled, splits kept apart


def test_results_summary_shows_the_metric_study_rows_notebook_06_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    dirs = RunDirs("smoke", out_dir=tmp_path / "fig")
    separation = pd.DataFrame([{"dataset": "ucm", "metric": "BLEU-4", "preserved": p, "changed": ANY_EDIT,
                                "auc": 0.61, "ci_low": 0.5, "ci_high": 0.7, "n_preserved": 10, "n_changed": 40}
                               for p in ("synonym", "synonym-1")])
    discrimination = pd.DataFrame([{"dataset": "ucm", "metric": "BLEU-4", "distractors": "same-class", "k": 4,
                                    "auc": 0.55, "auc_low": 0.5, "auc_high": 0.6, "n_queries": 10}])
    rows = to_results(separation, discrimination, seed=0, profile="smoke")
    append_results(rows, dirs.results)
    text = open(write_results_summary(dirs)).read()
    section = text.split("## Caption-metric study", 1)
    assert len(section) == 2, "metric-study section missing from RESULTS.md"
    for r in rows:
        assert r.task in section[1]
    # the README's compact table keeps RSDiX's own paraphrase (the full study is in RESULTS.md)
    assert set(headline_table(dirs)["task"]) == {"metric-separation-synonym"}


def test_sections_rows_name_follow_the_task_sections(tmp_path, monkeypatch):
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    dirs = RunDirs("smoke", out_dir=tmp_path / "fig")
    append_results([Result("A", "UCM", "study-y", "AUC", 0.5, seed=0, section="Study Y"),
                    Result("A", "UCM", "study-hidden", "AUC", 0.7, seed=0),
                    Result("m", "WHU-RS19", "zero-shot", "top1", 31.0, seed=0),
                    Result("A", "UCM", "study-x", "AUC", 0.6, seed=0, section="Study X")], dirs.results)
    text = open(write_results_summary(dirs)).read()
    titles = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert titles[:3] == [SECTIONS[0][0], "Study Y", "Study X"]
    assert "study-y" in text.split("## Study Y")[1].split("## ")[0] and "study-hidden" not in text


def test_the_report_loads_no_study():
    """reproduce writes RESULTS.md in a process that never imported a study."""
    code = ("import sys, rsdix.reporting.reproduce, rsdix.reporting.summary; "
            "print([m for m in sys.modules if m.startswith('rsdix.metric_study')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
