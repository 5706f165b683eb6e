"""The README fits on a screen and says nothing a test or CI does not run; the docs/ pages it links
exist; its results block is the one the results table generates; the configuration reference is
up to date with the config dataclasses.

What "a command appears" means here (:func:`unrun_commands`): each line of a code block in the
README, without its ``# comment``, is

* ``make TARGET [VAR=VALUE ...]``, where TARGET is a target CI reaches (``.ci/run`` runs
  ``make TARGET``, or a target it reaches lists TARGET as a prerequisite or runs ``$(MAKE)
  TARGET``) or one ``tests/test_makefile.py`` dry-runs (``_dry("TARGET", ...)``), and every VAR is
  a variable of the Makefile; or
* any other command, found verbatim (whitespace collapsed) in ``.ci/run`` or a ``tests/*.py`` file.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rsdix.data.synthetic import write_synthetic_root
from rsdix.paths import data_root
from rsdix.reporting import config_reference
from rsdix.reporting.summary import ENV_JSON, README_END, README_START, RESULTS_CSV, readme_block

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_BYTES = 12_800          # "at most ~12 KB"
WIDTH = 100
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def code_lines(text: str) -> list[str]:
    """The commands of the markdown's fenced code blocks (comments and blank lines left out)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue   # test_the_quick_start_rsdix_lines_run_verbatim runs them
        if inside:
            command = " ".join(line.split("#", 1)[0].split())
            if command:
                out.append(command)
    return out


def makefile_targets() -> tuple[dict[str, list[str]], set[str]]:
    """target -> the targets it reaches (prerequisites and ``$(MAKE) X`` in its recipe), and the
    Makefile's variables (``VAR ?=``, ``VAR :=``, ``$(VAR)``)."""
    text = (REPO / "Makefile").read_text()
    reaches: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        rule = re.match(r"^([A-Za-z][\w.-]*)\s*:(?!=)(.*)$", line)
        if rule:
            current = rule.group(1)
            reaches.setdefault(current, []).extend(w for w in rule.group(2).split() if not w.startswith("$"))
        elif line.startswith("\t") and current:
            reaches[current] += re.findall(r"\$\(MAKE\)\s+([\w-]+)", line)
        elif line.strip() and not line.startswith("\t"):
            current = None
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M)) | set(re.findall(r"\$\(([A-Z_]+)\)", text))
    return reaches, variables


def ci_targets() -> set[str]:
    reaches, _ = makefile_targets()
    todo = re.findall(r"^\s*make\s+([\w-]+)", (REPO / ".ci" / "run").read_text(), re.M)
    seen: set[str] = set()
    while todo:
        target = todo.pop()
        if target not in seen:
            seen.add(target)
            todo += reaches.get(target, [])
    return seen


def unrun_commands(text: str) -> list[str]:
    """The README commands that neither CI nor a test runs (see the module docstring)."""
    _, variables = makefile_targets()
    dry_run = set(re.findall(r"_dry\(\s*\"([\w-]+)\"", (REPO / "tests" / "test_makefile.py").read_text()))
    reached = ci_targets() | dry_run
    corpus = [" ".join((REPO / ".ci" / "run").read_text().split())]
    corpus += [" ".join(p.read_text().split()) for p in sorted((REPO / "tests").rglob("*.py")) if p.name != Path(__file__).name]
    missing = []
    for command in code_lines(text):
        if command in quick_start() and command.startswith(("rsdix ", "source ")):
            continue
        words = command.split()
        if words[0] == "make":
            target = words[1] if len(words) > 1 else ""
            names = [w.split("=", 1)[0] for w in words[2:]]
            if target not in reached or any("=" not in w for w in words[2:]) or not set(names) <= variables:
                missing.append(command)
        elif not any(command in body for body in corpus):
            missing.append(command)
    return missing


def test_readme_fits_on_a_screen():
    text = README.read_text()
    assert len(text.encode()) < MAX_BYTES, f"README.md is {len(text.encode())} bytes"
    long = [line for line in text.splitlines() if len(line) > WIDTH and not line.startswith("|")]
    assert not long, f"README lines over {WIDTH} characters (outside tables): {long}"
    assert "**Contents:**" in text and README_START in text and README_END in text
    for word in ("rsdix-tiny", "rsdix-small", "rsdix-cnn", "RSDIX_NO_PROGRESS"):
        assert word in text, word


def test_every_linked_page_exists():
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, _ in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):      # http:, https:, mailto:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, f"links to missing files: {broken}"
    linked = {t for t, _ in LINK.findall(README.read_text()) if t.startswith("docs/")}
    for stage in ("data", "s2lcd", "training", "captioning", "evaluation", "metric_study", "study", "paper",
                  "extending", "configuration", "architecture"):
        assert f"docs/{stage}.md" in linked, f"README links no docs/{stage}.md"


def test_every_readme_command_is_run_by_ci_or_a_test():
    assert code_lines(README.read_text()), "no commands found"
    assert unrun_commands(README.read_text()) == []


def test_the_appears_rule_is_strict():
    assert "smoke" in ci_targets() and "reproduce" in ci_targets() and "wordnet" in ci_targets()
    fake = "```bash\nmake deploy\nmake reproduce NOPE=1\nrsdix frobnicate --all\nmake smoke   # fine\n```"
    assert unrun_commands(fake) == ["make deploy", "make reproduce NOPE=1", "rsdix frobnicate --all"]


def test_the_results_block_is_generated_from_the_committed_results_table():
    figures = REPO / "figures" / "cpu"
    block = readme_block(pd.read_csv(figures / RESULTS_CSV), json.loads((figures / ENV_JSON).read_text()))
    assert block in README.read_text(), "README results block is stale: python -m rsdix.reporting.summary"


def test_the_configuration_reference_is_up_to_date():
    assert config_reference.main(["--check"]) == 0, \
        "docs/configuration.md is out of date: python -m rsdix.reporting.config_reference"


# ---------------------------------------------------------------- the quick start runs verbatim

def quick_start() -> list[str]:
    """The commands of the README's Quick start block, comments left out."""
    text = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [" ".join(line.split("#", 1)[0].split()) for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_the_quick_start_is_short_and_starts_with_set_up():
    lines = quick_start()
    assert len(lines) <= 10 and lines[0] == "make setup" and lines[1] == "source .venv/bin/activate"
    assert lines[-1] == "make smoke"   # CI runs it (.ci/run)


@pytest.mark.slow
def test_the_quick_start_rsdix_lines_run_verbatim(tmp_path):
    root = data_root(required=False)
    root = root if root.is_dir() else write_synthetic_root(tmp_path / "data")
    env = {**os.environ, "RSDIX_RUNS": str(tmp_path / "runs"), "RSDIX_DATA_ROOT": str(root)}
    printed = ""
    for line in quick_start():
        if not line.startswith("rsdix "):
            continue
        args = line.split()[1:]
        if args[0] == "evaluate":   # the folder `rsdix train` printed, as the README says
            assert f"model folder: {tmp_path / 'runs' / args[1].removeprefix('runs/')}" in printed
        done = subprocess.run([sys.executable, "-m", "rsdix", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode in (0, 1) if args[:2] == ["data", "plan"] else done.returncode == 0, \
            f"{line}: {done.stderr[-2000:]}"
        printed += done.stdout
    assert "mR" in printed or "top1" in printed   # evaluate printed its rows
