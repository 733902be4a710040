"""Verification metrics: EER, normalised minDCF and DET points of target / non-target scores.

Conventions follow ``methods.md`` ("Evaluation conventions"):

- a trial is accepted when ``score >= threshold``;
- EER is ``(FAR + FRR) / 2`` at the distinct-score threshold minimising
  ``|FAR - FRR|`` (ties broken towards the lowest threshold);
- minDCF is the NORMALISED NIST cost, minimised over every distinct score plus an
  "accept nothing" threshold just above the largest score
  (``speechbrain.utils.metric_stats.minDCF`` returns the unnormalised cost and
  builds a thresholds x trials matrix; do not use it).

Every error rate is computed from ONE sort of the scores (:func:`_sweep`): the
positive and negative scores are sorted separately, merged, reduced to their
distinct values, and the error counts at each threshold are read with a binary
search. That is O(n log n) time and a handful of n-sized arrays of memory.
Error counts are kept as integers so that ties between thresholds are exact.
Scores, rates and thresholds are returned as Python floats / float64 numpy arrays.
"""

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["compute_eer", "compute_min_dcf", "det_curve", "evaluate_conditions", "split_by_label"]


def _as_scores(x, name):
    """Validate one side of the scores and return it as a 1-D float64 numpy array."""
    if isinstance(x, torch.Tensor):
        # .double() first: numpy has no bfloat16, and float64 is what we compute in.
        x = x.detach().to("cpu", torch.float64).numpy()
    else:
        x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
    if x.size == 0:
        raise ValueError(f"{name} is empty: need at least one score on each side")
    n_bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf) out of {x.size}")
    return x


@dataclass(frozen=True)
class _Sweep:
    """Error counts at every distinct score, thresholds ascending.

    ``n_miss[k]`` = #positives < thresholds[k]; ``n_fa[k]`` = #negatives >= thresholds[k].
    """

    thresholds: np.ndarray
    n_miss: np.ndarray
    n_fa: np.ndarray
    n_pos: int
    n_neg: int


def _sweep(positive_scores, negative_scores):
    pos = np.sort(_as_scores(positive_scores, "positive_scores"))
    neg = np.sort(_as_scores(negative_scores, "negative_scores"))
    merged = np.concatenate([pos, neg])
    # Two sorted runs: timsort ("stable") merges them in linear time.
    merged.sort(kind="stable")
    distinct = np.empty(merged.size, dtype=bool)
    distinct[0] = True
    np.not_equal(merged[1:], merged[:-1], out=distinct[1:])
    thresholds = merged[distinct]
    del merged, distinct
    # side="left" counts strictly smaller scores: those are rejected at that threshold.
    n_miss = np.searchsorted(pos, thresholds, side="left")
    n_fa = np.searchsorted(neg, thresholds, side="left")
    np.subtract(neg.size, n_fa, out=n_fa)
    return _Sweep(thresholds, n_miss, n_fa, pos.size, neg.size)


def _eer_from_sweep(sw):
    # |FAR - FRR| scaled by n_pos * n_neg stays an exact integer (< 2**63 for any
    # realistic list), so equal gaps at different thresholds compare equal.
    gap = sw.n_fa * sw.n_pos
    gap -= sw.n_miss * sw.n_neg
    np.abs(gap, out=gap)
    k = int(np.argmin(gap))
    far = sw.n_fa[k] / sw.n_neg
    frr = sw.n_miss[k] / sw.n_pos
    return float((far + frr) / 2), float(sw.thresholds[k])


def _check_cost_params(p_target, c_miss, c_fa):
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"c_miss and c_fa must be positive, got c_miss={c_miss}, c_fa={c_fa}")


def _min_dcf_from_sweep(sw, p_target, c_miss, c_fa):
    _check_cost_params(p_target, c_miss, c_fa)
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    cost = sw.n_miss * (c_miss * p_target / (sw.n_pos * norm))
    cost += sw.n_fa * (c_fa * (1.0 - p_target) / (sw.n_neg * norm))
    k = int(np.argmin(cost))
    best, threshold = float(cost[k]), float(sw.thresholds[k])
    # "Accept nothing": every target missed, no false alarm.
    reject_all = c_miss * p_target / norm
    if reject_all < best:
        best, threshold = reject_all, float(np.nextafter(sw.thresholds[-1], np.inf))
    return best, threshold


