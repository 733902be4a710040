"""Speaker-verification scoring back-end: EER, normalised minDCF, DET points,
AS-norm, trial-list IO and batched cosine scoring.

Conventions follow ``methods.md`` ("Evaluation conventions"):

- a trial is accepted when ``score >= threshold``;
- EER is ``(FAR + FRR) / 2`` at the distinct-score threshold minimising
  ``|FAR - FRR|`` (ties broken towards the lowest threshold);
- minDCF is the NORMALISED NIST cost, minimised over every distinct score plus an
  "accept nothing" threshold just above the largest score
  (``speechbrain.utils.metric_stats.minDCF`` returns the unnormalised cost and
  builds a thresholds x trials matrix; do not use it);
- AS-norm is ``0.5 * [(s - mu_e) / sigma_e + (s - mu_t) / sigma_t]`` over the
  top-N cohort scores of each side.

Every error rate is computed from ONE sort of the scores (:func:`_sweep`): the
positive and negative scores are sorted separately, merged, reduced to their
distinct values, and the error counts at each threshold are read with a binary
search. That is O(n log n) time and a handful of n-sized arrays of memory.
Error counts are kept as integers so that ties between thresholds are exact.

Scores, rates and thresholds are returned as Python floats / float64 numpy
arrays; :func:`cohort_stats` works in torch and returns torch tensors.
"""

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from speechbrain_ext.errors import SpeechBrainExtError

__all__ = [
    "MissingEmbeddingError",
    "Trials",
    "as_norm",
    "cohort_stats",
    "compute_eer",
    "compute_min_dcf",
    "det_curve",
    "evaluate_conditions",
    "load_enrol_map",
    "load_trials",
    "score_trials",
]

# Rows of the [chunk, M] score matrix in cohort_stats / elements gathered per chunk in
# score_trials: bounds the working set to tens of MB whatever the list size.
_COHORT_CHUNK_ELEMENTS = 1 << 22
_TRIAL_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- metrics


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
    positive_scores : array-like or torch.Tensor
        1-D target-trial scores.
    negative_scores : array-like or torch.Tensor
        1-D non-target-trial scores.

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


def _split_by_label(name, scores, labels):
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


def evaluate_conditions(scores_by_condition, p_targets=(0.01,)):
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
        pos, neg = _split_by_label(name, scores, labels)
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


# ------------------------------------------------------------------------ normalisation


def _to_torch(x, name):
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def _l2_normalise(x, name, row_names=None):
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    bad = ~(torch.isfinite(norms) & (norms > 0)).squeeze(1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).squeeze(1).tolist()
        shown = [row_names[r] for r in rows[:5]] if row_names is not None else rows[:5]
        more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
        what = "utterance id(s)" if row_names is not None else "row(s)"
        raise ValueError(f"{name}: non-finite or zero embedding for {what} {shown}{more}")
    return x / norms


