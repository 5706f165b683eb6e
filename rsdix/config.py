"""Configs: dataclasses loaded from YAML through one door, validated at load.

    cfg = load("train", "cpu")                        # rsdix/configs/train/cpu.yaml -> ClipTrainConfig
    cfg = load("train", "paper_dino", loop__steps=10)  # any file of the area, by name
    cfg = load("evaluate", "my/eval.yaml")            # or a path
    cfg = load("train", "cpu", overrides=["loop.steps=100", "loss.method=infonce"])   # command-line form

Every stage declares its config dataclass; :data:`AREAS` maps each config folder
(``rsdix/configs/<area>/``) to it. Unknown keys are an error (a typo must not silently fall
back to a default); nested dataclass fields are built from nested mappings; ``base:`` in a
YAML file names another YAML file (relative to it) whose values this one overrides.

Values are checked when loaded, naming the file and key: types (an ``int`` field takes
no ``true`` or ``4.5``), enumerations (``typing.Literal`` hints), bounds declared with
:func:`option` (``steps: int = option(1000, min=1)``), and a dataclass's own
``validate()`` method for rules across fields (raise :class:`ConfigError` naming the key).
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import os
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import yaml

from rsdix.errors import ConfigError
from rsdix.log import get_logger
from rsdix.paths import is_dry_run

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# config folder -> "module:Dataclass" (resolved when loaded, so this module imports no stage)
AREAS = {
    "train": "rsdix.training.clip:ClipTrainConfig",
    "methods": "rsdix.studies.methods:MethodsConfig",
    "captioning": "rsdix.captioning.experiment:CaptioningExperiment",
    "evaluate": "rsdix.evaluation.suite:EvalConfig",
    "caption_metrics": "rsdix.studies.caption_metrics.study:CaptionMetricsConfig",
    "s2lcd": "rsdix.s2.construction:S2LCDConfig",
    "efficiency": "rsdix.studies.efficiency.design:EfficiencyConfig",
    "leakage": "rsdix.evaluation.leakage_audit:LeakageConfig",
}
# area names before the studies moved to rsdix.studies; still accepted, with a one-line notice
RENAMED_AREAS = {"train_study": "methods", "metric_stats": "caption_metrics"}


def option(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING, min: float | None = None,
           max: float | None = None, min_exclusive: bool = False, choices: Sequence | None = None):
    """A dataclass field with bounds or choices that :func:`load` checks (``None`` always passes)."""
    meta = {k: v for k, v in (("min", min), ("max", max), ("choices", choices)) if v is not None}
    meta["min_exclusive"] = min_exclusive
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"check": meta})


def current_area(area: str) -> str:
    """``area``, or its new name when it is one of :data:`RENAMED_AREAS` (saying so once in the log)."""
    if area in RENAMED_AREAS:
        new = RENAMED_AREAS[area]
        get_logger(__name__).warning(f"config area {area!r} is now called {new!r}; loading {new!r}")
        return new
    return area


def config_class(area: str) -> type:
    """The dataclass of config area ``area`` (a folder under ``rsdix/configs``)."""
    area = current_area(area)
    if area not in AREAS:
        raise ConfigError(f"config area {area!r} unknown; known: {sorted(AREAS)}")
    module, name = AREAS[area].split(":")
    return getattr(importlib.import_module(module), name)


def config_names(area: str) -> list[str]:
    """The config names of ``area`` (its YAML files, without ``.yaml``)."""
    return sorted(p.stem for p in (CONFIG_DIR / area).glob("*.yaml"))


def config_path(area: str, profile_or_path: str | os.PathLike) -> Path:
    """``rsdix/configs/<area>/<name>.yaml`` for a config name, else the path itself."""
    area = current_area(area)
    text = str(profile_or_path)
    if not text.endswith((".yaml", ".yml")) and os.sep not in text and "/" not in text:
        path = CONFIG_DIR / area / f"{text}.yaml"
        if not path.exists():
            raise ConfigError(f"config {text!r} not found for {area}: known names {config_names(area)} "
                              f"(or give a path to a YAML file)")
        return path
    return Path(profile_or_path)


def parse_overrides(items: Iterable[str]) -> dict:
    """``["loop.steps=100", "loss.method=infonce"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. loop.steps=100)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML "
                              f"({' '.join(str(exc).split())[:120]})") from None
        if any(not part.strip() for part in key.split(".")):
            raise ConfigError(f"override {item!r}: a blank part in the key {key!r} (e.g. loop.steps=100)")
        out = deep_update(out, nest({key: parsed}, sep="."))
    return out


