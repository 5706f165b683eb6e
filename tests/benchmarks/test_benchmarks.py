"""`make bench`'s page: one small table per benchmark (what, value, goal, ok, machine), its own
fields on one line under it, every row and field in the CSV; rewritten from the CSV alone."""
from __future__ import annotations

import pandas as pd

from rsdix.benchmarks import bench_markdown, regenerate_markdown, write_bench

ENV = {"torch": "2.14.1", "cpu_count": 2, "device": "cpu", "git_commit": "abc1234", "time_utc": "2026-11-25 16:13"}
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
        assert rows[0] == "| what | value | goal | ok | machine |"
    assert tables["train step"][1] == "| time_ratio | 1.328 x | <= 1.40 | yes | cpu, 2 CPU cores, torch 2.14.1 |"
    assert "| **no** |" in tables["dino step"][1]                      # a missed goal stands out
    assert tables["s2lcd"][1:] == ["| read | 3.72 s | | | cpu, 2 CPU cores, torch 2.14.1 |",
                                   "| total | 7.23 s | | | cpu, 2 CPU cores, torch 2.14.1 |"]
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
