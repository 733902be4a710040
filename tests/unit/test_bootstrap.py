"""Speaker bootstrap of EER / minDCF: exact against unweighted scoring and against a slow
reference that replicates every trial of a draw and scans every threshold by definition."""

import numpy as np
import pytest

from speechbrain_ext.bootstrap import (
    BootstrapError,
    SpeakerTrials,
    metric_keys,
    one_trial_steps,
    percentile_interval,
    speaker_draws,
    weighted_metrics,
)
from speechbrain_ext.bootstrap_llr import SpeakerLLRs, weighted_llr_metrics
from speechbrain_ext.calibration_metrics import actual_dcf, bayes_threshold, cllr
from speechbrain_ext.scoring import compute_eer, compute_min_dcf

P_TARGETS = (0.01, 0.05, 0.5)

# ------------------------------------------------------------ slow, obviously correct references


def slow_eer(pos, neg):
    """EER by definition: every distinct score, accept when score >= t, lowest t on ties."""
    best = None
    for t in sorted(set(pos) | set(neg)):
        far = sum(s >= t for s in neg) / len(neg)
        frr = sum(s < t for s in pos) / len(pos)
        if best is None or abs(far - frr) < best[0] - 1e-15:
            best = (abs(far - frr), (far + frr) / 2)
    return best[1]


def slow_min_dcf(pos, neg, p):
    norm = min(p, 1 - p)
    costs = [1.0 * p / norm]  # accept nothing
    for t in sorted(set(pos) | set(neg)):
        p_fa = sum(s >= t for s in neg) / len(neg)
        p_miss = sum(s < t for s in pos) / len(pos)
        costs.append((p * p_miss + (1 - p) * p_fa) / norm)
    return min(costs)


def slow_bootstrap(scores, labels, speakers, counts, p_targets=P_TARGETS):
    """Replicate each trial counts[speaker] times, then score the new list from scratch."""
    out = {k: [] for k in metric_keys(p_targets)}
    for row in counts:
        pos, neg = [], []
        for s, y, g in zip(scores, labels, speakers):
            (pos if y == 1 else neg).extend([float(s)] * int(row[g]))
        if not pos or not neg:
            for k in out:
                out[k].append(np.nan)
            continue
        out["eer"].append(slow_eer(pos, neg))
        for p in p_targets:
            out[f"min_dcf_p{p:g}"].append(slow_min_dcf(pos, neg, p))
    return {k: np.array(v) for k, v in out.items()}


def random_list(seed, n, n_speakers, decimals=None):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int8)
    labels[:2] = [1, 0]
    scores = rng.normal(size=n) + 1.5 * labels
    if decimals is not None:  # rounding makes ties within and across the two sides
        scores = np.round(scores, decimals)
    return scores, labels, rng.integers(0, n_speakers, n)


# ---------------------------------------------------------------------------------- exactness


def test_hand_made_example_against_replicated_reference():
    # Speaker 0: target 0.9, non-target 0.3; speaker 1: target 0.4, non-target 0.5;
    # speaker 2: target 0.6 and a tie at 0.6 with a non-target.
    scores = [0.9, 0.3, 0.4, 0.5, 0.6, 0.6]
    labels = [1, 0, 1, 0, 1, 0]
    speakers = [0, 0, 1, 1, 2, 2]
    counts = np.array([[1, 1, 1], [2, 0, 1], [0, 3, 0], [3, 0, 0], [0, 1, 2]])
    got = SpeakerTrials(scores, labels, speakers, 3, spacing=1).metrics(counts, P_TARGETS)
    want = slow_bootstrap(scores, labels, speakers, counts)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-12)
    # Draw [3, 0, 0] keeps speaker 0 only: perfectly separated.
    assert got["eer"][3] == 0.0 and got["min_dcf_p0.01"][3] == 0.0
    # Draw [2, 0, 1]: targets 0.9 x2, 0.6; non-targets 0.3 x2, 0.6: EER at t = 0.6 is (1/3 + 0)/2.
    assert got["eer"][1] == pytest.approx(1 / 6)


