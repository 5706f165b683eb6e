"""The study's per-query hits: their means are rsdix.evaluation.retrieval.topk_recall's recalls (the field's
torch.topk convention, duplicated captions and ties included); the bit coding round-trips."""
import numpy as np
import pytest
import torch

from rsdix.evaluation.retrieval import topk_recall
from rsdix.studies.efficiency.endpoints import query_frame, hits_of, query_hits, recalls


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_query_hits_average_to_topk_recall(seed):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    owner = torch.arange(30).repeat_interleave(3)
    txt = torch.nn.functional.normalize(img[owner] + torch.randn(90, 8, generator=g), dim=-1)
    txt[5] = txt[40]                                    # a caption shared by two images: exact ties
    i2t, t2i = query_hits(img, txt, owner)
    want = topk_recall(img, txt, owner.tolist(), device="cpu")
    got = recalls(i2t, t2i)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_hit_bits_round_trip():
    hits = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=bool)
    frame = query_frame("UCM", "i2t", np.arange(5), hits)
    assert frame.bits.tolist() == [7, 6, 4, 0, 5]
    image, back = hits_of(frame, "UCM", "i2t")
    assert (back == hits).all() and image.tolist() == list(range(5))
