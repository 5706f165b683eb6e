"""`make bench`'s page: one small table per benchmark (what, value, goal, ok, mode, machine), its own
fields on one line under it, every row and field in the CSV; rewritten from the CSV alone; quick
rows judged against no goal."""
from __future__ import annotations

import pandas as pd

import sys
import types

import rsdix.benchmarks as benchmarks
from rsdix.benchmarks import bench_markdown, regenerate_markdown, write_bench

ENV = {"torch": "2.14.1", "cpu_count": 2, "cpu_model": "AMD EPYC", "device": "cpu", "git_commit": "abc1234",
       "time_utc": "2026-11-25 16:13"}
TABLE = pd.DataFrame([
    {"module": "train", "benchmark": "train step", "metric": "time_ratio", "value": 1.328, "unit": "x",
     "goal": "<= 1.40", "ok": True, "rsdix_step_s": 0.427, **ENV},
    {"module": "dino", "benchmark": "dino step", "metric": "time_ratio", "value": 3.54, "unit": "x",
     "goal": "<= 3.0", "ok": False, "dino_step_s": 1.1, **ENV},
    *[{"module": "s2lcd", "benchmark": "s2lcd", "stage": stage, "seconds": s, "patches": 324.0, **ENV}
      for stage, s in (("read", 3.72), ("total", 7.23))],
])


def _tables(text: str) -> dict[str, list[str]]:
    out = {}
    for part in text.split("\n## ")[1:]:
        title, body = part.split("\n", 1)
        out[title] = [line for line in body.splitlines() if line.startswith("| ")]
    return out


def test_one_small_table_per_benchmark():
    text = bench_markdown(TABLE)
    tables = _tables(text)
    assert list(tables) == ["train step", "dino step", "s2lcd"]
    for rows in tables.values():
        assert rows[0] == "| what | value | goal | ok | mode | machine |"
    assert tables["train step"][1] == \
        "| time_ratio | 1.328 x | <= 1.40 | yes | full | cpu, AMD EPYC, 2 cores, torch 2.14.1 |"
    assert "| **no** |" in tables["dino step"][1]                      # a missed goal stands out
    assert tables["s2lcd"][1:] == ["| read | 3.72 s | | | full | cpu, AMD EPYC, 2 cores, torch 2.14.1 |",
                                   "| total | 7.23 s | | | full | cpu, AMD EPYC, 2 cores, torch 2.14.1 |"]
    old = bench_markdown(TABLE.drop(columns="cpu_model"))               # rows from before the model was recorded
    assert "cpu, CPU model not recorded, 2 cores" in old
    # a benchmark's own fields under its table only, never a column of every table
    train = text.split("## train step")[1].split("## dino step")[0]
    assert "rsdix_step_s 0.427" in train and "dino_step_s" not in train and "commit abc1234" in train
    assert "patches 324" in text.split("## s2lcd")[1]


def test_the_page_is_rewritten_from_the_csv(tmp_path):
    csv, md = write_bench(TABLE, tmp_path / "bench")
    assert pd.read_csv(csv).shape == TABLE.shape
    first = md.read_text()
    md.unlink()
    assert regenerate_markdown(tmp_path / "bench").read_text() == first


def test_quick_rows_say_quick_and_are_judged_against_no_goal(tmp_path, monkeypatch):
    fake = types.ModuleType("rsdix.benchmarks.fake")
    fake.run = lambda quick=False: [{"benchmark": "fake step", "metric": "time_ratio", "value": 9.0, "unit": "x",
                                     "goal": "<= 3.0", "ok": False}]
    monkeypatch.setitem(sys.modules, "rsdix.benchmarks.fake", fake)
    monkeypatch.setattr(benchmarks, "modules", lambda: ["fake"])
    monkeypatch.chdir(tmp_path)
    assert benchmarks.run_all(quick=True) == 0
    quick = pd.read_csv(tmp_path / "runs" / "bench-quick.csv")          # not over the committed full page
    assert quick.loc[0, "mode"] == "quick" and pd.isna(quick.loc[0, "goal"]) and pd.isna(quick.loc[0, "ok"])
    assert "| time_ratio | 9 x | | | quick |" in (tmp_path / "runs" / "bench-quick.md").read_text()
    assert benchmarks.run_all(quick=False, out=str(tmp_path / "full")) == 0
    full = pd.read_csv(tmp_path / "full.csv")
    assert full.loc[0, "mode"] == "full" and full.loc[0, "goal"] == "<= 3.0" and not full.loc[0, "ok"]
    # the GPU comparison takes minutes on a CPU even at its quick sizes: --quick leaves it out there
    monkeypatch.setattr(benchmarks, "modules", lambda: ["fake", "gpu"])
    monkeypatch.setattr(benchmarks.torch.cuda, "is_available", lambda: False)
    assert benchmarks.run_all(quick=True) == 0
    quick = pd.read_csv(tmp_path / "runs" / "bench-quick.csv").set_index("module")
    assert quick.loc["gpu", "metric"].startswith("not run: --quick without a CUDA device")
