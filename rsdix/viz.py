"""Plot helpers shared by the notebooks (matplotlib/seaborn); each returns a Figure and can save it."""
from __future__ import annotations

import random
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure as PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def image_grid(items, ncols: int = 4, size: float = 3.0, wrap: int = 38, title: str | None = None):
    """Grid of ``(PIL image, caption text)`` pairs."""
    items = list(items)
    nrows = max(1, (len(items) + ncols - 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.9)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, text) in zip(axes.flat, items):
        ax.imshow(image)
        ax.set_title("\n".join(textwrap.wrap(text, wrap)[:4]), fontsize=8, loc="left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def caption_samples(dataset, n: int = 8, seed: int = 0, captions_per_image: int = 2):
    """``(image, text)`` pairs from a CaptionDataset: an image with its first captions."""
    rng = random.Random(seed)
    idx = rng.sample(range(len(dataset)), min(n, len(dataset)))
    out = []
    for i in idx:
        rec = dataset.records[i]
        text = " | ".join(rec.captions[:captions_per_image])
        out.append((dataset.load(i) if dataset.transform is None else None, f"{rec.filename}: {text}"))
    return out


def class_samples(dataset, n: int = 8, seed: int = 0):
    """``(image, class name)`` pairs from a ClassificationDataset, one class per image where possible."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(dataset.labels):
        by_class.setdefault(label, []).append(i)
    labels = rng.sample(sorted(by_class), min(n, len(by_class)))
    return [(dataset.load(rng.choice(by_class[l])), dataset.class_names[l]) for l in labels]


def captioned_images(items, ncols: int = 4, size: float = 3.2, wrap: int = 46, title: str | None = None):
    """Grid of ``(PIL image, [(label, text), ...])``: each image with several labelled captions
    (e.g. each model's generated caption and a reference) written under it, one line each."""
    items = list(items)
    nrows = max(1, (len(items) + ncols - 1) // ncols)
    n_lines = max((sum(len(textwrap.wrap(f"{k}: {t}", wrap)) for k, t in lines) for _, lines in items), default=1)
    text_h = 0.16 * n_lines + 0.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + text_h)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, lines) in zip(axes.flat, items):
        ax.imshow(image)
        text = "\n".join(w for k, t in lines for w in textwrap.wrap(f"{k}: {t}", wrap))
        ax.text(0.0, -0.03, text, transform=ax.transAxes, fontsize=7.5, va="top", ha="left", family="sans-serif")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
