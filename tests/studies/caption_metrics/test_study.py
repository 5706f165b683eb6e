"""The study: its configs load (and are validated), its results rows are the headline ones and
name their RESULTS.md section."""
from __future__ import annotations

import pandas as pd
import pytest
from metric_study_toys import toy_scored

from rsdix.errors import ConfigError
from rsdix.studies.caption_metrics.separation import ANY_EDIT, separation_auc
from rsdix.studies.caption_metrics.study import SECTION, load_study_config, to_results


def test_study_configs_load():
    for profile in ("smoke", "cpu", "paper"):
        cfg = load_study_config(profile)
        assert cfg.min_frac == 0.3 and cfg.max_frac == 0.5
    assert load_study_config("smoke").n_images < load_study_config("cpu").n_images


def test_results_rows_are_headline_only():
    scored = toy_scored()
    sep = separation_auc(scored, metrics=("A",), preserved="synonym", changed=("swap-class", "unrelated"),
                            n_resamples=50)
    disc = pd.DataFrame([{"dataset": "toy", "distractors": "random", "metric": "A", "n_queries": 10, "k": 4,
                          "auc": 0.9, "auc_low": 0.8, "auc_high": 1.0, "accuracy": 0.7, "acc_low": 0.5,
                          "acc_high": 0.9}])
    rows = to_results(sep, disc, seed=0, profile="smoke")
    assert [(r.task, r.value) for r in rows] == [
        ("metric-separation-synonym", sep[sep.changed == ANY_EDIT].auc.iloc[0]),
        ("metric-discrimination-random", 0.9)]
    assert all(r.ci_low <= r.value <= r.ci_high for r in rows)



def test_study_config_is_validated_at_load():
    with pytest.raises(ConfigError, match="min_frac"):
        load_study_config("smoke", min_frac=0.6)
    with pytest.raises(ConfigError, match="datasets"):
        load_study_config("smoke", datasets=["ucm", "nwpu"])
    with pytest.raises(ConfigError, match="sense"):
        load_study_config("smoke", sense="rare")
    with pytest.raises(ConfigError, match="k_distractors"):
        load_study_config("smoke", k_distractors=0)


def test_results_rows_name_their_section():
    """RESULTS.md shows both paraphrase kinds' separation and the same-class discrimination."""
    sep = pd.DataFrame([{"dataset": "ucm", "metric": "A", "preserved": p, "changed": ANY_EDIT, "auc": 0.6,
                         "ci_low": 0.5, "ci_high": 0.7, "n_preserved": 10, "n_changed": 40}
                        for p in ("synonym", "synonym-1", "negate")])
    disc = pd.DataFrame([{"dataset": "ucm", "distractors": d, "metric": "A", "n_queries": 10, "k": 4, "auc": 0.9,
                          "auc_low": 0.8, "auc_high": 1.0} for d in ("random", "same-class")])
    rows = to_results(sep, disc, seed=0, profile="smoke")
    assert {r.task: r.section for r in rows} == {
        "metric-separation-synonym": SECTION, "metric-separation-synonym-1": SECTION,
        "metric-separation-negate": "", "metric-discrimination-random": "",
        "metric-discrimination-same-class": SECTION}


def test_conclusions_lead_with_the_realistic_tests_and_are_written_beside_the_tables(tmp_path):
    from rsdix.studies.caption_metrics.study import CONCLUSIONS, conclusions, write_conclusions

    sep = pd.DataFrame([{"dataset": "ucm", "metric": m, "preserved": p, "changed": ANY_EDIT, "auc": auc,
                         "ci_low": auc - 0.05, "ci_high": auc + 0.05, "n_preserved": 10, "n_changed": 40}
                        for p, m, auc in (("human", "BLEU-1", 0.20), ("human", "SBERT-sim", 0.40),
                                          ("synonym", "BLEU-1", 0.45), ("synonym", "SBERT-sim", 0.80))])
    disc = pd.DataFrame([{"dataset": "ucm", "distractors": d, "metric": m, "auc": a}
                         for d, m, a in (("random", "BLEU-1", 0.97), ("same-class", "BLEU-1", 0.67),
                                         ("same-class", "SBERT-sim", 0.61))])
    versus = pd.DataFrame([{"dataset": "ucm", "distractors": "same-class", "metric": "BLEU-1",
                            "reference_ahead": "behind"}])
    ttest = pd.DataFrame([{"dataset": "ucm", "metric": "BLEU-1", "p": 0.01, "p_bh": 0.01, "mean": 0.5,
                           "sbert_mean": 0.9}])
    retention = pd.DataFrame([{"dataset": "ucm", "perturbation": "synonym", "metric": "BLEU-1", "retention": 0.8}])
    text = conclusions(ttest, sep, retention, disc, versus=versus, extra={"A check": ["It says 1."], "Empty": []})
    lines = text.splitlines()
    assert lines[0] == "### The realistic tests"
    assert "natural paraphrase" in lines[2] and "SBERT-sim 0.40, BLEU-1 0.20" in lines[2]
    assert "entirely below 0.5, i.e. the edit scored higher than the paraphrase, in 2" in text
    same = next(i for i, line in enumerate(lines) if "same-class distractors" in line)
    rand = next(i for i, line in enumerate(lines) if "random distractors" in line)
    assert same < rand < lines.index("### The synthetic WordNet paraphrases (RSDiX's design)")
    assert "S-BERT ahead in 0 of 1 (dataset, metric) cases (none), behind in 1 (BLEU-1)" in text
    assert "### A check\n\n- It says 1." in text and "Empty" not in text
    path = write_conclusions(text, tmp_path, "cpu")
    assert path == tmp_path / CONCLUSIONS and path.read_text().endswith(text + "\n")
