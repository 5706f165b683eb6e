"""The dry run of the paper profile: the caps of ``rsdix/configs/dry_run.yaml`` change only step
counts, image counts and the CPU batch (and the two named ``cpu_time`` settings), only for paper
configs, only in a dry run; a dry run writes under ``runs/<profile>-dry/`` and marks its outputs."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from rsdix import cli, config
from rsdix.paths import DRY_RUN_ENV, RunDirs, repo_root
from rsdix.reporting import dry_run

# the words a capped field's name may carry: steps, image counts, batch size, CPU workers
CAP_WORDS = ("steps", "epochs", "images", "max_", "_max", "limit_", "batch_size", "num_workers", "n_discrimination",
             "n_resamples", "k_distractors", "log_every", "ckpt_every", "max_len", "shots")
PAPER = [("train", "paper"), ("train", "paper_dino"), ("train", "paper_rsmclip"), ("methods", "paper"),
         ("captioning", "paper"), ("evaluate", "paper"), ("caption_metrics", "paper"), ("s2lcd", "paper"),
         ("leakage", "paper"), ("efficiency", "paper")]


def flat(obj, prefix="") -> dict:
    out = {}
    for key, value in (dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def changed(area, name, monkeypatch) -> dict:
    monkeypatch.delenv(DRY_RUN_ENV, raising=False)
    plain = flat(config.load(area, name))
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    capped = flat(config.load(area, name))
    monkeypatch.delenv(DRY_RUN_ENV)
    assert plain.keys() == capped.keys()
    return {k: (plain[k], capped[k]) for k in plain if plain[k] != capped[k]}


def test_caps_change_only_steps_images_and_batch(monkeypatch):
    allowed = set(config.read_yaml(config.DRY_RUN_CAPS)["cpu_time"])
    others = set()
    for area, name in PAPER:
        for key, (before, after) in changed(area, name, monkeypatch).items():
            field = key.rsplit(".", 1)[-1]
            if any(w in part for part in key.split(".") for w in CAP_WORDS):
                if isinstance(before, (int, float)) and isinstance(after, (int, float)) and field != "epochs":
                    auto = field == "num_workers" and before == -1   # -1: one worker per core (loader_workers)
                    assert after <= before or field in ("warmup_steps",) or before == 0 or auto, (area, key, before, after)
                continue
            others.add(f"{area}.{key}")
    assert others == allowed, f"caps beyond steps/images/batch not named in cpu_time: {others - allowed}"


def test_caps_reach_the_paper_numbers_they_should(monkeypatch):
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    train = config.load("train", "paper")
    assert (train.epochs, train.loop.steps, train.loop.batch_size) == (None, 1, 4)
    assert (train.model, train.pretrained, train.loss.method, train.loop.lr) == ("ViT-B-32", "openai", "rsdix", 5e-4)
    assert config.load("train", "paper_dino").dino.out_dim == 65536          # the DINO head as published
    cap = config.load("captioning", "paper")
    assert (cap.train.model.decoder, cap.train.model.prefix_len, cap.limit_train) == ("gpt2", 40, 8)
    ev = config.load("evaluate", "paper")
    assert (ev.max_images, ev.max_images_per_dataset) == (12, {"eurosat_ms": None, "whu_rs19": 57})


def test_caps_leave_other_profiles_and_explicit_overrides_alone(monkeypatch):
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    assert config.load("train", "cpu") == config.load("train", "cpu")
    monkeypatch.delenv(DRY_RUN_ENV)
    cpu = config.load("train", "cpu")
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    assert config.load("train", "cpu") == cpu
    assert config.load("train", "paper", loop__steps=7).loop.steps == 7   # an explicit override wins
    monkeypatch.setenv(DRY_RUN_ENV, "0")
    assert config.load("train", "paper").epochs == 20


def test_dry_run_writes_under_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("RSDIX_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    dirs = RunDirs("paper")
    assert dirs.run == tmp_path / "runs" / "paper-dry" and dirs.figures == dirs.run / "figures"
    monkeypatch.delenv(DRY_RUN_ENV)
    assert RunDirs("paper").figures == tmp_path / "figures" / "paper"


def test_environment_points_the_kernel_at_the_standins(tmp_path):
    env = dry_run.environment(tmp_path)
    assert env[DRY_RUN_ENV] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert env["HF_HUB_CACHE"] == str(tmp_path / "hf" / "hub") and env["RSDIX_DATA_ROOT"] == str(tmp_path / "data")


def test_every_dataset_of_the_paper_configs_is_needed():
    names = dry_run.needed_datasets("paper")
    for name in ("rsicd", "rsitmd", "ucm_captions", "nwpu_captions", "s2lcd", "resisc45", "aid", "whu_rs19"):
        assert name in names


def test_marks_tables_figures_and_results_once(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "RESULTS.md").write_text("# Results\n| a |\n")
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "figures" / "f.png")
    (tmp_path / "standins").mkdir()
    (tmp_path / "standins" / "x.md").write_text("not an output\n")
    assert dry_run.mark_outputs(tmp_path) == 2
    assert (tmp_path / "figures" / "RESULTS.md").read_text().startswith(f"_{dry_run.MARK}_\n\n# Results")
    with Image.open(tmp_path / "figures" / "f.png") as im:
        assert im.info["rsdix"] == dry_run.MARK and im.height > 30
    assert dry_run.mark_outputs(tmp_path) == 0          # idempotent
    assert (tmp_path / "standins" / "x.md").read_text() == "not an output\n"


def test_cli_and_make_pass_the_dry_run_flag(monkeypatch):
    seen = {}
    monkeypatch.setattr(dry_run, "run", lambda *a, **k: seen.setdefault("args", a))
    assert cli.main(["reproduce", "--profile", "paper", "--dry-run"]) == 0
    assert seen["args"][0] == "paper"
    root = repo_root()
    out = subprocess.run(["make", "-n", "-s", "reproduce", "PROFILE=paper", "DRY_RUN=1"], cwd=root,
                         capture_output=True, text=True).stdout
    assert "reproduce --profile paper" in out and "--dry-run" in out
    out = subprocess.run(["make", "-n", "-s", "reproduce", "PROFILE=paper"], cwd=root,
                         capture_output=True, text=True).stdout
    assert "--dry-run" not in out


@pytest.mark.parametrize("area,name", PAPER)
def test_paper_configs_load_capped(area, name, monkeypatch):
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    config.load(area, name)   # validated at load: the caps are legal values


def test_prune_deletes_only_finished_runs_checkpoints(tmp_path):
    def write(rel, size=10):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        return path

    done = write("train/rsdix_s0/checkpoint.pt")
    write("models/rsdix_s0/train_log.csv")
    running = write("train/infonce_s0/checkpoint.pt")          # no saved model yet: still training
    write("models/infonce_s0/open_clip_model.safetensors")
    cap = write("captioning/rsicd/clipcap-rsdix_s0-frozen/checkpoint.pt", 20)
    weights = write("captioning/rsicd/clipcap-rsdix_s0-frozen/captioner/captioner.safetensors", 5)
    meta = write("captioning/rsicd/clipcap-rsdix_s0-frozen/captioner/captioner.json")
    write("captioning/rsicd/clipcap-rsdix_s0-frozen/test_captions.csv")
    cap_running = write("captioning/ucm_captions/clipcap-rsdix_s0-frozen/checkpoint.pt")
    assert dry_run.prune_checkpoints(tmp_path) == 35
    assert not done.exists() and not cap.exists() and not weights.exists()
    assert running.exists() and cap_running.exists() and meta.exists()
    assert dry_run.prune_checkpoints(tmp_path) == 0


def test_the_dry_run_evaluates_under_the_papers_protocols_and_templates(monkeypatch):
    """Issue 31: the dry run evaluated with the `rsdix` template set (a cap) instead of the paper's."""
    monkeypatch.delenv(DRY_RUN_ENV, raising=False)
    plain = config.load("evaluate", "paper")
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    capped = config.load("evaluate", "paper")
    assert (capped.protocol, capped.templates, capped.published_protocols) == \
        (plain.protocol, plain.templates, plain.published_protocols) == ("rsdix_paper", "rs", ["remoteclip"])
    assert "evaluate.templates" not in config.read_yaml(config.DRY_RUN_CAPS)["cpu_time"]


