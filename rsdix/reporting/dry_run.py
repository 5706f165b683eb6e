"""The dry run of the paper profile: ``rsdix reproduce --profile paper --dry-run``
(``make reproduce PROFILE=paper DRY_RUN=1``).

It executes every line a GPU box would run for ``PROFILE=paper``, offline, on this machine:

1. :func:`prepare` makes the stand-ins under ``runs/<profile>-dry/standins/``: random-weight
   OpenAI CLIP, RemoteCLIP and GPT-2 in the hub's formats (:mod:`rsdix.reporting.standins`) and a
   data root of real and stand-in datasets (:mod:`rsdix.reporting.standin_data`);
2. :func:`environment` points the notebooks' kernel there (``HF_HUB_CACHE`` + ``HF_HUB_OFFLINE``,
   ``RSDIX_DATA_ROOT``, ``RSDIX_WEIGHTS_ROOT``) and sets ``RSDIX_DRY_RUN=1``: paper configs then
   get the caps of ``rsdix/configs/dry_run.yaml`` (:func:`rsdix.config.load`) and
   :class:`rsdix.paths.RunDirs` writes under ``runs/<profile>-dry/`` only;
3. :func:`run` runs the six notebooks through :func:`rsdix.reporting.reproduce.run` (every table
   row they write carries a ``dry_run`` column, :func:`rsdix.results.write_table`), then marks every
   markdown table, figure, ``RESULTS.md`` and executed notebook of the run with :data:`MARK`
   (the notebooks with :data:`BANNER` after their title).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import nbformat
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from rsdix import config
from rsdix.log import get_logger
from rsdix.paths import DRY_RUN_ENV, DRY_RUN_MARK, WEIGHTS_ROOT_ENV, runs_dir
from rsdix.data.synthetic import root_or_synthetic
from rsdix.reporting import reproduce, standin_data, standins
from rsdix.utils import atomic_path

log = get_logger(__name__)

MARK = DRY_RUN_MARK
BANNER = (f"> **{MARK.upper()}.** This notebook ran in the paper profile's dry run "
          "(`make reproduce PROFILE=paper DRY_RUN=1`): the paper configs with step and image counts capped "
          "(`rsdix/configs/dry_run.yaml`), random-weight stand-ins of every pretrained model and stand-in "
          "data. Its numbers mean nothing; it shows that the paper path executes (docs/paper.md section 7).")


def dry_folder(profile: str = "paper") -> Path:
    return runs_dir() / f"{profile}-dry"


def settings() -> dict:
    """The ``standins`` section of ``rsdix/configs/dry_run.yaml`` (image counts of the stand-ins)."""
    return dict(config.read_yaml(config.DRY_RUN_CAPS).get("standins") or {})


def needed_datasets(profile: str = "paper") -> list[str]:
    """Every dataset the profile's configs name: training, captioning, evaluation."""
    train = config.load("train", profile)
    cap = config.load("captioning", profile)
    ev = config.load("evaluate", profile)
    study = config.load("efficiency", profile)   # the study: rsdix study efficiency --profile paper --dry-run
    names = list(train.data.datasets) + list(cap.datasets) + list(ev.zero_shot) + list(ev.retrieval) + \
        list(ev.counting) + list(ev.probe) + ["sydney_captions"] + \
        [r.dataset for r in study.retrieval_specs()] + list(study.zero_shot)   # Sydney: notebooks 02 and 06
    return list(dict.fromkeys(names))


def prepare(profile: str = "paper", data_root: str | os.PathLike | None = None,
            folder: str | os.PathLike | None = None) -> dict:
    """Make (or reuse) the stand-ins; returns the environment for the notebooks' kernel."""
    folder = Path(folder) if folder else dry_folder(profile)
    standin_root = folder / "standins"
    real, _ = root_or_synthetic(data_root, folder / "synthetic-data", "the paper dry run's stand-ins")
    opts = settings()
    rows = standin_data.make_data_root(real, standin_root / "data", needed_datasets(profile), **opts)
    log.info(f"data root {standin_root / 'data'}:")
    for r in rows:
        log.info(f"  {r['dataset']:16s} {r['kind']:9s} {r['images']:6d} images  {r['note']}")
    weights = standins.make_weights(standin_root, standin_data.caption_texts(standin_root / "data"))
    for what, path in weights.items():
        log.info(f"stand-in {what}: {path}")
    manifest = {"mark": MARK, "datasets": rows, "weights": {k: str(v) for k, v in weights.items()},
                "left out": {"RS-M-CLIP (xlm-roberta-base-ViT-B-32 @ laion5b_s13b_b90k)":
                             "no notebook trains train/paper_rsmclip.yaml (it needs translated captions)",
                             **{k: v for k, v in standin_data.NO_STANDIN.items()}}}
    (folder / "standins.json").write_text(json.dumps(manifest, indent=1))
    return environment(standin_root)


