"""Protocol sensitivity: the table's spread by hand, published numbers beside the value under the
protocol they were published under, and one model evaluated under every protocol on hand-made data."""
from __future__ import annotations

import pandas as pd
import pytest

from evaluation_fixtures import class_folder, dict_bundle  # noqa: F401 (class_folder: a pytest fixture)
from rsdix.data.registry import REGISTRY, DatasetInfo
from rsdix.evaluation.protocols import protocol_markdown, protocols
from rsdix.evaluation.sensitivity import (DOCS_PAGE, docs_block, evaluate_protocols, sensitivity_table, with_published,
                                          write_sensitivity)
from rsdix.models.zoo import zoo_markdown
from rsdix.evaluation.suite import EvalConfig


def row(protocol, value, dataset="WHU-RS19", task="zero-shot", metric="top1", caveat=""):
    return {"model": "m", "dataset": dataset, "task": task, "metric": metric, "value": value, "n": 100,
            "protocol": protocol, "caveat": caveat}


def test_the_spread_of_one_number_over_protocols_by_hand():
    rows = pd.DataFrame([row("georsclip", 70.0), row("rsdix", 50.0), row("remoteclip", 40.0, caveat=""),
                         row("rsdix", 20.0, "UCM", "retrieval", "mR"), row("skyscript", 25.0, "UCM", "retrieval", "mR"),
                         row("rsdix", 99.0, "UCM", "retrieval", "i2t_R@1"),   # not a headline metric: left out
                         row("rsdix", 30.0, "UCM", "zero-shot", caveat="not zero-shot: trained on ucm_captions")])
    table = sensitivity_table(rows).set_index(["dataset", "task", "metric"])
    whu = table.loc[("WHU-RS19", "zero-shot", "top1")]
    assert (whu["min"], whu["max"], whu["range"], whu["protocols"]) == (40.0, 70.0, 30.0, 3)
    assert whu["rsdix"] == 50.0 and pd.isna(whu["skyscript"])
    assert table.loc[("UCM", "retrieval", "mR"), "range"] == 5.0 and ("UCM", "retrieval", "i2t_R@1") not in table.index
    assert table.loc[("UCM", "zero-shot", "top1"), "caveat"] == "not zero-shot: trained on ucm_captions"
    # protocol columns in protocols.yaml's order
    cols = [c for c in table.columns if c in protocols()]
    assert cols == [p for p in protocols() if p in cols]
    published = pd.DataFrame([{"model": "m", "dataset": "WHU-RS19", "task": "zero-shot", "metric": "top1",
                               "published": 96.12, "protocol": "remoteclip", "ref_source": "a paper"},
                              {"model": "m", "dataset": "AID", "task": "zero-shot", "metric": "top1",
                               "published": 91.3, "protocol": "remoteclip", "ref_source": "a paper"}])
    both = with_published(sensitivity_table(rows), published).set_index(["dataset", "task", "metric"])
    assert both.loc[("WHU-RS19", "zero-shot", "top1"), "ours_same_protocol"] == 40.0
    assert pd.isna(both.loc[("AID", "zero-shot", "top1"), "rsdix"])      # published, not evaluated here


def test_one_model_under_every_protocol_on_hand_made_data(class_folder, monkeypatch, tmp_path):
    monkeypatch.setitem(REGISTRY, "whu_rs19", DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "cls"))
    cfg = EvalConfig(zero_shot=["whu_rs19"], retrieval=[], split_from={})
    details: dict = {}
    rows = evaluate_protocols(dict_bundle(), config=cfg, model_name="dict", data_root=class_folder.parent,
                              details=details)
    assert set(rows["protocol"]) == set(protocols())
    top1 = rows[rows.metric == "top1"].set_index("protocol")
    # the dict model's one mislabelled forest image: 8/9 on every image, 3/3 on the last of each class
    assert top1.loc["rsdix", "value"] == pytest.approx(800 / 9) and top1.loc["remoteclip", "value"] == 100.0
    assert top1.loc["remoteclip", "n"] == 3 and top1.loc["georsclip", "n"] == 9
    assert len(set(rows["manifest"])) == 2          # every image, and RemoteCLIP's last 20%
    written = write_sensitivity(rows, tmp_path)
    table = pd.read_csv(written["table"])
    assert table["range"].iloc[0] == pytest.approx(100 - 800 / 9) and written["figure"].stat().st_size > 1000
    assert "| WHU-RS19" in written["markdown"].read_text()


def test_the_docs_tables_are_generated_from_the_yaml_files():
    text = DOCS_PAGE.read_text()
    assert docs_block(text, "protocols") == protocol_markdown(), "python -m rsdix.evaluation.sensitivity"
    assert docs_block(text, "zoo") == zoo_markdown(), "python -m rsdix.evaluation.sensitivity"
