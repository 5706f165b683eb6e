"""RESULTS.md and the README's block: headline tables first (rows = models, columns = datasets,
cells = mean ± CI (n=seeds)), the published numbers once per dataset, the full table collapsed;
sections rows name (the metric study's) shown without the report importing any study."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from rsdix.studies.caption_metrics.separation import ANY_EDIT
from rsdix.studies.caption_metrics.study import to_results
from rsdix.paths import RunDirs
from rsdix.reporting.summary import (README_END, README_START, RESULTS_CSV, regenerate_summary, update_readme,
                                     write_results_summary)
from rsdix.evaluation.datasets import base_split
from rsdix.reporting.tables import cell, headline_rows, parameter_count, readme_table
from rsdix.results import Result, append_results, summarise


def _sections(text: str) -> dict[str, str]:
    """``## title`` -> its text up to the next ``## ``."""
    parts = text.split("\n## ")[1:]
    return {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts}


def _table(block: str, title: str, level: str = "###") -> list[list[str]]:
    """The markdown table under ``### title`` as rows of cells (header first, rule left out)."""
    body = block.split(f"{level} {title}\n\n", 1)[1].split("\n\n", 1)[0]
    lines = [line for line in body.splitlines() if not line.startswith("|:") and not line.startswith("|-")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def _run(tmp_path, monkeypatch, rows):
    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    dirs = RunDirs("smoke", out_dir=tmp_path / "fig")
    append_results(rows, dirs.results)
    return dirs


SMALL = [Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 31.0, seed=0, split="all", n=1005),
         Result("rsdix_s1", "WHU-RS19", "zero-shot", "top1", 33.0, seed=1, split="all", n=1005),
         Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 10.0, seed=0, split="val"),
         Result("infonce_s0", "WHU-RS19", "zero-shot", "top1", 28.46, seed=0, split="all"),
         Result("infonce_s0", "EuroSAT-MS", "zero-shot", "top1", 12.22, seed=0, split="all"),
         Result("infonce_s0", "UCM", "retrieval", "mR", 27.9, seed=0),
         Result("infonce_s0", "UCM", "retrieval", "mR", 26.85, seed=0, split="val"),
         Result("hidden_s0", "UCM", "s2-tiles", "count", 16.0, seed=0)]


def test_cells_say_mean_ci_and_seeds():
    assert cell(32.0, 19.29, 44.71, 2) == "32.0 ± 12.7 (n=2)"
    assert cell(31.2, None, None, 1) == "31.2 (n=1)"
    assert cell(0.4289, 0.395, 0.464, 1) == "0.429 [0.395, 0.464] (n=1)"
    assert cell(1624.3, float("nan"), float("nan"), 1) == "1624 (n=1)"


def test_results_md_is_headline_first_with_published_numbers_once_per_dataset(tmp_path, monkeypatch):
    dirs = _run(tmp_path, monkeypatch, SMALL)
    text = open(write_results_summary(dirs)).read()
    sections = _sections(text)
    assert list(sections) == ["Headline", "Published numbers (reference)", "Published numbers beside ours (like for like)",
                             "All rows", "Environment"]
    zero_shot = _table(sections["Headline"], "Zero-shot classification, top-1 % (notebook 05)")
    assert zero_shot[0] == ["model", "EuroSAT-MS", "WHU-RS19"]                  # columns = datasets
    rows = {r[0]: r[1:] for r in zero_shot[1:]}
    assert set(rows) == {"rsdix", "infonce"}                                      # rows = models, seeds pooled
    # mean 32, std sqrt(2), t(0.975, 1) = 12.706: half-width 12.7; the val row stays out of the headline
    assert rows["rsdix"] == ["", "32.0 ± 12.7 (n=2)"] and rows["infonce"] == ["12.2 (n=1)", "28.5 (n=1)"]
    assert _table(sections["Headline"], "Image-text retrieval, mean recall mR % (notebook 05)")[1] == [
        "infonce", "27.9 (n=1)"]
    published = sections["Published numbers (reference)"]
    assert published.count("### WHU-RS19") == 1 and text.count("98.4") == 1      # once, not per row
    whu = _table(published, "WHU-RS19")
    assert whu[0] == ["paper", "model", "backbone", "parameters", "task", "metric", "number", "source"]
    assert ["RSDiX", "RSDiX-CLIP", "ViT-B/32", "151.3 M", "zero-shot", "top1", "98.4", "RSDiX-CLIP README"] in whu
    # EuroSAT-MS's reference rows are the papers' EuroSAT RGB numbers: headed as that release
    assert "### EuroSAT (the papers' release; ours is EuroSAT-MS" in published and "EuroSAT-MS\n" not in published
    assert "### UCM" in published and "RemoteCLIP" in _table(published, "UCM")[1]
    full = sections["All rows"]
    assert "<details>" in full and "</details>" in full and "| val |" in full and "s2-tiles" in full
    assert "s2-tiles" not in sections["Headline"] and "hidden" not in sections["Headline"]
    assert (dirs.figures / RESULTS_CSV).exists()                                  # the tidy table beside it


