"""Image-text retrieval: recall@k both ways over cached features, and the task on a model and a
caption set.

Two tie conventions, both reported. The headline ``i2t_R@k`` / ``t2i_R@k`` / ``mR`` follow the
field (CLIP_benchmark, RemoteCLIP's ``retrieval.py``, the published tables): ``scores = text @
image.T``, each query takes ``torch.topk`` of its row (tied items in topk's own order), a query
hits when any of its positives is among them. The same names with ``_tie_expected`` appended
(``mR_tie_expected``) break exact ties at random, in expectation (order-independent).

    m = retrieval(bundle, load_retrieval("ucm_captions"))   # {"i2t_R@1": ..., "mR": ..., "mR_tie_expected": ...}

A third convention, SkyScript's and FarSLIP's (:func:`unique_text_recall`, ``convention="unique_text"``):
identical caption strings are merged into one text query whose positives are every image having
that caption; each image and each distinct text is counted once; FarSLIP reports the mean of
R@1/5/10 per direction (``i2t_mean``, ``t2i_mean``) instead of one mR.

What a person looks at first, a gallery (notebook 05): :func:`retrieval_gallery` picks a few
captions as text queries and returns each one's top-k images from the cached features
(:func:`top_images`); :func:`rsdix.evaluation.eval_figures.plot_retrieval_gallery` draws them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from rsdix.data.captions import CaptionDataset
from rsdix.errors import DataError, require_finite
from rsdix.models.features import FeatureCache, encode_images, encode_texts


TIE_EXPECTED = "_tie_expected"   # suffix of the tie-expectation metrics


def retrieval_metrics(image_features: torch.Tensor, text_features: torch.Tensor,
                      text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10),
                      chunk_size: int = 1024, device: str | None = None) -> dict[str, float]:
    """The headline recall@k and mR in the field's convention (:func:`topk_recall`), then the
    same metrics with ties in expectation (:func:`tie_expected_recall`), named ``<metric>_tie_expected``."""
    out = topk_recall(image_features, text_features, text_to_image, ks, chunk_size, device)
    expected = tie_expected_recall(image_features, text_features, text_to_image, ks, chunk_size, device)
    out.update({f"{key}{TIE_EXPECTED}": value for key, value in expected.items()})
    return out


def check_retrieval_inputs(image_features, text_features, text_to_image, device: str | None = None):
    """``(images, texts, text_to_image)`` as float32 / long tensors on ``device`` (cuda when present
    and none given), after checking sizes, indices, finiteness and that every image has a caption."""
    img = torch.as_tensor(image_features, dtype=torch.float32)
    txt = torch.as_tensor(text_features, dtype=torch.float32)
    t2i = torch.as_tensor(list(text_to_image), dtype=torch.long)
    n_img, n_txt = len(img), len(txt)
    if n_img == 0 or n_txt == 0:
        raise DataError("retrieval", f"empty retrieval set ({n_img} images, {n_txt} texts)")
    if len(t2i) != n_txt:
        raise DataError("retrieval", f"text_to_image has {len(t2i)} entries for {n_txt} texts")
    if int(t2i.min()) < 0 or int(t2i.max()) >= n_img:
        raise DataError("retrieval", f"text_to_image points outside 0..{n_img - 1}")
    require_finite(img, "retrieval", "image features")
    require_finite(txt, "retrieval", "text features")
    no_caption = torch.ones(n_img, dtype=torch.bool)
    no_caption[t2i] = False
    if no_caption.any():
        raise DataError("retrieval", f"{int(no_caption.sum())} image(s) have no caption, "
                                     f"first index {int(no_caption.nonzero()[0])}")
    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device:
        img, txt, t2i = img.to(device), txt.to(device), t2i.to(device)
    return img, txt, t2i


def topk_recall(image_features: torch.Tensor, text_features: torch.Tensor, text_to_image: Sequence[int],
                ks: Sequence[int] = (1, 5, 10), chunk_size: int = 1024, device: str | None = None
                ) -> dict[str, float]:
    """Recall@k (percent) and mR in the convention of CLIP_benchmark and RemoteCLIP's retrieval.py.

    ``scores = text @ image.T``; text->image: each text's row, ``torch.topk(k)`` (a separate call
    per k, ties in topk's order), a hit when its image is among them; image->text: the rows of
    ``scores.T``, a hit when any of the image's captions is among them. Queries are taken in
    chunks of ``chunk_size`` (a row holds the same numbers, so topk picks the same items)."""
    img, txt, t2i = check_retrieval_inputs(image_features, text_features, text_to_image, device)
    n_img, n_txt = len(img), len(txt)
    hits = {f"{d}_R@{k}": 0 for d in ("i2t", "t2i") for k in ks}
    for start in range(0, n_txt, chunk_size):                       # text -> image
        scores = txt[start:start + chunk_size] @ img.T
        own = t2i[start:start + chunk_size, None]
        for k in ks:
            top = scores.topk(min(k, n_img), dim=1).indices
            hits[f"t2i_R@{k}"] += int((top == own).any(dim=1).sum())
    for start in range(0, n_img, chunk_size):                       # image -> text: rows of scores.T
        scores = (txt @ img[start:start + chunk_size].T).T
        rows = torch.arange(start, start + len(scores), device=img.device)[:, None]
        for k in ks:
            top = scores.topk(min(k, n_txt), dim=1).indices
            hits[f"i2t_R@{k}"] += int((t2i[top] == rows).any(dim=1).sum())
    out = {key: 100.0 * n / (n_img if key.startswith("i2t") else n_txt) for key, n in hits.items()}
    out["mR"] = float(np.mean(list(out.values())))
    return out


def tie_expected_recall(image_features: torch.Tensor, text_features: torch.Tensor,
                        text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10),
                        chunk_size: int = 1024, device: str | None = None) -> dict[str, float]:
    """Image->text and text->image recall@k (percent) and mR, exact ties at random in expectation.

    A query scores a hit at k when any correct item ranks in its top k (an image has several
    captions). Exact ties are common: UCM-Captions repeats the same sentence for many images, so
    an image's best caption often ties with other images' identical captions. Tied items are
    taken in random order, in expectation: a query counts the probability that some correct item
    lands in the top k (order-independent; :func:`topk_recall`, the field's convention, takes
    ties in ``torch.topk``'s order, which matches this on average; counting ties in the query's
    favour instead inflated UCM i2t R@1 from about 7 to 26 for the same model). One chunked pass over the similarity matrix serves
    both directions, so 10k images x 50k captions never materialises the full matrix.
    """
    img, txt, t2i = check_retrieval_inputs(image_features, text_features, text_to_image, device)
    n_img, n_txt = len(img), len(txt)
    # Per query: items scoring strictly higher than the best correct one (above), other items tied
    # with it (tied), correct items tied at that score (own). The own item never counts against
    # its query: an image's best caption score is read from the same matrix product as the rest
    # (a separately computed dot product differs in the last bits, and a strict comparison then
    # counted a text's own image against it about half the time), and for text->image (one
    # correct image) only the other images are compared.
    zeros = lambda n: torch.zeros(n, dtype=torch.long, device=img.device)  # noqa: E731
    i2t = {"above": zeros(n_img), "tied": zeros(n_img), "own": zeros(n_img)}
    t2i_ = {"above": zeros(n_txt), "tied": zeros(n_txt), "own": torch.ones(n_txt, dtype=torch.long, device=img.device)}
    rows = torch.arange(n_img, device=img.device)
    # first pass: each text's own-image score, read from the same chunked product as the rest
    own_score = torch.empty(n_txt, dtype=img.dtype, device=img.device)
    for start in range(0, n_img, chunk_size):
        stop = min(start + chunk_size, n_img)
        sims = img[start:stop] @ txt.T
        inside = (t2i >= start) & (t2i < stop)
        cols = inside.nonzero().squeeze(1)
        own_score[cols] = sims[t2i[cols] - start, cols]
        del sims
    for start in range(0, n_img, chunk_size):
        stop = min(start + chunk_size, n_img)
        sims = img[start:stop] @ txt.T                                   # (c, n_txt)
        mine = t2i[None, :] == rows[start:stop, None]                    # (c, n_txt): own captions
        best = sims.masked_fill(~mine, -math.inf).amax(dim=1, keepdim=True)
        at_best = sims == best
        i2t["above"][start:stop] = (sims > best).sum(dim=1)
        i2t["tied"][start:stop] = (at_best & ~mine).sum(dim=1)
        i2t["own"][start:stop] = (at_best & mine).sum(dim=1)
        t2i_["above"] += ((sims > own_score[None, :]) & ~mine).sum(dim=0)
        t2i_["tied"] += ((sims == own_score[None, :]) & ~mine).sum(dim=0)
        del sims, mine, at_best
    out = {}
    for name, counts in (("i2t", i2t), ("t2i", t2i_)):
        for k in ks:
            out[f"{name}_R@{k}"] = 100.0 * float(hit_probability(counts["above"], counts["tied"], counts["own"], k).mean())
    out = {key: out[key] for key in [f"{d}_R@{k}" for d in ("i2t", "t2i") for k in ks]}
    out["mR"] = float(np.mean(list(out.values())))
    return out


def hit_probability(above: torch.Tensor, tied: torch.Tensor, own: torch.Tensor, k: int) -> torch.Tensor:
    """P(some correct item is in the top k) when ``above`` items score higher and the ``tied``
    other items and ``own`` correct items share the best correct score, in random order:
    ``1 - C(tied, r) / C(tied + own, r)`` with ``r = k - above`` slots left (0 if r <= 0)."""
    slots = k - above
    miss = torch.ones(above.shape, dtype=torch.float64, device=above.device)
    for t in range(k):
        factor = (tied - t).clamp(min=0).double() / (tied + own - t).clamp(min=1).double()
        miss = torch.where(slots > t, miss * factor, miss)
    return torch.where(slots > 0, 1.0 - miss, torch.zeros_like(miss))


def unique_text_recall(image_features: torch.Tensor, text_features: torch.Tensor, text_ids: Sequence[int],
                       text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10), chunk_size: int = 1024,
                       device: str | None = None) -> dict[str, float]:
    """Recall@k (percent) and mR over *distinct* texts (SkyScript's cross_modal_retrieval, FarSLIP).

    ``text_features`` holds one row per distinct caption; caption ``j`` is distinct text
    ``text_ids[j]`` of image ``text_to_image[j]``. Text->image: each distinct text is one query, a
    hit when any image having that text is in its top k; image->text: each image a query over the
    distinct texts, a hit when any of its texts is in the top k. Ties in ``torch.topk``'s order, as
    the field's convention (:func:`topk_recall`)."""
    ids = torch.as_tensor(list(text_ids), dtype=torch.long)
    if len(ids) != len(list(text_to_image)):
        raise DataError("retrieval", f"{len(ids)} text ids for {len(list(text_to_image))} captions")
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(text_features)):
        raise DataError("retrieval", f"text ids point outside 0..{len(text_features) - 1}")
    img, txt, t2i = check_retrieval_inputs(image_features, torch.as_tensor(text_features)[ids], text_to_image, device)
    txt = torch.as_tensor(text_features, dtype=torch.float32).to(img.device)
    n_img, n_txt = len(img), len(txt)
    positive = torch.zeros(n_txt, n_img, dtype=torch.bool, device=img.device)
    positive[ids.to(img.device), t2i] = True
    hits = {f"{d}_R@{k}": 0 for d in ("i2t", "t2i") for k in ks}
    for start in range(0, n_txt, chunk_size):                       # distinct text -> image
        scores, pos = txt[start:start + chunk_size] @ img.T, positive[start:start + chunk_size]
        for k in ks:
            top = scores.topk(min(k, n_img), dim=1).indices
            hits[f"t2i_R@{k}"] += int(pos.gather(1, top).any(dim=1).sum())
    for start in range(0, n_img, chunk_size):                       # image -> distinct text
        scores, pos = img[start:start + chunk_size] @ txt.T, positive[:, start:start + chunk_size].T
        for k in ks:
            top = scores.topk(min(k, n_txt), dim=1).indices
            hits[f"i2t_R@{k}"] += int(pos.gather(1, top).any(dim=1).sum())
    out = {key: 100.0 * n / (n_img if key.startswith("i2t") else n_txt) for key, n in hits.items()}
    out["mR"] = float(np.mean(list(out.values())))
    return out


