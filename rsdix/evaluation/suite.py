"""The evaluation suite: one model, a list of tasks, tidy result rows.

Each task is one function registered in :data:`TASKS` (CLIP_benchmark style): it gets the
run (model, config, feature cache), the dataset's registry entry and the loaded dataset, and adds
rows; :func:`evaluate_model` looks every requested task up and loops. The metrics themselves are
plain functions over cached features in :mod:`~rsdix.evaluation.accuracy`,
:mod:`~rsdix.evaluation.retrieval`, :mod:`~rsdix.evaluation.probes` and
:mod:`~rsdix.evaluation.counting`. Accuracies and recalls are percentages, as in the papers' tables.

    rows = evaluate_model(bundle, ["zero-shot:WHU-RS19", "retrieval:UCM"], dirs=dirs, seed=0)
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from rsdix.config import load, option
from rsdix.data.manifest import manifest_hash
from rsdix.data.registry import REGISTRY, get_info
from rsdix.errors import ConfigError, DataError
from rsdix.evaluation.model_specs import parse_model_spec
from rsdix.evaluation.accuracy import classification_metrics
from rsdix.evaluation.counting import counting
from rsdix.evaluation.datasets import dataset_note, load_classification, load_retrieval, resolve_dataset, split_label
from rsdix.evaluation.probes import few_shot, knn_classify, linear_probe
from rsdix.evaluation.protocols import (class_names_for, get_protocol, not_zero_shot, probe_split,
                                        protocols, retrieval_note, template_set, transform_captions)
from rsdix.evaluation.retrieval import retrieval
from rsdix.evaluation.split_manifest import caption_manifest, classification_manifest, zero_shot_selection
from rsdix.evaluation.templates import TEMPLATE_SETS
from rsdix.evaluation.zero_shot import zero_shot
from rsdix.log import warn_once
from rsdix.models.bundle import backbone_label
from rsdix.models.features import FeatureCache, encode_images, encode_images_many
from rsdix.paths import cache_dir, data_root as resolve_root
from rsdix.results import Result, append_results, reference_numbers

Split = Literal["train", "val", "restval", "test", "all"]


@dataclass
class EvalConfig:
    """What :func:`evaluate_model` runs (YAML: ``rsdix/configs/evaluate/<profile>.yaml``)."""
    # dataset registry keys (rsdix.data.registry) or titles
    zero_shot: list[str] = field(default_factory=lambda: ["whu_rs19", "ucm_classification", "eurosat_ms"])
    retrieval: list[str] = field(default_factory=lambda: ["ucm_captions"])
    probe: list[str] = field(default_factory=lambda: ["whu_rs19"])   # linear probe, k-NN, few-shot
    counting: list[str] = field(default_factory=lambda: ["ucm_captions"])
    templates: str = option("rs", choices=tuple(TEMPLATE_SETS))
    # evaluation protocol (rsdix/evaluation/protocols/protocols.yaml): zero-shot test images, template
    # set, class names, ensemble, retrieval convention, probe split; "rsdix" keeps `templates` and the
    # seeded split below. Every row names it (column `protocol`); `rsdix evaluate --protocol all` runs each
    protocol: str = option("rsdix", choices=tuple(protocols()))
    # the papers' protocols the published numbers were made with: notebook 05 runs zero-shot and
    # retrieval again under each (evaluate_published_protocols), so a published number is compared
    # under its own protocol (rsdix.evaluation.published.published_pairs)
    published_protocols: list[str] = field(default_factory=list)
    retrieval_split: Split = "test"
    counting_split: Split = "test"
    # seeded split for sets without an official one: this fraction of each class trains (0 < f < 1)
    train_fraction: float = option(0.6, min=0, min_exclusive=True)
    split_seed: int = option(0, min=0)
    probe_Cs: list[float] = field(default_factory=lambda: [1.0, 10.0, 100.0, 1000.0])
    knn_k: int = option(20, min=1)
    knn_temperature: float = option(0.07, min=0, min_exclusive=True)
    few_shot_shots: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    few_shot_draws: int = option(5, min=1)
    few_shot_C: float = option(10.0, min=0, min_exclusive=True)
    max_images: int | None = option(None, min=1)   # per dataset (smoke profile); None = all
    # per caption set (retrieval, counting: five captions, one text encoding each, per image);
    # None: max_images
    max_caption_images: int | None = option(None, min=1)
    counting_max_captions: int | None = option(None, min=1)   # counting: captions with a count per set; None = all
    max_images_per_dataset: dict[str, int | None] = field(default_factory=dict)   # a cap per dataset:
    # registry key -> images (seeded, stratified as max_images; null: every image), in place of
    # max_images / max_caption_images for that set; the cpu profile caps EuroSAT-MS at its local
    # subset's size, the dry run keeps WHU-RS19's 3 images per class for the probes
    batch_size: int = option(64, min=1)
    num_workers: int = option(0, min=0)
    # classification sets restricted to the images of a caption split (models trained on
    # UCM-Captions train images must not be tested on them): dataset -> "caption_set:split"
    split_from: dict[str, str] = field(default_factory=lambda: {"ucm_classification": "ucm_captions:test"})
    skip_missing: bool = False         # a dataset absent from the data root: warn and skip, or fail
    # notebook 03's checkpoints evaluated, by folder name under the run's models/ (rsdix_s0 ...);
    # None: every one found. A name with no folder is an error naming the folder.
    trained_models: list[str] | None = None
    # models evaluated besides notebook 03's checkpoints: "label=open_clip_name@pretrained_tag_or_path"
    baselines: list[str] = field(default_factory=list)
    # evaluated (as an untrained, chance-level reference) when no trained checkpoint exists yet
    fallback_preset: str | None = None

    def validate(self) -> None:
        """Rules :func:`rsdix.config.load` cannot read off a field: list entries, names, formats."""
        if self.train_fraction >= 1:
            raise ConfigError(f"train_fraction: {self.train_fraction!r} must be < 1")
        if not self.probe_Cs or any(c <= 0 for c in self.probe_Cs):
            raise ConfigError(f"probe_Cs: {self.probe_Cs!r} must be one or more numbers > 0")
        if any(k < 1 for k in self.few_shot_shots):
            raise ConfigError(f"few_shot_shots: {self.few_shot_shots!r} must be >= 1")
        for key, kind in (("zero_shot", "classification"), ("retrieval", "captions"),
                          ("probe", "classification"), ("counting", "captions")):
            for name in getattr(self, key):
                try:
                    get_info(name, kind)
                except DataError as exc:
                    raise ConfigError(f"{key}: {exc}") from None
        for name, cap in self.max_images_per_dataset.items():
            if name not in REGISTRY:
                raise ConfigError(f"max_images_per_dataset: {name!r} is not a dataset key; known: "
                                  f"{', '.join(sorted(REGISTRY))}")
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise ConfigError(f"max_images_per_dataset: {name}: {cap!r} must be a whole number >= 1 or null")
        for name, source in self.split_from.items():
            if not source.partition(":")[0]:
                raise ConfigError(f"split_from: {name}: {source!r} must read 'caption_set:split'")
        for spec in self.baselines:
            parse_model_spec(spec)
        unknown = [p for p in self.published_protocols if p not in protocols()]
        if unknown:
            raise ConfigError(f"published_protocols: unknown protocol(s) {unknown}; known: {list(protocols())}")


def load_eval_config(profile: str = "cpu", **overrides) -> EvalConfig:
    """The evaluation config of ``profile`` (or a YAML path), through :func:`rsdix.config.load`."""
    return load("evaluate", profile, **overrides)


# ----------------------------------------------------------------------------------------------
# one evaluate_model call, and the task table
# ----------------------------------------------------------------------------------------------


@dataclass
class EvalRun:
    """What the task functions of one :func:`evaluate_model` call share: the model, the config,
    the feature cache and the multilingual options; the rows and details they add."""
    bundle: object
    config: EvalConfig
    cache: FeatureCache
    model_name: str
    seed: int = 0
    profile: str = ""
    data_root: str | os.PathLike | None = None
    templates: str | Sequence[str] | None = None
    class_names: dict | None = None
    languages: Sequence[str] | None = None
    trained_on: Sequence[str] = ()   # caption sets the model was trained on (registry keys or files)
    rows: list[Result] = field(default_factory=list)
    zero_shot: dict = field(default_factory=dict)       # title -> ZeroShotResult
    few_shot: list[pd.DataFrame] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    loaded: dict = field(default_factory=dict)

    @property
    def encode(self) -> dict:
        """Keyword arguments of the feature encoders."""
        return dict(batch_size=self.config.batch_size, num_workers=self.config.num_workers)

    @property
    def protocol(self):
        return get_protocol(self.config.protocol)

    def add(self, info, task: str, metrics: dict, n: int, split: str = "test", note: str = "",
            caveat: str = "", manifest: str = "") -> None:
        """One row per metric, noted with the dataset's note (:func:`dataset_note`) and ``note``;
        columns ``protocol``, ``caveat`` (e.g. "not zero-shot: trained on ucm_captions") and
        ``manifest`` (the hash of the files the task read, :mod:`rsdix.evaluation.split_manifest`)."""
        note = "; ".join(x for x in (caveat, dataset_note(info.name, self.config), note) if x)
        for metric, value in metrics.items():
            self.rows.append(Result(self.model_name, info.title, task, metric, float(value), seed=self.seed,
                                    split=split, n=n, profile=self.profile, note=note, manifest=manifest,
                                    extra={"protocol": self.config.protocol, "caveat": caveat,
                                           "backbone": backbone_label(getattr(self.bundle, "name", ""))}))

    @property
    def root(self):
        """The data root the manifests' paths are relative to."""
        return resolve_root(self.data_root)

    def dataset(self, kind: str, name: str, split: str):
        """The dataset (loaded once per call), or None when it is absent and ``config.skip_missing``."""
        key = (kind, name, split)
        if key not in self.loaded:
            try:
                self.loaded[key] = load_task_dataset(kind, name, split, self.config, self.data_root, self.languages)
            except DataError as exc:
                if not self.config.skip_missing or "not found" not in exc.problem:
                    raise
                warn_once(f"skipping {name}: {exc}")   # once, not once per model
                self.skipped.append({"dataset": name, "reason": str(exc)})
                self.loaded[key] = None
        return self.loaded[key]


