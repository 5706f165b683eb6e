"""Notebook 04's experiment: which captioners are trained on which encoders and datasets, one
run end to end (train or reload, caption the test split, score it), and all runs in a row.

One YAML per profile: ``rsdix/configs/captioning/<profile>.yaml``, loaded with
:func:`load_experiment` (``rsdix.config.load("captioning", profile)``).
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from rsdix import config
from rsdix.captioning.metrics import COCO_METRICS, SBERT_METRICS, evaluate_captions
from rsdix.captioning.training import CaptionTrainConfig, caption_images, load_captioner, train_captioner
from rsdix.config import deep_update, from_dict, option
from rsdix.data.captions import find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.registry import caption_file, get_info
from rsdix.errors import ConfigError, DataError
from rsdix.log import get_logger
from rsdix.models import load_model
from rsdix.paths import cache_dir
from rsdix.results import append_results
from rsdix.s2.dataset import read_s2lcd
from rsdix.utils import atomic_path, pick_device, seed_everything

log = get_logger(__name__)

NO_WORDS = "nowords"


@dataclass
class CaptioningGoal:
    """The profile's goal for each captioner: corpus-level scores of at least ``min_scores``
    (metric -> value) within ``max_train_minutes`` of training (``None``: no time limit)."""
    min_scores: dict = field(default_factory=dict)
    max_train_minutes: float | None = option(None, min=0)


@dataclass
class CaptioningExperiment:
    """Which captioners notebook 04 trains and on what.

    ``encoders``: notebook-03 run names (folders under ``RunDirs(profile).models``) whose encoder
    is used frozen; ``unfrozen``: those also trained end to end; ``fallback_encoder``: a preset used
    (frozen and, when ``unfrozen`` is not empty, unfrozen) when none of the named runs exists.
    ``goal``: what the goal check of the notebook compares each captioner's scores with.
    """
    datasets: list = field(default_factory=lambda: ["ucm_captions"])   # rsdix.data.registry names
    train_split: str = "train"
    test_split: str = "test"
    limit_train: int = option(0, min=0)  # >0: first N training images (smoke profile)
    limit_test: int = option(0, min=0)
    encoders: list = field(default_factory=lambda: ["infonce_s0", "rsdix_s0"])
    unfrozen: list = field(default_factory=lambda: ["rsdix_s0"])
    fallback_encoder: str = "rsdix-cnn"
    fallback_pretrained: str | None = None
    torch_threads: int = option(0, min=0)  # >0: torch.set_num_threads (small models on a shared CPU: 1 is fastest)
    metrics: list = field(default_factory=lambda: ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
                                                   "CIDEr", "SPICE", "SBERT-sim"])
    train: CaptionTrainConfig = field(default_factory=CaptionTrainConfig)
    unfrozen_train: dict = field(default_factory=lambda: {"freeze_encoder": False, "all_captions": False})
    goal: CaptioningGoal = field(default_factory=CaptioningGoal)

    def validate(self) -> None:
        known = COCO_METRICS + SBERT_METRICS
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ConfigError(f"metrics: unknown metric(s) {unknown}; known: {list(known)}")

    def train_config(self, frozen: bool = True) -> CaptionTrainConfig:
        """The training config of a frozen-encoder run, or with ``unfrozen_train`` applied."""
        base = asdict(self.train)
        if not frozen:
            base = deep_update(base, {"freeze_encoder": False, **self.unfrozen_train})
        return from_dict(CaptionTrainConfig, base, "captioning experiment")


def load_experiment(profile: str, **overrides) -> CaptioningExperiment:
    return config.load("captioning", profile, **overrides)


def prepare(exp: CaptioningExperiment, seed: int = 0) -> None:
    """Seed every generator and apply the profile's ``torch_threads``."""
    seed_everything(seed)
    if exp.torch_threads:
        torch.set_num_threads(exp.torch_threads)


def describe_experiment(exp: CaptioningExperiment) -> str:
    """One line: datasets, decoder, prefix, mapper and epochs (frozen / trained encoder)."""
    model = exp.train.model
    return (f"datasets: {exp.datasets} | decoder: {model.decoder} | prefix: {model.prefix_len} | mapper: "
            f"{model.mapper} | epochs (frozen / trained encoder): {exp.train.epochs} / "
            f"{exp.train_config(frozen=False).epochs}")


# ----------------------------------------------------------------------------------------------
# the runs
# ----------------------------------------------------------------------------------------------
def encoder_runs(models_dir: str | os.PathLike, names: Sequence[str]) -> dict[str, Path]:
    """The named notebook-03 model folders that exist (open_clip local-dir folders)."""
    found = {}
    for name in names:
        path = Path(models_dir) / name
        if (path / "open_clip_config.json").exists():
            found[name] = path
    return found


