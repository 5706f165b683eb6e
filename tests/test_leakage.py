import csv

import pytest

from rsdix.data.leakage import exact_duplicates, pair_counts, write_groups
from rsdix.errors import DataError


def make(path, data):
    path.write_bytes(data)
    return path


def test_exact_duplicates_groups_identical_bytes(tmp_path):
    a = make(tmp_path / "a.png", b"one")
    b = make(tmp_path / "b.png", b"one")
    c = make(tmp_path / "c.png", b"two")
    d = make(tmp_path / "d.png", b"one")
    rows = exact_duplicates([("x", "train", a), ("x", "test", b), ("x", "test", c), ("y", "all", d)])
    assert {r.file for r in rows} == {str(a), str(b), str(d)}
    assert {r.group for r in rows} == {0}
    counts = pair_counts(rows)
    assert counts == {("x/test", "x/train"): 1, ("x/train", "y/all"): 1, ("x/test", "y/all"): 1}
    out = write_groups(rows, tmp_path / "groups.csv")
    lines = list(csv.reader(out.open()))
    assert lines[0] == ["group", "dataset", "split", "file", "kind", "distance"]
    assert len(lines) == 4


def test_missing_file_is_one_line_error(tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        exact_duplicates([("x", "train", tmp_path / "missing.png")])
