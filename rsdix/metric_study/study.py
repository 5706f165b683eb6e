"""Are n-gram caption metrics fit for remote-sensing captioning? (RSDiX's metric study, made rigorous)

RSDiX replaces 30-50% of the eligible words of reference captions by WordNet synonyms, scores each
paraphrase against its original with BLEU/ROUGE-L/S-BERT and runs a one-sided t-test that the
n-gram metric's mean is below S-BERT similarity's (:func:`rsdix_ttest`). Means of metrics on
different scales say little, so this module adds:

* meaning-CHANGING edits beside the meaning-preserving paraphrase (:class:`Perturber`: swap the
  scene/class noun, change a count, change a colour, negate, an unrelated caption); a good metric
  ranks the paraphrase above the edits: :func:`separation_auc` (AUC with bootstrap 95% CIs), the
  paired :func:`paired_preserved_vs_changed` (Wilcoxon signed-rank, rank-biserial effect size,
  multiple-comparison correction) and scale-free :func:`normalised_retention`;
* discrimination (:func:`discrimination_queries`, :func:`discrimination_table`): does the metric
  score an image's held-out reference higher against the image's other references than against
  other images' references (random or same-class distractors);
* :func:`metric_correlation`: Spearman correlation between metrics across caption pairs.

Unit of analysis: one original caption per image (seeded choice), so units are independent.
Every table is tidy (one row per dataset x metric x comparison); tests come from ``scipy.stats``.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rsdix import config
from rsdix.errors import DataError
from rsdix.utils import progress, stable_hash

DATASETS = ("ucm", "sydney", "rsicd", "rsitmd")
DATASET_FILES = {"ucm": "ucm_captions/dataset_ucm.json", "sydney": "captions_only/dataset_sydney.json",
                 "rsicd": "captions_only/dataset_rsicd.json", "rsitmd": "captions_only/dataset_rsitmd.json"}
DATASET_NAMES = {"ucm": "UCM", "sydney": "Sydney", "rsicd": "RSICD", "rsitmd": "RSITMD"}
# Sydney-Captions' seven classes (the file names carry no class)
SYDNEY_CLASSES = ("residential", "airport", "meadow", "river", "ocean", "industrial", "runway")
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SBERT-sim")
NGRAM_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
REFERENCE_METRIC = "SBERT-sim"

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
# size as the meaning-changing edits, so n-gram overlap alone cannot tell them apart
PRESERVING = ("synonym", "synonym-1")
CHANGING = ("swap-class", "count", "colour", "negate", "unrelated")
EDITS = ("swap-class", "count", "colour", "negate")  # minimal meaning-changing edits (not 'unrelated')
ANY_EDIT = "any edit"
PERTURBATIONS = ("identity",) + PRESERVING + CHANGING


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass
class CaptionSet:
    """One dataset's captions: distinct captions per image, and the image's class when known."""

    dataset: str
    filenames: list[str]
    captions: list[list[str]]
    classes: list[str | None]
    source: str = ""
    n_empty: int = 0  # empty captions in the file, left out (reported by a warning)

    def __len__(self) -> int:
        return len(self.filenames)


def normalise(text: str) -> str:
    """Lower-case words, punctuation dropped (the form every study caption is scored in)."""
    from rsdix.data.textstats import tokenize

    return " ".join(tokenize(text))


def _class_from_filename(name: str) -> str | None:
    match = re.match(r"^([A-Za-z]+)_\d+\.\w+$", Path(name).name)
    return match.group(1).lower() if match else None


def load_caption_set(dataset: str, data_root=None, split: str | Sequence[str] | None = None) -> CaptionSet:
    """Read one of :data:`DATASETS` (Karpathy JSON under the data root), with image classes:
    UCM from ``labels.csv``, RSICD/RSITMD from file-name prefixes, Sydney none."""
    from rsdix.data.captions import read_karpathy, select_split
    from rsdix.data.classification import clean_class_name
    from rsdix.paths import data_root as resolve_root

    if dataset not in DATASET_FILES:
        raise DataError(dataset, f"unknown caption dataset; use one of {DATASETS}")
    path = resolve_root(data_root) / DATASET_FILES[dataset]
    records = read_karpathy(path, allow_empty=True)  # empty captions are counted, then left out
    if split:
        records = select_split(records, split, source=path)
    labels = {}
    if dataset == "ucm":
        label_csv = path.parent / "labels.csv"
        if label_csv.exists():
            frame = pd.read_csv(label_csv)
            labels = dict(zip(frame["filename"], frame["label"]))
    filenames, captions, classes, empty, no_caption = [], [], [], [], []
    for rec in records:
        normed = [normalise(x) for x in rec.captions]
        empty += [rec.filename] * sum(1 for c in normed if not c)
        caps = list(dict.fromkeys(c for c in normed if c))
        if not caps:
            no_caption.append(rec.filename)
            continue
        cls = labels.get(rec.filename) if dataset == "ucm" else _class_from_filename(rec.filename)
        filenames.append(rec.filename)
        captions.append(caps)
        classes.append(clean_class_name(cls) if cls else None)
    if empty:
        warnings.warn(f"{path}: left out {len(empty)} empty caption(s) of {len(set(empty))} image(s), "
                      f"e.g. {empty[0]}; {len(no_caption)} image(s) left with no caption dropped "
                      f"{no_caption[:3]}", stacklevel=2)
    return CaptionSet(dataset, filenames, captions, classes, source=str(path), n_empty=len(empty))


def class_terms(caption_sets: Sequence[CaptionSet]) -> list[str]:
    """Scene/class names across datasets (cleaned, e.g. 'dense residential'), plus Sydney's."""
    terms = set(SYDNEY_CLASSES)
    for cs in caption_sets:
        terms.update(c for c in cs.classes if c)
    return sorted(terms)


