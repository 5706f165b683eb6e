"""A registry of known remote-sensing datasets: format, expected counts and splits, class
count, citation, and where a user gets it, with the code to download and lay it out on a
machine with internet.

Layout under the data root (``rsdix.paths.data_root()``) is given by ``path`` (the dataset
folder) and, for caption sets, ``annotation`` (the caption file inside it). Caption sets use
Karpathy JSON with images in ``images/``; classification sets use one folder per class (or
``labels.csv`` + ``images/``).

    info = get_info("ucm_captions"); ds = load_dataset("whu_rs19", transform=...)
"""
from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from rsdix.data.captions import CaptionDataset
from rsdix.data.classification import ClassificationDataset
from rsdix.errors import DataError, OfflineError
from rsdix.paths import data_root as resolve_root


@dataclass(frozen=True)
class DatasetInfo:
    name: str                       # registry key
    title: str                      # display name, as in the papers and reference_numbers.csv
    kind: str                       # "captions" | "classification"
    format: str                     # "karpathy" | "folders" | "csv" | "captions-only" | "multilabel"
    path: str                       # folder under the data root
    annotation: str | None = None   # caption/label file inside ``path``
    images: int | None = None       # expected number of images
    captions_per_image: int | None = None
    splits: dict = field(default_factory=dict)   # expected images per split
    classes: int | None = None
    image_size: str = ""
    bands: str = "RGB"
    citation: str = ""
    url: str = ""                   # official page or public mirror
    download_urls: tuple = ()       # direct archive links (used by :func:`download`)
    notes: str = ""
    published_as: str | None = None  # the title whose published numbers this set is compared with

    @property
    def captions(self) -> int | None:
        if self.images and self.captions_per_image:
            return self.images * self.captions_per_image
        return None


_UCM_CIT = "Qu, Zhang, Li, Zhang, Du: Deep semantic understanding of high resolution remote sensing image (CITS 2016)"

