"""Notebook 05's figures draw from result rows and save where asked; colours come from the one
palette, intervals stay inside 0-100 %, published stars only on the same dataset release."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from PIL import Image  # noqa: E402

from rsdix import viz  # noqa: E402
from rsdix.evaluation.eval_figures import (plot_confusion, plot_few_shot, plot_retrieval_gallery,  # noqa: E402
                                          plot_zero_shot_top1, same_release)
from rsdix.evaluation.published import published_for  # noqa: E402
from rsdix.evaluation.retrieval import GalleryQuery  # noqa: E402
from rsdix.evaluation.zero_shot import ZeroShotResult  # noqa: E402


def _handle(ax, label):
    handles, labels = ax.get_legend_handles_labels()
    return handles[labels.index(label)]


def test_plots_save(tmp_path):
    results = pd.DataFrame([dict(model=m, dataset=d, task="zero-shot", metric="top1", value=v, n=100)
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
    assert fig.axes[0].get_ylabel() and fig.axes[0].get_xlabel() and fig.texts, "axis labels and a caption"


def test_the_eurosat_ms_star_is_not_the_rgb_eurosat_number():
    """The reference rows copied to EuroSAT-MS (published on EuroSAT RGB) draw no star there;
    WHU-RS19's own published number does (the old figure starred EuroSAT-MS at 42.6)."""
    published = published_for("zero-shot", "top1", "RSDiX-CLIP", "ViT-B/32")
    assert "EuroSAT-MS" in published.index and "EuroSAT-MS" not in same_release(published).index
    results = pd.DataFrame([dict(model="rsdix_s0", dataset=d, task="zero-shot", metric="top1", value=v, n=n)
                            for d, v, n in (("EuroSAT-MS", 12.0, 2700), ("WHU-RS19", 30.0, 1005))])
    fig = plot_zero_shot_top1(results, {"EuroSAT-MS": 10, "WHU-RS19": 19}, published, "published")
    stars = _handle(fig.axes[0], "published").get_offsets()
    assert stars.tolist() == [[1.0, published["WHU-RS19"]]]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["EuroSAT-MS", "WHU-RS19"]


def test_zero_shot_intervals_respect_the_range_and_seeds_are_shown():
    """Three seeds whose Student-t interval would reach below 0 % (as 03's -1.9 % did) get a
    bootstrap interval inside [min, max] of the seeds; one seed gets Wilson over its n images."""
    values = [0.5, 1.0, 20.0]
    rows = [dict(model=f"m_s{s}", dataset="UCM", task="zero-shot", metric="top1", value=v, n=210, seed=s)
            for s, v in enumerate(values)] + [dict(model="k_s0", dataset="UCM", task="zero-shot", metric="top1",
                                                   value=0.0, n=210, seed=0)]
    fig = plot_zero_shot_top1(pd.DataFrame(rows), {"UCM": 21})
    ax = fig.axes[0]
    bars = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    assert set(bars) == {"m", "k"}                       # seeds pooled into one bar per method
    assert to_hex(bars["m"].patches[0].get_facecolor()) == to_hex(viz.model_colour("m"))
    segments = [seg for c in ax.containers if isinstance(c, ErrorbarContainer) for seg in c.lines[2][0].get_segments()]
    lows, highs = [seg[:, 1].min() for seg in segments], [seg[:, 1].max() for seg in segments]
    assert len(segments) == 2 and min(lows) >= 0.0 and max(highs) <= 100.0
    assert lows[0] >= 0.5 - 1e-9 and highs[0] <= 20.0      # m, bootstrap: inside the seeds' range
    assert lows[1] == 0.0 and 0.0 < highs[1] < 5.0            # k, 0 of 210 right: Wilson [0, 1.8]
    dots = [c.get_offsets() for c in ax.collections if c.__class__.__name__ == "PathCollection"]
    assert any(sorted(d[:, 1].tolist()) == values for d in dots), "the three seeds are drawn"
    assert "bootstrap" in fig.texts[0].get_text() and "Wilson" in fig.texts[0].get_text()


def test_counting_answers_figure_shows_true_counts_and_each_models_answers(tmp_path):
    import pandas as pd

    from rsdix.evaluation.eval_figures import plot_counting_answers

    answers = pd.DataFrame({"model": ["a_s0"] * 4 + ["b_s0"] * 4, "true": [2, 2, 1, 4] * 2,
                            "predicted": [4, 4, 4, 4, 2, 2, 2, 1]})
    fig = plot_counting_answers(answers, path=tmp_path / "answers.png")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["true counts", "a_s0 (top-1 25.0%)", "b_s0 (top-1 50.0%)"]
    assert (tmp_path / "answers.png").exists()


def test_retrieval_gallery_figure_marks_the_true_image(tmp_path):
    class Images:   # what the plot reads of a caption set: load(i) -> a PIL image
        def load(self, i):
            return Image.new("RGB", (8, 8), (40 * i, 0, 0))

    gallery = [GalleryQuery("two planes on the apron", 2, [2, 0, 1]), GalleryQuery("a beach", 3, [0, 1, 2])]
    assert gallery[0].rank == 1 and gallery[1].rank is None
    fig = plot_retrieval_gallery(Images(), gallery, "toy", path=tmp_path / "gallery.png")
    assert (tmp_path / "gallery.png").stat().st_size > 0
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1 \u2713 match", "2", "3", "1", "2", "3"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("rank 1" in t for t in texts) and any("not in the top 3" in t for t in texts)
