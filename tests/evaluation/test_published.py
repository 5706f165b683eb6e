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


# ---------------------------------------------------------------- issue 31: like for like
from rsdix.evaluation.published import pair_reasons, published_pairs  # noqa: E402
from rsdix.models.bundle import backbone_label  # noqa: E402

REF = pd.DataFrame([
    dict(source="RSDiX-CLIP README", model="RSDiX-CLIP", backbone="ViT-B/32", task="zero-shot", dataset="AID",
         metric="top1", value=95.1, protocol="rsdix_paper", split="all", caveat="", note=""),
    dict(source="RSDiX-CLIP README", model="RSDiX-CLIP", backbone="ViT-B/16", task="zero-shot", dataset="AID",
         metric="top1", value=92.6, protocol="rsdix_paper", split="all", caveat="", note=""),
    dict(source="RSDiX-CLIP README", model="RSDiX-CLIP", backbone="ViT-B/32", task="zero-shot", dataset="RESISC45",
         metric="top1", value=93.2, protocol="rsdix_paper", split="all", caveat="not zero-shot: NWPU", note=""),
    dict(source="RemoteCLIP README", model="RemoteCLIP", backbone="ViT-B/32", task="retrieval", dataset="UCM",
         metric="mR", value=56.36, protocol="remoteclip", split="test", caveat="", note="")])


def _row(**kw):
    base = dict(model="rsdix_s0", dataset="AID", task="zero-shot", metric="top1", value=50.0, seed=0,
                split="all", protocol="rsdix_paper", caveat="", backbone="ViT-B/32")
    return {**base, **kw}


def test_a_published_number_is_comparable_only_with_the_same_split_protocol_and_backbone():
    rows = pd.DataFrame([_row(), _row(model="rsdix_s1", seed=1, value=54.0),
                         _row(protocol="rsdix", value=10.0),
                         _row(dataset="RESISC45"),
                         _row(dataset="UCM", task="retrieval", metric="mR", split="test", protocol="remoteclip"),
                         _row(dataset="UCM", task="retrieval", metric="mR", split="test: 60 of 210",
                              protocol="remoteclip", value=1.0)])
    pairs = published_pairs(rows, reference=REF).set_index(["dataset", "our_protocol", "their_backbone", "our_split"])
    same = pairs.loc[("AID", "rsdix_paper", "ViT-B/32", "all")]
    assert same["comparable"] == "yes" and same["ours"] == 52.0 and same["published"] == 95.1   # mean of 2 seeds
    assert pairs.loc[("AID", "rsdix_paper", "ViT-B/16", "all"), "comparable"] == \
        "no: other backbone (ViT-B/16 vs ours ViT-B/32)"
    assert pairs.loc[("AID", "rsdix", "ViT-B/32", "all"), "comparable"] == \
        "no: other protocol (rsdix_paper vs ours rsdix)"
    assert pairs.loc[("RESISC45", "rsdix_paper", "ViT-B/32", "all"), "comparable"] == "no: not zero-shot: NWPU"
    assert pairs.loc[("UCM", "remoteclip", "ViT-B/32", "test"), "comparable"] == "yes"
    assert pairs.loc[("UCM", "remoteclip", "ViT-B/32", "test: 60 of 210"), "comparable"] == \
        "no: ours on a subsample (60 of 210 images)"
    only = published_pairs(rows, reference=REF, comparable_only=True)
    assert set(only["comparable"]) == {"yes"} and len(only) == 2


def test_pair_reasons_names_release_split_and_both_caveats():
    ours = dict(split="ucm_captions:test", protocol="rsdix_paper", backbone="ViT-B/32",
                caveat="not zero-shot: trained on ucm_captions")
    theirs = dict(split="random 80/10/10 re-split", protocol="rsdix_paper", backbone="ViT-B/32",
                  published_on="EuroSAT", caveat="")
    assert pair_reasons(ours, theirs) == ["other release: published on EuroSAT",
                                          "other split (random 80/10/10 re-split vs ours ucm_captions:test)",
                                          "not zero-shot: trained on ucm_captions"]


def test_backbones_are_written_as_the_papers_write_them():
    assert [backbone_label(n) for n in ("ViT-B-32", "ViT-B-32-quickgelu", "ViT-L-14-336", "RN50", "rsdix-cnn")] == \
        ["ViT-B/32", "ViT-B/32", "ViT-L/14", "RN50", "rsdix-cnn"]
    rows = pd.DataFrame([_row(backbone=None)])
    assert published_pairs(rows, reference=REF, backbones={"rsdix_s0": "ViT-B-32"})["comparable"].iloc[0] == "yes"


def test_the_committed_reference_numbers_name_protocol_split_and_caveat():
    ref = reference_numbers(aliases=False)
    assert {"protocol", "split", "caveat"} <= set(ref.columns)
    rsdix = ref[(ref["model"] == "RSDiX-CLIP") & (ref["task"] == "zero-shot")]
    assert set(rsdix["protocol"]) == {"rsdix_paper"}
    assert rsdix[rsdix["dataset"] == "RESISC45"]["caveat"].str.startswith("not zero-shot").all()
    assert set(ref[ref["task"] == "retrieval"]["protocol"]) == {"remoteclip"}
