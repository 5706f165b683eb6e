"""Figures of the construction (rsdix.s2.s2lcd_figures): drawn from a small tiling and saved as PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from s2_fixtures import scene  # noqa: E402,F401 (a pytest fixture)
from rsdix.s2.s2lcd_figures import plot_caption_stats, plot_patches, plot_scenes  # noqa: E402
from rsdix.s2.tiling import tile_scene  # noqa: E402


def test_figures_are_saved(scene, tmp_path):
    tiling = tile_scene(scene, size=4, max_cloud=0.0, max_nodata=1.0)
    tiling.table.loc[0, "status"] = "cloud"                 # one rejected patch to show
    fig = plot_scenes([tiling], path=tmp_path / "scenes.png")
    assert len(fig.axes) == 2 and (tmp_path / "scenes.png").stat().st_size > 0
    fig = plot_patches([tiling], seed=0, path=tmp_path / "patches.png")
    assert sum(bool(ax.images) for ax in fig.axes) == 6 + 1 and (tmp_path / "patches.png").exists()
    stats = pd.DataFrame({"dataset": ["UCM", "S2LCD"], "vocabulary@2": [5, 6], "tokens_per_caption_mean": [3.0, 4.0],
                          "distinct_words_per_image": [2.0, 3.0], "distinct_2@2": [0.5, 0.6], "self_overlap": [0.2, 0.1]})
    fig = plot_caption_stats(stats, 2, path=tmp_path / "stats.png")
    assert len(fig.axes) == 5 and (tmp_path / "stats.png").exists()
