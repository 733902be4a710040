"""Speaker bootstrap of Cllr and actual DCF of calibrated LLRs: many draws at once, exact.

The companion of :mod:`speechbrain_ext.bootstrap` (EER and minDCF of scores) for the
calibration metrics of :mod:`speechbrain_ext.calibration_metrics`, with the same draws
(per-speaker counts ``c``; trial ``i`` weighs ``c[speaker(i)]``, i.e. it is replicated that
many times). Both metrics are sums over trials, so a draw needs no sorting:

- Cllr ``= ½ [Σ_tar w log2(1 + e^{-llr}) / W_tar + Σ_non w log2(1 + e^{llr}) / W_non]``;
- actual DCF at prior ``p``: the LLRs are thresholded at the Bayes threshold
  ``log(c_fa (1 - p) / (c_miss p))`` (:func:`~speechbrain_ext.calibration_metrics.bayes_threshold`;
  ``-log(p / (1 - p))`` for unit costs), accepting ``llr >= threshold``, and the cost
  ``c_miss p P_miss + c_fa (1 - p) P_fa`` is divided by ``min(c_miss p, c_fa (1 - p))``
  like minDCF (:func:`speechbrain_ext.scoring.compute_min_dcf`).

:class:`SpeakerLLRs` sums each speaker's trials once into a ``[speakers, k]`` table (target
and non-target counts, the two Cllr sums, misses and false alarms per prior); every
draw's sums are then ONE matrix product ``counts @ table``. The counts are integers held
in float64 (exact, checked), so the actual DCF of unit weights equals
:func:`~speechbrain_ext.calibration_metrics.actual_dcf` exactly and the Cllr agrees with
:func:`~speechbrain_ext.calibration_metrics.cllr` to rounding. A draw without a target or
a non-target trial gets NaN.
"""

import math

import numpy as np

from .bootstrap import BootstrapError, _check_costs, check_counts
from .calibration_metrics import bayes_threshold
from .trial_scores import check_trials

__all__ = ["SpeakerLLRs", "llr_metric_keys", "weighted_llr_metrics"]

_LN2 = math.log(2.0)


def llr_metric_keys(p_targets=(0.01, 0.05)):
    """Names of the metrics of :class:`SpeakerLLRs`: ``"cllr"`` then ``"act_dcf_p<p>"`` per prior.

    Example
    -------
    >>> llr_metric_keys((0.01, 0.05))
    ['cllr', 'act_dcf_p0.01', 'act_dcf_p0.05']
    """
    return ["cllr"] + [f"act_dcf_p{p:g}" for p in p_targets]


