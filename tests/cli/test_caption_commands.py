"""``rsdix caption`` (rsdix.cli.caption_commands)."""
from rsdix.cli import main


def test_caption_a_folder_of_ones_own_images(tmp_path, capsys, monkeypatch):
    """`rsdix caption --images DIR --captioner RUN --encoder ENC` captions every image of the folder."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from captioning_fixtures import tiny_captioner
    from rsdix.captioning.training import save_captioner
    from rsdix.models import load_model

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    save_captioner(tiny_captioner(embed_dim=load_model("rsdix-tiny").embed_dim), tmp_path / "run" / "captioner")
    (tmp_path / "mine").mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / "mine" / f"tile{i}.png")
    (tmp_path / "mine" / "notes.txt").write_text("not an image")
    assert main(["caption", "--encoder", "rsdix-tiny", "--config", "smoke", "--images", str(tmp_path / "mine"),
                 "--captioner", str(tmp_path / "run")]) == 0
    out = tmp_path / "runs" / "caption" / "images" / "mine" / "captions.csv"
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.filename) == ["tile0.png", "tile1.png", "tile2.png"] and str(out) in capsys.readouterr().out
    assert main(["caption", "--encoder", "rsdix-tiny", "--images", str(tmp_path / "nowhere"),
                 "--captioner", str(tmp_path / "run")]) == 2
    assert "--images: folder not found" in capsys.readouterr().err
