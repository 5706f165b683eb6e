"""Captioning training data: the frozen encoder's image embeddings (computed once, cached), the
``(image, caption tokens)`` training items and their collate for :func:`rsdix.training.loop.fit`."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable

import torch

from rsdix.captioning.tokenizers import pad_tokens, tokenize_captions
from rsdix.data.captions import CaptionDataset
from rsdix.errors import ConfigError, DataError
from rsdix.models.features import FeatureCache, encode_images


def image_embeddings(bundle, records, image_dir: str | os.PathLike, batch_size: int = 64,
                     cache: str | os.PathLike | None = None, num_workers: int = 0,
                     desc: str = "image embeddings") -> torch.Tensor:
    """L2-normalised CLIP image embeddings of ``records`` (``CaptionRecord`` list), in order,
    through :func:`rsdix.models.features.encode_images` (on the bundle model's device).

    With ``cache`` (a folder), the features are stored by :class:`rsdix.models.features.FeatureCache`
    under a key made of the model's weight fingerprint, the image folder, the file list and the
    transform, and read back on the next call (a trained encoder gets a new fingerprint).
    """
    dataset = CaptionDataset(list(records), image_dir, transform=None, mode="eval", source=str(image_dir))
    return encode_images(bundle, dataset, FeatureCache(cache) if cache is not None else None,
                         dataset_name=str(Path(image_dir).resolve()), split="captioning", batch_size=batch_size,
                         num_workers=num_workers, desc=desc)


class CaptionTrainSet(torch.utils.data.Dataset):
    """Training items ``(image, caption tokens)`` for :func:`rsdix.training.loop.fit`.

    ``image`` is the record's index (frozen encoder: a row of the cached embeddings, looked up
    by :class:`CaptionCollate`) or, with ``load_image(index) -> tensor``, the transformed image
    (trained encoder). ``all_captions=True``: one item per (image, caption) pair; ``False``: one
    item per image with one of its captions drawn at random (seeded per sample by ``fit``).
    Every caption is tokenized up front, so an empty one fails here, naming its file and image.
    """

    def __init__(self, records, tokenizer, max_tokens: int = 40, source: str = "captions",
                 load_image: Callable | None = None, all_captions: bool = True):
        self.records = list(records)
        self.load_image, self.all_captions = load_image, all_captions
        captions, where, self.owner = [], [], []
        for i, rec in enumerate(self.records):
            if not rec.captions:
                raise DataError(f"{source} ({rec.filename})", "image has no captions")
            for j, caption in enumerate(rec.captions):
                captions.append(caption)
                where.append(f"{source} ({rec.filename}) sentences[{j}]")
                self.owner.append(i)
        tokens = tokenize_captions(captions, tokenizer, max_tokens, where)
        self.tokens: list[list[list[int]]] = [[] for _ in self.records]
        for i, t in zip(self.owner, tokens):
            self.tokens[i].append(t)
        self.pairs = [(i, j) for i, toks in enumerate(self.tokens) for j in range(len(toks))]

    def __len__(self) -> int:
        return len(self.pairs) if self.all_captions else len(self.records)

    def __getitem__(self, index: int):
        if self.all_captions:
            i, j = self.pairs[index]
        else:
            i = index
            j = random.randrange(len(self.tokens[i]))  # the global RNG, seeded per sample by fit
        image = self.load_image(i) if self.load_image is not None else i
        return image, self.tokens[i][j]


class CaptionCollate:
    """``[(image or index, tokens)]`` -> ``{"embeds" | "images", "input_ids", "attention_mask"}``."""

    def __init__(self, pad_id: int, embeds: torch.Tensor | None = None):
        self.pad_id, self.embeds = pad_id, embeds

    def __call__(self, items):
        ids, mask = pad_tokens([it[1] for it in items], self.pad_id)
        out = {"input_ids": ids, "attention_mask": mask}
        if torch.is_tensor(items[0][0]):
            out["images"] = torch.stack([it[0] for it in items])
        else:
            if self.embeds is None:
                raise ConfigError("CaptionCollate needs the cached embeddings for index items")
            out["embeds"] = self.embeds[torch.tensor([it[0] for it in items], dtype=torch.long)]
        return out