TaskFunction = Callable[[EvalRun, object, object, str], None]


@dataclass(frozen=True)
class Task:
    """A registered task: its function ``run(eval_run, info, dataset, split)``, the kind of
    dataset it takes, the config field listing its datasets, and the config field naming its
    caption split (classification tasks take every image: split ``all``)."""
    run: TaskFunction
    kind: Literal["classification", "captions"]
    datasets: str
    split: str | None = None

    def split_of(self, config: EvalConfig) -> str:
        return getattr(config, self.split) if self.split else "all"


TASKS: dict[str, Task] = {}


def task(name: str, kind: Literal["classification", "captions"], datasets: str, split: str | None = None):
    """Register ``run(eval_run, info, dataset, split)`` as task ``name`` in :data:`TASKS`."""
    def register(run: TaskFunction) -> TaskFunction:
        TASKS[name] = Task(run, kind, datasets, split)
        return run
    return register


def load_task_dataset(kind: str, name: str, split: str, config: EvalConfig,
                      data_root: str | os.PathLike | None = None, languages: Sequence[str] | None = None):
    """A task's dataset as the config sizes it: a classification set (every image) or a caption set's split."""
    if kind == "classification":
        return load_classification(name, data_root, image_cap(config, name, kind, config.max_images),
                                   config.split_seed, split_from=config.split_from.get(name))
    cap = config.max_caption_images if config.max_caption_images is not None else config.max_images
    return load_retrieval(name, data_root, None if split == "all" else split, image_cap(config, name, kind, cap),
                          config.split_seed, languages=languages)


