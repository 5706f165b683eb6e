"""A small synthetic data root in the registry's own layouts, for a first run without any data:
``make smoke`` and the paper dry run use it when the data root is missing (they say so in one line).

:func:`write_synthetic_root` writes, under ``root``:

* ``ucm_captions/``: UCM-Captions' layout (Karpathy ``dataset_ucm.json`` with train / val / test,
  ``images/N.jpg``, ``labels.csv``) over the 21 UCM classes, five template captions per image
  (with count words, so the counting task has something to count);
* ``whu_rs19/<Class>/``: WHU-RS19's 19 class folders of JPEGs;
* ``sentinel2/eurosat_ms/<Class>/``: EuroSAT-MS's 10 class folders of 13-band uint16 GeoTIFFs (64 px);
* ``sentinel2/l2a_dolomites_bands/``: one Level-2A scene, four float32 band files (B2, B3, B4, B8,
  EPSG:32632, digital numbers with the baseline 04.00 offset of +1000), as the shared data has it;
* ``captions_only/dataset_{rsicd,rsitmd,sydney}.json``: caption-only files for the text studies.

Images are procedural textures, one colour and pattern per class with per-image noise, so a model
can tell the classes apart: numbers computed on them test that the pipeline runs, nothing about
remote sensing. A ``SYNTHETIC.md`` at the root says so; :func:`is_synthetic` reads it.
"""
from __future__ import annotations

import colorsys
import json
import os
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from rsdix.log import get_logger
from rsdix.paths import data_root as resolve_data_root
from rsdix.utils import atomic_write_text

log = get_logger(__name__)

MARKER = "SYNTHETIC.md"
UCM_CLASSES = ("agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential",
               "forest", "freeway", "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark",
               "overpass", "parkinglot", "river", "runway", "sparseresidential", "storagetanks", "tenniscourt")
WHU_CLASSES = ("Airport", "Beach", "Bridge", "Commercial", "Desert", "Farmland", "footballField", "Forest", "Industrial",
               "Meadow", "Mountain", "Park", "Parking", "Pond", "Port", "railwayStation", "Residential", "River",
               "Viaduct")
EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
                   "Residential", "River", "SeaLake")
COUNT_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
OBJECTS = ("buildings", "trees", "cars", "boats", "tanks", "houses", "planes", "courts", "ponds")
CAPTIONS = ("there are {count} {objects} in the {name} area .", "a {name} scene with {count} {objects} .",
            "an aerial view of a {name} with some {objects} .", "many {objects} are near the {name} .",
            "this image shows a {name} from above .")


