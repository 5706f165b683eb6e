"""Which models an evaluation covers: saved checkpoints, run seeds, model specs."""
from __future__ import annotations

import pytest
import torch

from rsdix.errors import ConfigError, DataError
from rsdix.evaluation import model_specs
from rsdix.evaluation.model_specs import list_checkpoints, load_bundles, models_to_evaluate, parse_model_spec, run_seed
from rsdix.evaluation.suite import EvalConfig
from rsdix.models import save_model
from rsdix.paths import repo_root


def test_list_checkpoints_and_run_seed(tmp_path, tiny_bundle):
    assert list_checkpoints(tmp_path / "absent") == []
    save_model(tiny_bundle, tmp_path / "rsdix_s1")
    (tmp_path / "not_a_model").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["rsdix_s1"]
    assert run_seed("rsdix_s1") == 1 and run_seed("infonce_frac0.1_s2") == 2 and run_seed("RemoteCLIP") == 0


def test_parse_model_spec():
    assert parse_model_spec("RemoteCLIP=ViT-B-32@/c/R.pt") == ("RemoteCLIP", "ViT-B-32", "/c/R.pt")
    assert parse_model_spec("ViT-B-32@openai") == ("ViT-B-32-openai", "ViT-B-32", "openai")
    assert parse_model_spec("rsdix-tiny") == ("rsdix-tiny", "rsdix-tiny", None)
    with pytest.raises(ConfigError):
        parse_model_spec("label=")


def test_models_to_evaluate(tmp_path, tiny_bundle):
    cfg = EvalConfig(fallback_preset="rsdix-tiny", baselines=["CLIP=ViT-B-32@openai"])
    specs = models_to_evaluate(tmp_path, cfg, ["rsdix-small"], seed=4)
    assert [(s.label, s.name, s.pretrained, s.seed, s.trained) for s in specs] == [
        ("rsdix-tiny-untrained", "rsdix-tiny", None, 4, False), ("CLIP", "ViT-B-32", "openai", 4, False),
        ("rsdix-small", "rsdix-small", None, 4, False)]
    save_model(tiny_bundle, tmp_path / "rsdix_s2")
    specs = models_to_evaluate(tmp_path, cfg)
    assert [(s.label, s.seed, s.trained) for s in specs] == [("rsdix_s2", 2, True), ("CLIP", 0, False)]
    # trained_models: only the named checkpoints, in the config's order; a name without a folder
    # is one error naming the folder and what is there
    save_model(tiny_bundle, tmp_path / "infonce_s2")
    assert [s.label for s in models_to_evaluate(tmp_path, cfg)] == ["infonce_s2", "rsdix_s2", "CLIP"]
    cfg.trained_models = ["rsdix_s2"]
    assert [s.label for s in models_to_evaluate(tmp_path, cfg)] == ["rsdix_s2", "CLIP"]
    cfg.trained_models = ["dino_s2"]
    with pytest.raises(DataError, match=r"dino_s2.*trained_models names \['dino_s2'\].*'infonce_s2', 'rsdix_s2'"):
        models_to_evaluate(tmp_path, cfg)


def test_relative_baseline_weights_resolve_against_the_repo_not_the_notebook_folder(tmp_path, monkeypatch):
    """Notebook 05 runs in notebooks/: the paper config's checkpoints/RemoteCLIP-ViT-B-32.pt is
    the repository's checkpoints folder, and a weights file not downloaded yet is reported and
    left out instead of stopping the notebook."""
    monkeypatch.chdir(tmp_path)
    cfg = EvalConfig(baselines=["RemoteCLIP=rsdix-tiny@checkpoints/RemoteCLIP-ViT-B-32.pt",
                                "CLIP=ViT-B-32@openai"], fallback_preset=None)
    specs = models_to_evaluate(tmp_path / "no-models", cfg)
    assert specs[0].pretrained == str(repo_root() / "checkpoints" / "RemoteCLIP-ViT-B-32.pt")
    assert specs[1].pretrained == "openai"
    bundles, not_evaluated = load_bundles(specs[:1])
    assert bundles == {} and not_evaluated == ["RemoteCLIP"]


def test_a_model_folder_whose_path_holds_an_equals_sign_is_not_split(tmp_path, tiny_bundle, monkeypatch, capsys):
    from rsdix.cli import main

    sweep = save_model(tiny_bundle, tmp_path / "runs" / "sweep" / "lr=0.001")
    monkeypatch.chdir(tmp_path)
    assert parse_model_spec("runs/sweep/lr=0.001") == ("lr=0.001", "runs/sweep/lr=0.001", None)
    assert parse_model_spec(str(sweep)) == ("lr=0.001", str(sweep), None)
    assert parse_model_spec("best=runs/sweep/lr=0.001") == ("best", "runs/sweep/lr=0.001", None)
    assert parse_model_spec("runs/sweep/lr=0.001", label="best") == ("best", "runs/sweep/lr=0.001", None)
    assert parse_model_spec("runs/sweep/lr=0.002")[1] == "runs/sweep/lr=0.002"   # absent: still not split
    args = ["evaluate", "runs/sweep/lr=0.001", "--config", "smoke", "--tasks", "nothing:here"]
    main(args + ["--label", "sweep-best"])
    err = capsys.readouterr().err
    assert "unknown model name" not in err and "model folder not found" not in err


# ---------------------------------------------------------------- property (hypothesis): model specs

from hypothesis import strategies as st  # noqa: E402

from property_fixtures import SIZES, TEXT, run  # noqa: E402

SPECS = st.one_of(TEXT, st.builds(lambda a, b, c: f"{a}={b}@{c}", TEXT, TEXT, TEXT),
                  st.sampled_from([".", "/", "tests", "a=b", "=x", "x=", "@", "ViT-B-32@openai", "l=tests@x"]))


def _spec_parsed_or_refused(spec, label):
    try:
        got_label, name, pretrained = parse_model_spec(spec, label)
    except ConfigError as exc:
        assert repr(spec) in str(exc)
        return
    assert got_label.strip() and name.strip() and (pretrained is None or pretrained)
    assert label is None or got_label == label
    tail = name + (f"@{pretrained}" if pretrained else "")
    assert spec in (tail, f"{got_label}={tail}")                # nothing of the spec lost or invented
    assert "/" not in spec.partition("=")[0] or spec == tail    # a path-like left side is never a label


@pytest.mark.parametrize("n", SIZES)
def test_property_a_model_spec_parses_without_loss_or_is_one_error_naming_it(n):
    run(_spec_parsed_or_refused, n, SPECS, st.one_of(st.none(), st.none(), st.sampled_from(["best", " "])))


def test_models_load_onto_the_accelerator_when_present(monkeypatch):
    """issue #28: notebook 05 loaded every model with load_model's default device, the CPU, and the
    suite never moved it: every paper model x ~280k images encoded on the CPU of a GPU box."""
    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(model_specs, "load_model", lambda name, pretrained=None, **kw: asked.append(kw) or name)
    specs = [model_specs.ModelSpec("a", "rsdix-tiny"), model_specs.ModelSpec("b", "rsdix-tiny")]
    bundles, missing = load_bundles(specs)
    assert list(bundles) == ["a", "b"] and not missing
    assert [kw.get("device") for kw in asked] == ["cuda", "cuda"]
    load_bundles(specs[:1], device="cpu")            # --device / a notebook parameter overrides
    assert asked[-1]["device"] == "cpu"
