import csv

import pytest

from rsdix.data.captions import find_image_dir, read_captions
from rsdix.data.duplicates import exact_duplicates, pair_counts, write_groups
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

    from rsdix.data.duplicates import phash_duplicates

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


def test_hamming_pairs_in_chunks_equal_a_brute_force_count_of_flipped_bits():
    """The chunked +-1 product gives the pairs and nearest distances of a plain XOR count (the
    earlier N x N int16 matrices needed ~15 GB for the paper profile's ~50k images)."""
    import numpy as np

    from rsdix.data.duplicates import hamming_pairs

    rng = np.random.default_rng(1)
    bits = rng.random((23, 3, 64)) < 0.5
    for k, flips in ((5, 2), (9, 4), (17, 5)):          # near copies of row 0 / 3 / 6: 2, 4, 5 bits apart
        bits[k] = bits[[0, 3, 6][[5, 9, 17].index(k)]]
        bits[k, 0, rng.choice(64, flips, replace=False)] ^= True
    bits[20, 0] = bits[1, 2]                             # row 20 is row 1's flip
    expect, nearest = set(), np.full(23, 64)
    for i in range(23):
        for j in range(23):
            if i != j:
                d = min(int(np.sum(bits[i, 0] != bits[j, v])) for v in range(3))
                d = min(d, min(int(np.sum(bits[j, 0] != bits[i, v])) for v in range(3)))
                nearest[i] = min(nearest[i], d)
                if i < j and d <= 4:
                    expect.add((i, j))
    assert {(0, 5), (3, 9), (1, 20)} <= expect and (6, 17) not in expect
    for chunk in (7, 2048):
        (rows, cols), near = hamming_pairs(bits, 4, chunk=chunk)
        assert set(zip(rows.tolist(), cols.tolist())) == expect
        np.testing.assert_array_equal(near, nearest)
