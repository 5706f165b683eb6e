"""The config door: YAML through rsdix.config.load, validated at load, errors naming file and key."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import math
import re

import pytest
import yaml

from rsdix import config
from rsdix.config import load_config, option, parse_overrides, to_dict
from rsdix.errors import ConfigError


@dataclass
class Opt:
    lr: float = 1e-3
    betas: tuple = (0.9, 0.99)


@dataclass
class Cfg:
    name: str = "x"
    steps: int = 10
    opt: Opt = field(default_factory=Opt)


@dataclass
class Checked:
    steps: int = option(10, min=1)
    lr: float = option(1e-3, min=0, min_exclusive=True)
    ratio: float = option(0.5, min=0, max=1)
    precision: Literal["no", "fp16", "bf16"] = "no"
    kind: str = option("a", choices=("a", "b"))
    flag: bool = False
    lo: int = 1
    hi: int = 2

    def validate(self):
        if self.lo > self.hi:
            raise ConfigError(f"lo: {self.lo} is above hi ({self.hi})")


def test_config_yaml_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nsteps: 5\nopt:\n  lr: 1e-4\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nsteps: 7\n")
    cfg = load_config(Cfg, tmp_path / "child.yaml", name="over")
    assert cfg == Cfg(name="over", steps=7, opt=Opt(lr=1e-4))
    assert isinstance(cfg.opt.lr, float)           # "1e-4" from YAML is a float, not a string
    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(to_dict(cfg)))    # a loaded config, written back
    assert load_config(Cfg, tmp_path / "saved.yaml") == cfg


def test_config_unknown_key_names_file(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("stpes: 3\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*unknown key.*stpes"):
        load_config(Cfg, path)
    path.write_text("opt: {lr: fast}\n")
    with pytest.raises(ConfigError, match=r"opt\.lr.*expected a number"):
        load_config(Cfg, path)


@pytest.mark.parametrize("text, key, problem", [
    ("steps: -5", "steps", "must be >= 1"),
    ("steps: 0", "steps", "must be >= 1"),
    ("steps: true", "steps", "expected an integer"),
    ("steps: 4.5", "steps", "expected an integer"),
    ("lr: 0", "lr", "must be > 0"),
    ("lr: -0.001", "lr", "must be > 0"),
    ("lr: .nan", "lr", "NaN"),
    ("ratio: 1.5", "ratio", "must be <= 1"),
    ("precision: fp8x", "precision", "is not one of"),
    ("kind: c", "kind", "is not one of"),
    ("flag: 3", "flag", "expected true or false"),
    ("lo: 5", "lo", "is above hi"),
])
def test_bad_values_fail_at_load_naming_file_and_key(tmp_path, text, key, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=rf"bad\.yaml: {key}: .*{problem}"):
        load_config(Checked, path)


def test_yaml_no_is_the_word_where_it_is_a_choice(tmp_path):
    (tmp_path / "c.yaml").write_text("precision: no\nsteps: 4.0\n")   # YAML reads `no` as false
    cfg = load_config(Checked, tmp_path / "c.yaml")
    assert cfg.precision == "no" and cfg.steps == 4 and isinstance(cfg.steps, int)


def test_command_line_overrides_nest_and_parse_as_yaml():
    assert parse_overrides(["loop.steps=100", "loss.method=infonce", "loop.precision=no", "x=[1, 2]"]) == {
        "loop": {"steps": 100, "precision": False}, "loss": {"method": "infonce"}, "x": [1, 2]}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["loop.steps"])


def test_every_area_and_every_shipped_config_loads():
    for area in config.AREAS:
        names = config.config_names(area)
        assert names, f"no YAML files for config area {area}"
        for name in names:
            assert type(config.load(area, name)) is config.config_class(area)


def test_load_by_name_path_and_overrides(tmp_path):
    cfg = config.load("train", "smoke", overrides=["loop.steps=3", "loop.precision=no"], loss__alpha=0.25)
    assert (cfg.loop.steps, cfg.loop.precision, cfg.loss.alpha) == (3, "no", 0.25)
    assert config.load("train", "paper_dino").dino.enabled
    path = tmp_path / "mine.yaml"
    path.write_text(f"base: {config.CONFIG_DIR / 'train' / 'smoke.yaml'}\nloop: {{steps: 2}}\n")
    assert config.load("train", path).loop.steps == 2
    with pytest.raises(ConfigError, match=r"config 'papr' not found for train: known names \[.*'paper'"):
        config.load("train", "papr")
    with pytest.raises(ConfigError, match="config area 'trian' unknown"):
        config.load("trian", "cpu")


@pytest.mark.parametrize("override, problem", [
    ("loop.steps=-5", "loop.steps: -5 must be >= 1"),
    ("loop.steps=true", "loop.steps: expected an integer, got True"),
    ("loop.steps=4.5", "loop.steps: expected an integer, got 4.5"),
    ("loop.batch_size=0", "loop.batch_size: 0 must be >= 1"),
    ("loop.batch_size=-4", "loop.batch_size: -4 must be >= 1"),
    ("loop.lr=-0.001", "loop.lr: -0.001 must be > 0"),
    ("loop.precision=fp8x", "loop.precision: 'fp8x' is not one of"),
    ("loop.precision=fp32", "loop.precision: 'fp32' is not one of"),
    ("loss.method=infonc", "loss.method: 'infonc' is not one of"),
])
def test_training_config_values_are_checked_before_any_model_is_built(override, problem):
    with pytest.raises(ConfigError, match=r"smoke\.yaml: " + problem.replace("(", r"\(").replace("[", r"\[")):
        config.load("train", "smoke", overrides=[override])


# ---------------------------------------------------------------- property (hypothesis): command-line overrides

from hypothesis import strategies as st  # noqa: E402

from property_fixtures import SIZES, TEXT, run  # noqa: E402

KEYS = st.sampled_from(["loop.steps", "loop.lr", "loop.batch_size", "loss.method", "data.datasets", "data.fraction",
                        "data.crop_scale", "data.skip_bad", "data.languages", "loop", "loop.steps.x", "nope",
                        "data..split", " loop.seed"])
VALUES = st.one_of(st.sampled_from(["100", "-1", "1e-3", "0.5", ".inf", ".nan", "[a, b]", "[", "{}", "true", "x: [",
                                    "infonce", "ucm_captions", "[0.5, 1.0]", "2020-01-01", "!!python/none", ""]), TEXT)
ITEMS = st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES), TEXT), max_size=4)


def _overrides_load_or_refused(items):
    try:
        cfg = config.load("train", "smoke", overrides=items)
    except ConfigError as exc:   # names an override or the key it set
        message = str(exc)
        assert "\n" not in message.strip() or "YAML" in message
        assert any(item in message or repr(item) in message or any(
            part.strip() and (part.strip() in message or repr(part)[1:-1] in message)
            for part in item.partition("=")[0].split(".")) for item in items), (message, items)
        return
    given = config.parse_overrides(items)
    loop, data = given.get("loop", {}), given.get("data", {})
    if "steps" in loop:
        assert cfg.loop.steps == int(loop["steps"]) and cfg.loop.steps >= 1
    if "lr" in loop:
        assert math.isfinite(cfg.loop.lr) and cfg.loop.lr == float(loop["lr"])
    for key in ("datasets", "languages"):
        if data.get(key) is not None:
            assert isinstance(getattr(cfg.data, key), list)
    if data.get("crop_scale") is not None:
        assert isinstance(cfg.data.crop_scale, tuple)


@pytest.mark.parametrize("n", SIZES)
def test_property_overrides_load_or_one_config_error_naming_the_override(n):
    run(_overrides_load_or_refused, n, ITEMS)


# ---------------------------------------------------------------- issue 31: flagged departures
PAPER_CONFIGS = sorted((p.parent.name, p.stem) for p in config.CONFIG_DIR.glob("*/paper*.yaml"))


@pytest.mark.parametrize("area,profile", PAPER_CONFIGS)
def test_every_paper_departure_names_a_real_key_and_is_listed_in_docs_paper(area, profile):
    """Each departure a paper config flags names a key of that config (or '-') and appears in
    docs/paper.md section 8 by its key and config file."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "paper.md").read_text()
    section = docs[docs.index("## 8."):]
    for d in config.departures(area, profile):
        assert set(d) <= set(config.DEPARTURE_FIELDS) and d["published"] and d["ours"]
        if d["key"] != "-":   # a departure a config inherits is listed under its base (train/paper.yaml)
            assert re.search(rf"`{area}/paper\w*\.yaml` `{re.escape(d['key'])}`", section), (area, profile, d["key"])


