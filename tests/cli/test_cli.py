"""The ``rsdix`` command line: one entry point, help for every option, one-line errors."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from rsdix import config
from rsdix.cli import build_parser, default_run, main, parse_args
from rsdix.evaluation.model_specs import load_bundles, models_to_evaluate
from rsdix.evaluation.suite import evaluate_models, load_task_dataset
from rsdix.evaluation.named_suites import SUITES, suite_tasks, summary_markdown
from rsdix.models.features import FeatureCache
from rsdix.models import load_model, save_model
from rsdix.paths import RunDirs
from rsdix.errors import ConfigError

COMMANDS = {"data", "train", "evaluate", "caption", "reproduce", "bench", "box-captions", "wordnet", "study", "results", "zoo", "export", "spice"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "rsdix", "--help"], capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert f"    {command}" in out


def test_every_option_of_every_subcommand_has_help():
    commands = _subparsers(build_parser())
    assert set(commands) == COMMANDS
    for name, sub in commands.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"rsdix {name}: {action.dest} has no help text"


def test_an_rsdix_error_is_one_line_and_exit_code_2(capsys):
    assert main(["train", "--config", "smoke", "loop.precision=fp8x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "loop.precision: 'fp8x'" in err
    assert main(["evaluate", "rsdix-tiny", "--config", "nope"]) == 2
    assert "config 'nope' not found for evaluate" in capsys.readouterr().err
    assert main(["data", "check"]) == 2
    assert "give a dataset name" in capsys.readouterr().err


def test_debug_shows_the_traceback():
    with pytest.raises(ConfigError):
        main(["--debug", "train", "--config", "smoke", "loop.steps=-1"])


def test_a_missing_file_is_named_without_a_traceback(capsys, tmp_path):
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.yaml'}: config file not found"


@pytest.mark.data
def test_train_then_evaluate_from_the_command_line(ucm_root, whu_root, tmp_path, capsys):
    root = str(ucm_root.parent)
    model = tmp_path / "model"
    assert main(["train", "--config", "smoke", "--run-dir", str(tmp_path / "run"), "--save-model", str(model),
                 "--data-root", root, "loop.steps=2", "data.cache_images=false"]) == 0
    assert "done: 2 steps" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (model / "open_clip_config.json").exists()
    out = tmp_path / "eval"
    assert main(["evaluate", str(model), "--config", "smoke", "--tasks", "zero-shot:whu_rs19",
                 "--data-root", root, "--out", str(out)]) == 0
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["task"]) == {"zero-shot"} and set(rows["model"]) == {"model"}
    assert (out / "results.md").exists() and rows["value"].notna().all()


def test_box_captions_from_the_command_line(tmp_path, capsys):
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
                            {"image_id": 1, "category_id": 1, "bbox": [60, 60, 20, 20]}],
            "categories": [{"id": 1, "name": "storage_tank"}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    out = tmp_path / "out.json"
    assert main(["box-captions", "coco", str(tmp_path / "instances.json"), str(out), "--n-captions", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    images = json.loads(out.read_text())["images"]
    assert [im["filename"] for im in images] == ["a.png"] and len(images[0]["sentences"]) == 2
    assert all("two storage tanks" in s["raw"].lower() for s in images[0]["sentences"])
    assert main(["box-captions", "masks", str(tmp_path), str(out), "--classes", "building"]) == 2
    assert "expected index=name" in capsys.readouterr().err


def test_train_writes_where_the_notebooks_look(tmp_path, monkeypatch):
    """`rsdix train --config paper` trained into runs/train/rsdix while notebook 03 looks in
    runs/paper/train/rsdix_s0 (and notebooks 04/05 in runs/paper/models/rsdix_s0)."""
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path))
    cfg = config.load("train", "paper", overrides=["loop.seed=1"])
    run_dir, model_dir = default_run("paper", cfg)
    assert run_dir == RunDirs("paper").run / "train" / "rsdix_s1" and model_dir == RunDirs("paper").models / "rsdix_s1"
    dino = config.load("train", "paper_dino")
    assert default_run("paper_dino", dino)[0].name == "dino_s0"
    yaml_path = tmp_path / "mine.yaml"
    assert default_run(str(yaml_path), cfg) == (tmp_path / "train" / "rsdix", None)


def test_train_resume_without_a_checkpoint_names_the_folder(tmp_path, capsys):
    run = tmp_path / "mistyped"
    assert main(["train", "--config", "cpu", "--run-dir", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run}: --resume: no checkpoint.pt in this run folder") and err.count("\n") == 1
    assert not run.exists()


# ---------------------------------------------------------------- rsdix evaluate: suites and formats (issue 17)


def test_evaluate_suites_as_task_lists():
    cfg = config.load("evaluate", "cpu")
    assert suite_tasks("rsdix", cfg)[:3] == ["zero-shot:whu_rs19", "zero-shot:ucm_classification",
                                             "zero-shot:eurosat_ms"]
    remote = suite_tasks("remoteclip", cfg)
    assert "retrieval:rsitmd" in remote and "knn:aid" in remote and not any(t.startswith("counting") for t in remote)
    assert len(remote) == sum(len(d) for d in SUITES["remoteclip"].values())
    assert set(suite_tasks("all", cfg)) == set(remote) | set(suite_tasks("rsdix", cfg))
    assert suite_tasks(["whu_rs19"], cfg, ["zero-shot", "knn"]) == ["zero-shot:whu_rs19", "knn:whu_rs19"]
    with pytest.raises(ConfigError, match="'nope' is neither a suite"):
        suite_tasks(["nope"], cfg)


def test_evaluate_summary_has_one_table_per_task():
    rows = pd.DataFrame({"task": ["zero-shot", "zero-shot", "retrieval"], "dataset": ["WHU-RS19"] * 2 + ["UCM"],
                         "metric": ["top1", "top1", "mR"], "value": [10.0, 20.0, 5.0]})
    md = summary_markdown(rows, "m")
    assert md.count("## ") == 2 and "| WHU-RS19  | top1     |   15.00 |" in md


@pytest.mark.data
def test_evaluate_cli_matches_notebook_05(ucm_root, whu_root, tmp_path, capsys, monkeypatch):
    """A model saved as notebook 03 saves it gives the same rows through the CLI and through
    notebook 05's calls (models_to_evaluate -> load_bundles -> evaluate_models)."""
    root = str(ucm_root.parent)
    torch.manual_seed(0)
    folder = save_model(load_model("rsdix-tiny"), tmp_path / "models" / "tiny_s0")
    cfg = config.load("evaluate", "smoke", overrides=["zero_shot=[whu_rs19]", "retrieval=[ucm_captions]",
                                                     "probe=[whu_rs19]", "counting=[]"])
    specs = models_to_evaluate(tmp_path / "models", cfg)
    bundles, _ = load_bundles(specs)
    nb, _, _ = evaluate_models(bundles, {s.label: s.seed for s in specs}, None, cfg, root,
                               FeatureCache(tmp_path / "cache"))
    out = tmp_path / "eval"
    monkeypatch.setenv("RSDIX_CACHE", str(tmp_path / "cli_cache"))
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--config", "smoke", "--suite", "whu_rs19", "ucm_captions",
                 "--tasks", "zero-shot", "retrieval", "knn", "--data-root", root, "--out", str(out)]) == 0
    cli = pd.read_csv(out / "results.csv")
    # every image once across zero-shot and k-NN (same WHU-RS19 subset) and retrieval (the UCM test split)
    n_whu = len(load_task_dataset("classification", "whu_rs19", "all", cfg, root))
    n_ucm = len(load_task_dataset("captions", "ucm_captions", cfg.retrieval_split, cfg, root).records)
    assert f"\n{n_whu + n_ucm} images encoded," in capsys.readouterr().out
    key = ["dataset", "task", "metric"]
    nb = nb[nb["task"].isin(cli["task"])]
    merged = nb.merge(cli, on=key, suffixes=("_nb", "_cli"))
    assert len(merged) == len(cli) == len(nb) > 0
    assert (merged["value_nb"] - merged["value_cli"]).abs().max() < 1e-9
    assert "## retrieval" in (out / "results.md").read_text()


