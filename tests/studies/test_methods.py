"""rsdix.studies.methods: notebook 03's runs (resume, retrain, checks, EMA rows, seeds) and its report."""
import math
from types import SimpleNamespace

import pytest
from scipy import stats

from rsdix import viz
from rsdix.config import load
from rsdix.errors import ConfigError
from rsdix.paths import RunDirs
from rsdix.studies.methods import (MethodComparison, MethodsConfig, comparison_table, conclusions, methods_table,
                                   plot_loss_curves, result_rows, run_name, train_run)
from rsdix.training.clip import load_clip_config, with_epochs


def test_train_run_resumes_same_config_and_retrains_a_changed_one(tmp_path, ucm_root):
    dirs = SimpleNamespace(run=tmp_path / "run", models=tmp_path / "models")
    cfg = load_clip_config("smoke", steps=2, batch_size=8, data__data_root=str(ucm_root.parent))
    first = train_run(cfg, "rsdix_s0", dirs)
    again = train_run(cfg, "rsdix_s0", dirs)                  # finished, same config: nothing retrained
    assert again["history"] == first["history"] and not (tmp_path / "run" / "train" / "rsdix_s0.previous").exists()
    changed = load_clip_config("smoke", steps=2, batch_size=8, loop__lr=5e-3, data__data_root=str(ucm_root.parent))
    third = train_run(changed, "rsdix_s0", dirs)              # config changed: trained anew, old run kept aside
    assert (tmp_path / "run" / "train" / "rsdix_s0.previous" / "checkpoint.pt").exists()
    assert third["history"][-1]["loss"] != first["history"][-1]["loss"]     # really retrained, new lr


def test_train_run_checks_validation_and_ema_teacher_weights(tmp_path, ucm_root):
    def weight_sum(bundle):  # a stand-in check: which weights did it see?
        return {"mR": float(sum(p.double().sum() for p in bundle.model.visual.parameters())), "zs_top1": 1.0}

    dirs = SimpleNamespace(run=tmp_path / "run", models=tmp_path / "models")
    cfg = load_clip_config("smoke", steps=3, batch_size=8, data__data_root=str(ucm_root.parent))
    out = train_run(cfg, "rsdix_s0", dirs, check=weight_sum, val_check=lambda b: {"mR": 42.0}, check_teacher=True)
    assert out["run"] == "rsdix_s0" and out["val_mR"] == 42.0
    assert out["ema_mR"] != out["mR"]  # the averaged weights, not the student's
    rows = result_rows([out], "smoke")
    ema = [r for r in rows if r.model == "rsdix_s0-ema"]
    assert {(r.metric, r.value) for r in ema} == {("mR", out["ema_mR"]), ("top1", 1.0)}
    assert sorted((r.split, r.value) for r in rows if r.model == "rsdix_s0" and r.metric == "mR") == \
        [("test", out["mR"]), ("val", 42.0)]
    infonce = train_run(load_clip_config("smoke", method="infonce", steps=2, batch_size=8,
                                         data__data_root=str(ucm_root.parent)),
                        "infonce_s0", dirs, check=weight_sum, check_teacher=True)
    assert not any(k.startswith("ema_") for k in infonce)  # no teacher, no EMA rows


def _fake_runs(seeds=(0, 1, 2)):
    """InfoNCE and RSDiX at three seeds; RSDiX is InfoNCE + 1.0, +2.0, +1.5 mR (seed by seed) and
    + 3, -4, +2 zero-shot points."""
    runs = []
    for seed in seeds:
        for i, method in enumerate(["infonce", "rsdix"]):
            history = [{"step": s, "hard": 2.0 - 0.1 * s, "loss": 2.0 - 0.1 * s, **({"distill": 1.0} if i else {})}
                       for s in (1, 2)]
            runs.append({"run": run_name(method, seed), "method": method, "seed": seed, "fraction": 1.0, "steps": 2,
                         "train_s": 60.0, "history": history, "val_mR": 10.0 + seed,
                         "mR": 20.0 + seed + i * [1.0, 2.0, 1.5][seed], "zs_top1": 30.0 + seed * 2 + i * [3, -4, 2][seed]})
    return runs


def test_run_names_follow_the_convention_later_notebooks_read():
    assert run_name("rsdix", 0) == "rsdix_s0" and run_name("infonce", 1, 0.1) == "infonce_frac0.1_s1"


