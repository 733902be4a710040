"""Calibration metrics of log-likelihood-ratio scores: Cllr, min Cllr (PAV), actual DCF.

Conventions follow ``methods.md`` ("Evaluation conventions", Calibration):

- an LLR is in nats: ``llr = log p(s | target) / p(s | non-target)``;
- ``Cllr = ½ [mean_tar log2(1 + e^{-llr}) + mean_non log2(1 + e^{llr})]`` in bits
  (1 bit is the cost of the uninformative ``llr = 0``; lower is better);
- min Cllr is the Cllr after the optimal monotone (non-decreasing) transform of
  the scores, found by the pool-adjacent-violators algorithm (PAV) on the
  posteriors; equal scores are pooled first, because a function of the score
  must give them the same LLR. So ``min_cllr <= cllr(f(scores))`` for every
  non-decreasing ``f``, and ``cllr - min_cllr`` is the calibration loss;
- the actual DCF thresholds the LLRs at the Bayes threshold
  ``log(c_fa (1 - p_t) / (c_miss p_t))`` (``-log(p_t / (1 - p_t))`` for unit
  costs), accepts ``llr >= threshold`` (the project's "accept when score >=
  threshold"), and is normalised exactly like
  :func:`speechbrain_ext.scoring.compute_min_dcf`, so ``actual_dcf >= min_dcf``
  for any scores, with equality for the PAV LLRs (:func:`pav_llr`).

Every function takes 1-D array-likes (numpy, lists or torch tensors) and labels
1 (target) / 0 (non-target) and computes in float64. Scores must be finite;
LLRs may be ±inf (the PAV transform gives them; ``cllr`` is then inf when a
target has ``-inf`` or a non-target ``+inf``) but never NaN.
"""

import math

import numpy as np
import torch

from speechbrain_ext import scoring
from speechbrain_ext.errors import SpeechBrainExtError

try:  # scipy >= 1.12; speechbrain only asks for scipy >= 1.4.1.
    from scipy.optimize import isotonic_regression as _scipy_isotonic
except ImportError:  # pragma: no cover - depends on the installed scipy
    _scipy_isotonic = None

__all__ = [
    "CalibrationError",
    "actual_dcf",
    "bayes_threshold",
    "calibration_report",
    "cllr",
    "isotonic_increasing",
    "llr_metrics",
    "min_cllr",
    "pav_llr",
]

_LN2 = math.log(2.0)


class CalibrationError(SpeechBrainExtError, ValueError):
    """Calibration trials, quality measures or a saved calibration that cannot be used.

    The message names the cause: the trial index, the quality measure, the key.

    Example
    -------
    >>> isinstance(CalibrationError("scores[3] is nan"), (SpeechBrainExtError, ValueError))
    True
    """