def subsample(cs: CaptionSet, n_images: int | None, seed: int) -> np.ndarray:
    """Seeded image indices (all when ``n_images`` is None or larger than the set)."""
    rng = np.random.default_rng([seed, int(stable_hash(cs.dataset, 8), 16)])
    if n_images is None or n_images >= len(cs):
        return np.arange(len(cs))
    return np.sort(rng.choice(len(cs), size=n_images, replace=False))


# --------------------------------------------------------------------------------------------
# Perturbations
# --------------------------------------------------------------------------------------------

def _rng(seed: int, *keys) -> np.random.Generator:
    return np.random.default_rng([seed] + [int(stable_hash(k, 8), 16) for k in keys])


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
    ``unrelated`` candidate is the chosen caption of another sampled image of a different class.
    """
    rows = []
    for cs in caption_sets:
        idx = subsample(cs, n_images, seed)
        originals = {}
        for i in idx:
            rng = _rng(seed, cs.dataset, cs.filenames[i], "original")
            originals[i] = cs.captions[i][int(rng.integers(len(cs.captions[i])))]
        for i in progress(idx, desc=f"perturb {cs.dataset}"):
            orig = originals[i]
            base = {"dataset": cs.dataset, "image": int(i), "filename": cs.filenames[i],
                    "class": cs.classes[i], "original": orig}
            for kind in kinds:
                rng = _rng(seed, cs.dataset, cs.filenames[i], kind)
                if kind == "identity":
                    cand = orig
                elif kind == "unrelated":
                    pool = [j for j in idx if j != i and (cs.classes[i] is None or cs.classes[j] != cs.classes[i])
                            and originals[j] != orig]
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


def score_pairs(pairs: pd.DataFrame, metrics: Sequence[str] = METRICS, sbert=None,
                tokenizer: str = "ptb") -> pd.DataFrame:
    """Score every candidate against its original (per dataset, so CIDEr's IDF is the dataset's).

    Returns ``pairs`` with one column per metric (wide); :func:`long_scores` makes it tidy.
    """
    from rsdix.captioning.metrics import pairwise_scores

    if not pairs.index.is_unique:
        pairs = pairs.reset_index(drop=True)
    parts = []
    for dataset, group in progress(pairs.groupby("dataset", sort=False), desc="score pairs"):
        scores = pairwise_scores(group["candidate"].tolist(), group["original"].tolist(), metrics=metrics,
                                 sbert=sbert, tokenizer=tokenizer, source=f"metric study {dataset}")
        scores.index = group.index
        parts.append(pd.concat([group, scores], axis=1))
    return pd.concat(parts).loc[pairs.index]


def long_scores(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    ids = [c for c in scored.columns if c not in metrics]
    return scored.melt(id_vars=ids, value_vars=[m for m in metrics if m in scored], var_name="metric",
                       value_name="score")


# --------------------------------------------------------------------------------------------
# RSDiX's test and paired tests
# --------------------------------------------------------------------------------------------

def _correct(frame: pd.DataFrame, by: Sequence[str], p_col: str = "p") -> pd.DataFrame:
    """Bonferroni and Benjamini-Hochberg (scipy) within each family given by ``by``."""
    frame = frame.copy()
    frame["p_bonferroni"] = np.nan
    frame["p_bh"] = np.nan
    for _, sub in frame.groupby(list(by)):
        idx = sub.index
        p = frame.loc[idx, p_col].to_numpy(dtype=float)
        frame.loc[idx, "p_bonferroni"] = np.minimum(1.0, p * len(p))
        frame.loc[idx, "p_bh"] = sps.false_discovery_control(p, method="bh")
    frame["family_size"] = frame.groupby(list(by))[p_col].transform("size")
    return frame


def rsdix_ttest(scored: pd.DataFrame, metrics: Sequence[str] = NGRAM_METRICS, perturbation: str = "synonym",
                reference: str = REFERENCE_METRIC, equal_var: bool = True) -> pd.DataFrame:
    """RSDiX's test: for each n-gram metric, a one-sided two-sample t-test (scipy ``ttest_ind``,
    ``alternative='less'``) that its mean over the paraphrase pairs is below S-BERT similarity's.
    Reported as RSDiX did: each metric's mean and std, t statistic and p-value."""
    rows = []
    for dataset, group in scored[scored.perturbation == perturbation].groupby("dataset", sort=False):
        ref = group[reference].to_numpy(float)
        for m in metrics:
            x = group[m].to_numpy(float)
            res = sps.ttest_ind(x, ref, alternative="less", equal_var=equal_var)
            rows.append({"dataset": dataset, "metric": m, "n": len(x), "mean": x.mean(), "std": x.std(ddof=1),
                         "sbert_mean": ref.mean(), "sbert_std": ref.std(ddof=1), "t": res.statistic,
                         "p": res.pvalue, "test": f"ttest_ind({'Student' if equal_var else 'Welch'}, less)"})
    return _correct(pd.DataFrame(rows), ["dataset"])