def nest(flat: dict, sep: str = "__") -> dict:
    """``{"loop__steps": 5}`` -> ``{"loop": {"steps": 5}}`` (keys without ``sep`` unchanged)."""
    out: dict = {}
    for key, value in flat.items():
        parts = key.split(sep)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load(area: str, profile_or_path: str | os.PathLike | dict = "cpu", overrides: Iterable[str] = (),
         **kwargs: Any):
    """The one door: config ``area`` from a profile name, a YAML path or a dict, then overrides.

    ``overrides`` are command-line ``section.key=value`` strings; keyword overrides are nested
    dicts or ``section__key=value``. The result is validated (types, choices, bounds, ``validate()``).
    """
    area = current_area(area)
    cls = config_class(area)
    source = profile_or_path if isinstance(profile_or_path, dict) else config_path(area, profile_or_path)
    extra = deep_update(parse_overrides(overrides), nest(kwargs))
    if is_dry_run() and not isinstance(source, dict):  # explicit overrides still win over the caps
        extra = deep_update(dry_run_caps(area, source), extra)
    return load_config(cls, source, **extra)


DRY_RUN_CAPS = CONFIG_DIR / "dry_run.yaml"


def dry_run_caps(area: str, source: str | os.PathLike) -> dict:
    """The caps ``rsdix/configs/dry_run.yaml`` sets for ``area`` (step counts, image counts and the
    CPU batch size), for a paper config (``paper*.yaml`` of that area) only; ``{}`` for others."""
    path = Path(source).resolve()
    if path.parent != (CONFIG_DIR / area).resolve() or not path.stem.startswith("paper"):
        return {}
    caps = read_yaml(DRY_RUN_CAPS).get("caps", {})
    return dict(caps.get(area) or {})


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping, following ``base:`` includes."""
    path = Path(path)
    if not path.exists() and not path.is_absolute() and (CONFIG_DIR / path).exists():
        path = CONFIG_DIR / path
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    base = data.pop("base", None)
    if base:
        merged = read_yaml((path.parent / base) if not Path(base).is_absolute() else base)
        inherited = merged.get(DEPARTURES, []) if isinstance(merged.get(DEPARTURES), list) else []
        merged = deep_update(merged, data)
        if inherited and isinstance(data.get(DEPARTURES), list):   # a config's departures add to its base's
            merged[DEPARTURES] = inherited + [d for d in data[DEPARTURES] if d not in inherited]
        return merged
    return data


def deep_update(base: dict, new: dict) -> dict:
    """``base`` with ``new`` merged in, nested mappings merged key by key (neither is changed)."""
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys and bad values.

    ``where`` names the source (a file); errors read ``<where>: <key>: <problem>``.
    """
    return _from_dict(cls, data, where, "")


def _from_dict(cls, data, where: str, prefix: str):
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: {prefix + ': ' if prefix else ''}unknown key(s) {sorted(unknown)} for "
                          f"{cls.__name__}; known: {sorted(fields)}")
    kwargs = {}
    for key, value in data.items():
        key_path = f"{prefix}.{key}" if prefix else key
        if value is None and not _allows_none(hints.get(key), fields[key]):
            raise ConfigError(f"{where}: {key_path}: no value given (null or an empty override); "
                              f"expected {getattr(hints.get(key), '__name__', hints.get(key))}")
        value = _coerce(hints.get(key), value, where, key_path)
        _check(fields[key].metadata.get("check"), value, where, key_path)
        kwargs[key] = value
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        try:
            obj.validate()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {prefix + '.' if prefix else ''}{exc}") from None
    return obj


def _allows_none(hint, field) -> bool:
    """A field may be set to null: its type says ``| None`` (or is unknown) or its default is None."""
    if hint is None or hint is typing.Any or field.default is None:
        return True
    origin = typing.get_origin(hint)
    union = origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>")
    return union and type(None) in typing.get_args(hint)


