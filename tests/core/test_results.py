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


# ---------------------------------------------------------------- a table that cannot rot (issue 33)

def _four_rows(path):
    append_results([Result(f"m{i}", "UCM", "retrieval", "mR", 54.0, seed=0) for i in range(4)], path)
    return path.read_text()


def _cut_last_row(text):    # the issue's example: m4's 54.0 cut to 5, seed and split lost
    return text + "m4,UCM,retrieval,mR,5"


def _nul_tail(text):
    return text + "\0" * 4096


def _extra_comma(text):
    lines = text.splitlines(keepends=True)
    return "".join(lines[:3]) + lines[3].replace("UCM", "UCM,x", 1) + "".join(lines[4:])


@pytest.mark.parametrize("damage, line, problem", [
    (_cut_last_row, 6, "5 field.s. where the header has 15"),
    (_nul_tail, 6, "NUL bytes"),
    (_extra_comma, 4, "16 field.s. where the header has 15")])
def test_an_append_to_a_damaged_table_is_refused_naming_file_and_line_and_writes_nothing(tmp_path, damage, line,
                                                                                        problem):
    path = tmp_path / "results.csv"
    damaged = damage(_four_rows(path))
    path.write_text(damaged)
    with pytest.raises(DataError, match=rf"results\.csv:{line}: damaged results table: {problem}.*nothing was written"):
        append_results([Result("m9", "UCM", "retrieval", "mR", 1.0)], path)
    assert path.read_text() == damaged
    with pytest.raises(DataError, match=rf"results\.csv:{line}: damaged results table: {problem}"):
        read_results(path)


def test_a_row_cut_inside_its_last_field_is_found_by_its_missing_line_end(tmp_path):
    path = tmp_path / "results.csv"
    text = _four_rows(path)
    path.write_text(text[:-1])   # the last row has all its fields, its line end is gone
    from rsdix import results
    check = results.check_table(path)
    assert [line for line, _ in check.problems] == [5] and "cut short" in check.problems[0][1]


