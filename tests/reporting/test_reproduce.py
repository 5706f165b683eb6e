"""make reproduce: papermill runner (skip up-to-date, stop on failure naming notebook and cell),
and the committed notebooks' hygiene (parameters cell first, no outputs). RESULTS.md: test_summary.py."""
from __future__ import annotations

import io
import json
import logging
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

import rsdix.reporting.reproduce as reproduce
from rsdix.paths import repo_root
from rsdix.results import Result, append_results


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "cpu"\ndata_root = None\nseed = 0\nout_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_runner_skips_up_to_date_and_reports_failures(tmp_path, monkeypatch, capfd, caplog):
    caplog.set_level(logging.INFO, logger="rsdix")   # as the rsdix command line logs
    folder = tmp_path / "nbs"
    folder.mkdir()
    ok = _notebook(folder / "01_ok.ipynb", "from pathlib import Path\n"
                   "Path(out_dir, 'ran.txt').open('a').write(profile + ' ' + data_root + '\\n')")
    monkeypatch.setattr(reproduce, "notebooks", lambda: [ok])
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)   # relative paths are the caller's, not the notebook folder's
    out = tmp_path / "fig"
    (tmp_path / "data").mkdir()   # a missing root would get the synthetic one (test_synthetic.py)
    times = reproduce.run("smoke", data_root="data", out_dir="fig")
    assert list(times["status"]) == ["ran"]
    assert (out / "ran.txt").read_text() == f"smoke {tmp_path / 'data'}\n"   # parameters reached the notebook
    terminal = "".join(capfd.readouterr())
    assert "[reproduce] 01_ok.ipynb cell 2/2 `from pathlib import Path` " in terminal   # one line per cell
    assert re.search(r"cell 2/2 `from pathlib import Path` \d+\.\d s\n", terminal)
    for noise in ("without encryption", "KeyboardInterrupt", "IProgress"):
        assert noise not in terminal
    executed = nbformat.read(tmp_path / "runs" / "smoke" / "notebooks" / "01_ok.ipynb", as_version=4)
    assert any(c.metadata.get("tags") == ["injected-parameters"] for c in executed.cells)
    first_seconds = times["seconds"].iloc[0]
    times = reproduce.run("smoke", data_root="data", out_dir=str(out))
    assert list(times["status"]) == ["skipped"]                # inputs unchanged
    assert times["last_run_s"].iloc[0] == pytest.approx(first_seconds)   # the real run's time is kept
    assert (out / "RESULTS.md").exists() and "End to end" in (out / "RESULTS.md").read_text()
    results = tmp_path / "runs" / "smoke" / "results.csv"
    append_results([Result(model="retired-row", dataset="UCM", task="retrieval", metric="mR", value=1.0)], results)
    reproduce.run("smoke", data_root="data", out_dir=str(out), only=["01"], force=True)
    assert results.exists()                                   # --only: other notebooks' rows stay
    reproduce.run("smoke", data_root="data", out_dir=str(out), force=True)
    assert not results.exists()                               # all notebooks rerun: a fresh table
    assert "retired-row" in (results.parent / "results.previous.csv").read_text()

    # a notebook's rows from an earlier run that it no longer writes are dropped once it succeeds;
    # other notebooks' rows and rows written outside make reproduce stay
    writer = ("from rsdix.paths import RunDirs\nfrom rsdix.results import Result, append_results\n"
              "append_results([Result(model={!r}, dataset='UCM', task='retrieval', metric='mR', value=1.0)],"
              " RunDirs(profile, out_dir).results)")
    rows_nb = _notebook(folder / "01_rows.ipynb", writer.format("old-name"))
    monkeypatch.setattr(reproduce, "notebooks", lambda: [rows_nb])
    append_results([Result(model="by-hand", dataset="UCM", task="retrieval", metric="mR", value=2.0)], results)
    reproduce.run("smoke", data_root="data", out_dir=str(out))
    _notebook(rows_nb, writer.format("new-name"))
    reproduce.run("smoke", data_root="data", out_dir=str(out))
    table = pd.read_csv(results)
    assert sorted(table["model"]) == ["by-hand", "new-name"]
    assert table.set_index("model").loc["new-name", "source"].startswith("01_rows.ipynb@")

    bad = _notebook(folder / "02_bad.ipynb", "x = 1", "raise ValueError('boom in cell')")
    monkeypatch.setattr(reproduce, "notebooks", lambda: [ok, bad])
    with pytest.raises(SystemExit) as err:
        reproduce.run("smoke", data_root="data", out_dir=str(out))
    msg = str(err.value)
    terminal = "".join(capfd.readouterr())
    assert re.search(r"02_bad.ipynb cell 3/3 `raise ValueError\('boom in cell'\)` \d+\.\d s failed\n", terminal)
    assert "KeyboardInterrupt" not in terminal and "without encryption" not in terminal
    assert "02_bad.ipynb, cell 3, line 1 (`raise ValueError('boom in cell')`) raised ValueError: boom in cell" in msg
    assert (tmp_path / "runs" / "smoke" / "notebooks" / "02_bad.ipynb").exists()   # partial output kept