REGISTRY: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("ucm_captions", "UCM", "captions", "karpathy", "ucm_captions", "dataset_ucm.json",
                images=2100, captions_per_image=5, splits={"train": 1680, "val": 210, "test": 210}, classes=21,
                image_size="256x256, 0.3 m", citation=_UCM_CIT,
                url="http://weegee.vision.ucmerced.edu/datasets/landuse.html (images); "
                    "https://github.com/201528014227051/RSICD_optimal (captions)",
                download_urls=("http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip",),
                notes="caption file: the corrected UCM-Captions Karpathy JSON; images N.tif (or N.jpg) in images/"),
    DatasetInfo("ucm_classification", "UCM", "classification", "csv", "ucm_captions", "labels.csv",
                images=2100, classes=21, image_size="256x256", citation=_UCM_CIT,
                url="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
                notes="the UCM-Captions images as a 21-class set (filename,label CSV)"),
    DatasetInfo("sydney_captions", "Sydney", "captions", "karpathy", "sydney_captions", "dataset_sydney.json",
                images=613, captions_per_image=5, splits={"train": 497, "val": 58, "test": 58}, classes=7,
                image_size="500x500, 0.5 m", citation=_UCM_CIT, url="https://github.com/201528014227051/RSICD_optimal"),
    DatasetInfo("rsicd", "RSICD", "captions", "karpathy", "rsicd", "dataset_rsicd.json",
                images=10921, captions_per_image=5, splits={"train": 8734, "val": 1094, "test": 1093},
                image_size="224x224",
                citation="Lu, Wang, Zheng, Li: Exploring models and data for remote sensing image caption "
                         "generation (IEEE TGRS 2017)",
                url="https://github.com/201528014227051/RSICD_optimal",
                notes="retrieval works (AMFMN/GaLR) use 9828 train / 1093 test"),
    DatasetInfo("rsitmd", "RSITMD", "captions", "karpathy", "rsitmd", "dataset_rsitmd.json",
                images=4743, captions_per_image=5, splits={"train": 4291, "test": 452}, image_size="256x256",
                citation="Yuan et al.: Exploring a fine-grained multiscale method for cross-modal remote sensing "
                         "image retrieval (IEEE TGRS 2022)",
                url="https://github.com/xiaoyuan1996/AMFMN"),
    DatasetInfo("nwpu_captions", "NWPU", "captions", "karpathy", "nwpu_captions", "dataset_nwpu.json",
                images=31500, captions_per_image=5, splits={"train": 25200, "val": 3150, "test": 3150},
                classes=45, image_size="256x256",
                citation="Cheng et al.: NWPU-Captions dataset and MLCA-Net for remote sensing image captioning "
                         "(IEEE TGRS 2022)",
                url="https://github.com/HaiyanHuang98/NWPU-Captions",
                notes="published as an Excel/JSON file; convert to Karpathy JSON with rsdix.data.captions"),
    DatasetInfo("s2lcd", "S2LCD", "captions", "karpathy", "s2lcd", "dataset_s2lcd.json",
                images=1533, captions_per_image=5, image_size="224x224 Sentinel-2 patches (TIFF)",
                citation="Terlizzi, Bardozzo, Tagliaferri: RSDiX: Lightweight and data-efficient VLMs for remote "
                         "sensing through self-distillation (IJCNN 2025)",
                url="https://github.com/NeuRoNeLab/RSDiX-CLIP",
                download_urls=("https://github.com/NeuRoNeLab/RSDiX-CLIP/raw/main/S2LCD.zip",),
                notes="CC BY-NC-SA 4.0; no published splits (RSDiX used a random 80/10/10): "
                      "rsdix.s2.dataset.load_s2lcd assigns 80/10/10 by scene; rsdix.s2.construction builds datasets like it"),
    DatasetInfo("eurosat_rgb", "EuroSAT", "classification", "folders", "eurosat_rgb", images=27000, classes=10,
                image_size="64x64, 10 m",
                citation="Helber, Bischke, Dengel, Borth: EuroSAT: a novel dataset and deep learning benchmark "
                         "for land use and land cover classification (IEEE JSTARS 2019)",
                url="https://github.com/phelber/EuroSAT",
                download_urls=("https://madm.dfki.de/files/sentinel/EuroSAT.zip",
                               "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip")),
    DatasetInfo("eurosat_ms", "EuroSAT-MS", "classification", "folders", "sentinel2/eurosat_ms", images=27000,
                classes=10, image_size="64x64, 10 m", bands="13 Sentinel-2 bands (B01-B12, B8A), uint16 DN",
                citation="Helber, Bischke, Dengel, Borth (IEEE JSTARS 2019)", url="https://github.com/phelber/EuroSAT",
                download_urls=("https://madm.dfki.de/files/sentinel/EuroSATallBands.zip",
                               "https://zenodo.org/records/7711810/files/EuroSAT_MS.zip"),
                notes="rendered to true colour (B04/B03/B02) for RGB models; the shared data holds a 270-tile subset",
                published_as="EuroSAT"),  # the same scenes; the papers evaluate the RGB release
    DatasetInfo("resisc45", "RESISC45", "classification", "folders", "resisc45", images=31500, classes=45,
                image_size="256x256",
                citation="Cheng, Han, Lu: Remote sensing image scene classification: benchmark and state of the "
                         "art (Proc. IEEE 2017)",
                url="https://gcheng-nwpu.github.io/#Datasets (mirror: huggingface.co/datasets/timm/resisc45)"),
    DatasetInfo("aid", "AID", "classification", "folders", "aid", images=10000, classes=30, image_size="600x600",
                citation="Xia et al.: AID: a benchmark data set for performance evaluation of aerial scene "
                         "classification (IEEE TGRS 2017)",
                url="https://captain-whu.github.io/AID/"),
    DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "whu_rs19", images=1005, classes=19,
                image_size="600x600",
                citation="Dai, Yang: Satellite image classification via two-layer sparse coding with biased image "
                         "representation (IEEE GRSL 2011)",
                url="https://captain-whu.github.io/BED4RS/ (WHU-RS19)"),
    DatasetInfo("rsscn7", "RSSCN7", "classification", "folders", "rsscn7", images=2800, classes=7,
                image_size="400x400",
                citation="Zou et al.: Deep learning based feature selection for remote sensing scene "
                         "classification (IEEE GRSL 2015)",
                url="https://github.com/palewithout/RSSCN7",
                notes="class folders carry letter prefixes (aGrass, bField, ...): cleaned for prompts"),
    DatasetInfo("patternnet", "PatternNet", "classification", "folders", "patternnet", images=30400, classes=38,
                image_size="256x256",
                citation="Zhou, Newsam, Li, Shao: PatternNet: a benchmark dataset for performance evaluation of "
                         "remote sensing image retrieval (ISPRS J. 2018)",
                url="https://sites.google.com/view/zhouwx/dataset"),
    DatasetInfo("optimal31", "OPTIMAL-31", "classification", "folders", "optimal31", images=1860, classes=31,
                image_size="256x256",
                citation="Wang, Liu, Zheng, Lu: Scene classification with recurrent attention of VHR remote "
                         "sensing images (IEEE TGRS 2019)",
                url="https://github.com/Wang-Qi-XJTU/OPTIMAL-31 (public mirrors)"),
    DatasetInfo("rsc11", "RSC11", "classification", "folders", "rsc11", images=1232, classes=11,
                image_size="512x512",
                citation="Zhao, Tang, Huo: Feature significance-based multibag-of-visual-words model for remote "
                         "sensing image scene classification (JARS 2016)",
                url="https://www.researchgate.net/publication/271647282 (RS_C11 dataset)"),
    DatasetInfo("mlrsnet", "MLRSNet", "classification", "multilabel", "mlrsnet", images=109161, classes=46,
                image_size="256x256",
                citation="Qi et al.: MLRSNet: a multi-label high spatial resolution remote sensing dataset for "
                         "semantic scene understanding (ISPRS J. 2020)",
                url="https://github.com/cugbrs/MLRSNet",
                notes="46 scene categories (folders) with 60 multi-labels; zero-shot uses the scene folders"),
    DatasetInfo("rsi_cb128", "RSI-CB128", "classification", "folders", "rsi_cb128", images=36707, classes=45,
                image_size="128x128",
                citation="Li et al.: RSI-CB: a large-scale remote sensing image classification benchmark using "
                         "crowdsourced data (Sensors 2020)",
                url="https://github.com/lehaifeng/RSI-CB",
                notes="published with a two-level folder hierarchy; flatten to the 45 leaf classes"),
    DatasetInfo("rsi_cb256", "RSI-CB256", "classification", "folders", "rsi_cb256", images=24747, classes=35,
                image_size="256x256", citation="Li et al. (Sensors 2020)", url="https://github.com/lehaifeng/RSI-CB",
                notes="two-level folder hierarchy; flatten to the 35 leaf classes"),
    DatasetInfo("whu_earth", "WHU-earth", "classification", "folders", "whu_earth",
                citation="as cited by RSDiX (zero-shot benchmark 'WHU-earth')",
                url="https://github.com/NeuRoNeLab/RSDiX-CLIP (benchmark list)",
                notes="image and class counts not verified here: `data check` reports what it finds"),
]}

