"""``rsdix wordnet`` and ``rsdix spice``: the offline WordNet and SPICE's CoreNLP jars."""
from __future__ import annotations

from rsdix.errors import OfflineError


def cmd_wordnet(args) -> int:
    from rsdix.studies.caption_metrics import wordnet  # stage import when the command runs

    if args.action == "install":
        folder = wordnet.install(args.dest, args.source, force=args.force)
        print(f"WordNet ready in {folder / 'corpora' / 'wordnet'}")
        return 0
    wn = wordnet.load_wordnet(args.dest)
    lemmas = sorted({lemma.name() for s in wn.synsets("airplane") for lemma in s.lemmas()})
    print(f"WordNet {wn.get_version()} OK in {wordnet.find_wordnet(args.dest)}; airplane -> {', '.join(lemmas)}")
    return 0


SPICE_URL = "http://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip"


def cmd_spice(args) -> int:
    """``rsdix spice install|check``: SPICE's Stanford CoreNLP 3.6.0 jars (pycocoevalcap's own
    downloader, ~400 MB, once), so captioning reports SPICE instead of leaving it out."""
    import urllib.error  # stage import when the command runs

    from pycocoevalcap.spice import get_stanford_models  # stage import when the command runs

    from rsdix.captioning.pycoco import java_available, spice_available, spice_lib  # stage import

    if args.action == "install" and not spice_available():
        try:
            get_stanford_models.get_stanford_models()
        except (urllib.error.URLError, OSError) as exc:
            raise OfflineError(f"SPICE jars: could not download {SPICE_URL} ({exc}); on a machine with internet "
                               f"run `rsdix spice install`, or unzip stanford-corenlp-3.6.0.jar and "
                               f"stanford-corenlp-3.6.0-models.jar from it into {spice_lib()}") from None
    if spice_available():
        print(f"SPICE ready: Stanford CoreNLP 3.6.0 jars in {spice_lib()}")
        return 0
    print("SPICE not available: " + ("Java missing" if not java_available() else
                                      f"no Stanford CoreNLP 3.6.0 jars in {spice_lib()} (rsdix spice install)"))
    return 1
