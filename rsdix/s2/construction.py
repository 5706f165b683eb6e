"""The S2LCD construction run (notebook 02): its config, its scenes, and the patches it builds.

1. **Read** a scene to reflectance on one grid: :func:`rsdix.s2.products.read_scene`.
2. **Render** true colour: :func:`rsdix.s2.render.render_true_colour`.
3. **Tile** and filter (no-data, cloud): :func:`rsdix.s2.tiling.tile_scene`.
4. **Write** kept patches and the sidecar table: :func:`rsdix.s2.tiling.write_patches`.

Captions, splits and statistics follow in :mod:`rsdix.s2.caption_files`, :mod:`rsdix.s2.splits`
and :mod:`rsdix.s2.corpora`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import pandas as pd

from rsdix.config import from_dict, option
from rsdix.errors import ConfigError, DataError
from rsdix.log import get_logger
from rsdix.paths import data_root as resolve
from rsdix.s2.products import read_scene
from rsdix.s2.render import render_true_colour
from rsdix.s2.splits import DEFAULT_FRACTIONS
from rsdix.s2.tiling import Tiling, tile_scene, write_patches, write_sidecar
from rsdix.utils import progress

log = get_logger(__name__)


@dataclass
class SceneSpec:
    """One scene of a construction run; ``path`` is relative to the data root."""

    path: str
    offset: float | None = None       # state the radiometric offset when the product does not
    bands: list | None = field(default_factory=lambda: ["B02", "B03", "B04", "B08"])  # None: all
    resolution: float | None = option(None, min=0, min_exclusive=True)
    size: int = option(224, min=1)
    stride: int | None = option(None, min=1)


@dataclass
class S2LCDConfig:
    scenes: list = field(default_factory=list)       # SceneSpec mappings
    stretch: Literal["fixed", "percentile"] = "fixed"   # see render_true_colour
    vmin: float = 0.0
    vmax: float = 0.3
    pct: tuple = (2.0, 98.0)
    edge: Literal["drop", "shift"] = "drop"
    max_nodata: float = option(0.0, min=0, max=1)
    max_cloud: float = option(0.05, min=0, max=1)
    cloud_method: Literal["auto", "scl", "spectral"] = "auto"
    fmt: Literal["png", "jpg", "jpeg", "tif"] = "png"
    fractions: tuple = DEFAULT_FRACTIONS
    block_m: float = option(5000.0, min=0, min_exclusive=True)
    compare: tuple = ("UCM", "Sydney", "RSICD", "RSITMD")
    sample_images: int = option(500, min=1)
    repeats: int = option(5, min=1)

    def validate(self) -> None:
        if self.vmax <= self.vmin:
            raise ConfigError(f"vmax: {self.vmax} must be above vmin ({self.vmin})")
        if len(self.pct) != 2 or not 0 <= self.pct[0] < self.pct[1] <= 100:
            raise ConfigError(f"pct: {list(self.pct)} must be two percentiles, low < high, in 0..100")
        if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1.0) > 1e-6:
            raise ConfigError(f"fractions: {list(self.fractions)} must be 3 non-negative numbers summing to 1")
        scene_specs(self)   # every scene mapping is a valid SceneSpec


def scene_specs(cfg: S2LCDConfig) -> list[SceneSpec]:
    return [s if isinstance(s, SceneSpec) else from_dict(SceneSpec, dict(s), f"scenes[{i}]")
            for i, s in enumerate(cfg.scenes)]


def describe_run(cfg: S2LCDConfig) -> str:
    """The scenes of a run (one row each) and its render and filter settings, as text."""
    scenes = pd.DataFrame([vars(s) for s in scene_specs(cfg)]).to_string(index=False)
    return (f"{scenes}\nstretch={cfg.stretch} vmin={cfg.vmin} vmax={cfg.vmax}  max_nodata={cfg.max_nodata} "
            f"max_cloud={cfg.max_cloud}")


def build_patches(cfg: S2LCDConfig, out_dir: str | os.PathLike, data_root=None) -> tuple[list[Tiling], pd.DataFrame]:
    """Read, render, tile, filter and write every scene of ``cfg``; writes ``patches.csv``
    (all patches, kept or not, with georeference) under ``out_dir``. Returns the tilings and
    the table."""
    root = resolve(data_root)
    out_dir = Path(out_dir)
    tilings, tables = [], []
    specs = [s for s in scene_specs(cfg) if (root / s.path).exists()]
    for spec in scene_specs(cfg):
        if not (root / spec.path).exists():   # a user's own root without this repository's test scenes
            log.warning(f"S2LCD construction: skipping scene {spec.path}: not under the data root {root} "
                        f"(docs/data.md lists the scenes; `s2lcd.scenes` in the config chooses them)")
    if not specs:
        raise DataError(str(root), "none of the S2LCD scenes of `s2lcd.scenes` is under this data root: "
                        + ", ".join(str(s.path) for s in scene_specs(cfg)))
    for spec in progress(specs, desc="scenes"):
        scene = read_scene(root / spec.path, bands=spec.bands, resolution=spec.resolution, offset=spec.offset)
        rgb = render_true_colour(scene, cfg.stretch, cfg.vmin, cfg.vmax, tuple(cfg.pct))
        tiling = tile_scene(scene, size=spec.size, stride=spec.stride, edge=cfg.edge, max_nodata=cfg.max_nodata,
                            max_cloud=cfg.max_cloud, cloud_method=cfg.cloud_method, rgb=rgb)
        tiling.table = write_patches(tiling, out_dir / "images", fmt=cfg.fmt)
        tilings.append(tiling)
        tables.append(tiling.table)
    table = pd.concat(tables, ignore_index=True)
    write_sidecar(table, out_dir / "patches.csv")
    return tilings, table


TILING_METRICS = ("patches", "removed_nodata", "removed_cloud", "kept")


def tiling_counts(tilings: Sequence[Tiling]) -> pd.DataFrame:
    """One row per scene: patches, what each filter removed, kept, cloud method and fractions."""
    return pd.DataFrame([t.counts for t in tilings])


def tiling_rows(counts: pd.DataFrame, profile: str = "", seed: int | None = None) -> list[dict]:
    """Result rows (``rsdix.results`` schema) of the tiling counts: one per scene and metric of
    :data:`TILING_METRICS`, model ``s2lcd-pipeline``, task ``s2lcd_tiling``, split ``all``."""
    return [result_row("s2lcd-pipeline", c["scene"], "s2lcd_tiling", m, c[m], profile=profile, seed=seed)
            for c in counts.to_dict("records") for m in TILING_METRICS]


def result_row(model: str, dataset: str, task: str, metric: str, value, split: str = "all", profile: str = "",
               seed: int | None = None, n: int | None = None) -> dict:
    """A result row as :class:`rsdix.results.Result` writes it (every field, no extras)."""
    return dict(model=model, dataset=dataset, task=task, metric=metric, value=value, seed=seed, split=split, n=n,
                ci_low=None, ci_high=None, profile=profile, note="")
