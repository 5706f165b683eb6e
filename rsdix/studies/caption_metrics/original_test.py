"""RSDiX's original caption-metric test, reproduced as it was computed (:func:`original_ttest`), beside
the corrected test on the same caption pairs (:func:`corrected_test`), so its defects show in numbers.

The original scores a WordNet paraphrase of every caption of every image against that caption and,
per metric, keeps a running mean whose step counter is the caption's index within its image; the
list of running means after every caption is then the sample of a two-sample Student t-test against
S-BERT similarity's list. Its defects (docs/metric_study.md):

* the running mean restarts at every image (at index 0 its weight is 1), so each image contributes
  its partial means (v1, (v1 + v2) / 2, ..., the image mean), and the exported "mean" and "std"
  are those of the last image's captions only;
* those partial means are strongly dependent and less spread than the captions, yet they are
  treated as independent observations (``ttest_ind``), which inflates t;
* the two metrics score the same pairs, yet the test is a two-sample (unpaired) test;
* the two-sided p-value is halved and compared with 0.05 without looking at the sign of t, so a
  metric whose mean is significantly *above* S-BERT's is "accepted" as significantly below;
* means of metrics on different scales are compared, and nothing is corrected across metrics.

:func:`corrected_test` treats images as the independent units: per image, the mean over its
captions of (metric - S-BERT), and a one-sided Wilcoxon signed-rank test (metric below S-BERT)
on those differences, Benjamini-Hochberg across the metrics of a dataset. Captions are the
study's distinct, normalised captions (:mod:`rsdix.studies.caption_metrics.caption_sets`), in file
order; a caption without an eligible word stays unchanged and still counts, as in the original.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from rsdix.errors import DataError, require_finite
from rsdix.studies.caption_metrics.caption_sets import CaptionSet, seeded_rng, subsample
from rsdix.studies.caption_metrics.perturb import Perturber
from rsdix.studies.caption_metrics.scoring import REFERENCE_METRIC
from rsdix.studies.caption_metrics.significance import correct, wilcoxon_paired

# the n-gram metrics RSDiX's test compared with S-BERT; others get the same rule, marked as not in it
RSDIX_TEST_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L")
ALPHA = 0.05


def all_caption_pairs(caption_sets: Sequence[CaptionSet], perturber: Perturber, n_images: int | None,
                      seed: int = 0) -> pd.DataFrame:
    """Every caption of ``n_images`` sampled images per set (file order) and its WordNet paraphrase
    (30-50% of the eligible words, seeded per image and caption; unchanged where no word is
    eligible): columns dataset, image, index (within the image), original, candidate."""
    rows = []
    for cs in caption_sets:
        for i in subsample(cs, n_images, seed):
            for k, caption in enumerate(cs.captions[i]):
                rng = seeded_rng(seed, cs.dataset, cs.filenames[i], "original-test", k)
                rows.append({"dataset": cs.dataset, "image": int(i), "index": k, "original": caption,
                             "candidate": perturber.synonym(caption, rng) or caption})
    if not rows:
        raise DataError("original test", "no captions")
    return pd.DataFrame(rows)


def running_statistics(scored: pd.DataFrame, metric: str) -> tuple[np.ndarray, float, float]:
    """The original's running statistics of ``metric`` over ``scored`` (rows in image, then caption
    order; ``index`` = the caption's index within its image): the running mean after every caption
    (restarting at each image, as its step counter is that index), and the final running mean and
    standard deviation (Welford-style variance with the same counter, 0 at the first caption)."""
    means, mean, var = [], 0.0, 0.0
    for k, value in zip(scored["index"].to_numpy(int), scored[metric].to_numpy(float)):
        n = k + 1
        previous = mean
        mean = mean + (value - mean) / n
        var = 0.0 if n == 1 else (n - 2) / (n - 1) * var + (value - previous) ** 2 / n
        means.append(mean)
    return np.asarray(means), float(mean), float(np.sqrt(var))


def original_ttest(scored: pd.DataFrame, metrics: Sequence[str], reference: str = REFERENCE_METRIC) -> pd.DataFrame:
    """RSDiX's test as computed: per dataset and metric, ``scipy.stats.ttest_ind`` (Student,
    two-sided) of the reference's running means against the metric's, "accepted" when half the
    p-value is below 0.05 whatever the sign; the exported mean and std (the last image's), the
    true means over all captions, and which side the metric's mean is on."""
    rows = []
    for dataset, group in scored.sort_values(["dataset", "image", "index"], kind="stable").groupby(
            "dataset", sort=False):
        ref_means, _, _ = running_statistics(group, reference)
        for m in metrics:
            require_finite(group[[m, reference]].to_numpy(float), f"original test {m} ({dataset})", "scores")
            means, last_mean, last_std = running_statistics(group, m)
            res = sps.ttest_ind(ref_means, means)
            mean, ref_mean = float(group[m].mean()), float(group[reference].mean())
            rows.append({"dataset": dataset, "metric": m, "in_rsdix_test": m in RSDIX_TEST_METRICS,
                         "images": group["image"].nunique(), "captions": len(group), "samples": len(means),
                         "t": float(res.statistic), "p_two_sided": float(res.pvalue), "p_halved": float(res.pvalue) / 2,
                         "accepted": bool(res.pvalue / 2 < ALPHA), "mean": mean, "sbert_mean": ref_mean,
                         "metric_side": "below S-BERT" if mean < ref_mean else "above S-BERT",
                         "exported_mean": last_mean, "exported_std": last_std,
                         "sd_captions": float(group[m].std(ddof=1)), "sd_running_means": float(means.std(ddof=1))})
    return pd.DataFrame(rows)


def corrected_test(scored: pd.DataFrame, metrics: Sequence[str], reference: str = REFERENCE_METRIC) -> pd.DataFrame:
    """The same question on the same pairs with images as the units: per image the mean of
    (metric - reference) over its captions; a one-sided Wilcoxon signed-rank test that it is below 0
    (:func:`rsdix.studies.caption_metrics.significance.wilcoxon_paired`) and the one-sided paired t
    on the same per-image differences; BH across the metrics of a dataset."""
    rows = []
    for dataset, group in scored.groupby("dataset", sort=False):
        per_image = group.groupby("image")[[*metrics, reference]].mean()
        for m in metrics:
            res = wilcoxon_paired(per_image[m], per_image[reference], alternative="less",
                                  where=f"corrected test {m} vs {reference} ({dataset})")
            t = sps.ttest_rel(per_image[m], per_image[reference], alternative="less")
            rows.append({"dataset": dataset, "metric": m, "images": len(per_image),
                         "mean_diff": float((per_image[m] - per_image[reference]).mean()),
                         "t_paired": float(t.statistic), "p_t_paired": float(t.pvalue), **res})
    out = correct(pd.DataFrame(rows), ["dataset"])
    out["accepted"] = out["p_bh"] < ALPHA
    return out


def side_by_side(original: pd.DataFrame, corrected: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset and metric: the original's verdict and numbers beside the corrected test's."""
    left = original[["dataset", "metric", "in_rsdix_test", "images", "samples", "mean", "sbert_mean", "metric_side",
                     "exported_mean", "t", "p_halved", "accepted"]].rename(
        columns={"t": "original_t", "p_halved": "original_p", "accepted": "original_accepted"})
    right = corrected[["dataset", "metric", "mean_diff", "t_paired", "p", "p_bh", "rank_biserial", "accepted"]].rename(
        columns={"p": "wilcoxon_p", "p_bh": "wilcoxon_p_bh", "accepted": "corrected_accepted"})
    return left.merge(right, on=["dataset", "metric"])


def original_sentences(table: pd.DataFrame) -> list[str]:
    """What the side-by-side table shows, from its numbers."""
    if table.empty:
        return []
    rsdix = table[table.in_rsdix_test]
    wrong_side = table[table.original_accepted & (table.metric_side == "above S-BERT")]
    last = (table["exported_mean"] - table["mean"]).abs()
    lines = [f"RSDiX's original test, reproduced on {int(table['images'].iloc[0])} images per dataset with every "
             f"caption: it accepts 'below S-BERT' in {int(rsdix.original_accepted.sum())} of {len(rsdix)} (dataset, "
             f"metric) cases of its own metrics; the corrected test (per-image differences, one-sided Wilcoxon, BH) "
             f"in {int(rsdix.corrected_accepted.sum())} of {len(rsdix)}.",
             f"Its t statistics are {table['original_t'].abs().median() / table['t_paired'].abs().median():.1f}x "
             f"the paired t on per-image means (median |t| {table['original_t'].abs().median():.1f} vs "
             f"{table['t_paired'].abs().median():.1f}), and its exported means (the last image's) differ from "
             f"the means over all captions by up to {last.max():.2f}."]
    if len(wrong_side):
        lines.append(f"Halving the two-sided p without the sign accepts 'below S-BERT' for "
                     f"{', '.join(sorted(set(wrong_side.metric)))} although its mean is above S-BERT's "
                     f"({len(wrong_side)} (dataset, metric) cases).")
    return lines
