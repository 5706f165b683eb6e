import csv

import pytest

from rsdix.data.captions import find_image_dir, read_captions
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


@pytest.mark.data
def test_ucm_captions_train_has_byte_identical_images(ucm_root):
    caption_file = ucm_root / "dataset_ucm.json"
    folder = find_image_dir(caption_file)
    records = [("ucm", r.split, folder / r.filename) for r in read_captions(caption_file)]
    rows = exact_duplicates(records)
    assert pair_counts(rows).get(("ucm/train", "ucm/train"), 0) > 0


def test_phash_finds_resized_reencoded_and_flipped_copies(tmp_path):
    import numpy as np
    from PIL import Image

    from rsdix.data.leakage import phash_duplicates

    rng = np.random.default_rng(0)
    base = Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).resize((256, 256))
    other = Image.fromarray((rng.random((32, 32, 3)) * 255).astype("uint8")).resize((256, 256))
    base.save(tmp_path / "a.png")
    base.resize((128, 128)).save(tmp_path / "small.png")
    base.save(tmp_path / "re.jpg", quality=70)
    base.transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / "flip.png")
    other.save(tmp_path / "other.png")
    names = ["a.png", "small.png", "re.jpg", "flip.png", "other.png"]
    rows = phash_duplicates([("x", "train", tmp_path / n) for n in names])
    assert {r.file for r in rows} == {str(tmp_path / n) for n in names[:4]}
    assert all(r.distance <= 4 for r in rows)
