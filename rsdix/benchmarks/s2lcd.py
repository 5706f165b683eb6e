"""S2LCD construction throughput: read -> render -> tile/filter -> write PNG, on a synthetic
4-band 10 m scene (B02/B03/B04 at 10 m, B11 at 20 m so that resampling is exercised).

Reported as seconds per stage, megapixels per second and patches per second, plus each stage's
time as a ratio of the read time (ratios within one run are robust to a noisy machine).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

from rsdix.s2.products import read_scene
from rsdix.s2.render import render_true_colour
from rsdix.s2.tiling import tile_scene, write_patches


def _synthetic_scene(folder: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    for band, res in (("B02", 10), ("B03", 10), ("B04", 10), ("B11", 20)):
        n = size * 10 // res
        data = rng.integers(1000, 4000, (1, n, n)).astype(np.uint16)
        with rasterio.open(folder / f"{band}.tif", "w", driver="GTiff", count=1, height=n, width=n,
                           dtype="uint16", crs="EPSG:32632", transform=from_origin(600000, 5000000, res, res)) as dst:
            dst.write(data)


def run(quick: bool = True) -> list[dict]:
    size = 1024 if quick else 4096
    patch = 224
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scene"
        folder.mkdir()
        _synthetic_scene(folder, size)
        t0 = time.perf_counter()
        scene = read_scene(folder, bands=("B02", "B03", "B04", "B11"), offset=-1000)
        t1 = time.perf_counter()
        rgb = render_true_colour(scene, "percentile")
        t2 = time.perf_counter()
        tiling = tile_scene(scene, size=patch, rgb=rgb, max_cloud=1.0)
        t3 = time.perf_counter()
        table = write_patches(tiling, Path(tmp) / "patches", fmt="png")
        t4 = time.perf_counter()
    n_patches = int((table["filename"] != "").sum())
    megapixels = size * size / 1e6
    stages = {"read": t1 - t0, "render": t2 - t1, "tile_filter": t3 - t2, "write_png": t4 - t3}
    for stage, seconds in stages.items():
        rows.append({"benchmark": "s2lcd", "stage": stage, "scene_px": size, "patch_px": patch,
                     "patches": n_patches, "seconds": seconds, "megapixels_per_s": megapixels / max(seconds, 1e-9),
                     "ratio_to_read": seconds / max(stages["read"], 1e-9)})
    total = sum(stages.values())
    rows.append({"benchmark": "s2lcd", "stage": "total", "scene_px": size, "patch_px": patch, "patches": n_patches,
                 "seconds": total, "megapixels_per_s": megapixels / total, "patches_per_s": n_patches / total,
                 "ratio_to_read": total / max(stages["read"], 1e-9)})
    return rows


if __name__ == "__main__":  # pragma: no cover

    print(pd.DataFrame(run(quick=True)).to_string(index=False))