def directional_means(metrics: dict[str, float], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """FarSLIP's summary: ``i2t_mean`` and ``t2i_mean``, each the mean of R@1/5/10 of one direction."""
    return {f"{d}_mean": float(np.mean([metrics[f"{d}_R@{k}"] for k in ks])) for d in ("i2t", "t2i")}


def distinct_texts(texts: Sequence[str]) -> tuple[list[str], list[int]]:
    """``(distinct texts in order of first appearance, index of each text among them)``."""
    order: dict[str, int] = {}
    ids = [order.setdefault(t, len(order)) for t in texts]
    return list(order), ids


def retrieval(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None, dataset_name: str | None = None,
              split: str = "test", batch_size: int = 64, num_workers: int = 0, convention: str = "per_caption",
              captions: Callable[[list[str]], list[str]] | None = None, directional: bool = False,
              **kwargs) -> dict[str, float]:
    """Image<->text retrieval on a caption dataset (every caption of every image).

    ``convention``: ``per_caption`` (the field's and the tie-expected metrics) or ``unique_text``
    (:func:`unique_text_recall`; adds ``n_distinct_texts``); ``captions`` transforms the captions
    first (a protocol's prefix or capitalisation); ``directional`` adds ``i2t_mean``/``t2i_mean``."""
    cache = cache if cache is not None else FeatureCache()
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                                batch_size=batch_size, num_workers=num_workers)
    texts = list(dataset.texts())
    texts = captions(texts) if captions is not None else texts
    if convention == "unique_text":
        unique, ids = distinct_texts(texts)
        text_feats = encode_texts(bundle, unique, cache, desc="encode distinct captions")
        out = unique_text_recall(image_feats, text_feats, ids, dataset.text_to_image(), **kwargs)
        out["n_distinct_texts"] = float(len(unique))
    elif convention == "per_caption":
        text_feats = encode_texts(bundle, texts, cache, desc="encode captions")
        out = retrieval_metrics(image_feats, text_feats, dataset.text_to_image(), **kwargs)
    else:
        raise DataError("retrieval", f"convention {convention!r} is not per_caption or unique_text")
    if directional:
        out.update(directional_means(out))
    return out