def _check(check: dict | None, value, where: str, key: str) -> None:
    if not check or value is None:
        return
    if "choices" in check and value not in check["choices"]:
        raise ConfigError(f"{where}: {key}: {value!r} is not one of {list(check['choices'])}")
    low, high = check.get("min"), check.get("max")
    if low is not None and (value < low or (check.get("min_exclusive") and value == low)):
        raise ConfigError(f"{where}: {key}: {value!r} must be {'>' if check.get('min_exclusive') else '>='} {low}")
    if high is not None and value > high:
        raise ConfigError(f"{where}: {key}: {value!r} must be <= {high}")


def _coerce(hint, value, where: str, key: str):
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, where, key)
        return value
    if origin is typing.Literal:
        # YAML reads no/yes/off/on as booleans: accept them back as the words where those are choices
        if isinstance(value, bool):
            words = [a for a in args if isinstance(a, str) and yaml.safe_load(a) is value]
            value = words[0] if words else value
        if value not in args:
            raise ConfigError(f"{where}: {key}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {value!r}")
        return _from_dict(hint, value, where, key)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}") from exc
        if math.isnan(number):
            raise ConfigError(f"{where}: {key}: expected a number, got NaN")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: {key}: expected a finite number, got {value!r}")
        return number
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}") from exc
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
    if hint is str and not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key}: expected a list, got {value!r} (write [{value}])")
        return tuple(value) if (hint is tuple or origin is tuple) else list(value)
    return value


def load_config(cls: type[T], source: str | os.PathLike | dict | None = None, **overrides: Any) -> T:
    """Load dataclass ``cls`` from a YAML path or dict, then apply keyword overrides. A
    ``departures:`` list (see :func:`departures`) is checked against ``cls`` and set aside."""
    if source is None:
        data, where = {}, cls.__name__
    elif isinstance(source, dict):
        data, where = dict(source), cls.__name__
    else:
        data, where = read_yaml(source), str(source)
    data = deep_update(data, overrides)
    check_departures(cls, data.pop(DEPARTURES, None) or [], where)
    return from_dict(cls, data, where)


# A paper config's flagged departures from the published recipe (../shared/docs/METHODS.md):
#   departures:
#     - {key: data.datasets, published: "...", ours: "...", why: "..."}
# ``key`` is a dotted key of the config (or ``-`` for what no key holds, such as a run no notebook
# makes); docs/paper.md section 8 lists every one (tests/test_config.py checks both).
DEPARTURES = "departures"
DEPARTURE_FIELDS = ("key", "published", "ours", "why")


def check_departures(cls, entries, where: str) -> list[dict]:
    """``entries`` as a list of departures, each naming a real key of ``cls``; a malformed one is
    one ConfigError naming the file and the entry."""
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: {DEPARTURES}: expected a list of mappings, got {entries!r}")
    for i, entry in enumerate(entries):
        at = f"{where}: {DEPARTURES}[{i}]"
        if not isinstance(entry, dict) or set(entry) - set(DEPARTURE_FIELDS) or \
                any(not isinstance(entry.get(k), str) or not entry.get(k).strip() for k in DEPARTURE_FIELDS):
            raise ConfigError(f"{at}: expected a mapping with text for each of {list(DEPARTURE_FIELDS)}, got {entry!r}")
        if entry["key"] != "-" and not _has_key(cls, entry["key"]):
            raise ConfigError(f"{at}: key {entry['key']!r} is not a key of {cls.__name__}")
    return entries


def _has_key(cls, dotted: str) -> bool:
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls):
            return False
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return False
        hint = typing.get_type_hints(cls).get(part)
        cls = hint if dataclasses.is_dataclass(hint) else None
    return True


def departures(area: str, profile_or_path: str | os.PathLike = "paper") -> list[dict]:
    """The departures a config file flags (its base's included), checked: one dict per departure."""
    area = current_area(area)
    path = config_path(area, profile_or_path)
    return check_departures(config_class(area), read_yaml(path).get(DEPARTURES) or [], str(path))


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
