"""Speaker bootstrap of EER and normalised minDCF: many draws at once, exact.

``methods.md`` ("Evaluation conventions", Uncertainty) fixes the bootstrap: resample
the TEST speakers with replacement and keep every trial whose test utterance belongs
to a drawn speaker, with multiplicity. A draw is therefore a vector of per-speaker
counts ``c`` (summing to the number of speakers), and the resampled trial list is the
original one where trial ``i`` has the integer weight ``c[speaker(i)]``. The metrics
of that weighted list are exactly those of the list with each trial replicated
``c[speaker(i)]`` times, computed as :func:`speechbrain_ext.scoring.compute_eer` and
:func:`~speechbrain_ext.scoring.compute_min_dcf` do (accept when ``score >= threshold``;
EER at the distinct-score threshold minimising ``|FAR - FRR|``, ties to the lowest;
minDCF normalised, over every distinct score and "accept nothing").

How it stays fast (a report evaluates hundreds of thousands of draws):

- :class:`SpeakerTrials` sorts the scores once and cuts the sorted list at a few
  hundred *checkpoints* (distinct-score boundaries about ``spacing`` trials apart). It
  keeps, per speaker, the number of targets below and non-targets at or above each
  checkpoint. For a block of draws the weighted error counts at every checkpoint are
  then ONE matrix product ``counts @ per_speaker_counts``.
- EER: ``n_fa * W_pos - n_miss * W_neg`` never increases with the threshold, so each
  draw's crossing lies in one segment between two checkpoints; only that segment's
  trials are read, with the draw's weights, to find it.
- minDCF: a threshold with ``beta * n_fa >= cost(accept nothing)`` cannot win, so only
  the checkpoints above the first one below that line in some draw are looked at
  (found by bisection); a segment ``[a, b)`` cannot hold a cost below
  ``alpha * n_miss(a) + beta * n_fa(b)``, so only segments whose bound is below the best
  checkpoint cost of the draw are read.

Error counts are integers held in floats (exact below 2**53, checked), so ties between
thresholds are decided exactly and, with every weight 1, the results equal
``compute_eer`` / ``compute_min_dcf`` to the last bit. A draw without any target or
non-target trial has no metric: it gets NaN (see :func:`percentile_interval`).
"""

import warnings

import numpy as np

from .errors import SpeechBrainExtError
from .trial_scores import check_trials

__all__ = [
    "BootstrapError",
    "SpeakerTrials",
    "check_counts",
    "metric_keys",
    "one_trial_steps",
    "percentile_interval",
    "speaker_draws",
    "weighted_metrics",
]

# Elements of the largest temporary array of one block of draws (float64: 32 MiB).
_CHUNK_ELEMENTS = 1 << 22
# Integers up to these bounds are exact in float32 / float64 sums and products.
_EXACT_F32 = 1 << 24
_EXACT_F64 = 1 << 53


class BootstrapError(SpeechBrainExtError, ValueError):
    """Invalid scores, labels, speakers or draws given to the bootstrap (the message names them).

    Example
    -------
    >>> isinstance(BootstrapError("condition 'all': no target trial"), ValueError)
    True
    """


def metric_keys(p_targets=(0.01, 0.05)):
    """Names of the metrics the bootstrap returns: ``"eer"`` then ``"min_dcf_p<p>"`` per prior.

    Example
    -------
    >>> metric_keys((0.01, 0.05))
    ['eer', 'min_dcf_p0.01', 'min_dcf_p0.05']
    """
    return ["eer"] + [f"min_dcf_p{p:g}" for p in p_targets]


def _check_costs(p_targets, c_miss, c_fa):
    p_targets = tuple(float(p) for p in p_targets)
    if not p_targets or not all(0.0 < p < 1.0 for p in p_targets):
        raise BootstrapError(f"p_targets must be one or more priors in (0, 1), got {p_targets}")
    if not (c_miss > 0 and c_fa > 0):
        raise BootstrapError(f"c_miss and c_fa must be positive, got c_miss={c_miss}, c_fa={c_fa}")
    return p_targets


