"""Data layer: caption and classification datasets, multispectral tiles, registry, checks."""
from rsdix.data.captions import CaptionDataset, CaptionRecord, read_captions, read_karpathy, write_karpathy  # noqa: F401
from rsdix.data.classification import ClassificationDataset, clean_class_name  # noqa: F401
from rsdix.data.images import load_image  # noqa: F401
from rsdix.data.registry import REGISTRY, available, get_info, load_dataset  # noqa: F401
