"""Notebook 05's figures draw from result rows and save where asked."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rsdix.evaluation.plots import plot_confusion, plot_few_shot, plot_zero_shot_top1  # noqa: E402
from rsdix.evaluation.zero_shot import ZeroShotResult  # noqa: E402


def test_plots_save(tmp_path):
    results = pd.DataFrame([dict(model=m, dataset=d, task="zero-shot", metric="top1", value=v)
                            for m, d, v in (("a", "UCM", 10.0), ("a", "AID", 20.0), ("b", "UCM", 15.0))]
                           + [dict(model="a", dataset="AID", task="linear-probe", metric="top1", value=40.0)])
    fig = plot_zero_shot_top1(results, {"UCM": 21, "AID": 30}, pd.Series({"AID": 50.0}), "published X",
                              path=tmp_path / "zs.png")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "chance" in labels and labels.count("published X") == 1 and (tmp_path / "zs.png").is_file()
    res = ZeroShotResult({"top1": 50.0}, np.array([[1, 1], [0, 2]]), ["x", "y"], None, [0, 0, 1, 1])
    plot_confusion(res, "t", path=tmp_path / "cm.png")
    assert (tmp_path / "cm.png").is_file()
    draws = pd.DataFrame({"dataset": "AID", "shots": [1, 1, 2, 2], "draw": [0, 1, 0, 1], "top1": [10.0, 12, 20, 22]})
    fig = plot_few_shot({"a": {"few_shot": draws}, "b": {"few_shot": pd.DataFrame()}}, results,
                        path=tmp_path / "fs.png")
    assert (tmp_path / "fs.png").is_file() and fig.axes[0].get_legend_handles_labels()[1] == ["a"]
