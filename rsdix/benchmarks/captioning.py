"""Captioning speed: what caching the frozen encoder's embeddings saves per training step, and
what beam search costs over greedy decoding (ratios within one run; synthetic inputs, no data)."""
from __future__ import annotations

import time

import torch

from rsdix.captioning.caption_data import CaptionCollate, CaptionTrainSet
from rsdix.captioning.decoding import generate_tokens
from rsdix.captioning.experiment import load_experiment
from rsdix.captioning.model import build_captioner
from rsdix.data.captions import CaptionRecord
from rsdix.models import load_model


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(quick: bool = False) -> list[dict]:
    torch.manual_seed(0)
    encoder = "rsdix-tiny" if quick else "rsdix-small"
    bundle = load_model(encoder)
    cfg = load_experiment("cpu").train.model
    words = "there is a piece of farmland many buildings and some green trees with roads beside a river".split()
    captions = [" ".join(words[i % 7: i % 7 + 6]) + " ." for i in range(40)]
    records = [CaptionRecord(f"{i}.jpg", "train", captions[i * 5:(i + 1) * 5]) for i in range(8)]
    batch_size = 16 if quick else 64
    repeats = 2 if quick else 3
    images = torch.randn(batch_size, 3, bundle.image_size, bundle.image_size)

    cached = build_captioner(cfg, bundle.embed_dim, train_captions=captions)
    data = CaptionTrainSet(records, cached.tokenizer)
    items = [data[i % len(data)] for i in range(batch_size)]
    with torch.no_grad():
        embeds = bundle.model.encode_image(images)
    batch_cached = CaptionCollate(cached.tokenizer.pad_token_id, embeds)([(i, t) for i, (_, t) in enumerate(items)])
    trained = build_captioner(cfg, bundle.embed_dim, tokenizer=cached.tokenizer, encoder=bundle.model.visual)
    batch_images = CaptionCollate(cached.tokenizer.pad_token_id)([(images[i], t) for i, (_, t) in enumerate(items)])

    def step(model, batch):
        def go():
            model.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
        return go

    t_cached = _best_of(step(cached, batch_cached), repeats)
    t_trained = _best_of(step(trained, batch_images), repeats)
    n_dec = 8 if quick else 32
    emb = embeds[:n_dec] if len(embeds) >= n_dec else embeds
    t_greedy = _best_of(lambda: generate_tokens(cached, emb, "greedy", max_len=20), repeats)
    t_beam = _best_of(lambda: generate_tokens(cached, emb, "beam", beam_size=5, max_len=20), repeats)
    ratio = t_trained / t_cached
    return [
        {"benchmark": f"captioning train step, batch {batch_size}, {encoder} encoder", "metric":
         "speedup_cached_embeddings_vs_trained_encoder", "value": ratio, "unit": "x",
         "goal": None if quick else ">= 3", "ok": None if quick else bool(ratio >= 3), "cached_s": t_cached, "trained_encoder_s": t_trained},
        {"benchmark": f"captioning decode, {len(emb)} images, 20 tokens", "metric": "beam5_over_greedy_time",
         "value": t_beam / t_greedy, "unit": "x", "goal": "<= 10", "ok": bool(t_beam / t_greedy <= 10),
         "greedy_s": t_greedy, "beam5_s": t_beam},
    ]