def environment(standin_root: str | os.PathLike) -> dict:
    """The variables the notebooks' kernel inherits in a dry run."""
    standin_root = Path(standin_root).resolve()
    env = standins.hub_environment(standin_root / "hf" / "hub")
    env.update({DRY_RUN_ENV: "1", "RSDIX_DATA_ROOT": str(standin_root / "data"),
                WEIGHTS_ROOT_ENV: str(standin_root)})
    return env


def run(profile: str = "paper", data_root: str | os.PathLike | None = None, seed: int = 0, force: bool = False,
        only: list[str] | None = None, kernel: str | None = None) -> pd.DataFrame:
    """Stand-ins, then the notebooks with the paper configs and the caps, then the marks."""
    env = prepare(profile, data_root)
    os.environ.update(env)   # the kernel inherits it (as rsdix.results.SOURCE_ENV)
    try:
        with Pruner(dry_folder(profile)) as pruner:
            times = reproduce.run(profile, data_root=env["RSDIX_DATA_ROOT"], seed=seed, force=force, only=only,
                                  kernel=kernel)
        log.info(f"{pruner.freed / 1e9:.1f} GB of finished runs' checkpoints deleted on the way")
    finally:   # a failed notebook's tables and figures are marked too
        marked = mark_outputs(dry_folder(profile))
        log.info(f"{marked} tables and figures marked {MARK!r} under {dry_folder(profile)}")
    return times


def prune_checkpoints(folder: str | os.PathLike) -> int:
    """Delete what a finished run no longer needs, returning the bytes freed: the resumable
    ``checkpoint.pt`` of a CLIP run whose model notebook 03 saved (``models/<run>/train_log.csv``
    is copied last) and, of a captioning run that wrote its ``test_captions.csv`` (last), the
    checkpoint and the captioner's weights. The paper's models make these 2.4 GB (ViT-B/32 with
    its EMA teacher and AdamW state) and 10 GB (GPT-2 with RSDiX's 40-token MLP mapper: 480M
    parameters) per run, more than a CPU machine's disk holds for 25 runs; a rerun retrains."""
    folder, freed = Path(folder), 0
    done = [(folder / "train" / m.name / "checkpoint.pt") for m in (folder / "models").glob("*")
            if (m / "train_log.csv").exists()]
    for captions in (folder / "captioning").glob("*/*/test_captions.csv"):
        done += [captions.parent / "checkpoint.pt", *captions.parent.glob("captioner/*.safetensors")]
    for path in done:
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except FileNotFoundError:
            pass
    return freed


class Pruner:
    """:func:`prune_checkpoints` every ``every`` seconds in a background thread, and once at exit."""

    def __init__(self, folder: str | os.PathLike, every: float = 2.0):
        self.folder, self.every, self.freed = Path(folder), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(self.every):
            self.freed += prune_checkpoints(self.folder)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.freed += prune_checkpoints(self.folder)


def mark_outputs(folder: str | os.PathLike) -> int:
    """Mark every markdown file and PNG figure under ``folder`` (``figures/`` and the rest) as a
    dry run's; files already marked are left alone. Returns how many were marked now."""
    n = 0
    for path in sorted(Path(folder).rglob("*")):
        if "standins" in path.parts or not path.is_file():
            continue
        if path.suffix == ".md":
            text = path.read_text()
            if MARK not in (text.splitlines() or [""])[0]:
                with atomic_path(path) as tmp:
                    Path(tmp).write_text(f"_{MARK}_\n\n" + text)
                n += 1
        elif path.suffix == ".png":
            n += mark_png(path)
        elif path.suffix == ".ipynb":
            n += mark_notebook(path)
    return n


def mark_notebook(path: Path) -> int:
    """An executed notebook of the dry run gets :data:`BANNER` as a markdown cell after its title
    (once)."""
    nb = nbformat.read(path, as_version=4)
    if any(cell.cell_type == "markdown" and MARK.upper() in cell.source for cell in nb.cells):
        return 0
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(BANNER))
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)
    return 1


def mark_png(path: Path) -> int:
    with Image.open(path) as im:
        if im.info.get("rsdix") == MARK:
            return 0
        im = im.convert("RGB")
    band = max(24, im.height // 18)
    out = Image.new("RGB", (im.width, im.height + band), "white")
    out.paste(im, (0, band))
    ImageDraw.Draw(out).text((8, band // 6), MARK.upper(), fill=(200, 0, 0),
                             font=ImageFont.load_default(size=int(band * 0.7)))
    info = PngInfo()
    info.add_text("rsdix", MARK)
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG", pnginfo=info)
    return 1