def test_overrides_may_come_anywhere_after_the_command():
    """Before, argparse took only the first KEY=VALUE block: the second one was "unrecognized"."""
    args = parse_args(["train", "--config", "smoke", "loop.steps=2", "--run-dir", "runs/y", "loss.method=infonce"])
    assert args.overrides == ["loop.steps=2", "loss.method=infonce"] and args.run_dir == "runs/y"
    with pytest.raises(SystemExit):
        parse_args(["train", "--config", "smoke", "--no-such-flag"])
    with pytest.raises(SystemExit):
        parse_args(["bench", "a=b"])                        # bench takes no overrides


def test_reproduce_passes_notebook_parameters(monkeypatch, tmp_path):
    """``rsdix reproduce -p extra_models=[...]`` reaches the notebooks as a parameter (read as YAML);
    the four parameters every notebook has are refused there (their own flags give them)."""
    import pytest

    from rsdix.errors import ConfigError
    from rsdix.reporting import reproduce

    real_run, seen = reproduce.run, {}
    monkeypatch.setattr(reproduce, "run", lambda *a, **k: seen.update(k))
    assert main(["reproduce", "--profile", "smoke", "-p", "extra_models=[a=ViT-B-32@x.pt, b]", "-p", "n=3"]) == 0
    assert seen["parameters"] == {"extra_models": ["a=ViT-B-32@x.pt", "b"], "n": 3}
    assert main(["reproduce", "-p", "nonsense"]) == 2
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match=r"\['seed'\]: given by --profile/--data-root/--seed/--out-dir"):
        real_run("smoke", data_root=str(tmp_path), parameters={"seed": 1})