def cohort_stats(embeddings, cohort, top_n=300):
    """Mean and std of each embedding's top-N cosine scores against a cohort.

    Both inputs are L2-normalised here. The score matrix is computed in chunks
    of rows so memory stays bounded (about 16 MB of scores per chunk). The std
    is the unbiased (N - 1) estimate, as in SpeechBrain's AS-norm recipe.

    Arguments
    ---------
    embeddings : torch.Tensor or numpy.ndarray
        [N, D].
    cohort : torch.Tensor or numpy.ndarray
        [M, D], e.g. training-speaker mean embeddings.
    top_n : int
        Scores kept per row; ``min(top_n, M)`` are used and must be >= 2.

    Returns
    -------
    mean, std : torch.Tensor
        [N] each, on the device of ``embeddings`` (CPU for numpy input), in the
        promoted floating dtype of the inputs (at least float32).

    Example
    -------
    Row [1, 0] scores 1, 0, -1 against the cohort; its top two are 1 and 0:

    >>> e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> mean, std = cohort_stats(e, c, top_n=2)
    >>> mean.tolist(), [round(s, 4) for s in std.tolist()]
    ([0.5, 0.5], [0.7071, 0.7071])
    """
    emb = _to_torch(embeddings, "embeddings")
    coh = _to_torch(cohort, "cohort")
    if emb.shape[1] != coh.shape[1]:
        raise ValueError(f"embeddings dim {emb.shape[1]} != cohort dim {coh.shape[1]}")
    k = min(int(top_n), coh.shape[0])
    if k < 2:
        raise ValueError(
            f"need at least 2 cohort scores per row for a std, got top_n={top_n}, M={coh.shape[0]}"
        )
    dtype = torch.promote_types(torch.promote_types(emb.dtype, coh.dtype), torch.float32)
    emb = _l2_normalise(emb.to(dtype), "embeddings")
    coh = _l2_normalise(coh.to(emb.device, dtype), "cohort")
    mean = torch.empty(emb.shape[0], dtype=dtype, device=emb.device)
    std = torch.empty_like(mean)
    chunk = max(1, _COHORT_CHUNK_ELEMENTS // coh.shape[0])
    coh_t = coh.T.contiguous()
    for start in range(0, emb.shape[0], chunk):
        top = torch.topk(emb[start : start + chunk] @ coh_t, k, dim=1, sorted=False).values
        std[start : start + chunk], mean[start : start + chunk] = torch.std_mean(top, dim=1)
    return mean, std


def as_norm(scores, enroll_mean, enroll_std, test_mean, test_std):
    """Adaptive symmetric score normalisation.

    ``s' = 0.5 * [(s - mu_e) / sigma_e + (s - mu_t) / sigma_t]``, elementwise
    (broadcasting allowed). Returns the type of ``scores``: a numpy input gives
    a float64 numpy array (torch statistics are converted), a torch input a
    tensor.

    Arguments
    ---------
    scores : numpy.ndarray or torch.Tensor
        Raw scores, one per trial.
    enroll_mean, enroll_std : array-like or torch.Tensor
        Cohort statistics of each trial's enrolment side.
    test_mean, test_std : array-like or torch.Tensor
        Cohort statistics of each trial's test side.

    Raises
    ------
    ValueError
        A standard deviation that is not strictly positive and finite.

    Example
    -------
    (0.5 - 0.1) / 0.2 = 2 and (0.5 - 0.3) / 0.1 = 2, so s' = 2:

    >>> as_norm(np.array([0.5]), np.array([0.1]), np.array([0.2]), np.array([0.3]), np.array([0.1]))
    array([2.])
    """
    if isinstance(scores, torch.Tensor):
        conv = [
            torch.as_tensor(v, device=scores.device) for v in (enroll_mean, enroll_std, test_mean, test_std)
        ]
        s = scores
    else:
        conv = [
            v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float64)
            for v in (enroll_mean, enroll_std, test_mean, test_std)
        ]
        s = np.asarray(scores, dtype=np.float64)
    mu_e, sd_e, mu_t, sd_t = conv
    for sd, side in ((sd_e, "enroll_std"), (sd_t, "test_std")):
        ok = (sd > 0) & (sd < math.inf)
        if not bool(ok.all()):
            raise ValueError(f"{side} must be positive and finite (a constant cohort score row?)")
    return 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)


# ------------------------------------------------------------------------ trial IO


@dataclass(frozen=True)
class Trials:
    """A parsed trial list.

    Attributes
    ----------
    labels : numpy.ndarray
        int8, 1 for target, 0 for non-target.
    enrol : list of str
        Enrolment ids (utterance ids, or model ids of an ``enrol.map``).
    test : list of str
        Test utterance ids.
    path : str or None
        The file it came from.
    line_numbers : numpy.ndarray or None
        1-based line of each trial in ``path`` (blank lines are skipped).

    Example
    -------
    >>> t = Trials(np.array([1, 0], np.int8), ["a", "a"], ["b", "c"])
    >>> len(t), t.line_of(1)
    (2, 2)
    """

    labels: np.ndarray
    enrol: list
    test: list
    path: str | None = None
    line_numbers: np.ndarray | None = None

    def __len__(self):
        return len(self.labels)

    def line_of(self, index):
        """1-based line of trial ``index`` (its position + 1 when unknown).

        Example
        -------
        >>> Trials(np.array([1], np.int8), ["a"], ["b"], "t.txt", np.array([3])).line_of(0)
        3
        """
        if self.line_numbers is None:
            return int(index) + 1
        return int(self.line_numbers[index])


