"""The dry run's data root: every dataset of the paper profile, real where the data root has it,
else a stand-in in the dataset's own layout (:func:`make_data_root`).

* present in the real data root: linked image by image (at most ``images_per_split`` images per
  split of a caption set, ``images_per_class`` per class folder; ``None``: the whole folder as
  one link), the caption and label files reduced to the linked images;
* RSICD, RSITMD, Sydney-Captions: their real caption files (``captions_only/`` of the data root,
  linked unchanged), every file name they list an image: real UCM / WHU-RS19 images resized to
  the dataset's size and saved in its format (``.jpg`` / ``.tif``), a small pool linked under
  each name;
* NWPU-Captions: Karpathy JSON ``dataset_nwpu.json`` + ``images/<class>_NNN.jpg`` over the 45
  NWPU-RESISC45 classes, 256 px, train/val/test, five template captions per image;
* S2LCD: ``dataset_s2lcd.json`` without ``split`` fields (as published) + ``images/*.tif``
  (224 px RGB TIFF), five template captions per patch;
* each zero-shot / probe set of ``evaluate/paper.yaml``: one folder per class under the
  dataset's class names (:data:`CLASS_NAMES`), a few real images resized to its image size.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

from rsdix.data.registry import CAPTIONS_ONLY, REGISTRY, get_info
from rsdix.errors import DataError
from rsdix.utils import progress

_SPLIT = str.split
# class folder names as each dataset publishes them
CLASS_NAMES = {
    "eurosat_rgb": _SPLIT("AnnualCrop Forest HerbaceousVegetation Highway Industrial Pasture PermanentCrop "
                          "Residential River SeaLake"),
    "resisc45": _SPLIT(
        "airplane airport baseball_diamond basketball_court beach bridge chaparral church circular_farmland "
        "cloud commercial_area dense_residential desert forest freeway golf_course ground_track_field harbor "
        "industrial_area intersection island lake meadow medium_residential mobile_home_park mountain overpass "
        "palace parking_lot railway railway_station rectangular_farmland river roundabout runway sea_ice ship "
        "snowberg sparse_residential stadium storage_tank tennis_court terrace thermal_power_station wetland"),
    "aid": _SPLIT(
        "Airport BareLand BaseballField Beach Bridge Center Church Commercial DenseResidential Desert Farmland "
        "Forest Industrial Meadow MediumResidential Mountain Park Parking Playground Pond Port RailwayStation "
        "Resort River School SparseResidential Square Stadium StorageTanks Viaduct"),
    "rsscn7": _SPLIT("aGrass bField cIndustry dRiverLake eForest fResident gParking"),
    "patternnet": _SPLIT(
        "airplane baseball_field basketball_court beach bridge cemetery chaparral christmas_tree_farm "
        "closed_road coastal_mansion crosswalk dense_residential ferry_terminal football_field forest freeway "
        "golf_course harbor intersection mobile_home_park nursing_home oil_gas_field oil_well overpass "
        "parking_lot parking_space railway river runway runway_marking shipping_yard solar_panel "
        "sparse_residential storage_tank swimming_pool tennis_court transformer_station "
        "wastewater_treatment_plant"),
    "optimal31": _SPLIT(
        "airplane airport baseball_diamond basketball_court beach bridge chaparral church circular_farmland "
        "commercial_area dense_residential desert forest freeway golf_course ground_track_field harbor "
        "industrial_area intersection island lake meadow medium_residential mobile_home_park mountain overpass "
        "parking_lot railway rectangular_farmland roundabout runway"),
    "rsc11": _SPLIT("dense_forest grassland harbor high_buildings low_buildings overpass railway residential_area "
                    "roads sparse_forest storage_tanks"),
    "rsi_cb256": _SPLIT(
        "airplane airport_runway artificial_grassland avenue bare_land bridge city_building coastline container "
        "crossroads dam desert dry_farm forest green_farmland highway hirst lakeshore mangrove marina mountain "
        "parkinglot pipeline residents river river_protection_forest sandbeach sapling sea shrubwood "
        "snow_mountain sparse_forest storage_room stream town"),
    "rsi_cb128": _SPLIT(
        "airport_runway artificial_grassland avenue bare_land bridge city_avenue city_building "
        "city_green_tree city_road coastline container crossroads dam desert dry_farm forest fork_road grave "
        "green_farmland highway hirst lakeshore mangrove marina mountain mountain_road natural_grassland overpass "
        "parkinglot pipeline rail residents river river_protection_forest sandbeach sapling sea shrubwood "
        "snow_mountain sparse_forest storage_room stream tower town turning_circle"),
    "mlrsnet": _SPLIT(
        "airplane airport bareland baseball_diamond basketball_court beach bridge chaparral cloud "
        "commercial_area dense_residential_area desert eroded_farmland farmland forest freeway golf_course "
        "ground_track_field harbor&port industrial_area intersection island lake meadow mobile_home_park "
        "mountain overpass park parking_lot parkway railway railway_station river roundabout shipping_yard "
        "snowberg sparse_residential_area stadium storage_tank swimmimg_pool tennis_court terrace "
        "transmission_tower vegetable_greenhouse wetland wind_turbine"),
}
CLASS_NAMES["nwpu_captions"] = CLASS_NAMES["resisc45"]   # NWPU-Captions captions NWPU-RESISC45's images
# image side (px) of each stand-in, as the registry gives it
SIZES = {"rsicd": 224, "rsitmd": 256, "sydney_captions": 500, "nwpu_captions": 256, "s2lcd": 224,
         "eurosat_rgb": 64, "resisc45": 256, "aid": 600, "rsscn7": 400, "patternnet": 256, "optimal31": 256,
         "rsc11": 512, "rsi_cb128": 128, "rsi_cb256": 256, "mlrsnet": 256}
# no stand-in: the class names of WHU-earth are not published with RSDiX's benchmark list
NO_STANDIN = {"whu_earth": "its class names are not published (registry: counts not verified); "
                           "notebook 05 skips it (skip_missing)"}
MARKER = ".rsdix-standin"   # in each stand-in dataset folder: what it is (JSON row)
CAPTION_TEMPLATES = ("there is {a} {c} in the image .", "an aerial image of {a} {c} .", "many buildings are around "
                     "the {c} .", "{a} {c} is next to some green trees .", "the {c} is seen from above .")


def source_images(root: Path) -> list[Path]:
    """The real images the stand-ins are made of: UCM-Captions and WHU-RS19 under ``root``."""
    files = sorted((root / "ucm_captions" / "images").glob("*.jpg"))[::7]
    files += sorted((root / "whu_rs19").glob("*/*.jpg"))[::5]
    if not files:
        raise DataError(root, "no UCM-Captions or WHU-RS19 images to make stand-in images from")
    return files


class Pool:
    """Real images resized once per (size, format) into ``folder``, linked under many names."""

    def __init__(self, sources: Sequence[Path], folder: Path, size: int = 8):
        self.sources, self.folder, self.size = list(sources), Path(folder), size

    def image(self, k: int, side: int, ext: str) -> Path:
        ext = ext.lower().lstrip(".")
        path = self.folder / f"{side}_{ext}" / f"{k % self.size}.{ext}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            src = self.sources[(k % self.size) * 7 % len(self.sources)]
            with Image.open(src) as im:
                im = im.convert("RGB").resize((side, side), Image.BICUBIC)
                im.save(path, format="TIFF" if ext in ("tif", "tiff") else "JPEG", quality=90)
        return path

    def link(self, target: Path, k: int, side: int) -> None:
        link(self.image(k, side, target.suffix), target)


def link(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(os.path.abspath(src))


def cap_split(images: list, cap: int | None, block: int = 0) -> list:
    """At most ``cap`` images per split, evenly spaced through it (files are ordered by class),
    and the first ``block`` images of each split besides (one class whole, where files are ordered
    by class)."""
    if cap is None:
        return images
    by_split: dict = {}
    for im in images:
        by_split.setdefault(im.get("split", ""), []).append(im)
    keep = {id(part[i * len(part) // cap]) for part in by_split.values()
            for i in range(min(cap, len(part)))}
    keep |= {id(im) for part in by_split.values() for im in part[:block]}
    return [im for im in images if id(im) in keep]


def link_caption_set(real: Path, target: Path, annotation: str, cap: int | None, block: int = 0) -> int:
    """A real caption set (Karpathy JSON + ``images/``) linked image by image, ``cap`` per split
    (and the first ``block`` of each split, :func:`cap_split`); ``labels.csv`` beside it (a
    classification view of the same images) reduced to the same."""
    data = json.loads((real / annotation).read_text())
    data["images"] = cap_split(data["images"], cap, block)
    target.mkdir(parents=True, exist_ok=True)
    (target / annotation).write_text(json.dumps(data))
    kept = {im["filename"] for im in data["images"]}
    for name in kept:
        link(real / "images" / name, target / "images" / name)
    labels = real / "labels.csv"
    if labels.exists():
        lines = labels.read_text().splitlines()
        rows = [line for line in lines[1:] if line.split(",", 1)[0] in kept]
        (target / "labels.csv").write_text("\n".join([lines[0]] + rows) + "\n")
    return len(kept)


def link_class_folders(real: Path, target: Path, cap: int | None) -> int:
    """Real class folders linked image by image, at most ``cap`` images per class."""
    n = 0
    for folder in sorted(p for p in real.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file())[:cap]
        for f in files:
            link(f, target / folder.name / f.name)
        n += len(files)
    return n


def standin_caption_set(name: str, caption_file: Path, target: Path, pool: Pool) -> int:
    """A caption set's real caption file, linked unchanged, with a stand-in image for every file name."""
    info = get_info(name)
    target.mkdir(parents=True, exist_ok=True)
    link(caption_file, target / info.annotation)
    images = json.loads(caption_file.read_text())["images"]
    for k, im in enumerate(progress(images, desc=f"{name} stand-in images", leave=False)):
        pool.link(target / "images" / im["filename"], k, SIZES[name])
    return len(images)