def _paired_effects(d: np.ndarray) -> dict:
    """Effect sizes of paired differences: matched-pairs rank-biserial r and Cohen's d_z."""
    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))
    total = ranks.sum()
    rbc = float((ranks[nz > 0].sum() - ranks[nz < 0].sum()) / total) if total else 0.0
    sd = d.std(ddof=1) if len(d) > 1 else np.nan
    return {"rank_biserial": rbc, "cohens_dz": float(d.mean() / sd) if sd and sd > 0 else np.nan}


def wilcoxon_paired(x: np.ndarray, y: np.ndarray, alternative: str = "two-sided") -> dict:
    """scipy's Wilcoxon signed-rank test of x - y with effect sizes (zero differences dropped,
    as in scipy's default ``zero_method='wilcox'``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    d = x - y
    if np.all(d == 0):
        return {"n": len(d), "n_nonzero": 0, "median_diff": 0.0, "W": np.nan, "p": 1.0,
                **_paired_effects(d)}
    res = sps.wilcoxon(x, y, alternative=alternative)
    return {"n": len(d), "n_nonzero": int((d != 0).sum()), "median_diff": float(np.median(d)),
            "W": float(res.statistic), "p": float(res.pvalue), **_paired_effects(d)}


def paired_metric_vs_reference(scored: pd.DataFrame, metrics: Sequence[str] = NGRAM_METRICS,
                               perturbation: str = "synonym", reference: str = REFERENCE_METRIC) -> pd.DataFrame:
    """The paired version of RSDiX's test: Wilcoxon signed-rank (one-sided, metric < S-BERT) on
    the same paraphrase pairs, with effect sizes and correction across metrics per dataset."""
    rows = []
    for dataset, group in scored[scored.perturbation == perturbation].groupby("dataset", sort=False):
        for m in metrics:
            res = wilcoxon_paired(group[m], group[reference], alternative="less")
            rows.append({"dataset": dataset, "metric": m, "vs": reference, **res})
    return _correct(pd.DataFrame(rows), ["dataset"])


def paired_preserved_vs_changed(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                                preserved: str | Sequence[str] = PRESERVING,
                                changed: Sequence[str] = CHANGING) -> pd.DataFrame:
    """Within each metric (no cross-scale comparison): for the same original caption, is the
    meaning-preserving paraphrase scored above the meaning-changing edit? One-sided Wilcoxon
    signed-rank (greater), rank-biserial r in [-1, 1] (1: paraphrase always higher), corrected
    across preserved kinds x edits x metrics per dataset."""
    preserved = [preserved] if isinstance(preserved, str) else list(preserved)
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        for pkind in preserved:
            pres = group[group.perturbation == pkind].set_index("image")
            for kind in changed:
                chg = group[group.perturbation == kind].set_index("image")
                both = pres.index.intersection(chg.index)
                if len(both) < 5:
                    continue
                for m in metrics:
                    res = wilcoxon_paired(pres.loc[both, m], chg.loc[both, m], alternative="greater")
                    rows.append({"dataset": dataset, "metric": m, "preserved": pkind, "changed": kind, **res})
    return _correct(pd.DataFrame(rows), ["dataset"])


# --------------------------------------------------------------------------------------------
# Separation (AUC) and retention
# --------------------------------------------------------------------------------------------

def auc(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(pos > neg) + 0.5 P(tie) = Mann-Whitney U / (n_pos n_neg) (scipy), vectorised over axis."""
    u = sps.mannwhitneyu(pos, neg, axis=axis, method="asymptotic", use_continuity=False).statistic
    return u / (np.shape(pos)[axis] * np.shape(neg)[axis])


