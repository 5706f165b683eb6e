"""The quick check run during and after training: UCM retrieval mR and WHU-RS19 zero-shot top-1.

Training never imports this module: a notebook or the command line builds a :class:`QuickCheck`
and hands it to :func:`rsdix.studies.methods.train_run` as a plain callable ``check(bundle) -> dict``.
It computes exactly what the evaluation suite computes (same templates, class embeddings and metrics).
"""
from __future__ import annotations

import hashlib

import torch

from rsdix.data.captions import CaptionDataset
from rsdix.data.registry import caption_file
from rsdix.evaluation.accuracy import classification_metrics
from rsdix.evaluation.datasets import load_classification, split_label
from rsdix.evaluation.protocols import get_protocol, template_set
from rsdix.evaluation.retrieval import retrieval_metrics
from rsdix.evaluation.zero_shot import class_embeddings
from rsdix.models.features import model_device
from rsdix.utils import progress, tf32_matmul

QUICK_TEMPLATES = "rs"  # the evaluation suite's default set (notebook 05), so both report the same top-1


class QuickCheck:
    """UCM test retrieval (R@1/5/10 both ways, mean recall mR) and WHU-RS19 zero-shot top-1 (%).

    ``split="val"`` checks retrieval on the validation images instead (for choosing settings
    without looking at the test split); ``zero_shot=None`` leaves the zero-shot check out.
    ``templates``: the prompt set of the zero-shot check; notebook 03 passes
    :func:`eval_templates` of its profile, so its rows are notebook 05's numbers.

    Images are decoded and preprocessed once (``bundle.preprocess_val`` of the first model),
    so checking many small models trained with the same preprocessing is cheap; the text
    features (captions and class prompts) are kept per text tower (:func:`text_tower_key`: a
    hash of every weight outside the image tower), so models whose text tower is locked (the cpu
    profile's) encode the texts once. A small check for training studies; the full evaluation
    suite is :mod:`rsdix.evaluation.suite`.
    """

    def __init__(self, bundle, data_root=None, retrieval: str = "ucm_captions",
                 zero_shot: str | None = "whu_rs19", max_zero_shot: int | None = None, split: str = "test",
                 templates: str | list[str] = QUICK_TEMPLATES):
        self.templates = templates
        ds = CaptionDataset.from_file(caption_file(retrieval, data_root), split=split, mode="eval",
                                      transform=bundle.preprocess_val)
        self.texts, self.owner = ds.texts(), torch.tensor(ds.text_to_image())
        self.images = self._load(ds, "retrieval images")
        self.image_size = bundle.image_size
        self.zs, self.zero_shot_split = None, None
        if zero_shot:
            # the images notebook 05 takes at the same cap (seeded, stratified), labelled as it labels them
            cls = load_classification(zero_shot, data_root, max_images=max_zero_shot, seed=0)
            cls.transform = bundle.preprocess_val
            self.zero_shot_split = split_label("all", cls)
            self.zs = (self._load(cls, "zero-shot images"), torch.tensor(cls.labels), cls.class_names)
        self._text_memo: dict[str, tuple] = {}    # text_tower_key -> (caption features, class embeddings)

    @staticmethod
    def _load(dataset, desc):
        items = [dataset[i] for i in progress(range(len(dataset)), desc=desc, leave=False)]
        return torch.stack([x[0] if isinstance(x, tuple) else x for x in items])

    @staticmethod
    @torch.no_grad()
    def _images(model, x, batch_size=128):
        """Features of the prepared images, each batch moved to the model's device; on the CPU."""
        device = model_device(model)
        return torch.cat([model.encode_image(x[i:i + batch_size].to(device), normalize=True).float().cpu()
                          for i in range(0, len(x), batch_size)])

    @staticmethod
    @torch.no_grad()
    def _texts(model, tokenizer, texts, batch_size=256):
        device = model_device(model)
        return torch.cat([model.encode_text(tokenizer(list(texts[i:i + batch_size])).to(device),
                                            normalize=True).float().cpu()
                          for i in range(0, len(texts), batch_size)])

    @torch.no_grad()
    def _text_features(self, bundle) -> tuple:
        """(caption features, class embeddings or None) of ``bundle``'s text tower, encoded once per tower."""
        key = text_tower_key(bundle.model)
        if key not in self._text_memo:
            captions = self._texts(bundle.model, bundle.tokenizer, self.texts)
            classes = class_embeddings(bundle, self.zs[2], self.templates) if self.zs is not None else None
            self._text_memo = {key: (captions, classes)}   # one tower kept: a trained text tower changes every run
        return self._text_memo[key]

    @torch.no_grad()
    def zero_shot_scores(self, bundle) -> torch.Tensor:
        """``(images, classes)`` cosine scores against the class embeddings of
        the check's templates (:func:`rsdix.evaluation.zero_shot.class_embeddings`, as notebook 05 scores)."""
        images = self.zs[0]
        return self._images(bundle.model, images) @ self._text_features(bundle)[1].t()

    @torch.no_grad()
    @tf32_matmul()
    def __call__(self, bundle) -> dict:
        """The check of ``bundle`` on whatever device its model is (a model still on the training
        GPU is checked there; the images and texts go to it, the scores come back to the CPU)."""
        if bundle.image_size != self.image_size:
            raise ValueError(f"QuickCheck prepared {self.image_size}px images; model takes {bundle.image_size}px")
        model = bundle.model
        was_training = model.training
        model.eval()
        out = retrieval_metrics(self._images(model, self.images), self._text_features(bundle)[0], self.owner.tolist())
        if self.zs is not None:
            _, labels, names = self.zs
            scores = self.zero_shot_scores(bundle)
            out["zs_top1"] = classification_metrics(scores, labels.tolist(), len(names))["top1"]
        model.train(was_training)
        return out


def text_tower_key(model) -> str:
    """A hash of every weight and buffer of ``model`` outside its image tower (``visual.*``) and its
    logit scale/bias: equal keys give equal text features."""
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith("visual.") or name.split(".")[-1] in ("logit_scale", "logit_bias"):
            continue
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def eval_templates(config, dataset: str = "whu_rs19"):
    """The template set notebook 05 scores ``dataset`` with under evaluation config ``config``
    (its protocol's set for that dataset, else the config's ``templates``)."""
    return template_set(get_protocol(config.protocol), dataset, config.templates)


def quick_check(bundle, data_root=None, **kwargs) -> dict:
    """One-off :class:`QuickCheck` (UCM test mR, WHU-RS19 zero-shot top-1)."""
    return QuickCheck(bundle, data_root, **kwargs)(bundle)
