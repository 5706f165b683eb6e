"""Evaluation of CLIP-style models: zero-shot classification, image-text retrieval, linear probe,
weighted k-NN, few-shot and counting, over cached features (:mod:`rsdix.features`).

Metrics are plain functions over feature tensors (CLIP_benchmark style); task functions take a
model bundle and a dataset and return metric dicts; :func:`evaluate_model` runs a list of
tasks and returns tidy rows (model, dataset, task, metric, value, seed). Accuracies and recalls
are percentages, as in the papers' tables.

    rows = evaluate_model(bundle, ["zero-shot:WHU-RS19", "retrieval:UCM"], dirs=dirs, seed=0)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from rsdix import config
from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions, select_split
from rsdix.data.classification import ClassificationDataset, read_label_csv, scan_class_folders
from rsdix.errors import ConfigError, DataError
from rsdix.features import FeatureCache, encode_images, encode_texts
from rsdix.evaluation.templates import get_templates

# ----------------------------------------------------------------------------------------------
# metrics over features
# ----------------------------------------------------------------------------------------------


def zero_shot_weights(text_features: torch.Tensor) -> torch.Tensor:
    """Class embeddings from ``(classes, templates, dim)`` normalised prompt features:
    the mean over templates, renormalised -> ``(classes, dim)``."""
    if text_features.ndim != 3:
        raise ValueError(f"expected (classes, templates, dim), got shape {tuple(text_features.shape)}")
    text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)
    return torch.nn.functional.normalize(text_features.mean(dim=1), dim=-1)


def classification_metrics(scores: torch.Tensor | np.ndarray, labels: Sequence[int],
                           n_classes: int | None = None) -> dict[str, float]:
    """top1, top5 (only with at least 5 classes) and balanced accuracy (mean per-class recall),
    in percent. ``scores`` is ``(n, classes)``; ties resolve to the lower class index."""
    from sklearn.metrics import balanced_accuracy_score

    scores = torch.as_tensor(scores, dtype=torch.float32)
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    if len(labels_t) == 0:
        raise DataError("labels", "no samples to score")
    n_classes = n_classes or scores.shape[1]
    pred = scores.argmax(dim=1)
    out = {"top1": 100.0 * float((pred == labels_t).float().mean())}
    if n_classes >= 5:
        top5 = scores.topk(5, dim=1).indices
        out["top5"] = 100.0 * float((top5 == labels_t[:, None]).any(dim=1).float().mean())
    present = np.unique(labels_t.numpy())
    out["balanced_acc"] = 100.0 * float(balanced_accuracy_score(labels_t.numpy(), pred.numpy())) \
        if len(present) > 1 else out["top1"]
    return out


def confusion(scores, labels: Sequence[int], n_classes: int) -> np.ndarray:
    """Confusion matrix ``(true, predicted)`` counts."""
    from sklearn.metrics import confusion_matrix

    pred = torch.as_tensor(scores).argmax(dim=1).numpy()
    return confusion_matrix(np.asarray(labels), pred, labels=list(range(n_classes)))


def retrieval_metrics(image_features: torch.Tensor, text_features: torch.Tensor,
                      text_to_image: Sequence[int], ks: Sequence[int] = (1, 5, 10),
                      chunk_size: int = 1024, device: str | None = None) -> dict[str, float]:
    """Image->text and text->image recall@k (percent) and mR, the mean of all of them.

    A query scores a hit at k when any correct item ranks in its top k (an image has several
    captions). Exact ties are common: UCM-Captions repeats the same sentence for many images, so
    an image's best caption often ties with other images' identical captions. Tied items are
    taken in random order, in expectation: a query counts the probability that some correct item
    lands in the top k (order-independent; the usual tools break ties by index order, which
    matches this on average; counting ties in the query's favour instead inflated UCM i2t R@1
    from about 7 to 26 for the same model). One chunked pass over the similarity matrix serves
    both directions, so 10k images x 50k captions never materialises the full matrix.
    """
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
    no_caption = torch.ones(n_img, dtype=torch.bool)
    no_caption[t2i] = False
    if no_caption.any():
        raise DataError("retrieval", f"{int(no_caption.sum())} image(s) have no caption, "
                                     f"first index {int(no_caption.nonzero()[0])}")
    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device:
        img, txt, t2i = img.to(device), txt.to(device), t2i.to(device)
    # Per query: items scoring strictly higher than the best correct one (above), other items tied
    # with it (tied), correct items tied at that score (own). The own item never counts against
    # its query: an image's best caption score is read from the same matrix product as the rest
    # (a separately computed dot product differs in the last bits, and a strict comparison then
    # counted a text's own image against it about half the time), and for text->image (one
    # correct image) only the other images are compared.
    zeros = lambda n: torch.zeros(n, dtype=torch.long, device=img.device)  # noqa: E731
    i2t = {"above": zeros(n_img), "tied": zeros(n_img), "own": zeros(n_img)}
    t2i_ = {"above": zeros(n_txt), "tied": zeros(n_txt), "own": torch.ones(n_txt, dtype=torch.long, device=img.device)}
    own_score = (txt * img[t2i]).sum(dim=1)
    rows = torch.arange(n_img, device=img.device)
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


def knn_classify(train_x: torch.Tensor, train_y: Sequence[int], test_x: torch.Tensor, k: int = 20,
                 temperature: float = 0.07, n_classes: int | None = None,
                 chunk_size: int = 4096) -> torch.Tensor:
    """Weighted k-NN class scores ``(n_test, classes)``: each of the k nearest training features
    (cosine) votes for its class with weight ``exp(sim / temperature)``."""
    train_x = torch.nn.functional.normalize(torch.as_tensor(train_x, dtype=torch.float32), dim=-1)
    test_x = torch.nn.functional.normalize(torch.as_tensor(test_x, dtype=torch.float32), dim=-1)
    train_y = torch.as_tensor(list(train_y), dtype=torch.long)
    n_classes = n_classes or int(train_y.max()) + 1
    k = min(k, len(train_x))
    out = []
    for start in range(0, len(test_x), chunk_size):
        sims = test_x[start:start + chunk_size] @ train_x.T
        top, idx = sims.topk(k, dim=1)
        weights = (top / temperature).exp()
        scores = torch.zeros(len(top), n_classes)
        scores.scatter_add_(1, train_y[idx], weights)
        out.append(scores)
    return torch.cat(out)


def fit_logistic(train_x, train_y, C: float, seed: int = 0, max_iter: int = 1000):
    """Multinomial logistic regression (L-BFGS) on the L2-normalised features as they are."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    return clf.fit(np.asarray(train_x), np.asarray(train_y))