def load_trials(path):
    """Read a ``<1|0> <enrol_id> <test_id>`` trial list.

    Blank lines are skipped; anything else must be exactly three
    whitespace-separated fields with a 0/1 label.

    Arguments
    ---------
    path : str or os.PathLike

    Returns
    -------
    Trials

    Raises
    ------
    ValueError
        A malformed line (``<path>:<line>: ...``) or a list without trials.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "w").write("1 a b\\n\\n0 a c\\n")
    >>> t = load_trials(p)
    >>> t.labels.tolist(), t.enrol, t.test, t.line_numbers.tolist()
    ([1, 0], ['a', 'a'], ['b', 'c'], [1, 3])
    >>> _ = open(p, "w").write("1 a b\\n2 a c\\n")
    >>> load_trials(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...t.txt:2: label must be 0 or 1, got '2'
    """
    path = os.fspath(path)
    labels, enrol, test, lines = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{lineno}: expected '<1|0> <enrol_id> <test_id>', "
                    f"got {len(fields)} field(s): {line.rstrip()!r}"
                )
            if fields[0] not in ("0", "1"):
                raise ValueError(f"{path}:{lineno}: label must be 0 or 1, got {fields[0]!r}")
            labels.append(fields[0] == "1")
            enrol.append(fields[1])
            test.append(fields[2])
            lines.append(lineno)
    if not labels:
        raise ValueError(f"{path}: the trial list is empty")
    return Trials(np.array(labels, dtype=np.int8), enrol, test, path, np.array(lines, dtype=np.int64))


def load_enrol_map(path):
    """Read an ``enrol.map``: ``<model_id> <utt_id> [<utt_id> ...]`` per line.

    Arguments
    ---------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``{model_id: [utt_id, ...]}`` in file order.

    Raises
    ------
    ValueError
        A line without an utterance, a repeated model id, or an empty file.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "enrol.map")
    >>> _ = open(p, "w").write("m1 u1 u2\\nm2 u3\\n")
    >>> load_enrol_map(p)
    {'m1': ['u1', 'u2'], 'm2': ['u3']}
    """
    path = os.fspath(path)
    mapping = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{lineno}: expected '<model_id> <utt_id> [<utt_id> ...]'")
            if fields[0] in mapping:
                raise ValueError(f"{path}:{lineno}: model id {fields[0]!r} repeated")
            mapping[fields[0]] = fields[1:]
    if not mapping:
        raise ValueError(f"{path}: the enrolment map is empty")
    return mapping


# ------------------------------------------------------------------------ scoring


class MissingEmbeddingError(SpeechBrainExtError, KeyError, ValueError):
    """A trial names an id that has no embedding (catchable as KeyError or ValueError).

    Example
    -------
    >>> str(MissingEmbeddingError("no embedding for 'x'"))
    "no embedding for 'x'"
    """

    def __str__(self):
        # KeyError.__str__ would print the repr of the message.
        return str(self.args[0]) if self.args else ""


def _missing_message(trials, inv_e, inv_t, missing_e, missing_t):
    """Describe the first trial, in file order, that names an id without an embedding."""
    bad_e = np.isin(inv_e, np.fromiter(missing_e, dtype=np.int64, count=len(missing_e)))
    bad = bad_e | missing_t[inv_t]
    i = int(np.argmax(bad))
    where = f"{trials.path}:{trials.line_of(i)}" if trials.path else f"trial {i + 1}"
    if bad_e[i]:
        e, u = trials.enrol[i], missing_e[int(inv_e[i])]
        if u == e:
            return f"{where}: enrol id {e!r} has no embedding"
        return f"{where}: enrol model {e!r} lists utterance {u!r}, which has no embedding"
    return f"{where}: test id {trials.test[i]!r} has no embedding"


