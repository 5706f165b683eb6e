"""Toy inputs shared by the metric-study tests: a scored-pairs frame and a caption set."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rsdix.studies.caption_metrics.caption_sets import CaptionSet


def toy_scored(seed=0, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for kind, shift in (("identity", 1.0), ("synonym", 0.8), ("swap-class", 0.6), ("unrelated", 0.1)):
            rows.append({"dataset": "toy", "image": i, "perturbation": kind,
                         "group": {"identity": "identity", "synonym": "preserving"}.get(kind, "changing"),
                         "A": shift + rng.normal(0, 0.02), "B": 1.0 - shift / 2 + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


def toy_caption_set():
    caps = [["there are two tennis courts near the forest", "two tennis courts beside green trees"],
            ["a white building is next to the airport", "an airport with a white terminal"],
            ["many green trees in the forest", "a dense forest with green trees", "green trees"],
            ["a river goes through the dense residential area", "houses on both sides of a river"],
            ["a parking lot with many cars", "many cars are parked in the parking lot"],
            ["the dark blue river is curved", "a curved river"]]
    return CaptionSet("toy", [f"{i}.jpg" for i in range(6)], caps, ["a", "a", "b", "b", "c", "c"])