def speaker_draws(n_speakers, n_draws, seed=0):
    """Per-speaker counts of ``n_draws`` resamples of ``n_speakers`` speakers with replacement.

    Arguments
    ---------
    n_speakers : int
        Number of test speakers.
    n_draws : int
        Number of bootstrap draws.
    seed : int or numpy.random.Generator
        The same seed gives the same draws.

    Returns
    -------
    numpy.ndarray
        int32 ``[n_draws, n_speakers]``; each row sums to ``n_speakers``.

    Example
    -------
    >>> c = speaker_draws(5, 3, seed=1)
    >>> c.shape, c.sum(axis=1).tolist(), bool((c == speaker_draws(5, 3, seed=1)).all())
    ((3, 5), [5, 5, 5], True)
    """
    if n_speakers < 1 or n_draws < 1:
        raise BootstrapError(f"need at least one speaker and one draw, got {n_speakers} and {n_draws}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_speakers, size=(n_draws, n_speakers))
    picks += np.arange(n_draws)[:, None] * n_speakers
    return np.bincount(picks.ravel(), minlength=n_draws * n_speakers).reshape(n_draws, n_speakers).astype(np.int32)


def check_counts(counts, trials_per_speaker, name="trials"):
    """Draws as ``[n_draws, n_speakers]`` non-negative integers whose error counts stay exact in float64.

    Example
    -------
    >>> check_counts([[1, 2]], np.array([3.0, 1.0])).tolist()
    [[1, 2]]
    >>> check_counts([[1, -1]], np.array([3.0, 1.0]), "run a")
    Traceback (most recent call last):
    ...
    speechbrain_ext.bootstrap.BootstrapError: run a: draws must be non-negative integer counts
    """
    counts = np.asarray(counts)
    n_speakers = len(trials_per_speaker)
    if counts.ndim != 2 or counts.shape[1] != n_speakers or counts.shape[0] == 0:
        raise BootstrapError(f"{name}: draws must be [n_draws >= 1, {n_speakers} speakers], got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0:
        raise BootstrapError(f"{name}: draws must be non-negative integer counts")
    bound = float((counts @ trials_per_speaker).max())
    if bound * bound >= _EXACT_F64:
        raise BootstrapError(f"{name}: draws too heavy to count exactly in float64 (bound {bound:.3g})")
    return counts


def percentile_interval(values, level=0.95, axis=-1):
    """Percentile bootstrap interval, ignoring NaN draws (draws without a metric).

    Arguments
    ---------
    values : array-like
        Bootstrap replicates along ``axis``.
    level : float
        Coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles.
    axis : int
        The axis of the draws.

    Returns
    -------
    low, high : numpy.ndarray or float
        NaN where every draw is NaN.

    Example
    -------
    >>> [round(v, 9) for v in percentile_interval(np.arange(101.0))]
    [2.5, 97.5]
    >>> percentile_interval([1.0, np.nan, 3.0], level=0.5)
    (1.5, 2.5)
    """
    if not 0.0 < level < 1.0:
        raise BootstrapError(f"level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    tail = 50.0 * (1.0 - level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": NaN is the answer
        low, high = np.nanpercentile(values, [tail, 100.0 - tail], axis=axis)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


class SpeakerTrials:
    """One trial list, sorted once, ready for many speaker-bootstrap draws.

    Arguments
    ---------
    scores : array-like
        1-D finite scores (computed in float64).
    labels : array-like
        1 (target) or 0 (non-target) per trial; both kinds must occur.
    test_speaker : array-like of int
        Index of each trial's test speaker, in ``[0, n_speakers)``.
    n_speakers : int
        Number of test speakers (columns of the draws); a speaker may have no trial here.
    name : str
        Named in error messages (e.g. ``"run a, condition all"``).
    spacing : int or None
        Trials between checkpoints (default grows with the list and the speaker count).

    Example
    -------
    >>> t = SpeakerTrials([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0], [0, 1, 0, 1], 2)
    >>> m = t.metrics([[1, 1], [2, 0]], p_targets=(0.5,))
    >>> m["eer"].tolist(), m["min_dcf_p0.5"].tolist()
    ([0.5, 0.0], [0.5, 0.0])
    """

    def __init__(self, scores, labels, test_speaker, n_speakers, name="trials", spacing=None):
        scores, is_target, speaker = check_trials(scores, labels, test_speaker, int(n_speakers), name, BootstrapError)
        order = np.argsort(scores, kind="stable")
        self.name = name
        self.n_speakers = int(n_speakers)
        self.size = n = scores.size
        self._is_target = is_target[order]
        self._speaker = speaker[order]
        sorted_scores = scores[order]
        # threshold[q]: a distinct score starts at sorted position q (q = n: "accept nothing").
        self._threshold = np.ones(n + 1, dtype=bool)
        np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=self._threshold[1:n])
        if spacing is None:
            spacing = int(np.clip(np.sqrt(self.n_speakers * n) / 56, 16, 4096))
        starts = np.flatnonzero(self._threshold)
        # A segment never splits a tie group, so at least the largest group keeps segments <= 2 spacings.
        spacing = max(int(spacing), int(np.diff(np.append(starts, n)).max()))
        wanted = np.arange(0, n, spacing)
        self._checkpoints = np.unique(np.concatenate([starts[np.searchsorted(starts, wanted)], [n]]))
        self._per_speaker = self._checkpoint_counts()
        self._per_speaker_f32 = self._per_speaker.astype(np.float32)
        self._segment_tables()
        self._trials_per_speaker = np.bincount(self._speaker, minlength=self.n_speakers).astype(np.float64)
        self.n_target = int(np.count_nonzero(self._is_target))
        self.n_nontarget = n - self.n_target

    def _checkpoint_counts(self):
        """``[S, 2 (J + 1)]``: targets below, then non-targets at or above, each checkpoint."""
        n_seg = len(self._checkpoints) - 1
        seg = np.searchsorted(self._checkpoints, np.arange(self.size), side="right") - 1
        key = self._speaker * n_seg + seg
        size = self.n_speakers * n_seg
        tgt = np.bincount(key[self._is_target], minlength=size).reshape(self.n_speakers, n_seg)
        non = np.bincount(key[~self._is_target], minlength=size).reshape(self.n_speakers, n_seg)
        out = np.zeros((self.n_speakers, 2 * (n_seg + 1)), dtype=np.float64)
        np.cumsum(tgt, axis=1, out=out[:, 1 : n_seg + 1])
        out[:, n_seg + 1 : 2 * n_seg + 1] = np.cumsum(non[:, ::-1], axis=1)[:, ::-1]
        return out

    def metrics(self, counts, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
        """EER and normalised minDCF of every draw.

        Arguments
        ---------
        counts : array-like of int
            ``[n_draws, n_speakers]`` non-negative per-speaker multiplicities (e.g. from
            :func:`speaker_draws`; a row of ones is the original list).
        p_targets : sequence of float
            Priors of the minDCF values.
        c_miss, c_fa : float
            Costs of a miss and of a false alarm.

        Returns
        -------
        dict
            ``{key: float64 [n_draws]}`` for the keys of :func:`metric_keys`; NaN for a
            draw without any target or without any non-target trial.

        Example
        -------
        >>> t = SpeakerTrials([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0], [0, 0, 1, 1], 2)
        >>> m = t.metrics([[1, 1], [2, 0]])
        >>> m["eer"].tolist(), np.isnan(m["min_dcf_p0.01"]).tolist()
        ([0.5, nan], [False, True])
        """
        p_targets = _check_costs(p_targets, c_miss, c_fa)
        counts = self._check_counts(counts)
        n_cols = max(self.n_speakers, 2 * len(self._checkpoints), int(np.diff(self._checkpoints).max()) + 1)
        step = max(1, _CHUNK_ELEMENTS // n_cols)
        parts = [self._chunk(counts[i : i + step], p_targets, c_miss, c_fa) for i in range(0, len(counts), step)]
        return {key: np.concatenate([p[key] for p in parts]) for key in metric_keys(p_targets)}

    def _check_counts(self, counts):
        return check_counts(counts, self._trials_per_speaker, self.name)

    def _chunk(self, counts, p_targets, c_miss, c_fa):
        n_cp = len(self._checkpoints)
        # Every partial sum of the product is an integer <= the draw's trial count.
        bound = float((counts @ self._trials_per_speaker).max())
        if bound < _EXACT_F32:  # float32 products run twice as fast and are exact here
            at = counts.astype(np.float32) @ self._per_speaker_f32
        else:
            at = counts.astype(np.float64) @ self._per_speaker
        rows = np.flatnonzero((at[:, n_cp - 1] > 0) & (at[:, n_cp] > 0))
        out = {key: np.full(len(counts), np.nan) for key in metric_keys(p_targets)}
        if rows.size < len(counts):
            counts, at = counts[rows], at[rows]
        if rows.size:
            # Counts stay float32 (exact integers); float64 totals make every product below float64.
            miss, fa = at[:, :n_cp], at[:, n_cp:]
            totals = miss[:, -1:].astype(np.float64), fa[:, :1].astype(np.float64)
            out["eer"][rows] = self._eer(counts, miss, fa, *totals)
            for p in p_targets:
                out[f"min_dcf_p{p:g}"][rows] = self._min_dcf(counts, miss, fa, *totals, p, c_miss, c_fa)
        return out

    @staticmethod
    def _leading(n_draws, n, holds):
        """Per draw, how many leading checkpoint columns (of ``n``) satisfy ``holds``.

        ``holds(rows, columns)`` tests one column per draw and must be true on a prefix of
        the columns only (the error counts are monotone): a vectorised bisection, log2(n) steps.
        """
        rows = np.arange(n_draws)
        lo = np.zeros(n_draws, dtype=np.int64)
        hi = np.full(n_draws, n, dtype=np.int64)
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            ok = holds(rows, np.minimum(mid, n - 1))
            lo = np.where(active & ok, mid + 1, lo)
            hi = np.where(active & ~ok, mid, hi)

    def _segment_tables(self):
        """Padded per-segment views of the sorted list, so a block of draws reads them with one gather.

        Padding points at speaker ``n_speakers``, a column of zeros appended to the draws.
        """
        lo, hi = self._checkpoints[:-1], self._checkpoints[1:]
        width = int((hi - lo).max())
        pos = lo[:, None] + np.arange(width + 1)
        inside = pos[:, :width] < hi[:, None]
        trial = np.minimum(pos[:, :width], self.size - 1)
        self._seg_speaker = np.where(inside, self._speaker[trial], self.n_speakers)
        self._seg_target = self._is_target[trial] & inside
        self._seg_threshold = (pos <= hi[:, None]) & self._threshold[np.minimum(pos, self.size)]

    def _segment_counts(self, counts, miss, fa, rows, seg):
        """Error counts at every sorted position of segment ``seg[m]`` under draw ``rows[m]``.

        Returns ``(n_miss, n_fa)``, each ``[m, L + 1]``: column ``t`` is the threshold starting
        at sorted position ``checkpoints[seg] + t`` (a real one where ``_seg_threshold``).
        """
        padded = np.zeros((len(counts), self.n_speakers + 1))
        padded[:, :-1] = counts
        w = np.take(padded.ravel(), rows[:, None] * (self.n_speakers + 1) + self._seg_speaker[seg])
        n_miss = np.empty((len(rows), w.shape[1] + 1))
        n_fa = np.empty_like(n_miss)
        n_miss[:, 0] = miss[rows, seg]
        n_fa[:, 0] = fa[rows, seg]
        tw = np.where(self._seg_target[seg], w, 0.0)
        np.cumsum(tw, axis=1, out=n_miss[:, 1:])
        n_miss[:, 1:] += n_miss[:, :1]
        w -= tw
        np.cumsum(w, axis=1, out=n_fa[:, 1:])
        np.subtract(n_fa[:, :1], n_fa[:, 1:], out=n_fa[:, 1:])
        return n_miss, n_fa

    def _eer(self, counts, miss, fa, w_pos, w_neg):
        rows = np.arange(len(counts))
        # gap = (FAR - FRR) * W_pos * W_neg: an exact integer, non-increasing in the threshold.
        def crossing(r, c):
            return fa[r, c] * w_pos[r, 0] > miss[r, c] * w_neg[r, 0]

        seg = self._leading(len(rows), len(self._checkpoints), crossing) - 1
        n_miss, n_fa = self._segment_counts(counts, miss, fa, rows, seg)
        is_thr = self._seg_threshold[seg]
        gap = n_fa * w_pos - n_miss * w_neg
        # The crossing: first threshold with gap <= 0 (t0) and the threshold before it (t1);
        # the smaller |gap| wins, t1 on a tie (compute_eer's lowest threshold).
        t0 = np.argmax(is_thr & (gap <= 0), axis=1)
        last_thr = np.maximum.accumulate(np.where(is_thr, np.arange(gap.shape[1]), -1), axis=1)
        t1 = last_thr[rows, t0 - 1]
        t = np.where(np.abs(gap[rows, t1]) <= np.abs(gap[rows, t0]), t1, t0)
        return (n_fa[rows, t] / w_neg[:, 0] + n_miss[rows, t] / w_pos[:, 0]) / 2

    def _min_dcf(self, counts, miss, fa, w_pos, w_neg, p, c_miss, c_fa):
        norm = min(c_miss * p, c_fa * (1.0 - p))
        reject_all = c_miss * p / norm
        # Same expressions as scoring.compute_min_dcf, so weights of 1 give the same bits.
        alpha = c_miss * p / (w_pos * norm)
        beta = c_fa * (1.0 - p) / (w_neg * norm)
        # A threshold with beta * n_fa >= reject_all cannot beat "accept nothing": only the
        # checkpoints (and segments ending) after the first one below it in some draw count.
        def above_reject_all(r, c):
            return fa[r, c] * beta[r, 0] >= reject_all

        first = max(int(self._leading(len(counts), len(self._checkpoints) - 1, above_reject_all).min()) - 1, 0)
        miss_w, fa_w = miss[:, first:], fa[:, first:]
        # Missing every target costs at least reject_all (exactly it when nothing is accepted,
        # already in best), so those thresholds are no candidates.
        miss_cost = np.where(miss_w[:, :-1] < w_pos, miss_w[:, :-1], np.inf) * alpha
        best = np.minimum((miss_cost + fa_w[:, :-1] * beta).min(axis=1), reject_all)
        # No threshold of segment j costs less than alpha * n_miss(start) + beta * n_fa(end).
        miss_cost += fa_w[:, 1:] * beta
        rows, seg = np.nonzero(miss_cost < best[:, None])
        seg += first
        step = max(1, _CHUNK_ELEMENTS // (int(np.diff(self._checkpoints).max()) + 1))
        for i in range(0, rows.size, step):
            r, s = rows[i : i + step], seg[i : i + step]
            n_miss, n_fa = self._segment_counts(counts, miss, fa, r, s)
            keep = self._seg_threshold[s]
            keep &= n_miss < w_pos[r]
            cost = np.where(keep, n_miss, np.inf)
            cost *= alpha[r]
            cost += n_fa * beta[r]
            np.minimum.at(best, r, cost.min(axis=1))
        return best


def weighted_metrics(scores, labels, weights, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
    """EER and normalised minDCF of a trial list under integer per-trial weights.

    Weight ``w`` counts the trial ``w`` times (0 drops it), exactly as if the list held
    that many copies. Used for checks and small lists; :class:`SpeakerTrials` is the fast
    path when the weights come from speaker counts.

    Arguments
    ---------
    scores : array-like
        1-D scores.
    labels : array-like
        1 (target) / 0 (non-target).
    weights : array-like of int
        ``[n_trials]`` or ``[n_draws, n_trials]``, non-negative.
    p_targets : sequence of float
        Priors of the minDCF values.
    c_miss, c_fa : float
        Costs.

    Returns
    -------
    dict
        ``{key: float}`` for 1-D weights, ``{key: float64 [n_draws]}`` for 2-D (NaN when a
        draw keeps no target or no non-target).

    Example
    -------
    >>> from speechbrain_ext.scoring import compute_eer
    >>> s, y = [0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0]
    >>> weighted_metrics(s, y, [1, 1, 1, 1])["eer"] == compute_eer([0.9, 0.8], [0.1, 0.85])[0]
    True
    >>> w = weighted_metrics(s, y, [0, 1, 1, 2], p_targets=(0.5,))  # as [0.8] vs [0.1, 0.85, 0.85]
    >>> w["eer"] == compute_eer([0.8], [0.1, 0.85, 0.85])[0], round(w["eer"], 4), round(w["min_dcf_p0.5"], 4)
    (True, 0.8333, 0.6667)
    """
    scores = np.asarray(scores)
    weights = np.asarray(weights)
    single = weights.ndim == 1
    trials = SpeakerTrials(scores, labels, np.arange(scores.size), scores.size, "weighted trials", spacing=scores.size)
    out = trials.metrics(weights[None, :] if single else weights, p_targets, c_miss, c_fa)
    return {key: float(v[0]) for key, v in out.items()} if single else out


def one_trial_steps(n_target, n_nontarget, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
    """How far one trial moves each metric: the granularity of a trial list.

    At a fixed threshold one more miss raises FRR by ``1 / n_target`` and one more
    false alarm raises FAR by ``1 / n_nontarget``. EER = (FAR + FRR) / 2 therefore moves
    by ``1 / (2 n_target)`` or ``1 / (2 n_nontarget)``; the normalised cost
    ``(c_miss p P_miss + c_fa (1 - p) P_fa) / min(c_miss p, c_fa (1 - p))`` by
    ``c_miss p / (C_def n_target)`` or ``c_fa (1 - p) / (C_def n_nontarget)``. Every value
    a metric can take lies on the lattice of these steps, and since the minimum over
    thresholds of costs that each move by at most a step moves by at most that step,
    one trial changing side moves the minimised metric by at most the step too.
    A difference between two systems smaller than the larger step is a matter of one
    trial.

    Returns
    -------
    dict
        ``{key: (one_miss, one_false_alarm)}`` for the keys of :func:`metric_keys`, as fractions.

    Example
    -------
    600 non-targets: one false alarm moves minDCF(0.01) by 99 / 600 = 0.165.

    >>> steps = one_trial_steps(200, 600, p_targets=(0.01,))
    >>> steps["eer"], round(steps["min_dcf_p0.01"][1], 3)
    ((0.0025, 0.0008333333333333334), 0.165)
    """
    p_targets = _check_costs(p_targets, c_miss, c_fa)
    steps = {"eer": (1.0 / (2 * n_target), 1.0 / (2 * n_nontarget))}
    for p in p_targets:
        norm = min(c_miss * p, c_fa * (1.0 - p))
        steps[f"min_dcf_p{p:g}"] = (c_miss * p / (norm * n_target), c_fa * (1.0 - p) / (norm * n_nontarget))
    return steps
