"""Our numbers beside the published ones."""
from __future__ import annotations

import pandas as pd

from rsdix.evaluation.published import compare_with_published, published_for, retrieval_vs_published
from rsdix.results import reference_numbers, summarise


def test_compare_with_published_side_by_side():
    rows = pd.DataFrame([
        dict(model="infonce_s0", dataset="UCM", task="retrieval", metric="mR", value=10.0, seed=0),
        dict(model="infonce_s1", dataset="UCM", task="retrieval", metric="mR", value=14.0, seed=1),
        dict(model="infonce_s0", dataset="WHU-RS19", task="knn", metric="top1", value=50.0, seed=0),
        dict(model="infonce_s0", dataset="UCM", task="retrieval", metric="mR", value=99.0, seed=0, split="val")])
    table = compare_with_published(rows).set_index(["dataset", "task", "metric"])
    assert table.loc[("UCM", "retrieval", "mR"), "infonce"] == 12.0      # mean over the two seeds, no val row
    assert table.loc[("UCM", "retrieval", "mR"), "published: RemoteCLIP ViT-B/32"] == 56.36
    assert pd.isna(table.loc[("WHU-RS19", "knn", "top1"), "published: RemoteCLIP ViT-B/32"])


def test_compare_with_published_pools_seeds_as_results_summary_does():
    rows = pd.DataFrame([dict(model=f"rsdix_s{s}-locked", dataset="UCM", task="retrieval", metric="mR",
                              value=10.0 + 4 * s, seed=s, split="test") for s in (0, 1)])
    table = compare_with_published(rows).set_index(["dataset", "task", "metric"])
    pooled = summarise(rows)
    assert list(pooled["model"]) == ["rsdix-locked"]
    assert table.loc[("UCM", "retrieval", "mR"), "rsdix-locked"] == pooled["mean"].iloc[0] == 12.0


def test_published_for_one_model_and_retrieval_order():
    ref = published_for("zero-shot", "top1", "RSDiX-CLIP", "ViT-B/32")
    full = reference_numbers()
    rows = full[(full.task == "zero-shot") & (full.metric == "top1") & (full.model == "RSDiX-CLIP")
                & (full.backbone == "ViT-B/32")]
    assert len(ref) == len(rows) > 0 and list(ref) == list(rows["value"]) and list(ref.index) == list(rows["dataset"])
    rows = pd.DataFrame([dict(model="m_s0", dataset="UCM", task="retrieval", metric=m, value=float(i), seed=0)
                         for i, m in enumerate(["mR", "t2i_R@1", "i2t_R@10", "i2t_R@1"])])
    side = retrieval_vs_published(rows)
    assert list(side["metric"].astype(str)) == ["i2t_R@1", "i2t_R@10", "t2i_R@1", "mR"]
    assert list(side["m"]) == [3.0, 2.0, 1.0, 0.0]


def test_retrieval_beside_published_keeps_every_metric_name():
    """The tie-expectation metrics lost their names in a categorical cast (7 rows per dataset with
    metric nan in 05_retrieval_vs_published); each row now keeps its metric, papers' order first."""
    import pandas as pd

    from rsdix.evaluation.published import RETRIEVAL_METRICS, retrieval_vs_published

    names = RETRIEVAL_METRICS + [m + "_tie_expected" for m in RETRIEVAL_METRICS]
    rows = pd.DataFrame({"model": "m_s0", "dataset": "UCM", "task": "retrieval", "metric": names[::-1],
                         "value": range(len(names)), "split": "test"})
    side = retrieval_vs_published(rows)
    assert side["metric"].notna().all() and list(side["metric"]) == names
