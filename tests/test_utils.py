"""Atomic writes, hashing, seeding."""
from __future__ import annotations

import pytest

from rsdix.utils import atomic_path


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