def top_images(image_features: torch.Tensor, text_features: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The indices ``(n_texts, k)`` of each text's ``k`` best images, best first (scores
    ``text @ image.T`` on the features as given; ties in ``torch.topk``'s order, as the headline
    recall takes them)."""
    require_finite(image_features, "gallery image features", "feature rows")
    require_finite(text_features, "gallery text features", "feature rows")
    if image_features.shape[-1] != text_features.shape[-1]:
        raise DataError("retrieval gallery", f"image features of width {image_features.shape[-1]}, "
                                             f"text features of width {text_features.shape[-1]}")
    scores = text_features.float() @ image_features.float().T
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


@dataclass
class GalleryQuery:
    """One text query of a retrieval gallery: the caption, the image it describes (``truth``,
    an index into the dataset) and the ``retrieved`` image indices, best first."""
    text: str
    truth: int
    retrieved: list[int]

    @property
    def rank(self) -> int | None:
        """The 1-based rank of the true image among the retrieved ones (None: not among them)."""
        return self.retrieved.index(self.truth) + 1 if self.truth in self.retrieved else None


def gallery_queries(dataset: CaptionDataset, n: int = 4, seed: int = 0) -> list[int]:
    """Indices into ``dataset.texts()`` of ``n`` text queries: the first caption of ``n`` images
    drawn with ``seed`` (the same for every model, so their galleries compare)."""
    to_image = dataset.text_to_image()
    first = {}
    for t, i in enumerate(to_image):
        first.setdefault(i, t)
    images = np.random.default_rng(seed).permutation(sorted(first))[:n]
    return [first[int(i)] for i in images]


def retrieval_gallery(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None,
                      dataset_name: str | None = None, split: str = "test", n_queries: int = 4, k: int = 5,
                      seed: int = 0, batch_size: int = 64, num_workers: int = 0) -> list[GalleryQuery]:
    """``n_queries`` captions of ``dataset`` (:func:`gallery_queries`) with each one's top-``k``
    images for ``bundle``; the features are :func:`retrieval`'s own (read from ``cache`` when
    the retrieval task ran with it)."""
    images = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                           batch_size=batch_size, num_workers=num_workers)
    texts = list(dataset.texts())
    text_feats = encode_texts(bundle, texts, cache, desc="encode captions")
    queries = gallery_queries(dataset, n_queries, seed)
    top = top_images(images, text_feats[queries], k)
    to_image = dataset.text_to_image()
    return [GalleryQuery(texts[q], to_image[q], row.tolist()) for q, row in zip(queries, top)]