def image_cap(config: EvalConfig, name: str, kind: str, cap: int | None) -> int | None:
    """The images of dataset ``name`` (key or title) a task reads: the dataset's
    ``max_images_per_dataset`` entry where it has one (None: every image), else ``cap`` (the
    config's general cap)."""
    try:
        key = get_info(name, kind).name
    except DataError:
        key = name   # not in the registry: the loader says so
    return config.max_images_per_dataset[key] if key in config.max_images_per_dataset else cap


def describe_templates(templates) -> str:
    """A template set's name, or how many templates were given and the first."""
    if isinstance(templates, str):
        return templates
    templates = list(templates)
    return f"{len(templates)} given, e.g. {templates[0]!r}"


@task("zero-shot", "classification", "zero_shot")
def zero_shot_task(run: EvalRun, info, ds, split: str) -> None:
    """Zero-shot top-1/top-5/balanced accuracy under the run's protocol (its test images, class
    strings, templates and ensemble); :class:`ZeroShotResult` into ``run.zero_shot``."""
    protocol = run.protocol
    given = run.class_names or {}
    names = given.get(info.name, given.get(info.title))
    notes = ["class names given"] if names is not None else []
    if names is None:
        names, name_note = class_names_for(protocol, info.name, ds.classes, ds.class_names)
        names = None if not name_note else names
        notes += [name_note] if name_note else []
    templates = run.templates or template_set(protocol, info.name, run.config.templates)
    indices, image_note = zero_shot_selection(protocol, info.name, ds, run.root)
    res = zero_shot(run.bundle, ds, templates, class_names=names, cache=run.cache, dataset_name=info.name,
                    indices=indices, ensemble=protocol.ensemble, **run.encode)
    run.zero_shot[info.title] = res
    # a set restricted to a caption split's images says so (``ucm_captions:test``), not "all"
    split = split_label(run.config.split_from.get(info.name, split), ds)
    n = len(ds) if indices is None else len(indices)   # split: the set as loaded; n: the images scored
    if protocol.ensemble != "normalised_mean":
        notes.append(f"ensemble={protocol.ensemble}")
    if protocol.precision == "amp":
        notes.append("the evaluator used amp; rsdix fp32")
    run.add(info, "zero-shot", res.metrics, n, split=split,
            note="; ".join(x for x in [f"templates={describe_templates(templates)}", *notes, image_note] if x),
            caveat=not_zero_shot(info.name, run.trained_on),
            manifest=manifest_hash(classification_manifest(ds, run.root, indices)))


