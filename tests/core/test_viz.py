"""The shared plot helpers: one colour per model, intervals that stay in the metric's range."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from rsdix import viz  # noqa: E402


def test_every_run_of_a_method_shares_its_colour():
    for name in ("rsdix_s0", "rsdix_s2", "rsdix_frac0.1_s1", "rsdix_s0-ema", "clipcap-rsdix_s0-frozen", "RSDiX"):
        assert viz.model_key(name) == "rsdix", name
        assert viz.model_colour(name) == viz.MODEL_COLOURS["rsdix"], name
    assert viz.model_key("rsdix-long_s0") == "rsdix-long" and viz.model_key("rsdix-sbert_s1-ema") == "rsdix-sbert"
    assert len(set(viz.MODEL_COLOURS.values())) == len(viz.MODEL_COLOURS)      # distinct colours
    # a model not in the palette: the same colour every time, from the extra colours
    assert viz.model_colour("my-model_s0") == viz.model_colour("my-model_s3") in viz.EXTRA_COLOURS
    assert viz.model_colour("RemoteCLIP-ViT-B-32=ViT-B-32@/x.pt") == viz.MODEL_COLOURS["remoteclip"]


def test_caption_is_written_under_the_axes(tmp_path):
    fig = matplotlib.pyplot.figure()
    fig.add_subplot().plot([0, 1])
    viz.caption(fig, "whiskers: 95% Wilson interval")
    assert fig.texts[0].get_text() == "whiskers: 95% Wilson interval"
    assert viz.save(fig, tmp_path / "f.png").is_file()
