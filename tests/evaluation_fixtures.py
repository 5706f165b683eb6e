"""Toy models and data shared by the evaluation tests (imported by the tests/test_*.py of
rsdix.evaluation): a model whose features are known, a 3-class folder and a 4-image caption file."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from rsdix.models import ModelBundle


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


class DictModel(torch.nn.Module):
    """A model whose image features are stored per pixel value and text features per word:
    lets a zero-shot test know the right answers exactly."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.image_calls = 0
        self.text_calls = 0

    def encode_image(self, x):
        self.image_calls += 1
        # image i is a constant image with value i/10 in channel 0: feature = axis of its class
        cls = (x[:, 0, 0, 0] * 10).round().long() % 3
        return torch.nn.functional.one_hot(cls, 3).float() + self.w

    def encode_text(self, tokens):
        self.text_calls += 1
        return tokens.float()


def dict_bundle():
    vocab = {"beach": [1.0, 0, 0], "forest": [0, 1.0, 0], "river": [0, 0, 1.0]}

    def tokenizer(texts):
        rows = []
        for t in texts:
            hit = [v for k, v in vocab.items() if k in t]
            rows.append(hit[0] if hit else [0.3, 0.3, 0.3])
        return torch.tensor(rows)

    return ModelBundle(DictModel(), tokenizer, T.ToTensor(), T.ToTensor(), name="dict")


@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "cls"
    for c, cls in enumerate(["beach", "forest", "river"]):
        (root / cls).mkdir(parents=True)
        for j in range(3):
            # mis-label one forest image as a river image to get a known error
            value = c if not (cls == "forest" and j == 0) else 2
            Image.new("RGB", (4, 4), (value * 255 // 10 + 1, 0, 0)).save(root / cls / f"{cls}{j}.png")
    return root


@pytest.fixture
def caption_file(tmp_path):
    images = tmp_path / "caps" / "images"
    images.mkdir(parents=True)
    entries = []
    for i in range(4):
        Image.new("RGB", (4, 4), (i * 255 // 10 + 1, 0, 0)).save(images / f"{i}.png")
        entries.append({"filename": f"{i}.png", "split": "train" if i < 3 else "val",
                        "sentences": [{"raw": f"There are {['two', 'three', '4', 'one'][i]} planes ."},
                                      {"raw": "une plage", "lang": "fr"}]})
    path = tmp_path / "caps" / "dataset_toy.json"
    path.write_text(json.dumps({"images": entries}))
    return path
