"""Cloudy pixels of a scene: the L2A scene classification (SCL) or a simple spectral test,
and how the two (and ESA's ``cloudyPixelPercentage``) compare on real scenes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from rsdix.errors import DataError
from rsdix.s2.products import SCL_CLOUD, Scene


def cloud_mask(scene: Scene, method: str = "auto", scl_classes: Sequence[int] = SCL_CLOUD,
               brightness: float = 0.25, whiteness: float = 0.15, hot: float = 0.0) -> tuple[np.ndarray, str]:
    """Cloudy pixels of a scene and the method used (``"scl"`` or ``"spectral"``).

    ``scl``: SCL class in ``scl_classes``. ``spectral`` (no SCL, e.g. L1C): a pixel is cloudy when
    all of

    * brightness: mean visible reflectance ``(B02 + B03 + B04) / 3 > brightness``;
    * whiteness (Fmask's index): ``sum_b |B_b - mean| / mean < whiteness`` over B02, B03, B04
      (clouds have a flat visible spectrum; soil and vegetation do not). Fmask uses 0.7 as one
      of many tests; alone it must be stricter: 0.15 keeps bright limestone (about 0.2) and
      desert out, while the clouds of the L1C test tile sit near 0.08;
    * haze-optimised transform (Zhang et al. 2002, Fmask): ``B02 - 0.5 * B04 - 0.08 > hot``, which
      separates cloud and haze (blue-bright) from bright soil and sand (red-bright).

    Snow and bright white rooftops pass this test too (a SWIR band would separate snow); use SCL
    when the product has it.
    """
    if method not in ("auto", "scl", "spectral"):
        raise ValueError(f"unknown cloud method {method!r}: use 'auto', 'scl' or 'spectral'")
    if method == "scl" or (method == "auto" and scene.scl is not None):
        if scene.scl is None:
            raise DataError(scene.source, "cloud method 'scl' but the scene has no SCL layer")
        return np.isin(scene.scl, list(scl_classes)) & scene.valid, "scl"
    b, g, r = (scene.band(x) for x in ("B02", "B03", "B04"))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (b + g + r) / 3.0
        white = (np.abs(b - mean) + np.abs(g - mean) + np.abs(r - mean)) / mean
        cloud = (mean > brightness) & (white < whiteness) & (b - 0.5 * r - 0.08 > hot)
    return cloud & scene.valid, "spectral"


def cloud_check(scenes: Iterable[Scene]) -> pd.DataFrame:
    """Per scene: the cloud share of valid pixels by the simple spectral test, and where the product
    has them, by its scene classification layer (SCL; with pixel agreement and IoU of the two
    masks) and by ESA's ``tileInfo.json`` ``cloudyPixelPercentage`` (as fractions)."""
    rows = []
    for scene in scenes:
        spectral, _ = cloud_mask(scene, "spectral")
        valid = max(int(scene.valid.sum()), 1)
        row = dict(scene=scene.name, spectral_cloud=float(spectral.sum() / valid))
        if scene.scl is not None:
            scl, _ = cloud_mask(scene, "scl")
            row.update(scl_cloud=float(scl.sum() / valid),
                       pixel_agreement=float((scl == spectral)[scene.valid].mean()),
                       iou=float((scl & spectral).sum() / max((scl | spectral).sum(), 1)))
        info = Path(scene.source) / "tileInfo.json"
        if info.exists():
            try:
                row["esa_cloudy_pixel_percentage"] = json.loads(info.read_text())["cloudyPixelPercentage"] / 100
            except (ValueError, KeyError) as exc:
                raise DataError(info, f"no readable cloudyPixelPercentage ({exc})") from exc
        rows.append(row)
    return pd.DataFrame(rows)


def describe_cloud_check(table: pd.DataFrame) -> str:
    """What :func:`cloud_check` found, one line per comparison (SCL, ESA) a scene has."""
    lines = []
    for _, r in table.iterrows():
        if pd.notna(r.get("scl_cloud")):
            lines.append(f"{r.scene}: SCL says {r.scl_cloud:.1%} cloud/shadow/cirrus, the simple test "
                         f"{r.spectral_cloud:.1%} (IoU {r.iou:.2f}): it misses thin cirrus and shadows, so prefer "
                         f"SCL when the product has it.")
        if pd.notna(r.get("esa_cloudy_pixel_percentage")):
            lines.append(f"{r.scene}: simple test {r.spectral_cloud:.1%} of valid pixels vs ESA "
                         f"{r.esa_cloudy_pixel_percentage:.1%}.")
    return "\n".join(lines)