def score_trials(ids, embeddings, trials, enrol_map=None, cohort=None, top_n=300):
    """Cosine scores of a trial list, optionally AS-normalised.

    Embeddings are L2-normalised; a multi-utterance enrolment (a model id of
    ``enrol_map``) is the mean of its normalised utterance embeddings,
    renormalised. A model id of ``enrol_map`` takes precedence over an utterance
    id of the same name. Each unique enrolment and test id is resolved once;
    scores are a gather and row-wise dot product over chunks of trials. With a
    ``cohort``, the cohort statistics are computed once per unique enrolment
    model and per unique test utterance and the scores AS-normalised
    (:func:`cohort_stats`, :func:`as_norm`).

    Arguments
    ---------
    ids : list of str
        Utterance ids, one per row of ``embeddings`` (unique).
    embeddings : torch.Tensor or numpy.ndarray
        [N, D]. Torch tensors are scored on their device.
    trials : Trials or str or os.PathLike
        A parsed list or its path (:func:`load_trials`).
    enrol_map : dict or str or os.PathLike or None
        ``{model_id: [utt_id, ...]}`` or its path (:func:`load_enrol_map`). It is
        not looked up automatically next to the trial file.
    cohort : torch.Tensor or numpy.ndarray or None
        [M, D] cohort for AS-norm; None for raw cosine scores.
    top_n : int
        Cohort scores per side for AS-norm.

    Returns
    -------
    numpy.ndarray
        float64 scores in trial order.

    Raises
    ------
    MissingEmbeddingError
        (a KeyError and ValueError) naming the first trial (file and line) whose
        enrolment or test id, or an enrolment-map utterance, has no embedding.
    ValueError
        Non-finite or zero embeddings of the named utterance ids, duplicate ids,
        or shape mismatches.

    Example
    -------
    >>> ids = ["u1", "u2", "u3"]
    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    >>> t = Trials(np.array([1, 0], np.int8), ["u1", "m"], ["u3", "u1"])
    >>> s = score_trials(ids, emb, t, enrol_map={"m": ["u1", "u2"]})
    >>> np.round(s, 4).tolist()  # cos45 = 0.7071; model m = normalised mean of u1, u2
    [0.7071, 0.7071]
    """
    if not isinstance(trials, Trials):
        trials = load_trials(trials)
    if enrol_map is not None and not isinstance(enrol_map, dict):
        enrol_map = load_enrol_map(enrol_map)
    enrol_map = enrol_map or {}
    emb = _to_torch(embeddings, "embeddings")
    ids = list(ids)
    if len(ids) != emb.shape[0]:
        raise ValueError(f"{len(ids)} ids for {emb.shape[0]} embeddings")
    index = {u: i for i, u in enumerate(ids)}
    if len(index) != len(ids):
        seen = set()
        dup = next(u for u in ids if u in seen or seen.add(u))
        raise ValueError(f"utterance id {dup!r} appears more than once in ids")

    uniq_e, inv_e = np.unique(np.asarray(trials.enrol), return_inverse=True)
    uniq_t, inv_t = np.unique(np.asarray(trials.test), return_inverse=True)

    # Enrolment side as a segment mean: rows[j] belongs to unique enrol id seg[j].
    rows, seg, missing_e = [], [], {}
    for k, e in enumerate(uniq_e.tolist()):
        for u in enrol_map.get(e, (e,)):
            r = index.get(u)
            if r is None:
                missing_e[k] = u
                break
            rows.append(r)
            seg.append(k)
    test_rows = np.fromiter((index.get(u, -1) for u in uniq_t.tolist()), dtype=np.int64, count=uniq_t.size)
    if missing_e or (test_rows < 0).any():
        raise MissingEmbeddingError(_missing_message(trials, inv_e, inv_t, missing_e, test_rows < 0))

    used = np.unique(np.concatenate([np.asarray(rows, dtype=np.int64), test_rows]))
    used_t = torch.from_numpy(used).to(emb.device)
    dtype = emb.dtype if emb.dtype in (torch.float32, torch.float64) else torch.float32
    normed = _l2_normalise(emb.index_select(0, used_t).to(dtype), "embeddings", [ids[i] for i in used])
    # Positions of the needed rows inside the compact "normed" matrix.
    where = np.empty(emb.shape[0], dtype=np.int64)
    where[used] = np.arange(used.size)

    seg_t = torch.as_tensor(seg, dtype=torch.int64, device=emb.device)
    enrol_vecs = torch.zeros(uniq_e.size, emb.shape[1], dtype=dtype, device=emb.device)
    enrol_vecs.index_add_(0, seg_t, normed[torch.from_numpy(where[rows]).to(emb.device)])
    # The mean's direction is the sum's direction, so renormalising the sum suffices.
    enrol_vecs = _l2_normalise(enrol_vecs, "enrolment models", uniq_e.tolist())
    test_vecs = normed[torch.from_numpy(where[test_rows]).to(emb.device)]

    n = len(trials)
    scores = torch.empty(n, dtype=dtype, device=emb.device)
    inv_e_t = torch.from_numpy(inv_e.reshape(-1)).to(emb.device)
    inv_t_t = torch.from_numpy(inv_t.reshape(-1)).to(emb.device)
    chunk = max(1, _TRIAL_CHUNK_ELEMENTS // emb.shape[1])
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        scores[sl] = (enrol_vecs[inv_e_t[sl]] * test_vecs[inv_t_t[sl]]).sum(dim=1)

    if cohort is not None:
        mu_e, sd_e = cohort_stats(enrol_vecs, cohort, top_n)
        mu_t, sd_t = cohort_stats(test_vecs, cohort, top_n)
        scores = as_norm(scores.to(mu_e.dtype), mu_e[inv_e_t], sd_e[inv_e_t], mu_t[inv_t_t], sd_t[inv_t_t])
    return scores.cpu().numpy().astype(np.float64)
