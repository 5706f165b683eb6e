"""``rsdix zoo`` and ``rsdix export`` on the command line: the list with sources, the offline line,
a stand-in checked, every present checkpoint evaluated under every protocol."""
from __future__ import annotations

import pandas as pd

from evaluation_fixtures import class_folder  # noqa: F401 (a pytest fixture)
from rsdix.cli import main
from rsdix.data.registry import REGISTRY, DatasetInfo
from rsdix.models import load_model
from rsdix.models import zoo as zoo_module
from rsdix.models.zoo_standins import write_standin


def test_zoo_list_prints_one_line_per_checkpoint_with_its_source(capsys, tmp_path):
    assert main(["zoo", "list", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    entries = lines[:-1]
    assert len(entries) >= 12 and all(("hf:" in line or "https://" in line) for line in entries)
    assert any(line.startswith("RemoteCLIP-ViT-B-32 ") and "ViT-B-32-quickgelu" in line for line in entries)
    assert lines[-1].startswith(f"{len(entries)} checkpoints") and "0 present" in lines[-1]


def test_zoo_get_offline_is_one_line_with_the_url_and_the_path(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_module, "hub_reachable", lambda host="", timeout=3.0: False)
    assert main(["zoo", "get", "GeoRSCLIP-ViT-B-32", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "https://huggingface.co/Zilun/GeoRSCLIP/resolve/main/ckpt/RS5M_ViT-B-32.pt" in err
    assert str(tmp_path / "checkpoints" / "RS5M_ViT-B-32.pt") in err


def test_zoo_show_and_check(capsys, tmp_path):
    write_standin("GeoRSCLIP-ViT-H-14", tmp_path, cheap=True)
    assert main(["zoo", "check", "GeoRSCLIP-ViT-H-14", "--root", str(tmp_path)]) == 0
    assert "keys and shapes fit ViT-H-14" in capsys.readouterr().out
    assert main(["zoo", "check", "GeoRSCLIP-ViT-L-14", "--root", str(tmp_path)]) == 2   # absent: one line
    assert main(["zoo", "show", "SkyCLIP-ViT-L-14"]) == 0
    out = capsys.readouterr().out
    assert "ViT-L-14-quickgelu" in out and "skyscript" in out


def test_zoo_evaluate_runs_every_present_checkpoint_under_every_protocol(class_folder, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(REGISTRY, "whu_rs19", DatasetInfo("whu_rs19", "WHU-RS19", "classification", "folders", "cls"))
    load_model("rsdix-tiny")                           # registers the tiny architecture the stand-in uses
    write_standin("RS-M-CLIP", tmp_path / "w", arch="rsdix-tiny")
    out = tmp_path / "out"
    assert main(["zoo", "evaluate", "--root", str(tmp_path / "w"), "--config", "smoke", "--out", str(out),
                 "--data-root", str(class_folder.parent), "--set", "zero_shot=[whu_rs19]", "retrieval=[]",
                 "split_from={}"]) == 0
    assert "1 checkpoint(s): RS-M-CLIP" in capsys.readouterr().out
    table = pd.read_csv(out / "sensitivity.csv")
    assert list(table["model"]) == ["RS-M-CLIP"] and {"rsdix", "skyscript", "rs_transclip", "range"} <= set(table.columns)
    assert (out / "sensitivity.png").is_file() and (out / "results.csv").is_file()
