"""Notebook 04's experiment: profile configs (validated at load), planned runs, word-less captions."""
from __future__ import annotations

import pytest

from rsdix import config
from rsdix.captioning.experiment import (NO_WORDS, CaptioningExperiment, describe_experiment, for_scoring,
                                         load_experiment, plan_runs, runs_table)
from rsdix.errors import ConfigError
from rsdix.models import save_model


def test_profile_configs_load():
    for profile in ("smoke", "cpu", "paper"):
        exp = load_experiment(profile)
        assert exp.train_config(frozen=False).freeze_encoder is False
        assert exp.train_config(frozen=True).freeze_encoder is True
    assert load_experiment("paper").train.model.prefix_len == 40
    cpu = load_experiment("cpu")
    assert cpu.goal.min_scores == {"CIDEr": 1.0, "BLEU-4": 0.4} and cpu.goal.max_train_minutes == 20
    assert describe_experiment(cpu).startswith("datasets: ['ucm_captions'] | decoder: scratch | prefix: 10")


@pytest.mark.parametrize("overrides,match", [
    ({"train__model__mapper": "lstm"}, r"train\.model\.mapper: 'lstm' is not one of"),
    ({"train__decode__method": "topk"}, r"train\.decode\.method: 'topk' is not one of"),
    ({"train__model__prefix_len": 0}, r"train\.model\.prefix_len: 0 must be >= 1"),
    ({"train__augment": "strong"}, r"train\.augment: 'strong' is not one of"),
    ({"limit_test": -1}, r"limit_test: -1 must be >= 0"),
    ({"metrics": ["BLEU-9"]}, r"metrics: unknown metric\(s\) \['BLEU-9'\]"),
    ({"goal__max_train_minutes": -5}, r"goal\.max_train_minutes: -5.0 must be >= 0"),
])
def test_bad_values_fail_at_load_naming_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        config.load("captioning", "smoke", **overrides)


def test_wordless_generated_captions_are_counted_and_scored_as_nothing():
    out, n = for_scoring(["a road .", ". .", "", "many trees"])
    assert out == ["a road .", NO_WORDS, NO_WORDS, "many trees"] and n == 2


def test_plan_runs_prefers_notebook03_models_and_says_when_it_falls_back(tmp_path, tiny_bundle):
    exp = CaptioningExperiment(encoders=["infonce_s0", "rsdix_s0"], unfrozen=["rsdix_s0"], fallback_encoder="rsdix-tiny")
    runs, msg = plan_runs(exp, tmp_path)
    assert [r.name for r in runs] == ["clipcap-rsdix-tiny-frozen", "clipcap-rsdix-tiny-unfrozen"]
    assert all(r.fallback for r in runs) and "no notebook-03 encoder" in msg and "rsdix-tiny" in msg
    save_model(tiny_bundle, tmp_path / "rsdix_s0")
    runs, msg = plan_runs(exp, tmp_path)
    assert [(r.name, r.frozen, r.fallback) for r in runs] == [("clipcap-rsdix_s0-frozen", True, False),
                                                               ("clipcap-rsdix_s0-unfrozen", False, False)]
    assert "missing (skipped): ['infonce_s0']" in msg
    assert runs_table(runs).to_dict("records")[1] == {"model": "clipcap-rsdix_s0-unfrozen",
                                                      "encoder": str(tmp_path / "rsdix_s0"), "frozen": False,
                                                      "fallback preset": False}