def class_texture(index: int, n_classes: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image of class ``index``: the class's hue and stripe frequency and orientation,
    a random phase and noise per image."""
    hue = index / n_classes
    base = np.array(colorsys.hsv_to_rgb(hue, 0.55, 0.75))
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = np.pi * (index % 4) / 4
    freq = 3 + 2 * (index % 5)
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    img = base[None, None, :] * (0.75 + 0.25 * wave[..., None]) + rng.normal(0, 0.05, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _captions(name: str, rng: np.random.Generator) -> list[str]:
    words = name.replace("_", " ")
    objects = OBJECTS[int(rng.integers(len(OBJECTS)))]
    return [t.format(name=words, objects=objects, count=COUNT_WORDS[int(rng.integers(len(COUNT_WORDS)))])
            for t in CAPTIONS]


def _karpathy(records: list[tuple[str, str, list[str]]]) -> dict:
    images, sent = [], 0
    for i, (filename, split, captions) in enumerate(records):
        sentences = [{"raw": c, "tokens": c.rstrip(" .").split(), "imgid": i, "sentid": sent + k}
                     for k, c in enumerate(captions)]
        images.append({"filename": filename, "split": split, "imgid": i, "sentids": [s["sentid"] for s in sentences],
                       "sentences": sentences})
        sent += len(captions)
    return {"images": images, "dataset": "synthetic"}


def write_ucm(root: Path, per_class: int, size: int, rng: np.random.Generator) -> None:
    folder = root / "ucm_captions"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records, labels = [], ["filename,label"]
    splits = ["test", "val"] + ["train"] * max(1, per_class - 2)
    n = 0
    for ci, name in enumerate(UCM_CLASSES):
        for k in range(per_class):
            n += 1
            filename = f"{n}.jpg"
            Image.fromarray(class_texture(ci, len(UCM_CLASSES), size, rng)).save(folder / "images" / filename,
                                                                                 quality=92)
            records.append((filename, splits[k % len(splits)], _captions(name, rng)))
            labels.append(f"{filename},{name}")
    atomic_write_text(folder / "dataset_ucm.json", json.dumps(_karpathy(records)))
    atomic_write_text(folder / "labels.csv", "\n".join(labels) + "\n")


def write_class_folders(folder: Path, classes, per_class: int, size: int, rng: np.random.Generator) -> None:
    for ci, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            Image.fromarray(class_texture(ci, len(classes), size, rng)).save(folder / name / f"{name.lower()}_{k:02d}.jpg",
                                                                             quality=92)


def write_eurosat_ms(folder: Path, per_class: int, rng: np.random.Generator) -> None:
    for ci, name in enumerate(EUROSAT_CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            rgb = class_texture(ci, len(EUROSAT_CLASSES), 64, rng).astype(np.float32) / 255
            bands = np.empty((13, 64, 64), np.uint16)
            for b in range(13):   # B04, B03, B02 (indices 3, 2, 1) carry the true colour, the others a mix
                src = {3: rgb[..., 0], 2: rgb[..., 1], 1: rgb[..., 2]}.get(b, rgb.mean(axis=2) * (0.6 + 0.05 * b))
                bands[b] = (src * 3000 + 100).astype(np.uint16)
            profile = {"driver": "GTiff", "height": 64, "width": 64, "count": 13, "dtype": "uint16",
                       "crs": "EPSG:32632", "transform": from_origin(600000 + 640 * k, 5100000 - 640 * ci, 10, 10)}
            with rasterio.open(folder / name / f"{name}_{k + 1}.tif", "w", **profile) as dst:
                dst.write(bands)


def write_l2a_scene(folder: Path, size: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    field = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy) + rng.normal(0, 0.02, (size, size))
    for band, gain in (("b2", 0.06), ("b3", 0.08), ("b4", 0.09), ("b8", 0.25)):
        reflectance = np.clip(field * gain * 2, 0, 1)
        dn = (reflectance * 10000 + 1000).astype(np.float32)       # baseline 04.00: +1000 offset
        profile = {"driver": "GTiff", "height": size, "width": size, "count": 1, "dtype": "float32",
                   "crs": "EPSG:32632", "transform": from_origin(700000, 5150000, 10, 10)}
        with rasterio.open(folder / f"sentinel.dolomites.{band}.tif", "w", **profile) as dst:
            dst.write(dn[None])


def write_caption_files(folder: Path, per_file: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for dataset in ("rsicd", "rsitmd", "sydney"):
        records = []
        for i in range(per_file):
            name = UCM_CLASSES[int(rng.integers(len(UCM_CLASSES)))]
            records.append((f"{dataset}_{i:04d}.jpg", "test" if i % 5 == 0 else "train", _captions(name, rng)))
        atomic_write_text(folder / f"dataset_{dataset}.json", json.dumps(_karpathy(records)))


def write_synthetic_root(root: str | os.PathLike, seed: int = 0, per_class: int = 20, image_size: int = 96) -> Path:
    """Write the synthetic data root (about 850 small files, seconds) and return its path. Writing it
    again over an existing one is a no-op."""
    root = Path(root)
    if is_synthetic(root) and (root / "ucm_captions" / "dataset_ucm.json").exists():
        return root
    rng = np.random.default_rng(seed)
    write_ucm(root, per_class, image_size, rng)
    write_class_folders(root / "whu_rs19", WHU_CLASSES, max(3, per_class // 2), image_size, rng)
    write_eurosat_ms(root / "sentinel2" / "eurosat_ms", per_class, rng)
    write_l2a_scene(root / "sentinel2" / "l2a_dolomites_bands", 480, rng)   # 4 patches of 224 px: notebook 02 splits them
    write_caption_files(root / "captions_only", 60, rng)
    atomic_write_text(root / MARKER, "# A synthetic data root\n\nWritten by `rsdix.data.synthetic.write_synthetic_root` "
                      f"(seed {seed}): procedural class textures and template captions in the registry's layouts. "
                      "Numbers computed on it show that the pipeline runs, nothing about remote sensing. Put the real "
                      "datasets under a data root of your own (`RSDIX_DATA_ROOT`; `rsdix data plan --profile cpu`).\n")
    return root


def is_synthetic(root: str | os.PathLike) -> bool:
    """Whether ``root`` is a data root written by :func:`write_synthetic_root`."""
    return (Path(root) / MARKER).exists()


def root_or_synthetic(data_root: str | os.PathLike | None, fallback: str | os.PathLike, why: str) -> tuple[Path, bool]:
    """The data root (``data_root``, ``$RSDIX_DATA_ROOT`` or the default) when it exists; else the
    synthetic root written (or reused) at ``fallback``, said in one line naming ``why`` it is used
    (the smoke profile, the paper dry run). Returns ``(root, synthetic)``."""
    root = resolve_data_root(data_root, required=False)
    if root.is_dir():
        return root, is_synthetic(root)
    made = write_synthetic_root(fallback)
    log.warning(f"no data root at {root}: {why} runs on a generated synthetic sample at {made} (it shows that the "
                f"pipeline runs, nothing about remote sensing; DATA_ROOT=... or RSDIX_DATA_ROOT for real data)")
    return made, True