def language_note(run: EvalRun) -> str:
    return f"captions in {list(run.languages)}" if run.languages else ""


@task("retrieval", "captions", "retrieval", split="retrieval_split")
def retrieval_task(run: EvalRun, info, ds, split: str) -> None:
    """Image<->text recall@k and mR on the caption split, in the protocol's convention (one query
    per caption, or identical captions merged; caption prefix or capitalisation; directional means);
    a protocol that reports no retrieval skips it (``details["skipped"]``)."""
    protocol = run.protocol
    if protocol.retrieval is None:
        run.skipped.append({"dataset": info.name, "reason": f"protocol {protocol.name} reports no retrieval"})
        return
    metrics = retrieval(run.bundle, ds, run.cache, dataset_name=info.name, split=split,
                        convention=protocol.retrieval, captions=lambda texts: transform_captions(protocol, texts),
                        directional=protocol.retrieval_means == "directional", **run.encode)
    distinct = metrics.pop("n_distinct_texts", None)
    notes = [language_note(run), retrieval_note(protocol),
             f"{int(distinct)} distinct texts of {len(ds.texts())} captions" if distinct is not None else ""]
    run.add(info, "retrieval", metrics, len(ds), split=split_label(split, ds),
            note="; ".join(x for x in notes if x), caveat=trained_on_caption_set(info.name, run.trained_on),
            manifest=manifest_hash(caption_manifest(ds, run.root, split)))


def trained_on_caption_set(dataset: str, trained_on) -> str:
    """``"trained on <set>'s train split"`` when the model's training data holds this caption set."""
    return f"trained on {dataset}'s train split" if dataset in {str(t) for t in trained_on} else ""


@dataclass
class ProbeData:
    """Frozen image features of a classification set with its seeded stratified split."""
    features: torch.Tensor
    labels: np.ndarray
    train: np.ndarray
    test: np.ndarray
    n_classes: int
    note: str
    caveat: str = ""   # e.g. "model trained on ucm_captions": its training saw this set's caption set
    manifest: str = ""  # hash of the images (train and test) the probes read
    # the rows' split: "test", with the subset a capped set kept ("test: 120 of 1005": the probe's
    # train and test parts are drawn from those 120 images), as zero-shot rows on the same set say
    split: str = "test"