def auc_ci(pos, neg, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
           method: str = "percentile") -> tuple[float, float, float]:
    """AUC with a bootstrap CI (scipy.stats.bootstrap, the two groups resampled independently)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    value = float(auc(pos, neg))
    if len(pos) < 2 or len(neg) < 2:
        return value, np.nan, np.nan
    res = sps.bootstrap((pos, neg), lambda a, b, axis=-1: auc(a, b, axis=axis), n_resamples=n_resamples,
                        confidence_level=confidence, method=method, vectorized=True, paired=False,
                        random_state=np.random.default_rng(seed), batch=max(1, 2_000_000 // (len(pos) * 8 + len(neg) * 8)))
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def separation_auc(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                   preserved: str | Sequence[str] = PRESERVING, changed: Sequence[str] = CHANGING,
                   n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUC of each metric for telling a meaning-preserving paraphrase from each meaning-changing
    edit, and from the minimal edits pooled (``changed == 'any edit'``: all but ``unrelated``), with
    bootstrap 95% CIs. 1 = always scores the paraphrase higher, 0.5 = blind to meaning, < 0.5 =
    prefers the meaning-changing edit."""
    preserved = [preserved] if isinstance(preserved, str) else list(preserved)
    pooled = [k for k in changed if k in EDITS]
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        for pkind in preserved:
            pos_frame = group[group.perturbation == pkind]
            for kind in list(changed) + ([ANY_EDIT] if pooled else []):
                neg_frame = group[group.perturbation.isin(pooled if kind == ANY_EDIT else [kind])]
                if len(pos_frame) < 2 or len(neg_frame) < 2:
                    continue
                for m in metrics:
                    value, lo, hi = auc_ci(pos_frame[m], neg_frame[m], n_resamples=n_resamples, seed=seed)
                    rows.append({"dataset": dataset, "metric": m, "preserved": pkind, "changed": kind,
                                 "auc": value, "ci_low": lo, "ci_high": hi, "n_preserved": len(pos_frame),
                                 "n_changed": len(neg_frame)})
    return pd.DataFrame(rows)


