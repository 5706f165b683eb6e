"""Image-text retrieval: recall@k by hand, chunking, exact ties, bad input, the task on a caption file."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from evaluation_fixtures import caption_file, dict_bundle, unit  # noqa: F401 (caption_file: a pytest fixture)
from rsdix.errors import DataError
from rsdix.evaluation.datasets import load_retrieval
from rsdix.evaluation.retrieval import (directional_means, distinct_texts, gallery_queries, hit_probability, retrieval,
                                       retrieval_gallery, retrieval_metrics, tie_expected_recall, top_images, topk_recall,
                                       unique_text_recall)
from rsdix.models.features import FeatureCache


def test_retrieval_three_images_six_captions_by_hand():
    # images are the three axes; captions 0,1 -> image 0, 2,3 -> image 1, 4,5 -> image 2
    images = unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    texts = unit([1, 0.1, 0], [0, 1, 0.2],       # image 0: one caption right, one pointing at image 1
                 [0.9, 0.3, 0], [0.2, 0.8, 0.1],  # image 1: first points at image 0, second at image 1
                 [1, 0, 0.5], [0.6, 0, 0.4])      # image 2: both point at image 0
    t2i = [0, 0, 1, 1, 2, 2]
    m = retrieval_metrics(images, texts, t2i, ks=(1, 2, 5))
    # by hand (normalised captions): image 0 ranks caption 0 first; image 1 ranks caption 1 (not
    # its own) first and its caption 3 second; image 2 ranks caption 5 first.
    # text->image: caption 0 -> image 0 first; caption 1 puts image 0 last (third);
    # caption 2 -> image 0 then image 1; caption 3 -> image 1 first; captions 4, 5 -> image 0 first.
    sims = images @ texts.T
    i2t_rank = [min(torch.argsort(sims[i], descending=True).tolist().index(j) for j in range(6) if t2i[j] == i)
                for i in range(3)]
    t2i_rank = [torch.argsort(sims[:, j], descending=True).tolist().index(t2i[j]) for j in range(6)]
    assert i2t_rank == [0, 1, 0]
    assert t2i_rank == [0, 2, 1, 0, 1, 1]
    assert m["i2t_R@1"] == pytest.approx(100 * 2 / 3)
    assert m["i2t_R@2"] == pytest.approx(100.0)
    assert m["t2i_R@1"] == pytest.approx(100 * 2 / 6)
    assert m["t2i_R@2"] == pytest.approx(100 * 5 / 6)
    assert m["t2i_R@5"] == pytest.approx(100.0)
    assert m["mR"] == pytest.approx(np.mean([100 * 2 / 3, 100, 100, 100 * 2 / 6, 100 * 5 / 6, 100]))


def test_retrieval_chunking_does_not_change_results():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(37 * 3, 8, generator=g), dim=-1)
    t2i = [i // 3 for i in range(len(txt))]
    assert retrieval_metrics(img, txt, t2i, chunk_size=5) == retrieval_metrics(img, txt, t2i, chunk_size=1000)


def test_retrieval_matches_an_argsort_reference_at_real_sizes():
    # UCM test size (210 images x 5 captions, 256-d): a query's own item must never count against
    # it. The own score used to come from a separate dot product, which differs from the matmul in
    # the last bits; the strict comparison then halved t2i R@1 (measured on a trained model).
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(210, 256, generator=g), dim=-1)
    t2i = torch.arange(210).repeat_interleave(5)
    txt = torch.nn.functional.normalize(img[t2i] + 0.7 * torch.randn(1050, 256, generator=g), dim=-1)
    sims = img @ txt.T
    order_t = sims.argsort(dim=1, descending=True)                # image -> texts
    i2t_rank = torch.stack([(t2i[order_t[i]] == i).nonzero()[0, 0] for i in range(210)])
    t2i_rank = (sims.T.argsort(dim=1, descending=True) == t2i[:, None]).nonzero()[:, 1]
    m = retrieval_metrics(img, txt, t2i.tolist())
    for k in (1, 5, 10):
        assert m[f"i2t_R@{k}"] == pytest.approx(100 * (i2t_rank < k).float().mean().item())
        assert m[f"t2i_R@{k}"] == pytest.approx(100 * (t2i_rank < k).float().mean().item())
    assert 5 < m["t2i_R@1"] < 95  # neither trivial nor hopeless


def test_retrieval_breaks_exact_ties_at_random_in_expectation():
    # identical captions (UCM repeats sentences across images): exact ties between images
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])   # image 0 owns captions 0 and 1, image 1 owns 2
    m = tie_expected_recall(img, txt, [0, 0, 1], ks=(1, 2))
    assert m == pytest.approx({k[:-len("_tie_expected")]: v for k, v in retrieval_metrics(
        img, txt, [0, 0, 1], ks=(1, 2)).items() if k.endswith("_tie_expected")})
    # image 0: 2 own + 1 other tied -> P(top-1 is own) = 2/3; image 1: 1 own + 2 others -> 1/3
    assert m["i2t_R@1"] == pytest.approx(100 * (2 / 3 + 1 / 3) / 2)
    assert m["i2t_R@2"] == pytest.approx(100 * (1 + (1 - 1 / 3)) / 2)  # image 1: 1 - C(2,2)/C(3,2)
    assert m["t2i_R@1"] == pytest.approx(50.0) and m["t2i_R@2"] == pytest.approx(100.0)


@pytest.mark.parametrize("above,tied,own,k", [(0, 3, 1, 1), (1, 4, 2, 3), (0, 0, 1, 1), (2, 1, 1, 2), (0, 5, 3, 4)])
def test_hit_probability_matches_enumerating_every_order(above, tied, own, k):
    block = ["own"] * own + ["other"] * tied
    orders = list(itertools.permutations(range(len(block))))
    hits = sum(any(block[i] == "own" for i in order[:max(0, k - above)]) for order in orders)
    p = hit_probability(torch.tensor([above]), torch.tensor([tied]), torch.tensor([own]), k)
    assert p.item() == pytest.approx(hits / len(orders))


def test_retrieval_perfect_and_bad_inputs():
    img = torch.eye(4)
    assert retrieval_metrics(img, img.repeat_interleave(2, 0), [0, 0, 1, 1, 2, 2, 3, 3])["mR"] == 100.0
    with pytest.raises(DataError, match="no caption"):
        retrieval_metrics(img, img[:3], [0, 1, 2])
    with pytest.raises(DataError, match="empty"):
        retrieval_metrics(img[:0], img, [0, 1, 2, 3])


def test_retrieval_language_filter(caption_file, tiny_bundle):
    fr = load_retrieval("toy", path=caption_file, split="train", languages=["fr"])
    assert fr.texts() == ["une plage"] * 3
    m = retrieval(tiny_bundle, fr, dataset_name="toy-fr", split="train")
    headline = {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"}
    assert set(m) == headline | {f"{k}_tie_expected" for k in headline}
    assert m["i2t_R@5"] == 100.0  # 3 images: everything is in the top 5


@pytest.mark.parametrize("seed", range(8))
def test_retrieval_duplicated_image_counts_as_a_tie_not_by_rounding(seed):
    # two identical images, one random caption each: every caption ties between the two images,
    # so text->image R@1 is exactly 50 (old code: 0, 25 or 100 depending on rounding)
    gen = torch.Generator().manual_seed(seed)
    image = torch.nn.functional.normalize(torch.randn(1, 512, generator=gen), dim=1)
    images = torch.cat([image, image])
    texts = torch.nn.functional.normalize(torch.randn(2, 512, generator=gen), dim=1)
    m = retrieval_metrics(images, texts, [0, 1], ks=(1,), device="cpu")
    assert m["t2i_R@1"] == pytest.approx(50.0)            # topk: both rows tie alike, one text hits
    assert m["t2i_R@1_tie_expected"] == pytest.approx(50.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_retrieval_refuses_non_finite_features(bad):
    images, texts = unit([1, 0], [0, 1]), unit([1, 0], [0, 1])
    images[1, 0] = bad
    with pytest.raises(DataError, match="retrieval: 1 of 2 image features are NaN or infinite"):
        retrieval_metrics(images, texts, [0, 1])
    images[1, 0] = 0.0
    texts[0, 1] = bad
    with pytest.raises(DataError, match="retrieval: 1 of 2 text features are NaN or infinite"):
        retrieval_metrics(images, texts, [0, 1])


def test_topk_recall_by_hand_and_on_a_duplicated_image():
    # normalised: caption 0 ~ (0.64, 0.77), caption 1 ~ (0.20, 0.98); each image ranks its own
    # caption first, but caption 0 scores image 1 (0.77) above its own image 0 (0.64)
    images = unit([1, 0], [0, 1])
    texts = unit([1, 1.2], [0.2, 1])            # caption 0 -> image 0, caption 1 -> image 1
    m = topk_recall(images, texts, [0, 1], ks=(1, 2))
    assert m["i2t_R@1"] == pytest.approx(100.0) and m["i2t_R@2"] == pytest.approx(100.0)
    assert m["t2i_R@1"] == pytest.approx(50.0) and m["t2i_R@2"] == pytest.approx(100.0)
    assert m == pytest.approx(tie_expected_recall(images, texts, [0, 1], ks=(1, 2), device="cpu"))  # no ties
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        image = torch.nn.functional.normalize(torch.randn(1, 64, generator=gen), dim=1)
        txt = torch.nn.functional.normalize(torch.randn(2, 64, generator=gen), dim=1)
        both = torch.cat([image, image])
        assert topk_recall(both, txt, [0, 1], ks=(1,))["t2i_R@1"] == pytest.approx(50.0)
        assert tie_expected_recall(both, txt, [0, 1], ks=(1,), device="cpu")["t2i_R@1"] == pytest.approx(50.0)


def clip_benchmark_recall(images, texts, text_to_image, ks=(1, 5, 10)):
    """A small re-implementation of CLIP_benchmark's zeroshot_retrieval (its recall_at_k and the
    ``> 0`` per query): full ``scores = texts @ images.T``, topk per k, a positive_pairs matrix."""
    scores = texts @ images.T
    positive_pairs = torch.zeros_like(scores, dtype=torch.bool)
    positive_pairs[torch.arange(len(scores)), torch.as_tensor(text_to_image)] = True

    def recall_at_k(s, pos, k):
        topk_indices = torch.topk(s, k, dim=1)[1]
        onehot = torch.nn.functional.one_hot(topk_indices, num_classes=s.shape[1])
        true_positive = (onehot * pos.view(len(s), 1, -1)).sum(dim=(1, 2))
        return true_positive / pos.sum(dim=1)

    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = 100 * (recall_at_k(scores.T, positive_pairs.T, k) > 0).float().mean().item()
    for k in ks:
        out[f"t2i_R@{k}"] = 100 * (recall_at_k(scores, positive_pairs, k) > 0).float().mean().item()
    return out


def tie_heavy(seed, n_images=60, per_image=5, n_sentences=12, dim=16):
    """Images in 6 classes; each caption is one of 12 sentences (UCM repeats sentences), so many
    captions are the very same vector and tie exactly."""
    g = torch.Generator().manual_seed(seed)
    sentences = torch.nn.functional.normalize(torch.randn(n_sentences, dim, generator=g), dim=1)
    cls = torch.arange(n_images) % 6
    images = torch.nn.functional.normalize(sentences[cls * 2] + 0.8 * torch.randn(n_images, dim, generator=g), dim=1)
    t2i = torch.arange(n_images).repeat_interleave(per_image)
    pick = cls[t2i] * 2 + torch.randint(0, 2, (len(t2i),), generator=g)
    noisy = torch.rand(len(t2i), generator=g) < 0.3
    pick[noisy] = torch.randint(0, n_sentences, (int(noisy.sum()),), generator=g)
    return images, sentences[pick], t2i.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_headline_equals_clip_benchmark_convention_on_tie_heavy_data(seed):
    images, texts, t2i = tie_heavy(seed)
    ref = clip_benchmark_recall(images, texts, t2i)
    m = retrieval_metrics(images, texts, t2i, device="cpu")
    assert {k: m[k] for k in ref} == pytest.approx(ref)
    assert m["mR"] == pytest.approx(np.mean(list(ref.values())))
    # chunked queries: every row holds the same numbers, so topk picks the same items
    assert topk_recall(images, texts, t2i, chunk_size=7, device="cpu") == topk_recall(images, texts, t2i, device="cpu")
    # a headline value counts whole queries; the tie expectation counts fractions of them
    assert all(abs(m[k] * len(images) / 100 - round(m[k] * len(images) / 100)) < 1e-6 for k in ref if "i2t" in k)


def test_headline_and_tie_expected_differ_on_tie_heavy_data():
    diffs = []
    for seed in range(4):
        m = retrieval_metrics(*tie_heavy(seed), device="cpu")
        diffs.append(m["mR"] - m["mR_tie_expected"])
    assert max(abs(d) for d in diffs) > 0.5     # the conventions differ where ties are common


def test_topk_convention_on_a_hand_computed_tie_case():
    # image 0 owns captions 0 and 1, image 1 owns caption 2; the three captions are one vector, so
    # both image rows are (c, c, c): topk returns the same items for both rows, whichever they are.
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    m = topk_recall(img, txt, [0, 0, 1], ks=(1, 2, 3), device="cpu")
    picked2 = set(torch.topk(torch.tensor([[1.0, 1.0, 1.0]]), 2).indices[0].tolist())
    # R@1: one caption, owned by exactly one image -> 50 whichever is picked (expectation: 50 too)
    assert m["i2t_R@1"] == 50.0
    # R@2: any two of {0, 1, 2} hold caption 0 or 1 (image 0 always hits); image 1 hits iff 2 is picked.
    # Either 50 or 100, never the expectation's 83.3
    assert m["i2t_R@2"] == (100.0 if 2 in picked2 else 50.0)
    assert tie_expected_recall(img, txt, [0, 0, 1], ks=(2,))["i2t_R@2"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m["i2t_R@3"] == 100.0
    # text->image: every caption scores both images 1.0 -> the same image first for all three texts
    first = torch.topk(torch.tensor([[1.0, 1.0]]), 1).indices.item()
    assert m["t2i_R@1"] == pytest.approx(100 * (2 / 3 if first == 0 else 1 / 3))
    assert m["t2i_R@2"] == 100.0


# ------------------------------------------------------------- SkyScript / FarSLIP: distinct texts

def test_merging_identical_captions_changes_recall_at_1_by_hand():
    # three images (the axes); images 0 and 1 share the caption "road", image 2 is "river".
    # "road" points mostly at image 0, a little at image 1.
    images = unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    road, river = unit([1, 0.5, 0])[0], unit([0, 0, 1])[0]
    t2i = [0, 1, 2]
    # one query per caption (CLIP_benchmark): "road" of image 1 ranks image 0 first -> t2i R@1 = 2/3;
    # images 0 and 1 each tie between their own "road" and the other's (1/2 at k=1 in expectation)
    # -> i2t R@1 (0.5 + 0.5 + 1) / 3
    per_caption = retrieval_metrics(images, torch.stack([road, road, river]), t2i, ks=(1,))
    assert per_caption["t2i_R@1"] == pytest.approx(200 / 3)
    assert per_caption["i2t_R@1_tie_expected"] == pytest.approx(200 / 3)
    # identical texts merged (SkyScript/FarSLIP): 2 distinct queries, "road" hits with image 0 or 1
    # -> t2i R@1 = 2/2; each image's best distinct text is its own, no tie left -> i2t R@1 = 3/3
    merged = unique_text_recall(images, torch.stack([road, river]), [0, 0, 1], t2i, ks=(1,))
    assert merged["t2i_R@1"] == pytest.approx(100.0) and merged["i2t_R@1"] == pytest.approx(100.0)
    assert merged["mR"] == pytest.approx(100.0)
    assert distinct_texts(["road", "road", "river"]) == (["road", "river"], [0, 0, 1])


def test_distinct_text_recall_at_k_and_the_directional_means():
    # texts "a" (image 0), "b" (image 1), "c" (image 2); image 2 lies near "b" (0.958) and ranks
    # its own "c" (0.697) second; "c" scores images 0 and 1 alike (0.704) and image 2 third
    images = unit([1, 0, 0], [0, 1, 0], [0, 1, 0.3])
    texts = unit([1, 0, 0], [0, 1, 0], [0.9, 0.9, 0.1])
    m = unique_text_recall(images, texts, [0, 1, 2], [0, 1, 2], ks=(1, 2, 3))
    assert m["i2t_R@1"] == pytest.approx(200 / 3) and m["i2t_R@2"] == pytest.approx(100.0)
    assert m["t2i_R@2"] == pytest.approx(200 / 3) and m["t2i_R@3"] == pytest.approx(100.0)
    means = directional_means({"i2t_R@1": 10, "i2t_R@5": 20, "i2t_R@10": 60, "t2i_R@1": 1, "t2i_R@5": 2, "t2i_R@10": 3})
    assert means == {"i2t_mean": pytest.approx(30.0), "t2i_mean": pytest.approx(2.0)}
    with pytest.raises(DataError, match="text ids"):
        unique_text_recall(images, texts, [0, 1], [0, 1, 2])


def test_the_protocol_conventions_on_a_caption_file(caption_file):
    from evaluation_fixtures import dict_bundle

    ds = load_retrieval("toy", path=caption_file, split=None)
    merged = retrieval(dict_bundle(), ds, convention="unique_text", directional=True,
                       captions=lambda texts: ["a satellite image. " + t for t in texts])
    assert {"i2t_mean", "t2i_mean", "mR", "n_distinct_texts"} <= set(merged)
    assert merged["n_distinct_texts"] == 5       # "une plage" repeats on all four images
    with pytest.raises(DataError, match="convention"):
        retrieval(dict_bundle(), ds, convention="both")


def test_top_images_of_a_hand_made_similarity_matrix():
    images = unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [0.8, 0.6, 0])
    texts = unit([1, 0.5, 0], [0, 0.2, 1])
    # text 0 = (0.894, 0.447, 0) scores the images 0.894, 0.447, 0, 0.984: image 3, then 0, then 1
    # text 1 = (0, 0.196, 0.981) scores them 0, 0.196, 0.981, 0.118: image 2, then 1, then 3
    assert top_images(images, texts, k=3).tolist() == [[3, 0, 1], [2, 1, 3]]
    assert top_images(images, texts, k=10).shape == (2, 4)        # k beyond the images: every image, ranked
    with pytest.raises(DataError, match="width"):
        top_images(images, unit([1, 0]), k=2)


def test_retrieval_gallery_reads_the_features_retrieval_cached(caption_file):
    ds, bundle, cache = load_retrieval("toy", split="train", path=caption_file), dict_bundle(), FeatureCache()
    retrieval(bundle, ds, cache, dataset_name="toy", split="train")
    calls = bundle.model.image_calls
    gallery = retrieval_gallery(bundle, ds, cache, dataset_name="toy", split="train", n_queries=2, k=2, seed=1)
    assert bundle.model.image_calls == calls and cache.stats.hits >= 2     # images and captions from the cache
    assert len(gallery) == 2 and len({q.truth for q in gallery}) == 2        # two images, one caption of each
    texts, to_image = ds.texts(), ds.text_to_image()
    for q in gallery:
        assert to_image[texts.index(q.text)] == q.truth and len(q.retrieved) == 2
    assert gallery_queries(ds, 2, seed=1) == gallery_queries(ds, 2, seed=1)   # the same queries for every model