def probe_data(run: EvalRun, info, ds) -> ProbeData:
    """Features (cached, shared by the three probes) and the config's seeded train/test split."""
    cfg = run.config
    feats = encode_images(run.bundle, ds, run.cache, dataset_name=info.name, split="all", **run.encode)
    labels = np.asarray(ds.labels)
    tr, te, note = probe_split(run.protocol, [p for p, _ in ds.samples], labels, cfg.train_fraction, cfg.split_seed)
    return ProbeData(feats, labels, tr, te, len(ds.classes), note,
                     not_zero_shot(info.name, run.trained_on).replace("not zero-shot: ", "model "),
                     manifest_hash(classification_manifest(ds, run.root)), split_label("test", ds))


@task("linear-probe", "classification", "probe")
def linear_probe_task(run: EvalRun, info, ds, split: str) -> None:
    """Logistic regression on the training part, C chosen on validation."""
    p = probe_data(run, info, ds)
    m = linear_probe(p.features[p.train], p.labels[p.train], p.features[p.test], p.labels[p.test],
                     run.config.probe_Cs, seed=run.seed, n_classes=p.n_classes)
    best_C = m.pop("C")
    run.add(info, "linear-probe", m, len(p.test), split=p.split, note=f"{p.note}; C={best_C:g} chosen on validation",
            caveat=p.caveat, manifest=p.manifest)


@task("knn", "classification", "probe")
def knn_task(run: EvalRun, info, ds, split: str) -> None:
    """Weighted k-NN (``knn_k``, ``knn_temperature``)."""
    cfg, p = run.config, probe_data(run, info, ds)
    scores = knn_classify(p.features[p.train], p.labels[p.train], p.features[p.test], cfg.knn_k,
                          cfg.knn_temperature, p.n_classes)
    run.add(info, "knn", classification_metrics(scores, p.labels[p.test], p.n_classes), len(p.test), split=p.split,
            note=f"{p.note}; k={cfg.knn_k}, T={cfg.knn_temperature:g}", caveat=p.caveat, manifest=p.manifest)


@task("few-shot", "classification", "probe")
def few_shot_task(run: EvalRun, info, ds, split: str) -> None:
    """Few-shot probes: one ``few-shot-<k>`` task per shot count (mean and spread over draws);
    the draws themselves into ``run.few_shot``."""
    cfg, p = run.config, probe_data(run, info, ds)
    max_shots = int(np.bincount(p.labels[p.train]).min())
    shots = [k for k in cfg.few_shot_shots if k <= max_shots]
    if len(shots) < len(cfg.few_shot_shots):
        warnings.warn(f"{info.title}: {max_shots} training images in the smallest class; few-shot runs only {shots}")
    draws = few_shot(p.features[p.train], p.labels[p.train], p.features[p.test], p.labels[p.test], shots,
                     cfg.few_shot_draws, seed=run.seed, C=cfg.few_shot_C, n_classes=p.n_classes)
    draws.insert(0, "dataset", info.title)
    run.few_shot.append(draws)
    for k, group in draws.groupby("shots"):
        run.add(info, f"few-shot-{k}", {"top1": group["top1"].mean(), "top1_std": group["top1"].std(ddof=0),
                                        "balanced_acc": group["balanced_acc"].mean()}, len(p.test), split=p.split,
                note=f"{p.note}; mean over {len(group)} draws, C={cfg.few_shot_C:g}", caveat=p.caveat,
                manifest=p.manifest)


@task("counting", "captions", "counting", split="counting_split")
def counting_task(run: EvalRun, info, ds, split: str) -> None:
    """RemoteCount-style counting on the split's captions that hold one count."""
    m = counting(run.bundle, ds, run.cache, dataset_name=info.name, split=split, **run.encode,
                 max_captions=run.config.counting_max_captions)
    n = int(m.pop("n_captions"))
    note = "; ".join(x for x in ("captions holding one count 1..10, ranked against their ten count variants",
                                 language_note(run)) if x)
    run.add(info, "counting", m, n, split=split_label(split, ds), note=note,
            manifest=manifest_hash(caption_manifest(ds, run.root, split)))


