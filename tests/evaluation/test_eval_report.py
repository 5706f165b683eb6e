"""Notebook 05's tables and markdown summary, read off result rows."""
from __future__ import annotations

import pandas as pd
import pytest

from rsdix.evaluation.eval_report import (CountingBaselines, best_zero_shot, chance, describe_results, metric_table,
                                     probe_note, probe_table, probe_tasks, zero_shot_table)


def rows():
    out = []
    for model, base in (("a_s0", 10.0), ("b_s0", 30.0)):
        out += [dict(model=model, dataset="UCM", task="zero-shot", metric="top1", value=base, note=""),
                dict(model=model, dataset="WHU-RS19", task="zero-shot", metric="top1", value=base + 20, note=""),
                dict(model=model, dataset="WHU-RS19", task="zero-shot", metric="top5", value=base + 40, note=""),
                dict(model=model, dataset="UCM", task="retrieval", metric="mR", value=base / 2, note=""),
                dict(model=model, dataset="WHU-RS19", task="few-shot-16", metric="top1", value=base + 3, note="fs"),
                dict(model=model, dataset="WHU-RS19", task="few-shot-2", metric="top1", value=base + 1, note="fs"),
                dict(model=model, dataset="WHU-RS19", task="linear-probe", metric="top1", value=base + 5,
                     note="no official split"),
                dict(model=model, dataset="UCM", task="counting", metric="top1", value=base + 7, note="")]
    return pd.DataFrame(out)


def test_tables_from_rows():
    results = rows()
    assert chance(4, "top1") == 25.0 and chance(4, "top5") == 100.0 and chance(20, "top5") == 25.0
    table = zero_shot_table(results, {"UCM": 21, "WHU-RS19": 19})
    assert list(table.columns) == ["dataset", "metric", "chance", "a_s0", "b_s0"]
    assert table["chance"].tolist() == pytest.approx([100 / 21, 100 / 19, 500 / 19])
    assert best_zero_shot(results) == ("b_s0", "WHU-RS19")
    assert probe_tasks(results) == ["linear-probe", "knn", "few-shot-2", "few-shot-16"]
    probes = probe_table(results)
    assert probes["task"].tolist() == ["linear-probe", "few-shot-2", "few-shot-16"]
    assert probe_note(results) == "fs" and probe_note(results.iloc[:0]) == "no probe rows"
    assert metric_table(results, "counting")["a_s0"].tolist() == [17.0]


def test_zero_shot_table_names_the_images_and_marks_not_zero_shot_rows():
    results = rows()
    results["split"] = ["ucm_captions:test" if d == "UCM" else "all" for d in results["dataset"]]
    results["caveat"] = ["not zero-shot: trained on ucm_captions" if (d, m) == ("UCM", "a_s0") else ""
                         for d, m in zip(results["dataset"], results["model"])]
    table = zero_shot_table(results, {"UCM": 21, "WHU-RS19": 19})
    assert list(table.columns) == ["dataset", "images", "metric", "chance", "a_s0", "b_s0", "caveat"]
    assert table["images"].tolist() == ["ucm_captions:test", "all", "all"]
    assert table["caveat"].tolist() == ["a_s0: not zero-shot: trained on ucm_captions", "", ""]
    text = describe_results(results, {"UCM": 21, "WHU-RS19": 19}, majority=50.0)
    assert "a_s0**: mean zero-shot top-1 20.0% (includes UCM (not zero-shot: trained on ucm_captions))" in text
    assert "b_s0**: mean zero-shot top-1 40.0%," in text


def test_counting_baselines_and_summary():
    base = CountingBaselines({1: 1, 2: 3})
    assert base.n == 4 and base.majority_count == 2 and base.majority == 75.0
    assert base.describe().splitlines()[1] == "chance top-1: 10.0%; always answering 2: 75.0%"
    text = describe_results(rows(), {"UCM": 20, "WHU-RS19": 20}, base.majority, not_evaluated=["CLIP"])
    lines = text.splitlines()
    assert lines[0] == ("* **a_s0**: mean zero-shot top-1 20.0%, UCM retrieval mR 5.0, linear probe 15.0%, "
                        "counting top-1 17.0% (majority baseline 75.0%)")
    assert lines[2] == "* chance: mean zero-shot top-1 5.0% over these datasets"
    assert lines[3] == "* not evaluated (weights unavailable offline): CLIP"


def test_the_counting_note_explains_from_the_rows():
    import pandas as pd

    from rsdix.evaluation.eval_report import CountingBaselines, counting_note

    rows = [{"model": m, "dataset": "UCM", "task": "counting", "metric": k, "value": v}
            for m, vals in {"a_s0": (11.2, 95.0, 10.6), "b_s0": (71.0, 97.0, 71.8)}.items()
            for k, v in zip(("top1", "modal_share", "mean_image_top1"), vals)]
    text = counting_note(pd.DataFrame(rows), CountingBaselines({1: 18, 2: 122, 4: 18, 3: 10, 7: 1, 8: 1}))
    assert "from 11.2% (a_s0) to 71.0% (b_s0)" in text and "majority baseline 71.8%" in text
    assert "95-97% of the captions" in text and "at most 0.8 points" in text
    assert "hardly depends on the image" in text and '"two" 71.8%, "one" 10.6%, "four" 10.6%' in text
    rows[2]["value"] = 40.0               # a model whose top-1 moves with its images: no such claim
    assert "hardly depends" not in counting_note(pd.DataFrame(rows), CountingBaselines({2: 10, 1: 5}))