@dataclass
class CaptionRun:
    """One captioner of the experiment: which encoder, frozen or trained."""
    encoder_run: str                # notebook-03 run name, or the preset's name
    encoder: str                    # model folder or preset name (for rsdix.models.load_model)
    pretrained: str | None = None
    frozen: bool = True
    fallback: bool = False          # a preset used because no notebook-03 model exists

    @property
    def name(self) -> str:
        return f"clipcap-{self.encoder_run}-{'frozen' if self.frozen else 'unfrozen'}"


def plan_runs(exp: CaptioningExperiment, models_dir: str | os.PathLike) -> tuple[list[CaptionRun], str]:
    """The captioners to train: notebook-03 encoders when they exist, else the fallback preset.

    Returns the runs and a one-line message saying which encoders were found or missing."""
    found = encoder_runs(models_dir, list(dict.fromkeys(list(exp.encoders) + list(exp.unfrozen))))
    runs = [CaptionRun(n, str(found[n])) for n in exp.encoders if n in found]
    runs += [CaptionRun(n, str(found[n]), frozen=False) for n in exp.unfrozen if n in found]
    missing = [n for n in dict.fromkeys(list(exp.encoders) + list(exp.unfrozen)) if n not in found]
    if runs:
        msg = f"notebook-03 encoders found in {models_dir}: {sorted(found)}"
        if missing:
            msg += f"; missing (skipped): {missing}"
        return runs, msg
    name = exp.fallback_encoder
    runs = [CaptionRun(name, name, exp.fallback_pretrained, True, True)]
    if exp.unfrozen:
        runs.append(CaptionRun(name, name, exp.fallback_pretrained, False, True))
    msg = (f"no notebook-03 encoder in {models_dir} (looked for {missing}): run notebook 03 first for the "
           f"real comparison; using the preset encoder {name!r} (pretrained={exp.fallback_pretrained}) instead")
    return runs, msg


def runs_table(runs: Sequence[CaptionRun]) -> pd.DataFrame:
    """One row per planned captioner: its name, encoder, frozen or not, fallback preset or not."""
    return pd.DataFrame([{"model": r.name, "encoder": r.encoder, "frozen": r.frozen, "fallback preset": r.fallback}
                         for r in runs])


def for_scoring(captions: Sequence[str]) -> tuple[list[str], int]:
    """Generated captions ready for :func:`rsdix.captioning.metrics.evaluate_captions`, which refuses a
    candidate without words: a degenerate output (only punctuation, e.g. ". .") becomes the
    placeholder ``nowords``, which matches no reference word (so it scores as an empty caption
    would), and is counted. Returns ``(captions, number replaced)``."""
    out = [c if re.search(r"[^\W_]", c) else NO_WORDS for c in captions]
    return out, sum(o is NO_WORDS for o in out)


def embedding_cache() -> Path:
    """The folder where the captioning image embeddings are cached."""
    return cache_dir() / "caption_embeddings"


