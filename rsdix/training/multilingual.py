"""Multilingual captions (RS-M-CLIP): parallel caption sets, a language per training step,
and machine translation (evaluation per language: :mod:`rsdix.evaluation.multilingual`).

Captions in several languages live in one Karpathy file (a ``lang`` field per sentence; no
field means English) or in parallel files, one per language, with the same images and
sentence order (:func:`merge_parallel`). RS-M-CLIP translated the English captions into nine
languages; :func:`translate_records` does that with a user's MarianMT or NLLB model (it needs
the model locally or the internet, and fails offline with one line saying so).

Training: :class:`MultilingualCaptionDataset` returns, per image, one caption drawn per
language; :class:`LanguageCollate` picks one language for the whole batch (deterministically
from the seed and the batch's images, so a resumed run picks the same) and tokenises::

    ds = MultilingualCaptionDataset(records, image_dir, transform, languages=["en", "pt", "de"])
    collate = LanguageCollate(tokenizer, ds.languages, seed=0)       # batch: image, text, caption, lang

A multilingual text tower comes from the model factory, e.g.
``load_model("xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k")`` (paper profile).
"""
from __future__ import annotations

import json
import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from rsdix.data.captions import CaptionDataset, CaptionRecord, read_captions
from rsdix.errors import DataError, OfflineError
from rsdix.models import hub_reachable
from rsdix.utils import atomic_write_text, progress

__all__ = ["RSMCLIP_LANGUAGES", "MARIAN_MODELS", "NLLB_CODES", "languages_of", "language_coverage",
           "merge_parallel", "read_parallel", "MultilingualCaptionDataset", "LanguageCollate",
           "batch_language", "Translator", "translate_records", "stack_views"]

RSMCLIP_LANGUAGES = ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")
# English -> X MarianMT checkpoints on the Hugging Face hub (Helsinki-NLP); "tc-big" where no base model exists
MARIAN_MODELS = {
    "pt": "Helsinki-NLP/opus-mt-tc-big-en-pt", "es": "Helsinki-NLP/opus-mt-en-es",
    "fr": "Helsinki-NLP/opus-mt-en-fr", "de": "Helsinki-NLP/opus-mt-en-de", "nl": "Helsinki-NLP/opus-mt-en-nl",
    "it": "Helsinki-NLP/opus-mt-en-it", "zh": "Helsinki-NLP/opus-mt-en-zh", "ko": "Helsinki-NLP/opus-mt-tc-big-en-ko",
    "ru": "Helsinki-NLP/opus-mt-en-ru",
}
NLLB_MODEL = "facebook/nllb-200-distilled-600M"
NLLB_CODES = {"en": "eng_Latn", "pt": "por_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn",
              "nl": "nld_Latn", "it": "ita_Latn", "zh": "zho_Hans", "ko": "kor_Hang", "ru": "rus_Cyrl"}


# --------------------------------------------------------------------------------------------
# Parallel caption sets
# --------------------------------------------------------------------------------------------
def languages_of(records: Sequence[CaptionRecord]) -> list[str]:
    """Languages present, English first, then alphabetical."""
    langs = {l for r in records for l in r.langs}
    return sorted(langs, key=lambda l: (l != "en", l))


def language_coverage(records: Sequence[CaptionRecord]) -> dict[str, int]:
    """Number of images with at least one caption in each language."""
    counts: Counter = Counter()
    for r in records:
        counts.update(set(r.langs))
    return {l: counts[l] for l in languages_of(records)}


def merge_parallel(base: Sequence[CaptionRecord], others: Mapping[str, Sequence[CaptionRecord]],
                   sources: Mapping[str, str | os.PathLike] | None = None) -> list[CaptionRecord]:
    """Merge parallel caption sets: ``others[lang]`` has the same images (by filename) and the
    same number of sentences per image as ``base``; its captions are added with language ``lang``.
    A missing image or a different sentence count is an error naming the file."""
    by_name = {r.filename: r for r in base}
    merged = {r.filename: CaptionRecord(r.filename, r.split, list(r.captions), list(r.langs), r.image_id, dict(r.meta))
              for r in base}
    for lang, recs in others.items():
        where = (sources or {}).get(lang, f"captions[{lang}]")
        names = {r.filename for r in recs}
        missing = [n for n in by_name if n not in names]
        if missing:
            raise DataError(where, f"{len(missing)} image(s) of the base set are missing, first: {missing[0]}")
        for r in recs:
            if r.filename not in by_name:
                raise DataError(where, f"image {r.filename!r} is not in the base caption set")
            n_base = sum(1 for l in by_name[r.filename].langs if l == by_name[r.filename].langs[0])
            if len(r.captions) != n_base:
                raise DataError(where, f"{r.filename}: {len(r.captions)} sentences, the base set has {n_base}")
            merged[r.filename].captions.extend(r.captions)
            merged[r.filename].langs.extend([lang] * len(r.captions))
    return [merged[r.filename] for r in base]


