"""Notebook 04's summaries: the goal check reads the config's thresholds, conclusions from the rows."""
from __future__ import annotations

from rsdix.captioning.experiment import CaptioningGoal, CaptionRun
from rsdix.captioning.metrics import evaluate_captions
from rsdix.captioning.caption_report import best_output, conclusions, describe_goal, goal_check, goal_line, results_frame

REFS = {"a": ["a plane is parked near the runway"], "b": ["many green trees around a building"],
        "c": ["a river goes through the forest"]}


def _output(name, cands, train_s=120.0):
    ev = evaluate_captions(cands, REFS, metrics=("BLEU-4", "CIDEr"), tokenizer="simple")
    run = CaptionRun(name, name)
    return {"run": run, "evaluation": ev, "times": {"dataset": "UCM", "train_s": train_s},
            "results": ev.to_results(model=run.name, dataset="UCM")}


def test_goal_line_uses_the_configured_thresholds():
    perfect = _output("good", {k: v[0] for k, v in REFS.items()})
    goal = CaptioningGoal({"CIDEr": 1.0, "BLEU-4": 0.4}, max_train_minutes=20)
    line = goal_line(perfect, goal)
    assert line.startswith("clipcap-good-frozen (UCM): corpus CIDEr ")
    assert ", BLEU-4 1.000; per-image CIDEr " in line and line.endswith("training 2.0 min -> goal met")
    assert goal_line(perfect, CaptioningGoal({"CIDEr": 1.0}, max_train_minutes=1)).endswith("goal NOT met")
    assert goal_line(perfect, CaptioningGoal({"CIDEr": 99.0})).endswith("goal NOT met")
    assert goal_line(perfect, CaptioningGoal()).endswith("-> no goal set")
    assert describe_goal(goal) == "goal: corpus-level CIDEr >= 1 and BLEU-4 >= 0.4 within 20 minutes of training"


def test_best_run_and_conclusions():
    good = _output("good", {k: v[0] for k, v in REFS.items()})
    bad = _output("bad", {"a": "a road", "b": "a road", "c": "a road"})
    outputs = [bad, good]
    assert best_output(outputs) is good
    text = goal_check(outputs, CaptioningGoal({"CIDEr": 1.0}))
    assert text.splitlines()[0] == "goal: corpus-level CIDEr >= 1"
    assert text.splitlines()[-1].startswith("best: clipcap-good-frozen (corpus CIDEr ")
    ours = results_frame([r for o in outputs for r in o["results"]])
    lines = conclusions(ours, [good["run"], bad["run"]]).splitlines()
    assert lines[0].startswith("CIDEr (corpus): clipcap-good-frozen ")
    assert lines[1].startswith("BLEU-4 (corpus): clipcap-good-frozen 1.000")
    assert lines[-1].startswith("per-image minus corpus, averaged over models: ")


def test_a_requested_metric_without_a_score_is_a_not_computed_cell(tmp_path):
    """Issue 31: SPICE skipped for want of its jars left no trace in the tables; now both tables say
    "not computed" where the config asked for it (and RSDiX published it)."""
    import pandas as pd
    from rsdix.captioning import caption_report
    ours = pd.DataFrame([dict(model="rsdix_s0", dataset="UCM", task="captioning-per-image", metric=m, value=v)
                         for m, v in (("BLEU-4", 0.5), ("METEOR", 0.4))])
    wide, side = caption_report.score_tables(ours, tmp_path, requested=["BLEU-4", "METEOR", "SPICE"])
    cell = wide.loc[("UCM", "rsdix_s0"), "captioning-per-image:SPICE"]
    assert cell.startswith("not computed") and "make spice" in cell
    spice = side[side["metric"] == "SPICE"]
    assert len(spice) == 1 and spice["ours"].iloc[0].startswith("not computed") and spice["published"].iloc[0] == 0.639
    assert "not computed" in (tmp_path / "captioning_scores.csv").read_text()
    wide2, side2 = caption_report.score_tables(ours, tmp_path, requested=["BLEU-4", "METEOR"])
    assert "SPICE" not in set(side2["metric"]) and not any("SPICE" in str(c) for c in wide2.columns)