def test_crossing_exactly_at_a_checkpoint():
    # Threshold 0.7 gives FAR = FRR = 1/2 (gap exactly 0); every threshold is a checkpoint.
    t = SpeakerTrials([0.9, 0.6, 0.7, 0.1], [1, 1, 0, 0], [0, 1, 0, 1], 2, spacing=1)
    m = t.metrics([[1, 1], [2, 2]])
    assert m["eer"].tolist() == [0.5, 0.5] == [compute_eer([0.9, 0.6], [0.7, 0.1])[0]] * 2


def test_zero_weight_trials_above_every_drawn_one_are_accept_nothing():
    # Speaker 0: five targets below two non-targets (reject-all is the best at p = 0.01);
    # speaker 1 holds the top score. Without speaker 1 the thresholds above 0.7 keep no trial:
    # their cost must be exactly compute_min_dcf's "accept nothing" (5 * (0.01 / (5 * 0.01)) is not 1.0).
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.95, 0.05]
    labels = [1, 1, 1, 1, 1, 0, 0, 1, 0]
    speakers = [0, 0, 0, 0, 0, 0, 0, 1, 1]
    got = SpeakerTrials(scores, labels, speakers, 2, spacing=1).metrics([[1, 0]], (0.01,))
    want = compute_min_dcf(scores[:5], scores[5:7], 0.01)[0]
    assert want == 1.0 and got["min_dcf_p0.01"][0] == want
    assert got["eer"][0] == compute_eer(scores[:5], scores[5:7])[0]


@pytest.mark.parametrize("seed", range(6))
def test_random_lists_with_ties_against_replicated_reference(seed):
    n_speakers = 5
    scores, labels, speakers = random_list(seed, 40, n_speakers, decimals=seed % 3)
    counts = speaker_draws(n_speakers, 12, seed=seed)
    want = slow_bootstrap(scores, labels, speakers, counts)
    for spacing in (1, 3, 1000):  # one segment per score up to a single segment
        got = SpeakerTrials(scores, labels, speakers, n_speakers, spacing=spacing).metrics(counts, P_TARGETS)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-12, err_msg=f"{k}, spacing {spacing}")


@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_unit_weights_equal_compute_eer_and_min_dcf_bit_for_bit(decimals):
    scores, labels, speakers = random_list(7, 3000, 30, decimals)
    scores = scores.astype(np.float32)
    pos, neg = scores[labels == 1], scores[labels == 0]
    ones = np.ones((1, 30), dtype=np.int64)
    got = SpeakerTrials(scores, labels, speakers, 30).metrics(ones, P_TARGETS)
    assert got["eer"][0] == compute_eer(pos, neg)[0]
    for p in P_TARGETS:
        assert got[f"min_dcf_p{p:g}"][0] == compute_min_dcf(pos, neg, p)[0]
    w = weighted_metrics(scores, labels, np.ones(scores.size, dtype=int), P_TARGETS)
    assert w == {k: v[0] for k, v in got.items()}


def test_weights_equal_replicated_trials():
    scores, labels, _ = random_list(3, 60, 1, decimals=1)
    weights = np.random.default_rng(0).integers(0, 4, size=(5, 60))
    got = weighted_metrics(scores, labels, weights, (0.01,))
    for row, w in enumerate(weights):
        rep_s, rep_y = np.repeat(scores, w), np.repeat(labels, w)
        assert got["eer"][row] == compute_eer(rep_s[rep_y == 1], rep_s[rep_y == 0])[0]
        assert got["min_dcf_p0.01"][row] == compute_min_dcf(rep_s[rep_y == 1], rep_s[rep_y == 0], 0.01)[0]


def test_large_list_fast_path_matches_replication_on_a_few_draws():
    scores, labels, speakers = random_list(11, 20000, 100)
    counts = speaker_draws(100, 64, seed=5)
    got = SpeakerTrials(scores, labels, speakers, 100).metrics(counts)
    for b in (0, 17, 63):
        w = counts[b][speakers]
        rep_s, rep_y = np.repeat(scores, w), np.repeat(labels, w)
        assert got["eer"][b] == compute_eer(rep_s[rep_y == 1], rep_s[rep_y == 0])[0]
        assert got["min_dcf_p0.05"][b] == compute_min_dcf(rep_s[rep_y == 1], rep_s[rep_y == 0], 0.05)[0]


# ------------------------------------------------------------------------------- known answers


