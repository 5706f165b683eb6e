"""RSDiX's original test reproduced by hand (running means restarting per image, ttest_ind on them,
the halved two-sided p accepted whatever the sign) beside the corrected, image-level paired test."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metric_study_toys import toy_caption_set
from scipy import stats

from rsdix.studies.caption_metrics.original_test import (all_caption_pairs, corrected_test, original_sentences,
                                                          original_ttest, running_statistics, side_by_side)
from rsdix.studies.caption_metrics.perturb import Perturber


def _scored(values_a, values_ref):
    """Two images of 3 captions each: metric A and the reference, in image then caption order."""
    rows = [{"dataset": "toy", "image": i // 3, "index": i % 3, "A": a, "SBERT-sim": r}
            for i, (a, r) in enumerate(zip(values_a, values_ref))]
    return pd.DataFrame(rows)


def test_running_means_restart_at_every_image_and_export_the_last_images_statistics():
    scored = _scored([1.0, 2.0, 6.0, 10.0, 20.0, 30.0], [0.0] * 6)
    means, last_mean, last_std = running_statistics(scored, "A")
    assert means.tolist() == [1.0, 1.5, 3.0, 10.0, 15.0, 20.0]      # image 2 starts from its own first value
    assert last_mean == 20.0 and last_std == pytest.approx(np.std([10.0, 20.0, 30.0], ddof=1))
    assert last_mean != scored["A"].mean()                             # not the mean over all captions


def test_the_original_rule_accepts_a_metric_significantly_above_the_reference():
    """Metric A far above S-BERT: the two-sided p is tiny, so p / 2 < 0.05 "accepts" that A is
    below S-BERT; the corrected one-sided test does not."""
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.7, 0.8, 60)
    scored = _scored(ref + 2.0 + rng.normal(0, 0.05, 60), ref)
    scored["image"] = np.repeat(np.arange(20), 3)
    scored["index"] = np.tile(np.arange(3), 20)
    orig = original_ttest(scored, ["A"]).iloc[0]
    expected = stats.ttest_ind(running_statistics(scored, "SBERT-sim")[0], running_statistics(scored, "A")[0])
    assert orig["t"] == pytest.approx(expected.statistic) and orig["p_halved"] == pytest.approx(expected.pvalue / 2)
    assert orig["accepted"] and orig["metric_side"] == "above S-BERT" and orig["samples"] == 60
    corr = corrected_test(scored, ["A"]).iloc[0]
    assert not corr["accepted"] and corr["images"] == 20 and corr["mean_diff"] == pytest.approx(2.0, abs=0.05)
    table = side_by_side(original_ttest(scored, ["A"]), corrected_test(scored, ["A"]))
    assert "accepts 'below S-BERT' for A although its mean is above" in " ".join(original_sentences(table))


def test_every_caption_of_every_sampled_image_is_paraphrased_or_kept():
    pairs = all_caption_pairs([toy_caption_set()], Perturber(None, ["forest"]), n_images=None, seed=0)
    assert len(pairs) == sum(len(c) for c in toy_caption_set().captions)
    assert (pairs["candidate"] == pairs["original"]).all()          # no WordNet: nothing eligible, kept
    assert pairs.groupby("image")["index"].apply(list).tolist()[2] == [0, 1, 2]
