"""``rsdix data list`` names its root; ``rsdix data plan`` lists what a profile reads and how to get it."""
from rsdix.cli import main


def test_data_list_prints_the_root_it_read(tmp_path, capsys):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"data root: {tmp_path} (from --root; present)"


def test_data_plan_lists_present_and_missing_with_one_voice(tmp_path, capsys):
    (tmp_path / "ucm_captions").mkdir()
    assert main(["data", "plan", "--profile", "paper", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"profile paper; data root: {tmp_path}")
    rsicd = next(line for line in out.splitlines() if " rsicd " in line)
    assert rsicd.split()[0] == "MISSING" and "no direct download link" in rsicd and "rsdix data download" not in rsicd
    assert f"{tmp_path}/rsicd/dataset_rsicd.json + images/" in rsicd
    assert "s2 scene" in out and out.rstrip().endswith("`make smoke` runs without any data (a synthetic sample)")


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


def test_default_evaluate_folders_differ_for_two_model_folders_of_one_name(tmp_path, monkeypatch):
    from rsdix.cli import default_evaluate_dir

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    for side in ("a", "b"):
        (tmp_path / side / "model").mkdir(parents=True)
    a, b = (default_evaluate_dir(str(tmp_path / s / "model"), "model") for s in ("a", "b"))
    assert a != b and a.parent == b.parent == tmp_path / "runs" / "evaluate" and a.name.startswith("model-")
    assert default_evaluate_dir(f"x={tmp_path / 'a' / 'model'}", "x") == a.with_name("x-" + a.name.split("-")[1])
    assert default_evaluate_dir("rsdix-tiny", "rsdix-tiny") == tmp_path / "runs" / "evaluate" / "rsdix-tiny"


def test_spice_install_offline_is_one_line_naming_the_url_and_the_folder(monkeypatch, tmp_path, capsys):
    """SPICE was left out with a warning and nothing installed its jars: `rsdix spice install` runs
    pycocoevalcap's downloader; offline it is one line with the URL and where the jars go."""
    import urllib.error

    from pycocoevalcap.spice import get_stanford_models

    from rsdix.captioning import pycoco

    monkeypatch.setattr(pycoco, "spice_lib", lambda: tmp_path / "lib")
    monkeypatch.setattr(pycoco, "spice_available", lambda: False)

    def offline():
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(get_stanford_models, "get_stanford_models", offline)
    assert main(["spice", "install"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stanford-corenlp-full-2015-12-09.zip" in err and str(tmp_path / "lib") in err
    assert main(["spice", "check"]) == 1
    monkeypatch.setattr(pycoco, "spice_available", lambda: True)
    assert main(["spice", "install"]) == 0 and "SPICE ready" in capsys.readouterr().out


def test_caption_a_folder_of_ones_own_images(tmp_path, capsys, monkeypatch):
    """`rsdix caption --images DIR --captioner RUN --encoder ENC` captions every image of the folder."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from captioning_fixtures import tiny_captioner
    from rsdix.captioning.training import save_captioner
    from rsdix.models import load_model

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    save_captioner(tiny_captioner(embed_dim=load_model("rsdix-tiny").embed_dim), tmp_path / "run" / "captioner")
    (tmp_path / "mine").mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / "mine" / f"tile{i}.png")
    (tmp_path / "mine" / "notes.txt").write_text("not an image")
    assert main(["caption", "--encoder", "rsdix-tiny", "--config", "smoke", "--images", str(tmp_path / "mine"),
                 "--captioner", str(tmp_path / "run")]) == 0
    out = tmp_path / "runs" / "caption" / "images" / "mine" / "captions.csv"
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.filename) == ["tile0.png", "tile1.png", "tile2.png"] and str(out) in capsys.readouterr().out
    assert main(["caption", "--encoder", "rsdix-tiny", "--images", str(tmp_path / "nowhere"),
                 "--captioner", str(tmp_path / "run")]) == 2
    assert "--images: folder not found" in capsys.readouterr().err


def test_a_preset_evaluated_is_seeded_and_labelled_random_weights():
    """`rsdix evaluate rsdix-tiny` built new random weights on every call (two runs, two sets of
    numbers) under a plain preset name; now they are seeded and every row says so."""
    from rsdix.cli import _load_model_spec

    (label_a, a, _), (label_b, b, _) = (_load_model_spec("rsdix-tiny", "cpu", seed=3) for _ in range(2))
    assert a.fingerprint() == b.fingerprint() and label_a == label_b == "rsdix-tiny-random-weights-s3"
    assert _load_model_spec("rsdix-tiny", "cpu", seed=4)[1].fingerprint() != a.fingerprint()
    assert _load_model_spec("mine=rsdix-tiny", "cpu")[0] == "mine"