def test_the_metric_study_rows_get_their_section_in_the_headline(tmp_path, monkeypatch):
    separation = pd.DataFrame([{"dataset": "ucm", "metric": m, "preserved": p, "changed": ANY_EDIT,
                                "auc": 0.61, "ci_low": 0.5, "ci_high": 0.7, "n_preserved": 10, "n_changed": 40}
                               for p in ("synonym", "synonym-1") for m in ("BLEU-4", "CIDEr")])
    discrimination = pd.DataFrame([{"dataset": "ucm", "metric": "BLEU-4", "distractors": "same-class", "k": 4,
                                    "auc": 0.55, "auc_low": 0.5, "auc_high": 0.6, "n_queries": 10}])
    rows = to_results(separation, discrimination, seed=0, profile="smoke")
    dirs = _run(tmp_path, monkeypatch, rows + SMALL[:1])
    headline = _sections(open(write_results_summary(dirs)).read())["Headline"]
    titles = [line[4:] for line in headline.splitlines() if line.startswith("### ")]
    section = rows[0].section
    assert titles == ["Zero-shot classification, top-1 % (notebook 05)", section]
    tasks = [line[5:] for line in headline.split(f"### {section}")[1].splitlines() if line.startswith("#### ")]
    assert {t.split(",")[0] for t in tasks} == {r.task for r in rows if r.section}
    table = _table(headline, "metric-separation-synonym, AUC", "####")
    assert table[0] == ["model", "UCM"] and ["BLEU-4", "0.610 [0.500, 0.700] (n=1)"] in table


def test_readme_block_is_the_five_row_headline_and_regenerates_from_the_figures_folder(tmp_path, monkeypatch):
    rows = [Result(f"{m}_s0", ds, task, metric, v + i, seed=0, split="all" if task == "zero-shot" else "test")
            for i, m in enumerate(["infonce", "rsdix", "rsdix-long", "rsdix-sbert", "rsdix-siglip", "dino"])
            for ds, task, metric, v in (("UCM", "retrieval", "mR", 20.0), ("WHU-RS19", "zero-shot", "top1", 25.0))]
    rows += [Result("rsdix_s0-ema", "UCM", "retrieval", "mR", 99.0, seed=0),
             Result("rsdix_frac0.1_s1", "UCM", "retrieval", "mR", 98.0, seed=1)]
    table = readme_table(summarise(pd.DataFrame([r.__dict__ for r in rows]).drop(columns="extra")))
    assert list(table.columns) == ["rank", "model", "UCM retrieval mR", "WHU-RS19 zero-shot top-1"]
    assert table["model"].tolist() == ["dino", "rsdix-siglip", "rsdix-sbert", "rsdix-long", "rsdix"]  # best 5
    assert table.iloc[0, 2] == "25.0 (n=1)" and set(table["rank"]) == {"1-5"}   # one seed: no interval, no order
    dirs = _run(tmp_path, monkeypatch, rows)
    write_results_summary(dirs)
    (dirs.figures / "RESULTS.md").unlink()
    dirs.results.unlink()                                     # the run folder is gone: the figures remain
    assert regenerate_summary("smoke", dirs.figures) == str(dirs.figures / "RESULTS.md")
    env = json.loads((dirs.figures / "run_environment.json").read_text())
    assert f"- time_utc: {env['time_utc']}" in (dirs.figures / "RESULTS.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold\n{README_END}\n\nafter\n")
    assert update_readme(pd.read_csv(dirs.figures / RESULTS_CSV), env, readme)
    block = readme.read_text().split(README_START)[1].split(README_END)[0]
    assert "old" not in block and block.count("\n| ") == 6 + 6 and readme.read_text().endswith("after\n")
    assert "commit " in block and "MANIFEST.json" in block    # the headline names its commit and its manifest