# caption-only copies (text studies): same datasets, no images
CAPTIONS_ONLY = {"rsicd": "captions_only/dataset_rsicd.json", "rsitmd": "captions_only/dataset_rsitmd.json",
                 "sydney_captions": "captions_only/dataset_sydney.json",
                 "ucm_captions": "ucm_captions/dataset_ucm.json"}


def get_info(name: str, kind: str | None = None) -> DatasetInfo:
    """A registry entry by key (``whu_rs19``) or title (``WHU-RS19``, ``UCM``); with ``kind``
    (``classification`` or ``captions``) only entries of that kind match."""
    def fits(info):
        return kind is None or info.kind == kind

    key = name.lower().replace("-", "_")
    if key in REGISTRY and fits(REGISTRY[key]):
        return REGISTRY[key]
    for info in REGISTRY.values():
        if fits(info) and info.title.lower() == name.lower():
            return info
    known = ", ".join(sorted(k for k, i in REGISTRY.items() if fits(i)))
    raise DataError(name, f"unknown {kind + ' ' if kind else ''}dataset; known: {known}")


def layout(name: str, root=None) -> str:
    """Where and how dataset ``name`` is laid out under the data root, e.g.
    ``/data/ucm_captions/dataset_ucm.json + images/``."""
    info = get_info(name)
    target = resolve_root(root, required=False) / info.path
    return f"{target}/" + (f"{info.annotation} + images/" if info.annotation else "<class>/<image>")


def how_to_get(name: str, root=None) -> str:
    """How to get dataset ``name``, in the one wording of every message: `rsdix data download` where a
    direct link exists, else the page to get it from and the layout to create."""
    info = get_info(name)
    if info.download_urls:
        return f"`rsdix data download {info.name}` (from {info.url}), laid out as {layout(name, root)}"
    return f"get it from {info.url} (no direct download link) and lay it out as {layout(name, root)}"


def source_path(name: str, root=None) -> Path:
    """Where dataset ``name`` is read from under the data root: the caption file of a caption set,
    the label CSV of a CSV classification set, the class-folder root of a folder set. A missing
    one raises a DataError naming the path and where to get the dataset."""
    info = get_info(name)
    folder = resolve_root(root) / info.path
    path = folder / info.annotation if info.kind == "captions" or info.format == "csv" else folder
    if not path.exists():
        raise DataError(path, f"{info.title} not found under the data root; {how_to_get(name, root)}")
    return path


def available(root=None) -> list[str]:
    """Registry names whose folder (and annotation file) exist under the data root."""
    base = resolve_root(root, required=False)
    out = []
    for info in REGISTRY.values():
        folder = base / info.path
        if folder.is_dir() and (info.annotation is None or (folder / info.annotation).exists()):
            out.append(info.name)
    return out


