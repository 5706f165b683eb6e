"""Parallel caption sets in three languages (test_multilingual, test_evaluation_multilingual)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.data.captions import CaptionRecord, write_karpathy

PARALLEL = {
    "en": [["many planes at the airport", "an airport with two runways"], ["a river through green fields"],
           ["a dense residential area", "many houses close together"]],
    "pt": [["muitos aviões no aeroporto", "um aeroporto com duas pistas"], ["um rio entre campos verdes"],
           ["uma área residencial densa", "muitas casas próximas"]],
    "de": [["viele Flugzeuge am Flughafen", "ein Flughafen mit zwei Landebahnen"], ["ein Fluss durch grüne Felder"],
           ["ein dichtes Wohngebiet", "viele Häuser dicht beieinander"]],
}
NAMES = ["airport.png", "river.png", "houses.png"]


@pytest.fixture
def parallel_dir(tmp_path):
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    files = {}
    for lang, caps in PARALLEL.items():
        recs = [CaptionRecord(n, "test", c) for n, c in zip(NAMES, caps)]
        files[lang] = write_karpathy(recs, tmp_path / f"captions_{lang}.json")
    return tmp_path, files


def to_tensor(img):
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 255