def test_parameter_counts_come_from_the_open_clip_configs():
    assert parameter_count("ViT-B/32") == "151.3 M" and parameter_count("ViT-L/14") == "427.6 M"
    assert parameter_count("best") == ""


@pytest.mark.slow
def test_the_report_loads_no_study():
    """reproduce writes RESULTS.md in a process that never imported a study."""
    code = ("import sys, rsdix.reporting.reproduce, rsdix.reporting.summary; "
            "print([m for m in sys.modules if m.startswith('rsdix.studies.caption_metrics')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_headline_shows_subsampled_and_caption_split_rows_and_prefers_the_most_images(tmp_path):
    """A capped run's rows (``test: 12 of 1093``, the smoke profile and the dry run) and UCM's
    21-class rows on the caption test images (``ucm_captions:test``) are test rows: the headline
    dropped both before. Where a model has the whole set and a subsample (03's capped quick check
    beside 05), the whole set is shown; validation rows, capped or not, stay out."""
    rows = [Result("rsdix_s0", "RSICD", "retrieval", "mR", 5.0, seed=0, split="test: 12 of 1093"),
            Result("rsdix_s0", "UCM", "zero-shot", "top1", 40.0, seed=0, split="ucm_captions:test"),
            Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 20.0, seed=0, split="all: 19 of 1005"),
            Result("rsdix_s0", "WHU-RS19", "zero-shot", "top1", 25.0, seed=0, split="all"),
            Result("rsdix_s0", "AID", "zero-shot", "top1", 7.0, seed=0, split="all: 30 of 10000"),
            Result("rsdix_s0", "AID", "zero-shot", "top1", 9.0, seed=0, split="all: 60 of 10000"),
            Result("rsdix_s0", "UCM", "retrieval", "mR", 3.0, seed=0, split="val: 12 of 210")]
    frame = append_results(rows, tmp_path / "results.csv")
    shown = headline_rows(summarise(frame))
    got = {(r.dataset, r.task): r["mean"] for _, r in shown.iterrows()}
    assert got == {("RSICD", "retrieval"): 5.0, ("UCM", "zero-shot"): 40.0, ("WHU-RS19", "zero-shot"): 25.0,
                   ("AID", "zero-shot"): 9.0}
    assert [base_split(s) for s in ("test: 12 of 1093", "ucm_captions:test: 105 of 210", "val", None)] == \
        ["test", "test", "val", ""]


def test_an_order_only_where_the_intervals_separate():
    """rank_ranges by hand: A [10, 12] above B [8, 9.5] and C [8.5, 9]; B and C overlap; D has no
    interval (one seed) and overlaps everything."""
    from rsdix.reporting.tables import rank_ranges

    assert rank_ranges([11, 9, 8.7], [10, 8, 8.5], [12, 9.5, 9]) == ["1", "2-3", "2-3"]
    assert rank_ranges([11, 9, 8.7, 5], [10, 8, 8.5, None], [12, 9.5, 9, None]) == ["1-2", "2-4", "2-4", "1-4"]
    assert rank_ranges([3, 2, 1], [2.9, 1.9, 0.9], [3.1, 2.1, 1.1]) == ["1", "2", "3"]
    assert rank_ranges([3, 2, 1], [2.9, 2.0, 0.9], [3.1, 2.0, 1.1]) == ["1-2", "1-3", "2-3"]   # zero width: unknown


