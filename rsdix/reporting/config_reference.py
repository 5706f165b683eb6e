"""``docs/configuration.md``: the configuration reference, generated from the config dataclasses
of :data:`rsdix.config.AREAS` (each field's dotted key, type, default, bounds or choices and the
comment beside it in the source), so the page cannot drift from the code; a test checks it is
up to date.

    python -m rsdix.reporting.config_reference          # rewrite docs/configuration.md
    python -m rsdix.reporting.config_reference --check  # exit 1 when it is out of date
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from pathlib import Path

from rsdix import config
from rsdix.paths import repo_root
from rsdix.utils import atomic_write_text

PAGE = Path("docs") / "configuration.md"
WIDTH = 100


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field in ``cls``'s source (and comment-only lines right under it)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    out = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        stop = body[i + 1].lineno if i + 1 < len(body) else len(lines) + 1
        text = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        for n in range(node.end_lineno + 1, stop):     # comment-only continuation lines
            if n in comments and lines[n - 1].strip().startswith("#"):
                text.append(comments[n])
            else:
                break
        if text:
            out[node.target.id] = " ".join(text)
    return out


def type_name(hint) -> str:
    """A readable type: ``int``, ``float | None``, ``list[str]``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def bounds(field: dataclasses.Field) -> str:
    """``>= 1``, ``0 .. 1``, ``> 0``, ``choices: a, b`` from :func:`rsdix.config.option`."""
    check = field.metadata.get("check", {})
    parts = []
    low, high = check.get("min"), check.get("max")
    op = ">" if check.get("min_exclusive") else ">="
    if low is not None and high is not None:
        parts.append(f"{op} {low:g}, <= {high:g}")
    elif low is not None:
        parts.append(f"{op} {low:g}")
    elif high is not None:
        parts.append(f"<= {high:g}")
    if check.get("choices") is not None:
        parts.append("choices: " + ", ".join(map(str, check["choices"])))
    return "; ".join(parts)


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def docline(cls: type) -> str:
    """The first paragraph of ``cls``'s own docstring (blank for the generated signature)."""
    doc = inspect.getdoc(cls) or ""
    if not cls.__doc__ or doc.startswith(f"{cls.__name__}("):
        return ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def field_rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """``(key, type, default, bounds, note)`` for every field of ``cls``, nested dataclasses as
    dotted keys (``loop.steps``)."""
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        hint = hints.get(field.name, field.type)
        key = f"{prefix}{field.name}"
        default = _default(field)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            note = notes.get(field.name, "") or docline(hint)
            rows.append((key, hint.__name__, "(section)", "", note))
            rows += field_rows(hint, key + ".")
            continue
        shown = "required" if default is dataclasses.MISSING else repr(default)
        rows.append((key, type_name(hint), shown, bounds(field), notes.get(field.name, "")))
    return rows


def render() -> str:
    """The text of ``docs/configuration.md``."""
    intro = ("Generated by `python -m rsdix.reporting.config_reference` from the config dataclasses "
             "(`rsdix.config.AREAS`); `tests/test_readme.py` fails when this page is out of date. Each area is "
             "a folder `rsdix/configs/<area>/` of YAML files (the profiles `smoke`, `cpu`, `paper` and variants) "
             "loaded with `rsdix.config.load(area, name, overrides=[...])`; a YAML file may start from another "
             "with `base:`. Unknown keys, wrong types, values outside the bounds below and choices not listed "
             "fail at load with one line naming the file and key. On the command line a key is "
             "`section.key=value` (`rsdix train --config cpu loop.steps=100`).")
    lines = ["# Configuration reference", ""] + textwrap.wrap(intro, WIDTH, break_on_hyphens=False) + [""]
    lines += ["| area | dataclass | config names |", "|---|---|---|"]
    for area, target in config.AREAS.items():
        names = ", ".join(f"`{n}`" for n in config.config_names(area))
        lines.append(f"| [`{area}`](#{area}) | `{target.replace(':', '.')}` | {names} |")
    for area, target in config.AREAS.items():
        cls = config.config_class(area)
        doc = docline(cls)
        lines += ["", f"## {area}", ""] + textwrap.wrap(f"`{target.replace(':', '.')}`" + (f": {doc}" if doc else ""),
                                                       WIDTH, break_on_hyphens=False) + ["",
                  "| key | type | default | bounds | note |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(_cell(c) if i != 0 else f"`{c}`" for i, c in enumerate(row)) + " |"
                  for row in field_rows(cls)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsdix.reporting.config_reference",
                                     description="write (or --check) docs/configuration.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is out of date")
    args = parser.parse_args(argv)
    page = repo_root() / PAGE
    text = render()
    if args.check:
        current = page.read_text() if page.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python -m rsdix.reporting.config_reference", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(page, text)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