def test_committed_notebooks_are_clean():
    notebooks = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        title, first = nb["cells"][0], nb["cells"][1]
        assert title["cell_type"] == "markdown" and "".join(title["source"]).startswith(f"# {path.name[:2]} · "), \
            f"{path.name}: the first cell must be the title ('# NN · ...')"
        assert first["cell_type"] == "code" and "parameters" in first["metadata"].get("tags", []), \
            f"{path.name}: the second cell must be the papermill parameters cell"
        src = "".join(first["source"])
        for name in ("profile", "data_root", "seed", "out_dir"):
            assert f"{name} =" in src, f"{path.name}: parameter {name} missing"
        if (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5):  # nbformat 4.5: every cell has a unique id
            ids = [c.get("id") for c in nb["cells"]]
            assert None not in ids and len(set(ids)) == len(ids), f"{path.name}: cell ids missing or repeated"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, \
                    f"{path.name}: committed with outputs"


def test_notebooks_are_in_the_format_jupyterlab_writes():
    """Opening and saving a notebook in Lab (nbformat's writer) changes no byte: sorted keys, one-space
    indent, the kernelspec of the ``rsdix`` kernel (``make setup`` installs it) and language_info."""
    import nbformat

    for path in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text()
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nbformat.writes(nb) + "\n" == text, f"{path.name}: not in nbformat's own format"
        assert nb.metadata["kernelspec"]["name"] == "rsdix", path.name
        assert nb.metadata["language_info"]["name"] == "python", path.name