def test_comparison_is_mean_and_t_interval_over_seeds_with_paired_differences():
    """Hand-computed: RSDiX - InfoNCE mR over seeds = 1.0, 2.0, 1.5 (mean 1.5, sd 0.5, t(2) interval
    1.5 +- 4.303 * 0.5 / sqrt 3 = [0.258, 2.742]: separated); zero-shot differences 3, -4, 2 (mean 1/3,
    interval includes 0: no order)."""
    table = methods_table(_fake_runs())
    assert list(table.columns[:5]) == ["run", "method", "seed", "steps", "train_s"] and "history" not in table
    comp = comparison_table(table).set_index(["method", "check"])
    mr = comp.loc[("rsdix", "UCM test mR")]
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert mr["n"] == 3 and mr["n_pairs"] == 3 and mr["diff"] == pytest.approx(1.5)
    assert (mr["diff_low"], mr["diff_high"]) == pytest.approx((1.5 - half, 1.5 + half)) and mr["separated"] == "yes"
    base = comp.loc[("infonce", "UCM test mR")]
    sd = stats.tstd([20.0, 21.0, 22.0])
    assert base["mean"] == pytest.approx(21.0) and base["ci_high"] - base["mean"] == pytest.approx(
        stats.t.ppf(0.975, 2) * sd / math.sqrt(3)) and base["n_pairs"] == 0
    zs = comp.loc[("rsdix", "WHU-RS19 zero-shot top-1 %")]
    assert zs["diff"] == pytest.approx(1 / 3) and zs["separated"] == "no"
    one = comparison_table(methods_table(_fake_runs(seeds=(0,)))).set_index(["method", "check"])
    assert math.isnan(one.loc[("rsdix", "UCM test mR"), "ci_low"]) and one.loc[("rsdix", "UCM test mR"), "separated"] == ""


def test_conclusions_state_an_order_only_where_the_paired_interval_excludes_zero(tmp_path):
    runs = _fake_runs()
    comp = comparison_table(methods_table(runs))
    study = SimpleNamespace(seeds=[0, 1, 2], steps=2, minutes={"main runs": 1.5})
    text = conclusions(comp, study)
    assert "Every method at 2 steps, seeds 0, 1, 2" in text and "infonce 21.0 [" in text and "(n=3)" in text
    assert "UCM test mR, rsdix - infonce (paired by seed): +1.5 [0.3, 2.7] (n=3); rsdix above infonce" in text
    assert "WHU-RS19 zero-shot top-1 %, rsdix - infonce (paired by seed): +0.3" in text
    assert "no order at this number of seeds" in text and "1.5 min" in text
    assert "best" not in text and "of the images" not in text   # data efficiency: rsdix.studies.efficiency
    fig = plot_loss_curves(runs, path=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").exists()
    for ax in fig.axes[:3]:   # every panel has a y label, and a method has one colour across panels and seeds
        assert ax.get_ylabel()
    colours = {}
    for ax in fig.axes[:3]:
        for line in ax.get_lines():
            colours.setdefault(line.get_label().split("_s")[0], set()).add(line.get_color())
    assert colours["rsdix"] == {viz.model_colour("rsdix")} and len(colours["infonce"]) == 1


def test_the_study_trains_every_method_at_every_seed(tmp_path, monkeypatch):
    import rsdix.studies.methods as ex

    trained = []
    monkeypatch.setattr(ex, "train_run", lambda cfg, name, dirs, **kw: trained.append((name, cfg.loop.seed, cfg.loop.steps))
                        or {"run": name, "steps": cfg.loop.steps, "train_s": 0.0, "mR": 1.0, "zs_top1": 1.0})
    study = MethodComparison("smoke", tmp_path, 7, RunDirs("smoke", run_dir=tmp_path / "run"),
                             cfg=MethodsConfig(methods=["infonce", "rsdix"], seeds=[0, 2], steps=5))
    assert len(study.train_methods(check=None)) == 4
    assert trained == [("infonce_s0", 0, 5), ("rsdix_s0", 0, 5), ("infonce_s2", 2, 5), ("rsdix_s2", 2, 5)]
    assert MethodComparison("smoke", tmp_path, 7, RunDirs("smoke", run_dir=tmp_path / "r2"),
                            cfg=MethodsConfig(seeds=None)).seeds == [7]     # no seeds: the notebook's
    assert load("methods", "cpu").seeds == [0, 1, 2] and len(load("methods", "cpu").methods) >= 2
    for bad in ([], [0, 0], [-1], ["a"]):
        with pytest.raises(ConfigError, match="seeds"):
            load("methods", "cpu", seeds=bad)


def test_the_paper_study_trains_by_epochs_and_explicit_steps_win(tmp_path):
    """Paper study: main runs take the profile's epochs (steps: null); explicit steps override the
    profile's epochs."""
    study = MethodComparison("paper", tmp_path, 0, RunDirs("smoke", run_dir=tmp_path / "run"))
    assert study.steps is None
    main = study.config(method="rsdix", loop__steps=study.steps)
    assert main.epochs == 20 and with_epochs(main, 14705).loop.steps == 575
    explicit = study.config(method="rsdix", loop__steps=300)
    assert explicit.epochs is None and with_epochs(explicit, 14705).loop.steps == 300
    cpu = MethodComparison("cpu", tmp_path, 0, RunDirs("smoke", run_dir=tmp_path / "run2"))
    assert cpu.steps == cpu.cfg.steps and cpu.config(loop__steps=cpu.steps).loop.steps == cpu.cfg.steps
