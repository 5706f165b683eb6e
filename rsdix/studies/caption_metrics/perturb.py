"""Caption edits: RSDiX's meaning-preserving WordNet paraphrase and the meaning-changing edits
beside it (:class:`Perturber`: swap the scene/class noun, change a count, change a colour, negate),
and the study's caption pairs (:func:`make_pairs`: one original caption per sampled image and its
perturbations, another human reference of the same image (the natural paraphrase), plus an
unrelated caption)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from rsdix.errors import DataError
from rsdix.studies.caption_metrics.caption_sets import CaptionSet, seeded_rng, subsample
from rsdix.utils import progress

ALWAYS_PROTECTED = frozenset({"near", "next"})
# Function words: WordNet has senses for some ("a" = angstrom, "is" = be, "are" = unit), which a
# synonym replacement must not touch.
STOPWORDS = frozenset("""
a an the this that these those there here it its it's they them their he she we you i of in on at by
for from to with without into onto over under above below between among around through across along
beside besides behind beyond within and or but nor so as than then also too very is are was were be
been being am has have had do does did can could will would should may might must shall not no
some any many much more most few several each every all both either neither other another such own
same only just quite rather lots lot one two three four five six seven eight nine ten eleven twelve
which who whom whose what where when while whereas if because although though up down out off
""".split())
COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve")
COLOURS = ("white", "black", "red", "green", "blue", "yellow", "grey", "gray", "brown", "orange",
           "purple", "pink", "dark", "light")  # dark/light swap with each other only
_COLOUR_HUES = tuple(c for c in COLOURS if c not in ("dark", "light", "gray"))
NEGATABLE = ("is", "are", "was", "were")

# synonym: RSDiX's paraphrase (30-50% of eligible words); synonym-1: exactly one word, the same edit
# size as the meaning-changing edits, so n-gram overlap alone cannot tell them apart; human: another
# reference caption of the same image, written by another annotator (a natural paraphrase: same
# scene, other words, often other details)
PRESERVING = ("synonym", "synonym-1", "human")
CHANGING = ("swap-class", "count", "colour", "negate", "unrelated")
EDITS = ("swap-class", "count", "colour", "negate")  # minimal meaning-changing edits (not 'unrelated')
PERTURBATIONS = ("identity",) + PRESERVING + CHANGING


def _fix_article(tokens: list[str], i: int) -> list[str]:
    """Make an article right before position ``i`` agree with the (new) word there."""
    if 0 < i < len(tokens) and tokens[i - 1] in ("a", "an"):
        tokens = list(tokens)
        tokens[i - 1] = "an" if tokens[i][:1] in "aeiou" else "a"
    return tokens


@dataclass
class Perturber:
    """Meaning-preserving and meaning-changing caption edits, each deterministic given a seed.

    Every method takes a normalised caption (lower-case words separated by spaces) and returns
    the edited caption, or None when the edit does not apply (no eligible word).
    ``sense``: WordNet synonyms from the word's most frequent sense (``"frequent"``: by SemCor
    lemma counts, across parts of speech) or from all its senses (``"any"``: sense-blind).
    """

    wordnet: object | None
    class_terms: Sequence[str] = ()
    protected: frozenset = ALWAYS_PROTECTED
    min_frac: float = 0.3
    max_frac: float = 0.5
    sense: str = "frequent"
    _syn_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not 0 < self.min_frac <= self.max_frac <= 1:
            raise ValueError(f"need 0 < min_frac <= max_frac <= 1, got {self.min_frac}, {self.max_frac}")
        if self.sense not in ("frequent", "any"):
            raise ValueError(f"sense must be 'frequent' or 'any', got {self.sense!r}")
        # a multi-word class also matches written as one word ("farm land" / "farmland"), but only
        # the spaced form is used as a replacement
        self._replacements = sorted(set(self.class_terms))
        match_terms = set(self.class_terms) | {t.replace(" ", "") for t in self.class_terms}
        words = {w for term in match_terms for w in term.split()}
        self.protected_words = frozenset(self.protected) | words | {w + "s" for w in words}
        # longest terms first so "parking lot" wins over "parking"
        self._terms = sorted(match_terms, key=lambda t: (-len(t.split()), t))

    # ---- synonyms (RSDiX) ----
    def _senses(self, word: str) -> list[tuple[object, str]]:
        """(synset, base form) pairs usable for ``word``: senses whose lemma is the surface form
        itself (so 'curved' keeps adjective senses, not the verb 'curve'), plus noun senses of a
        plural ('buildings' -> 'building'), which are re-pluralised."""
        wn, out, seen = self.wordnet, [], set()
        for pos in ("n", "v", "a", "r"):
            forms = wn._morphy(word, pos) if hasattr(wn, "_morphy") else [wn.morphy(word, pos)]
            forms = [f for f in forms if f]
            # nouns: any base ('roads' -> 'road' or the lemma 'roads'); other parts of speech:
            # only when the surface form is itself the lemma (no tense/participle changes)
            bases = forms if pos == "n" else [word] if word in forms else []
            if not bases:
                continue
            bases = sorted(set(bases), key=lambda b: (b != word, b))  # the form itself first
            for syn in wn.synsets(word, pos):
                names = {l.name() for l in syn.lemmas()}  # case-sensitive: skips proper nouns
                base = next((b for b in bases if b in names), None)
                if base is not None and syn not in seen:
                    seen.add(syn)
                    out.append((syn, base))
        return out

    def synonyms(self, word: str) -> list[str]:
        if word in self._syn_cache:
            return self._syn_cache[word]
        out: list[str] = []
        if self.wordnet is not None and word.isalpha() and word not in STOPWORDS \
                and word not in self.protected_words:
            senses = self._senses(word)
            if senses and self.sense == "frequent":
                def count(item):
                    syn, base = item
                    return sum(l.count() for l in syn.lemmas() if l.name().lower() == base)
                senses = [max(senses, key=lambda item: (count(item), -senses.index(item)))]
            seen = {word} | {base for _, base in senses}
            for syn, base in senses:
                plural = base != word
                for lemma in syn.lemmas():
                    name = lemma.name().replace("_", " ").lower()
                    if name in seen or not re.fullmatch(r"[a-z][a-z ]*", name):
                        continue
                    seen.add(name)
                    if plural and " " not in name and not name.endswith("s"):  # keep a plural noun plural
                        name += "es" if name.endswith(("x", "ch", "sh")) else "s"
                    out.append(name)
        self._syn_cache[word] = out
        return out

    def eligible(self, tokens: Sequence[str]) -> list[int]:
        return [i for i, w in enumerate(tokens) if self.synonyms(w)]

    def synonym(self, text: str, rng: np.random.Generator, n_words: int | None = None) -> str | None:
        """Replace a random 30-50% (``min_frac``..``max_frac``) of eligible words, or exactly
        ``n_words``, by a WordNet synonym; class-name words, 'near', 'next' and function words never
        change."""
        tokens = text.split()
        elig = self.eligible(tokens)
        if not elig:
            return None
        if n_words is not None:
            k = min(n_words, len(elig))
        else:
            frac = rng.uniform(self.min_frac, self.max_frac)
            k = max(1, int(round(frac * len(elig))))
        for i in sorted(rng.choice(elig, size=k, replace=False)):
            options = self.synonyms(tokens[i])
            tokens[i] = options[int(rng.integers(len(options)))]
            tokens = _fix_article(tokens, i)
        return " ".join(tokens)

    # ---- meaning-changing edits ----
    def _find_term(self, tokens: list[str]):
        """First (start, length, term, plural) of a class term in ``tokens`` (longest terms first)."""
        best = None
        for term in self._terms:
            words = term.split()
            n = len(words)
            for start in range(len(tokens) - n + 1):
                window = tokens[start:start + n]
                plural = window[:-1] == words[:-1] and window[-1] == words[-1] + "s"
                if window == words or plural:
                    if best is None or start < best[0]:
                        best = (start, n, term, plural)
                    break
        return best

    def swap_class(self, text: str, rng: np.random.Generator) -> str | None:
        """Replace the first scene/class term by another class's name (plural and a/an kept right)."""
        tokens = text.split()
        found = self._find_term(tokens)
        if found is None:
            return None
        start, n, term, plural = found
        others = [t for t in self._replacements if not set(t.split()) & set(term.split())
                  and t.replace(" ", "") != term.replace(" ", "")]
        if not others:
            return None
        new = others[int(rng.integers(len(others)))].split()
        if plural and not new[-1].endswith("s"):
            new[-1] += "s"
        tokens = tokens[:start] + new + tokens[start + n:]
        return " ".join(_fix_article(tokens, start))

    @staticmethod
    def _replace_one(tokens: list[str], positions: list[int], choices: Callable[[str], list[str]],
                     rng) -> str | None:
        if not positions:
            return None
        i = positions[int(rng.integers(len(positions)))]
        options = choices(tokens[i])
        tokens = list(tokens)
        tokens[i] = options[int(rng.integers(len(options)))]
        return " ".join(_fix_article(tokens, i))

    def count(self, text: str, rng: np.random.Generator) -> str | None:
        """Change a count ('two' -> 'five', '3' -> '7')."""
        tokens = text.split()
        pos = [i for i, w in enumerate(tokens) if w in COUNT_WORDS or w.isdigit()]

        def choices(w):
            if w.isdigit():
                return [str(n) for n in range(1, 13) if str(n) != w]
            return [c for c in COUNT_WORDS if c != w]
        return self._replace_one(tokens, pos, choices, rng)

    def colour(self, text: str, rng: np.random.Generator) -> str | None:
        """Change a colour word ('green' -> 'red'; 'dark' <-> 'light')."""
        tokens = text.split()
        pos = [i for i, w in enumerate(tokens) if w in COLOURS]

        def choices(w):
            if w in ("dark", "light"):
                return ["light" if w == "dark" else "dark"]
            return [c for c in _COLOUR_HUES if c != w and {c, w} != {"grey", "gray"}]
        return self._replace_one(tokens, pos, choices, rng)

    def negate(self, text: str, rng: np.random.Generator | None = None) -> str | None:
        """Negate the first 'is/are/was/were' ('there are many trees' -> 'there are no trees' when a
        quantifier/article follows, else 'X is not Y')."""
        tokens = text.split()
        for i, w in enumerate(tokens):
            if w in NEGATABLE:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if nxt in ("a", "an", "some", "many", "several", "lots", "few") or nxt in COUNT_WORDS:
                    return " ".join(tokens[:i + 1] + ["no"] + tokens[i + 2:])
                return " ".join(tokens[:i + 1] + ["not"] + tokens[i + 1:])
        return None

    def apply(self, kind: str, text: str, rng: np.random.Generator) -> str | None:
        method = {"synonym": self.synonym, "synonym-1": lambda t, r: self.synonym(t, r, n_words=1),
                  "swap-class": self.swap_class, "count": self.count,
                  "colour": self.colour, "negate": self.negate}.get(kind)
        if method is None:
            raise ValueError(f"unknown perturbation {kind!r}")
        return method(text, rng)