def test_only_keeps_the_upstream_stamps_of_notebooks_it_does_not_run(tmp_path, monkeypatch):
    """``--only 02`` after a full run must find 02 up to date (and leave it so for the next full run)."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbs = [_notebook(folder / "01_a.ipynb", "x = 1"), _notebook(folder / "02_b.ipynb", "y = 2")]
    ran = []

    def fake_execute(src, target, **kwargs):
        assert kwargs["extra_arguments"] == reproduce.KERNEL_ARGS   # the kernel's own log stays quiet
        ran.append(Path(src).name)
        Path(target).write_text(Path(src).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(reproduce, "notebooks", lambda: nbs)
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    out = str(tmp_path / "fig")
    assert list(reproduce.run("smoke", out_dir=out)["status"]) == ["ran", "ran"]
    only = reproduce.run("smoke", out_dir=out, only=["02"])
    assert list(only["status"]) == ["not run", "skipped"]     # 01 left out, listed with its earlier time
    assert only["last_run_s"].notna().all()
    assert list(reproduce.run("smoke", out_dir=out)["status"]) == ["skipped", "skipped"]
    assert ran == ["01_a.ipynb", "02_b.ipynb"]


@pytest.mark.parametrize("edit", ["configs/train/smoke.yaml", "training/loop.py"])
def test_a_changed_config_or_module_makes_notebook_03_run_again(tmp_path, monkeypatch, edit):
    """The stamp covers the whole package: before, it hashed only the folder of the module computing it
    (rsdix/reporting/ since the stage move), so an edited training config or training module left
    every notebook "up to date" and the old results in place."""
    package = tmp_path / "rsdix"
    shutil.copytree(reproduce.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(reproduce, "PACKAGE", package)
    ran = []

    def fake_execute(src, target, **kwargs):
        ran.append(Path(src).name)
        Path(target).write_text(Path(src).read_text())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    out = str(tmp_path / "fig")
    assert set(reproduce.run("smoke", out_dir=out)["status"]) == {"ran"}
    assert set(reproduce.run("smoke", out_dir=out)["status"]) == {"skipped"}
    with (package / edit).open("a") as fh:
        fh.write("\n# a user's comment\n")
    times = reproduce.run("smoke", out_dir=out)
    assert times.set_index("notebook").loc["03_distillation_training.ipynb", "status"] == "ran"


def test_cell_status_one_line_per_cell_numbered_as_in_the_notebook(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rsdix")
    nb = _notebook(tmp_path / "01_x.ipynb", "x = 1", "y = " + "2" * 80)
    nb_json = nbformat.read(nb, as_version=4)
    nb_json.cells.insert(1, nbformat.v4.new_markdown_cell("# a heading"))
    nbformat.write(nb_json, nb)
    out = io.StringIO()
    status = reproduce.CellStatus("01_x.ipynb", stream=out)
    assert status.count(nb) == 3 and set(status.hooks()) == {"on_cell_execute", "on_cell_executed"}
    executed = nbformat.read(nb, as_version=4).cells       # as papermill runs them: parameters injected
    injected = nbformat.v4.new_code_cell("profile = 'smoke'")
    injected.metadata["tags"] = ["injected-parameters"]
    executed.insert(1, injected)
    ok, failed = {"content": {"status": "ok"}}, {"content": {"status": "error"}}
    for index, cell in enumerate(executed):
        if cell.cell_type != "code":
            continue
        status.cell_start(cell=cell, cell_index=index)
        status.cell_end(cell=cell, cell_index=index, execute_reply=failed if index == 4 else ok)
    lines = out.getvalue().splitlines()
    assert [re.sub(r"\d+\.\d s", "T s", line) for line in lines] == [
        '[reproduce] 01_x.ipynb cell 1/4 `profile = "cpu"` T s',      # the markdown cell (2) is not run
        "[reproduce] 01_x.ipynb cell 3/4 `x = 1` T s",
        "[reproduce] 01_x.ipynb cell 4/4 `y = " + "2" * 53 + "...` T s failed"]
    status.cell_start(cell=executed[3], cell_index=3)          # the kernel died mid-cell
    status.close()
    assert out.getvalue().endswith(" s, stopped\n")
    caplog.set_level(logging.WARNING, logger="rsdix")          # rsdix --quiet reproduce: no cell lines
    assert reproduce.CellStatus("01_x.ipynb").hooks() == {}


def test_the_kernel_is_the_notebooks_own_when_installed_else_python3(monkeypatch):
    from rsdix.reporting import reproduce

    monkeypatch.setattr(reproduce.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/k"})
    assert reproduce.kernel_name() == "python3" and reproduce.kernel_name("mine") == "mine"
    monkeypatch.setattr(reproduce.KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/k", "rsdix": "/r"})
    assert reproduce.kernel_name() == "rsdix"


# the traceback a kernel (IPython 9) sends for cell In[2] = "def f():\n    return 1/0\n\ny = 2\nf()\nz = 3",
# colours included: the error is raised in f (line 2), called from line 5
_CELL = "def f():\n    return 1/0\n\ny = 2\nf()\nz = 3"
_TRACEBACK = [
    "\x1b[31m---------------------------------------------------------------------------\x1b[39m",
    "\x1b[31mZeroDivisionError\x1b[39m                         Traceback (most recent call last)",
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[2]\x1b[39m\x1b[32m, line 5\x1b[39m\n"
    "\x1b[32m      4\x1b[39m y = \x1b[32m2\x1b[39m\n\x1b[32m----> \x1b[39m\x1b[32m5\x1b[39m f()\n",
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[2]\x1b[39m\x1b[32m, line 2\x1b[39m, in \x1b[36mf\x1b[39m"
    "\x1b[34m()\x1b[39m\n\x1b[32m      1\x1b[39m def f():\n\x1b[32m----> \x1b[39m\x1b[32m2\x1b[39m     return 1/0\n",
    "\x1b[31mZeroDivisionError\x1b[39m: division by zero"]


def test_a_failing_cell_is_named_by_the_line_that_raised(tmp_path):
    source = _notebook(tmp_path / "01_x.ipynb", "x = 1", _CELL)
    executed = nbformat.read(source, as_version=4)
    executed.cells[1].execution_count, executed.cells[2].execution_count = 1, 2
    nbformat.write(executed, tmp_path / "out.ipynb")
    exc = papermill.PapermillExecutionError(2, 2, _CELL, "ZeroDivisionError", "division by zero\nmore detail",
                                            _TRACEBACK)
    msg = reproduce.failure_line(source, tmp_path / "out.ipynb", exc)
    assert msg == "01_x.ipynb, cell 3, line 2 (`return 1/0`) raised ZeroDivisionError: division by zero"
    # a frame of a function defined in another cell (In[1]) is not this cell's line
    other = [f.replace("In[2]\x1b[39m\x1b[32m, line 2", "In[1]\x1b[39m\x1b[32m, line 2") for f in _TRACEBACK]
    assert reproduce.raising_line(_CELL, other, 2) == (5, "f()")
    # IPython < 8 names a cell frame <ipython-input-N-hash> and the line by its arrow
    old = ["ZeroDivisionError  Traceback", "<ipython-input-2-0f3a9c> in <module>\n      4 y = 2\n----> 5 f()\n"]
    assert reproduce.raising_line(_CELL, old, 2) == (5, "f()")
    # no cell frame (e.g. a SyntaxError): the cell's first line, as before
    exc = papermill.PapermillExecutionError(2, 2, _CELL, "SyntaxError", "invalid syntax", ["SyntaxError: x"])
    assert "cell 3 (`def f():`) raised SyntaxError: invalid syntax" in reproduce.failure_line(
        source, tmp_path / "out.ipynb", exc)