def test_perfectly_separated_lists_have_zero_error_in_every_draw():
    speakers = np.repeat(np.arange(10), 4)
    labels = np.tile([1, 1, 0, 0], 10)
    scores = np.where(labels == 1, 2.0, -2.0) + np.random.default_rng(0).normal(0, 0.1, 40)
    m = SpeakerTrials(scores, labels, speakers, 10).metrics(speaker_draws(10, 300, seed=1))
    for k in m:
        assert np.all(m[k] == 0.0), k
    assert percentile_interval(m["eer"]) == (0.0, 0.0)


def test_draw_without_targets_is_nan_and_left_out_of_the_interval():
    # Only speaker 0 has target trials.
    t = SpeakerTrials([0.9, 0.1, 0.2, 0.3], [1, 0, 0, 0], [0, 0, 1, 1], 2)
    m = t.metrics([[1, 1], [0, 2], [2, 0]])
    assert m["eer"][0] == 0.0 and np.isnan(m["eer"][1]) and m["eer"][2] == 0.0
    assert percentile_interval(m["eer"]) == (0.0, 0.0)


def test_draws_are_deterministic_and_resample_speakers():
    a, b = speaker_draws(50, 400, seed=3), speaker_draws(50, 400, seed=3)
    assert a.dtype == np.int32 and a.shape == (400, 50)
    assert np.array_equal(a, b) and not np.array_equal(a, speaker_draws(50, 400, seed=4))
    assert np.all(a.sum(axis=1) == 50)
    # With replacement: the fraction of speakers left out tends to (1 - 1/n)^n ~ e^-1.
    assert 0.3 < np.mean(a == 0) < 0.44


def test_one_trial_steps_follow_the_cost_formula():
    steps = one_trial_steps(200, 600, p_targets=(0.01, 0.05, 0.9))
    assert steps["eer"] == (1 / 400, 1 / 1200)
    assert steps["min_dcf_p0.01"] == pytest.approx((1 / 200, 99 / 600))
    assert steps["min_dcf_p0.05"] == pytest.approx((1 / 200, 19 / 600))
    # Above p = 0.5 the normaliser is (1 - p): misses weigh more.
    assert steps["min_dcf_p0.9"] == pytest.approx((9 / 200, 1 / 600))
    # The step is what one flipped trial actually does at a fixed ordering.
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(3, 0.3, 200), rng.normal(0, 0.3, 600)
    base = compute_min_dcf(pos, neg, 0.01)[0]
    assert base == 0.0
    neg[0] = 10.0  # one non-target above every target: the best is now one false alarm or all misses
    assert compute_min_dcf(pos, neg, 0.01)[0] == pytest.approx(steps["min_dcf_p0.01"][1])


def test_percentile_interval_is_the_percentile_interval():
    values = np.arange(1, 1001, dtype=float)
    low, high = percentile_interval(values, 0.9)
    assert low == pytest.approx(np.percentile(values, 5)) and high == pytest.approx(np.percentile(values, 95))
    low, high = percentile_interval([np.nan, np.nan])
    assert np.isnan(low) and np.isnan(high)


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "scores, labels, speakers, message",
    [
        ([0.1, np.nan, 0.3], [1, 0, 0], [0, 0, 0], "1 non-finite score"),
        ([0.1, np.inf], [1, 0], [0, 0], "1 non-finite score"),
        ([0.1, 0.2], [1, 1], [0, 0], "2 target and 0 non-target"),
        ([0.1, 0.2], [0, 0], [0, 0], "0 target and 2 non-target"),
        ([0.1, 0.2], [1, 2], [0, 0], "labels must be 0"),
        ([0.1, 0.2], [1, 0], [0, 2], r"test-speaker indices must be integers in \[0, 2\)"),
        ([0.1, 0.2], [1, 0, 0], [0, 0], "3 labels for 2 scores"),
        ([], [], [], "non-empty"),
    ],
)
def test_bad_trials_are_named(scores, labels, speakers, message):
    with pytest.raises(BootstrapError, match=f"condition 'x'.*{message}"):
        SpeakerTrials(scores, labels, np.asarray(speakers, dtype=int), 2, name="condition 'x'")


@pytest.mark.parametrize(
    "counts, message",
    [([[1, 1, 1]], r"draws must be \[n_draws >= 1, 2 speakers\]"), ([[1, -1]], "non-negative integer"),
     ([[0.5, 1.5]], "non-negative integer"), (np.zeros((0, 2), int), "n_draws >= 1")],
)
def test_bad_draws_are_named(counts, message):
    t = SpeakerTrials([0.9, 0.1], [1, 0], [0, 1], 2, name="run a")
    with pytest.raises(BootstrapError, match=f"run a: .*{message}"):
        t.metrics(np.asarray(counts))


