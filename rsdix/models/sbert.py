"""The S-BERT sentence encoder (all-MiniLM-L6-v2, offline): the RSDiX S-BERT teacher's and the
caption metrics' semantic similarity."""
from __future__ import annotations

import os

from rsdix.models.bundle import quiet_loading
from rsdix.models.presets import minilm_path

_SBERT = {}


def sbert_model(path: str | os.PathLike | None = None, device: str = "cpu"):
    """all-MiniLM-L6-v2 (offline, from ``rsdix.models.minilm_path()``), loaded once per process."""
    key = (str(path or minilm_path()), device)
    if key not in _SBERT:
        from sentence_transformers import SentenceTransformer  # heavy: only where S-BERT is used

        with quiet_loading("sentence-transformers"):
            _SBERT[key] = SentenceTransformer(key[0], device=device)
    return _SBERT[key]
