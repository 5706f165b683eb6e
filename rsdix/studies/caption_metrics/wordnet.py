"""Offline WordNet for nltk, built from Debian's WordNet packages.

nltk reads WordNet from ``<nltk_data>/corpora/wordnet/`` (real files, plus a ``lexnames`` file
that the Debian packages leave out). ``rsdix wordnet install`` copies the database from
``/usr/share/wordnet`` (packages ``wordnet-base`` and ``wordnet-sense-index``) and writes
``lexnames`` (the 45 lexicographer files of lexnames(5WN)); :func:`load_wordnet` returns an nltk
WordNet reader over that folder, without any download.

    apt-get update && apt-get install -y wordnet-base wordnet-sense-index
    rsdix wordnet install            # -> <cache>/nltk_data/corpora/wordnet
    rsdix wordnet check
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

from rsdix.errors import RsdixError
from rsdix.paths import cache_dir
from rsdix.utils import with_umask_mode

DEBIAN_SOURCE = Path("/usr/share/wordnet")
APT_HINT = ("install the WordNet database with `apt-get update && apt-get install -y wordnet-base "
            "wordnet-sense-index`, then run `rsdix wordnet install`")
# Files nltk's WordNetCorpusReader opens (index.sense/cntlist.rev for lemma counts and sense keys).
REQUIRED = tuple(f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")) + (
    "noun.exc", "verb.exc", "adj.exc", "adv.exc", "index.sense")
OPTIONAL = ("cntlist.rev", "cntlist", "frames.vrb", "sentidx.vrb", "sents.vrb")
# lexnames(5WN): file number, lexicographer file name, syntactic category (1 n, 2 v, 3 adj, 4 adv)
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetMissingError(RsdixError, RuntimeError):
    """WordNet is not installed where rsdix looks for it."""


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def default_dest() -> Path:
    """``$RSDIX_NLTK_DATA`` or ``<rsdix cache>/nltk_data``."""
    if os.environ.get("RSDIX_NLTK_DATA"):
        return Path(os.environ["RSDIX_NLTK_DATA"]).expanduser().resolve()
    return cache_dir() / "nltk_data"


def _source_dir(source: str | os.PathLike | None) -> Path:
    path = Path(source or os.environ.get("WNSEARCHDIR") or DEBIAN_SOURCE)
    if not source and not (path / "data.noun").is_file() and (path / "dict" / "data.noun").is_file():
        path = path / "dict"  # the layout of WordNet's own tarball / some distributions
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise WordNetMissingError(f"WordNet database not found in {path} (missing {', '.join(missing[:4])}"
                                  f"{'...' if len(missing) > 4 else ''}): {APT_HINT}")
    return path


def install(dest: str | os.PathLike | None = None, source: str | os.PathLike | None = None,
            force: bool = False) -> Path:
    """Build ``<dest>/corpora/wordnet`` (real files + ``lexnames``); returns the nltk_data folder."""
    src = _source_dir(source)
    dest = Path(dest).expanduser().resolve() if dest else default_dest()
    target = dest / "corpora" / "wordnet"
    if _is_complete(target) and not force:
        return dest
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = with_umask_mode(tempfile.mkdtemp(prefix=".wordnet_", dir=target.parent), directory=True)  # not 0700
    try:
        for name in REQUIRED + OPTIONAL:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)  # copyfile follows links: real files
        (tmp / "lexnames").write_text(lexnames_text())
        (tmp / "README.rsdix").write_text(f"Copied from {src} by `rsdix wordnet install`.\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _is_complete(folder: Path) -> bool:
    return all((folder / n).is_file() and not (folder / n).is_symlink() for n in REQUIRED + ("lexnames",))


def find_wordnet(dest: str | os.PathLike | None = None) -> Path:
    """The nltk_data folder holding a complete WordNet: ``dest``, the default, ``~/nltk_data``,
    then nltk's search path."""
    candidates = [Path(dest).expanduser()] if dest else [default_dest(), Path.home() / "nltk_data"]
    if not dest:
        try:
            import nltk  # heavy: nltk loads only when WordNet is looked for

            candidates += [Path(p) for p in nltk.data.path]
        except ImportError:  # pragma: no cover
            pass
    for folder in candidates:
        if _is_complete(folder / "corpora" / "wordnet"):
            return folder.resolve()
    raise WordNetMissingError(f"no complete WordNet under {', '.join(str(c) for c in candidates[:3])}: {APT_HINT}")


_READERS: dict[str, object] = {}


def load_wordnet(dest: str | os.PathLike | None = None):
    """An nltk WordNet reader over the installed folder (no download); also puts that folder
    first on ``nltk.data.path`` so ``nltk.corpus.wordnet`` finds it."""
    import nltk  # heavy: nltk loads only when WordNet is read
    from nltk.corpus.reader.wordnet import WordNetCorpusReader  # heavy: as above

    folder = find_wordnet(dest)
    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))
    key = str(folder)
    if key not in _READERS:
        with warnings.catch_warnings():  # no Open Multilingual WordNet: English only, on purpose
            warnings.filterwarnings("ignore", message="The multilingual functions")
            _READERS[key] = WordNetCorpusReader(str(folder / "corpora" / "wordnet"), None)
    return _READERS[key]


def wordnet_available(dest: str | os.PathLike | None = None) -> bool:
    try:
        find_wordnet(dest)
        return True
    except WordNetMissingError:
        return False
