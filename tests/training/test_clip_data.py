"""rsdix.training.clip_data: seeded shares of the training images."""
from rsdix.models import load_model
from rsdix.training.clip import load_clip_config
from rsdix.training.clip_data import build_train_dataset


def test_fraction_subsets_are_seeded(ucm_root):
    bundle = load_model("rsdix-tiny")
    cfg = load_clip_config("smoke", data__fraction=0.1, data__data_root=str(ucm_root.parent))
    a = build_train_dataset(cfg, bundle, seed=0)
    b = build_train_dataset(cfg, bundle, seed=0)
    c = build_train_dataset(cfg, bundle, seed=1)
    assert len(a) == 168 and a.filenames() == b.filenames() and a.filenames() != c.filenames()
    image, caption = a[0]
    assert image.shape == (3, 32, 32) and caption in a.records[0].captions


def _exclusion_setup(tmp_path):
    from data_fixtures import make_image
    from rsdix.data.captions import CaptionRecord, write_karpathy

    root = tmp_path / "data"
    for i in range(4):
        make_image(root / "set" / "images" / f"{i}.png")
    caps = write_karpathy([CaptionRecord(f"{i}.png", "train", [f"image {i}"]) for i in range(4)],
                          root / "set" / "dataset_set.json")
    return root, caps


def test_an_exclusion_list_matching_no_training_image_is_an_error(tmp_path, tiny_bundle):
    import pytest

    from rsdix import config
    from rsdix.errors import DataError
    from rsdix.training.clip_data import build_train_dataset

    root, caps = _exclusion_setup(tmp_path)
    elsewhere = tmp_path / "exclude_other_machine.csv"
    elsewhere.write_text("dataset,split,file,reason\nset,train,/home/someone/data/set/images/0.png,exact\n")
    cfg = config.load("train", "smoke", overrides=[f"data.datasets=[{caps}]", f"data.data_root={root}", "data.fraction=1",
                                                   f"data.exclude=[{elsewhere}]"])
    with pytest.raises(DataError, match=r"exclude_other_machine\.csv: none of its 1 entries is an image of the "
                                        r"training data"):
        build_train_dataset(cfg, tiny_bundle)
    partly = tmp_path / "exclude.csv"
    partly.write_text("dataset,split,file,reason\nset,train,set/images/1.png,exact\n"
                      "set,train,set/images/9.png,exact\nset,train,/elsewhere/2.png,exact\n")
    cfg = config.load("train", "smoke", overrides=[f"data.datasets=[{caps}]", f"data.data_root={root}", "data.fraction=1",
                                                   f"data.exclude=[{partly}]"])
    with pytest.warns(UserWarning, match=r"exclude\.csv: 2 of its 3 entries match no training image"):
        ds = build_train_dataset(cfg, tiny_bundle)
    assert [r.filename for r in ds.records] == ["0.png", "2.png", "3.png"]
