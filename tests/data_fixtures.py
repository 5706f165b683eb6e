"""Images and a toy Karpathy caption file shared by the tests of rsdix.data (imported by the
tests/test_*.py of rsdix.data)."""
from __future__ import annotations

import json

import pytest
from PIL import Image


def make_image(path, color=(10, 20, 30), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def karpathy(tmp_path):
    images = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        make_image(tmp_path / "images" / f"{i}.jpg", (i * 40, 0, 0))
        images.append({"filename": f"{i}.jpg", "split": split,
                       "sentences": [{"raw": f"caption {i} a"}, {"raw": f"caption {i} b"},
                                     {"raw": f"legenda {i}", "lang": "pt"}]})
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": images, "dataset": "toy"}))
    return path