def read_parallel(files: Mapping[str, str | os.PathLike], base_lang: str = "en") -> list[CaptionRecord]:
    """Read ``{lang: caption file}`` (Karpathy JSON or CSV, one language each) into one record set."""
    if base_lang not in files:
        raise DataError(", ".join(map(str, files.values())), f"no {base_lang!r} file among the parallel files")
    read = {lang: read_captions(path) for lang, path in files.items()}
    for lang, recs in read.items():
        for r in recs:
            r.langs = [lang] * len(r.captions)
    others = {l: r for l, r in read.items() if l != base_lang}
    return merge_parallel(read[base_lang], others, sources={l: str(p) for l, p in files.items()})


# --------------------------------------------------------------------------------------------
# Training: one language per step
# --------------------------------------------------------------------------------------------
class MultilingualCaptionDataset(CaptionDataset):
    """Training view: ``ds[i] -> (image, {lang: caption}, i)``, one caption drawn per language.

    ``languages`` restricts the languages (default: all present). Images lacking one of them
    are kept; :class:`LanguageCollate` then uses another of their languages and counts it.
    """

    def __init__(self, records, image_dir, transform=None, languages: Sequence[str] | None = None, **kwargs):
        super().__init__(records, image_dir, transform=transform, mode="train", languages=languages, **kwargs)
        self.languages = list(languages) if languages is not None else languages_of(self.records)
        coverage = language_coverage(self.records)
        thin = {l: coverage.get(l, 0) for l in self.languages if coverage.get(l, 0) < len(self.records)}
        if thin:
            warnings.warn(f"{self.source}: some languages lack captions for some of the {len(self.records)} images "
                          f"(images with captions: {thin}); those images fall back to another language")

    def captions_by_language(self, index: int) -> dict[str, str]:
        rec = self.records[index]
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
        out: dict[str, list[str]] = {}
        for cap, lang in zip(rec.captions, rec.langs):
            out.setdefault(lang, []).append(cap)
        return {lang: caps[rng.randrange(len(caps))] for lang, caps in out.items()}

    def __getitem__(self, index: int):
        return self.load(index), self.captions_by_language(index), index


def batch_language(indices: Sequence[int], languages: Sequence[str], seed: int = 0,
                   weights: Sequence[float] | None = None, epoch: int = 0) -> str:
    """The language of a batch: a seeded draw (``weights``: sampling probabilities) keyed by
    the batch's images, so it does not depend on workers, batch position or resumption."""
    rng = random.Random(f"lang-{seed}-{epoch}-{','.join(map(str, sorted(indices)))}")
    return rng.choices(list(languages), weights=weights, k=1)[0]


class LanguageCollate:
    """``[(image, {lang: caption}, index)] -> {"image", "text", "caption", "lang"}``.

    ``per="batch"`` (default, RS-M-CLIP: a language per step) or ``per="item"`` (a language per
    image). Images without the drawn language fall back to English, else their first language;
    ``self.fallbacks`` counts those. ``image`` items may be tensors or dicts of views (multi-crop:
    ``{"image": t, "crops": [t, ...]}``), which are stacked per key.
    """

    def __init__(self, tokenizer, languages: Sequence[str], seed: int = 0,
                 weights: Sequence[float] | None = None, per: str = "batch"):
        if per not in ("batch", "item"):
            raise ValueError(f"per must be 'batch' or 'item', got {per!r}")
        self.tokenizer, self.languages, self.seed = tokenizer, list(languages), seed
        self.weights = list(weights) if weights is not None else None
        if self.weights is not None and len(self.weights) != len(self.languages):
            raise ValueError("one weight per language")
        self.per = per
        self.fallbacks = 0

    def __call__(self, items):
        images, caps_by_lang, indices = zip(*items)
        if self.per == "batch":
            wanted = [batch_language(indices, self.languages, self.seed, self.weights)] * len(items)
        else:
            wanted = [batch_language([i], self.languages, self.seed, self.weights) for i in indices]
        captions, langs = [], []
        for want, caps in zip(wanted, caps_by_lang):
            lang = want if want in caps else ("en" if "en" in caps else next(iter(caps)))
            self.fallbacks += lang != want
            captions.append(caps[lang])
            langs.append(lang)
        batch = stack_views(images)
        batch.update(text=self.tokenizer(captions), caption=captions, lang=langs)
        return batch


def stack_views(images) -> dict:
    """Stack a batch of image items: tensors -> ``{"image": B x ...}``; dicts of views -> each
    key stacked (lists of tensors, such as multi-crop views, stacked position by position)."""
    first = images[0]
    if torch.is_tensor(first):
        return {"image": torch.stack(list(images))}
    if isinstance(first, Mapping):
        out = {}
        for key, value in first.items():
            if torch.is_tensor(value):
                out[key] = torch.stack([im[key] for im in images])
            else:
                out[key] = [torch.stack([im[key][j] for im in images]) for j in range(len(value))]
        return out
    raise TypeError(f"cannot batch images of type {type(first).__name__}; use a transform that returns tensors")