def test_readme_headline_is_seeded_with_paired_differences_and_caveats(tmp_path, monkeypatch):
    """Three seeds per model: cells mean ± t half-width (n=3), the paired table's differences by
    hand (rsdix - infonce mR per seed 1.0, 2.0, 1.5: +1.5 [0.258, 2.74]; zero-shot 3, -4, 2: interval
    includes 0), the UCM zero-shot caveat marked and spelled out."""
    import math

    from scipy import stats

    from rsdix.reporting.summary import readme_block
    from rsdix.reporting.tables import paired_table

    rows = []
    for seed, (d_mr, d_zs) in enumerate([(1.0, 3), (2.0, -4), (1.5, 2)]):
        for method, add_mr, add_zs in (("infonce", 0.0, 0), ("rsdix", d_mr, d_zs)):
            rows += [Result(f"{method}_s{seed}", "UCM", "retrieval", "mR", 20.0 + seed + add_mr, seed=seed),
                     Result(f"{method}_s{seed}", "WHU-RS19", "zero-shot", "top1", 30.0 + 2 * seed + add_zs, seed=seed,
                            split="all"),
                     Result(f"{method}_s{seed}", "UCM", "zero-shot", "top1", 40.0 + seed, seed=seed,
                            split="ucm_captions:test", extra={"caveat": "not zero-shot: trained on ucm_captions"})]
    frame = append_results(rows, tmp_path / "results.csv")
    paired = paired_table(frame)
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert paired["difference"].tolist() == ["rsdix - infonce"]
    assert paired["UCM retrieval mR"].iloc[0] == f"+1.50 [{1.5 - half:.2f}, {1.5 + half:.2f}] (n=3)"
    assert paired["WHU-RS19 zero-shot top-1"].iloc[0].startswith("+0.33 [-")
    assert paired["order (interval excludes 0)"].iloc[0] == "UCM retrieval mR: rsdix above"
    block = readme_block(frame, {"time_utc": "t", "cpu_count": 2, "torch": "x", "git_commit": "abc1234",
                                 "git_dirty": False})
    assert "(n=1)" not in block and "(n=3)" in block and "commit abc1234;" in block
    assert "| UCM zero-shot top-1† |" in block.replace("  ", " ") or "UCM zero-shot top-1†" in block
    assert "† not zero-shot: trained on ucm_captions." in block and "rsdix - infonce" in block
    dirty = readme_block(frame, {"git_commit": "abc1234", "git_dirty": True})
    assert "commit abc1234 with uncommitted changes to rsdix/ or notebooks/" in " ".join(dirty.split())
    assert all(len(line) <= 100 for line in block.splitlines() if not line.startswith("|"))


def test_results_md_puts_a_published_number_beside_ours_only_like_for_like():
    """Issue 31: RESULTS.md showed published numbers matched on dataset/task/metric only; now the
    pairs it shows carry protocol, split and backbone on both sides and match on each."""
    from rsdix.reporting.summary import like_for_like
    rows = pd.DataFrame([
        dict(model="m_s0", dataset="UCM", task="retrieval", metric="mR", value=40.0, seed=0, split="test",
             protocol="remoteclip", backbone="ViT-B/32", caveat=""),
        dict(model="m_s0", dataset="UCM", task="retrieval", metric="mR", value=30.0, seed=0, split="test",
             protocol="rsdix", backbone="ViT-B/32", caveat=""),
        dict(model="m_s0", dataset="AID", task="zero-shot", metric="top1", value=20.0, seed=0, split="all",
             protocol="rsdix_paper", backbone="rsdix-cnn", caveat="")])
    text = "\n".join(like_for_like(rows))
    shown = [line for line in text.splitlines() if line.startswith("| UCM") or line.startswith("| AID")]
    assert shown and all("remoteclip" in line and "ViT-B/32" in line and "| test " in line for line in shown)
    assert not any("30.00" in line for line in shown) and not any("AID" in line for line in shown)
    assert "other protocol" in text and "other backbone" in text


def test_results_md_says_how_long_notebook_03_trained_when_a_rerun_only_rechecked(tmp_path):
    """A rerun that finds notebook 03's finished checkpoints takes minutes: RESULTS.md's time table
    alone read as if training took that long; it now names the runs' own training time."""
    from rsdix.reporting.summary import results_markdown, training_seconds
    pd.DataFrame({"run": ["a_s0", "b_s0"], "train_s": [1500.0, 900.0]}).to_csv(tmp_path / "03_methods.csv", index=False)
    assert training_seconds(tmp_path) == 2400.0 and training_seconds(tmp_path / "none") is None
    times = pd.DataFrame({"notebook": ["03_x.ipynb"], "status": ["ran"], "seconds": [58.0], "last_run_s": [58.0]})
    text = results_markdown(pd.DataFrame(), "cpu", "results.csv", times, {"python": "3"}, training_seconds(tmp_path))
    assert "Notebook 03's runs trained for 40.0 min in all" in text