def test_check_and_repair_keep_the_valid_rows_and_move_the_rest_aside(tmp_path, capsys):
    from rsdix.cli import main
    path = tmp_path / "results.csv"
    text = _four_rows(path)
    lines = text.splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + "m1,UCM,retrieval,mR,not-a-number,0,test,,,,,,,,\n" + lines[2]
                    + _extra_comma(text).splitlines(keepends=True)[3] + "".join(lines[4:]) + "\0" * 64)
    assert main(["results", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "3 valid row(s), 3 damaged line(s)" in out and "line 3: 'value' is 'not-a-number', not a finite number" in out
    assert main(["results", "repair", str(path)]) == 0
    assert "kept 3 valid row(s); moved 3 damaged line(s) to" in capsys.readouterr().out
    assert sorted(read_results(path)["model"]) == ["m0", "m1", "m3"]
    aside = (tmp_path / "results.rejected.csv").read_text()
    assert aside.startswith("model,dataset,") and "not-a-number" in aside and "UCM,x" in aside and "\0" in aside
    assert main(["results", "check", str(path)]) == 0
    append_results([Result("m9", "UCM", "retrieval", "mR", 1.0)], path)   # appends work again
    assert len(read_results(path)) == 4


def test_rows_that_could_not_be_read_back_are_refused_when_written(tmp_path):
    path = tmp_path / "r.csv"
    for row, needle in ((Result("", "UCM", "t", "m", 1.0), "'model' is ''"),
                        (Result("m", "UCM", "t", "m", float("inf")), "not a finite number"),
                        (Result("m", "UCM", "t", "m", 1.0, seed=1.5), "'seed' is 1.5, not an integer"),
                        (Result("m\r", "UCM", "t", "m", 1.0), "carriage return"),
                        (Result("m", "UCM", "t", "m", True), "not a finite number")):
        with pytest.raises(DataError, match=needle):
            append_results([row], path)
    assert not path.exists()


def test_text_that_looks_like_a_number_or_nan_stays_text(tmp_path):
    path = tmp_path / "r.csv"
    append_results([Result("1.0", "NA", "t", "None", 1.0, note="nan")], path)
    row = read_results(path).iloc[0]
    assert (row["model"], row["dataset"], row["metric"], row["note"]) == ("1.0", "NA", "None", "nan")
    table = append_results([Result("1.0", "NA", "t", "None", 2.0, note="nan")], path)
    assert len(table) == 1 and table["value"].tolist() == [2.0]   # replaced: the keys read back as written


# ---------------------------------------------------------------- properties (hypothesis): rows and damaged files

from hypothesis import strategies as st  # noqa: E402

from property_fixtures import SIZES, TEXT, run  # noqa: E402

NUMBERS = st.one_of(st.floats(), st.integers(-2 ** 70, 2 ** 70), st.booleans(), st.none())
# any integer seed: beyond +-2**53 (what float64, the type of a column with a blank, holds exactly)
# the row is refused when written, so every row written reads back as it was
ROWS = st.lists(st.builds(Result, model=TEXT, dataset=TEXT, task=TEXT, metric=TEXT, value=NUMBERS,
                          seed=st.one_of(st.none(), st.integers(-2 ** 70, 2 ** 70), st.floats(-1e3, 1e3)),
                          split=TEXT, note=TEXT, ci_low=st.one_of(st.none(), st.floats())), min_size=1, max_size=4)


def _rows_read_back_or_refused(rows):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.csv"
        try:
            append_results(rows, path)
        except DataError as exc:   # names the refused row
            assert any(exc.where == f"{r.model}/{r.dataset}/{r.metric}" for r in rows) and not path.exists()
            return
        back = read_results(path)
        assert len(back) == len(rows)
        for r, (_, got) in zip(rows, back.iterrows()):
            assert [got[c] for c in ("model", "dataset", "task", "metric")] == [r.model, r.dataset, r.task, r.metric]
            assert got["value"] == float(r.value)
            assert (r.seed is None and pd.isna(got["seed"])) or float(got["seed"]) == float(r.seed)
            assert (got["split"] if isinstance(got["split"], str) else "") == r.split
        assert len(append_results(rows, path)) == len(rows)   # written again: replaced, not duplicated


@pytest.mark.parametrize("n", SIZES)
def test_property_rows_are_read_back_as_written_or_refused_naming_the_row(n):
    run(_rows_read_back_or_refused, n, ROWS)


GOOD_TABLE = ("model,dataset,task,metric,value,seed,split,n,ci_low,ci_high,profile,note,section,source\n"
              "m0,UCM,retrieval,mR,54.0,0,test,,,,,,,\nm1,UCM,retrieval,mR,12.5,1,test,100,10.0,15.0,cpu,\"a, b\",,\n"
              "m2,WHU,zero-shot,top1,80,,test,,,,,,Section,nb@1\n")
DAMAGE = st.lists(st.tuples(st.sampled_from(["insert", "cut", "nul"]), st.floats(0, 1),
                            st.one_of(TEXT, st.sampled_from([",", "\"", "\n", "\r\n", ",,,", "nan", "inf", "1e999"]))),
                  min_size=1, max_size=3)


def _damaged_tables_read_as_valid_rows_or_refused(damage):
    import tempfile
    from pathlib import Path

    from rsdix import results

    text = GOOD_TABLE
    for kind, where, piece in damage:
        at = int(where * len(text))
        text = text[:at] if kind == "cut" else text[:at] + ("\0" * 8 if kind == "nul" else piece) + text[at:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.csv"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            table = read_results(path)
        except DataError as exc:
            assert exc.where.startswith(str(path))
        else:
            assert table["value"].map(math.isfinite).all()
            assert all(isinstance(v, str) and v.strip() for c in ("model", "dataset", "task", "metric")
                       for v in table[c])
        check = results.check_table(path)
        if check.usable_header:
            results.repair_table(path)
            assert len(read_results(path)) == len(check.rows)


@pytest.mark.parametrize("n", SIZES)
def test_property_a_damaged_table_reads_as_valid_rows_or_one_error_naming_the_file(n):
    run(_damaged_tables_read_as_valid_rows_or_refused, n, DAMAGE)


def test_rows_record_their_manifest_and_old_tables_without_the_column_still_read(tmp_path):
    path = tmp_path / "results.csv"
    pd.DataFrame([{"model": "old", "dataset": "UCM", "task": "retrieval", "metric": "mR", "value": 30.0,
                   "seed": 0, "split": "test"}]).to_csv(path, index=False)   # a table written before the column
    table = append_results([Result("new", "UCM", "retrieval", "mR", 31.0, seed=0, manifest="ab" * 32)], path)
    assert list(table["model"]) == ["old", "new"] and table["manifest"].iloc[1] == "ab" * 32
    assert pd.isna(read_results(path)["manifest"].iloc[0]) and Result("m", "d", "t", "x", 1.0).manifest == ""


def test_a_seed_beyond_2_53_is_refused_not_stored_as_another_number(tmp_path):
    """A seed of 2**53 + 1 was written and read back as 2**53 (float64): now refused, naming it."""
    from rsdix.results import append_results
    append_results([Result("m", "d", "t", "x", 1.0, seed=2 ** 53)], tmp_path / "ok.csv")
    with pytest.raises(DataError, match=r"'seed' is 9007199254740993: beyond 2\*\*53"):
        append_results([Result("m", "d", "t", "x", 1.0, seed=2 ** 53 + 1), Result("m", "d", "t", "y", 1.0)],
                       tmp_path / "r.csv")


def test_a_damaged_study_table_is_one_error_naming_the_file(tmp_path):
    """The efficiency study and RESULTS.md read their tables with plain pd.read_csv: a damaged file
    gave pandas' ParserError without the file's name."""
    from rsdix.results import read_table
    bad = tmp_path / "runs.csv"
    bad.write_text('run,value\n"a,1\nb,2,3,4\n')
    with pytest.raises(DataError, match=r"runs.csv: not a readable CSV table"):
        read_table(bad)
    (tmp_path / "latin.csv").write_bytes("run\n\xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: not a readable CSV table"):
        read_table(tmp_path / "latin.csv")


def test_repair_keeps_the_header_when_a_damaged_line_stands_before_it(tmp_path):
    """Found by the property test: NUL bytes on a line before the header made repair write the NUL
    line as the header, and the repaired table did not read."""
    from rsdix.results import repair_table
    path = tmp_path / "results.csv"
    path.write_bytes(b"\0" * 8 + b"\n" + GOOD_TABLE.encode())
    check, aside = repair_table(path)
    assert len(read_results(path)) == 3 and aside.read_bytes().count(b"\0") == 8
