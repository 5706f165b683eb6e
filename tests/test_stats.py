"""Metric study: perturbations do what they say, statistics agree with scipy, seeds reproduce."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rsdix.metric_study import study as st
from rsdix.errors import DataError
from rsdix.metric_study.wordnet import wordnet_available

needs_wordnet = pytest.mark.skipif(
    not wordnet_available(), reason="WordNet not installed: apt-get install -y wordnet-base wordnet-sense-index "
                                    "&& python -m rsdix.metric_study.wordnet install")
TERMS = ["airport", "parking lot", "forest", "river", "tennis court", "dense residential"]


@pytest.fixture(scope="module")
def perturber():
    return st.Perturber(None, TERMS)


@pytest.fixture(scope="module")
def wn_perturber():
    from rsdix.metric_study.wordnet import load_wordnet

    return st.Perturber(load_wordnet(), TERMS)


def _diff(a: str, b: str) -> list[int]:
    ta, tb = a.split(), b.split()
    assert len(ta) == len(tb)
    return [i for i, (x, y) in enumerate(zip(ta, tb)) if x != y]


# ---- meaning-changing edits --------------------------------------------------------------------

def test_swap_class_replaces_only_the_class_term(perturber):
    text = "many planes are parked near the airport"
    for seed in range(10):
        out = perturber.swap_class(text, np.random.default_rng(seed))
        assert out.startswith("many planes are parked near the ")
        tail = out[len("many planes are parked near the "):]
        assert tail in set(TERMS) - {"airport"} | {"parkinglot", "tenniscourt", "denseresidential"}


def test_swap_class_keeps_plural_and_fixes_article(perturber):
    others = ("airport", "forest", "river", "tennis court", "dense residential")
    outs = {perturber.swap_class("two parking lots beside a road", np.random.default_rng(s)) for s in range(20)}
    assert outs <= {f"two {t}s beside a road" for t in others} and len(outs) > 1
    for seed in range(10):
        art = perturber.swap_class("there is an airport", np.random.default_rng(seed)).split()
        assert art[2] == ("an" if art[3][0] in "aeiou" else "a")
    # a multi-word class written as one word is found too
    assert perturber.swap_class("a big parkinglot", np.random.default_rng(0)) != "a big parkinglot"


def test_count_colour_negate_change_one_word(perturber):
    rng = np.random.default_rng(0)
    out = perturber.count("there are two tennis courts", rng)
    (i,) = _diff("there are two tennis courts", out)
    assert i == 2 and out.split()[2] in st.COUNT_WORDS and out.split()[2] != "two"
    out = perturber.colour("a white building near green trees", rng)
    (i,) = _diff("a white building near green trees", out)
    assert i in (1, 4) and out.split()[i] in st.COLOURS
    assert perturber.colour("the dark water", rng) == "the light water"
    assert perturber.negate("there are many buildings") == "there are no buildings"
    assert perturber.negate("the river is curved") == "the river is not curved"
    assert perturber.negate("many green trees") is None
    assert perturber.count("a forest", rng) is None
    assert perturber.colour("a forest", rng) is None
    assert perturber.swap_class("some cars", rng) is None


# ---- synonym paraphrase (WordNet) --------------------------------------------------------------

SENTENCE = "many large buildings and green trees are next to the river near a dense residential area"


@needs_wordnet
def test_synonym_never_touches_protected_or_function_words(wn_perturber):
    from collections import Counter

    src = SENTENCE.split()
    protected = [w for w in src if w in {"near", "next", "river", "dense", "residential"} | st.STOPWORDS]
    changed_any = False
    for seed in range(30):
        out = wn_perturber.synonym(SENTENCE, np.random.default_rng(seed))
        changed_any |= out != SENTENCE
        dst = Counter(out.split())
        for word, count in Counter(protected).items():
            assert dst[word] >= count, (word, out)
        if len(out.split()) == len(src):
            assert all(out.split()[i] == w for i, w in enumerate(src) if w in protected)
    assert changed_any


@needs_wordnet
def test_synonym_replaces_30_to_50_percent_of_eligible_words_with_wordnet_synonyms(wn_perturber):
    from rsdix.metric_study.wordnet import load_wordnet

    wn = load_wordnet()
    text = "large buildings and green trees surround the bright playground"
    tokens = text.split()
    eligible = wn_perturber.eligible(tokens)
    assert eligible and all(tokens[i] not in st.STOPWORDS for i in eligible)
    for seed in range(20):
        perturber = st.Perturber(wn, TERMS)  # fresh, single-word replacements checked below
        out = perturber.synonym(text, np.random.default_rng(seed))
        if len(out.split()) != len(tokens):
            continue  # a multi-word synonym was used
        changed = _diff(text, out)
        assert set(changed) <= set(eligible)
        k = len(changed)
        assert round(0.3 * len(eligible)) <= k <= max(1, round(0.5 * len(eligible)))
        for i in changed:
            lemmas = {l.name().lower() for s in wn.synsets(tokens[i]) for l in s.lemmas()}
            base = out.split()[i]
            assert base in lemmas or base.rstrip("s") in lemmas or base[:-2] in lemmas


@needs_wordnet
def test_one_word_synonym_changes_exactly_one_word(wn_perturber):
    text = "large buildings and green trees surround the bright playground"
    for seed in range(10):
        out = wn_perturber.apply("synonym-1", text, np.random.default_rng(seed))
        if len(out.split()) == len(text.split()):
            assert len(_diff(text, out)) == 1


@needs_wordnet
def test_synonym_is_deterministic_given_seed(wn_perturber):
    a = wn_perturber.synonym(SENTENCE, np.random.default_rng(7))
    b = wn_perturber.synonym(SENTENCE, np.random.default_rng(7))
    assert a == b != SENTENCE


def test_synonym_without_wordnet_does_not_apply(perturber):
    assert perturber.synonym("large buildings", np.random.default_rng(0)) is None


# ---- statistics against scipy ------------------------------------------------------------------

def test_auc_hand_computed_and_against_sklearn():
    assert st.auc(np.array([3., 4, 5]), np.array([1., 2, 3])) == pytest.approx(8.5 / 9)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.5, 1, 80).round(1), rng.normal(0, 1, 120).round(1)
    expected = roc_auc_score(np.r_[np.ones(80), np.zeros(120)], np.r_[pos, neg])
    assert st.auc(pos, neg) == pytest.approx(expected)
    value, lo, hi = st.auc_ci(pos, neg, n_resamples=300, seed=1)
    assert lo < value < hi and (value, lo, hi) == st.auc_ci(pos, neg, n_resamples=300, seed=1)


def test_wilcoxon_and_effect_sizes_against_scipy():
    x = np.array([1.0, 2.0, 0.0, 4.0, 2.5, 3.0])
    y = np.array([0.0, 0.0, 3.0, 0.0, 2.5, 1.5])
    res = st.wilcoxon_paired(x, y, alternative="greater")
    ref = sps.wilcoxon(x, y, alternative="greater")
    assert res["p"] == pytest.approx(ref.pvalue) and res["W"] == pytest.approx(ref.statistic)
    # d = [1, 2, -3, 4, 0, 1.5]: zero dropped, ranks of |d| = [1, 3, 4, 5, 2]
    assert res["rank_biserial"] == pytest.approx((1 + 3 + 5 + 2 - 4) / 15)
    d = x - y
    assert res["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))


def _toy_scored(seed=0, n=30):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for kind, shift in (("identity", 1.0), ("synonym", 0.8), ("swap-class", 0.6), ("unrelated", 0.1)):
            rows.append({"dataset": "toy", "image": i, "perturbation": kind,
                         "group": {"identity": "identity", "synonym": "preserving"}.get(kind, "changing"),
                         "A": shift + rng.normal(0, 0.02), "B": 1.0 - shift / 2 + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


def test_ttest_and_corrections_against_scipy():
    scored = _toy_scored()
    table = st.rsdix_ttest(scored, metrics=("A",), reference="B")
    syn = scored[scored.perturbation == "synonym"]
    ref = sps.ttest_ind(syn["A"], syn["B"], alternative="less")
    assert table.t.iloc[0] == pytest.approx(ref.statistic) and table.p.iloc[0] == pytest.approx(ref.pvalue)
    frame = pd.DataFrame({"dataset": ["a"] * 4 + ["b"], "p": [0.01, 0.04, 0.03, 0.5, 0.02]})
    out = st._correct(frame, ["dataset"])
    np.testing.assert_allclose(out.p_bh[:4], sps.false_discovery_control([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(out.p_bonferroni, [0.04, 0.16, 0.12, 1.0, 0.02])


def test_separation_retention_and_paired_directions():
    scored = _toy_scored()
    sep = st.separation_auc(scored, metrics=("A", "B"), preserved="synonym", changed=("swap-class", "unrelated"),
                            n_resamples=200)
    assert set(sep.changed) == {"swap-class", "unrelated", st.ANY_EDIT}
    a = sep[(sep.metric == "A") & (sep.changed == st.ANY_EDIT)].iloc[0]
    b = sep[(sep.metric == "B") & (sep.changed == st.ANY_EDIT)].iloc[0]
    assert a.n_changed == 30  # 'any edit' pools the minimal edits, not the unrelated captions
    assert a.auc == 1.0 and b.auc < 0.01  # A ranks the paraphrase above the edits, B the reverse
    ret = st.normalised_retention(scored, metrics=("A",)).set_index("perturbation")["retention"]
    assert ret["identity"] == pytest.approx(1.0) and ret["unrelated"] == pytest.approx(0.0)
    assert 0.7 < ret["synonym"] < 0.8
    paired = st.paired_preserved_vs_changed(scored, metrics=("A", "B"), preserved="synonym", changed=("swap-class",))
    assert paired.set_index("metric").loc["A", "rank_biserial"] == 1.0
    assert paired.set_index("metric").loc["B", "p"] > 0.99


def test_metric_correlation_matches_spearman():
    scored = _toy_scored()
    corr = st.metric_correlation(scored, metrics=("A", "B"))
    data = scored[scored.perturbation != "identity"]
    rho = sps.spearmanr(data["A"], data["B"]).statistic
    got = corr[(corr.dataset == "all") & (corr.metric_a == "A") & (corr.metric_b == "B")].rho.iloc[0]
    assert got == pytest.approx(rho) and rho < -0.5


def test_per_query_discrimination_hand_computed():
    rows = []
    for q, own, others in ((0, 0.5, [0.2, 0.5, 0.7]), (1, 0.7, [0.7, 0.1])):
        rows.append({"dataset": "t", "distractors": "random", "query": q, "target": "own", "M": own})
        rows += [{"dataset": "t", "distractors": "random", "query": q, "target": "other", "M": o} for o in others]
    pq = st.per_query_discrimination(pd.DataFrame(rows), metrics=("M",)).set_index("query")
    assert pq.loc[0, "auc"] == pytest.approx(0.5) and pq.loc[0, "hit"] == 0.0
    assert pq.loc[1, "auc"] == pytest.approx(0.75) and pq.loc[1, "hit"] == 0.5
    value, lo, hi = st.mean_ci(pq["auc"], n_resamples=100)
    assert value == pytest.approx(0.625) and lo <= value <= hi


# ---- study plumbing ------------------------------------------------------------------------------

def _toy_set():
    caps = [["there are two tennis courts near the forest", "two tennis courts beside green trees"],
            ["a white building is next to the airport", "an airport with a white terminal"],
            ["many green trees in the forest", "a dense forest with green trees", "green trees"],
            ["a river goes through the dense residential area", "houses on both sides of a river"],
            ["a parking lot with many cars", "many cars are parked in the parking lot"],
            ["the dark blue river is curved", "a curved river"]]
    return st.CaptionSet("toy", [f"{i}.jpg" for i in range(6)], caps, ["a", "a", "b", "b", "c", "c"])


def test_make_pairs_and_tables_are_reproducible_for_a_seed(perturber):
    cs = _toy_set()
    kinds = ("identity", "swap-class", "count", "colour", "negate", "unrelated")
    p1 = st.make_pairs([cs], perturber, None, seed=3, kinds=kinds)
    p2 = st.make_pairs([cs], perturber, None, seed=3, kinds=kinds)
    pd.testing.assert_frame_equal(p1, p2)
    assert (p1[p1.perturbation == "identity"].candidate == p1[p1.perturbation == "identity"].original).all()
    unrel = p1[p1.perturbation == "unrelated"]
    originals = p1[p1.perturbation == "identity"].set_index("image")
    for _, row in unrel.iterrows():
        donor = originals[originals.original == row["candidate"]]
        assert len(donor) and (donor["class"] != row["class"]).all()
    s1 = st.score_pairs(p1, metrics=("BLEU-1", "ROUGE-L"), tokenizer="simple")
    s2 = st.score_pairs(p2, metrics=("BLEU-1", "ROUGE-L"), tokenizer="simple")
    t1 = st.separation_auc(s1, metrics=("BLEU-1", "ROUGE-L"), preserved="negate", changed=("unrelated",),
                           n_resamples=100, seed=5)
    t2 = st.separation_auc(s2, metrics=("BLEU-1", "ROUGE-L"), preserved="negate", changed=("unrelated",),
                           n_resamples=100, seed=5)
    pd.testing.assert_frame_equal(t1, t2)
    assert not st.make_pairs([cs], perturber, None, seed=4, kinds=kinds).equals(p1)


def test_discrimination_queries_balance_reference_sets():
    cs = _toy_set()
    q = st.discrimination_queries(cs, None, k=2, seed=0)
    own = q[q.target == "own"]
    assert (own["query"] == own["target_image"]).all()
    counts = q.groupby("target_image").size()
    assert (counts == 3).all()  # every reference set used k + 1 times: CIDEr IDF is the image set's
    for row in q[q.target == "own"].itertuples():
        assert row.candidate not in row.references and row.candidate in cs.captions[row.query]
    same = st.discrimination_queries(cs, None, k=1, seed=0, distractors="same-class")
    other = same[same.target == "other"]
    assert (other["class"].to_numpy() == [cs.classes[j] for j in other.target_image]).all()
    with pytest.raises(DataError, match="same-class distractors need image classes"):
        st.discrimination_queries(st.CaptionSet("x", ["1", "2"], [["a b", "c d"]] * 2, [None, None]),
                                  None, k=1, distractors="same-class")


def test_real_caption_sets_and_bad_input(data_root, tmp_path):
    sydney = st.load_caption_set("sydney", data_root)
    assert len(sydney) == 613 and all(c is None for c in sydney.classes)
    ucm = st.load_caption_set("ucm", data_root)
    assert len(set(ucm.classes)) == 21 and "dense residential" in set(ucm.classes)
    with pytest.raises(DataError, match="unknown caption dataset"):
        st.load_caption_set("nwpu", data_root)
    (tmp_path / "captions_only").mkdir()
    with pytest.raises(DataError, match="dataset_rsicd.json: caption file not found"):
        st.load_caption_set("rsicd", tmp_path)
    bad = tmp_path / "captions_only" / "dataset_sydney.json"
    bad.write_text('{"images": [{"filename": "1.tif", "split": "test", "sentences": [{"raw": ""}]}]}')
    with pytest.warns(UserWarning, match=r"dataset_sydney.json: left out 1 empty caption"):
        assert len(st.load_caption_set("sydney", tmp_path)) == 0


def test_study_configs_load():
    for profile in ("smoke", "cpu", "paper"):
        cfg = st.load_study_config(profile)
        assert cfg.min_frac == 0.3 and cfg.max_frac == 0.5
    assert st.load_study_config("smoke").n_images < st.load_study_config("cpu").n_images


def test_results_rows_are_headline_only():
    scored = _toy_scored()
    sep = st.separation_auc(scored, metrics=("A",), preserved="synonym", changed=("swap-class", "unrelated"),
                            n_resamples=50)
    disc = pd.DataFrame([{"dataset": "toy", "distractors": "random", "metric": "A", "n_queries": 10, "k": 4,
                          "auc": 0.9, "auc_low": 0.8, "auc_high": 1.0, "accuracy": 0.7, "acc_low": 0.5,
                          "acc_high": 0.9}])
    rows = st.to_results(sep, disc, seed=0, profile="smoke")
    assert [(r.task, r.value) for r in rows] == [
        ("metric-separation-synonym", sep[sep.changed == st.ANY_EDIT].auc.iloc[0]),
        ("metric-discrimination-random", 0.9)]
    assert all(r.ci_low <= r.value <= r.ci_high for r in rows)
