"""The data-efficiency study end to end on the smoke profile (tiny model, real UCM / WHU-RS19 data):
run order, resumable rows, the report; and the config's checks."""
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rsdix import cli, config
from rsdix.studies.efficiency import runs as runs_module
from rsdix.studies.efficiency.design import load_efficiency_config
from rsdix.studies.efficiency.runs import RUNS_CSV, plan
from rsdix.studies.efficiency.study import FIGURES, write_report
from rsdix.errors import ConfigError
from rsdix.paths import repo_root


def test_run_order_makes_partial_results_useful():
    cfg = load_efficiency_config("cpu")
    order = plan(cfg)
    head = order[:2 * len(cfg.seeds)]      # the headline 10% pair for every seed first
    assert head == [(s, arm, 0.1) for s in cfg.seeds for arm in ("infonce", "rsdix")]
    seen = set()
    for seed, arm, fraction in order:       # dino after the same seed's InfoNCE at its share
        if arm == "dino":
            assert (seed, "infonce", fraction) in seen
        seen.add((seed, arm, fraction))
    assert {(a, f) for _, a, f in order} >= {(a, f) for a in ("infonce", "rsdix") for f in (0.1, 0.3, 1.0)}
    assert len(order) == len(set(order)) == len(cfg.seeds) * len(cfg.cells())   # each run once


@pytest.mark.parametrize("change, message", [
    ({"grid": {"clip": [0.1]}}, "unknown arm"),
    ({"grid": {"infonce": [0.2]}}, "no training length"),
    ({"grid": {"infonce": [1.5]}, "steps": {1.5: 3}}, r"\(0, 1\]"),
    ({"grid": {"dino": [1.0]}}, "InfoNCE's wall-clock"),
    ({"seeds": [0, 0]}, "distinct seeds"),
])
def test_bad_configs_fail_naming_the_key(change, message):
    base = {"grid": {"infonce": [0.1]}, "steps": {0.1: 2, 1.0: 3}}
    with pytest.raises(ConfigError, match=message):
        config.load("efficiency", {**base, **change})


DOCUMENTED = ["rsdix study efficiency --profile smoke --out-dir runs/smoke/study",                # docs/study.md
              "rsdix study efficiency --profile smoke --report-only --out-dir runs/smoke/study"]


def run_documented(command: str, out, data_root) -> int:
    argv = [str(out) if w == "runs/smoke/study" else w for w in shlex.split(command)[1:]]
    return cli.main(argv if "--report-only" in argv else [*argv, "--data-root", str(data_root)])


@pytest.mark.slow
def test_smoke_study_runs_resumes_and_reports(tmp_path, ucm_root, whu_root, monkeypatch):
    data_root, out = ucm_root.parent, tmp_path / "study"
    assert run_documented(DOCUMENTED[0], out, data_root) == 0
    runs = pd.read_csv(out / RUNS_CSV)
    cfg = load_efficiency_config("smoke")
    assert set(runs["run"]) == {f"{a}_frac{f:g}_s{s}" for s, a, f in plan(cfg)}
    ema = runs[runs.weights == "ema"]
    assert set(ema.arm) == {"rsdix"}                       # only distillation runs have a teacher
    dino = runs[runs.arm == "dino"].drop_duplicates("run")
    assert (dino["target_s"] > 0).all() and (dino["steps"] >= 1).all()
    assert {"UCM", "WHU-RS19"} <= set(runs.dataset)
    assert (tmp_path / "study" / "learning_curves.csv").exists()
    text = (out / "STUDY.md").read_text()
    assert "RSDiX-CLIP - InfoNCE in UCM test mR at 10%:" in text and "Holm-adjusted p=" in text
    assert "- **scratch**" in text and "## Closing note" in text
    for name in ("paired", "curves", "teacher"):
        assert (out / FIGURES[name]).exists()
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired.n) == {2}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(runs_module, "run_one", no_training)
    # resume: everything is there, nothing trains, the report is the same
    assert run_documented(DOCUMENTED[0], out, data_root) == 0
    assert run_documented(DOCUMENTED[1], out, data_root) == 0
    assert (out / "STUDY.md").read_text() == text == write_report(out)


def test_make_study_runs_the_cpu_study():
    recipe = subprocess.run(["make", "-n", "study", "VENV=.venv"], capture_output=True, text=True,
                            cwd=repo_root()).stdout
    assert "for p in cpu cpu_pretrained; do" in recipe and "rsdix study efficiency --profile $p" in recipe
    paper = subprocess.run(["make", "-n", "study", "VENV=.venv", "PROFILE=paper"], capture_output=True, text=True,
                           cwd=repo_root()).stdout
    assert "for p in paper; do" in paper


PRETRAINED = "rsdix study efficiency --profile smoke_pretrained --out-dir runs/smoke/study_pretrained"   # docs/study.md


