"""Calibration: Cllr / min Cllr / actual DCF, the prior-weighted logistic fit, quality measures."""

import json
import math
import warnings

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit, logit

from speechbrain_ext.calibration import AUTO_L2, Calibration, CalibrationWarning, calibrate_eval, fit_calibration
from speechbrain_ext.calibration_metrics import (
    CalibrationError,
    actual_dcf,
    bayes_threshold,
    calibration_report,
    cllr,
    isotonic_increasing,
    llr_metrics,
    min_cllr,
    pav_llr,
)
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.quality import (
    QUALITY_MEASURES,
    QUALITY_SETS,
    CalibrationSet,
    calibration_set,
    measure_names,
    side_metadata,
    trial_quality,
)
from speechbrain_ext.scoring import Trials, compute_min_dcf

# --------------------------------------------------------------------------- helpers


def gaussian_trials(n, rng, target_rate=0.3, mu_tar=0.6, mu_non=0.1, sd=0.15):
    labels = rng.random(n) < target_rate
    scores = np.where(labels, rng.normal(mu_tar, sd, n), rng.normal(mu_non, sd, n))
    return scores, labels


def slow_pav(y, w):
    """Textbook stack-based pool-adjacent-violators (reference for the fast paths)."""
    blocks = []  # [weighted sum, weight, count]
    for yi, wi in zip(y, w):
        blocks.append([yi * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, ww, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += ww
            blocks[-1][2] += c
    return np.concatenate([np.full(c, s / ww) for s, ww, c in blocks])


def slow_min_cllr(scores, labels):
    """min Cllr by per-trial loops: pool ties, PAV, LLR = logit(posterior) - logit(data prior), Cllr."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    values = sorted(set(scores.tolist()))
    counts = [(sum(labels[scores == v]), sum(scores == v)) for v in values]
    post = slow_pav([t / n for t, n in counts], [n for _, n in counts])
    prior_odds = labels.sum() / (labels.size - labels.sum())
    n_tar, n_non = labels.sum(), labels.size - labels.sum()
    total = 0.0
    for (t, n), p in zip(counts, post):
        if t:
            total += t * math.log2(1 + (1 - p) / p * prior_odds) / n_tar
        if n - t:
            total += (n - t) * math.log2(1 + p / (1 - p) / prior_odds) / n_non
    return total / 2


def dcf_from_sweep(llr, labels, p):
    tar, non = llr[labels == 1], llr[labels == 0]
    return compute_min_dcf(tar, non, p_target=p)[0]


# ------------------------------------------------------------------------------ Cllr


def test_cllr_hand_computed():
    # Two trials at llr = 0: 1 bit each side.
    assert cllr([0.0, 0.0], [1, 0]) == pytest.approx(1.0, abs=1e-15)
    # Target at log 3 costs log2(1 + 1/3) = 0.4150375; non-targets at 0 (1 bit) and -log 3 (0.4150375):
    # Cllr = 0.5 * (0.4150375 + 0.5 * (1 + 0.4150375)) = 0.5612781.
    assert cllr([math.log(3), 0.0, -math.log(3)], [1, 0, 0]) == pytest.approx(0.5612781244591328, abs=1e-12)
    # Four trials: targets at log 7 and 0 cost log2(8/7) and 1; non-targets at -log 7 and log 3 cost
    # log2(8/7) and log2(4) = 2: Cllr = 0.5 * ((log2(8/7) + 1) / 2 + (log2(8/7) + 2) / 2) = 0.75 + log2(8/7) / 2.
    llr = [math.log(7), 0.0, -math.log(7), math.log(3)]
    assert cllr(llr, [1, 1, 0, 0]) == pytest.approx(0.75 + math.log2(8 / 7) / 2, abs=1e-12)


def test_cllr_infinite_llrs():
    assert cllr([np.inf, -np.inf], [1, 0]) == 0.0
    assert cllr([-np.inf, -np.inf], [1, 0]) == np.inf
    assert cllr([800.0, -800.0], [1, 0]) == 0.0  # no overflow warning to an inf/nan


def test_cllr_of_calibrated_gaussian_llrs_matches_the_integral():
    # x | target ~ N(mu, 2 mu) and x | non-target ~ N(-mu, 2 mu) is the LLR of itself (equal-variance Gaussians).
    mu, n = 2.0, 400_000
    rng = np.random.default_rng(7)
    labels = rng.random(n) < 0.5
    llr = np.where(labels, 1.0, -1.0) * mu + rng.normal(0.0, math.sqrt(2 * mu), n)
    sd = math.sqrt(2 * mu)

    def density(x):
        return math.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))

    # Both halves of Cllr equal E_tar[log2(1 + e^-x)] by symmetry.
    analytic, _ = integrate.quad(lambda x: density(x) * math.log2(1 + math.exp(-x)), -40, 40, epsabs=1e-12)
    per_trial_sd = 1.0  # the cost's spread is below 1 bit here; 4 sd of the mean over ~n/2 trials per side
    assert cllr(llr, labels) == pytest.approx(analytic, abs=4 * per_trial_sd / math.sqrt(n / 2))
    # A calibrated LLR beats the same LLR scaled: Cllr penalises over- and under-confidence.
    assert cllr(llr, labels) < cllr(2 * llr, labels)
    assert cllr(llr, labels) < cllr(0.5 * llr, labels)


# ------------------------------------------------------------------------------- PAV


@pytest.mark.parametrize("use_scipy", [True, False])
def test_isotonic_matches_the_stack_reference(use_scipy):
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        y = rng.integers(0, 4, n) / 3.0 if rng.random() < 0.5 else rng.random(n)
        w = rng.integers(1, 5, n).astype(float)
        np.testing.assert_allclose(isotonic_increasing(y, w, use_scipy=use_scipy), slow_pav(y, w), atol=1e-12)


def test_numpy_pav_on_a_cascade():
    # Increasing run then a drop: every block merges into one over several passes.
    y = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, -5.0])
    w = np.ones(y.size)
    np.testing.assert_allclose(isotonic_increasing(y, w, use_scipy=False), slow_pav(y, w), atol=1e-12)


@pytest.mark.parametrize("use_scipy", [True, False])
def test_min_cllr_matches_a_slow_reference_with_ties(use_scipy):
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(4, 40))
        labels = rng.random(n) < 0.4
        labels[:2] = [True, False]
        scores = np.round(rng.normal(labels * 0.8, 1.0), int(rng.integers(0, 2)))  # rounding makes ties
        assert min_cllr(scores, labels, use_scipy=use_scipy) == pytest.approx(slow_min_cllr(scores, labels), abs=1e-12)


def test_pav_pools_tied_scores():
    llr = pav_llr([0.3, 0.3, 0.3, 0.1, 0.9], [1, 0, 0, 0, 1])
    assert llr[0] == llr[1] == llr[2]
    # Unpooled, a sort that put the target first could split the tie and score lower.
    assert min_cllr([0.3, 0.3, 0.3, 0.1, 0.9], [1, 0, 0, 0, 1]) > 0


def test_min_cllr_bounds_every_monotone_transform():
    rng = np.random.default_rng(5)
    scores, labels = gaussian_trials(3000, rng)
    floor = min_cllr(scores, labels)
    transforms = [
        lambda s: 8 * s - 3, lambda s: 20 * s - 7, lambda s: 3 * s, lambda s: np.exp(4 * s) - 4,
        lambda s: 50 * (s - 0.35) ** 3, lambda s: np.arctan(10 * (s - 0.3)) * 6,
    ]
    for f in transforms:
        assert floor <= cllr(f(scores), labels) + 1e-12
    cal = fit_calibration(scores, labels)
    assert floor <= cllr(cal.llr(scores), labels)
    # PAV's own LLRs reach it, and they are non-decreasing in the score.
    llr = pav_llr(scores, labels)
    assert cllr(llr, labels) == pytest.approx(floor, abs=1e-12)
    ordered = llr[np.argsort(scores)]
    assert np.all(ordered[1:] >= ordered[:-1])


def test_min_cllr_extremes():
    assert min_cllr([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # Reversed scores: no monotone transform helps, the best is the constant llr = 0.
    assert min_cllr([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------ actual DCF


def test_actual_dcf_hand_computed():
    # p = 0.5: threshold 0. Targets 1.0 (hit), -0.5 (miss); non-targets -2 (ok), 0.0 (false alarm: >= 0).
    # (0.5 * 0.5 + 0.5 * 0.5) / 0.5 = 1.0
    assert actual_dcf([1.0, -0.5, -2.0, 0.0], [1, 1, 0, 0], p_target=0.5) == pytest.approx(1.0)
    # p = 0.2, c_miss = 4: threshold log(0.8 / 0.8) = 0 again; normaliser min(0.8, 0.8) = 0.8:
    # (4 * 0.2 * 0.5 + 0.8 * 0.5) / 0.8 = 1.0
    assert actual_dcf([1.0, -0.5, -2.0, 0.0], [1, 1, 0, 0], p_target=0.2, c_miss=4.0) == pytest.approx(1.0)
    assert bayes_threshold(0.2, c_miss=4.0) == pytest.approx(0.0, abs=1e-15)
    assert bayes_threshold(0.01) == pytest.approx(-logit(0.01))


def test_actual_dcf_never_below_min_dcf():
    rng = np.random.default_rng(2)
    for _ in range(100):
        n = int(rng.integers(4, 300))
        labels = rng.random(n) < rng.uniform(0.1, 0.9)
        labels[:2] = [True, False]
        llr = rng.normal(labels * rng.uniform(0, 4), rng.uniform(0.5, 3), n) + rng.normal(0, 3)
        for p in (0.5, 0.1, 0.01, 0.001):
            assert actual_dcf(llr, labels, p) >= dcf_from_sweep(llr, labels, p) - 1e-12


def test_actual_dcf_equals_min_dcf_for_calibrated_llrs():
    rng = np.random.default_rng(9)
    for _ in range(20):
        scores, labels = gaussian_trials(int(rng.integers(50, 2000)), rng, target_rate=rng.uniform(0.1, 0.6))
        scores = np.round(scores, 2)  # ties too
        llr = pav_llr(scores, labels)  # calibrated on these very trials
        for p in (0.5, 0.2, 0.05, 0.01):
            assert actual_dcf(llr, labels, p) == pytest.approx(dcf_from_sweep(scores, labels, p), abs=1e-9)


def test_llr_metrics_and_report_keys():
    rng = np.random.default_rng(4)
    scores, labels = gaussian_trials(2000, rng)
    cal = fit_calibration(scores, labels)
    report = calibration_report(scores, labels, cal.llr(scores), p_targets=(0.01, 0.001))
    assert set(report) == {"raw", "calibrated"}
    for metrics in report.values():
        assert set(metrics) == {"cllr", "min_cllr", "eer", "act_dcf@0.01", "min_dcf@0.01",
                                "act_dcf@0.001", "min_dcf@0.001"}
        assert metrics["act_dcf@0.01"] >= metrics["min_dcf@0.01"]
    raw, calibrated = report["raw"], report["calibrated"]
    assert calibrated["cllr"] < raw["cllr"]
    assert calibrated["min_cllr"] == pytest.approx(raw["min_cllr"], abs=1e-12)  # positive slope: same order
    assert calibrated["eer"] == raw["eer"]
    assert llr_metrics(scores, labels)["cllr"] == raw["cllr"]


# ----------------------------------------------------------------------------- fitting


def logistic_data(n, rng, a, b, prior_shift=0.0, quality_coefs=()):
    """Scores and quality from fixed laws; labels from posterior logit a s + b + c q + prior_shift."""
    scores = rng.normal(0.0, 1.0, n)
    q = rng.normal(0.0, 1.0, (n, len(quality_coefs)))
    eta = a * scores + b + q @ np.asarray(quality_coefs, float) + prior_shift
    labels = rng.random(n) < expit(eta)
    return scores, labels, q


@pytest.mark.parametrize("p_target", [0.5, 0.1, 0.01])
def test_fit_recovers_a_known_logistic_model(p_target):
    # With posterior logit a s + b + shift, the LLR is a s + b + shift - logit(data prior).
    rng = np.random.default_rng(12)
    a, b, shift = 2.5, 0.7, -1.2
    scores, labels, _ = logistic_data(300_000, rng, a, b, shift)
    cal = fit_calibration(scores, labels, p_target=p_target)
    true_offset = b + shift - logit(labels.mean())
    assert cal.slope == pytest.approx(a, rel=0.03)
    assert cal.offset == pytest.approx(true_offset, abs=0.05)
    assert cal.p_target == p_target and cal.n_target == labels.sum() and cal.n_nontarget == (~labels).sum()


def test_fit_does_not_depend_on_the_class_proportions():
    # Prior weighting: replicating every non-target trial 3 times changes nothing.
    rng = np.random.default_rng(13)
    scores, labels = gaussian_trials(3000, rng)
    more = np.concatenate([scores, np.tile(scores[~labels], 2)])
    more_labels = np.concatenate([labels, np.zeros(2 * (~labels).sum(), bool)])
    c1, c2 = fit_calibration(scores, labels, l2=0), fit_calibration(more, more_labels, l2=0)
    assert c2.slope == pytest.approx(c1.slope, rel=1e-8)
    assert c2.offset == pytest.approx(c1.offset, rel=1e-8)


def test_fit_is_invariant_to_the_score_scale():
    rng = np.random.default_rng(14)
    scores, labels = gaussian_trials(3000, rng)
    c1 = fit_calibration(scores, labels)
    c2 = fit_calibration(1000 * scores + 5, labels)
    np.testing.assert_allclose(c2.llr(1000 * scores + 5), c1.llr(scores), atol=1e-8)


@pytest.mark.parametrize("p_target", [0.5, 0.05])
def test_fit_agrees_with_sklearn(p_target):
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(15)
    scores, labels, q = logistic_data(20_000, rng, 1.5, -0.3, -1.0, quality_coefs=(0.8, -0.4))
    q[:, 1] = 30 + 10 * q[:, 1]  # badly scaled on purpose
    cal = fit_calibration(scores, labels, q, ("q0", "q1"), p_target=p_target)  # default: unpenalised here
    assert cal.l2 == 0.0
    n_tar, n_non = labels.sum(), (~labels).sum()
    weights = np.where(labels, p_target / n_tar, (1 - p_target) / n_non) * labels.size
    x = np.column_stack([scores, q])
    ref = linear_model.LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    ref.fit(x, labels, sample_weight=weights)
    np.testing.assert_allclose([cal.slope, *cal.quality_coefs], ref.coef_[0], rtol=1e-6, atol=1e-9)
    # sklearn has no fixed offset: its intercept absorbs logit(p).
    assert cal.offset == pytest.approx(ref.intercept_[0] - logit(p_target), abs=1e-6)


def test_separable_trials_warn_and_stay_finite():
    scores = np.r_[np.linspace(0, 0.4, 30), np.linspace(0.6, 1, 10)]
    labels = np.r_[np.zeros(30), np.ones(10)]
    with pytest.warns(CalibrationWarning, match="separable: the slope is set by l2=1e-06"):
        cal = fit_calibration(scores, labels)
    assert np.isfinite(cal.slope) and cal.slope > 0 and cal.l2 == AUTO_L2
    # Unpenalised, Newton runs until the loss is flat to float precision: a steeper, still finite slope.
    with pytest.warns(CalibrationWarning, match="separable: the slope is unbounded"):
        steep = fit_calibration(scores, labels, l2=0)
    assert np.isfinite(steep.slope) and steep.slope > cal.slope
    with pytest.raises(CalibrationError, match="did not converge in 3 Newton"):
        fit_calibration(scores, labels, l2=0, max_iter=3)


def test_collinear_measures_are_named():
    rng = np.random.default_rng(20)
    scores, labels = gaussian_trials(2000, rng)
    enrol, test = {"duration": rng.uniform(1, 20, 2000)}, {"duration": rng.uniform(1, 20, 2000)}
    q = trial_quality(["log_dur_enrol", "log_dur_test", "log_dur_min", "log_dur_max"], enrol, test)
    with pytest.warns(CalibrationWarning, match="'log_dur_enrol', 'log_dur_test', 'log_dur_min', 'log_dur_max'.* "
                                                "collinear.*l2=1e-06"):
        cal = fit_calibration(scores, labels, q)
    assert cal.l2 == AUTO_L2 and np.isfinite(cal.quality_coefs).all()
    with pytest.raises(CalibrationError, match="collinear over the calibration trials: use l2 > 0"):
        fit_calibration(scores, labels, q, l2=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_calibration(scores, labels, q, l2=1e-3).l2 == 1e-3


def test_quality_measures_improve_cllr_when_reliability_depends_on_duration():
    # Short utterances raise every score (by 0.08 per log second less), targets and non-targets alike: a
    # score means something else at each duration, which a duration term of the calibration undoes.
    rng = np.random.default_rng(16)
    n_utt, n_trials = 4000, 40_000
    utt_ids = [f"u{i}" for i in range(n_utt)]
    duration = np.exp(rng.uniform(np.log(1.0), np.log(30.0), n_utt))
    enrol_i, test_i = rng.integers(0, n_utt, n_trials), rng.integers(0, n_utt, n_trials)
    labels = rng.random(n_trials) < 0.3
    log_min = np.log(np.minimum(duration[enrol_i], duration[test_i]))
    mean = np.where(labels, 0.45, 0.05) - 0.08 * log_min
    scores = rng.normal(mean, 0.1)
    trials = Trials(labels.astype(np.int8), [utt_ids[i] for i in enrol_i], [utt_ids[i] for i in test_i])
    full = calibration_set(trials, scores, utt_ids, {"duration": duration}, "duration")
    half = n_trials // 2
    valid, evaluation = (
        CalibrationSet(full.scores[s], full.labels[s], {k: v[s] for k, v in full.quality.items()})
        for s in (slice(0, half), slice(half, None))
    )
    plain, llr_plain = calibrate_eval(CalibrationSet(valid.scores, valid.labels, {}),
                                      CalibrationSet(evaluation.scores, evaluation.labels, {}))
    qmf, llr_qmf = calibrate_eval(valid, evaluation)
    assert qmf.quality_names == ("log_dur_min", "log_dur_max")
    assert cllr(llr_qmf, evaluation.labels) < cllr(llr_plain, evaluation.labels) - 0.05
    assert min_cllr(llr_qmf, evaluation.labels) < min_cllr(llr_plain, evaluation.labels)


# ------------------------------------------------------------------------ Calibration


def test_to_dict_round_trip_through_json():
    rng = np.random.default_rng(17)
    scores, labels, q = logistic_data(5000, rng, 1.0, 0.0, quality_coefs=(0.5,))
    cal = fit_calibration(scores, labels, {"norm_min": q[:, 0]}, p_target=0.1, score_kind="as-norm top-300")
    assert cal.score_kind == "as-norm top-300"
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal
    np.testing.assert_array_equal(back.llr(scores, {"norm_min": q[:, 0]}), cal.llr(scores, {"norm_min": q[:, 0]}))


def test_llr_accepts_a_mapping_or_a_matrix():
    cal = Calibration(2.0, -1.0, ("a", "b"), (0.5, -0.25))
    q = np.array([[1.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(cal.llr([1.0, 0.5], q), [1.0 + 0.5 - 1.0, 0.0 - 0.5])
    np.testing.assert_array_equal(cal.llr([1.0, 0.5], {"b": q[:, 1], "a": q[:, 0]}), cal.llr([1.0, 0.5], q))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"format": "other"}, "not a calibration"),
        ({"version": 2}, "not a calibration"),
        ({"slope": "steep"}, "wrong type"),
        ({"slope": float("nan")}, "finite"),
        ({"quality_coefs": [1.0]}, "0 quality names for 1 coefficients"),
        ({"p_target": 1.0}, "p_target"),
        ({"extra": 1}, "unknown keys \\['extra'\\]"),
        ({"score_kind": 3}, "score_kind must be a string"),
    ],
)
def test_from_dict_rejects_bad_descriptions(change, match):
    data = {**Calibration(1.0, 0.0).to_dict(), **change}
    with pytest.raises(CalibrationError, match=match):
        Calibration.from_dict(data)


def test_from_dict_names_a_missing_key():
    data = Calibration(1.0, 0.0).to_dict()
    del data["p_target"]
    with pytest.raises(CalibrationError, match="lacks 'p_target'"):
        Calibration.from_dict(data)
    with pytest.raises(CalibrationError, match="JSON object"):
        Calibration.from_dict([1, 2])


def test_apply_time_quality_mismatch_is_named():
    cal = Calibration(1.0, 0.0, ("log_dur_min", "norm_max"), (0.1, 0.2))
    with pytest.raises(CalibrationError, match=r"missing \['norm_max'\]"):
        cal.llr([0.5], {"log_dur_min": [1.0]})
    with pytest.raises(CalibrationError, match=r"unexpected \['norm_min'\]"):
        cal.llr([0.5], {"log_dur_min": [1.0], "norm_max": [3.0], "norm_min": [2.0]})
    with pytest.raises(CalibrationError, match="no quality values were given"):
        cal.llr([0.5])
    with pytest.raises(CalibrationError, match="one column per quality measure"):
        cal.llr([0.5], np.ones((1, 3)))
    with pytest.raises(CalibrationError, match=r"quality 'norm_max'\[1\] is nan"):
        cal.llr([0.5, 0.6], {"log_dur_min": [1.0, 1.0], "norm_max": [3.0, np.nan]})
    with pytest.raises(CalibrationError, match="quality 'norm_max' has 1 values for 2 scores"):
        cal.llr([0.5, 0.6], {"log_dur_min": [1.0, 1.0], "norm_max": [3.0]})
    with pytest.raises(CalibrationError, match=r"unexpected \['norm_max'\]"):
        Calibration(1.0, 0.0).llr([0.5], {"norm_max": [1.0]})


def test_check_computable_names_the_measure_verify_cannot_compute():
    cal = Calibration(1.0, 0.0, ("log_dur_min", "cohort_mean_max"), (0.1, 0.2))
    assert cal.required_metadata() == ("duration", "cohort_mean")
    cal.check_computable(("duration", "norm", "cohort_mean"))
    with pytest.raises(CalibrationError, match="'cohort_mean_max', which needs per-utterance 'cohort_mean'"):
        cal.check_computable(("duration", "norm"))
    custom = Calibration(1.0, 0.0, ("snr",), (0.1,))
    with pytest.raises(CalibrationError, match="unknown quality measure 'snr'"):
        custom.required_metadata()


# ------------------------------------------------------------------------- bad input


@pytest.fixture
def trials_20():
    rng = np.random.default_rng(18)
    labels = np.r_[np.ones(8, bool), np.zeros(12, bool)]
    return rng.normal(labels * 1.0, 1.0), labels


def test_errors_are_project_errors(trials_20):
    scores, _ = trials_20
    with pytest.raises(SpeechBrainExtError):
        fit_calibration(scores, np.ones(20))
    with pytest.raises(ValueError):
        fit_calibration(scores, np.ones(20))


@pytest.mark.parametrize("labels", [np.ones(20), np.zeros(20)])
def test_one_class_is_refused(trials_20, labels):
    with pytest.raises(CalibrationError, match="both kinds are needed"):
        fit_calibration(trials_20[0], labels)
    with pytest.raises(CalibrationError, match="both kinds are needed"):
        cllr(trials_20[0], labels)
    with pytest.raises(CalibrationError, match="both kinds are needed"):
        min_cllr(trials_20[0], labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_name_the_trial(trials_20, bad):
    scores, labels = trials_20
    scores = scores.copy()
    scores[13] = bad
    with pytest.raises(CalibrationError, match=r"calibration scores\[13\] is"):
        fit_calibration(scores, labels)
    with pytest.raises(CalibrationError, match=r"scores\[13\]"):
        min_cllr(scores, labels)
    with pytest.raises(CalibrationError, match=r"scores\[13\]"):
        Calibration(1.0, 0.0).llr(scores)


def test_non_finite_quality_names_the_measure_and_trial(trials_20):
    scores, labels = trials_20
    q = {"log_dur_min": np.zeros(20), "norm_max": np.ones(20)}
    q["norm_max"][4] = np.nan
    with pytest.raises(CalibrationError, match=r"quality 'norm_max'\[4\] is nan"):
        fit_calibration(scores, labels, q)
    with pytest.raises(CalibrationError, match=r"quality 'q1'\[4\] is nan"):
        fit_calibration(scores, labels, np.column_stack(list(q.values())), ("q0", "q1"))


def test_nan_llr_refused_by_the_metrics():
    with pytest.raises(CalibrationError, match=r"llr\[1\] is nan"):
        cllr([0.0, np.nan], [1, 0])
    with pytest.raises(CalibrationError, match=r"llr\[1\] is nan"):
        actual_dcf([0.0, np.nan], [1, 0])


def test_mismatched_lengths(trials_20):
    scores, labels = trials_20
    with pytest.raises(CalibrationError, match="19 labels for 20 scores"):
        fit_calibration(scores, labels[:19])
    with pytest.raises(CalibrationError, match="quality 'norm_min' has 19 values for 20 scores"):
        fit_calibration(scores, labels, {"norm_min": np.ones(19)})
    with pytest.raises(CalibrationError, match="needs one column per quality measure"):
        fit_calibration(scores, labels, np.ones((20, 2)), ("q0",))
    with pytest.raises(CalibrationError, match="missing \\['norm_max'\\]"):
        fit_calibration(scores, labels, {"norm_min": np.ones(20)}, ("norm_max",))


def test_bad_labels_are_named(trials_20):
    scores, labels = trials_20
    labels = labels.astype(int)
    labels[6] = 2
    with pytest.raises(CalibrationError, match=r"labels\[6\] is 2"):
        fit_calibration(scores, labels)


def test_constant_quality_column_warns_and_gets_zero(trials_20):
    scores, labels = trials_20
    rng = np.random.default_rng(0)
    with pytest.warns(CalibrationWarning, match="'norm_min' is constant"):
        cal = fit_calibration(scores, labels, {"norm_min": np.full(20, 3.0), "log_dur_min": rng.normal(size=20)})
    assert cal.quality_names == ("norm_min", "log_dur_min")
    assert cal.quality_coefs[0] == 0.0 and cal.quality_coefs[1] != 0.0
    plain = fit_calibration(scores, labels, {"log_dur_min": rng.normal(size=20)})
    assert np.isfinite(plain.slope)


def test_constant_scores_and_too_few_trials(trials_20):
    _, labels = trials_20
    with pytest.raises(CalibrationError, match="all 20 calibration scores equal 0.5"):
        fit_calibration(np.full(20, 0.5), labels)
    with pytest.raises(CalibrationError, match="only 20 calibration trials: at least 50"):
        fit_calibration(trials_20[0], labels, min_trials=50)


def test_bad_parameters(trials_20):
    scores, labels = trials_20
    with pytest.raises(CalibrationError, match="p_target must be in"):
        fit_calibration(scores, labels, p_target=1.0)
    with pytest.raises(CalibrationError, match="l2 must be >= 0"):
        fit_calibration(scores, labels, l2=-1)
    with pytest.raises(CalibrationError, match="p_target must be in"):
        actual_dcf(scores, labels, p_target=0.0)
    with pytest.raises(CalibrationError, match="c_miss and c_fa must be positive"):
        actual_dcf(scores, labels, c_fa=0.0)
    with pytest.raises(CalibrationError, match="repeat"):
        fit_calibration(scores, labels, np.ones((20, 2)), ("q", "q"))


def test_no_warning_and_no_penalty_on_ordinary_data():
    rng = np.random.default_rng(19)
    scores, labels = gaussian_trials(1000, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit_calibration(scores, labels).l2 == 0.0


# ------------------------------------------------------------------------- quality


def test_registry_and_sets():
    assert set(QUALITY_MEASURES) == {
        f"{p}_{c}" for p in ("log_dur", "norm", "cohort_mean") for c in ("enrol", "test", "min", "max")
    }
    for names in QUALITY_SETS.values():
        assert measure_names(names) == tuple(names)
    with pytest.raises(CalibrationError, match="unknown quality measure 'snr_min'"):
        measure_names(["snr_min"])


def test_trial_quality_values():
    enrol = {"duration": np.array([2.0, 8.0]), "norm": np.array([10.0, 20.0]), "cohort_mean": np.array([0.1, 0.3])}
    test = {"duration": np.array([4.0, 1.0]), "norm": np.array([15.0, 5.0]), "cohort_mean": np.array([0.2, 0.0])}
    q = trial_quality([*QUALITY_MEASURES], enrol, test)
    np.testing.assert_allclose(q["log_dur_enrol"], np.log([2.0, 8.0]))
    np.testing.assert_allclose(q["log_dur_test"], np.log([4.0, 1.0]))
    np.testing.assert_allclose(q["log_dur_min"], np.log([2.0, 1.0]))
    np.testing.assert_allclose(q["log_dur_max"], np.log([4.0, 8.0]))
    np.testing.assert_allclose(q["norm_min"], [10.0, 5.0])
    np.testing.assert_allclose(q["norm_max"], [15.0, 20.0])
    np.testing.assert_allclose(q["cohort_mean_min"], [0.1, 0.0])
    np.testing.assert_allclose(q["cohort_mean_max"], [0.2, 0.3])


def test_trial_quality_bad_input():
    with pytest.raises(CalibrationError, match="'norm_max' needs the 'norm' of each test side"):
        trial_quality(["norm_max"], {"norm": [1.0]}, {"duration": [1.0]})
    with pytest.raises(CalibrationError, match=r"duration of test trials\[1\] is 0.0: it must be > 0"):
        trial_quality("duration", {"duration": [1.0, 2.0]}, {"duration": [1.0, 0.0]})
    with pytest.raises(CalibrationError, match=r"norm of enrol trials\[0\] is nan"):
        trial_quality(["norm_min"], {"norm": [np.nan]}, {"norm": [1.0]})
    with pytest.raises(CalibrationError, match="duration of the test side has 1 values for 2 trials"):
        trial_quality("duration", {"duration": [1.0, 2.0]}, {"duration": [1.0]})


def test_side_metadata_gathers_and_combines():
    meta = {"duration": np.array([2.0, 3.0, 5.0]), "cohort_mean": np.array([0.1, 0.3, 0.2])}
    out = side_metadata(["m", "c", "a", "m"], ["a", "b", "c"], meta, enrol_map={"m": ["a", "b"]})
    np.testing.assert_allclose(out["duration"], [5.0, 5.0, 2.0, 5.0])
    np.testing.assert_allclose(out["cohort_mean"], [0.2, 0.2, 0.1, 0.2])
    with pytest.raises(CalibrationError, match="no metadata for utterance 'z' \\(trial side 'm'\\)"):
        side_metadata(["m"], ["a", "b"], {"duration": [1.0, 2.0]}, enrol_map={"m": ["a", "z"]})
    with pytest.raises(CalibrationError, match="duration of utterance 'b' must be > 0"):
        side_metadata(["a"], ["a", "b"], {"duration": [1.0, -2.0]})
    with pytest.raises(CalibrationError, match="unknown utterance metadata 'snr'"):
        side_metadata(["a"], ["a"], {"snr": [1.0]})
    with pytest.raises(CalibrationError, match="1 values of 'duration' for 2 utterance ids"):
        side_metadata(["a"], ["a", "b"], {"duration": [1.0]})


def test_calibration_set_length_mismatch():
    t = Trials(np.array([1, 0], np.int8), ["a", "a"], ["b", "c"])
    with pytest.raises(CalibrationError, match="3 scores for a list of 2 trials"):
        calibration_set(t, [0.1, 0.2, 0.3], ["a", "b", "c"], {"duration": [1.0, 2.0, 3.0]}, "duration")