def normalised_retention(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Scale-free score per condition: (mean score - mean unrelated) / (mean identity - mean
    unrelated). 1 = scores like the caption itself, 0 = like an unrelated caption."""
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        means = group.groupby("perturbation")[list(metrics)].mean()
        if not {"identity", "unrelated"} <= set(means.index):
            raise DataError(f"metric study {dataset}", "retention needs the identity and unrelated conditions")
        for kind in means.index:
            for m in metrics:
                top, bottom = means.loc["identity", m], means.loc["unrelated", m]
                rows.append({"dataset": dataset, "perturbation": kind, "metric": m, "mean": means.loc[kind, m],
                             "retention": (means.loc[kind, m] - bottom) / (top - bottom) if top != bottom else np.nan})
    return pd.DataFrame(rows)


def condition_summary(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean, std and n of each metric under each perturbation."""
    tidy = long_scores(scored, metrics)
    out = tidy.groupby(["dataset", "perturbation", "group", "metric"], sort=False)["score"].agg(
        ["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n"})


# --------------------------------------------------------------------------------------------
# Discrimination
# --------------------------------------------------------------------------------------------

def discrimination_queries(cs: CaptionSet, n_images: int | None, k: int = 4, seed: int = 0,
                           distractors: str = "random") -> pd.DataFrame:
    """Leave-one-reference-out queries: for each sampled image with >= 2 distinct captions, one
    held-out caption is scored against the image's remaining captions (``target == 'own'``) and
    against the remaining captions of ``k`` other images.

    Distractors come from cyclic shifts of a seeded permutation of ``n_images`` sampled images
    (``random``) or of each class's images (``same-class``: about ``n_images / n_classes`` images
    per class, at least k + 1; classes with <= k usable images are dropped), so every image's
    reference set appears exactly k + 1 times and CIDEr's IDF equals that of the image set.
    """
    if distractors == "random":
        groups = [[int(i) for i in subsample(cs, n_images, seed) if len(cs.captions[i]) >= 2]]
    elif distractors == "same-class":
        by_class: dict[str, list[int]] = {}
        for i, cls in enumerate(cs.classes):
            if cls is not None and len(cs.captions[i]) >= 2:
                by_class.setdefault(cls, []).append(i)
        by_class = {c: g for c, g in by_class.items() if len(g) > k}
        if not by_class:
            raise DataError(cs.source or cs.dataset, f"same-class distractors need image classes with more "
                            f"than {k} images (with 2+ distinct captions)")
        per_class = max(k + 1, (n_images or 10**9) // len(by_class))
        groups = []
        for cls in sorted(by_class):
            g = by_class[cls]
            rng = _rng(seed, cs.dataset, cls, "class-sample")
            groups.append(sorted(int(i) for i in rng.choice(g, size=min(per_class, len(g)), replace=False)))
    else:
        raise ValueError(f"distractors must be 'random' or 'same-class', got {distractors!r}")
    held, rest = {}, {}
    for g in groups:
        for i in g:
            rng = _rng(seed, cs.dataset, cs.filenames[i], "held-out")
            h = int(rng.integers(len(cs.captions[i])))
            held[i] = cs.captions[i][h]
            rest[i] = [c for j, c in enumerate(cs.captions[i]) if j != h]
    rows = []
    rng = _rng(seed, cs.dataset, distractors, "permutation")
    for g in groups:
        if len(g) <= k:
            raise DataError(cs.dataset, f"{len(g)} images are too few for {k} distractors")
        perm = [g[j] for j in rng.permutation(len(g))]
        for p, i in enumerate(perm):
            targets = [("own", i)] + [("other", perm[(p + s) % len(perm)]) for s in range(1, k + 1)]
            for target, j in targets:
                rows.append({"dataset": cs.dataset, "distractors": distractors, "query": i,
                             "filename": cs.filenames[i], "class": cs.classes[i], "target": target,
                             "target_image": j, "candidate": held[i], "references": rest[j]})
    if not rows:
        raise DataError(cs.dataset, "no discrimination queries (too few images with 2+ distinct captions)")
    return pd.DataFrame(rows)


def score_queries(queries: pd.DataFrame, metrics: Sequence[str] = METRICS, sbert=None,
                  tokenizer: str = "ptb") -> pd.DataFrame:
    from rsdix.captioning.metrics import pairwise_scores

    if not queries.index.is_unique:
        queries = queries.reset_index(drop=True)
    parts = []
    for _, group in progress(queries.groupby(["dataset", "distractors"], sort=False), desc="score queries"):
        scores = pairwise_scores(group["candidate"].tolist(), group["references"].tolist(), metrics=metrics,
                                 sbert=sbert, tokenizer=tokenizer, source="discrimination queries")
        scores.index = group.index
        parts.append(pd.concat([group, scores], axis=1))
    return pd.concat(parts).loc[queries.index]


def per_query_discrimination(scored_queries: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per query and metric: ``auc`` = share of distractors scored below the own image (ties
    half), ``hit`` = own image ranked first (ties shared: 1 / number tied at the top)."""
    rows = []
    for (dataset, mode, query), group in scored_queries.groupby(["dataset", "distractors", "query"], sort=False):
        own = group[group.target == "own"]
        other = group[group.target == "other"]
        for m in metrics:
            o = float(own[m].iloc[0])
            d = other[m].to_numpy(float)
            tied_top = 1 + int((d == o).sum()) if o >= d.max() else 0
            rows.append({"dataset": dataset, "distractors": mode, "query": query, "metric": m,
                         "auc": float(((d < o) + 0.5 * (d == o)).mean()),
                         "hit": 1.0 / tied_top if tied_top else 0.0, "k": len(d)})
    return pd.DataFrame(rows)


def mean_ci(values, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean with a bootstrap CI (scipy.stats.bootstrap, percentile)."""
    values = np.asarray(values, float)
    if len(values) < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean()), float(values.mean())
    res = sps.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                        method="percentile", random_state=np.random.default_rng(seed))
    return float(values.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def discrimination_table(per_query: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    rows = []
    for (dataset, mode, m), group in per_query.groupby(["dataset", "distractors", "metric"], sort=False):
        a, alo, ahi = mean_ci(group["auc"], n_resamples, seed=seed)
        h, hlo, hhi = mean_ci(group["hit"], n_resamples, seed=seed)
        rows.append({"dataset": dataset, "distractors": mode, "metric": m, "n_queries": len(group),
                     "k": int(group["k"].iloc[0]), "auc": a, "auc_low": alo, "auc_high": ahi, "accuracy": h,
                     "acc_low": hlo, "acc_high": hhi})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Correlation
# --------------------------------------------------------------------------------------------

def metric_correlation(scored: pd.DataFrame, metrics: Sequence[str] = METRICS,
                       exclude: Sequence[str] = ("identity",)) -> pd.DataFrame:
    """Spearman correlation (scipy) between metrics across all non-identity caption pairs,
    per dataset and pooled (``dataset='all'``): tidy (dataset, metric_a, metric_b, rho, n)."""
    data = scored[~scored.perturbation.isin(exclude)]
    rows = []
    for dataset, group in [("all", data)] + list(data.groupby("dataset", sort=False)):
        rho = sps.spearmanr(group[list(metrics)].to_numpy(float)).statistic
        if np.ndim(rho) == 0:  # scipy returns a scalar for two variables
            rho = np.array([[1.0, rho], [rho, 1.0]])
        for a, ma in enumerate(metrics):
            for b, mb in enumerate(metrics):
                rows.append({"dataset": dataset, "metric_a": ma, "metric_b": mb, "rho": float(rho[a, b]),
                             "n": len(group)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Config, conclusions, results rows, plots
# --------------------------------------------------------------------------------------------

@dataclass
class MetricStudyConfig:
    datasets: tuple = DATASETS
    split: str | None = None          # None: all splits (the study uses reference captions only)
    n_images: int | None = 400        # images per dataset (one original caption each)
    n_discrimination: int | None = 150
    k_distractors: int = 4
    distractors: tuple = ("random", "same-class")
    min_frac: float = 0.3
    max_frac: float = 0.5
    sense: str = "frequent"
    n_resamples: int = 1000
    metrics: tuple = METRICS
    tokenizer: str = "ptb"


def load_study_config(profile: str, **overrides) -> MetricStudyConfig:
    return config.load("metric_stats", profile, **overrides)


def fmt_ci(value, lo, hi, digits: int = 2) -> str:
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _names(frame: pd.DataFrame) -> str:
    return ", ".join(dict.fromkeys(frame.metric)) or "none"


def conclusions(ttest: pd.DataFrame, separation: pd.DataFrame, retention: pd.DataFrame,
                discrimination: pd.DataFrame, alpha: float = 0.05) -> str:
    """A short written conclusion generated from the computed tables (no number typed by hand)."""
    lines = []
    sig = ttest[ttest.p_bh < alpha]
    bleu4 = ttest[ttest.metric == "BLEU-4"]["mean"]
    lines.append(f"RSDiX's test reproduced: in {len(sig)} of {len(ttest)} (dataset, metric) cases the metric's mean "
                 f"on synonym paraphrases is significantly below S-BERT similarity's (one-sided t-test, BH-adjusted "
                 f"p < {alpha}); mean S-BERT similarity {ttest.sbert_mean.min():.3f}-{ttest.sbert_mean.max():.3f}"
                 + (f", mean BLEU-4 {bleu4.min():.3f}-{bleu4.max():.3f}" if len(bleu4) else "") + ".")
    cider = ttest[ttest.metric == "CIDEr"]
    if len(cider) and (cider.p > alpha).all():
        lines.append(f"The same test calls CIDEr robust (mean {cider['mean'].min():.2f}-{cider['mean'].max():.2f} on its "
                     "0-10 scale, never below S-BERT): a comparison of means across scales, not evidence.")
    labels = {"synonym": "RSDiX paraphrase (30-50% of the eligible words)",
              "synonym-1": "one-word synonym (the same edit size as the meaning-changing edits)"}
    for pkind, label in labels.items():
        sub = separation[(separation.preserved == pkind) & (separation.changed == ANY_EDIT)]
        if sub.empty:
            continue
        mean_auc = sub.groupby("metric")["auc"].mean().sort_values(ascending=False)
        ranking = ", ".join(f"{m} {v:.2f}" for m, v in mean_auc.items())
        lines.append(f"Separation of the {label} from minimal meaning-changing edits, AUC averaged over datasets "
                     f"(0.5 = blind to meaning): {ranking}.")
        below, above = sub[sub.ci_high < 0.5], sub[sub.ci_low > 0.5]
        lines.append(f"  95% CI above 0.5 in {len(above)} of {len(sub)} (dataset, metric) cases ({_names(above)}); "
                     f"entirely below 0.5, i.e. the edit scored higher than the paraphrase, in {len(below)} "
                     f"({_names(below)}).")
    per_edit = separation[(separation.metric == REFERENCE_METRIC) & separation.changed.isin(EDITS)
                          & (separation.preserved == "synonym-1")]
    if not per_edit.empty:
        weakest = per_edit.groupby("changed")["auc"].mean().sort_values()
        lines.append(f"S-BERT (one-word synonym vs one-word edit) is weakest against '{weakest.index[0]}' edits "
                     f"(mean AUC {weakest.iloc[0]:.2f}) and strongest against '{weakest.index[-1]}' "
                     f"({weakest.iloc[-1]:.2f}).")
    anyc = separation[(separation.changed == ANY_EDIT) & (separation.preserved == "synonym")]
    if "METEOR" in set(anyc.metric):
        meteor = anyc[anyc.metric == "METEOR"]["auc"].mean()
        others = anyc[anyc.metric.isin(["BLEU-4", "ROUGE-L", "CIDEr"])]["auc"].mean()
        if meteor > others:
            lines.append(f"METEOR separates far better ({meteor:.2f}) than BLEU-4/ROUGE-L/CIDEr ({others:.2f}), but it "
                         "matches WordNet synonyms itself, so WordNet paraphrases are invisible to it by construction: "
                         "not evidence of robustness to rewording in general.")
    syn = retention[retention.perturbation == "synonym"]
    if not syn.empty:
        r = syn.groupby("metric")["retention"].mean().sort_values(ascending=False)
        lines.append("Retention under the RSDiX paraphrase (1 = scored like the caption itself, 0 = like an unrelated "
                     "caption): " + ", ".join(f"{m} {v:.2f}" for m, v in r.items()) + ".")
    if not discrimination.empty:
        for mode, group in discrimination.groupby("distractors", sort=False):
            a = group.groupby("metric")["auc"].mean().sort_values(ascending=False)
            lines.append(f"Discrimination with {mode} distractors (own image's references vs others', mean AUC over "
                         f"datasets): " + ", ".join(f"{m} {v:.2f}" for m, v in a.items())
                         + f"; spread {a.iloc[0] - a.iloc[-1]:.2f}.")
    return "\n".join(f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in lines)


def separation_task(preserved: str) -> str:
    """The results-table task of separation AUC for a paraphrase kind (vs the pooled minimal edits)."""
    return f"metric-separation-{preserved}"


def discrimination_task(distractors: str) -> str:
    """The results-table task of discrimination AUC with ``random`` or ``same-class`` distractors."""
    return f"metric-discrimination-{distractors}"


def to_results(separation: pd.DataFrame, discrimination: pd.DataFrame, seed: int, profile: str) -> list:
    """Headline rows for the tidy results table: separation AUC against the pooled minimal edits
    (per paraphrase kind) and discrimination AUC, each with its bootstrap CI; ``model`` is the
    caption metric. The full tables go to CSV/markdown through ``write_table``."""
    from rsdix.results import Result

    rows = []
    for r in separation[separation.changed == ANY_EDIT].itertuples():
        rows.append(Result(model=r.metric, dataset=DATASET_NAMES.get(r.dataset, r.dataset),
                           task=separation_task(r.preserved), metric="AUC", value=r.auc, seed=seed,
                           split="all", n=int(r.n_preserved + r.n_changed), ci_low=r.ci_low, ci_high=r.ci_high,
                           profile=profile, note=f"{r.preserved} paraphrase vs one-word meaning-changing edits"))
    for r in discrimination.itertuples():
        rows.append(Result(model=r.metric, dataset=DATASET_NAMES.get(r.dataset, r.dataset),
                           task=discrimination_task(r.distractors), metric="AUC", value=r.auc, seed=seed,
                           split="all", n=int(r.n_queries), ci_low=r.auc_low, ci_high=r.auc_high, profile=profile,
                           note=f"own-image reference vs {r.k} {r.distractors} distractors"))
    return rows


def plot_distributions(scored: pd.DataFrame, metrics: Sequence[str] = METRICS, path=None):
    """Box plots of each metric under each perturbation (one panel per metric, datasets pooled
    as hue)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    tidy = long_scores(scored, metrics)
    order = [p for p in PERTURBATIONS if p in set(tidy.perturbation)]
    ncol = 4
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sns.boxplot(data=tidy[tidy.metric == m], x="perturbation", y="score", hue="dataset", order=order, ax=ax,
                    fliersize=1, linewidth=0.7)
        ax.set_title(m)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        if ax is not axes.flat[0]:
            legend = ax.get_legend()
            if legend:
                legend.remove()
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def plot_auc(table: pd.DataFrame, x: str = "auc", lo: str = "ci_low", hi: str = "ci_high", hue: str = "dataset",
             title: str = "", path=None):
    """Point estimates with 95% CI bars per metric (rows) and hue."""
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(table.metric))
    hues = list(dict.fromkeys(table[hue]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(metrics) * max(1, len(hues)) / 2 + 1.5))
    width = 0.8 / max(1, len(hues))
    for h, name in enumerate(hues):
        sub = table[table[hue] == name].set_index("metric").reindex(metrics)
        ypos = np.arange(len(metrics)) + (h - (len(hues) - 1) / 2) * width
        ax.errorbar(sub[x], ypos, xerr=[sub[x] - sub[lo], sub[hi] - sub[x]], fmt="o", ms=4, capsize=2, label=name)
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(np.arange(len(metrics)), metrics)
    ax.invert_yaxis()
    ax.set_xlabel(x.upper() + " (95% bootstrap CI)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


def plot_correlation(corr: pd.DataFrame, dataset: str = "all", path=None):
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = corr[corr.dataset == dataset]
    order = list(dict.fromkeys(sub.metric_a))
    mat = sub.pivot(index="metric_a", columns="metric_b", values="rho").loc[order, order]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(mat, annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, square=True, ax=ax,
                cbar_kws={"label": "Spearman rho"})
    ax.set_title(f"Spearman correlation between metrics\n({dataset}, {int(sub.n.iloc[0])} caption pairs)")
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig
