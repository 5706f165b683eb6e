"""The shared plot helpers: one colour per model, intervals that stay in the metric's range."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from rsdix import intervals, viz  # noqa: E402


def test_every_run_of_a_method_shares_its_colour():
    for name in ("rsdix_s0", "rsdix_s2", "rsdix_frac0.1_s1", "rsdix_s0-ema", "clipcap-rsdix_s0-frozen", "RSDiX"):
        assert viz.model_key(name) == "rsdix", name
        assert viz.model_colour(name) == viz.MODEL_COLOURS["rsdix"], name
    assert viz.model_key("rsdix-long_s0") == "rsdix-long" and viz.model_key("rsdix-sbert_s1-ema") == "rsdix-sbert"
    assert len(set(viz.MODEL_COLOURS.values())) == len(viz.MODEL_COLOURS)      # distinct colours
    # a model not in the palette: the same colour every time, from the extra colours
    assert viz.model_colour("my-model_s0") == viz.model_colour("my-model_s3") in viz.EXTRA_COLOURS
    assert viz.model_colour("RemoteCLIP-ViT-B-32=ViT-B-32@/x.pt") == viz.MODEL_COLOURS["remoteclip"]


def test_wilson_interval_matches_the_closed_form_and_stays_in_range():
    low, high = intervals.wilson_interval(50.0, 100)                 # p=0.5, n=100, z=1.96
    assert (low, high) == pytest.approx((40.383, 59.617), abs=1e-3)
    # the Wilson endpoints are the proportions q with |p_hat - q| = z * sqrt(q (1 - q) / n) (score test)
    k, n, z = 3, 40, stats.norm.ppf(0.975)
    for q in intervals.wilson_interval(100 * k / n, n):
        q /= 100
        assert abs(k / n - q) == pytest.approx(z * np.sqrt(q * (1 - q) / n))
    assert intervals.wilson_interval(0.0, 10)[0] == 0.0 and intervals.wilson_interval(100.0, 10)[1] == pytest.approx(100.0)
    assert intervals.wilson_interval(0.4, 10, scale=1.0)[1] <= 1.0
    with pytest.raises(ValueError):
        intervals.wilson_interval(120.0, 10)


def test_bootstrap_interval_never_leaves_the_values_range():
    values = [0.5, 1.0, 20.0]                    # a Student-t interval here reaches below 0
    t_low = np.mean(values) - stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert t_low < 0
    low, high = intervals.bootstrap_mean(values)
    assert 0.5 <= low < np.mean(values) < high <= 20.0
    assert intervals.bootstrap_mean([7.0]) == (7.0, 7.0)
    assert intervals.bootstrap_mean(values) == intervals.bootstrap_mean(values)       # seeded
    with pytest.raises(ValueError):
        intervals.bootstrap_mean([1.0, float("nan")])


def test_accuracy_interval_says_which_interval_it_is():
    assert intervals.accuracy_interval([30.0], 1005)[2] == "wilson"
    assert intervals.accuracy_interval([30.0, 31.0, 35.0], None)[2] == "bootstrap"
    assert intervals.accuracy_interval([30.0], None) == (30.0, 30.0, "none")


def test_caption_is_written_under_the_axes(tmp_path):
    fig = matplotlib.pyplot.figure()
    fig.add_subplot().plot([0, 1])
    viz.caption(fig, "whiskers: 95% Wilson interval")
    assert fig.texts[0].get_text() == "whiskers: 95% Wilson interval"
    assert viz.save(fig, tmp_path / "f.png").is_file()
