"""Pairwise caption scoring throughput: :func:`rsdix.captioning.metrics.pairwise_scores` (one PTB tokenizer
call, one persistent METEOR process for all pairs) against the naive use of pycocoevalcap, one
tokenizer and one METEOR Java process per pair. Reported as seconds per pair and the speed-up
ratio measured within one run (goal: at least 10x)."""
from __future__ import annotations

import time

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from rsdix.captioning.metrics import pairwise_scores
from rsdix.captioning.pycoco import close_meteor, ptb_tokenize


def _pairs(n: int) -> tuple[list[str], list[str]]:
    subjects = ["many planes", "some green trees", "a white building", "two tennis courts", "a curved river"]
    places = ["near the runway", "beside a road", "in the dense residential area", "next to a parking lot"]
    cands, refs = [], []
    for i in range(n):
        s, p = subjects[i % len(subjects)], places[(i // len(subjects)) % len(places)]
        cands.append(f"{s} are {p}")
        refs.append(f"there are {s} {places[(i + 1) % len(places)]}")
    return cands, refs


def _naive(cands: list[str], refs: list[str]) -> None:
    for c, r in zip(cands, refs):
        tc, tr = ptb_tokenize([c, r])  # one Java start per pair
        gts, res = {0: [tr]}, {0: [tc]}
        Bleu(4).compute_score(gts, res, verbose=0)
        meteor = Meteor()  # one METEOR Java process per pair
        meteor.compute_score(gts, res)
        del meteor
        Rouge().compute_score(gts, res)


def run(quick: bool = True) -> list[dict]:
    n_batched, n_naive = (100, 1) if quick else (2000, 10)   # quick: one naive pair (two Java starts)
    metrics = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")
    cands, refs = _pairs(n_batched)
    close_meteor()
    t0 = time.perf_counter()
    pairwise_scores(cands, refs, metrics=metrics)  # includes starting METEOR once
    batched = (time.perf_counter() - t0) / n_batched
    t0 = time.perf_counter()
    _naive(cands[:n_naive], refs[:n_naive])
    naive = (time.perf_counter() - t0) / n_naive
    ratio = naive / max(batched, 1e-12)
    base = {"benchmark": "metrics_pairwise", "pairs_batched": n_batched, "pairs_naive": n_naive}
    return [
        {**base, "metric": "batched_seconds_per_pair", "value": batched, "unit": "s", "goal": None, "ok": None},
        {**base, "metric": "naive_seconds_per_pair", "value": naive, "unit": "s", "goal": None, "ok": None},
        {**base, "metric": "speedup_batched_vs_naive", "value": ratio, "unit": "x", "goal": ">= 10", "ok": ratio >= 10},
    ]
