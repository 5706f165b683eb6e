"""The hierarchical bootstrap of a paired comparison over seeds x test images: a result is a sample
of training seeds *and* of test images, so both are resampled, crossed (every seed is evaluated on
the same images): each replicate draws n seeds with replacement and, for every evaluation set, its
images with replacement (an image's captions go with it), the same draws for both arms (paired).
The endpoint of a run is recomputed under the image weights from its stored per-query hits
(``queries/<run>.csv.gz``, :mod:`rsdix.studies.efficiency.endpoints`): a recall is a weighted share
of hits; mR the mean of the six recalls; zero-shot top-1 the weighted share of right images. A
query's hit stays what it was on the full set (the retrieval gallery is not resampled).

    terms = [(+1, {seed: frame_a}), (-1, {seed: frame_b})]            # A - B
    point, low, high = hierarchical_interval(terms, ["UCM-target"], "retrieval")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rsdix.errors import DataError
from rsdix.studies.efficiency.endpoints import hits_of
from rsdix.results import read_table


def per_image(frame: pd.DataFrame, title: str, task: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One set of one run, per image: retrieval -> (image->text hits (n, 3), the image's captions'
    text->image hits summed (n, 3), its caption count (n,)); zero-shot -> (right (n, 1), None, None)."""
    if task == "zero-shot":
        _, right = hits_of(frame, title, "zs")
        return right.astype(float), None, None
    img, i2t = hits_of(frame, title, "i2t")
    owner, t2i = hits_of(frame, title, "t2i")
    if len(i2t) == 0:
        raise DataError(title, "no stored queries of this set")
    n = len(i2t)
    t2i_sum = np.zeros((n, t2i.shape[1]))
    np.add.at(t2i_sum, owner, t2i.astype(float))
    return i2t[np.argsort(img)].astype(float), t2i_sum, np.bincount(owner, minlength=n).astype(float)


def endpoint(weights: list[np.ndarray], parts: list[tuple]) -> np.ndarray:
    """The endpoint (mean over the sets) under image weights ``weights[s]`` (replicates x images) of
    each set's :func:`per_image` parts: percent, one value per replicate."""
    values = []
    for w, (hits, t2i_sum, ncap) in zip(weights, parts):
        total = w.sum(axis=1)
        if t2i_sum is None:
            values.append(100.0 * (w @ hits[:, 0]) / total)
            continue
        recalls = [(w @ hits[:, k]) / total for k in range(hits.shape[1])]
        recalls += [(w @ t2i_sum[:, k]) / (w @ ncap) for k in range(t2i_sum.shape[1])]
        values.append(100.0 * np.mean(recalls, axis=0))
    return np.mean(values, axis=0)


def hierarchical_interval(terms: list[tuple[int, dict]], titles: list[str], task: str, n_boot: int = 10000,
                          seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(point, low, high)``: the statistic sum_t sign_t * mean over seeds of the endpoint of run
    (t, seed), and its percentile interval over ``n_boot`` replicates that resample the seeds all terms
    share and each set's images. ``terms``: ``(sign, {seed: query frame})``."""
    seeds = sorted(set.intersection(*(set(frames) for _, frames in terms)))
    if len(seeds) < 2:
        raise DataError("hierarchical bootstrap", f"needs at least 2 seeds every term has, got {len(seeds)}")
    parts = {(i, s): [per_image(frames[s], t, task) for t in titles] for i, (_, frames) in enumerate(terms) for s in seeds}
    sizes = [len(p[0]) for p in parts[(0, seeds[0])]]
    rng = np.random.default_rng(seed)
    image_w = [rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float) for n in sizes]
    seed_w = rng.multinomial(len(seeds), np.full(len(seeds), 1.0 / len(seeds)), size=n_boot).astype(float)
    ones = [np.ones((1, n)) for n in sizes]
    total, point = np.zeros(n_boot), 0.0
    for i, (sign, _) in enumerate(terms):
        vals = np.stack([endpoint(image_w, parts[(i, s)]) for s in seeds], axis=1)
        total += sign * (seed_w * vals).sum(axis=1) / len(seeds)
        point += sign * float(np.mean([endpoint(ones, parts[(i, s)])[0] for s in seeds]))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(total, [tail, 100 - tail])
    return point, float(low), float(high)


def read_queries(folder: Path, run: str) -> pd.DataFrame | None:
    path = Path(folder) / f"{run}.csv.gz"
    return read_table(path) if path.exists() else None