def test_every_table_row_and_executed_notebook_of_a_dry_run_says_so(tmp_path, monkeypatch):
    import nbformat
    import pandas as pd
    from rsdix.results import Result, append_results, write_table
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    csv, _ = write_table(pd.DataFrame({"a": [1, 2]}), "t", tmp_path)
    assert list(pd.read_csv(csv)["dry_run"]) == [dry_run.MARK] * 2
    table = append_results([Result("m", "d", "t", "x", 1.0, seed=0)], tmp_path / "results.csv")
    assert list(table["dry_run"]) == [dry_run.MARK]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 title"),
                                         nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    assert dry_run.mark_notebook(tmp_path / "01_x.ipynb") == 1 and dry_run.mark_notebook(tmp_path / "01_x.ipynb") == 0
    cells = nbformat.read(tmp_path / "01_x.ipynb", as_version=4).cells
    assert cells[0].source == "# 01 title" and dry_run.MARK.upper() in cells[1].source and len(cells) == 3
    monkeypatch.delenv(DRY_RUN_ENV)
    csv, _ = write_table(pd.DataFrame({"a": [1]}), "u", tmp_path)
    assert "dry_run" not in pd.read_csv(csv)


def test_the_dry_run_keeps_the_papers_models_and_chance_levels(monkeypatch):
    """Issue 31: the dry run evaluated one of 03's checkpoints and cut notebook 06's distractors
    from nine to one (chance 50%, not 10%)."""
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    assert config.load("evaluate", "paper").trained_models is None          # every checkpoint 03 saved
    assert config.load("caption_metrics", "paper").k_distractors == 9


def test_a_class_block_keeps_one_class_whole_for_same_class_distractors():
    from rsdix.reporting.standin_data import cap_split
    images = [{"filename": f"{c}{i:02d}.tif", "split": "test"} for c in "abc" for i in range(10)]
    spaced = cap_split(images, 3)
    assert [im["filename"] for im in spaced] == ["a00.tif", "b00.tif", "c00.tif"]
    kept = [im["filename"] for im in cap_split(images, 3, block=10)]
    assert [f for f in kept if f.startswith("a")] == [f"a{i:02d}.tif" for i in range(10)] and len(kept) == 12
