"""``rsdix evaluate MODEL --protocol all`` (the sensitivity table and figure) and the protocols
``rsdix evaluate --help`` lists."""
from __future__ import annotations

import pandas as pd
import pytest

from evaluation_fixtures import class_folder  # noqa: F401 (a pytest fixture)
from rsdix.cli import main
from rsdix.data.registry import REGISTRY, DatasetInfo


def test_evaluate_help_lists_every_protocol(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = capsys.readouterr().out
    assert all(p in out for p in ("skyscript", "rs_transclip", "georsclip", "remoteclip", "clip_benchmark", "all"))


@pytest.mark.slow
def test_evaluate_under_every_protocol_writes_the_sensitivity_table(class_folder, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(REGISTRY, "whu_rs19", DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "cls"))
    out = tmp_path / "out"
    assert main(["evaluate", "rsdix-tiny", "split_from={}", "--config", "smoke", "--protocol", "all",
                 "--tasks", "zero-shot:whu_rs19", "--data-root", str(class_folder.parent), "--out", str(out)]) == 0
    table = pd.read_csv(out / "sensitivity.csv")
    assert len(table) == 1 and table["protocols"].iloc[0] == 7 and table["range"].iloc[0] >= 0
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["protocol"]) == {"rsdix", "remoteclip", "rsdix_paper", "georsclip", "clip_benchmark", "skyscript",
                                     "rs_transclip"}
    assert rows["manifest"].str.len().eq(64).all() and (out / "sensitivity.png").is_file()
    assert "written" in capsys.readouterr().out
