"""True-colour rendering of a Sentinel-2 scene (B04/B03/B02) to 8 bit.

``fixed`` maps reflectance ``[vmin, vmax]`` (default 0..0.3) linearly to 0..255; ``percentile``
maps each band's ``pct`` percentiles (default 2, 98) *of the whole scene* to 0..255, so that
every patch of a scene shares one stretch.
"""
from __future__ import annotations

import numpy as np

from rsdix.data.raster import TRUE_COLOUR, stretch_to_uint8
from rsdix.s2.products import Scene


def render_true_colour(scene: Scene, method: str = "fixed", vmin: float = 0.0, vmax: float = 0.3,
                       pct: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """The scene in true colour (B04, B03, B02) as ``uint8 (H, W, 3)``; no-data is black.

    ``percentile`` statistics are computed over the whole scene's valid pixels, so patches of
    one scene share one stretch (a per-patch stretch would make a lake patch and a forest patch
    look alike).
    """
    rgb = np.stack([scene.band(b) for b in TRUE_COLOUR])
    rgb = np.where(scene.valid[None], rgb, np.nan)
    return stretch_to_uint8(rgb, method=method, vmin=vmin, vmax=vmax, pct=tuple(pct))
