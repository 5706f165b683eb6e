"""Provenance: MANIFEST.json (what a run was made from, which notebook wrote each file), the
runner finding writers and deleting outputs a notebook no longer writes, ``rsdix reproduce
--status`` naming what changed, and the committed figures/cpu holding exactly its manifest's files."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

import rsdix.reporting.reproduce as reproduce
from rsdix.cli import main
from rsdix.paths import repo_root
from rsdix.reporting import provenance
from rsdix.reporting.summary import RUNNER_FILES


def _notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "cpu"\ndata_root = None\nseed = 0\nout_dir = None'),
                nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def _writes(*names: str) -> str:
    """A notebook cell writing ``names`` into out_dir."""
    return "\n".join(f"open(out_dir + '/{n}', 'w').write('{n}')" for n in names)


def test_the_runner_names_each_files_writer_and_deletes_what_a_notebook_no_longer_writes(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    first = _notebook(folder / "01_a.ipynb", _writes("01_table.csv", "01_old.png"))
    second = _notebook(folder / "02_b.ipynb", _writes("02_fig.png"))

    def fake_execute(src, target, parameters, **kwargs):   # runs the last cell with the parameters
        Path(target).write_text(Path(src).read_text())
        out_dir = parameters["out_dir"]                      # noqa: F841 - read by the cell
        exec(nbformat.read(src, as_version=4).cells[-1].source)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(reproduce, "notebooks", lambda: [first, second])
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    data = tmp_path / "data"
    (data / "ucm_captions").mkdir(parents=True)
    (data / "ucm_captions" / "dataset_ucm.json").write_text("{}")
    out = tmp_path / "fig"
    reproduce.run("smoke", data_root=str(data), out_dir=str(out))
    made = json.loads((out / provenance.MANIFEST).read_text())
    writers = {name: entry["notebook"] for name, entry in made["outputs"].items()}
    assert writers == {"01_table.csv": "01_a.ipynb", "01_old.png": "01_a.ipynb", "02_fig.png": "02_b.ipynb",
                       **{f: provenance.RUNNER for f in RUNNER_FILES if f != "results.csv"}}   # no rows written
    assert made["outputs"]["02_fig.png"]["sha256"] == provenance.file_sha256(out / "02_fig.png")
    assert set(made["inputs"]["data"]) == {"ucm_captions"} and "rsdix/training" in made["inputs"]["code"]
    assert set(made["inputs"]["notebooks"]) == {"01_a.ipynb", "02_b.ipynb"}
    assert reproduce.status("smoke", str(data), str(out))[0]

    _notebook(first, _writes("01_table.csv"))               # 01 no longer writes 01_old.png
    times = reproduce.run("smoke", data_root=str(data), out_dir=str(out))
    assert list(times["status"]) == ["ran", "ran"]           # 02 is downstream of 01
    assert not (out / "01_old.png").exists()
    made = json.loads((out / provenance.MANIFEST).read_text())
    assert "01_old.png" not in made["outputs"] and made["outputs"]["02_fig.png"]["notebook"] == "02_b.ipynb"
    times = reproduce.run("smoke", data_root=str(data), out_dir=str(out))
    assert list(times["status"]) == ["skipped", "skipped"]   # skipped notebooks keep their files' writers
    assert json.loads((out / provenance.MANIFEST).read_text())["outputs"]["01_table.csv"]["notebook"] == "01_a.ipynb"

    # a fresh run folder (another machine, the committed figures): every notebook runs; an output of
    # the committed manifest that no notebook writes any more goes, a file no manifest listed stays
    _notebook(second, _writes("02_new.png"))
    (out / "notes.txt").write_text("a user's file")
    shutil.rmtree(tmp_path / "runs")
    reproduce.run("smoke", data_root=str(data), out_dir=str(out))
    assert not (out / "02_fig.png").exists() and (out / "02_new.png").exists() and (out / "notes.txt").exists()
    made = json.loads((out / provenance.MANIFEST).read_text())
    assert made["outputs"]["notes.txt"]["notebook"] == "unknown"


def _made(tmp_path, notebooks):
    """A package copy, a data root, a figures folder with one notebook's file, and its manifest."""
    package = tmp_path / "rsdix"
    shutil.copytree(provenance.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    data = tmp_path / "data"
    for name in ("ucm_captions", "whu_rs19"):
        (data / name).mkdir(parents=True)
        (data / name / "a.txt").write_text(name)
    figures, run = tmp_path / "fig", tmp_path / "run"
    figures.mkdir()
    run.mkdir()
    (figures / "03_methods.csv").write_text("run,mR\nrsdix_s0,30.1\n")
    provenance.record_outputs(run, figures, notebooks[0].name, ["03_methods.csv"])
    provenance.write_manifest(figures, run, "cpu", provenance.inputs(notebooks, data, package),
                            {"commit": "0123456789abcdef", "dirty": False}, {"profile": "cpu", "seed": 0}, [])
    return package, data, figures


def test_status_is_current_until_an_input_changes_and_names_what_changed(tmp_path):
    nbs = [_notebook(tmp_path / "03_x.ipynb", "x = 1")]
    package, data, figures = _made(tmp_path, nbs)
    current, text = provenance.status(figures, nbs, data, package)
    assert current and text.startswith("current: ") and "results from commit 0123456789ab" in text

    (package / "benchmarks" / "train.py").write_text("# edited\n")          # no notebook reads it
    current, text = provenance.status(figures, nbs, data, package)
    assert current and "read by no notebook (results still current): rsdix/benchmarks" in text

    with (package / "configs" / "methods" / "cpu.yaml").open("a") as fh:
        fh.write("# edited\n")
    with (package / "training" / "loop.py").open("a") as fh:
        fh.write("# edited\n")
    (data / "whu_rs19" / "a.txt").write_text("other bytes, same size")
    _notebook(nbs[0], "x = 2")
    current, text = provenance.status(figures, nbs, data, package)
    assert not current and text.startswith("stale: ")
    assert "code or configs changed since: rsdix/configs/methods, rsdix/training" in text
    assert "notebooks changed since: 03_x.ipynb" in text and "data changed since: whu_rs19" in text
    assert "rerun: make reproduce PROFILE=cpu" in text


def test_status_is_stale_on_an_edited_missing_or_unlisted_output(tmp_path):
    nbs = [_notebook(tmp_path / "03_x.ipynb", "x = 1")]
    package, data, figures = _made(tmp_path, nbs)
    (figures / "03_methods.csv").write_text("run,mR\nrsdix_s0,31.0\n")         # a number typed over
    (figures / "03_data_efficiency.png").write_bytes(b"an orphan")
    current, text = provenance.status(figures, nbs, data, package)
    assert not current
    assert "outputs modified since the run: 03_methods.csv" in text
    assert "files without a manifest entry: 03_data_efficiency.png" in text
    (figures / "03_methods.csv").unlink()
    assert "outputs missing: 03_methods.csv" in provenance.status(figures, nbs, data, package)[1]
    assert provenance.status(tmp_path / "nowhere", nbs, data, package)[1].startswith("stale: ")


def test_data_hashes_read_contents_not_times_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RSDIX_CACHE", str(tmp_path / "cache"))
    (tmp_path / "d" / "set").mkdir(parents=True)
    (tmp_path / "d" / "set" / "x.bin").write_bytes(b"12345")
    (tmp_path / "d" / ".hidden").write_text("left out")
    first = provenance.data_hashes(tmp_path / "d")
    assert set(first) == {"set"}
    shutil.copytree(tmp_path / "d", tmp_path / "copy")         # new times, same bytes
    assert provenance.data_hashes(tmp_path / "copy") == first
    assert len(json.loads((tmp_path / "cache" / "data_hashes.json").read_text())) == 1   # the last root's files
    assert provenance.data_hashes(tmp_path / "missing") == {}


def test_no_notebook_or_stage_reads_what_the_manifest_calls_unread():
    """benchmarks/ and cli/ are left out of the notebooks' stamps and of staleness: nothing a
    notebook runs may import them."""
    names = "|".join(n.removesuffix(".py") for n in provenance.NOT_READ)
    pattern = re.compile(rf"^\s*(from|import)\s+rsdix\.({names})\b|^\s*from\s+rsdix\s+import\s+({names})\b", re.M)
    sources = [(p.name, provenance.notebook_source(p)) for p in reproduce.notebooks()]
    sources += [(str(p), p.read_text()) for p in provenance.input_files()]
    assert [name for name, text in sources if pattern.search(text)] == []
    assert not any(p.relative_to(provenance.PACKAGE).parts[0] in provenance.NOT_READ for p in provenance.input_files())


def test_committed_figures_cpu_are_exactly_the_manifests_files(capsys):
    """figures/cpu holds the files its MANIFEST.json lists, each with the recorded sha256 and a
    notebook (or the runner) as its writer: no orphan a code change stopped producing, no table
    edited by hand. ``rsdix reproduce --status --profile cpu`` prints whether they are current."""
    figures = repo_root() / "figures" / "cpu"
    made = provenance.read_manifest(figures)
    assert made is not None, "figures/cpu/MANIFEST.json missing: make reproduce PROFILE=cpu"
    diff = provenance.compare(made, {"code": {}, "notebooks": {}, "data": {}}, figures)
    assert diff["without entry"] == [], f"files under figures/cpu no notebook wrote: {diff['without entry']}"
    assert diff["missing"] == [] and diff["modified"] == [] and diff["unknown writer"] == []
    names = {nb.name for nb in reproduce.notebooks()} | {provenance.RUNNER}
    assert {e["notebook"] for e in made["outputs"].values()} <= names
    code = main(["reproduce", "--status", "--profile", "cpu"])
    out = capsys.readouterr().out
    assert out.split(":")[0] in ("current", "stale") and (code == 0) == out.startswith("current")
