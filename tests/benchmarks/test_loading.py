"""rsdix.benchmarks.loading: workers for a training rate; docs/paper.md's loader table is the
committed rows of figures/bench.csv."""
from __future__ import annotations

import pandas as pd

from rsdix.benchmarks import loading
from rsdix.paths import repo_root


def test_workers_for_a_rate():
    assert loading.workers_for(5000, 300) == 17 and loading.workers_for(600, 300) == 2
    assert loading.workers_for(5000, 0) == 0


def test_docs_paper_holds_the_committed_loader_table():
    table = pd.read_csv(repo_root() / "figures" / "bench.csv")
    rows = table[table["module"] == "loading"].to_dict("records")
    assert any("uint8" in r["metric"] for r in rows) and any("workers for" in r["metric"] for r in rows)
    assert loading.markdown(rows) in (repo_root() / "docs" / "paper.md").read_text()