class SpeakerLLRs:
    """One list of calibrated LLRs, summed per test speaker once, ready for many bootstrap draws.

    Arguments
    ---------
    llr : array-like
        1-D finite LLRs (nats), one per trial.
    labels : array-like
        1 (target) or 0 (non-target) per trial; both kinds must occur.
    test_speaker : array-like of int
        Index of each trial's test speaker, in ``[0, n_speakers)``.
    n_speakers : int
        Number of test speakers (columns of the draws).
    name : str
        Named in error messages (e.g. ``"runs/a/eval.npz: condition 'all': 'plain' LLRs"``).

    Example
    -------
    >>> t = SpeakerLLRs([2.0, -1.0, 5.0, -3.0], [1, 0, 1, 0], [0, 0, 1, 1], 2)
    >>> m = t.metrics([[1, 1], [0, 2]], p_targets=(0.5,))
    >>> m["act_dcf_p0.5"].tolist(), bool(m["cllr"][1] < m["cllr"][0])
    ([0.0, 0.0], True)
    """

    def __init__(self, llr, labels, test_speaker, n_speakers, name="LLRs"):
        llr, is_target, speaker = check_trials(llr, labels, test_speaker, int(n_speakers), name, BootstrapError)
        self.name, self.n_speakers = name, int(n_speakers)
        self._llr, self._is_target, self._speaker = llr, is_target, speaker
        # Per speaker: targets, non-targets, Σ_tar log(1 + e^-llr), Σ_non log(1 + e^llr) (nats).
        cost = np.where(is_target, np.logaddexp(0.0, -llr), np.logaddexp(0.0, llr))
        self._table = np.stack([self._per_speaker(is_target), self._per_speaker(~is_target),
                                self._per_speaker(is_target, cost), self._per_speaker(~is_target, cost)], axis=1)
        self._trials_per_speaker = np.bincount(speaker, minlength=self.n_speakers).astype(np.float64)

    def _per_speaker(self, mask, values=None):
        return np.bincount(self._speaker[mask], None if values is None else values[mask], minlength=self.n_speakers)

    def metrics(self, counts, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
        """Cllr (bits) and normalised actual DCF of every draw.

        Arguments
        ---------
        counts : array-like of int
            ``[n_draws, n_speakers]`` non-negative per-speaker multiplicities (a row of
            ones is the original list).
        p_targets : sequence of float
            Priors of the actual DCF values.
        c_miss, c_fa : float
            Costs of a miss and of a false alarm.

        Returns
        -------
        dict
            ``{key: float64 [n_draws]}`` for the keys of :func:`llr_metric_keys`; NaN for a
            draw without any target or without any non-target trial.

        Example
        -------
        >>> t = SpeakerLLRs([0.0, 0.0, 1.0], [1, 0, 0], [0, 1, 1], 2)
        >>> m = t.metrics([[1, 1], [0, 2]], p_targets=(0.5,))
        >>> m["cllr"].round(4).tolist(), m["act_dcf_p0.5"].tolist()
        ([1.2237, nan], [1.0, nan])
        """
        p_targets = _check_costs(p_targets, c_miss, c_fa)
        counts = check_counts(counts, self._trials_per_speaker, self.name).astype(np.float64)
        decisions = []
        for p in p_targets:  # one column pair per prior, never per trial or draw
            accept = self._llr >= bayes_threshold(p, c_miss, c_fa)
            decisions += [self._per_speaker(self._is_target & ~accept), self._per_speaker(~self._is_target & accept)]
        sums = counts @ np.column_stack([self._table, *decisions])
        n_tar, n_non = sums[:, 0], sums[:, 1]
        defined = (n_tar > 0) & (n_non > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"cllr": np.where(defined, (sums[:, 2] / n_tar + sums[:, 3] / n_non) / (2.0 * _LN2), np.nan)}
            for i, p in enumerate(p_targets):
                # Same expression as calibration_metrics.actual_dcf, so unit weights give the same bits.
                p_miss, p_fa = sums[:, 4 + 2 * i] / n_tar, sums[:, 5 + 2 * i] / n_non
                norm = min(c_miss * p, c_fa * (1.0 - p))
                dcf = (c_miss * p * p_miss + c_fa * (1.0 - p) * p_fa) / norm
                out[f"act_dcf_p{p:g}"] = np.where(defined, dcf, np.nan)
        return out


def weighted_llr_metrics(llr, labels, weights, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
    """Cllr and normalised actual DCF of LLRs under integer per-trial weights (``w`` copies of a trial).

    Arguments
    ---------
    llr : array-like
        1-D finite LLRs.
    labels : array-like
        1 (target) / 0 (non-target).
    weights : array-like of int
        ``[n_trials]`` or ``[n_draws, n_trials]``, non-negative.
    p_targets : sequence of float
        Priors of the actual DCF values.
    c_miss, c_fa : float
        Costs.

    Returns
    -------
    dict
        ``{key: float}`` for 1-D weights, ``{key: float64 [n_draws]}`` for 2-D.

    Example
    -------
    >>> from speechbrain_ext.calibration_metrics import actual_dcf
    >>> llr, y = [3.0, -0.5, -2.0, 5.0], [1, 1, 0, 0]
    >>> weighted_llr_metrics(llr, y, [1, 1, 1, 1])["act_dcf_p0.01"] == actual_dcf(llr, y, 0.01)
    True
    >>> round(weighted_llr_metrics(llr, y, [0, 1, 2, 0], p_targets=(0.5,))["cllr"], 4)  # as [-0.5] vs [-2, -2]
    0.7942
    """
    llr = np.asarray(llr)
    weights = np.asarray(weights)
    single = weights.ndim == 1
    trials = SpeakerLLRs(llr, labels, np.arange(llr.size), llr.size, "weighted LLRs")
    out = trials.metrics(weights[None, :] if single else weights, p_targets, c_miss, c_fa)
    return {key: float(v[0]) for key, v in out.items()} if single else out
