"""Machine translation of captions (RS-M-CLIP translated its English captions into nine languages):
:class:`Translator` (MarianMT or NLLB, from a local folder or the hub; offline without a local copy
it fails with one line saying so) and :func:`translate_records` (resumable through a JSON cache)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from rsdix.data.captions import CaptionRecord
from rsdix.errors import DataError, OfflineError
from rsdix.utils import atomic_write_text, hub_reachable, progress

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