def parse_tasks(tasks: Sequence[str] | None, config: EvalConfig) -> list[tuple[str, str]]:
    """``["zero-shot:UCM", "retrieval"]`` or None (everything in the config) -> (task, dataset)."""
    out = []
    for spec in list(TASKS) if tasks is None else tasks:
        name, _, dataset = spec.partition(":")
        if name not in TASKS:
            raise ConfigError(f"unknown evaluation task {name!r}; known: {list(TASKS)}")
        out += [(name, dataset)] if dataset else [(name, d) for d in getattr(config, TASKS[name].datasets)]
    return out


# ----------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------


def evaluate_model(bundle, tasks: Sequence[str] | None = None, dirs=None, seed: int = 0,
                   model_name: str | None = None, config: EvalConfig | None = None,
                   data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None,
                   write: bool = True, details: dict | None = None,
                   templates: str | Sequence[str] | None = None, class_names: dict | None = None,
                   languages: Sequence[str] | None = None, trained_on: Sequence[str] = ()) -> pd.DataFrame:
    """Run evaluation tasks on one model; tidy rows (model, dataset, task, metric, value, seed).

    Multilingual evaluation goes through the same call: ``templates`` (a set name or a list of
    templates in any language, default ``config.templates``), ``class_names`` (dataset key or
    title -> class names in class order, or a folder -> name mapping) and ``languages``
    (retrieval and counting keep only captions in these languages, from the ``lang`` field).

    ``tasks``: ``"task"`` (every dataset the config lists for it) or ``"task:dataset"`` (a
    registry key or title, e.g. ``"zero-shot:whu_rs19"``, ``"retrieval:UCM"``); tasks are the
    keys of :data:`TASKS`: zero-shot, retrieval, linear-probe, knn, few-shot, counting. Rows carry
    the dataset's title as in the published tables. With ``dirs`` (a RunDirs) features are cached
    under ``dirs.run / "features"`` and rows are appended to ``dirs.results``. Pass a dict as
    ``details`` to receive ``details["zero_shot"][title]`` (:class:`ZeroShotResult`, with the
    confusion matrix), ``details["few_shot"]`` (one row per shots x draw),
    ``details["skipped"]`` (datasets absent, with ``config.skip_missing``) and
    ``details["cache_stats"]``. ``trained_on``: the caption sets the model was trained on; zero-shot
    rows on a set built on their images say "not zero-shot: trained on <set>" (column ``caveat``).
    Every row names ``config.protocol`` (column ``protocol``).
    """
    config = config or EvalConfig()
    if cache is None:
        cache = FeatureCache((dirs.run / "features") if dirs is not None else cache_dir() / "features")
    run = EvalRun(bundle, config, cache, model_name or bundle.name, seed, getattr(dirs, "profile", ""),
                  data_root, templates, class_names, languages, tuple(trained_on))
    for name, dataset in parse_tasks(tasks, config):
        spec = TASKS[name]
        info = resolve_dataset(dataset, spec.kind)
        split = spec.split_of(config)
        ds = run.dataset(spec.kind, info.name, split)
        if ds is not None:
            spec.run(run, info, ds, split)
    frame = pd.DataFrame([{**{k: v for k, v in r.__dict__.items() if k != "extra"}, **r.extra} for r in run.rows])
    if dirs is not None and write and run.rows:
        append_results(run.rows, dirs.results)
    if details is not None:
        details["zero_shot"] = run.zero_shot
        details["few_shot"] = pd.concat(run.few_shot, ignore_index=True) if run.few_shot else pd.DataFrame()
        details["skipped"] = run.skipped
        details["cache_stats"] = cache.stats
    return frame