def as_vector(x, name, allow_inf=False):
    """``x`` as a 1-D float64 array, or a :class:`CalibrationError` naming the first bad index.

    Arguments
    ---------
    x : array-like or torch.Tensor
        The values.
    name : str
        How the message calls them (``"scores"``, ``"quality 'log_dur_min'"``).
    allow_inf : bool
        Accept ±inf (LLRs); NaN is always refused.

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> as_vector([1, 2], "scores")
    array([1., 2.])
    >>> as_vector([0.5, float("nan")], "scores")
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: scores[1] is nan (scores must be finite)
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CalibrationError(f"{name} must be numbers: {err}") from None
    if x.ndim != 1:
        raise CalibrationError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
    bad = np.isnan(x) if allow_inf else ~np.isfinite(x)
    if bad.any():
        i = int(np.argmax(bad))
        kind = "finite" if not allow_inf else "numbers (NaN is not)"
        raise CalibrationError(f"{name}[{i}] is {x[i]} ({name} must be {kind})")
    return x


def as_labels(labels, n, name="labels"):
    """Labels as a boolean target mask of length ``n``; 1/True = target, 0/False = non-target.

    Example
    -------
    >>> as_labels([1, 0, 1], 3).tolist()
    [True, False, True]
    >>> as_labels([1, 2], 2)
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: labels[1] is 2: labels must be 1 (target) or 0 (non-target)
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise CalibrationError(f"{labels.shape[0] if labels.ndim else 0} {name} for {n} scores")
    is_target = labels == 1
    bad = ~(is_target | (labels == 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise CalibrationError(f"{name}[{i}] is {labels[i].tolist()!r}: labels must be 1 (target) or 0 (non-target)")
    return is_target


def count_classes(is_target, what="the trials"):
    """``(n_target, n_nontarget)`` of a target mask; both must be positive.

    Example
    -------
    >>> count_classes(np.array([True, False, False]))
    (1, 2)
    >>> count_classes(np.array([False, False]), "the calibration trials")
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: the calibration trials have 0 target and 2 non-target ...
    """
    n_target = int(np.count_nonzero(is_target))
    n_nontarget = is_target.size - n_target
    if n_target == 0 or n_nontarget == 0:
        raise CalibrationError(f"{what} have {n_target} target and {n_nontarget} non-target trials: both kinds "
                               "are needed")
    return n_target, n_nontarget


def split_by_label(values, labels, name, allow_inf=False):
    """``(target_values, non_target_values)``; both kinds must be present.

    Example
    -------
    >>> [v.tolist() for v in split_by_label([0.9, 0.1, 0.8], [1, 0, 1], "scores")]
    [[0.9, 0.8], [0.1]]
    >>> split_by_label([0.9, 0.8], [1, 1], "scores")
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: the trials have 2 target and 0 non-target trials: ...
    """
    values = as_vector(values, name, allow_inf=allow_inf)
    is_target = as_labels(labels, values.size)
    count_classes(is_target)
    return values[is_target], values[~is_target]


def _softplus_mean(x):
    """``mean(log(1 + e^x))`` without overflow; +inf entries give +inf, -inf give 0."""
    return float(np.mean(np.logaddexp(0.0, x)))


def cllr(llr, labels):
    """Log-likelihood-ratio cost, in bits.

    Arguments
    ---------
    llr : array-like
        1-D LLRs in nats (±inf allowed).
    labels : array-like
        1 target, 0 non-target.

    Returns
    -------
    float
        ``½ [mean_tar log2(1 + e^{-llr}) + mean_non log2(1 + e^{llr})]``; 1.0 for
        ``llr = 0`` everywhere, 0 for infinitely confident correct LLRs.

    Example
    -------
    One target at ``llr = log 3`` costs ``log2(1 + 1/3)``, one non-target at
    ``llr = -log 3`` the same: Cllr = log2(4/3) = 0.415 bits.

    >>> round(cllr([math.log(3), -math.log(3)], [1, 0]), 6), round(math.log2(4 / 3), 6)
    (0.415037, 0.415037)
    >>> cllr([0.0, 0.0, 0.0], [1, 0, 0])
    1.0
    """
    tar, non = split_by_label(llr, labels, "llr", allow_inf=True)
    return (_softplus_mean(-tar) + _softplus_mean(non)) / (2.0 * _LN2)


def _isotonic_numpy(y, w):
    """Weighted increasing isotonic regression by vectorised pool-adjacent-violators passes.

    Each pass merges every maximal run of non-increasing block means at once: when
    adjacent means satisfy ``m_i >= m_{i+1}`` the optimum gives both the same value
    (Best & Chakravarti 1990), so a whole run is one block. Each pass removes at
    least one block, and typical score data needs a handful of passes.
    """
    wy, ws = w * y, w.astype(np.float64)
    starts = np.arange(y.size)
    while ws.size > 1:
        mean = wy / ws
        merge_with_previous = np.zeros(ws.size, dtype=bool)
        merge_with_previous[1:] = mean[:-1] >= mean[1:]
        if not merge_with_previous.any():
            break
        keep = np.flatnonzero(~merge_with_previous)
        wy, ws, starts = np.add.reduceat(wy, keep), np.add.reduceat(ws, keep), starts[keep]
    return np.repeat(wy / ws, np.diff(np.append(starts, y.size)))


def isotonic_increasing(y, weights, use_scipy=True):
    """Weighted least-squares non-decreasing fit of ``y`` (the PAV solution).

    Uses ``scipy.optimize.isotonic_regression`` where the installed scipy has it
    (>= 1.12), else a vectorised numpy PAV; both give the same result.

    Arguments
    ---------
    y : numpy.ndarray
        1-D values, in the order the fit must be non-decreasing.
    weights : numpy.ndarray
        Positive weights, same length.
    use_scipy : bool
        False forces the numpy implementation (tests, benchmarks).

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> isotonic_increasing(np.array([0.0, 1.0, 0.0, 1.0]), np.ones(4)).tolist()
    [0.0, 0.5, 0.5, 1.0]
    >>> isotonic_increasing(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 3.0]), use_scipy=False).tolist()
    [0.0, 0.25, 0.25]
    """
    y = np.asarray(y, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if y.size == 0:
        return y.copy()
    if use_scipy and _scipy_isotonic is not None:
        return np.asarray(_scipy_isotonic(y, weights=weights, increasing=True).x, dtype=np.float64)
    return _isotonic_numpy(y, weights)


def _pav_blocks(scores, labels, use_scipy=True):
    """Distinct scores' target/total counts and their PAV posteriors."""
    tar, non = split_by_label(scores, labels, "scores")
    scores = np.concatenate([tar, non])
    is_target = np.zeros(scores.size)
    is_target[: tar.size] = 1.0
    uniq, inverse = np.unique(scores, return_inverse=True)
    n_tar = np.bincount(inverse, weights=is_target, minlength=uniq.size)
    n_all = np.bincount(inverse, minlength=uniq.size).astype(np.float64)
    posterior = isotonic_increasing(n_tar / n_all, n_all, use_scipy=use_scipy)
    # The posterior is at the data's own prior N_tar / N: subtract its log odds.
    with np.errstate(divide="ignore"):
        llr = np.log(posterior) - np.log1p(-posterior) - math.log(tar.size / non.size)
    return uniq, llr, n_tar, n_all - n_tar, (tar.size, non.size)


def pav_llr(scores, labels, use_scipy=True):
    """The optimal monotone LLR transform of ``scores`` on these trials (PAV), per trial.

    Equal scores are pooled into one block first. Blocks with only non-targets
    (targets) at the low (high) end get ``-inf`` (``+inf``).

    Arguments
    ---------
    scores : array-like
        1-D finite scores, higher = more target-like.
    labels : array-like
        1 target, 0 non-target.
    use_scipy : bool
        False forces the numpy PAV.

    Returns
    -------
    numpy.ndarray
        LLR (nats) of every trial, in input order.

    Example
    -------
    Sorted, the labels read 0, 1, 0, 1: the middle pair pools to a posterior of
    1/2, the data's own prior, so LLR 0; the ends are certain.

    >>> pav_llr([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1]).tolist()
    [-inf, 0.0, 0.0, inf]
    >>> pav_llr([0.5, 0.5, 0.9], [1, 0, 1]).tolist()  # tied scores share one LLR
    [-0.6931471805599453, -0.6931471805599453, inf]
    """
    scores = as_vector(scores, "scores")
    uniq, llr, _, _, _ = _pav_blocks(scores, labels, use_scipy=use_scipy)
    return llr[np.searchsorted(uniq, scores)]


def min_cllr(scores, labels, use_scipy=True):
    """Cllr after the optimal monotone transform of the scores (PAV), in bits.

    Lower than or equal to the Cllr of every non-decreasing function of the scores
    (any calibration with a positive slope included); it measures discrimination
    only. Computed on distinct-score blocks: no per-trial transform is kept.

    Arguments
    ---------
    scores, labels, use_scipy
        As in :func:`pav_llr`.

    Returns
    -------
    float

    Example
    -------
    >>> min_cllr([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])  # separable: 0 bits
    0.0
    >>> min_cllr([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])  # the middle pair costs 1 bit each side
    0.5
    """
    _, llr, n_tar, n_non, (total_tar, total_non) = _pav_blocks(scores, labels, use_scipy=use_scipy)
    # A block's cost counts only its trials: a target-free block's -inf LLR costs nothing.
    tar_cost = np.logaddexp(0.0, -llr[n_tar > 0]) @ n_tar[n_tar > 0]
    non_cost = np.logaddexp(0.0, llr[n_non > 0]) @ n_non[n_non > 0]
    return float((tar_cost / total_tar + non_cost / total_non) / (2.0 * _LN2))


def bayes_threshold(p_target, c_miss=1.0, c_fa=1.0):
    """The LLR threshold of the Bayes decision: ``log(c_fa (1 - p_t) / (c_miss p_t))``.

    Example
    -------
    >>> round(bayes_threshold(0.01), 4), bayes_threshold(0.5)
    (4.5951, 0.0)
    """
    if not 0.0 < p_target < 1.0:
        raise CalibrationError(f"p_target must be in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0):
        raise CalibrationError(f"c_miss and c_fa must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    return math.log(c_fa * (1.0 - p_target)) - math.log(c_miss * p_target)


def actual_dcf(llr, labels, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Normalised detection cost of deciding by the LLR at the Bayes threshold.

    Accepts ``llr >= bayes_threshold(p_target, c_miss, c_fa)``; normalised by
    ``min(c_miss p_t, c_fa (1 - p_t))`` as :func:`speechbrain_ext.scoring.compute_min_dcf`,
    so it is never below the minDCF of the same values and 1.0 is the best
    trivial system.

    Arguments
    ---------
    llr, labels
        As in :func:`cllr`.
    p_target, c_miss, c_fa : float
        Prior of a target trial in (0, 1), costs of a miss and of a false alarm (> 0).

    Returns
    -------
    float

    Example
    -------
    At p_t = 0.5 the threshold is 0: one of two targets is missed (P_miss = ½),
    no false alarm: (½ · ½ + 0) / ½ = 0.5.

    >>> actual_dcf([1.0, -0.5, -2.0, -1.0], [1, 1, 0, 0], p_target=0.5)
    0.5
    >>> actual_dcf([1.0, -0.5, -2.0, -1.0], [1, 1, 0, 0], p_target=0.01)  # threshold 4.6: all rejected
    1.0
    """
    threshold = bayes_threshold(p_target, c_miss, c_fa)
    tar, non = split_by_label(llr, labels, "llr", allow_inf=True)
    p_miss = np.count_nonzero(tar < threshold) / tar.size
    p_fa = np.count_nonzero(non >= threshold) / non.size
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float((c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa) / norm)


def _p_label(p):
    return f"{p:g}"


def llr_metrics(llr, labels, p_targets=(0.01,)):
    """Cllr, min Cllr, EER and, per prior, actual and minimum DCF of one set of scores.

    ``llr`` is read as LLRs for ``cllr`` and ``act_dcf@p`` (pass raw scores to see
    what treating them as LLRs costs); the others depend only on the order.

    Arguments
    ---------
    llr : array-like
        1-D finite scores or LLRs.
    labels : array-like
        1 target, 0 non-target.
    p_targets : sequence of float
        The priors of ``act_dcf@<p>`` and ``min_dcf@<p>`` (``p`` written with ``:g``).

    Returns
    -------
    dict
        ``{"cllr", "min_cllr", "eer", "act_dcf@<p>", "min_dcf@<p>", ...}``, Python floats.

    Example
    -------
    >>> m = llr_metrics([2.0, 0.5, -1.0, 1.0], [1, 1, 0, 0], p_targets=(0.5,))
    >>> sorted(m)
    ['act_dcf@0.5', 'cllr', 'eer', 'min_cllr', 'min_dcf@0.5']
    >>> m["eer"], m["min_dcf@0.5"], m["act_dcf@0.5"]
    (0.5, 0.5, 0.5)
    """
    llr = as_vector(llr, "llr")
    tar, non = split_by_label(llr, labels, "llr")
    out = {"cllr": cllr(llr, labels), "min_cllr": min_cllr(llr, labels)}
    out["eer"] = scoring.compute_eer(tar, non)[0]
    for p in p_targets:
        out[f"act_dcf@{_p_label(p)}"] = actual_dcf(llr, labels, p)
        out[f"min_dcf@{_p_label(p)}"] = scoring.compute_min_dcf(tar, non, p_target=p)[0]
    return out


def calibration_report(scores, labels, llr=None, p_targets=(0.01,)):
    """The calibration table of one trial list: raw scores beside calibrated LLRs.

    Arguments
    ---------
    scores : array-like
        Raw scores (cosine or AS-norm), read as if they were LLRs.
    labels : array-like
        1 target, 0 non-target.
    llr : array-like or None
        The calibrated LLRs of the same trials (omitted from the result when None).
    p_targets : sequence of float
        Priors of the DCF columns.

    Returns
    -------
    dict
        ``{"raw": llr_metrics(scores), "calibrated": llr_metrics(llr)}``.

    Example
    -------
    >>> s, y = [0.7, 0.5, 0.2, 0.4], [1, 1, 0, 0]
    >>> r = calibration_report(s, y, llr=[3.0, 1.0, -3.0, -1.0], p_targets=(0.5,))
    >>> r["raw"]["cllr"] > r["calibrated"]["cllr"], r["raw"]["min_cllr"] == r["calibrated"]["min_cllr"]
    (True, True)
    """
    out = {"raw": llr_metrics(scores, labels, p_targets)}
    if llr is not None:
        out["calibrated"] = llr_metrics(llr, labels, p_targets)
    return out
