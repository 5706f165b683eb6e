"""Shared pieces of the training tests: a tiny regression net, captions, the tiny CLIP, a
synthetic image-caption set."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsdix.models import load_model

CAPTIONS = ["many buildings and green trees", "a plane parked at the airport", "a river through a forest",
            "a baseball field beside a road", "a beach with white waves", "dense houses and roads",
            "an empty parking lot", "storage tanks near a harbour"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(8, 1)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.out(self.drop(self.norm(self.lin(x)))).squeeze(-1) * self.logit_scale


def tiny_clip():
    """``rsdix-tiny`` with seeded initial weights."""
    torch.manual_seed(0)
    return load_model("rsdix-tiny")


class SyntheticCaptions(torch.utils.data.Dataset):
    """16 random 32-px images with the captions above."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return torch.randn(3, 32, 32), CAPTIONS[i % 8]


def clustered_pairs(groups: int = 8, per: int = 8, dim: int = 64, noise: float = 0.02, seed: int = 0):
    """L2-normalised image and text embeddings of a batch as RS caption sets make them: ``groups``
    scenes of ``per`` near-duplicate pairs each (the case where bf16 targets went wrong, issue #28)."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(groups, dim, generator=g), dim=-1).repeat_interleave(per, 0)
    img = F.normalize(centres + noise * torch.randn(groups * per, dim, generator=g), dim=-1)
    txt = F.normalize(centres + noise * torch.randn(groups * per, dim, generator=g), dim=-1)
    return img, txt
