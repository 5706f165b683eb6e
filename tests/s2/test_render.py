"""True-colour rendering (rsdix.s2.render): the fixed and the scene-wide percentile stretch."""
from __future__ import annotations

import numpy as np

from s2_fixtures import scene  # noqa: F401 (a pytest fixture)
from rsdix.s2.render import render_true_colour


def test_render_stretch(scene):
    fixed = render_true_colour(scene, "fixed", vmin=0.0, vmax=0.3)
    r = scene.band("B04")
    expected = (np.clip(r / 0.3, 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(fixed[..., 0], expected)
    pct = render_true_colour(scene, "percentile", pct=(0, 100))
    assert pct[..., 0].min() == 0 and pct[..., 0].max() == 255