@pytest.mark.slow
def test_smoke_pretrained_study_runs_with_two_workers_and_reports(tmp_path, ucm_root, whu_root):
    """The pretrained regime end to end on the tiny model: stage 1, the lr grid, curves of both arms, the
    lengths from the curves, the grid shared by two worker processes (each run once), per-query hits, the
    soft targets' log, STUDY.md with the teacher's score and the hierarchical bootstrap."""
    import os  # noqa: PLC0415 (the subprocess environment only)
    out = tmp_path / "study"
    argv = [str(out) if w == "runs/smoke/study_pretrained" else w for w in shlex.split(PRETRAINED)[1:]]
    env = {**os.environ, "RSDIX_RUNS": str(tmp_path / "runs")}
    cmd = [str(Path(sys.executable).parent / "rsdix"), *argv, "--data-root", str(ucm_root.parent), "--threads", "1",
           "--no-report"]
    workers = [subprocess.Popen(cmd, env=env) for _ in range(2)]
    assert [w.wait(timeout=900) for w in workers] == [0, 0]
    runs = pd.read_csv(out / RUNS_CSV)
    cfg = load_efficiency_config("smoke_pretrained")
    student = runs[runs.weights == "student"]
    assert sorted(student.run.unique()) == sorted({f"pt-{a}_frac{f:g}_s{s}" for s, a, f in plan(cfg)})
    assert student.groupby("run").size().nunique() == 1          # each run once
    assert set(runs.regime) == {"pretrained"} and "UCM" in set(runs.dataset)
    assert (out / "pretrain_score.csv").exists() and (out / "targets.csv").exists()
    assert len(list((out / "queries").glob("*.csv.gz"))) == student.run.nunique()
    text = write_report(out)
    assert "## The teacher before fine-tuning (pretrained)" in text and "hierarchical bootstrap" in text
    assert (out / FIGURES["mechanism"]).exists()


def test_a_diverged_run_is_recorded_skipped_on_resume_and_left_out_of_its_pairs(tmp_path, monkeypatch):
    """One NaN run must not end the grid (it did: NonFiniteLossError propagated out of run_study)."""
    from rsdix.studies.efficiency.runs import DIVERGED_CSV, EfficiencyContext, run_study
    from rsdix.results import Result
    from rsdix.training.loop import NonFiniteLossError
    cfg = config.load("efficiency", {"train_profile": "smoke", "grid": {"infonce": [0.1], "rsdix": [0.1]},
                                     "seeds": [0, 1, 2], "steps": {0.1: 2}, "bootstrap": 200})
    calls = []

    def fake_run(ctx, arm, fraction, seed):
        calls.append((arm, seed))
        if (arm, seed) == ("rsdix", 1):
            raise NonFiniteLossError("step 7 (micro-batch 1/1): the loss is nan; stopped without saving")
        extra = {"run": f"{arm}_frac{fraction:g}_s{seed}", "arm": arm, "fraction": fraction, "weights": "student",
                 "steps": 2, "train_s": 1.0}
        return [Result(model=f"{arm}_frac{fraction:g}", dataset="UCM", task="retrieval", metric="mR",
                       value=10.0 + seed + (arm == "rsdix"), seed=seed, split="test", extra=extra)]
    monkeypatch.setattr(runs_module, "run_one", fake_run)
    ctx = EfficiencyContext(cfg, "smoke", tmp_path, None, check=object())   # a check: nothing to prepare
    runs = run_study(cfg, tmp_path, "smoke", ctx=ctx)
    assert len(calls) == 6                                       # the grid went on after the NaN
    assert set(runs["run"]) == {"infonce_frac0.1_s0", "infonce_frac0.1_s1", "infonce_frac0.1_s2",
                                "rsdix_frac0.1_s0", "rsdix_frac0.1_s2"}
    bad = pd.read_csv(tmp_path / DIVERGED_CSV)
    assert list(bad["run"]) == ["rsdix_frac0.1_s1"] and "loss is nan" in bad["error"][0]
    calls.clear()
    run_study(cfg, tmp_path, "smoke", ctx=ctx)                  # resume: the diverged run is not retried
    assert calls == []
    text = write_report(tmp_path, cfg)
    assert "rsdix_frac0.1_s1: step 7" in text
    paired = pd.read_csv(tmp_path / "paired.csv")
    row = paired[(paired.a == "rsdix") & (paired.b == "infonce")].iloc[0]
    assert row.n == 2 and row.seeds == "0 2" and row["mean"] == pytest.approx(1.0)