def _limit(records: list, n: int) -> list:
    """``n`` records evenly spread over the list (datasets are often sorted by class)."""
    if not n or n <= 0 or n >= len(records):
        return records
    return [records[(i * len(records)) // n] for i in range(n)]


def run_captioning(run: CaptionRun, exp: CaptioningExperiment, dataset: str, root=None, run_root=None,
                   seed: int = 0, profile: str = "", device: str | None = None) -> dict:
    """Train (or resume / reload) one captioner on ``dataset``'s train split, caption the test split,
    score it with :func:`rsdix.captioning.metrics.evaluate_captions`.

    Returns ``{"run", "captions" (DataFrame: filename, generated, references), "evaluation",
    "results" (tidy rows), "times" (seconds: embed, train, decode, score)}``; the captions are
    also written to ``<run_root>/<dataset>/<run name>/test_captions.csv``.
    """
    info = get_info(dataset)
    path = caption_file(dataset, root)
    records = caption_records(dataset, root, seed)
    train = _limit(select_split(records, exp.train_split, path), exp.limit_train)
    test = _limit(select_split(records, exp.test_split, path), exp.limit_test)
    image_dir = find_image_dir(path)
    device = pick_device(device)
    bundle = load_model(run.encoder, pretrained=run.pretrained, device=device)
    out_dir = Path(run_root) / info.name / run.name
    cache = embedding_cache()
    cfg = exp.train_config(run.frozen)
    init = None
    if not run.frozen and cfg.warm_start:
        frozen_dir = Path(run_root) / info.name / dataclasses.replace(run, frozen=True).name / "captioner"
        if not (frozen_dir / "captioner.json").exists():
            raise ConfigError(f"warm_start needs the frozen-encoder run of {run.encoder_run!r} first ({frozen_dir})")
        init = load_captioner(frozen_dir)
    trained = train_captioner(bundle, train, image_dir, cfg, out_dir, resume=True, cache=cache, seed=seed,
                              source=str(path), device=device, init=init)
    t0 = time.perf_counter()
    generated = caption_images(trained, test, image_dir, cfg.decode, cache=cache, seed=seed)
    t_decode = time.perf_counter() - t0
    ids = [r.filename for r in test]
    t0 = time.perf_counter()
    scored, n_degenerate = for_scoring(generated)
    if n_degenerate:
        warnings.warn(f"{run.name}: {n_degenerate} of {len(generated)} generated captions have no words; "
                      f"scored as {NO_WORDS!r} (matches nothing)")
    evaluation = evaluate_captions(dict(zip(ids, scored)), {r.filename: r.captions for r in test},
                                   metrics=exp.metrics, source=str(path))
    t_score = time.perf_counter() - t0
    captions = pd.DataFrame({"filename": ids, "generated": generated,
                             "references": [" | ".join(r.captions) for r in test]})
    with atomic_path(out_dir / "test_captions.csv") as tmp:
        captions.to_csv(tmp, index=False)
    note = f"{'frozen' if run.frozen else 'trained'} encoder {run.encoder_run}" + \
           (", started from the frozen run" if init is not None else "") + f"; decoder {cfg.model.decoder}; " \
           f"{cfg.decode.method} decoding" + ("; fallback preset encoder" if run.fallback else "") + \
           (f"; {n_degenerate} word-less captions scored as {NO_WORDS!r}" if n_degenerate else "")
    results = evaluation.to_results(model=run.name, dataset=info.title, seed=seed, profile=profile, note=note)
    times = {"model": run.name, "dataset": info.title, "embed_s": trained.embed_seconds,
             "train_s": trained.seconds, "decode_s": t_decode, "score_s": t_score,
             "train_images": len(train), "test_images": len(test), "wordless_captions": n_degenerate,
             "steps": int(json.loads((out_dir / "captioner" / "captioner.json").read_text())["extra"]["steps"]),
             "warm_started": init is not None}
    return {"run": run, "trained": trained, "captions": captions, "evaluation": evaluation, "results": results,
            "times": times, "records": test, "image_dir": image_dir}


def caption_records(dataset: str, root=None, seed: int = 0) -> list:
    """The caption records of a registry dataset; S2LCD files without ``split`` fields get
    RSDiX's 80/10/10 split by scene (as :func:`rsdix.s2.dataset.read_s2lcd` assigns it)."""
    if get_info(dataset).name == "s2lcd":
        return read_s2lcd(root, seed=seed)
    return read_captions_dropping_empty(caption_file(dataset, root))


def missing_reason(dataset: str, root=None) -> str | None:
    """Why ``dataset`` cannot be trained on under ``root`` (no caption file, or captions whose
    images are absent, e.g. a caption-only copy), or ``None`` when it can."""
    try:
        path = caption_file(dataset, root)
    except DataError as exc:
        return str(exc)
    records = caption_records(dataset, root)   # S2LCD as released has no split fields: not a reason
    if records and not (find_image_dir(path) / records[0].filename).exists():
        return f"{path}: the images of {get_info(dataset).title} are not there (only the captions)"
    return None


def run_experiment(exp: CaptioningExperiment, runs: Sequence[CaptionRun], root=None, run_root=None,
                   seed: int = 0, profile: str = "", device: str | None = None,
                   results: str | os.PathLike | None = None) -> list[dict]:
    """:func:`run_captioning` for every dataset and run (``times["total_s"]`` added), printing one
    line per run (corpus CIDEr and BLEU-4, wall-clock seconds).

    A dataset absent under the data root is skipped with one line saying why; with ``results``
    (a results table path) each run's rows are appended as soon as it finishes, so a failure in
    a later run loses nothing earlier."""
    outputs = []
    for dataset in exp.datasets:
        reason = missing_reason(dataset, root)
        if reason:
            log.warning(f"{dataset}: skipped: {reason}")
            continue
        for run in runs:
            t0 = time.perf_counter()
            out = run_captioning(run, exp, dataset, root=root, run_root=run_root, seed=seed, profile=profile,
                                 device=device)
            out["times"]["total_s"] = time.perf_counter() - t0
            if results is not None:
                append_results(out["results"], results)
            outputs.append(out)
            log.info(f"{out['run'].name} on {out['times']['dataset']}: CIDEr {out['evaluation'].value('CIDEr'):.3f}, "
                     f"BLEU-4 {out['evaluation'].value('BLEU-4'):.3f} (corpus) in {out['times']['total_s']:.0f} s")
            release_all_but_best(outputs)
    return outputs


def release_all_but_best(outputs: Sequence[dict]) -> dict:
    """Keep the trained captioner (with its encoder) of the best run so far only, by corpus CIDEr
    as :func:`rsdix.captioning.caption_report.best_output` picks it (notebook 04 decodes again with that
    one alone); the others' become ``None``. Paper-profile captioners (GPT-2 plus RSDiX's 40-token
    MLP mapper: 600M parameters, 2.5 GB each) do not fit in memory eight at a time."""
    best = max(outputs, key=lambda o: o["evaluation"].value("CIDEr"))
    freed = False
    for out in outputs:
        if out is not best and out.get("trained") is not None:
            out["trained"], freed = None, True
    if freed:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return best
