"""The package reads as the pipeline: stages import one way, no circles, no private names
across modules, imports at module top, modules of one idea (README: Architecture)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rsdix"
MAX_LINES = 600

# stage of each sub-package or root module; a module may import its own stage and earlier ones
STAGES = {
    "rsdix": 0, "rsdix.errors": 0, "rsdix.paths": 0, "rsdix.utils": 0, "rsdix.config": 0, "rsdix.viz": 0,
    "rsdix.log": 0, "rsdix.intervals": 0,
    "rsdix.data": 1,
    "rsdix.s2": 2,
    "rsdix.models": 3, "rsdix.results": 3,
    "rsdix.training": 4,
    "rsdix.captioning": 5, "rsdix.evaluation": 5,
    "rsdix.studies": 6,
    "rsdix.reporting": 7,
    "rsdix.benchmarks": 8,
    "rsdix.cli": 9, "rsdix.__main__": 9,
}
# stages of the same rank that must not import each other
SIBLINGS = {frozenset({"rsdix.captioning", "rsdix.evaluation"})}
# later stages that still must not import an earlier one: the generic report knows no study
# (a study registers its headline rows with rsdix.results)
FORBIDDEN = {("rsdix.reporting", "rsdix.studies")}
MAX_ROOT_MODULES = 10


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _stage(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in STAGES:
            return ".".join(parts[:n])
    raise AssertionError(f"{module}: no stage assigned in tests/test_architecture.py")


def _imports(module: str) -> list[tuple[ast.stmt, str, list[str], bool]]:
    """(node, imported module, names, at module level) for every import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top = set()
    for node in tree.body:  # module level, including under if/try (TYPE_CHECKING, optional imports)
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            top.add(id(sub))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node, alias.name, [], id(node) in top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node, name, [a.name for a in node.names], id(node) in top))
    return out


def _internal(name: str, names: list[str]) -> list[str]:
    """The rsdix modules an import statement reaches (``from rsdix import x`` reaches ``rsdix.x``)."""
    if not (name == "rsdix" or name.startswith("rsdix.")):
        return []
    targets = [f"{name}.{n}" for n in names if f"{name}.{n}" in MODULES]
    return targets or [name]


def test_every_module_has_a_stage():
    for module in MODULES:
        _stage(module)


def test_imports_run_down_the_pipeline():
    wrong = []
    for module in MODULES:
        here = _stage(module)
        for node, name, names, _ in _imports(module):
            for target in _internal(name, names):
                there = _stage(target)
                if (STAGES[there] > STAGES[here] or (there != here and frozenset({here, there}) in SIBLINGS)
                        or (here, there) in FORBIDDEN):
                    wrong.append(f"{module}:{node.lineno} imports {target} ({here} may not import {there})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    graph = {m: set() for m in MODULES}
    for module in MODULES:
        for _, name, names, _top in _imports(module):  # in-function imports count too
            graph[module].update(t for t in _internal(name, names) if t in MODULES and t != module)
    # Tarjan's strongly connected components
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package importing its own sub-module (re-export) is not a circle
            if len(comp) > 1 and not all(c.startswith(min(comp, key=len)) for c in comp):
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_no_private_names_across_modules():
    wrong = [f"{module}:{node.lineno} imports {name}.{n}"
             for module in MODULES for node, name, names, _ in _imports(module)
             if name.startswith("rsdix") and name != module
             for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_tests_import_no_private_names():
    wrong = []
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rsdix"):
                wrong += [f"{path.name}:{node.lineno} {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_imports_in_functions_say_why():
    """Imports belong at module top; one inside a function (a heavy optional dependency, a
    real cycle) says why in a comment on its line."""
    wrong = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node, name, _, top in _imports(module):
            if not top and "#" not in lines[node.lineno - 1] and "#" not in lines[node.end_lineno - 1]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} import {name}")
    assert not wrong, f"{len(wrong)} in-function imports without a reason:\n" + "\n".join(wrong)


def test_the_root_holds_few_modules():
    """The package root holds the core (errors, paths, config, log, ...); every stage is a sub-package."""
    root = sorted(p.name for p in PACKAGE.glob("*.py")) + sorted(f"{p.name}/" for p in PACKAGE.iterdir()
                                                                if p.is_dir() and (p / "__init__.py").exists()
                                                                and p.name not in {s.split(".")[1] for s in STAGES
                                                                                   if s.count(".") == 1})
    modules = [n for n in root if n.endswith(".py")]
    assert len(modules) <= MAX_ROOT_MODULES, f"{len(modules)} modules at the root (at most {MAX_ROOT_MODULES}): {modules}"


def test_one_module_name_means_one_thing():
    """Two modules of one name in different stages (``evaluation/checkpoints`` vs ``training/checkpoints``)
    read as one idea and are two: each file name has one meaning across the package."""
    stems: dict[str, set] = {}
    for module in MODULES:
        if module.count(".") < 1 or MODULES[module].name in ("__init__.py", "__main__.py"):
            continue
        stems.setdefault(module.rsplit(".", 1)[1], set()).add(_stage(module))
    doubled = {stem: sorted(stages) for stem, stages in stems.items() if len(stages) > 1}
    assert not doubled, f"module names used in more than one stage: {doubled}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_hold_one_idea(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines (split it by idea; at most {MAX_LINES})"


TEST_FOLDERS = {"core": "the root modules", "data": "rsdix/data", "s2": "rsdix/s2", "models": "rsdix/models",
                "training": "rsdix/training", "captioning": "rsdix/captioning", "evaluation": "rsdix/evaluation",
                "studies": "rsdix/studies", "studies/efficiency": "rsdix/studies/efficiency",
                "studies/caption_metrics": "rsdix/studies/caption_metrics", "reporting": "rsdix/reporting",
                "benchmarks": "rsdix/benchmarks", "cli": "rsdix/cli"}
REPOSITORY_TESTS = {"test_architecture.py", "test_makefile.py", "test_readme.py"}   # the repository as a whole


def test_tests_mirror_the_package():
    """tests/<stage>/test_<module>.py: a module's tests sit in its stage's folder."""
    tests = Path(__file__).parent
    wrong = [str(p.relative_to(tests)) for p in tests.rglob("test_*.py")
             if (p.parent == tests and p.name not in REPOSITORY_TESTS)
             or (p.parent != tests and str(p.parent.relative_to(tests)) not in TEST_FOLDERS)]
    assert not wrong, f"test files outside tests/<stage>/: {wrong}"