def _captions(cls: str, k: int) -> list[dict]:
    words = cls.replace("_", " ").replace("&", " and ")
    a = "an" if words[0] in "aeiou" else "a"
    return [{"raw": t.format(a=a, c=words), "tokens": t.format(a=a, c=words).split(), "sentid": 5 * k + i}
            for i, t in enumerate(CAPTION_TEMPLATES)]


def standin_nwpu(target: Path, pool: Pool, per_class: int) -> int:
    """NWPU-Captions as the registry lays it out: Karpathy ``dataset_nwpu.json`` + ``images/``."""
    images, k = [], 0
    for cls in CLASS_NAMES["nwpu_captions"]:
        for i in range(per_class):
            filename = f"{cls}_{i + 1:03d}.jpg"
            split = ("train", "val", "test")[i % 3] if per_class >= 3 else ("train", "test")[i % 2]
            images.append({"filename": filename, "imgid": k, "split": split, "sentids": list(range(5 * k, 5 * k + 5)),
                           "sentences": _captions(cls, k), "filepath": cls})
            pool.link(target / "images" / filename, k, SIZES["nwpu_captions"])
            k += 1
    (target / "dataset_nwpu.json").write_text(json.dumps({"dataset": "nwpu", "images": images}))
    return len(images)


def standin_s2lcd(target: Path, pool: Pool, n: int) -> int:
    """S2LCD as published: ``dataset_s2lcd.json`` with no ``split`` fields + ``images/*.tif`` named
    ``S2A_L1C_<date>_N0204R065_<index>.tif`` (scene, then index: ten scenes, so the 80/10/10 split
    by scene that rsdix.s2.dataset assigns has a test split)."""
    classes = ["farmland", "forest", "river", "residential", "mountain", "lake"]
    images = []
    for k in range(n):
        filename = f"S2A_L1C_201509{10 + k % 10:02d}_N0204R065_{k}.tif"
        images.append({"filename": filename, "imgid": k, "sentids": list(range(5 * k, 5 * k + 5)),
                       "sentences": _captions(classes[k % len(classes)], k)})
        pool.link(target / "images" / filename, k, SIZES["s2lcd"])
    (target / "dataset_s2lcd.json").write_text(json.dumps({"dataset": "s2lcd", "images": images}))
    return len(images)


