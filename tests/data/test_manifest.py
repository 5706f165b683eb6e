"""File manifests: one SHA-256 per file, a hash of the whole list that does not depend on where
the data root is or the order of the files, read back checked."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from rsdix.data.manifest import build_manifest, compare_manifest, manifest_hash, read_manifest, write_manifest
from rsdix.errors import DataError


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "data"
    for cls, body in (("beach", b"sand"), ("river", b"water"), ("river", b"more water")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        (root / cls / f"{len(body)}.png").write_bytes(body)
    return root


def test_each_file_gets_its_sha256_and_path_relative_to_the_root(files):
    paths = sorted(files.rglob("*.png"))
    frame = build_manifest(paths, [p.parent.name for p in paths], files)
    assert list(frame["path"]) == ["beach/4.png", "river/10.png", "river/5.png"]
    assert frame["sha256"].iloc[0] == hashlib.sha256(b"sand").hexdigest() and frame["bytes"].iloc[2] == 5


def test_the_hash_ignores_order_and_place_but_not_bytes_labels_or_files(files, tmp_path):
    paths = sorted(files.rglob("*.png"))
    labels = [p.parent.name for p in paths]
    digest = manifest_hash(build_manifest(paths, labels, files))
    assert manifest_hash(build_manifest(paths[::-1], labels[::-1], files)) == digest
    moved = tmp_path / "elsewhere"
    shutil.copytree(files, moved)
    assert manifest_hash(build_manifest(sorted(moved.rglob("*.png")), labels, moved)) == digest
    assert manifest_hash(build_manifest(paths, ["x", *labels[1:]], files)) != digest
    assert manifest_hash(build_manifest(paths[:2], labels[:2], files)) != digest
    (moved / "beach" / "4.png").write_bytes(b"SAND")
    changed = build_manifest(sorted(moved.rglob("*.png")), labels, moved)
    assert manifest_hash(changed) != digest
    assert compare_manifest(changed, build_manifest(paths, labels, files)) == "different bytes (1): beach/4.png"


def test_written_manifests_read_back_and_an_edit_is_caught(files, tmp_path):
    paths = sorted(files.rglob("*.png"))
    frame = build_manifest(paths, None, files)
    out = tmp_path / "m" / "toy.all.csv"
    digest = write_manifest(frame, out, {"dataset": "toy", "protocol": "rsdix"})
    back, header = read_manifest(out)
    assert header == {"dataset": "toy", "protocol": "rsdix", "manifest_sha256": digest}
    assert manifest_hash(back) == digest and list(back["label"]) == ["", "", ""]
    out.write_text(out.read_text().replace(frame["sha256"].iloc[0], "0" * 64))
    with pytest.raises(DataError, match="do not give the recorded manifest_sha256"):
        read_manifest(out)
    with pytest.raises(DataError, match="file listed for evaluation not found"):
        build_manifest([files / "nope.png"], None, files)