def test_paper_study_config_loads_with_the_dry_run_caps(monkeypatch):
    """The GPU design: ViT-B/32 with OpenAI's weights on RSICD + UCM + RSITMD, the original recipe and rsdix's
    against InfoNCE, ten seeds at 10% and 100%, the lr from a grid; capped for the dry run."""
    from rsdix.paths import DRY_RUN_ENV  # noqa: PLC0415 (this test's environment variable only)
    cfg = load_efficiency_config("paper")
    assert cfg.regime == "pretrained" and not cfg.pretrain.enabled and cfg.train_profile == "paper"
    assert {(a, f) for _, a, f in plan(cfg)} == {(a, f) for a in ("infonce", "rsdix-original", "rsdix") for f in (0.1, 1.0)}
    assert cfg.seeds == list(range(10)) and len(cfg.lr_grid) >= 2 and cfg.steps_from_curves
    assert [r.dataset for r in cfg.retrieval_specs()] == ["rsicd", "ucm_captions", "rsitmd"]
    assert cfg.primary.metric == "mean of RSICD + UCM + RSITMD test mR"
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    capped = load_efficiency_config("paper")
    assert capped.seeds == [0, 1] and capped.curve_steps == {0.1: 2, 1.0: 2} and capped.train["loop"]["batch_size"] == 4


@pytest.mark.slow
@pytest.mark.heavy   # ~5-13 CPU minutes: `make test-all` (CI's 30 minutes leave it out)
def test_paper_study_runs_on_the_standins(data_root, tmp_path):
    """The paper design end to end, offline, on the dry run's stand-ins (random-weight ViT-B/32 in OpenAI's hub
    layout, stand-in RSICD / RSITMD, linked UCM) under the dry run's caps: lr grid, curves, lengths from the
    curves, every run, STUDY.md with the mean-of-three primary endpoint."""
    import os  # noqa: PLC0415 (the subprocess environment only)
    from rsdix.paths import DRY_RUN_ENV  # noqa: PLC0415
    from rsdix.reporting import standin_data, standins  # noqa: PLC0415 (stand-ins: this test only)
    cfg = load_efficiency_config("paper")
    need = [r.dataset for r in cfg.retrieval_specs()] + list(cfg.zero_shot)
    standin_data.make_data_root(data_root, tmp_path / "data", need, images_per_split=6, images_per_class=2)
    standins.write_openai_clip(tmp_path / "hf" / "hub", "ViT-B-32")
    env = {**os.environ, **standins.hub_environment(tmp_path / "hf" / "hub"), DRY_RUN_ENV: "1",
           "RSDIX_RUNS": str(tmp_path / "runs")}
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "rsdix", "study", "efficiency", "--profile", "paper", "--out-dir",
                           str(out), "--data-root", str(tmp_path / "data"), "--threads", "1"], env=env, timeout=3600)
    assert done.returncode == 0
    runs = pd.read_csv(out / RUNS_CSV)
    assert runs[runs.weights == "student"].run.nunique() == 12           # 3 arms x 2 shares x 2 seeds
    assert "mean of RSICD + UCM + RSITMD" in set(runs.dataset)
    assert "mean of RSICD + UCM + RSITMD test mR" in (out / "STUDY.md").read_text()


def test_docs_answer_is_generated_from_the_committed_tables():
    """docs/study.md's answer block is docs_answer of figures/study (rsdix study efficiency --report-only
    rewrites both): no number of it is typed."""
    from rsdix.studies.efficiency.study import ANSWER_CLOSE, ANSWER_OPEN, DOCS, docs_answer  # noqa: PLC0415
    text = DOCS.read_text()
    block = text.split(ANSWER_OPEN, 1)[1].split("\n", 1)[1].split(ANSWER_CLOSE, 1)[0]
    assert block.strip() == docs_answer(repo_root() / "figures" / "study").strip()


def test_the_closing_note_says_how_far_fine_tuning_moved_the_control(tmp_path):
    """The pretrained regime's note states the control arm's test mR minus the pretrained model's, per
    share, and flags a share where that move is below the margin (hand-made numbers)."""
    import pandas as pd

    from rsdix.studies.efficiency.study import fine_tuning_gain

    cfg = load_efficiency_config("cpu_pretrained")
    pd.DataFrame([{"dataset": "UCM", "task": "retrieval", "metric": "mR", "split": "test", "value": 25.0, "n": 210,
                   "chance": 2.5}]).to_csv(tmp_path / "pretrain_score.csv", index=False)
    family = pd.DataFrame({"kind": ["arms", "arms", "interaction"], "fraction": [0.1, 1.0, None],
                           "b_mean": [25.4, 27.5, None]})
    text = fine_tuning_gain(tmp_path, family, cfg)
    assert "(25.00): 10% +0.40; 100% +2.50." in text
    assert "At 10% that is below the margin (1)" in text and "100%" not in text.split("At ", 1)[1]
    assert fine_tuning_gain(tmp_path / "none", family, cfg) == ""