def standin_classes(name: str, target: Path, pool: Pool, per_class: int) -> int:
    """A classification set as one folder per class under its published class names."""
    ext = "tif" if name == "rsscn7" else "jpg"
    k = 0
    for cls in CLASS_NAMES[name]:
        for i in range(per_class):
            pool.link(target / cls / f"{cls}_{i:03d}.{ext}", k, SIZES[name])
            k += 1
    return k


def make_data_root(real_root: str | os.PathLike, target: str | os.PathLike, needed: Iterable[str],
                   images_per_split: int | None = 8, images_per_class: int | None = 3,
                   nwpu_images_per_class: int = 2, s2lcd_images: int = 30, class_block: int = 0) -> list[dict]:
    """The dry run's data root ``target``: every top-level entry of ``real_root`` linked (image by
    image where capped), then a stand-in for each dataset of ``needed`` that is absent. Returns one
    row per dataset: name, kind (real / stand-in / absent), images, note."""
    real_root, target = Path(real_root).resolve(), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    rows = []
    capped = {}
    for info in REGISTRY.values():
        if (real_root / info.path).is_dir() and "/" not in info.path:
            capped.setdefault(info.path, info)
    for entry in sorted(real_root.iterdir()):
        dest = target / entry.name
        info = capped.get(entry.name)
        if info is not None and info.kind == "captions" and info.format == "karpathy" and images_per_split:
            n = link_caption_set(entry, dest, info.annotation, images_per_split, class_block)
            rows.append({"dataset": info.name, "kind": "real", "images": n,
                         "note": f"<= {images_per_split} per split" + (f" + the first {class_block}" if class_block else "")})
        elif info is not None and info.format == "folders" and images_per_class:
            n = link_class_folders(entry, dest, images_per_class)
            rows.append({"dataset": info.name, "kind": "real", "images": n, "note": f"<= {images_per_class} per class"})
        elif not (dest.exists() or dest.is_symlink()):
            dest.symlink_to(entry)
    present = {r["dataset"] for r in rows} | {i.name for i in REGISTRY.values() if (target / i.path).exists()}
    pool = Pool(source_images(real_root), target.parent / "pool")
    for name in needed:
        name = get_info(name).name
        marker = target / get_info(name).path / MARKER
        if marker.exists():   # made by an earlier dry run
            rows.append(json.loads(marker.read_text()))
            continue
        if name in present:
            continue
        info, dest = get_info(name), target / get_info(name).path
        if name in NO_STANDIN:
            rows.append({"dataset": name, "kind": "absent", "images": 0, "note": NO_STANDIN[name]})
            continue
        if name in CAPTIONS_ONLY and (real_root / CAPTIONS_ONLY[name]).exists():
            n = standin_caption_set(name, real_root / CAPTIONS_ONLY[name], dest, pool)
            note = f"real caption file {CAPTIONS_ONLY[name]}, stand-in images"
        elif name == "nwpu_captions":
            n, note = standin_nwpu(dest, pool, nwpu_images_per_class), "stand-in images and captions"
        elif name == "s2lcd":
            n, note = standin_s2lcd(dest, pool, s2lcd_images), "stand-in patches and captions, no splits"
        elif name in CLASS_NAMES:
            n, note = standin_classes(name, dest, pool, images_per_class or 3), "real class names, stand-in images"
        else:
            raise DataError(name, f"no stand-in for {info.title}: add one to rsdix/reporting/standin_data.py")
        rows.append({"dataset": name, "kind": "stand-in", "images": n, "note": note})
        (dest / MARKER).write_text(json.dumps(rows[-1]))
    return rows


def caption_texts(root: str | os.PathLike, limit: int = 20000) -> list[str]:
    """Captions of the data root's caption files (for the stand-in GPT-2 tokenizer)."""
    root = Path(root)
    texts = []
    for rel in [f"{i.path}/{i.annotation}" for i in REGISTRY.values() if i.kind == "captions"] + \
            list(CAPTIONS_ONLY.values()):
        path = root / rel
        if path.exists():
            for im in json.loads(path.read_text())["images"]:
                texts += [s["raw"] for s in im["sentences"]]
    random.Random(0).shuffle(texts)
    return texts[:limit]
