"""Results tables: rows replaced not duplicated, NaN refused, published numbers joined, seeds
summarised, and the RESULTS.md section a row names read back."""
from __future__ import annotations

import math
import multiprocessing
import os

import pandas as pd
import pytest

from rsdix.errors import DataError
from rsdix.results import (Result, append_results, declared_sections, read_results, summarise, with_reference,
                           write_table)


def test_results_replace_rows_with_blank_keys_after_a_csv_round_trip(tmp_path):
    """A seed-less row (blank in the CSV) and a seed read back as 0.0 (its column has blanks)
    must still be replaced by the same row written again, not duplicated."""
    path = tmp_path / "r.csv"
    rows = [Result("study", "UCM", "stats", "AUC", 0.5), Result("m", "UCM", "retrieval", "mR", 20.0, seed=0)]
    append_results(rows, path)
    table = append_results([Result("study", "UCM", "stats", "AUC", 0.6),
                            Result("m", "UCM", "retrieval", "mR", 21.0, seed=0)], path)
    assert len(table) == 2 and sorted(table["value"]) == [0.6, 21.0]


def test_results_append_replace_and_reference(tmp_path):
    path = tmp_path / "results.csv"
    rows = [Result("m", "WHU-RS19", "zero-shot", "top1", 50.0, seed=0),
            Result("m", "WHU-RS19", "zero-shot", "top1", 52.0, seed=1)]
    append_results(rows, path)
    append_results([Result("m", "WHU-RS19", "zero-shot", "top1", 55.0, seed=1)], path)
    table = read_results(path)
    assert sorted(table["value"]) == [50.0, 55.0]          # seed 1 replaced, not duplicated
    joined = with_reference(table, ref_model="RSDiX-CLIP", ref_backbone="ViT-B/32")
    assert set(joined["published"]) == {98.4}
    summary = summarise(table)
    assert summary.loc[0, "mean"] == 52.5 and summary.loc[0, "count"] == 2
    assert summary.loc[0, "ci_low"] < 52.5 < summary.loc[0, "ci_high"]
    csv_path, md_path = write_table(table, "t", tmp_path)
    assert pd.read_csv(csv_path).shape == table.shape and md_path.read_text().startswith("|")


def test_results_refuse_nan(tmp_path):
    with pytest.raises(DataError, match="NaN"):
        append_results([Result("m", "d", "t", "x", math.nan)], tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_summarise_keeps_a_single_rows_own_ci(tmp_path):
    rows = [Result("BLEU-4", "UCM", "metric-separation-synonym", "AUC", 0.45, seed=0, ci_low=0.40, ci_high=0.50),
            Result("m", "UCM", "zero-shot", "top1", 10.0, seed=0), Result("m", "UCM", "zero-shot", "top1", 14.0, seed=1)]
    table = append_results(rows, tmp_path / "r.csv")
    out = summarise(table).set_index("model")
    assert (out.loc["BLEU-4", "ci_low"], out.loc["BLEU-4", "ci_high"]) == (0.40, 0.50)
    assert out.loc["m", "ci_low"] < 12.0 < out.loc["m", "ci_high"] and out.loc["m", "count"] == 2


def test_rows_name_their_section_and_it_survives_the_csv(tmp_path):
    rows = [Result("A", "UCM", "study-x", "AUC", 0.6, seed=0, section="Study X"),
            Result("A", "UCM", "study-x", "AUC", 0.8, seed=1, section="Study X"),
            Result("m", "UCM", "zero-shot", "top1", 10.0, seed=0),
            Result("B", "UCM", "study-y", "AUC", 0.5, seed=0, section="Study Y")]
    append_results(rows, tmp_path / "r.csv")
    table = read_results(tmp_path / "r.csv")
    assert declared_sections(table) == ["Study X", "Study Y"]     # in the order they first appear
    assert declared_sections(table.drop(columns="section")) == []  # a table written before sections
    out = summarise(table, keep=["section"]).set_index("task")
    assert out.loc["study-x", "section"] == "Study X" and out.loc["study-x", "count"] == 2
    assert pd.isna(out.loc["zero-shot", "section"])
    assert "section" not in summarise(table)                        # only what ``keep`` names


def _append_many(path, worker, n):
    for i in range(n):
        append_results([Result(f"m{worker}", "ucm", "retrieval", "mR", float(i), seed=i)], path)


def test_concurrent_appends_from_two_processes_keep_every_row(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    table = tmp_path / "results.csv"
    procs = [ctx.Process(target=_append_many, args=(table, w, 25)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    rows = read_results(table)
    assert len(rows) == 50 and sorted(rows.groupby("model").size()) == [25, 25]


def test_the_next_append_removes_temporary_files_of_killed_writes(tmp_path):
    table = tmp_path / "results.csv"
    orphan = tmp_path / ".results.csv.abc123.tmp"   # left by a write killed midway
    orphan.write_text("model,dat")
    old = orphan.stat().st_mtime - 3600
    os.utime(orphan, (old, old))
    append_results([Result("m", "ucm", "retrieval", "mR", 1.0)], table)
    assert not orphan.exists() and len(read_results(table)) == 1


def test_summarise_refuses_non_finite_values_naming_rows():
    rows = pd.DataFrame({"model": ["a_s0", "a_s1", "b"], "dataset": "d", "task": "t", "metric": "m",
                         "split": "test", "value": [1.0, float("nan"), float("inf")]})
    with pytest.raises(DataError, match=r"results summary: 2 of 3 result values are NaN or infinite: rows 1, 2"):
        summarise(rows)


def test_rows_record_their_manifest_and_old_tables_without_the_column_still_read(tmp_path):
    path = tmp_path / "results.csv"
    pd.DataFrame([{"model": "old", "dataset": "UCM", "task": "retrieval", "metric": "mR", "value": 30.0,
                   "seed": 0, "split": "test"}]).to_csv(path, index=False)   # a table written before the column
    table = append_results([Result("new", "UCM", "retrieval", "mR", 31.0, seed=0, manifest="ab" * 32)], path)
    assert list(table["model"]) == ["old", "new"] and table["manifest"].iloc[1] == "ab" * 32
    assert pd.isna(read_results(path)["manifest"].iloc[0]) and Result("m", "d", "t", "x", 1.0).manifest == ""