def caption_file(name: str, root=None) -> Path:
    """The caption file of a caption dataset: the full copy if present, else a caption-only copy."""
    info = get_info(name)
    base = resolve_root(root)
    full = base / info.path / (info.annotation or "")
    if info.annotation and full.exists():
        return full
    if info.name in CAPTIONS_ONLY and (base / CAPTIONS_ONLY[info.name]).exists():
        return base / CAPTIONS_ONLY[info.name]
    raise DataError(full, f"caption file of {info.title} not found; get it from {info.url}")


def load_dataset(name: str, root=None, split=None, transform=None, **kwargs):
    """Load a registered dataset as a CaptionDataset or ClassificationDataset."""
    info = get_info(name)
    path = source_path(name, root)
    if info.kind == "captions":
        return CaptionDataset.from_file(path, split=split, transform=transform, **kwargs)
    if info.format == "csv":
        return ClassificationDataset.from_csv(path, path.parent / "images", transform=transform, **kwargs)
    return ClassificationDataset.from_folders(path, transform=transform, **kwargs)


def download(name: str, root=None, timeout: float = 30.0) -> Path:
    """Download and lay out a dataset on a machine with internet (direct links only).

    Datasets whose hosts need a browser (Google Drive, Baidu, OneDrive) raise with the page to
    visit and the layout to create.
    """
    info = get_info(name)
    base = resolve_root(root, required=False)
    target = base / info.path
    if not info.download_urls:
        raise OfflineError(f"{info.title}: {how_to_get(name, root)}")
    archive_dir = base / "_downloads"
    archive_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in info.download_urls:
        archive = archive_dir / url.rsplit("/", 1)[-1]
        try:
            if not archive.exists():
                tmp = archive.with_suffix(archive.suffix + ".part")
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
                os.replace(tmp, archive)
            break
        except OSError as exc:
            errors.append(f"{url}: {exc.__class__.__name__}")
    else:
        raise OfflineError(f"could not download {info.title} ({'; '.join(errors)}): no internet here? "
                           f"Download it on another machine from {info.url} and place it at {target}")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(archive_dir / info.name)
    if info.kind == "captions" and info.name != "ucm_captions":
        _layout_captions(info, archive_dir / info.name, target)
        return target
    if info.name == "ucm_captions":
        _layout_ucm_numbered(archive_dir / info.name, target / "images")
        if not (target / info.annotation).exists():
            raise OfflineError(f"UCM images laid out in {target / 'images'}; now put the caption file "
                               f"{info.annotation} (Karpathy JSON) from {info.url} into {target}")
        return target
    _layout(info, archive_dir / info.name, target)
    return target


def _layout_captions(info: DatasetInfo, extracted: Path, target: Path) -> None:
    """Move the folder holding the caption file (and its images) to ``target``."""
    found = sorted(extracted.rglob(info.annotation))
    if not found:
        raise DataError(extracted, f"archive has no {info.annotation}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(found[0].parent), str(target))


def _layout_ucm_numbered(extracted: Path, images: Path) -> None:
    """UCM Land Use class folders -> ``images/N.tif`` as UCM-Captions numbers them:
    image N is number ``(N-1) % 100`` of the ``(N-1)//100``-th class in alphabetical order."""
    roots = [p for p in extracted.rglob("Images")] or [extracted]
    classes = sorted(c for c in roots[0].iterdir() if c.is_dir())
    if len(classes) != 21:
        raise DataError(roots[0], f"expected 21 UCM class folders, found {len(classes)}")
    images.mkdir(parents=True, exist_ok=True)
    for ci, folder in enumerate(classes):
        for k in range(100):
            src = folder / f"{folder.name}{k:02d}.tif"
            if not src.exists():
                raise DataError(src, "UCM image missing from the archive")
            shutil.copy2(src, images / f"{ci * 100 + k + 1}.tif")


def _layout(info: DatasetInfo, extracted: Path, target: Path) -> None:
    """Move the extracted class folders to ``target/<class>/`` (archives nest them differently)."""
    candidates = [p for p in extracted.rglob("*") if p.is_dir()]
    # the class-folder parent is the deepest folder whose children are all folders of images
    best = None
    for folder in [extracted] + candidates:
        children = [c for c in folder.iterdir() if c.is_dir()]
        if children and all(any(f.is_file() for f in c.iterdir()) for c in children):
            if best is None or len(children) > len([c for c in best.iterdir() if c.is_dir()]):
                best = folder
    if best is None:
        raise DataError(extracted, "archive layout not recognised: no folder of class folders")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(best), str(target))
