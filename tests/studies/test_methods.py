"""rsdix.studies.methods: notebook 03's runs (resume, retrain, checks, EMA rows) and its report."""
from types import SimpleNamespace

from rsdix.paths import RunDirs
from rsdix.training.clip import load_clip_config, with_epochs
from rsdix import viz
from rsdix.studies.methods import (MethodComparison, MethodsConfig, conclusions, long_run_name, methods_table,
                                      plot_loss_curves, result_rows, run_name, train_run)


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
    out = train_run(cfg, long_run_name("rsdix", 0), dirs, check=weight_sum, val_check=lambda b: {"mR": 42.0},
                    check_teacher=True)
    assert out["run"] == "rsdix-long_s0" and out["val_mR"] == 42.0
    assert out["ema_mR"] != out["mR"]  # the averaged weights, not the student's
    rows = result_rows([out], "smoke")
    ema = [r for r in rows if r.model == "rsdix-long_s0-ema"]
    assert {(r.metric, r.value) for r in ema} == {("mR", out["ema_mR"]), ("top1", 1.0)}
    assert sorted((r.split, r.value) for r in rows if r.model == "rsdix-long_s0" and r.metric == "mR") == \
        [("test", out["mR"]), ("val", 42.0)]
    infonce = train_run(load_clip_config("smoke", method="infonce", steps=2, batch_size=8,
                                         data__data_root=str(ucm_root.parent)),
                        "infonce_s0", dirs, check=weight_sum, check_teacher=True)
    assert not any(k.startswith("ema_") for k in infonce)  # no teacher, no EMA rows


def _fake_runs():
    runs = []
    for i, method in enumerate(["infonce", "rsdix"]):
        history = [{"step": s, "hard": 2.0 - 0.1 * s, "loss": 2.0 - 0.1 * s, **({"distill": 1.0} if i else {})}
                   for s in (1, 2)]
        runs.append({"run": run_name(method, 0), "method": method, "seed": 0, "fraction": 1.0, "steps": 2,
                     "train_s": 60.0, "history": history, "val_mR": 10.0 + i, "mR": 20.0 + i, "zs_top1": 30.0 + i})
    runs.append({**runs[1], "run": long_run_name("rsdix", 0), "steps": 4, "mR": 25.0, "ema_mR": 26.0,
                 "ema_zs_top1": 33.0})
    return runs


def test_run_names_follow_the_convention_later_notebooks_read():
    assert run_name("rsdix", 0) == "rsdix_s0" and run_name("infonce", 1, 0.1) == "infonce_frac0.1_s1"
    assert long_run_name("rsdix-siglip", 0) == "rsdix-siglip-long_s0"


def test_tables_figures_and_conclusions_come_from_the_runs(tmp_path):
    runs = _fake_runs()
    table = methods_table(runs)
    assert list(table.columns[:5]) == ["run", "method", "steps", "train_s", "val_mR"] and "history" not in table
    study = SimpleNamespace(seed=0, steps=2, cfg=MethodsConfig(methods=["infonce", "rsdix"], long_steps=4),
                            minutes={"main runs": 1.5})
    text = conclusions(table, study, "rsdix")
    assert "chosen on UCM val mR: **rsdix**" in text and "infonce mR 20.0 / 30.0%" in text
    assert "rsdix-long_s0: UCM test mR 25.0" in text and "EMA teacher mR 26.0" in text
    assert "main runs 1.5 min" in text and "of the images" not in text   # data efficiency: rsdix.studies.efficiency
    fig = plot_loss_curves(runs, path=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").exists()
    for ax in fig.axes[:3]:   # every panel has a y label, and a run has one colour across panels
        assert ax.get_ylabel()
    colours = {}
    for ax in fig.axes[:3]:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values())
    assert colours["rsdix_s0"] == {viz.model_colour("rsdix")}


def test_the_paper_study_trains_by_epochs_and_explicit_steps_win(tmp_path):
    """Paper study: main runs take the profile's epochs (steps: null); explicit steps (the longer
    run's) override the profile's epochs."""
    study = MethodComparison("paper", tmp_path, 0, RunDirs("smoke", run_dir=tmp_path / "run"))
    assert study.steps is None
    main = study.config(method="rsdix", loop__steps=study.steps)
    assert main.epochs == 20 and with_epochs(main, 14705).loop.steps == 575
    explicit = study.config(method="rsdix", loop__steps=300)
    assert explicit.epochs is None and with_epochs(explicit, 14705).loop.steps == 300
    cpu = MethodComparison("cpu", tmp_path, 0, RunDirs("smoke", run_dir=tmp_path / "run2"))
    assert cpu.steps == cpu.cfg.steps and cpu.config(loop__steps=cpu.steps).loop.steps == cpu.cfg.steps