# --------------------------------------------------------------------------------------------
# Translation (needs a local or downloadable MT model)
# --------------------------------------------------------------------------------------------
class Translator:
    """English -> ``target`` with a Hugging Face seq2seq model: MarianMT (``backend="marian"``,
    one model per language, :data:`MARIAN_MODELS`) or NLLB (``backend="nllb"``, one model for
    all, :data:`NLLB_CODES`). ``model`` overrides the name (a hub name or a local folder).

    Offline without a local copy it raises :class:`OfflineError` in one line.
    """

    def __init__(self, target: str, backend: str = "marian", model: str | os.PathLike | None = None,
                 device: str = "cpu", max_length: int = 128):
        if backend not in ("marian", "nllb"):
            raise ValueError(f"backend must be 'marian' or 'nllb', got {backend!r}")
        if backend == "marian" and model is None and target not in MARIAN_MODELS:
            raise ValueError(f"no default MarianMT model for {target!r}; pass model=... or use backend='nllb'")
        if backend == "nllb" and target not in NLLB_CODES:
            raise ValueError(f"no NLLB code known for {target!r}; known: {sorted(NLLB_CODES)}")
        self.target, self.backend, self.device, self.max_length = target, backend, device, max_length
        self.name = str(model or (MARIAN_MODELS[target] if backend == "marian" else NLLB_MODEL))
        self._load()

    def _load(self) -> None:
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # heavy: loads only when a translator is built
        except ImportError as exc:  # pragma: no cover - transformers is a dependency
            raise OfflineError("translation needs `transformers` (and `sentencepiece`)") from exc
        local = os.path.isdir(self.name)
        offline = not local and (os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable())
        kwargs = {"local_files_only": True} if offline else {}
        if self.backend == "nllb":
            kwargs_tok = dict(kwargs, src_lang=NLLB_CODES["en"])
        else:
            kwargs_tok = kwargs
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, **kwargs_tok)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(self.name, **kwargs).to(self.device).eval()
        except (OSError, ValueError, ImportError) as exc:
            hint = ("sentencepiece is not installed (`pip install sentencepiece`)"
                    if "sentencepiece" in str(exc).lower() or "SentencePiece" in str(exc) else
                    "no internet or model hub here" if offline else f"{exc.__class__.__name__}")
            raise OfflineError(f"could not load translation model {self.name!r} for en->{self.target} ({hint}); "
                               f"download it on a machine with internet (e.g. `huggingface-cli download "
                               f"{self.name}`) and pass model=/local/folder") from None

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], batch_size: int = 32) -> list[str]:
        out: list[str] = []
        kwargs = {"max_length": self.max_length}
        if self.backend == "nllb":
            kwargs["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(NLLB_CODES[self.target])
        for i in progress(range(0, len(texts), batch_size), desc=f"translate en->{self.target}"):
            enc = self.tokenizer(list(texts[i:i + batch_size]), return_tensors="pt", padding=True,
                                 truncation=True).to(self.device)
            gen = self.model.generate(**enc, **kwargs)
            out.extend(self.tokenizer.batch_decode(gen, skip_special_tokens=True))
        return out


def translate_records(records: Sequence[CaptionRecord], targets: Sequence[str],
                      translate: Callable[[str], Callable[[Sequence[str]], list[str]]] | None = None,
                      source_lang: str = "en", cache_file: str | os.PathLike | None = None,
                      backend: str = "marian") -> list[CaptionRecord]:
    """Add machine translations of every ``source_lang`` caption in each target language.

    ``translate(lang)`` returns a function ``list[str] -> list[str]`` (default: a
    :class:`Translator` for ``backend``). ``cache_file`` (JSON ``{lang: {source: translation}}``)
    keeps finished translations, so an interrupted run resumes and reruns cost nothing.
    Records keep their order; translated captions follow the originals, ``langs`` set.
    """
    translate = translate or (lambda lang: Translator(lang, backend=backend))
    cache: dict[str, dict[str, str]] = {}
    cache_path = Path(cache_file) if cache_file else None
    if cache_path and cache_path.exists():
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(cache_path, f"translation cache is not valid JSON ({exc.msg})") from exc
    sources = sorted({c for r in records for c, l in zip(r.captions, r.langs) if l == source_lang})
    if not sources:
        raise DataError("captions", f"no {source_lang!r} captions to translate")
    for lang in targets:
        done = cache.setdefault(lang, {})
        todo = [s for s in sources if s not in done]
        if todo:
            fn = translate(lang)
            out = fn(todo)
            if len(out) != len(todo):
                raise RuntimeError(f"translator for {lang!r} returned {len(out)} texts for {len(todo)} inputs")
            for s, t in zip(todo, out):
                if not str(t).strip():
                    raise DataError(f"translation en->{lang}", f"empty translation of {s!r}")
                done[s] = str(t).strip()
            if cache_path:
                atomic_write_text(cache_path, json.dumps(cache, ensure_ascii=False, indent=1))
    result = []
    for r in records:
        caps, langs = list(r.captions), list(r.langs)
        src = [c for c, l in zip(r.captions, r.langs) if l == source_lang]
        for lang in targets:
            caps += [cache[lang][c] for c in src]
            langs += [lang] * len(src)
        result.append(CaptionRecord(r.filename, r.split, caps, langs, r.image_id, dict(r.meta)))
    return result
