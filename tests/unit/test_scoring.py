"""Scoring back-end: metrics against hand-computed values and brute-force references,
trial IO errors, cosine scoring with enrolment maps and AS-norm, and the report files."""

import json
import os

import numpy as np
import pytest
import torch

from speechbrain_ext import score_norm
from speechbrain_ext.report import format_metrics_table, write_report
from speechbrain_ext.scoring import (
    MissingEmbeddingError,
    Trials,
    as_norm,
    cohort_stats,
    compute_eer,
    compute_min_dcf,
    det_curve,
    evaluate_conditions,
    load_enrol_map,
    load_trials,
    score_trials,
)

# ----------------------------------------------------------------- brute-force references


def brute_rates(pos, neg, thresholds):
    """P_fa and P_miss at each threshold by direct comparison: O(thresholds x trials)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    t = np.asarray(thresholds, np.float64)[:, None]
    return (neg[None, :] >= t).mean(axis=1), (pos[None, :] < t).mean(axis=1)


def brute_eer(pos, neg):
    thr = np.unique(np.concatenate([pos, neg]))
    p_fa, p_miss = brute_rates(pos, neg, thr)
    gap = np.abs(p_fa - p_miss)
    # Exact ties only matter for the threshold; the value is compared with a tolerance.
    k = int(np.flatnonzero(gap <= gap.min() + 1e-12)[0])
    return (p_fa[k] + p_miss[k]) / 2, thr[k], gap.min()


def brute_min_dcf(pos, neg, p_target, c_miss=1.0, c_fa=1.0):
    thr = np.unique(np.concatenate([pos, neg]))
    thr = np.append(thr, np.inf)  # accept nothing
    p_fa, p_miss = brute_rates(pos, neg, thr)
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    return cost.min() / min(c_miss * p_target, c_fa * (1 - p_target))


def random_scores(seed, n_pos, n_neg, decimals=None):
    rng = np.random.default_rng(seed)
    pos, neg = rng.normal(1.0, 1.0, n_pos), rng.normal(-0.5, 1.0, n_neg)
    if decimals is not None:  # rounding creates many ties, within and across the sides
        pos, neg = np.round(pos, decimals), np.round(neg, decimals)
    return pos, neg


# ----------------------------------------------------------------- EER / minDCF


def test_eer_hand_computed():
    # pos = [0.9, 0.8], neg = [0.1, 0.85]; accept when score >= t:
    #   t = 0.1 : FAR 2/2, FRR 0/2  -> gap 1
    #   t = 0.8 : FAR 1/2, FRR 0/2  -> gap 0.5
    #   t = 0.85: FAR 1/2, FRR 1/2  -> gap 0    => EER = (0.5 + 0.5) / 2 = 0.5 at 0.85
    #   t = 0.9 : FAR 0/2, FRR 1/2  -> gap 0.5
    assert compute_eer([0.9, 0.8], [0.1, 0.85]) == (0.5, 0.85)


def test_eer_hand_computed_unequal_rates():
    # pos = [0.4, 0.6, 0.8], neg = [0.1, 0.5]:
    #   t = 0.1: FAR 1, FRR 0 (gap 1); t = 0.4: FAR 1/2, FRR 0 (1/2);
    #   t = 0.5: FAR 1/2, FRR 1/3 (1/6); t = 0.6: FAR 0, FRR 1/3 (1/3) => EER = (1/2 + 1/3) / 2 at 0.5
    eer, thr = compute_eer([0.4, 0.6, 0.8], [0.1, 0.5])
    assert eer == pytest.approx(5 / 12) and thr == 0.5


def test_ties_across_sides():
    # Score 0.5 is both a target and a non-target. t = 0.5: FAR 1/2, FRR 0 (gap 1/2);
    # t = 0.7: FAR 0, FRR 1/2 (gap 1/2); t = 0.2: FAR 1, FRR 0. Equal gaps: the lowest threshold wins.
    assert compute_eer([0.5, 0.7], [0.2, 0.5]) == (0.25, 0.5)
    # Costs with p_target = 0.5 (normaliser 0.5): t = 0.2 -> 1, t = 0.5 -> 0.5, t = 0.7 -> 0.5.
    assert compute_min_dcf([0.5, 0.7], [0.2, 0.5], p_target=0.5) == (0.5, 0.5)


def test_all_equal_scores():
    # A single threshold that accepts everything: FAR 1, FRR 0.
    assert compute_eer([0.3, 0.3], [0.3, 0.3, 0.3]) == (0.5, 0.3)
    # Accept-all costs (1 - p) / p = 99 and accept-nothing costs p / p = 1.
    dcf, thr = compute_min_dcf([0.3, 0.3], [0.3, 0.3, 0.3])
    assert dcf == 1.0 and thr > 0.3
    m = evaluate_conditions({"flat": (np.full(4, 0.3), [1, 0, 0, 0])})["flat"]
    assert m["eer"] == 0.5 and m["min_dcf"] == 1.0


def test_one_target():
    # t = 0.1: FAR 1, FRR 0; t = 0.2: FAR 2/3, FRR 0; t = 0.5: FAR 1/3, FRR 0;
    # t = 0.6: FAR 1/3, FRR 1 ... -> best gap 1/3 at 0.5, EER = 1/6.
    eer, thr = compute_eer([0.5], [0.1, 0.2, 0.6])
    assert eer == pytest.approx(1 / 6) and thr == 0.5


def test_perfectly_separated():
    assert compute_eer([0.6, 0.7, 0.8], [0.1, 0.2, 0.3]) == (0.0, 0.6)
    assert compute_min_dcf([0.6, 0.7, 0.8], [0.1, 0.2, 0.3]) == (0.0, 0.6)


def test_reversed():
    # Every target below every non-target: at t = 0.8 both rates are 1.
    assert compute_eer([0.1, 0.2], [0.8, 0.9]) == (1.0, 0.8)
    # Nothing beats rejecting everything: cost p / p = 1 with the threshold above the max.
    dcf, thr = compute_min_dcf([0.1, 0.2], [0.8, 0.9])
    assert dcf == 1.0 and thr > 0.9


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [None, 1])
def test_eer_against_brute_force(seed, decimals):
    pos, neg = random_scores(seed, 40 + seed * 17, 300 + seed * 53, decimals)
    eer, thr = compute_eer(pos, neg)
    ref, ref_thr, gap = brute_eer(pos, neg)
    assert eer == pytest.approx(ref, abs=1e-12)
    assert thr == ref_thr
    p_fa, p_miss = brute_rates(pos, neg, [thr])
    assert abs(p_fa[0] - p_miss[0]) == pytest.approx(gap, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_eer_against_sklearn_roc(seed):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    pos, neg = random_scores(seed, 200, 2000, decimals=2 if seed % 2 else None)
    labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    fpr, tpr, thr = sk_metrics.roc_curve(labels, np.r_[pos, neg], drop_intermediate=False)
    # roc_curve also uses score >= threshold; its first threshold is +inf (accept nothing), which
    # the EER definition excludes. Its thresholds descend, so among (float-rounded) equal gaps the
    # lowest threshold, which compute_eer picks, is the last.
    fpr, fnr, thr = fpr[1:], 1 - tpr[1:], thr[1:]
    gap = np.abs(fpr - fnr)
    k = np.flatnonzero(gap <= gap.min() + 1e-12)[-1]
    eer, eer_thr = compute_eer(pos, neg)
    assert eer == pytest.approx((fpr[k] + fnr[k]) / 2, abs=1e-12)
    assert eer_thr == thr[k]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p_target", [0.01, 0.001, 0.3])
def test_min_dcf_against_brute_force(seed, p_target):
    pos, neg = random_scores(100 + seed, 30 + 11 * seed, 500, decimals=1 if seed == 4 else None)
    dcf, thr = compute_min_dcf(pos, neg, p_target=p_target)
    assert dcf == pytest.approx(brute_min_dcf(pos, neg, p_target), abs=1e-12)
    # The threshold reproduces the cost.
    p_fa, p_miss = brute_rates(pos, neg, [thr])
    direct = (p_miss[0] * p_target + p_fa[0] * (1 - p_target)) / min(p_target, 1 - p_target)
    assert direct == pytest.approx(dcf, abs=1e-12)


def test_min_dcf_costs():
    pos, neg = random_scores(7, 50, 400)
    dcf, _ = compute_min_dcf(pos, neg, p_target=0.05, c_miss=10.0, c_fa=1.0)
    assert dcf == pytest.approx(brute_min_dcf(pos, neg, 0.05, 10.0, 1.0), abs=1e-12)
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf(pos, neg, p_target=0.0)


def rounding_eer_bound(pos, neg, dtype):
    """The largest EER change that rounding the scores to ``dtype`` can cause.

    Rounding to a float type is monotone (x <= y gives round(x) <= round(y)): it reorders
    no pair of scores, it can only merge distinct scores into one value (a tie group).
    The rounded list's thresholds are then the minima of the groups, with the same error
    counts there as the float64 list at those scores. The float64 EER threshold t* lies
    in one group G; with FAR - FRR non-increasing in the threshold, the rounded list's
    EER threshold is the minimum of G or of the next group (or a threshold with the same
    EER), and the trials that cross between t* and either one are scores of G. So the EER,
    (FAR + FRR) / 2, moves by at most max(#negatives of G / n_neg, #positives of G / n_pos) / 2,
    over the groups that merge distinct scores, and not at all when none does.
    """
    scores = np.r_[pos, neg]
    is_pos = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    rounded = torch.tensor(scores, dtype=dtype).double().numpy()
    bound = 0.0
    for value in np.unique(rounded):
        group = rounded == value
        if np.unique(scores[group]).size > 1:
            share = max((group & ~is_pos).sum() / len(neg), (group & is_pos).sum() / len(pos))
            bound = max(bound, share / 2)
    return bound


def test_input_types_and_dtypes():
    pos, neg = random_scores(3, 20, 80)
    ref = compute_eer(pos, neg)
    assert compute_eer(torch.from_numpy(pos), torch.from_numpy(neg)) == ref
    assert compute_eer(pos.tolist(), neg.tolist()) == ref
    assert isinstance(ref[0], float) and isinstance(ref[1], float)
    # No two of these scores share a float32 value: the bound is 0 and the EER exactly the same.
    assert rounding_eer_bound(pos, neg, torch.float32) == 0.0
    e32, _ = compute_eer(torch.tensor(pos, dtype=torch.float32), torch.tensor(neg, dtype=torch.float32))
    assert e32 == ref[0]
    eb, _ = compute_eer(torch.tensor(pos, dtype=torch.bfloat16), torch.tensor(neg, dtype=torch.bfloat16))
    assert abs(eb - ref[0]) <= rounding_eer_bound(pos, neg, torch.bfloat16)


@pytest.mark.parametrize("seed", range(5))
def test_float32_eer_moves_at_most_what_rounding_can_merge(seed):
    # Scores around the EER threshold with neighbours of the other class closer than float32 resolves.
    rng = np.random.default_rng(seed)
    pos, neg = rng.normal(0.3, 0.2, 60), rng.normal(0.0, 0.2, 240)
    twins = rng.choice(pos, 15, replace=False)
    neg = np.r_[neg, twins * (1 + 1e-9)]
    pos = np.r_[pos, rng.choice(neg[:240], 15, replace=False) * (1 - 1e-9)]
    ref, _ = compute_eer(pos, neg)
    for dtype in (torch.float32, torch.bfloat16):
        bound = rounding_eer_bound(pos, neg, dtype)
        got, _ = compute_eer(torch.tensor(pos, dtype=dtype), torch.tensor(neg, dtype=dtype))
        assert bound > 0 and abs(got - ref) <= bound, (dtype, got, ref, bound)
    assert rounding_eer_bound(pos, neg, torch.float32) < 0.01  # a few merged pairs, not 5 points


def test_det_curve_matches_direct_rates():
    pos, neg = random_scores(11, 30, 100, decimals=1)
    p_fa, p_miss, thr = det_curve(pos, neg)
    ref_fa, ref_miss = brute_rates(pos, neg, thr)
    np.testing.assert_allclose(p_fa, ref_fa, atol=1e-15)
    np.testing.assert_allclose(p_miss, ref_miss, atol=1e-15)
    assert np.all(np.diff(thr) > 0)


@pytest.mark.parametrize(
    "pos, neg, match",
    [
        ([], [0.1], "positive_scores is empty"),
        ([0.1], np.array([]), "negative_scores is empty"),
        ([0.1, np.nan, np.inf], [0.1], "positive_scores has 2 non-finite"),
        ([0.1], [0.2, -np.inf], "negative_scores has 1 non-finite"),
        (np.zeros((2, 2)), [0.1], "1-D"),
    ],
)
def test_bad_scores(pos, neg, match):
    for fn in (compute_eer, compute_min_dcf, det_curve):
        with pytest.raises(ValueError, match=match):
            fn(pos, neg)


def test_evaluate_conditions():
    pos, neg = random_scores(5, 60, 600)
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(60, np.int8), np.zeros(600, np.int8)]
    out = evaluate_conditions(
        {"all": (scores, labels), "t": (torch.from_numpy(scores), labels)}, (0.01, 0.001)
    )
    m = out["all"]
    assert (m["eer"], m["eer_threshold"]) == compute_eer(pos, neg)
    assert (m["min_dcf"], m["min_dcf_threshold"]) == compute_min_dcf(pos, neg, 0.01)
    assert (m["min_dcf_p0.001"], m["min_dcf_p0.001_threshold"]) == compute_min_dcf(pos, neg, 0.001)
    assert m["n_target"] == 60 and m["n_nontarget"] == 600 and out["t"] == m
    for bad_labels in (np.ones(660), np.zeros(660)):
        with pytest.raises(ValueError, match="condition 'neutral'"):
            evaluate_conditions({"neutral": (scores, bad_labels)})
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        evaluate_conditions({"x": (scores, np.full(660, 2))})
    with pytest.raises(ValueError, match="labels for"):
        evaluate_conditions({"x": (scores, labels[:10])})


# ----------------------------------------------------------------- trial IO


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_load_trials(tmp_path):
    p = write(tmp_path / "t.txt", "1 a b\n0 a c\n\n1 d e\n")
    t = load_trials(p)
    assert t.labels.dtype == np.int8 and t.labels.tolist() == [1, 0, 1]
    assert t.enrol == ["a", "a", "d"] and t.test == ["b", "c", "e"]
    assert t.path == p and t.line_numbers.tolist() == [1, 2, 4] and len(t) == 3


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 a b\n1 a\n", r"t\.txt:2: expected .* got 2 field"),
        ("1 a b\n\n0 a b c\n", r"t\.txt:3: expected .* got 4 field"),
        ("yes a b\n", r"t\.txt:1: label must be 0 or 1, got 'yes'"),
        ("1 a b\n-1 a c\n", r"t\.txt:2: label"),
        ("", "empty"),
        ("\n  \n", "empty"),
    ],
)
def test_load_trials_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_trials(write(tmp_path / "t.txt", text))


def test_load_enrol_map(tmp_path):
    assert load_enrol_map(write(tmp_path / "m", "m1 u1 u2\nm2 u3\n")) == {"m1": ["u1", "u2"], "m2": ["u3"]}
    with pytest.raises(ValueError, match=r"m:2:"):
        load_enrol_map(write(tmp_path / "m", "m1 u1\nm2\n"))
    with pytest.raises(ValueError, match="repeated"):
        load_enrol_map(write(tmp_path / "m", "m1 u1\nm1 u2\n"))
    with pytest.raises(ValueError, match="empty"):
        load_enrol_map(write(tmp_path / "m", ""))


# ----------------------------------------------------------------- cosine scoring


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(12)]
    return ids, rng.normal(size=(12, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=(12, 1)).astype(
        np.float32
    )


def test_score_trials_cosine(table, tmp_path):
    ids, emb = table
    lines = "1 u0 u1\n0 u0 u2\n1 u3 u3\n0 u5 u11\n1 u0 u1\n"
    p = write(tmp_path / "t.txt", lines)
    scores = score_trials(ids, emb, p)
    e = unit(emb.astype(np.float64))
    ref = [e[0] @ e[1], e[0] @ e[2], 1.0, e[5] @ e[11], e[0] @ e[1]]
    assert scores.dtype == np.float64 and scores.shape == (5,)
    np.testing.assert_allclose(scores, ref, atol=1e-6)
    np.testing.assert_allclose(score_trials(ids, torch.from_numpy(emb), load_trials(p)), ref, atol=1e-6)


def test_score_trials_enrol_map_averages_normalised(table, tmp_path):
    ids, emb = table
    write(tmp_path / "enrol.map", "spkA u0 u1 u2\nspkB u4\n")
    t = Trials(np.array([1, 0, 1], np.int8), ["spkA", "spkB", "u6"], ["u7", "u7", "u7"])
    scores = score_trials(ids, emb, t, enrol_map=str(tmp_path / "enrol.map"))
    e = unit(emb.astype(np.float64))
    model = unit(e[[0, 1, 2]].mean(axis=0))  # mean of NORMALISED embeddings, renormalised
    np.testing.assert_allclose(scores, [model @ e[7], e[4] @ e[7], e[6] @ e[7]], atol=1e-6)
    raw_mean = unit(emb[[0, 1, 2]].astype(np.float64).mean(axis=0))
    assert abs(raw_mean @ e[7] - scores[0]) > 1e-4  # the norms differ, so the order of operations shows


def test_score_trials_missing_ids(table, tmp_path):
    ids, emb = table
    p = write(tmp_path / "t.txt", "1 u0 u1\n\n0 u0 nope\n1 ghost u1\n")
    with pytest.raises(KeyError, match=r"t\.txt:3: test id 'nope' has no embedding"):
        score_trials(ids, emb, p)
    p = write(tmp_path / "t.txt", "1 u0 u1\n1 ghost u1\n0 u0 nope\n")
    with pytest.raises(ValueError, match=r"t\.txt:2: enrol id 'ghost'"):
        score_trials(ids, emb, p)
    t = Trials(np.array([1, 1], np.int8), ["u0", "spk"], ["u1", "u2"])
    with pytest.raises(MissingEmbeddingError, match=r"trial 2: enrol model 'spk' lists utterance 'u99'"):
        score_trials(ids, emb, t, enrol_map={"spk": ["u1", "u99"]})


def test_score_trials_non_finite_embedding(table):
    ids, emb = table
    emb = emb.copy()
    emb[3, 1] = np.nan
    emb[9] = 0.0
    t = Trials(np.array([1, 0, 1], np.int8), ["u0", "u3", "u9"], ["u1", "u1", "u2"])
    with pytest.raises(ValueError, match=r"\['u3', 'u9'\]"):
        score_trials(ids, emb, t)
    # Rows no trial uses do not matter.
    t = Trials(np.array([1], np.int8), ["u0"], ["u1"])
    assert np.isfinite(score_trials(ids, emb, t)).all()


def test_score_trials_bad_ids(table):
    ids, emb = table
    t = Trials(np.array([1], np.int8), ["u0"], ["u1"])
    with pytest.raises(ValueError, match="more than once"):
        score_trials(ids[:-1] + ["u0"], emb, t)
    with pytest.raises(ValueError, match="11 ids for 12"):
        score_trials(ids[:-1], emb, t)


# ----------------------------------------------------------------- AS-norm


def test_cohort_stats_against_direct_topk():
    g = torch.Generator().manual_seed(0)
    emb, coh = torch.randn(37, 16, generator=g) * 3, torch.randn(50, 16, generator=g)
    mean, std = cohort_stats(emb, coh, top_n=7)
    s = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(coh, dim=1).T
    top = torch.topk(s, 7, dim=1).values
    torch.testing.assert_close(mean, top.mean(1))
    torch.testing.assert_close(std, top.std(1))
    # Chunking: force several chunks through the module constant.
    old = score_norm._COHORT_CHUNK_ELEMENTS
    score_norm._COHORT_CHUNK_ELEMENTS = 50 * 5
    try:
        mean_c, std_c = cohort_stats(emb.numpy(), coh.numpy(), top_n=7)
    finally:
        score_norm._COHORT_CHUNK_ELEMENTS = old
    assert isinstance(mean_c, torch.Tensor)
    torch.testing.assert_close(mean_c, mean)
    torch.testing.assert_close(std_c, std)
    # top_n beyond the cohort uses the whole cohort.
    torch.testing.assert_close(cohort_stats(emb, coh, top_n=500)[0], s.mean(1))
    with pytest.raises(ValueError, match="at least 2"):
        cohort_stats(emb, coh[:1])


def test_as_norm_formula():
    s = np.array([0.5, -0.2])
    out = as_norm(s, np.array([0.1, 0.0]), np.array([0.2, 0.1]), np.array([0.3, 0.1]), np.array([0.1, 0.3]))
    np.testing.assert_allclose(out, [0.5 * (2 + 2), 0.5 * (-2 + -1)])
    tout = as_norm(torch.tensor(s), torch.tensor([0.1, 0.0]), 0.2, torch.tensor([0.3, 0.1]), 0.1)
    assert isinstance(tout, torch.Tensor)
    with pytest.raises(ValueError, match="enroll_std"):
        as_norm(s, 0.0, 0.0, 0.0, 1.0)


def test_score_trials_as_norm_against_per_trial_formula(table):
    ids, emb = table
    rng = np.random.default_rng(1)
    cohort = rng.normal(size=(20, 8))
    enrol = ["u0", "spk", "u3", "u0", "spk"]
    test = ["u1", "u7", "u8", "u9", "u1"]
    enrol_map = {"spk": ["u4", "u5"]}
    t = Trials(np.array([1, 0, 1, 0, 1], np.int8), enrol, test)
    got = score_trials(ids, emb, t, enrol_map=enrol_map, cohort=cohort, top_n=5)

    e, c = unit(emb.astype(np.float64)), unit(cohort)
    vec = {u: e[i] for i, u in enumerate(ids)}
    vec["spk"] = unit(e[[4, 5]].mean(axis=0))
    ref = []
    for a, b in zip(enrol, test):
        top_e = np.sort(c @ vec[a])[-5:]
        top_t = np.sort(c @ vec[b])[-5:]
        s = vec[a] @ vec[b]
        ref.append(0.5 * ((s - top_e.mean()) / top_e.std(ddof=1) + (s - top_t.mean()) / top_t.std(ddof=1)))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------- report


def test_report_files_and_schema(tmp_path):
    pos, neg = random_scores(2, 80, 800)
    rng = np.random.default_rng(3)
    data = {
        "all": (np.r_[pos, neg], np.r_[np.ones(80), np.zeros(800)].astype(np.int8)),
        "same-emotion": (rng.normal(size=50), np.r_[np.ones(10), np.zeros(40)]),
        "flat": (np.zeros(4), [1, 0, 0, 0]),
    }
    ood = {"all": (np.r_[pos - 0.5, neg], data["all"][1])}
    metrics = evaluate_conditions(data, p_targets=(0.01, 0.001))
    ood_metrics = evaluate_conditions(ood, p_targets=(0.01, 0.001))
    paths = write_report(
        tmp_path / "rep", {"eval": metrics, "ood": ood_metrics}, {"eval": data, "ood": ood}, "unit test",
        extra={"checkpoint": "ckpt", "command": "x"},
    )
    assert set(paths) == {"metrics", "report", "det", "score_hist", "plots"}
    assert sorted(os.path.basename(p) for p in paths["plots"]["ood"].values()) == ["det_ood.png", "score_hist_ood.png"]
    for p in [paths["metrics"], paths["report"], *(q for v in paths["plots"].values() for q in v.values())]:
        assert os.path.getsize(p) > 0
        if p.endswith(".png"):
            with open(p, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(tmp_path / "rep") if f.startswith(".tmp-")]
    m = json.load(open(paths["metrics"]))
    assert m["checkpoint"] == "ckpt" and m["command"] == "x"
    assert set(m["conditions"]) == set(data) and m["conditions"] == m["splits"]["eval"]["conditions"]
    assert m["splits"]["ood"]["conditions"]["all"] == pytest.approx(ood_metrics["all"])
    for name, cond in m["conditions"].items():
        assert {"eer", "min_dcf", "n_target", "n_nontarget", "min_dcf_p0.001"} <= set(cond)
        assert 0.0 <= cond["eer"] <= 1.0
        assert cond == pytest.approx(metrics[name])
    md = open(paths["report"]).read()
    assert "| condition | eval | ood |" in md and "### minDCF(0.001)" in md
    assert f"| all | {100 * metrics['all']['eer']:.2f} | {100 * ood_metrics['all']['eer']:.2f} |" in md
    assert "| flat | 50.00 | - |" in md and "ckpt" in md
    table_text = format_metrics_table(metrics)
    assert table_text.splitlines()[0].split() == [
        "condition",
        "EER",
        "%",
        "minDCF(0.01)",
        "minDCF(0.001)",
        "#target",
        "#nontarget",
    ]
    assert len(table_text.splitlines()) == 2 + len(data)
    for reserved in ("conditions", "splits"):
        with pytest.raises(ValueError, match=reserved):
            write_report(tmp_path / "rep", {"eval": metrics}, {"eval": data}, "t", extra={reserved: 1})
    with pytest.raises(ValueError, match="split 'eval': no scores for condition"):
        write_report(tmp_path / "rep", {"eval": metrics}, {"eval": {"all": data["all"]}}, "t")