def prefetch_image_features(bundles: dict, tasks: Sequence[str] | None = None, config: EvalConfig | None = None,
                            data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None
                            ) -> dict[str, int]:
    """Encode every image set that :func:`evaluate_model` will need, for several models in one
    pass per set (each image decoded once for all models sharing a transform), into ``cache``;
    the following ``evaluate_model`` calls then only read the cache. Returns images per set."""
    config = config or EvalConfig()
    cache = cache if cache is not None else FeatureCache()
    seen, sizes = set(), {}
    for name, dataset in parse_tasks(tasks, config):
        spec = TASKS[name]
        info = resolve_dataset(dataset, spec.kind)
        split = spec.split_of(config)
        if (info.name, split) in seen:
            continue
        seen.add((info.name, split))
        try:
            ds = load_task_dataset(spec.kind, info.name, split, config, data_root)
        except DataError as exc:
            if config.skip_missing and "not found" in exc.problem:
                continue          # evaluate_model reports it
            raise
        encode_images_many(bundles, ds, cache, dataset_name=info.name, split=split,
                           batch_size=config.batch_size, num_workers=config.num_workers)
        sizes[f"{info.title} {spec.kind}" + (f" {split}" if spec.kind == "captions" else "")] = len(ds)
    return sizes


def evaluate_models(bundles: dict, seeds: dict[str, int], dirs=None, config: EvalConfig | None = None,
                    data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None,
                    trained_on: dict[str, Sequence[str]] | None = None
                    ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """:func:`evaluate_model` for each ``label -> bundle`` (its rows labelled ``label``, with
    ``seeds[label]`` and the caption sets ``trained_on[label]``): ``(all rows, label -> details,
    seconds and images encoded per model)``."""
    cache = cache if cache is not None else FeatureCache()
    rows, details, timings = [], {}, []
    for label, bundle in bundles.items():
        start, before = time.time(), cache.stats.images_encoded
        details[label] = {}
        rows.append(evaluate_model(bundle, dirs=dirs, seed=seeds[label], model_name=label, config=config,
                                   data_root=data_root, cache=cache, details=details[label],
                                   trained_on=(trained_on or {}).get(label, ())))
        timings.append({"model": label, "seconds": round(time.time() - start, 1),
                        "images_encoded": cache.stats.images_encoded - before})
    return pd.concat(rows, ignore_index=True), details, pd.DataFrame(timings)


PUBLISHED_TASKS = ("zero-shot", "retrieval")   # the tasks the papers' published numbers are on


def published_tasks(config: EvalConfig, protocol: str, reference: pd.DataFrame | None = None) -> list[str]:
    """``task:dataset`` specs of the config's zero-shot and retrieval sets that have a published
    number made under ``protocol`` (the reference table's ``protocol`` column; a set compared with
    another release's numbers, ``DatasetInfo.published_as``, counts under that release's title)."""
    ref = reference_numbers(aliases=False) if reference is None else reference
    if "protocol" not in ref:
        return []
    ref = ref[ref["protocol"].fillna("") == protocol]
    out = []
    for task in PUBLISHED_TASKS:
        titles = set(ref[ref["task"] == task]["dataset"])
        for name in getattr(config, TASKS[task].datasets):
            info = get_info(name, TASKS[task].kind)
            if {info.title, info.published_as} & titles:
                out.append(f"{task}:{info.name}")
    return out


def evaluate_published_protocols(bundles: dict, seeds: dict[str, int], dirs=None, config: EvalConfig | None = None,
                                 data_root: str | os.PathLike | None = None, cache: FeatureCache | None = None,
                                 trained_on: dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Zero-shot and retrieval of every model again under each of ``config.published_protocols``,
    on the sets with a published number under that protocol (:func:`published_tasks`; images read
    from ``cache``: nothing is encoded twice), rows naming their protocol and appended to
    ``dirs.results``; an empty frame when the config lists none."""
    config = config or EvalConfig()
    cache = cache if cache is not None else FeatureCache()
    frames = []
    for name in config.published_protocols:
        tasks = published_tasks(config, name)
        if name == config.protocol or not tasks:
            continue
        cfg = replace(config, protocol=name)
        for label, bundle in bundles.items():
            frames.append(evaluate_model(bundle, tasks, dirs=dirs, seed=seeds[label], model_name=label,
                                         config=cfg, data_root=data_root, cache=cache,
                                         trained_on=(trained_on or {}).get(label, ())))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
