"""Caption metrics: coco-caption scores (corpus and per-image), Sentence-BERT similarity, and
fast pairwise scoring for metric studies.

Two aggregations, never mixed up:

* ``task="captioning"`` (the coco-caption convention, :func:`evaluate_captions`): BLEU-n from n-gram
  counts pooled over the whole test set (one candidate per image against all its references) and
  METEOR from the pooled alignment statistics; ROUGE-L, CIDEr-D and SPICE are means over images
  by their definition.
* ``task="captioning-per-image"``: the mean over images of each image's own score (sentence BLEU,
  segment METEOR, ...). RSDiX reports these; they are not comparable with corpus numbers (per-image
  BLEU/METEOR are usually higher).

Sentence-BERT similarity (``SBERT-sim``) is the cosine between all-MiniLM-L6-v2 embeddings of the
candidate and each reference, reduced per image by the max over references (``SBERT-sim``) or the
mean (``SBERT-sim-meanref``), then averaged over images (it has no pooled corpus form, so both
tasks carry the same value).

Java is required for the PTB tokenizer, METEOR and SPICE (:mod:`rsdix.captioning.pycoco`): one
Java process tokenizes all texts at once; one METEOR process is kept for the life of the Python
process. SPICE needs Stanford CoreNLP 3.6.0 jars in pycocoevalcap's ``spice/lib``; without them it
is skipped with one line, never downloaded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.spice import spice as coco_spice

from rsdix.captioning.pycoco import meteor_scorer, spice_available, spice_lib, tokenize_texts
from rsdix.errors import DataError, RsdixError
from rsdix.log import warn_once
from rsdix.models import sbert_model
from rsdix.results import Result

BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
COCO_METRICS = BLEU + ("METEOR", "ROUGE-L", "CIDEr", "SPICE")
SBERT_METRICS = ("SBERT-sim", "SBERT-sim-meanref")
PAIR_METRICS = BLEU + ("METEOR", "ROUGE-L", "CIDEr", "SBERT-sim")
TASK_CORPUS = "captioning"
TASK_PER_IMAGE = "captioning-per-image"


class MetricSkipped(UserWarning):
    """A metric could not run here (e.g. SPICE without its CoreNLP jars) and was left out."""


def _meteor(gts: dict, res: dict) -> tuple[float, list[float]]:
    score, scores = meteor_scorer().compute_score(gts, res)
    return float(score), [float(s) for s in scores]


def _bleu(ids, gts: dict, res: dict) -> tuple[list[float], list[np.ndarray]]:
    """Corpus BLEU-1..4 (pooled n-gram counts) and sentence BLEU-1..4 per id, in ``ids`` order."""
    scorer = BleuScorer(n=4)
    for key in ids:
        scorer += (res[key][0], gts[key])
    corpus, sent = scorer.compute_score(option="closest", verbose=0)
    return list(corpus), [np.asarray(s, dtype=float) for s in sent]


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _check_text(text, where: str, what: str) -> str:
    if isinstance(text, (list, tuple)):
        if len(text) != 1:
            raise DataError(where, f"{what}: expected one caption, got {len(text)}")
        text = text[0]
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise DataError(where, f"{what} is missing or NaN")
    if not isinstance(text, str):
        raise DataError(where, f"{what} is not a string: {type(text).__name__} {text!r}")
    if not text.strip():
        raise DataError(where, f"{what} is empty")
    return text


def check_captions(candidates: Mapping[Hashable, str | Sequence[str]],
                   references: Mapping[Hashable, Sequence[str]],
                   source: str = "captions") -> tuple[list, dict, dict]:
    """Validate one candidate and at least one reference per image; return ids and clean dicts.

    Raises :class:`DataError` naming ``source`` and the image id for: an image with a candidate
    but no references (or the reverse), an empty, missing or NaN caption. (A caption with no
    words after tokenization, e.g. only punctuation, is refused when the coco metrics tokenize.)
    """
    if not candidates:
        raise DataError(source, "no candidate captions to score")
    missing = [k for k in candidates if k not in references]
    if missing:
        raise DataError(f"{source} image {missing[0]!r}",
                        f"no reference captions for {len(missing)} image(s) with a candidate, e.g. {missing[:5]}")
    extra = [k for k in references if k not in candidates]
    if extra:
        raise DataError(f"{source} image {extra[0]!r}",
                        f"no candidate caption for {len(extra)} image(s) with references, e.g. {extra[:5]}")
    ids = list(candidates)
    cands, refs = {}, {}
    for key in ids:
        cands[key] = _check_text(candidates[key], f"{source} image {key!r}", "candidate caption")
        rlist = references[key]
        if isinstance(rlist, str) or rlist is None or (isinstance(rlist, float) and math.isnan(rlist)):
            raise DataError(f"{source} image {key!r}", "references must be a list of captions")
        if len(rlist) == 0:
            raise DataError(f"{source} image {key!r}", "no reference captions")
        refs[key] = [_check_text(r, f"{source} image {key!r} reference {j}", "reference caption")
                     for j, r in enumerate(rlist)]
    return ids, cands, refs


def _tokenized_dicts(ids, cands, refs, tokenizer: str, source: str):
    texts, owners = [], []
    for key in ids:
        texts.append(cands[key]); owners.append((key, None))
        for j, r in enumerate(refs[key]):
            texts.append(r); owners.append((key, j))
    toks = tokenize_texts(texts, tokenizer)
    res, gts = {}, {key: [] for key in ids}
    for (key, j), tok in zip(owners, toks):
        if j is None:
            if not tok:
                raise DataError(f"{source} image {key!r}", f"candidate caption {cands[key]!r} has no words "
                                "after tokenization")
            res[key] = [tok]
        else:
            if not tok:
                raise DataError(f"{source} image {key!r} reference {j}", f"reference caption {refs[key][j]!r} has "
                                "no words after tokenization")
            gts[key].append(tok)
    return gts, res


# --------------------------------------------------------------------------------------------
# Sentence-BERT
# --------------------------------------------------------------------------------------------

def sbert_embed(texts: Sequence[str], model=None, batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings of unique texts, in input order."""
    model = model or sbert_model()
    uniq = list(dict.fromkeys(texts))
    emb = model.encode(uniq, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    index = {t: i for i, t in enumerate(uniq)}
    return emb[[index[t] for t in texts]]


def sbert_pair_cosines(candidates: Sequence[str], references: Sequence[Sequence[str]], model=None
                       ) -> list[np.ndarray]:
    """Cosine of each candidate with each of its references (one array per candidate)."""
    flat = [r for refs in references for r in refs]
    emb = sbert_embed(list(candidates) + flat, model)
    cand, ref = emb[:len(candidates)], emb[len(candidates):]
    out, start = [], 0
    for i, refs in enumerate(references):
        block = ref[start:start + len(refs)]
        out.append(block @ cand[i])
        start += len(refs)
    return out


# --------------------------------------------------------------------------------------------
# Image-level evaluation
# --------------------------------------------------------------------------------------------

@dataclass
class CaptionEvaluation:
    """``table``: tidy (task, metric, value, n, note); ``per_image``: one row per image id."""

    table: pd.DataFrame
    per_image: pd.DataFrame
    skipped: dict

    def value(self, metric: str, task: str = TASK_CORPUS) -> float:
        row = self.table[(self.table.metric == metric) & (self.table.task == task)]
        if row.empty:
            raise KeyError(f"{metric} not computed for task {task}: skipped={self.skipped}")
        return float(row.value.iloc[0])

    def to_results(self, model: str, dataset: str, seed: int | None = None, profile: str = "",
                   split: str = "test", note: str = "") -> list:
        return [Result(model=model, dataset=dataset, task=r.task, metric=r.metric, value=float(r.value),
                       seed=seed, split=split, n=int(r.n), profile=profile,
                       note="; ".join(x for x in (r.note, note) if x))
                for r in self.table.itertuples()]


def evaluate_captions(candidates: Mapping[Hashable, str | Sequence[str]],
                      references: Mapping[Hashable, Sequence[str]],
                      metrics: Sequence[str] = COCO_METRICS + SBERT_METRICS,
                      spice: bool | str = "auto", sbert=None, tokenizer: str = "ptb",
                      source: str = "captions") -> CaptionEvaluation:
    """Score one candidate per image against that image's references.

    Returns both aggregations (``captioning`` = coco-caption corpus, ``captioning-per-image`` =
    mean of per-image scores). ``spice="auto"`` runs SPICE when its CoreNLP jars are installed and
    otherwise logs one line and skips it; ``spice=False`` skips it; ``spice=True`` requires it.
    ``sbert``: a SentenceTransformer (default all-MiniLM-L6-v2 from the local package).
    """
    unknown = set(metrics) - set(COCO_METRICS) - set(SBERT_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {COCO_METRICS + SBERT_METRICS}")
    ids, cands, refs = check_captions(candidates, references, source)
    skipped: dict[str, str] = {}
    rows, per_image = [], pd.DataFrame(index=pd.Index(ids, name="image_id"))
    n = len(ids)

    def add(metric, corpus, per_img, note_corpus="", note_img=""):
        per_image[metric] = per_img
        rows.append({"task": TASK_CORPUS, "metric": metric, "value": float(corpus), "n": n, "note": note_corpus})
        rows.append({"task": TASK_PER_IMAGE, "metric": metric, "value": float(np.mean(per_img)), "n": n,
                     "note": note_img or "mean of per-image scores"})

    coco = [m for m in metrics if m in COCO_METRICS]
    if coco:
        gts, res = _tokenized_dicts(ids, cands, refs, tokenizer, source)
        if any(m in BLEU for m in coco):
            corpus, sent = _bleu(ids, gts, res)
            for k, m in enumerate(BLEU):
                if m in coco:
                    add(m, corpus[k], sent[k], "corpus BLEU (pooled n-gram counts)", "mean of sentence BLEU")
        if "METEOR" in coco:
            score, scores = _meteor(gts, res)
            add("METEOR", score, np.asarray(scores), "corpus METEOR (pooled statistics)",
                "mean of per-image METEOR")
        if "ROUGE-L" in coco:
            _, scores = Rouge().compute_score(gts, res)
            add("ROUGE-L", np.mean(scores), np.asarray(scores, dtype=float), "mean over images (coco definition)")
        if "CIDEr" in coco:
            if n < 2:
                raise DataError(source, "CIDEr needs at least 2 images (its IDF comes from the test set)")
            score, scores = Cider().compute_score(gts, res)
            add("CIDEr", score, np.asarray(scores, dtype=float), "CIDEr-D mean over images (coco definition)")
        if "SPICE" in coco:
            if spice is True or (spice == "auto" and spice_available()):
                if not spice_available():
                    raise RsdixError("SPICE requested but Stanford CoreNLP 3.6.0 jars are missing in "
                                     f"{spice_lib()} (run pycocoevalcap's "
                                     "spice/get_stanford_models.py where internet is available)")
                score, scores = coco_spice.Spice().compute_score(gts, res)
                by_id = dict(zip(sorted(gts), scores))   # pycocoevalcap's Spice scores images in sorted id order
                add("SPICE", score, np.asarray([by_id[k]["All"]["f"] for k in ids], dtype=float),
                    "mean over images (coco definition)")
            else:
                reason = ("disabled" if spice is False else
                          "Stanford CoreNLP 3.6.0 jars not installed in pycocoevalcap/spice/lib")
                skipped["SPICE"] = reason
                warn_once(f"SPICE skipped: {reason}", MetricSkipped, stacklevel=2)   # once, not per dataset
    sb = [m for m in metrics if m in SBERT_METRICS]
    if sb:
        cos = sbert_pair_cosines([cands[k] for k in ids], [refs[k] for k in ids], sbert)
        if "SBERT-sim" in sb:
            vals = np.asarray([c.max() for c in cos], dtype=float)
            add("SBERT-sim", vals.mean(), vals, "mean over images of max cosine to references",
                "mean over images of max cosine to references")
        if "SBERT-sim-meanref" in sb:
            vals = np.asarray([c.mean() for c in cos], dtype=float)
            add("SBERT-sim-meanref", vals.mean(), vals, "mean over images of mean cosine to references",
                "mean over images of mean cosine to references")
    table = pd.DataFrame(rows, columns=["task", "metric", "value", "n", "note"])
    order = {m: i for i, m in enumerate(COCO_METRICS + SBERT_METRICS)}
    table = table.sort_values(["task", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s,
                              kind="stable").reset_index(drop=True)
    return CaptionEvaluation(table=table, per_image=per_image, skipped=skipped)


# --------------------------------------------------------------------------------------------
# Pairwise scoring (metric studies)
# --------------------------------------------------------------------------------------------

def pairwise_scores(candidates: Sequence[str], references: Sequence[str | Sequence[str]],
                    metrics: Sequence[str] = PAIR_METRICS, sbert=None, tokenizer: str = "ptb",
                    source: str = "pairs") -> pd.DataFrame:
    """Score each candidate against its own reference(s): one row per pair, one column per metric.

    Efficient for thousands of pairs: all texts are PTB-tokenized in one Java call, METEOR runs in
    the single persistent subprocess, BLEU/CIDEr use one pycocoevalcap scorer each, S-BERT encodes
    each distinct text once. Scores are sentence level (sentence BLEU with pycocoevalcap's
    smoothing constants, segment METEOR, ROUGE-L, CIDEr-D whose IDF comes from the reference sets
    of all pairs given, S-BERT cosine = max over references; ``SBERT-sim-meanref`` the mean).
    """
    if len(candidates) != len(references):
        raise DataError(source, f"{len(candidates)} candidates but {len(references)} references")
    unknown = set(metrics) - set(PAIR_METRICS) - set(SBERT_METRICS)
    if unknown:
        raise ValueError(f"unknown pair metric(s) {sorted(unknown)}; choose from {PAIR_METRICS + SBERT_METRICS[1:]}")
    cand_map = dict(enumerate(candidates))
    ref_map = {i: [r] if isinstance(r, str) else list(r) for i, r in enumerate(references)}
    ids, cands, refs = check_captions(cand_map, ref_map, source)
    out = pd.DataFrame(index=pd.RangeIndex(len(ids), name="pair"))
    coco = [m for m in metrics if m in PAIR_METRICS and m != "SBERT-sim"]
    if coco:
        gts, res = _tokenized_dicts(ids, cands, refs, tokenizer, source)
        if any(m in BLEU for m in coco):
            sent = _bleu(ids, gts, res)[1]
            for k, m in enumerate(BLEU):
                if m in coco:
                    out[m] = sent[k]
        if "METEOR" in coco:
            out["METEOR"] = _meteor(gts, res)[1]
        if "ROUGE-L" in coco:
            rouge = Rouge()
            out["ROUGE-L"] = [rouge.calc_score(res[i], gts[i]) for i in ids]
        if "CIDEr" in coco:
            if len(ids) < 2:
                raise DataError(source, "CIDEr needs at least 2 pairs (its IDF comes from the references)")
            scorer = CiderScorer(n=4, sigma=6.0)
            for i in ids:
                scorer += (res[i][0], gts[i])
            out["CIDEr"] = np.asarray(scorer.compute_score()[1], dtype=float)
    sb = [m for m in metrics if m in SBERT_METRICS]
    if sb:
        cos = sbert_pair_cosines([cands[i] for i in ids], [refs[i] for i in ids], sbert)
        if "SBERT-sim" in sb:
            out["SBERT-sim"] = [float(c.max()) for c in cos]
        if "SBERT-sim-meanref" in sb:
            out["SBERT-sim-meanref"] = [float(c.mean()) for c in cos]
    return out[[m for m in metrics if m in out.columns]]
