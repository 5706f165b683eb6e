"""The model zoo: every public remote-sensing CLIP checkpoint as data (``zoo.yaml`` beside this
module), checked at load, with where each is published, how to fetch it and how to load it.

    entry = get_entry("RemoteCLIP-ViT-B-32")      # arch ViT-B-32-quickgelu, format state_dict, ...
    path = fetch("RemoteCLIP-ViT-B-32")            # <weights root>/checkpoints/RemoteCLIP-ViT-B-32.pt
    bundle = load_zoo_model("RemoteCLIP-ViT-B-32") # or load_model("zoo:RemoteCLIP-ViT-B-32")

Weights live in ``<weights root>/checkpoints/`` (:func:`rsdix.paths.weights_root`: the repository
root, or ``$RSDIX_WEIGHTS_ROOT``); ``rsdix zoo get NAME`` downloads one on a machine with
internet and, offline, says in one line the URL and the exact path to put it.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import open_clip
import torch

from rsdix.data.files import read_yaml
from rsdix.errors import ConfigError, DataError, OfflineError
from rsdix.log import quiet_messages, starts_with
from rsdix.models.bundle import ModelBundle, quiet_loading
from rsdix.models.export import CLIP_MEAN, CLIP_STD, hf_to_open_clip
from rsdix.models.formats import load_checkpoint_file, load_hf_bundle, match_problem, read_state_dict
from rsdix.paths import weights_root
from rsdix.utils import file_sha256, hub_reachable

ZOO_FILE = Path(__file__).resolve().parent / "zoo.yaml"
FORMATS = ("state_dict", "training_checkpoint", "safetensors", "transformers", "open_clip_hub",
           "lightning_hf_clip", "longclip")
FOLDER_FORMATS = ("transformers", "open_clip_hub")
NORMALISATION = {"clip": (CLIP_MEAN, CLIP_STD), "half": ((0.5,) * 3, (0.5,) * 3)}
LIGHTNING_PREFIX = "_student."   # RSDiXClip keeps its transformers CLIPModel as `_student`


@dataclass(frozen=True)
class Published:
    """A number someone published for a checkpoint: where, and under which protocol."""
    dataset: str
    task: str
    metric: str
    value: float
    source: str
    protocol: str = ""


@dataclass(frozen=True)
class ZooEntry:
    """One checkpoint of ``zoo.yaml`` (the keys are explained at the top of that file)."""
    name: str
    family: str
    title: str
    format: str
    arch: str
    local: str
    image_size: int
    mean: tuple
    std: tuple
    source: str
    hub: str = ""
    file: str = ""
    url: str = ""
    member: str = ""
    size_mb: float | None = None
    sha256: str = ""
    init: str = ""
    trained_on: tuple = ()
    licence: str = ""
    notes: str = ""
    published: tuple = ()

    @property
    def where(self) -> str:
        """The hub id (and file) or the URL it is published at."""
        if self.hub:
            return f"hf:{self.hub}" + (f"/{self.file}" if self.file else "")
        return self.url

    @property
    def download_url(self) -> str:
        """A URL a browser or ``curl`` fetches the file from (a folder's page for folder formats)."""
        if self.hub and self.format in FOLDER_FORMATS:
            return f"https://huggingface.co/{self.hub}/tree/main"
        if self.hub:
            return f"https://huggingface.co/{self.hub}/resolve/main/{self.file}"
        return self.url

    @property
    def loadable(self) -> bool:
        return self.format != "longclip"


def _fail(name: str, key: str, problem: str):
    raise ConfigError(f"{ZOO_FILE.name}: {name}.{key}: {problem}")


def _normalisation(name: str, key: str, value) -> tuple:
    if isinstance(value, str):
        if value not in NORMALISATION:
            _fail(name, key, f"{value!r} is not one of {sorted(NORMALISATION)} or a list of 3 numbers")
        return NORMALISATION[value][0 if key == "mean" else 1]
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        _fail(name, key, f"{value!r} must be 3 numbers")
    return tuple(float(v) for v in value)


def _published(name: str, items) -> tuple:
    if not isinstance(items, list):
        _fail(name, "published", "must be a list (empty: none published)")
    out = []
    known = {f.name for f in dataclasses.fields(Published)}
    for i, item in enumerate(items):
        where = f"published[{i}]"
        if not isinstance(item, dict):
            _fail(name, where, "must be a mapping")
        if set(item) - known:
            _fail(name, where, f"unknown key(s) {sorted(set(item) - known)}")
        for key in ("dataset", "task", "metric", "value", "source"):
            if item.get(key) in (None, ""):
                _fail(name, f"{where}.{key}", "missing")
        if not isinstance(item["value"], (int, float)) or isinstance(item["value"], bool):
            _fail(name, f"{where}.value", f"{item['value']!r} is not a number")
        out.append(Published(**{k: (float(v) if k == "value" else str(v)) for k, v in item.items()}))
    return tuple(out)


def parse_entry(name: str, raw) -> ZooEntry:
    """One ``zoo.yaml`` entry as a :class:`ZooEntry`; a bad key is one ConfigError naming entry and key."""
    if not isinstance(raw, dict):
        _fail(name, "(entry)", "must be a mapping of keys")
    fields = {f.name: f for f in dataclasses.fields(ZooEntry)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        _fail(name, unknown[0], f"unknown key; keys: {', '.join(k for k in fields if k != 'name')}")
    required = [f for f, spec in fields.items() if f != "name" and spec.default is dataclasses.MISSING
                and spec.default_factory is dataclasses.MISSING]
    for key in required + ["published"]:
        if key not in raw:
            _fail(name, key, "missing")
    values = dict(raw)
    for key in ("family", "title", "format", "arch", "local", "source", "hub", "file", "url", "member", "sha256",
                "init", "licence", "notes"):
        if key in values and not isinstance(values[key], str):
            _fail(name, key, f"{values[key]!r} must be text")
    if values["format"] not in FORMATS:
        _fail(name, "format", f"{values['format']!r} is not one of {FORMATS}")
    if not values.get("hub") and not values.get("url"):
        _fail(name, "hub", "give hub (a Hugging Face repo) or url")
    if values.get("hub") and values["format"] not in FOLDER_FORMATS and not values.get("file"):
        _fail(name, "file", "the file in the hub repo is missing")
    if not isinstance(values["image_size"], int) or values["image_size"] < 1:
        _fail(name, "image_size", f"{values['image_size']!r} must be a positive integer")
    if values.get("size_mb") is not None and not isinstance(values["size_mb"], (int, float)):
        _fail(name, "size_mb", f"{values['size_mb']!r} must be a number (null: not published)")
    if values.get("sha256") and (len(values["sha256"]) != 64 or set(values["sha256"]) - set("0123456789abcdef")):
        _fail(name, "sha256", "must be 64 lower-case hex digits")
    trained = values.get("trained_on", [])
    if not isinstance(trained, list) or not all(isinstance(t, str) for t in trained):
        _fail(name, "trained_on", "must be a list of dataset names")
    if values["format"] not in ("transformers",) and values["arch"] not in open_clip.list_models():
        _fail(name, "arch", f"{values['arch']!r} is not an open_clip model name")
    values.update(mean=_normalisation(name, "mean", values["mean"]), std=_normalisation(name, "std", values["std"]),
                  trained_on=tuple(trained), published=_published(name, values["published"]))
    return ZooEntry(name=name, **values)


@lru_cache(maxsize=None)
def zoo(path: str | Path = ZOO_FILE) -> dict[str, ZooEntry]:
    """Every entry of the zoo file, checked."""
    data = read_yaml(path, "model zoo file")
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{Path(path).name}: must map checkpoint names to entries")
    return {str(name): parse_entry(str(name), raw) for name, raw in data.items()}


def get_entry(name: str) -> ZooEntry:
    entries = zoo()
    name = name[len("zoo:"):] if name.startswith("zoo:") else name
    if name not in entries:
        raise ConfigError(f"zoo: unknown checkpoint {name!r}; known: {', '.join(entries)}")
    return entries[name]


def checkpoints_dir(root: str | Path | None = None) -> Path:
    """``<weights root>/checkpoints``: where zoo weights live."""
    return (Path(root) if root is not None else weights_root()) / "checkpoints"


def local_path(entry: ZooEntry | str, root: str | Path | None = None) -> Path:
    entry = get_entry(entry) if isinstance(entry, str) else entry
    return checkpoints_dir(root) / entry.local


def is_present(entry: ZooEntry | str, root: str | Path | None = None) -> bool:
    entry = get_entry(entry) if isinstance(entry, str) else entry
    path = local_path(entry, root)
    if entry.format in FOLDER_FORMATS:
        return path.is_dir() and any(path.iterdir())
    return path.is_file()


def list_line(entry: ZooEntry, root: str | Path | None = None) -> str:
    """One line of ``rsdix zoo list``: name, architecture, format, size, present or not, source."""
    size = f"{entry.size_mb:g} MB" if entry.size_mb else "? MB"
    mark = "present" if is_present(entry, root) else "-"
    return f"{entry.name:26s} {entry.arch:26s} {entry.format:19s} {size:>8s} {mark:7s} {entry.where}"




def how_to_get(entry: ZooEntry, dest: Path) -> str:
    """The one line saying what to download and where to put it."""
    if entry.format in FOLDER_FORMATS:
        return f"download every file of {entry.download_url} into {dest}/"
    if entry.member:
        return f"download {entry.download_url}, unzip it and put {entry.member} at {dest}"
    return f"download {entry.download_url} and put it at {dest}"


def fetch(name: str, root: str | Path | None = None, force: bool = False) -> Path:
    """Download a zoo checkpoint to :func:`local_path` (kept when present, unless ``force``);
    offline, or for a file that needs a browser, one OfflineError line with the URL and the path."""
    entry = get_entry(name)
    dest = local_path(entry, root)
    if is_present(entry, root) and not force:
        return dest
    host = urllib.parse.urlparse(entry.download_url).hostname or "huggingface.co"
    if "drive.google.com" in host:
        raise OfflineError(f"{entry.name}: published in a Google Drive folder (no scripted download): "
                           f"{how_to_get(entry, dest)}")
    if not hub_reachable(host):
        raise OfflineError(f"{entry.name}: no internet here: {how_to_get(entry, dest)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if entry.hub:
        _fetch_hub(entry, dest)
    else:
        _fetch_url(entry, dest)
    if entry.sha256 and dest.is_file() and file_sha256(dest) != entry.sha256:
        bad = dest.with_suffix(dest.suffix + ".bad")
        dest.rename(bad)
        raise DataError(bad, f"SHA-256 differs from the zoo's {entry.sha256[:12]}...: not the published file")
    return dest


def _fetch_hub(entry: ZooEntry, dest: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download  # network: only when downloading

    if entry.format in FOLDER_FORMATS:
        snapshot_download(entry.hub, local_dir=str(dest))
        return
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        got = hf_hub_download(entry.hub, entry.file, local_dir=tmp)
        shutil.move(got, dest)


def _fetch_url(entry: ZooEntry, dest: Path) -> None:
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        archive = Path(tmp) / Path(urllib.parse.urlparse(entry.url).path).name
        urllib.request.urlretrieve(entry.url, archive)   # noqa: S310 - the zoo's own https URLs
        if not entry.member:
            shutil.move(archive, dest)
            return
        with zipfile.ZipFile(archive) as z:
            if entry.member not in z.namelist():
                raise DataError(archive, f"no {entry.member} inside (the zoo entry {entry.name} names it)")
            with z.open(entry.member) as src, open(Path(tmp) / "member", "wb") as out:
                shutil.copyfileobj(src, out)
        shutil.move(Path(tmp) / "member", dest)


# ----------------------------------------------------------------------------- loading

@contextmanager
def building(arch: str) -> Iterator[None]:
    """While a zoo architecture is built to receive its weights: no open_clip "No pretrained
    weights loaded" warning (they are loaded next), other messages as :func:`quiet_loading`."""
    with quiet_loading(arch), quiet_messages({"": starts_with(f"No pretrained weights loaded for model '{arch}'")}):
        yield


def read_zoo_weights(entry: ZooEntry, path: Path) -> dict[str, torch.Tensor]:
    """The open_clip state dict in a weights file of ``entry``'s format (read with
    ``weights_only=True``; ``module.`` prefixes dropped; Lightning keys of a transformers CLIPModel
    mapped to open_clip's)."""
    if entry.format == "longclip":
        raise DataError(path, f"{entry.name} has a LongCLIP text tower (248-token positions, "
                              f"positional_embedding_res) that open_clip and rsdix cannot load")
    state = read_state_dict(path)
    if entry.format == "lightning_hf_clip":
        student = {k[len(LIGHTNING_PREFIX):]: v for k, v in state.items() if k.startswith(LIGHTNING_PREFIX)}
        state = hf_to_open_clip(student or state)
    return state


def check_zoo_file(name: str, path: str | Path) -> str | None:
    """Whether the file at ``path`` fits entry ``name``: its keys and shapes against the entry's
    architecture built on the ``meta`` device (no memory, seconds even for ViT-H-14). None when it
    fits, else the problem."""
    entry = get_entry(name)
    if entry.format in FOLDER_FORMATS:
        raise DataError(path, f"{entry.name} is a {entry.format} folder: load it (load_zoo_model) to check it")
    if not Path(path).is_file():
        raise DataError(path, f"no weights file: rsdix zoo get {entry.name}")
    state = read_zoo_weights(entry, Path(path))
    with building(entry.arch), torch.device("meta"):
        model = open_clip.create_model(entry.arch, device="meta")
    return match_problem(model, state)


def load_zoo_model(name: str, root: str | Path | None = None, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> ModelBundle:
    """A zoo checkpoint from :func:`local_path` as a :class:`ModelBundle` (its architecture,
    activation, resolution and normalisation from the zoo); absent, one OfflineError line saying
    where to get it and where to put it."""
    entry = get_entry(name)
    path = local_path(entry, root)
    if not is_present(entry, root):
        raise OfflineError(f"{entry.name}: weights not found at {path}: run `rsdix zoo get {entry.name}` "
                           f"on a machine with internet, or {how_to_get(entry, path)}")
    if entry.format == "transformers":
        bundle = load_hf_bundle(path, device)
    elif entry.format == "open_clip_hub":
        bundle = _load_open_clip_hub(entry, path, device, precision)
    else:
        bundle = _load_state(entry, path, device, precision)
    bundle.name = entry.name
    return bundle


def _load_state(entry: ZooEntry, path: Path, device, precision: str) -> ModelBundle:
    kwargs = {"image_mean": entry.mean, "image_std": entry.std}
    if entry.format in ("state_dict", "training_checkpoint", "safetensors"):
        with building(entry.arch):
            return load_checkpoint_file(entry.arch, path, None, device, precision, kwargs)
    state = read_zoo_weights(entry, path)
    with building(entry.arch):
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            entry.arch, pretrained=None, device=device, precision=precision, **kwargs)
    problem = match_problem(model, state)
    if problem:
        raise DataError(path, f"checkpoint does not match architecture {entry.arch!r}: {problem}")
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    return ModelBundle(model, open_clip.get_tokenizer(entry.arch), preprocess_train, preprocess_val, name=entry.name,
                       pretrained=str(path), model_config=open_clip.get_model_config(entry.arch) or {},
                       preprocess_config=dict(getattr(model.visual, "preprocess_cfg", {}) or {}))


def _load_open_clip_hub(entry: ZooEntry, path: Path, device, precision: str) -> ModelBundle:
    spec = f"local-dir:{path}"
    try:
        with building(entry.arch):
            model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
                spec, device=device, precision=precision, weights_only=True)
        tokenizer = open_clip.get_tokenizer(spec)
    except (OSError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise DataError(path, f"not a loadable open_clip hub folder for {entry.arch}: {first}") from exc
    config = json.loads((path / "open_clip_config.json").read_text())
    return ModelBundle(model, tokenizer, preprocess_train, preprocess_val, name=entry.name, pretrained=str(path),
                       model_config=config.get("model_cfg", {}), preprocess_config=config.get("preprocess_cfg", {}))


def published_rows(names=None) -> list[dict]:
    """The zoo's published numbers as rows (model, dataset, task, metric, published, protocol, source)."""
    out = []
    for entry in zoo().values():
        if names is not None and entry.name not in names:
            continue
        out += [{"model": entry.name, "dataset": p.dataset, "task": p.task, "metric": p.metric, "published": p.value,
                 "protocol": p.protocol, "ref_source": p.source} for p in entry.published]
    return out


def zoo_markdown() -> str:
    """The zoo table of docs/evaluation.md, generated from zoo.yaml (a test keeps the page equal)."""
    lines = ["| checkpoint | open_clip architecture | format | input | trained on (leakage caveats) | where | "
             "published numbers |", "|" + "---|" * 7]
    for e in zoo().values():
        norm = "CLIP" if e.mean == NORMALISATION["clip"][0] else "0.5" if e.mean == NORMALISATION["half"][0] else "own"
        lines.append(f"| `{e.name}` | `{e.arch}` | {e.format} | {e.image_size} px, mean/std {norm} | "
                     f"{', '.join(e.trained_on) or '-'} | {e.where} | {len(e.published)} |")
    return "\n".join(lines) + "\n"