def make_pairs(caption_sets: Sequence[CaptionSet], perturber: Perturber, n_images: int | None,
               seed: int = 0, kinds: Sequence[str] = PERTURBATIONS) -> pd.DataFrame:
    """One original caption per sampled image (seeded) and its perturbations.

    Columns: dataset, image, filename, class, original, perturbation, group (identity / preserving
    / changing), candidate. A perturbation that does not apply to a caption gives no row; the
    ``human`` candidate is another distinct caption of the same image (seeded; none for an image
    with one distinct caption); the ``unrelated`` candidate is the chosen caption of another
    sampled image of a different class (of any other image when the set has no class information).
    """
    rows = []
    for cs in caption_sets:
        idx = subsample(cs, n_images, seed)
        classless = len(set(cs.classes)) < 2   # no class information (one label for all): any other image
        originals = {}
        for i in idx:
            rng = seeded_rng(seed, cs.dataset, cs.filenames[i], "original")
            originals[i] = cs.captions[i][int(rng.integers(len(cs.captions[i])))]
        for i in progress(idx, desc=f"perturb {cs.dataset}"):
            orig = originals[i]
            base = {"dataset": cs.dataset, "image": int(i), "filename": cs.filenames[i],
                    "class": cs.classes[i], "original": orig}
            for kind in kinds:
                rng = seeded_rng(seed, cs.dataset, cs.filenames[i], kind)
                if kind == "identity":
                    cand = orig
                elif kind == "human":
                    others = [c for c in cs.captions[i] if c != orig]
                    cand = others[int(rng.integers(len(others)))] if others else None
                elif kind == "unrelated":
                    pool = [j for j in idx if j != i and (classless or cs.classes[i] is None
                                                          or cs.classes[j] != cs.classes[i]) and originals[j] != orig]
                    cand = originals[pool[int(rng.integers(len(pool)))]] if pool else None
                else:
                    cand = perturber.apply(kind, orig, rng)
                if cand is None or (kind != "identity" and cand == orig):
                    continue
                group = "identity" if kind == "identity" else ("preserving" if kind in PRESERVING else "changing")
                rows.append({**base, "perturbation": kind, "group": group, "candidate": cand})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise DataError("make_pairs", "no caption pairs: empty datasets or no applicable perturbation")
    return frame
