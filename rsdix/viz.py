"""Plot helpers shared by the notebooks (matplotlib/seaborn); each returns a Figure and can save it.

Every figure of the package draws a model in the same colour (:func:`model_colour`, from the one
palette :data:`MODEL_COLOURS`), says what its intervals are in a caption line under the axes
(:func:`caption`), and draws intervals that stay inside the metric's range (:mod:`rsdix.intervals`:
a Wilson score interval for an accuracy over ``n`` test images, a percentile bootstrap of the mean
over seeds or draws, chosen by :func:`rsdix.intervals.accuracy_interval`; :data:`INTERVAL_TEXT`
says which).
"""
from __future__ import annotations

import random
import re
import textwrap
import zlib
from pathlib import Path

import matplotlib.pyplot as plt

# one colour per model (method) across all figures; models not named here get a stable colour of
# EXTRA_COLOURS from their name (:func:`model_colour`)
MODEL_COLOURS = {
    "infonce": "#4c72b0",        # the InfoNCE baseline (CLIP fine-tuning)
    "rsdix": "#dd8452",          # RSDiX-CLIP: OT self-distillation
    "rsdix-long": "#c44e52",     # the chosen method at the longer schedule
    "rsdix-sbert": "#55a868",    # RSDiX-CLIP with the S-BERT teacher
    "rsdix-siglip": "#8172b3",   # RSDiX-SigLIP
    "siglip": "#937860",         # plain SigLIP
    "dino": "#da8bc3",           # CLIP + DINO local/global (RS-M-CLIP)
    "clip": "#8c8c8c",           # OpenAI CLIP, zero-shot
    "remoteclip": "#ccb974",     # RemoteCLIP checkpoints
    "georsclip": "#64b5cd",      # GeoRSCLIP checkpoints
}
EXTRA_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
                 "#17becf", "#bcbd22"]
PUBLISHED_COLOUR = "crimson"     # published numbers (markers)
CHANCE_COLOUR = "black"          # chance level (dashed)


def model_key(name: str) -> str:
    """The palette key of a model or run name: lower case, without the seed suffix (``_s0``), the
    data-share suffix (``_frac0.1``), the EMA-teacher suffix (``-ema``), and the captioner's
    ``clipcap-`` prefix and ``-frozen`` / ``-trained`` suffix, so every run of a method (and the
    captioner on its encoder) shares the method's colour; ``Label=spec`` keeps the label."""
    key = str(name).split("=", 1)[0].strip().lower()
    key = re.sub(r"^clipcap-", "", key)
    key = re.sub(r"-(frozen|trained)$", "", key)
    key = re.sub(r"_s\d+(?=$|[-_])", "", key)
    key = re.sub(r"_frac[\d.]+", "", key)
    key = re.sub(r"-ema$", "", key)
    key = re.sub(r"_s\d+$", "", key)
    return key


def model_colour(name: str) -> str:
    """The model's colour in every figure: :data:`MODEL_COLOURS` by :func:`model_key` (a known
    name that starts a longer one, e.g. ``remoteclip-vit-b-32``, lends its colour), else a
    colour of :data:`EXTRA_COLOURS` chosen by a stable hash of the key."""
    key = model_key(name)
    if key in MODEL_COLOURS:
        return MODEL_COLOURS[key]
    for known in sorted(MODEL_COLOURS, key=len, reverse=True):
        if key.startswith(known + "-") and known in ("remoteclip", "georsclip", "clip"):
            return MODEL_COLOURS[known]
    return EXTRA_COLOURS[zlib.crc32(key.encode()) % len(EXTRA_COLOURS)]


INTERVAL_TEXT = {
    "wilson": "95% Wilson score interval over the test images (one seed)",
    "bootstrap": "95% percentile bootstrap of the mean over seeds (dots: the seeds)",
}


def caption(fig, text: str, width: int = 120):
    """A caption line (wrapped) under the axes, saying what the marks and intervals are."""
    fig.text(0.0, -0.01, "\n".join(textwrap.wrap(text, width)), ha="left", va="top", fontsize=8,
             transform=fig.transFigure)
    return fig


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
