"""The pycocoevalcap machinery the caption metrics run on: the Java runtime check, the PTB
tokenizer in one Java call (and a Java-free tokenizer), the one METEOR process kept for the life
of the Python process, and whether SPICE can run.

Java is required for the PTB tokenizer, METEOR and SPICE (pycocoevalcap runs jars). SPICE needs
Stanford CoreNLP 3.6.0 jars in pycocoevalcap's ``spice/lib``; without them it is skipped by
:func:`rsdix.captioning.metrics.evaluate_captions` with one line, never downloaded.
"""
from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import pycocoevalcap
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

from rsdix.data.textstats import tokenize
from rsdix.errors import RsdixError


class JavaMissingError(RsdixError, RuntimeError):
    """No Java runtime: pycocoevalcap's PTB tokenizer, METEOR and SPICE cannot run."""


def java_available() -> bool:
    return shutil.which("java") is not None


def require_java(what: str = "the PTB tokenizer and METEOR") -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaMissingError(
            f"Java runtime not found on PATH: pycocoevalcap needs it for {what}. Install one "
            "(Debian/Ubuntu: `apt-get install -y default-jre-headless`; conda: `conda install openjdk`), "
            "or use tokenizer='simple' and metrics without METEOR/SPICE (not coco-comparable).")
    return java


def pycoco_dir() -> Path:
    """pycocoevalcap's folder (the jars live under it)."""
    # a namespace package in some releases: no __file__
    return Path(list(pycocoevalcap.__path__)[0]).resolve()


def spice_lib() -> Path:
    """Where SPICE's Stanford CoreNLP jars must be."""
    return pycoco_dir() / "spice" / "lib"


def spice_available() -> bool:
    """SPICE runs only when Java and the Stanford CoreNLP 3.6.0 jars are present (no download)."""
    lib = spice_lib()
    return (java_available() and (lib / "stanford-corenlp-3.6.0.jar").exists()
            and (lib / "stanford-corenlp-3.6.0-models.jar").exists())


def _clean_line(text: str) -> str:
    return " ".join(str(text).replace("|||", " ").split())


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """PTB-tokenize, lower-case and strip punctuation as coco-caption does, in ONE Java call.

    Runs the Stanford PTBTokenizer jar shipped with pycocoevalcap over a temporary file with one
    text per line and removes pycocoevalcap's punctuation tokens.
    """
    java = require_java("the PTB tokenizer")
    if not texts:
        return []
    jar = pycoco_dir() / "tokenizer" / STANFORD_CORENLP_3_4_1_JAR
    lines = [_clean_line(t) for t in texts]
    with tempfile.TemporaryDirectory(prefix="rsdix_ptb_") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run([java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                               "-preserveLines", "-lowerCase", str(src)],
                              capture_output=True, check=False)
    if proc.returncode != 0:
        raise RsdixError(f"PTB tokenizer ({jar}) failed: {proc.stderr.decode(errors='replace')[-500:]}")
    out = proc.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "":
        out = out[:-1]
    if len(out) != len(lines):
        raise RsdixError(f"PTB tokenizer returned {len(out)} lines for {len(lines)} texts")
    punct = set(PUNCTUATIONS)
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in punct) for line in out]


def simple_tokenize(texts: Sequence[str]) -> list[str]:
    """Java-free tokenizer (lower-case words, punctuation dropped): not coco-comparable."""
    return [" ".join(tokenize(t)) for t in texts]


def tokenize_texts(texts: Sequence[str], tokenizer: str = "ptb") -> list[str]:
    if tokenizer == "ptb":
        return ptb_tokenize(texts)
    if tokenizer == "simple":
        return simple_tokenize(texts)
    raise ValueError(f"unknown tokenizer {tokenizer!r}: use 'ptb' or 'simple'")


_METEOR = None
_METEOR_LOCK = threading.Lock()


def meteor_scorer():
    """The process-wide pycocoevalcap METEOR scorer (one Java subprocess, started once)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            require_java("METEOR")
            _METEOR = Meteor()
        return _METEOR


@atexit.register
def close_meteor() -> None:
    """Stop the METEOR subprocess (started again on next use)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is not None:
            try:
                _METEOR.meteor_p.stdin.close()
                _METEOR.meteor_p.kill()
                _METEOR.meteor_p.wait(timeout=10)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            _METEOR = None