@pytest.mark.parametrize("p_targets", [(), (0.0,), (1.0,), (0.01, 1.5)])
def test_bad_priors(p_targets):
    t = SpeakerTrials([0.9, 0.1], [1, 0], [0, 1], 2)
    with pytest.raises(BootstrapError, match="p_targets"):
        t.metrics([[1, 1]], p_targets)


# ---------------------------------------------------------------------------- Cllr and actual DCF of LLRs
def test_llr_metrics_of_unit_weights_equal_calibration_metrics():
    rng = np.random.default_rng(5)
    labels = (rng.random(3000) < 0.1).astype(np.int8)
    llr = rng.normal(size=3000) * 3 + 4 * labels - 2
    llr[:50] = bayes_threshold(0.01)  # trials exactly at the Bayes threshold are accepted
    assert bayes_threshold(0.01) == pytest.approx(-np.log(0.01 / 0.99))
    speaker = rng.integers(0, 40, size=3000)
    m = SpeakerLLRs(llr, labels, speaker, 40).metrics(np.ones((1, 40), np.int64), p_targets=(0.01, 0.05, 0.5))
    assert m["cllr"][0] == pytest.approx(cllr(llr, labels), rel=1e-12)
    for p in (0.01, 0.05, 0.5):
        assert m[f"act_dcf_p{p:g}"][0] == actual_dcf(llr, labels, p)


def test_llr_metrics_of_speaker_draws_equal_the_replicated_lists():
    rng = np.random.default_rng(6)
    labels = (rng.random(400) < 0.3).astype(np.int8)
    llr = rng.normal(size=400) + 2 * labels - 1
    speaker = rng.integers(0, 12, size=400)
    counts = speaker_draws(12, 30, seed=2)
    m = SpeakerLLRs(llr, labels, speaker, 12).metrics(counts, p_targets=(0.01, 0.2))
    for d in range(30):
        w = counts[d, speaker]
        rep_llr, rep_lab = np.repeat(llr, w), np.repeat(labels, w)
        if rep_lab.min() == rep_lab.max():
            assert np.isnan(m["cllr"][d]) and np.isnan(m["act_dcf_p0.01"][d])
            continue
        assert m["cllr"][d] == pytest.approx(cllr(rep_llr, rep_lab), rel=1e-12)
        for p in (0.01, 0.2):
            assert m[f"act_dcf_p{p:g}"][d] == pytest.approx(actual_dcf(rep_llr, rep_lab, p), rel=1e-14)


def test_llr_metrics_of_a_hand_computed_example():
    # targets: llr log 3 (twice, weight 2) and -log 3; non-targets: -log 3 and log 3 (weight 0: dropped)
    llr = np.log([3.0, 1 / 3, 1 / 3, 3.0])
    m = weighted_llr_metrics(llr, [1, 1, 0, 0], [2, 1, 1, 0], p_targets=(0.5, 0.01))
    # Cllr = ½ [(2 log2(4/3) + log2(4)) / 3 + log2(4/3)]
    assert m["cllr"] == pytest.approx(0.5 * ((2 * np.log2(4 / 3) + 2.0) / 3 + np.log2(4 / 3)), rel=1e-12)
    # p = 0.5: threshold 0, one of three targets missed, no false alarm: (½ · ⅓) / ½ = ⅓
    assert m["act_dcf_p0.5"] == pytest.approx(1 / 3, rel=1e-15)
    # p = 0.01: threshold 4.6 rejects everything: P_miss = 1, cost 0.01 / 0.01 = 1
    assert m["act_dcf_p0.01"] == 1.0


def test_llr_bootstrap_refuses_bad_input():
    with pytest.raises(BootstrapError, match="run a: 1 non-finite score"):
        SpeakerLLRs([0.5, np.nan], [1, 0], [0, 0], 1, "run a")
    with pytest.raises(BootstrapError, match=r"draws must be \[n_draws >= 1, 1 speakers\]"):
        SpeakerLLRs([0.5, 0.1], [1, 0], [0, 0], 1).metrics([[1, 1]])
