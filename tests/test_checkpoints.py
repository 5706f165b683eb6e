"""rsdix.training.checkpoints: a damaged or missing checkpoint names its file."""
import pytest

from rsdix.errors import DataError
from rsdix.training.checkpoints import load_checkpoint


def test_corrupt_checkpoint_names_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="checkpoint.pt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
