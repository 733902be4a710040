"""Quality measures of verification trials, the side information of a calibration (QMF).

A quality measure is a number per trial computed from per-utterance metadata of
its two sides. Three kinds of metadata are known (:data:`METADATA`):

- ``duration``: speech length in seconds (the manifest's ``duration`` column);
- ``norm``: the L2 norm of the embedding BEFORE length normalisation (the
  embedding magnitude of WeSpeaker's QMF);
- ``cohort_mean``: the mean of the side's top-N cohort cosine scores (the
  imposter mean that AS-norm computes, :func:`speechbrain_ext.scoring.cohort_stats`).

Each measure reads one kind and combines the enrolment and test values as
``enrol``, ``test``, ``min`` or ``max`` (durations in log seconds). WeSpeaker's
QMF (``wespeaker/bin/score_calibration.py``) feeds a logistic regression with
min, max, max - min and max / min of durations (capped at a maximum), magnitudes
and imposter means. max - min is a linear combination of min and max, so it adds
nothing to a linear model; the log durations' difference is the log of their
max / min. :data:`QUALITY_SETS` names the usual selections; ``"qmf"`` is our
counterpart of WeSpeaker's set (log durations, uncapped; no ratios of norms or
cohort means).

Everything is vectorised over trials: :func:`side_metadata` gathers the
per-utterance arrays to trial order with one lookup per distinct id,
:func:`trial_quality` computes every measure as array operations,
:func:`quality_matrix` checks and stacks them, and :func:`calibration_set`
does it all for one trial list.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from speechbrain_ext.calibration_metrics import CalibrationError, as_vector

__all__ = [
    "CalibrationSet",
    "METADATA",
    "QUALITY_MEASURES",
    "QUALITY_SETS",
    "QualityMeasure",
    "calibration_set",
    "measure_names",
    "quality_matrix",
    "required_metadata",
    "side_metadata",
    "trial_quality",
]

#: Per-utterance metadata: ``{key: (must be > 0, how a multi-utterance enrolment combines it)}``.
METADATA = {
    "duration": (True, "sum"),
    "norm": (True, "mean"),
    "cohort_mean": (False, "mean"),
}

_COMBINE = {
    "enrol": lambda e, t: e,
    "test": lambda e, t: t,
    "min": np.minimum,
    "max": np.maximum,
}


@dataclass(frozen=True)
class QualityMeasure:
    """One named quality measure: ``combine(transform(enrol[key]), transform(test[key]))``.

    Arguments
    ---------
    name : str
        Registry name, e.g. ``"log_dur_min"``.
    metadata : str
        The per-utterance key it reads (a key of :data:`METADATA`).
    combine : str
        ``"enrol"``, ``"test"``, ``"min"`` or ``"max"``.
    log : bool
        Take the natural log of the metadata first.

    Example
    -------
    >>> m = QualityMeasure("log_dur_min", "duration", "min", log=True)
    >>> np.round(m({"duration": np.array([1.0, 8.0])}, {"duration": np.array([4.0, 2.0])}), 4).tolist()
    [0.0, 0.6931]
    """

    name: str
    metadata: str
    combine: str
    log: bool = False

    def __call__(self, enrol, test):
        """The measure of every trial from ``{key: array}`` metadata of each side."""
        e, t = enrol[self.metadata], test[self.metadata]
        if self.log:
            e, t = np.log(e), np.log(t)
        return _COMBINE[self.combine](e, t)


def _registry():
    measures = {}
    for prefix, key, log in (("log_dur", "duration", True), ("norm", "norm", False),
                             ("cohort_mean", "cohort_mean", False)):
        for combine in _COMBINE:
            name = f"{prefix}_{combine}"
            measures[name] = QualityMeasure(name, key, combine, log)
    return measures


#: Every known measure by name: ``{log_dur, norm, cohort_mean}_{enrol, test, min, max}``.
QUALITY_MEASURES = _registry()

#: Named selections of measures (``measure_names("qmf")``).
QUALITY_SETS = {
    "none": (),
    "duration": ("log_dur_min", "log_dur_max"),
    "duration_norm": ("log_dur_min", "log_dur_max", "norm_min", "norm_max"),
    "qmf": ("log_dur_min", "log_dur_max", "norm_min", "norm_max", "cohort_mean_min", "cohort_mean_max"),
}


def measure_names(spec):
    """Measure names from a set name of :data:`QUALITY_SETS` or a sequence of measure names.

    Example
    -------
    >>> measure_names("duration")
    ('log_dur_min', 'log_dur_max')
    >>> measure_names(["norm_test"])
    ('norm_test',)
    >>> measure_names("snr")
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: unknown quality set 'snr' (known: none, duration, ...)
    """
    if spec is None:
        return ()
    if isinstance(spec, str):
        if spec not in QUALITY_SETS:
            raise CalibrationError(f"unknown quality set {spec!r} (known: {', '.join(QUALITY_SETS)})")
        return QUALITY_SETS[spec]
    names = tuple(spec)
    unknown = [n for n in names if n not in QUALITY_MEASURES]
    if unknown:
        raise CalibrationError(
            f"unknown quality measure {unknown[0]!r} (known: {', '.join(QUALITY_MEASURES)})"
        )
    return names


def required_metadata(names):
    """The per-utterance metadata keys that the named measures read, in :data:`METADATA` order.

    Example
    -------
    >>> required_metadata(("norm_max", "log_dur_min", "norm_min"))
    ('duration', 'norm')
    """
    keys = {QUALITY_MEASURES[n].metadata for n in measure_names(names)}
    return tuple(k for k in METADATA if k in keys)


def _check_metadata(values, key, where):
    values = as_vector(values, f"{key} of {where}")
    positive, _ = METADATA[key]
    if positive and values.size and not (values > 0).all():
        i = int(np.argmin(values > 0))
        raise CalibrationError(f"{key} of {where}[{i}] is {values[i]}: it must be > 0")
    return values


def trial_quality(names, enrol, test):
    """The named quality measures of every trial, from trial-aligned metadata of each side.

    Arguments
    ---------
    names : str or sequence of str
        A set of :data:`QUALITY_SETS` or measure names of :data:`QUALITY_MEASURES`.
    enrol : dict
        ``{metadata key: 1-D array}``, one value per trial (enrolment side).
    test : dict
        The same for the test side.

    Returns
    -------
    dict
        ``{name: 1-D float64 array}`` in the order of ``names``.

    Raises
    ------
    CalibrationError
        An unknown measure; a metadata key a measure needs that a side lacks (named
        with the measure); arrays of different lengths; a non-finite value or a
        non-positive duration / norm (named with its trial index).

    Example
    -------
    >>> q = trial_quality("duration", {"duration": [2.0, 8.0]}, {"duration": [4.0, 1.0]})
    >>> {k: np.round(v, 3).tolist() for k, v in q.items()}
    {'log_dur_min': [0.693, 0.0], 'log_dur_max': [1.386, 2.079]}
    >>> trial_quality(["norm_min"], {"duration": [2.0]}, {"duration": [4.0]})
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: quality measure 'norm_min' needs the 'norm' of each enrol ...
    """
    names = measure_names(names)
    sides, n = {}, None
    for side, meta in (("enrol", enrol), ("test", test)):
        checked = {}
        for key in required_metadata(names):
            if key not in meta:
                measure = next(m for m in names if QUALITY_MEASURES[m].metadata == key)
                raise CalibrationError(
                    f"quality measure {measure!r} needs the {key!r} of each {side} side, which was not given "
                    f"(given: {', '.join(meta) or 'nothing'})"
                )
            checked[key] = _check_metadata(meta[key], key, f"{side} trials")
            n = checked[key].size if n is None else n
            if checked[key].size != n:
                raise CalibrationError(f"{key} of the {side} side has {checked[key].size} values for {n} trials")
        sides[side] = checked
    return {name: QUALITY_MEASURES[name](sides["enrol"], sides["test"]) for name in names}


def quality_matrix(quality, names, n, strict=True):
    """``(names, [n, k] matrix)`` from a mapping or a 2-D array of quality values.

    Arguments
    ---------
    quality : dict or numpy.ndarray or None
        ``{name: 1-D array}`` or an ``[n, k]`` matrix whose columns ``names`` names.
    names : sequence of str
        The measures wanted, in column order.
    n : int
        Number of trials.
    strict : bool
        True (apply time): a mapping must hold exactly ``names``. False (fit time):
        a mapping may hold more measures; ``names`` selects them (default: all).

    Returns
    -------
    names : tuple of str
    matrix : numpy.ndarray

    Example
    -------
    >>> names, m = quality_matrix({"b": [1.0, 2.0], "a": [3.0, 4.0]}, ("a", "b"), 2)
    >>> names, m.tolist()
    (('a', 'b'), [[3.0, 1.0], [4.0, 2.0]])
    >>> quality_matrix({"a": [3.0]}, ("a", "b"), 1)
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: quality measures do not match: missing ['b'], ...
    """
    names = tuple(names)
    if quality is None:
        if names:
            raise CalibrationError(f"quality measures {list(names)} are needed but no quality values were given")
        return (), np.zeros((n, 0))
    if isinstance(quality, Mapping):
        given = tuple(quality)
        names = names or (() if strict else given)
        missing = [m for m in names if m not in quality]
        extra = [m for m in given if m not in names] if strict else []
        if missing or extra:
            raise CalibrationError(
                f"quality measures do not match: missing {missing}, unexpected {extra} "
                f"(this calibration uses {list(names)}, given {list(given)})"
            )
        columns = [as_vector(quality[m], f"quality {m!r}") for m in names]
    else:
        matrix = np.asarray(quality, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise CalibrationError(
                f"a quality matrix of shape {matrix.shape} needs one column per quality measure {list(names)}"
            )
        columns = [as_vector(matrix[:, k], f"quality {m!r}") for k, m in enumerate(names)]
    if len(set(names)) != len(names):
        raise CalibrationError(f"quality measure names repeat: {list(names)}")
    for m, col in zip(names, columns):
        if col.size != n:
            raise CalibrationError(f"quality {m!r} has {col.size} values for {n} scores")
    return names, (np.column_stack(columns) if columns else np.zeros((n, 0)))


def _segment_reduce(values, rows, seg, n_segments, how):
    total = np.bincount(seg, weights=values[rows], minlength=n_segments)
    if how == "sum":
        return total
    return total / np.bincount(seg, minlength=n_segments)


def side_metadata(side_ids, utt_ids, utt_metadata, enrol_map=None):
    """Per-utterance metadata gathered to the order of one side of a trial list.

    A model id of ``enrol_map`` (multi-utterance enrolment, as in
    :func:`speechbrain_ext.scoring.score_trials`) combines its utterances as
    :data:`METADATA` says: durations add up, norms and cohort means are averaged
    (the cohort mean of the averaged embedding, which AS-norm uses, is the exact
    value; pass it per model id when you have it, the mean is an approximation).

    Arguments
    ---------
    side_ids : sequence of str
        The enrolment (or test) id of every trial.
    utt_ids : sequence of str
        Utterance ids, aligned with the arrays of ``utt_metadata``.
    utt_metadata : dict
        ``{metadata key: 1-D array}`` per utterance (keys of :data:`METADATA`).
    enrol_map : dict or None
        ``{model_id: [utt_id, ...]}``; a model id takes precedence over an
        utterance id of the same name.

    Returns
    -------
    dict
        ``{key: 1-D float64 array}``, one value per trial.

    Raises
    ------
    CalibrationError
        An id without metadata (named), an unknown key, a bad value (named by utterance).

    Example
    -------
    >>> meta = {"duration": [2.0, 3.0, 5.0], "norm": [10.0, 20.0, 12.0]}
    >>> out = side_metadata(["m", "c", "m"], ["a", "b", "c"], meta, enrol_map={"m": ["a", "b"]})
    >>> out["duration"].tolist(), out["norm"].tolist()
    ([5.0, 5.0, 5.0], [15.0, 12.0, 15.0])
    """
    index = {u: i for i, u in enumerate(utt_ids)}
    checked = {}
    for key, values in utt_metadata.items():
        if key not in METADATA:
            raise CalibrationError(f"unknown utterance metadata {key!r} (known: {', '.join(METADATA)})")
        values = as_vector(values, f"{key}")
        if values.size != len(index):
            raise CalibrationError(f"{values.size} values of {key!r} for {len(index)} utterance ids")
        bad = ~(values > 0) if METADATA[key][0] else np.zeros(values.size, dtype=bool)
        if bad.any():
            raise CalibrationError(f"{key} of utterance {utt_ids[int(np.argmax(bad))]!r} must be > 0")
        checked[key] = values
    uniq, inverse = np.unique(np.asarray(side_ids, dtype=str), return_inverse=True)
    rows, seg = [], []
    enrol_map = enrol_map or {}
    for k, side_id in enumerate(uniq.tolist()):  # one lookup per distinct id, not per trial
        for utt in enrol_map.get(side_id, (side_id,)):
            if utt not in index:
                raise CalibrationError(f"no metadata for utterance {utt!r} (trial side {side_id!r})")
            rows.append(index[utt])
            seg.append(k)
    rows, seg = np.asarray(rows, dtype=np.int64), np.asarray(seg, dtype=np.int64)
    return {
        key: _segment_reduce(values, rows, seg, uniq.size, METADATA[key][1])[inverse.reshape(-1)]
        for key, values in checked.items()
    }


class CalibrationSet(NamedTuple):
    """The arrays of one trial list that a calibration is fitted on or applied to.

    Example
    -------
    >>> CalibrationSet(np.zeros(2), np.array([1, 0]), {}).quality
    {}
    """

    scores: np.ndarray
    labels: np.ndarray
    quality: dict


def calibration_set(trials, scores, utt_ids, utt_metadata, quality_names=(), enrol_map=None):
    """Scores, labels and quality measures of a trial list (for ``calibration.calibrate_eval``).

    Arguments
    ---------
    trials : speechbrain_ext.scoring.Trials
        The parsed list (its ``labels``, ``enrol`` and ``test`` ids).
    scores : array-like
        Its scores, in trial order (:func:`speechbrain_ext.scoring.score_trials`).
    utt_ids : sequence of str
        Utterance ids of the metadata arrays (the embedding table's ids).
    utt_metadata : dict
        ``{"duration": ..., "norm": ..., "cohort_mean": ...}`` per utterance (the
        keys the measures need; see :mod:`speechbrain_ext.quality`).
    quality_names : str or sequence of str
        A set of :data:`speechbrain_ext.quality.QUALITY_SETS` or measure names.
    enrol_map : dict or None
        Multi-utterance enrolment models.

    Returns
    -------
    CalibrationSet

    Example
    -------
    >>> from speechbrain_ext.scoring import Trials
    >>> t = Trials(np.array([1, 0], np.int8), ["a", "a"], ["b", "c"])
    >>> cs = calibration_set(t, [0.8, 0.1], ["a", "b", "c"], {"duration": [2.0, 4.0, 1.0]}, "duration")
    >>> cs.labels.tolist(), np.round(cs.quality["log_dur_min"], 3).tolist()
    ([1, 0], [0.693, 0.0])
    """
    names = measure_names(quality_names)
    scores = as_vector(scores, "scores")
    labels = np.asarray(trials.labels)
    if labels.size != scores.size:
        raise CalibrationError(f"{scores.size} scores for a list of {labels.size} trials")
    metadata = {k: v for k, v in utt_metadata.items() if k in required_metadata(names)}
    enrol = side_metadata(trials.enrol, utt_ids, metadata, enrol_map) if names else {}
    test = side_metadata(trials.test, utt_ids, metadata) if names else {}
    return CalibrationSet(scores, labels, trial_quality(names, enrol, test) if names else {})
