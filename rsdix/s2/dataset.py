"""The published S2LCD (Sentinel-2 Land-cover Captioning Dataset, RSDiX paper): facts, finding
``dataset_s2lcd.json``, reading its records (splits by scene when it has none) and loading it.

S2LCD has 1533 Sentinel-2 patches of 224x224 pixels with 5 captions each (7665), annotated in
CVAT and published as Karpathy JSON + TIFF images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from rsdix.data.captions import CaptionDataset, CaptionRecord, read_karpathy, select_split
from rsdix.errors import DataError
from rsdix.paths import data_root
from rsdix.s2.splits import DEFAULT_FRACTIONS, assign_splits


# facts about the published dataset (for the dataset registry)
S2LCD_INFO = {
    "name": "s2lcd",
    "title": "S2LCD: Sentinel-2 Land-cover Captioning Dataset",
    "images": 1533,
    "captions": 7665,
    "captions_per_image": 5,
    "image_size": 224,
    "image_format": "TIFF (Sentinel-2 true colour patches)",
    "caption_file": "dataset_s2lcd.json",
    "url": "https://github.com/NeuRoNeLab/RSDiX-CLIP/raw/main/S2LCD.zip",
    "homepage": "https://github.com/NeuRoNeLab/RSDiX-CLIP",
    "license": "CC BY-NC-SA 4.0",
    "splits": "none published; RSDiX split 80/10/10 at random; rsdix splits by scene when the file has no split",
    "citation": ("A. Terlizzi, F. Bardozzo, R. Tagliaferri. RSDiX: Lightweight and Data-Efficient VLMs for "
                 "Remote Sensing through Self-Distillation. IJCNN 2025. "
                 "https://ieeexplore.ieee.org/document/11228553"),
}


def find_s2lcd(root: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """``dataset_s2lcd.json`` under ``root`` (default ``<data root>/s2lcd``), at most two levels down."""
    if root is None:
        root = data_root(required=False) / "s2lcd"
    root = Path(root)
    if root.is_file():
        return root
    for cand in [root / "dataset_s2lcd.json", *root.glob("*/dataset_s2lcd.json"), *root.glob("*/*/dataset_s2lcd.json")]:
        if cand.exists():
            return cand
    if required:
        raise DataError(root, f"S2LCD not found (no dataset_s2lcd.json): S2LCD is not downloadable here; "
                              f"download {S2LCD_INFO['url']} on a connected machine and unzip it into {root}")
    return None


def find_s2lcd_images(caption_file: Path) -> Path:
    folder = caption_file.parent
    for name in ("images", "S2LCD_images", "imgs", "Images", "S2LCD"):
        if (folder / name).is_dir():
            return folder / name
    return folder


def read_s2lcd(root: str | os.PathLike | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
               seed: int = 0) -> list[CaptionRecord]:
    """S2LCD's records; when the file has no splits, they are assigned by scene (``seed``)."""
    path = find_s2lcd(root)
    records = read_karpathy(path, missing_split="")
    if records and all(r.split for r in records):
        return records
    return assign_splits(records, fractions=fractions, seed=seed)


def load_s2lcd(root: str | os.PathLike | None = None, split: str | Sequence[str] | None = "test",
               transform=None, mode: str = "eval", seed: int = 0, **kwargs):
    """The published S2LCD as a :class:`rsdix.data.captions.CaptionDataset`.

    ``root``: the folder holding ``dataset_s2lcd.json`` (default ``<data root>/s2lcd``); images
    are read from ``images/`` (or ``S2LCD_images/``) beside it, TIFFs through
    :func:`rsdix.data.images.load_image` (8-bit RGB TIFFs as they are, 16-bit or float
    3-band TIFFs stretched to 8 bit).
    """
    path = find_s2lcd(root)
    records = select_split(read_s2lcd(path, seed=seed), split, path)
    return CaptionDataset(records, find_s2lcd_images(path), transform=transform, mode=mode, seed=seed,
                          source=path, **kwargs)


def describe_s2lcd(root: str | os.PathLike | None = None) -> str:
    """The published S2LCD's facts, and what loading it from ``root`` gives (or why it cannot)."""
    lines = [f"{k:>18}: {v}" for k, v in S2LCD_INFO.items()]
    try:
        ds = load_s2lcd(root, split=None)
        lines.append(f"S2LCD loaded: {len(ds)} images, {len(ds.texts())} captions")
    except DataError as exc:
        lines.append(f"not available here: {exc}")
    return "\n".join(lines)
