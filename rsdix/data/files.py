"""Reading structured annotation files (JSON, YAML, XML) with one clear error naming the file."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from rsdix.errors import DataError


def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"{what} not found")
    return path


def read_json(path: str | os.PathLike, what: str = "JSON file", kind: str = "JSON"):
    """The parsed content of a UTF-8 JSON file; ``DataError(path, ...)`` when it is missing
    (``"<what> not found"``) or malformed (``"malformed <kind> at line L column C: ..."``)."""
    path = _existing(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                              "save the file as UTF-8 (it may be Latin-1)") from exc
    except json.JSONDecodeError as exc:
        raise DataError(path, f"malformed {kind} at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def read_yaml(path: str | os.PathLike, what: str = "YAML file"):
    """The parsed content of a YAML file; ``DataError(path, ...)`` when missing or malformed."""
    path = _existing(path, what)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(path, f"malformed YAML: {' '.join(str(exc).split())}") from exc


def read_xml(path: str | os.PathLike, what: str = "XML file") -> ET.Element:
    """The root element of an XML file; ``DataError(path, ...)`` when missing or malformed."""
    path = _existing(path, what)
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(path, f"malformed XML: {exc}") from exc
