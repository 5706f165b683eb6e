"""What every run of a study process shares, so that ~60 short runs do not each pay for it: the
locked text trunk's pooled outputs (the trunk is frozen and the same pretrained MiniLM in every
arm), the decoded training images, and the S-BERT caption embeddings of the rsdix-sbert teacher.

None of these changes what a run computes: a cached trunk output is what the trunk would return,
a decoded image is the same PIL image (resized once, as ``cache_images`` does), and S-BERT's
embeddings are a frozen model's.
"""
from __future__ import annotations

from rsdix.data.images import load_image
from rsdix.training.clip_objectives import SBertSimilarity


class SharedCaches:
    """Caches of one process: ``install(bundle)`` makes a fresh model use the shared text cache,
    ``cache_images(dataset, size)`` makes a training dataset decode through the shared image cache,
    ``sbert`` is the one S-BERT similarity (created on first use)."""

    def __init__(self):
        self.text: dict = {}          # autocast dtype (None: fp32) -> token ids -> pooled trunk output
        self.images: dict = {}        # (path, size) -> decoded, resized PIL image
        self._sbert = None

    def install(self, bundle) -> None:
        """Point the locked text tower of ``bundle`` (``rsdix.models.lock_text_trunk(cache=True)``)
        at the shared cache; a model without a cached text trunk is left alone."""
        text = getattr(bundle.model, "text", None)
        if text is not None and isinstance(getattr(text, "_pooled_cache", None), dict):  # set by lock_text_trunk
            text._pooled_cache = self.text

    @staticmethod
    def caches_text(bundle) -> bool:
        """Whether ``bundle``'s text tower is locked and cached (only then is warming the cache worth it)."""
        text = getattr(bundle.model, "text", None)
        return text is not None and isinstance(getattr(text, "_pooled_cache", None), dict)

    def cache_images(self, dataset, size: int) -> None:
        """Decode each image of ``dataset`` (a :class:`rsdix.data.captions.CaptionDataset`, or a
        concatenation of them) once per process, resized to fit ``size`` (``thumbnail``), then apply the
        dataset's own transform; the same as ``ClipDataConfig.cache_images`` but shared across runs."""
        for part in getattr(dataset, "datasets", [dataset]):
            transform, part.transform = part.transform, None
            part.load = _CachedLoad(part, transform, size, self.images)

    @property
    def sbert(self) -> SBertSimilarity:
        if self._sbert is None:
            self._sbert = SBertSimilarity()
        return self._sbert


class _CachedLoad:
    def __init__(self, dataset, transform, size: int, cache: dict):
        self.dataset, self.transform, self.size, self.cache = dataset, transform, size, cache

    def __call__(self, index: int):
        path = self.dataset.image_dir / self.dataset.records[index].filename
        key = (str(path), self.size)
        img = self.cache.get(key)
        if img is None:
            img = load_image(path)
            img.thumbnail((self.size, self.size))
            self.cache[key] = img
        return self.transform(img) if self.transform is not None else img
