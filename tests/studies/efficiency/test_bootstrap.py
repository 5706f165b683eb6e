"""The hierarchical bootstrap over seeds x test images: its endpoint under image weights equals the plain
recall of the data with each image repeated by its weight (a peer written out), unit weights give the
runs' own mR, and identical arms give an interval of zero width."""
import numpy as np
import pandas as pd
import pytest
import torch

from rsdix.studies.efficiency.bootstrap import endpoint, hierarchical_interval, per_image
from rsdix.studies.efficiency.endpoints import query_frame, query_hits, recalls


def _run_frame(seed, n_img=6, caps=2, d=5):
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n_img, d, generator=g), dim=-1)
    owner = torch.arange(n_img).repeat_interleave(caps)
    txt = torch.nn.functional.normalize(img[owner] + 0.9 * torch.randn(len(owner), d, generator=g), dim=-1)
    i2t, t2i = query_hits(img, txt, owner)
    zs = (torch.rand(n_img, generator=g) > 0.5).numpy()
    frame = pd.concat([query_frame("S", "i2t", np.arange(n_img), i2t), query_frame("S", "t2i", owner.numpy(), t2i),
                       query_frame("Z", "zs", np.arange(n_img), zs[:, None])], ignore_index=True)
    return frame, recalls(i2t, t2i)["mR"], 100 * zs.mean()


def test_unit_weights_give_the_runs_own_numbers():
    frame, mr, top1 = _run_frame(0)
    ones = [np.ones((1, 6))]
    assert endpoint(ones, [per_image(frame, "S", "retrieval")])[0] == pytest.approx(mr)
    assert endpoint(ones, [per_image(frame, "Z", "zero-shot")])[0] == pytest.approx(top1)


def test_weighted_endpoint_equals_the_data_with_images_repeated():
    frame, _, _ = _run_frame(1)
    w = np.array([[2, 0, 1, 0, 3, 0]], dtype=float)
    # peer: repeat each image's query and its captions' queries w_i times, then plain recalls
    i2t = frame[(frame["set"] == "S") & (frame.kind == "i2t")]
    t2i = frame[(frame["set"] == "S") & (frame.kind == "t2i")]
    rep_i = np.repeat(i2t.bits.to_numpy(), w[0][i2t.image.to_numpy()].astype(int))
    rep_t = np.repeat(t2i.bits.to_numpy(), w[0][t2i.image.to_numpy()].astype(int))
    want = np.mean([100 * ((rep_i >> j) & 1).mean() for j in range(3)] + [100 * ((rep_t >> j) & 1).mean() for j in range(3)])
    assert endpoint([w], [per_image(frame, "S", "retrieval")])[0] == pytest.approx(want)


def test_interval_of_identical_arms_is_zero_and_of_different_arms_covers_the_point():
    a = {s: _run_frame(10 + s)[0] for s in range(4)}
    point, low, high = hierarchical_interval([(1, a), (-1, a)], ["S"], "retrieval", n_boot=300)
    assert point == 0 and low == high == 0
    b = {s: _run_frame(20 + s)[0] for s in range(4)}
    point, low, high = hierarchical_interval([(1, a), (-1, b)], ["S"], "retrieval", n_boot=500)
    assert low <= point <= high and high > low
    want = np.mean([_run_frame(10 + s)[1] - _run_frame(20 + s)[1] for s in range(4)])
    assert point == pytest.approx(want)