def compute_eer(positive_scores, negative_scores):
    """Equal error rate and its threshold.

    ``EER = (FAR + FRR) / 2`` at the threshold, among the distinct scores, that
    minimises ``|FAR - FRR|``; a trial is accepted when ``score >= threshold``.
    Among equally good thresholds the lowest is returned. When every score is
    equal the only threshold accepts everything (FAR = 1, FRR = 0): EER = 0.5.

    Arguments
    ---------
    positive_scores : array-like or torch.Tensor
        1-D target-trial scores (any float dtype; computed in float64).
    negative_scores : array-like or torch.Tensor
        1-D non-target-trial scores.

    Returns
    -------
    eer : float
        Fraction in [0, 1].
    threshold : float
        The score at which it is reached.

    Raises
    ------
    ValueError
        A side is empty, not 1-D, or holds NaN/inf.

    Example
    -------
    Thresholds 0.1, 0.8, 0.85, 0.9 give (FAR, FRR) = (1, 0), (.5, 0), (.5, .5),
    (0, .5); the gap is smallest at 0.85:

    >>> compute_eer([0.9, 0.8], [0.1, 0.85])
    (0.5, 0.85)
    >>> compute_eer(torch.tensor([0.5, 0.75]), torch.tensor([0.125, 0.25]))
    (0.0, 0.5)
    """
    return _eer_from_sweep(_sweep(positive_scores, negative_scores))


