"""``rsdix data list`` names its root; ``rsdix data plan`` lists what a profile reads and how to get it."""
from rsdix.cli import main


def test_data_list_prints_the_root_it_read(tmp_path, capsys):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"data root: {tmp_path} (from --root; present)"


def test_data_plan_lists_present_and_missing_with_one_voice(tmp_path, capsys):
    (tmp_path / "ucm_captions").mkdir()
    assert main(["data", "plan", "--profile", "paper", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"profile paper; data root: {tmp_path}")
    rsicd = next(line for line in out.splitlines() if " rsicd " in line)
    assert rsicd.split()[0] == "MISSING" and "no direct download link" in rsicd and "rsdix data download" not in rsicd
    assert f"{tmp_path}/rsicd/dataset_rsicd.json + images/" in rsicd
    assert "s2 scene" in out and out.rstrip().endswith("`make smoke` runs without any data (a synthetic sample)")
