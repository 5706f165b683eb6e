"""make reproduce: papermill runner (skip up-to-date, stop on failure naming notebook and cell),
and the committed notebooks' hygiene (parameters cell first, no outputs)."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import rsdix.reproduce as reproduce
from rsdix.paths import repo_root


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\ndata_root = None\nseed = 0\nout_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_runner_skips_up_to_date_and_reports_failures(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    ok = _notebook(folder / "01_ok.ipynb", "from pathlib import Path\n"
                   "Path(out_dir, 'ran.txt').open('a').write(profile + '\\n')")
    monkeypatch.setattr(reproduce, "notebooks", lambda: [ok])
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "fig"
    times = reproduce.run("smoke", out_dir=str(out))
    assert list(times["status"]) == ["ran"]
    assert (out / "ran.txt").read_text() == "smoke\n"          # parameters reached the notebook
    executed = nbformat.read(tmp_path / "runs" / "smoke" / "notebooks" / "01_ok.ipynb", as_version=4)
    assert any(c.metadata.get("tags") == ["injected-parameters"] for c in executed.cells)
    times = reproduce.run("smoke", out_dir=str(out))
    assert list(times["status"]) == ["skipped"]                # inputs unchanged
    assert (out / "RESULTS.md").exists()

    bad = _notebook(folder / "02_bad.ipynb", "x = 1", "raise ValueError('boom in cell')")
    monkeypatch.setattr(reproduce, "notebooks", lambda: [ok, bad])
    with pytest.raises(SystemExit) as err:
        reproduce.run("smoke", out_dir=str(out))
    msg = str(err.value)
    assert "02_bad.ipynb" in msg and "cell 3" in msg and "raise ValueError" in msg and "boom in cell" in msg
    assert (tmp_path / "runs" / "smoke" / "notebooks" / "02_bad.ipynb").exists()   # partial output kept


def test_committed_notebooks_are_clean():
    notebooks = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        first = nb["cells"][0] if nb["cells"][0]["cell_type"] == "code" else nb["cells"][1]
        assert "parameters" in first["metadata"].get("tags", []), f"{path.name}: no parameters cell first"
        src = "".join(first["source"])
        for name in ("profile", "data_root", "seed", "out_dir"):
            assert f"{name} =" in src, f"{path.name}: parameter {name} missing"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, \
                    f"{path.name}: committed with outputs"


def test_results_summary_puts_published_numbers_beside_ours(tmp_path, monkeypatch):
    from rsdix.paths import RunDirs
    from rsdix.report import headline_table, write_results_summary
    from rsdix.results import Result, append_results

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    dirs = RunDirs("smoke", out_dir=tmp_path / "fig")
    append_results([Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 31.0, seed=0),
                    Result("rsdix_s1", "WHU-RS19", "zero-shot", "top1", 33.0, seed=1),
                    Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 10.0, seed=0, split="val")], dirs.results)
    text = open(write_results_summary(dirs)).read()
    assert "RSDiX-CLIP ViT-B/32: 98.4" in text and "## Environment" in text
    table = headline_table(dirs)
    row = table[(table["model"] == "rsdix") & (table["split"] == "test")].iloc[0]
    assert row["ours"].startswith("32 [") and row["seeds"] == 2     # seeds pooled, splits kept apart