def compute_min_dcf(positive_scores, negative_scores, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Minimum of the normalised NIST detection cost and its threshold.

    ``C(t) = (c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target)) / C_default``
    with ``C_default = min(c_miss * p_target, c_fa * (1 - p_target))``, minimised over
    every distinct score and the "accept nothing" threshold (returned as the
    smallest float above the largest score). Ties go to the lowest threshold.

    Arguments
    ---------
    positive_scores : array-like or torch.Tensor
        1-D target-trial scores.
    negative_scores : array-like or torch.Tensor
        1-D non-target-trial scores.
    p_target : float
        Prior of a target trial, in (0, 1).
    c_miss : float
        Cost of a miss (> 0).
    c_fa : float
        Cost of a false alarm (> 0).

    Returns
    -------
    min_dcf : float
        Normalised cost; 1.0 is the cost of the best trivial (all-reject) system.
    threshold : float

    Raises
    ------
    ValueError
        Empty or non-finite input, or cost parameters out of range.

    Example
    -------
    With p_target = 0.5 the normaliser is 0.5. Thresholds 0.1, 0.8, 0.85, 0.9 and
    "accept nothing" cost (0 + .5 * 1) / .5 = 1, (0 + .5 * .5) / .5 = 0.5,
    (.5 * .5 + .5 * .5) / .5 = 1, (.5 * .5 + 0) / .5 = 0.5 and 1; 0.8 and 0.9 tie
    and the lower wins. With p_target = 0.001 false alarms weigh 999 times more
    and only 0.9 reaches 0.5:

    >>> compute_min_dcf([0.9, 0.8], [0.1, 0.85], p_target=0.5)
    (0.5, 0.8)
    >>> compute_min_dcf([0.9, 0.8], [0.1, 0.85], p_target=0.001)
    (0.5, 0.9)
    >>> compute_min_dcf([0.6, 0.7], [0.1, 0.2])
    (0.0, 0.6)
    """
    return _min_dcf_from_sweep(_sweep(positive_scores, negative_scores), p_target, c_miss, c_fa)


def det_curve(positive_scores, negative_scores):
    """False-alarm and miss rates at every distinct score, for DET plots.

    Arguments
    ---------
    positive_scores, negative_scores : array-like or torch.Tensor
        1-D target-trial and non-target-trial scores (as in :func:`compute_min_dcf`).

    Returns
    -------
    p_fa : numpy.ndarray
        float64, non-increasing: fraction of non-targets with score >= threshold.
    p_miss : numpy.ndarray
        float64, non-decreasing: fraction of targets with score < threshold.
    thresholds : numpy.ndarray
        The distinct scores, ascending.

    Example
    -------
    >>> p_fa, p_miss, t = det_curve([0.9, 0.8], [0.1, 0.85])
    >>> p_fa.tolist(), p_miss.tolist(), t.tolist()
    ([1.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5], [0.1, 0.8, 0.85, 0.9])
    """
    sw = _sweep(positive_scores, negative_scores)
    p_fa = sw.n_fa / sw.n_neg
    p_miss = sw.n_miss / sw.n_pos
    return p_fa, p_miss, sw.thresholds


def split_by_label(name, scores, labels):
    """The target and non-target scores of one condition, checked (both kinds present, labels 0/1).

    Example
    -------
    >>> pos, neg = split_by_label("all", [0.9, 0.1, 0.8], [1, 0, 1])
    >>> pos.tolist(), neg.tolist()
    ([0.9, 0.8], [0.1])
    """
    scores = _as_scores(scores, f"scores of condition {name!r}")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(
            f"condition {name!r}: {labels.shape[0] if labels.ndim else 0} labels for {scores.size} scores"
        )
    is_target = labels == 1
    if not np.all(is_target | (labels == 0)):
        raise ValueError(f"condition {name!r}: labels must be 0 or 1")
    n_target = int(np.count_nonzero(is_target))
    if n_target == 0 or n_target == scores.size:
        raise ValueError(
            f"condition {name!r} has {n_target} target and {scores.size - n_target} non-target "
            "trials: both kinds are needed"
        )
    return scores[is_target], scores[~is_target]


def _p_key(p):
    return f"min_dcf_p{p:g}"


def evaluate_conditions(scores_by_condition, p_targets=(0.01, 0.05)):
    """EER and normalised minDCF for several trial conditions.

    One sort per condition serves the EER and every ``p_target``. All-equal
    scores give EER 0.5 (the single threshold accepts everything) and minDCF 1.0:
    that is correct behaviour, not an error.

    Arguments
    ---------
    scores_by_condition : dict
        ``{name: (scores, labels)}``; 1-D scores, labels 1 (target) / 0 (non-target).
    p_targets : sequence of float
        The first gives ``min_dcf`` / ``min_dcf_threshold``; each other ``p`` gives
        ``"min_dcf_p<p>"`` and ``"min_dcf_p<p>_threshold"`` (``p`` formatted with ``:g``).
        Default: 0.01 and 0.05 (``methods.md``; every report shows both).

    Returns
    -------
    dict
        ``{name: {"eer", "eer_threshold", "min_dcf", "min_dcf_threshold",
        "min_dcf_p_target", ..., "n_target", "n_nontarget"}}``; eer/min_dcf are
        fractions (Python floats), counts Python ints.

    Raises
    ------
    ValueError
        A condition without a target or without a non-target trial (named), or
        mismatched scores/labels.

    Example
    -------
    >>> m = evaluate_conditions({"all": ([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0])},
    ...                         p_targets=(0.5, 0.001))
    >>> m["all"]["eer"], m["all"]["min_dcf"], m["all"]["min_dcf_p0.001"]
    (0.5, 0.5, 0.5)
    >>> m["all"]["min_dcf_threshold"], m["all"]["min_dcf_p0.001_threshold"]
    (0.8, 0.9)
    >>> m["all"]["n_target"], m["all"]["n_nontarget"]
    (2, 2)
    """
    p_targets = tuple(p_targets)
    if not p_targets:
        raise ValueError("p_targets must name at least one prior")
    out = {}
    for name, (scores, labels) in scores_by_condition.items():
        pos, neg = split_by_label(name, scores, labels)
        sw = _sweep(pos, neg)
        eer, eer_t = _eer_from_sweep(sw)
        res = {"eer": eer, "eer_threshold": eer_t}
        for i, p in enumerate(p_targets):
            dcf, dcf_t = _min_dcf_from_sweep(sw, p, 1.0, 1.0)
            if i == 0:
                res.update(min_dcf=dcf, min_dcf_threshold=dcf_t, min_dcf_p_target=float(p))
            else:
                res[_p_key(p)] = dcf
                res[_p_key(p) + "_threshold"] = dcf_t
        res.update(n_target=sw.n_pos, n_nontarget=sw.n_neg)
        out[name] = res
    return out
