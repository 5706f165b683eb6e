"""Notebook 04's experiment: profile configs (validated at load), planned runs, word-less captions."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from rsdix import config
from rsdix.captioning.experiment import (NO_WORDS, CaptioningExperiment, describe_experiment, for_scoring,
                                         load_experiment, plan_runs, runs_table)
from rsdix.captioning import experiment as ex
from rsdix.captioning.caption_report import best_output
from rsdix.errors import ConfigError, DataError
from rsdix.results import Result, read_results
from rsdix.s2.dataset import read_s2lcd
from rsdix.models import save_model
from s2_fixtures import make_s2lcd


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


class _Evaluation:
    def value(self, metric):
        return 0.5


def _fake_run(results_by_dataset):
    def run_captioning(run, exp, dataset, **kwargs):
        if isinstance(results_by_dataset[dataset], Exception):
            raise results_by_dataset[dataset]
        return {"run": run, "evaluation": _Evaluation(), "results": results_by_dataset[dataset],
                "times": {"dataset": dataset}}
    return run_captioning


def _karpathy(root, name, with_images):
    folder = root / name
    (folder / "images").mkdir(parents=True)
    if with_images:
        Image.new("RGB", (16, 16)).save(folder / "images" / "a.png")
    (folder / "dataset.json").write_text(json.dumps({"images": [
        {"filename": "a.png", "split": "train", "sentences": [{"raw": "a plane"}]}]}))
    return folder / "dataset.json"


def test_run_experiment_skips_absent_datasets_and_writes_rows_as_each_run_finishes(tmp_path, monkeypatch, caplog):
    """Notebook 04 in the paper profile: a missing dataset is skipped with one line, and rows of
    finished runs are in the results table even when a later run fails."""
    row = Result(model="clipcap-x-frozen", dataset="UCM", task="captioning", metric="CIDEr", value=0.5, seed=0)
    monkeypatch.setattr(ex, "run_captioning", _fake_run({"ucm_captions": [row], "rsicd": [row],
                                                         "sydney_captions": RuntimeError("late failure")}))
    missing = {"rsicd": "rsicd: caption file of RSICD not found"}
    monkeypatch.setattr(ex, "missing_reason", lambda dataset, root=None: missing.get(dataset))
    exp = CaptioningExperiment(datasets=["ucm_captions", "rsicd", "sydney_captions"])
    table = tmp_path / "results.csv"
    with pytest.raises(RuntimeError, match="late failure"):
        ex.run_experiment(exp, [ex.CaptionRun("x", "rsdix-tiny")], results=table)
    assert "rsicd: skipped: rsicd: caption file of RSICD not found" in caplog.text
    saved = read_results(table)
    assert list(saved["model"]) == ["clipcap-x-frozen"] and list(saved["value"]) == [0.5]


def test_missing_reason_names_absent_caption_files_and_caption_only_copies(tmp_path, monkeypatch):
    with_images = _karpathy(tmp_path, "full", True)
    captions_only = _karpathy(tmp_path, "bare", False)
    files = {"ucm_captions": with_images, "rsicd": captions_only}

    def caption_file(name, root=None):
        if name not in files:
            raise DataError(tmp_path / name, "caption file not found")
        return files[name]

    monkeypatch.setattr(ex, "caption_file", caption_file)
    assert ex.missing_reason("ucm_captions") is None
    assert "images of RSICD are not there" in ex.missing_reason("rsicd")
    assert "caption file not found" in ex.missing_reason("nwpu_captions")


def test_s2lcd_without_split_fields_gets_the_80_10_10_split_by_scene(tmp_path):
    make_s2lcd(tmp_path / "s2lcd", with_split=False)
    records = ex.caption_records("s2lcd", tmp_path)
    assert len(records) == 6 and all(r.split in ("train", "val", "test") for r in records)
    # the same assignment as the S2LCD loader's
    assert [r.split for r in records] == [r.split for r in read_s2lcd(tmp_path)]


def test_s2lcd_without_split_fields_is_not_skipped_as_missing(tmp_path):
    """The dry run's S2LCD (as released, no ``split`` fields) raised "missing 'split'" in the check
    notebook 04 runs before training on a dataset."""
    make_s2lcd(tmp_path / "s2lcd", with_split=False)
    assert ex.missing_reason("s2lcd", tmp_path) is None


def test_run_experiment_keeps_only_the_best_captioner_in_memory(monkeypatch):
    """Eight paper-profile captioners (2.5 GB each) held at once killed the dry run's kernel
    (out of memory): only the best run's is kept, the one notebook 04 decodes again."""
    scores = iter([0.2, 0.9, 0.4, 0.9])
    held = []

    class Evaluation:
        def __init__(self, cider):
            self.cider = cider

        def value(self, metric):
            return self.cider

    def run_captioning(run, exp, dataset, **kwargs):
        trained = object()
        held.append(trained)
        return {"run": run, "evaluation": Evaluation(next(scores)), "results": [], "times": {"dataset": dataset},
                "trained": trained}

    monkeypatch.setattr(ex, "run_captioning", run_captioning)
    monkeypatch.setattr(ex, "missing_reason", lambda dataset, root=None: None)
    exp = CaptioningExperiment(datasets=["ucm_captions", "rsicd"])
    outputs = ex.run_experiment(exp, [ex.CaptionRun("a", "rsdix-tiny"), ex.CaptionRun("b", "rsdix-tiny")])
    assert [o["trained"] is not None for o in outputs] == [False, True, False, False]
    assert outputs[1]["trained"] is held[1]          # the first of the two best, as max() picks
    assert best_output(outputs) is outputs[1]                # the one notebook 04 decodes again