def test_the_paper_configs_flag_the_departures_issue_31_names():
    keys = {(a, d["key"]) for a, p in PAPER_CONFIGS if p == "paper" for d in config.departures(a, p)}
    assert {("train", "data.datasets"), ("train", "data.augment"), ("train", "loop.warmup_steps"),
            ("train", "loop.grad_clip"), ("methods", "methods"), ("captioning", "unfrozen")} <= keys


def test_a_departure_naming_no_key_of_the_config_is_one_error_naming_file_and_entry(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("model: ViT-B-32\ndepartures:\n  - {key: loop.warmup, published: a, ours: b, why: c}\n")
    with pytest.raises(ConfigError, match=r"paper.yaml: departures\[0\]: key 'loop.warmup' is not a key of"):
        config.load("train", bad)
    bad.write_text("model: ViT-B-32\ndepartures:\n  - {key: epochs, published: a}\n")
    with pytest.raises(ConfigError, match=r"departures\[0\]: expected a mapping with text for each of"):
        config.load("train", bad)


def test_departures_add_to_the_base_configs(tmp_path):
    base = {d["key"] for d in config.departures("train", "paper")}
    l14 = {d["key"] for d in config.departures("train", "paper_l14")}
    assert base < l14 and "loop.grad_checkpointing" in l14
