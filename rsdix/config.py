"""Configs as dataclasses, loadable from YAML (or dicts), with strict key checking.

    @dataclass
    class TrainConfig:
        lr: float = 5e-4
        ...
    cfg = load_config(TrainConfig, "configs/train/cpu_rsdix.yaml", lr=1e-4)

Unknown keys are an error (a typo must not silently fall back to a default);
nested dataclass fields are built from nested mappings; ``base:`` in a YAML file
names another YAML file (relative to it) whose values this one overrides.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rsdix.errors import ConfigError

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


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
        merged = _deep_update(merged, data)
        return merged
    return data


def _deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} for {cls.__name__}; "
                          f"known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        kwargs[key] = _coerce(hint, value, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(hint, value, where):
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, where)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where)
    if hint in (float,) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
    if hint is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from exc
    if (hint is tuple or origin is tuple) and isinstance(value, list):
        return tuple(value)
    return value


def load_config(cls: type[T], source: str | os.PathLike | dict | None = None, **overrides: Any) -> T:
    """Load dataclass ``cls`` from a YAML path or dict, then apply keyword overrides."""
    if source is None:
        data, where = {}, cls.__name__
    elif isinstance(source, dict):
        data, where = dict(source), cls.__name__
    else:
        data, where = read_yaml(source), str(source)
    data = _deep_update(data, overrides)
    return from_dict(cls, data, where)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_plain(to_dict(cfg)), sort_keys=False))
    return path


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
