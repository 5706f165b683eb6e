"""Checking a local dataset copy against the registry (rsdix.data.check), directly and from the CLI."""
from __future__ import annotations

import json

import pytest

from data_fixtures import make_image
from rsdix.__main__ import main
from rsdix.data.check import check_dataset


@pytest.mark.data
def test_data_check_cli(data_root, capsys, tmp_path):
    assert main(["data", "check", "whu_rs19", "--root", str(data_root), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "images: 1005" in out and "result: OK" in out
    assert main(["data", "check", "rsicd", "--root", str(tmp_path)]) == 1
    assert "dataset folder not found" in capsys.readouterr().out


def test_data_check_reports_problems(tmp_path, monkeypatch):
    root = tmp_path / "root"
    folder = root / "ucm_captions"
    make_image(folder / "images" / "1.jpg")
    (folder / "images" / "2.jpg").write_bytes(b"garbage")
    folder.joinpath("dataset_ucm.json").write_text(json.dumps({"images": [
        {"filename": "1.jpg", "split": "train", "sentences": [{"raw": ""}]},
        {"filename": "2.jpg", "split": "weird", "sentences": [{"raw": "ok"}]},
        {"filename": "3.jpg", "split": "test", "sentences": [{"raw": "ok"}]}]}))
    report = check_dataset("ucm_captions", root)
    text = "\n".join(report.errors)
    assert not report.ok
    assert "unknown split 'weird'" in text and "1.jpg caption 0 is empty" in text
    assert "2.jpg: corrupt" in text and "3.jpg: image file not found" in text
    assert any("images: found 3, registry expects 2100" in w for w in report.warnings)
