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