def linear_probe(train_x, train_y, test_x, test_y, Cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
                 val_fraction: float = 0.2, seed: int = 0, n_classes: int | None = None) -> dict[str, float]:
    """Logistic regression on frozen features; C chosen by accuracy on a stratified validation
    split of the training set, then refit on the whole training set. Returns metrics + ``C``."""
    from sklearn.model_selection import train_test_split

    train_x, test_x = np.asarray(train_x, dtype=np.float32), np.asarray(test_x, dtype=np.float32)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n_classes = n_classes or int(max(train_y.max(), test_y.max())) + 1
    n_present = len(np.unique(train_y))
    n_val = max(int(round(val_fraction * len(train_y))), n_present)
    can_validate = np.bincount(train_y).max() >= 2 and np.unique(train_y, return_counts=True)[1].min() >= 2 \
        and len(train_y) - n_val >= n_present
    if len(Cs) > 1 and can_validate:
        tr_x, va_x, tr_y, va_y = train_test_split(train_x, train_y, test_size=n_val,
                                                  random_state=seed, stratify=train_y)
        val_acc = [float((fit_logistic(tr_x, tr_y, C, seed).predict(va_x) == va_y).mean()) for C in Cs]
        best_C = float(Cs[int(np.argmax(val_acc))])
    else:  # one C given, or too few images per class to hold some out: the middle of the grid
        best_C = float(sorted(Cs)[len(Cs) // 2])
    clf = fit_logistic(train_x, train_y, best_C, seed)
    out = classification_metrics(_full_scores(clf, test_x, n_classes), test_y, n_classes)
    out["C"] = best_C
    return out


def _full_scores(clf, x, n_classes: int) -> np.ndarray:
    """Decision scores with a column for every class (classes absent from training get -inf)."""
    scores = np.full((len(x), n_classes), -np.inf, dtype=np.float64)
    dec = clf.decision_function(x)
    if dec.ndim == 1:  # binary
        dec = np.stack([-dec, dec], axis=1)
    scores[:, clf.classes_] = dec
    return scores


def sample_shots(labels: Sequence[int], shots: int, seed: int | Sequence[int]) -> np.ndarray:
    """Indices of ``shots`` examples per class, seeded (``seed`` may be a sequence of ints, which
    numpy mixes into one independent stream); an error if a class has fewer."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < shots:
            raise DataError(f"class {c}", f"only {len(pool)} training images for {shots}-shot sampling")
        picked.append(rng.choice(pool, size=shots, replace=False))
    return np.sort(np.concatenate(picked))


def few_shot(train_x, train_y, test_x, test_y, shots: Sequence[int] = (1, 2, 4, 8, 16), draws: int = 5,
             seed: int = 0, C: float = 10.0, n_classes: int | None = None) -> pd.DataFrame:
    """Linear probe on k images per class, ``draws`` random draws per k: one row per (shots, draw)
    with top1 and balanced accuracy. C is fixed (there is no validation data at k shots)."""
    train_x, train_y = np.asarray(train_x, dtype=np.float32), np.asarray(train_y)
    n_classes = n_classes or int(max(train_y.max(), np.max(test_y))) + 1
    rows = []
    for k in shots:
        for draw in range(draws):
            idx = sample_shots(train_y, k, seed=[seed, draw, k])  # independent streams, no collisions
            clf = fit_logistic(train_x[idx], train_y[idx], C, seed)
            m = classification_metrics(_full_scores(clf, np.asarray(test_x), n_classes), test_y, n_classes)
            rows.append({"shots": k, "draw": draw, **m})
    return pd.DataFrame(rows)


def counting_accuracy(image_features: torch.Tensor, variant_features: torch.Tensor,
                      true_counts: Sequence[int]) -> dict[str, float]:
    """RemoteCount-style: for each image, the ten captions differing only in the count (1..10,
    ``variant_features`` is ``(n, 10, dim)``); top1 = the true count's caption ranks first,
    top3 likewise within three; ``mean_abs_error`` between predicted and true count."""
    img = torch.as_tensor(image_features, dtype=torch.float32)
    var = torch.as_tensor(variant_features, dtype=torch.float32)
    truth = torch.as_tensor(list(true_counts), dtype=torch.long) - 1
    if len(img) == 0:
        raise DataError("counting", "no captions with a count 1..10")
    sims = torch.einsum("nd,nkd->nk", img, var)
    top3 = sims.topk(3, dim=1).indices
    pred = sims.argmax(dim=1)
    return {"top1": 100.0 * float((pred == truth).float().mean()),
            "top3": 100.0 * float((top3 == truth[:, None]).any(dim=1).float().mean()),
            "mean_abs_error": float((pred - truth).abs().float().mean())}


# ----------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------

DATASET_NOTES = {
    "eurosat_ms": "EuroSAT-MS tiles rendered to true colour (B04/B03/B02)",
}


def _dataset_note(name: str, config) -> str:
    parts = [DATASET_NOTES.get(name, "")]
    if name in config.split_from:
        parts.append(f"images of {config.split_from[name]} only")
    return "; ".join(p for p in parts if p)


def resolve_dataset(name: str, kind: str):
    """A registry entry (:mod:`rsdix.data.registry`) by key (``whu_rs19``) or by title
    (``WHU-RS19``, ``UCM``) of the given kind (``classification`` or ``captions``)."""
    from rsdix.data.registry import get_info

    try:
        return get_info(name, kind)
    except DataError as exc:
        raise DataError(name, f"{exc.problem} (or pass path=)") from None


def _subsample(n_items: int, labels: Sequence[int] | None, max_items: int | None, seed: int) -> list[int]:
    """Seeded subset indices, sorted. With labels: ``max_items // n_classes`` (at least one) per
    class, all of a smaller class, so the subset can be smaller, or (more classes than
    ``max_items``) larger, than ``max_items``."""
    if max_items is None or n_items <= max_items:
        return list(range(n_items))
    rng = np.random.default_rng(seed)
    if labels is None:
        return sorted(rng.choice(n_items, size=max_items, replace=False).tolist())
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per = max(1, max_items // len(classes))
    keep = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        keep += rng.choice(pool, size=min(per, len(pool)), replace=False).tolist()
    return sorted(keep)


def load_classification(name: str, root: str | os.PathLike | None = None, max_images: int | None = None,
                        seed: int = 0, class_names: Sequence[str] | dict | None = None,
                        path: str | os.PathLike | None = None, split_from: str | None = None
                        ) -> ClassificationDataset:
    """A classification set of the dataset registry (key or title) or a folder/CSV at ``path``.

    ``class_names`` replaces the cleaned folder names: a list in class order (e.g. translated
    names) or a mapping ``folder -> name`` that must cover every class folder exactly.
    ``split_from="ucm_captions:test"`` keeps only the images of that caption set's split.
    """
    from rsdix.paths import data_root

    if path is None:
        info = resolve_dataset(name, "classification")
        path = data_root(root) / info.path
        if info.format == "csv":
            path = path / info.annotation
        if not path.exists():
            raise DataError(path, f"{info.title} not found under the data root; get it from {info.url}")
    path = Path(path)
    if path.suffix.lower() == ".csv":
        paths, labels, classes = read_label_csv(path, path.parent / "images")
    else:
        paths, labels, classes = scan_class_folders(path)
    if split_from:   # "caption_set:split": keep the images of that split (no train images in a test)
        cap_name, _, cap_split = split_from.partition(":")
        wanted = {r.filename for r in load_retrieval(cap_name, root, cap_split or "test").records}
        chosen = [i for i in range(len(paths)) if Path(paths[i]).name in wanted]
        if not chosen:
            raise DataError(path, f"no image of {split_from} is in this classification set")
        paths, labels = [paths[i] for i in chosen], [labels[i] for i in chosen]
    keep = _subsample(len(paths), labels, max_images, seed)
    names = _resolve_class_names(class_names, classes, path)
    return ClassificationDataset([paths[i] for i in keep], [labels[i] for i in keep], classes,
                                 class_names=names, source=path)


def _resolve_class_names(class_names, classes: list[str], source) -> list[str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, dict):
        missing = [c for c in classes if c not in class_names]
        unknown = [c for c in class_names if c not in classes]
        if missing or unknown:
            raise DataError(source, f"class-name mapping does not match the class folders: "
                                    f"missing {missing}, unknown {unknown}")
        return [class_names[c] for c in classes]
    class_names = list(class_names)
    if len(class_names) != len(classes):
        raise DataError(source, f"{len(class_names)} class names given for {len(classes)} classes "
                                f"({classes})")
    return class_names


def load_retrieval(name: str, root: str | os.PathLike | None = None, split: str = "test",
                   max_images: int | None = None, seed: int = 0, languages: Sequence[str] | None = None,
                   path: str | os.PathLike | None = None) -> CaptionDataset:
    """The official ``split`` of a caption set of the dataset registry (key or title) or a caption file
    at ``path``; ``languages`` keeps only captions in those languages."""
    from rsdix.paths import data_root

    if path is None:
        info = resolve_dataset(name, "captions")
        path = data_root(root) / info.path / info.annotation
        if not path.exists():
            raise DataError(path, f"{info.title} (captions and images) not found under the data root; "
                                  f"get it from {info.url}")
    records = select_split(read_captions(path), split, path)
    keep = _subsample(len(records), None, max_images, seed)
    return CaptionDataset([records[i] for i in keep], find_image_dir(path), transform=None, mode="eval",
                          languages=languages, source=path)


# ----------------------------------------------------------------------------------------------
# tasks: model + dataset -> metrics
# ----------------------------------------------------------------------------------------------


@dataclass
class ZeroShotResult:
    metrics: dict[str, float]
    confusion: np.ndarray
    class_names: list[str]
    scores: torch.Tensor
    labels: list[int]


def class_embeddings(bundle, class_names: Sequence[str], templates, cache: FeatureCache | None = None
                     ) -> torch.Tensor:
    """Zero-shot classifier weights ``(classes, dim)`` from class names x templates."""
    templates = get_templates(templates)
    class_names = list(class_names)
    if not class_names:
        raise DataError("class_names", "no class names")
    prompts = [t.format(c) for c in class_names for t in templates]
    feats = encode_texts(bundle, prompts, cache, desc="encode prompts")
    return zero_shot_weights(feats.view(len(class_names), len(templates), -1))


def zero_shot(bundle, dataset: ClassificationDataset, templates="rs", class_names: Sequence[str] | None = None,
              cache: FeatureCache | None = None, dataset_name: str | None = None, batch_size: int = 64,
              num_workers: int = 0) -> ZeroShotResult:
    """Zero-shot classification of ``dataset`` with prompt ensembles (any language)."""
    cache = cache if cache is not None else FeatureCache()
    names = _resolve_class_names(class_names, dataset.classes, dataset.source) or dataset.class_names
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split="all",
                                batch_size=batch_size, num_workers=num_workers)
    weights = class_embeddings(bundle, names, templates, cache)
    scores = image_feats @ weights.T
    labels = dataset.labels
    return ZeroShotResult(classification_metrics(scores, labels, len(names)),
                          confusion(scores, labels, len(names)), names, scores, labels)


def retrieval(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None, dataset_name: str | None = None,
              split: str = "test", batch_size: int = 64, num_workers: int = 0, **kwargs) -> dict[str, float]:
    """Image<->text retrieval on a caption dataset (every caption of every image)."""
    cache = cache if cache is not None else FeatureCache()
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                                batch_size=batch_size, num_workers=num_workers)
    text_feats = encode_texts(bundle, dataset.texts(), cache, desc="encode captions")
    return retrieval_metrics(image_feats, text_feats, dataset.text_to_image(), **kwargs)


def counting(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None, dataset_name: str | None = None,
             split: str = "test", batch_size: int = 64, num_workers: int = 0) -> dict[str, float]:
    """RemoteCount-style counting on any caption set: every caption with exactly one count
    (1..10, word or digit) becomes ten variants; see :mod:`rsdix.evaluation.counting`."""
    from rsdix.evaluation.counting import count_variants

    cache = cache if cache is not None else FeatureCache()
    items = []
    for i, rec in enumerate(dataset.records):
        for cap in rec.captions:
            found = count_variants(cap)
            if found is not None:
                items.append((i, found[0], found[1]))
    if not items:
        raise DataError(dataset.source, "no caption mentions a count 1..10: nothing to evaluate")
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                                batch_size=batch_size, num_workers=num_workers)
    texts = [v for _, _, variants in items for v in variants]
    text_feats = encode_texts(bundle, texts, cache, desc="encode count variants")
    out = counting_accuracy(image_feats[[i for i, _, _ in items]], text_feats.view(len(items), 10, -1),
                            [c for _, c, _ in items])
    out["n_captions"] = float(len(items))
    return out


def train_test_split_indices(labels: Sequence[int], train_fraction: float = 0.6, seed: int = 0):
    """A fixed, seeded, stratified split (for sets without an official one, e.g. WHU-RS19)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, train_size=train_fraction, random_state=seed, stratify=np.asarray(labels))
    return np.sort(tr), np.sort(te)


# ----------------------------------------------------------------------------------------------
# high-level entry point
# ----------------------------------------------------------------------------------------------

TASKS = ("zero-shot", "retrieval", "linear-probe", "knn", "few-shot", "counting")


@dataclass
class EvalConfig:
    """What :func:`evaluate_model` runs (YAML: ``rsdix/configs/evaluate/<profile>.yaml``)."""
    # dataset registry keys (rsdix.data.registry) or titles
    zero_shot: list[str] = field(default_factory=lambda: ["whu_rs19", "ucm_classification", "eurosat_ms"])
    retrieval: list[str] = field(default_factory=lambda: ["ucm_captions"])
    probe: list[str] = field(default_factory=lambda: ["whu_rs19"])   # linear probe, k-NN, few-shot
    counting: list[str] = field(default_factory=lambda: ["ucm_captions"])
    templates: str = "rs"
    retrieval_split: str = "test"
    counting_split: str = "test"
    train_fraction: float = 0.6        # seeded split for sets without an official one
    split_seed: int = 0
    probe_Cs: list[float] = field(default_factory=lambda: [1.0, 10.0, 100.0, 1000.0])
    knn_k: int = 20
    knn_temperature: float = 0.07
    few_shot_shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    few_shot_draws: int = 5
    few_shot_C: float = 10.0
    max_images: int | None = None      # per dataset (smoke profile); None = all
    batch_size: int = 64
    num_workers: int = 0
    # classification sets restricted to the images of a caption split (models trained on
    # UCM-Captions train images must not be tested on them): dataset -> "caption_set:split"
    split_from: dict[str, str] = field(default_factory=lambda: {"ucm_classification": "ucm_captions:test"})
    skip_missing: bool = False         # a dataset absent from the data root: warn and skip, or fail
    # models evaluated besides notebook 03's checkpoints: "label=open_clip_name@pretrained_tag_or_path"
    baselines: list[str] = field(default_factory=list)
    # evaluated (as an untrained, chance-level reference) when no trained checkpoint exists yet
    fallback_preset: str | None = None


def _describe_templates(templates) -> str:
    if isinstance(templates, str):
        return templates
    templates = list(templates)
    return f"{len(templates)} given, e.g. {templates[0]!r}"


def load_eval_config(profile: str = "cpu", **overrides) -> EvalConfig:
    return config.load("evaluate", profile, **overrides)


def _parse_tasks(tasks, config: EvalConfig) -> list[tuple[str, str]]:
    """``["zero-shot:UCM", "retrieval"]`` or None (everything in the config) -> (task, dataset)."""
    per_task = {"zero-shot": config.zero_shot, "retrieval": config.retrieval, "linear-probe": config.probe,
                "knn": config.probe, "few-shot": config.probe, "counting": config.counting}
    if tasks is None:
        tasks = list(TASKS)
    out = []
    for spec in tasks:
        task, _, dataset = spec.partition(":")
        if task not in TASKS:
            raise ConfigError(f"unknown evaluation task {task!r}; known: {TASKS}")
        out += [(task, dataset)] if dataset else [(task, d) for d in per_task[task]]
    return out


def evaluate_model(bundle, tasks: Sequence[str] | None = None, dirs=None, seed: int = 0,
                   model_name: str | None = None, config: EvalConfig | None = None,
                   data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None,
                   write: bool = True, details: dict | None = None,
                   templates: str | Sequence[str] | None = None, class_names: dict | None = None,
                   languages: Sequence[str] | None = None) -> pd.DataFrame:
    """Run evaluation tasks on one model; tidy rows (model, dataset, task, metric, value, seed).

    Multilingual evaluation goes through the same call: ``templates`` (a set name or a list of
    templates in any language, default ``config.templates``), ``class_names`` (dataset key or
    title -> class names in class order, or a folder -> name mapping) and ``languages``
    (retrieval and counting keep only captions in these languages, from the ``lang`` field).

    ``tasks``: ``"task"`` (every dataset the config lists for it) or ``"task:dataset"`` (a
    registry key or title, e.g. ``"zero-shot:whu_rs19"``, ``"retrieval:UCM"``); tasks are
    zero-shot, retrieval, linear-probe, knn, few-shot, counting. Rows carry the dataset's title
    as in the published tables. With ``dirs`` (a RunDirs) features are cached under
    ``dirs.run / "features"`` and rows are appended to ``dirs.results``. Pass a dict as
    ``details`` to receive ``details["zero_shot"][title]`` (:class:`ZeroShotResult`, with the
    confusion matrix), ``details["few_shot"]`` (one row per shots x draw),
    ``details["skipped"]`` (datasets absent, with ``config.skip_missing``) and
    ``details["cache_stats"]``.
    """
    import warnings

    from rsdix.paths import cache_dir
    from rsdix.results import Result, append_results

    config = config or EvalConfig()
    if cache is None:
        cache = FeatureCache((dirs.run / "features") if dirs is not None else cache_dir() / "features")
    model_name = model_name or bundle.name
    profile = getattr(dirs, "profile", "")
    rows: list[Result] = []
    zs_details, fs_details, skipped = {}, [], []
    loaded: dict = {}

    def add(info, task, metrics, n, split="test", note=""):
        note = "; ".join(x for x in (_dataset_note(info.name, config), note) if x)
        for metric, value in metrics.items():
            rows.append(Result(model_name, info.title, task, metric, float(value), seed=seed, split=split,
                               n=n, profile=profile, note=note))

    def load(kind, name, split=None):
        key = (kind, name, split)
        if key not in loaded:
            try:
                loaded[key] = (load_classification(name, data_root, config.max_images, config.split_seed,
                                                   split_from=config.split_from.get(name))
                               if kind == "classification" else
                               load_retrieval(name, data_root, split, config.max_images, config.split_seed,
                                              languages=languages))
            except DataError as exc:
                if not config.skip_missing or "not found" not in exc.problem:
                    raise
                warnings.warn(f"skipping {name}: {exc}")
                skipped.append({"dataset": name, "reason": str(exc)})
                loaded[key] = None
        return loaded[key]

    kw = dict(batch_size=config.batch_size, num_workers=config.num_workers)
    for task, name in _parse_tasks(tasks, config):
        kind = "captions" if task in ("retrieval", "counting") else "classification"
        info = resolve_dataset(name, kind)
        if kind == "classification":
            ds = load(kind, info.name)
            if ds is None:
                continue
            if task == "zero-shot":
                names = (class_names or {}).get(info.name, (class_names or {}).get(info.title))
                res = zero_shot(bundle, ds, templates or config.templates, class_names=names, cache=cache,
                                dataset_name=info.name, **kw)
                zs_details[info.title] = res
                add(info, task, res.metrics, len(ds), split="all",
                    note=f"templates={_describe_templates(templates or config.templates)}"
                         + ("; class names given" if names is not None else ""))
                continue
            feats = encode_images(bundle, ds, cache, dataset_name=info.name, split="all", **kw)
            labels = np.asarray(ds.labels)
            tr, te = train_test_split_indices(labels, config.train_fraction, config.split_seed)
            split_note = (f"no official split: seeded stratified {config.train_fraction:g}/"
                          f"{1 - config.train_fraction:g} split (split_seed={config.split_seed})")
            n_cls = len(ds.classes)
            if task == "linear-probe":
                m = linear_probe(feats[tr], labels[tr], feats[te], labels[te], config.probe_Cs, seed=seed,
                                 n_classes=n_cls)
                best_C = m.pop("C")
                add(info, task, m, len(te), note=f"{split_note}; C={best_C:g} chosen on validation")
            elif task == "knn":
                scores = knn_classify(feats[tr], labels[tr], feats[te], config.knn_k, config.knn_temperature,
                                      n_cls)
                add(info, task, classification_metrics(scores, labels[te], n_cls), len(te),
                    note=f"{split_note}; k={config.knn_k}, T={config.knn_temperature:g}")
            else:
                max_shots = int(np.bincount(labels[tr]).min())
                shots = [k for k in config.few_shot_shots if k <= max_shots]
                if len(shots) < len(config.few_shot_shots):
                    warnings.warn(f"{info.title}: {max_shots} training images in the smallest class; "
                                  f"few-shot runs only {shots}")
                draws = few_shot(feats[tr], labels[tr], feats[te], labels[te], shots, config.few_shot_draws,
                                 seed=seed, C=config.few_shot_C, n_classes=n_cls)
                draws.insert(0, "dataset", info.title)
                fs_details.append(draws)
                for k, group in draws.groupby("shots"):
                    add(info, f"few-shot-{k}", {"top1": group["top1"].mean(),
                                                "top1_std": group["top1"].std(ddof=0),
                                                "balanced_acc": group["balanced_acc"].mean()}, len(te),
                        note=f"{split_note}; mean over {len(group)} draws, C={config.few_shot_C:g}")
        else:
            split = config.retrieval_split if task == "retrieval" else config.counting_split
            ds = load(kind, info.name, None if split == "all" else split)
            if ds is None:
                continue
            lang_note = f"captions in {list(languages)}" if languages else ""
            if task == "retrieval":
                add(info, task, retrieval(bundle, ds, cache, dataset_name=info.name, split=split, **kw), len(ds),
                    split=split, note=lang_note)
            else:
                m = counting(bundle, ds, cache, dataset_name=info.name, split=split, **kw)
                n = int(m.pop("n_captions"))
                add(info, task, m, n, split=split,
                    note="; ".join(x for x in ("captions holding one count 1..10, ranked against their ten "
                                               "count variants", lang_note) if x))
    frame = pd.DataFrame([{k: v for k, v in r.__dict__.items() if k != "extra"} for r in rows])
    if dirs is not None and write and rows:
        append_results(rows, dirs.results)
    if details is not None:
        details["zero_shot"] = zs_details
        details["few_shot"] = pd.concat(fs_details, ignore_index=True) if fs_details else pd.DataFrame()
        details["skipped"] = skipped
        details["cache_stats"] = cache.stats
    return frame


def prefetch_image_features(bundles: dict, tasks: Sequence[str] | None = None, config: EvalConfig | None = None,
                            data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None
                            ) -> dict[str, int]:
    """Encode every image set that :func:`evaluate_model` will need, for several models in one
    pass per set (each image decoded once for all models sharing a transform), into ``cache``;
    the following ``evaluate_model`` calls then only read the cache. Returns images per set."""
    from rsdix.features import encode_images_many

    config = config or EvalConfig()
    cache = cache if cache is not None else FeatureCache()
    seen, sizes = set(), {}
    kw = dict(batch_size=config.batch_size, num_workers=config.num_workers)
    for task, name in _parse_tasks(tasks, config):
        kind = "captions" if task in ("retrieval", "counting") else "classification"
        info = resolve_dataset(name, kind)
        split = ("all" if kind == "classification" else
                 config.retrieval_split if task == "retrieval" else config.counting_split)
        if (info.name, split) in seen:
            continue
        seen.add((info.name, split))
        try:
            ds = (load_classification(info.name, data_root, config.max_images, config.split_seed,
                                      split_from=config.split_from.get(info.name))
                  if kind == "classification" else
                  load_retrieval(info.name, data_root, None if split == "all" else split, config.max_images,
                                 config.split_seed))
        except DataError as exc:
            if config.skip_missing and "not found" in exc.problem:
                continue          # evaluate_model reports it
            raise
        encode_images_many(bundles, ds, cache, dataset_name=info.name, split=split, **kw)
        sizes[f"{info.title} {kind}" + (f" {split}" if kind == "captions" else "")] = len(ds)
    return sizes


# ----------------------------------------------------------------------------------------------
# models to evaluate, and our numbers beside the published ones
# ----------------------------------------------------------------------------------------------


def list_checkpoints(models_dir: str | os.PathLike) -> list[Path]:
    """Model folders saved by :func:`rsdix.models.save_model` under ``models_dir`` (sorted)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if (p / "open_clip_config.json").is_file())


def parse_model_spec(spec: str) -> tuple[str, str, str | None]:
    """``"label=name@pretrained"`` (``label=`` and ``@pretrained`` optional) ->
    ``(label, name, pretrained)``; e.g. ``"RemoteCLIP=ViT-B-32@/ckpt/RemoteCLIP-ViT-B-32.pt"``."""
    label, sep, rest = spec.partition("=")
    if not sep:
        label, rest = "", spec
    name, _, pretrained = rest.partition("@")
    if not name:
        raise ConfigError(f"model spec {spec!r}: expected 'label=open_clip_name@pretrained'")
    return label or (f"{name}-{pretrained}" if pretrained else name), name, pretrained or None


def run_seed(run_name: str, default: int = 0) -> int:
    """The seed in a run name such as ``rsdix_s1`` or ``infonce_frac0.1_s2``."""
    import re

    m = re.search(r"_s(\d+)$", run_name)
    return int(m.group(1)) if m else default


def compare_with_published(results: pd.DataFrame, reference: pd.DataFrame | None = None,
                           metrics: Sequence[str] | None = None, mean_over_seeds: bool = True) -> pd.DataFrame:
    """Our numbers (one column per model) beside every published number for the same
    dataset/task/metric (one column per published model and backbone), one row per
    dataset x task x metric. Rows without a published number keep empty published columns.
    With ``mean_over_seeds``, run names ``method_s0``, ``method_s1`` become one column
    ``method`` holding the mean over seeds."""
    from rsdix.results import method_name, reference_numbers, with_reference

    ours = results if metrics is None else results[results["metric"].isin(list(metrics))]
    if "split" in ours:  # published numbers are test numbers: validation rows (model selection) stay out
        ours = ours[ours["split"].fillna("") != "val"]
    if ours.empty:
        raise DataError("results", "no rows to compare")
    if mean_over_seeds:   # the same pooling as rsdix.results.summarise (RESULTS.md)
        ours = ours.assign(model=ours["model"].map(method_name))
    key = ["dataset", "task", "metric"]
    wide = ours.groupby(key + ["model"])["value"].mean().unstack("model")
    ref = reference_numbers() if reference is None else reference
    merged = with_reference(wide.reset_index()[key].drop_duplicates(), reference=ref)
    merged = merged.dropna(subset=["published"])
    if merged.empty:
        return wide.reset_index()
    merged["column"] = "published: " + merged["ref_model"] + " " + merged["ref_backbone"].astype(str)
    published = merged.pivot_table(index=key, columns="column", values="published", aggfunc="first")
    return wide.join(published, how="left").reset_index()
