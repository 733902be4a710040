"""The per-trial score file a run writes next to its ``metrics.json``: input of every comparison.

``metrics.json`` holds one number per condition; a confidence interval or a paired
difference needs every trial's score and the speaker of its test utterance. The
evaluation stage writes them, per split, to ``<report folder>/scores/<split>.npz``
(:func:`scores_path`), an uncompressed numpy archive without pickles:

=========================  ==========================================================
key                        content
=========================  ==========================================================
``format``                 ``"speechbrain_ext.trial_scores/1"``
``speakers``               str ``[S]``: test-speaker names, sorted
``conditions``             str ``[C]``: condition names, in the order given
``meta``                   str: JSON object (``seed``, ``split``, ``system``... any run facts)
``scores/<condition>``     float32 ``[n]`` (float64 if float32 would round a score)
``labels/<condition>``     int8 ``[n]``: 1 target, 0 non-target
``test_speaker/<condition>`` int32 ``[n]``: index into ``speakers``
``llr_kinds``              str ``[K]`` (optional): the calibrated-LLR kinds stored
``llr/<kind>/<condition>`` float64 ``[n]``: trial ``i``'s calibrated LLR (nats)
=========================  ==========================================================

LLR kinds (:data:`LLR_KINDS`): ``calibrated``, the run's configured calibration (the one
``calibration.json`` holds), and ``plain``, the score-only calibration fitted on the same
trials, stored only when the configured one uses quality measures (without them the two
are the same). A file without ``llr_kinds`` (older runs, or no calibration) loads with
no LLRs: :attr:`TrialScores.llr_kinds` is empty.

Trial ``i`` of a condition is line ``i`` of its trial list, so two runs scored on the
same list have equal ``labels`` and ``test_speaker`` arrays (what
:mod:`speechbrain_ext.compare` checks before pairing them).
"""

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .errors import SpeechBrainExtError
from .files import atomic_write_bytes

__all__ = [
    "FORMAT",
    "LLR_KINDS",
    "MissingScoresError",
    "TrialScores",
    "TrialScoresError",
    "check_trials",
    "load_trial_scores",
    "save_trial_scores",
    "scores_path",
    "speakers_of_trials",
]

FORMAT = "speechbrain_ext.trial_scores/1"
_FIELDS = ("scores", "labels", "test_speaker")
#: LLR kinds a score file may hold: the configured calibration's and the score-only one's.
LLR_KINDS = ("calibrated", "plain")


class TrialScoresError(SpeechBrainExtError, ValueError):
    """A score file (or the data for one) is inconsistent; the message names the file and key.

    Example
    -------
    >>> isinstance(TrialScoresError("a.npz: no key 'speakers'"), ValueError)
    True
    """


class MissingScoresError(SpeechBrainExtError, FileNotFoundError):
    """A run has no per-trial score file for the split asked for.

    Example
    -------
    >>> isinstance(MissingScoresError("runs/a: no scores/eval.npz"), FileNotFoundError)
    True
    """


@dataclass(frozen=True)
class TrialScores:
    """One run's per-trial scores on one split.

    Attributes
    ----------
    path : str
        The file (or a label such as ``"<memory>"``), named in every error.
    speakers : tuple of str
        Test-speaker names; ``test_speaker`` arrays index this tuple.
    conditions : dict
        ``{condition: (scores float [n], labels int8 [n], test_speaker int32 [n])}``.
    meta : dict
        Run facts (``seed``, ``split``...).
    llrs : dict
        ``{kind: {condition: float64 [n]}}``: calibrated LLRs per trial (kinds of
        :data:`LLR_KINDS`; every kind covers every condition), empty when none were saved.

    Example
    -------
    >>> ts = TrialScores("x", ("s1",), {"all": (np.array([0.5, 0.1]), np.array([1, 0], np.int8),
    ...                                           np.array([0, 0], np.int32))})
    >>> ts.seed, list(ts.conditions), ts.llr_kinds
    (None, ['all'], ())
    """

    path: str
    speakers: tuple
    conditions: dict
    meta: dict = field(default_factory=dict)
    llrs: dict = field(default_factory=dict)

    @property
    def llr_kinds(self):
        """The LLR kinds this file holds, in :data:`LLR_KINDS` order (empty: scores only).

        Example
        -------
        >>> TrialScores("x", (), {}, {}, {"plain": {}, "calibrated": {}}).llr_kinds
        ('calibrated', 'plain')
        """
        return tuple(k for k in LLR_KINDS if k in self.llrs)

    def llr(self, kind, condition):
        """The ``kind`` LLRs of ``condition``; a :class:`TrialScoresError` naming the file if absent.

        Example
        -------
        >>> TrialScores("runs/a/eval.npz", (), {}).llr("plain", "all")
        Traceback (most recent call last):
        ...
        speechbrain_ext.trial_scores.TrialScoresError: runs/a/eval.npz: no 'plain' LLRs of condition 'all' (has: none)
        """
        if condition not in self.llrs.get(kind, {}):
            raise TrialScoresError(f"{self.path}: no {kind!r} LLRs of condition {condition!r} "
                                   f"(has: {', '.join(self.llr_kinds) or 'none'})")
        return self.llrs[kind][condition]

    @property
    def seed(self):
        """The run's seed from ``meta`` (None when unknown).

        Example
        -------
        >>> TrialScores("x", (), {}, {"seed": 1986}).seed
        1986
        """
        return self.meta.get("seed")


def check_trials(scores, labels, test_speaker, n_speakers, name="trials", error=None):
    """Validate one trial list and return it as float64 scores, boolean labels, int64 speakers.

    Arguments
    ---------
    scores, labels, test_speaker : array-like
        1-D, one entry per trial: finite scores, labels 1/0, speaker indices.
    n_speakers : int
        Speaker indices must lie in ``[0, n_speakers)``.
    name : str
        Starts every message (file, run, condition).
    error : type or None
        Exception class raised (default :class:`TrialScoresError`).

    Example
    -------
    >>> check_trials([0.5, 0.1], [1, 0], [0, 1], 2)[1].tolist()
    [True, False]
    >>> check_trials([0.5, float("nan")], [1, 0], [0, 1], 2, name="a.npz: condition 'all'")
    Traceback (most recent call last):
    ...
    speechbrain_ext.trial_scores.TrialScoresError: a.npz: condition 'all': 1 non-finite score(s) (NaN or inf) out of 2
    """
    error = error or TrialScoresError
    scores = np.asarray(scores, dtype=np.float64)
    labels, speaker = np.asarray(labels), np.asarray(test_speaker)
    if scores.ndim != 1 or scores.size == 0:
        raise error(f"{name}: scores must be a non-empty 1-D array, got shape {scores.shape}")
    for what, arr in (("labels", labels), ("test speakers", speaker)):
        if arr.shape != scores.shape:
            raise error(f"{name}: {arr.size} {what} for {scores.size} scores")
    n_bad = scores.size - int(np.count_nonzero(np.isfinite(scores)))
    if n_bad:
        raise error(f"{name}: {n_bad} non-finite score(s) (NaN or inf) out of {scores.size}")
    is_target = labels == 1
    if not np.all(is_target | (labels == 0)):
        raise error(f"{name}: labels must be 0 (non-target) or 1 (target)")
    n_target = int(np.count_nonzero(is_target))
    if n_target in (0, scores.size):
        raise error(f"{name}: {n_target} target and {scores.size - n_target} non-target trials: both kinds are needed")
    if not np.issubdtype(speaker.dtype, np.integer) or speaker.min() < 0 or speaker.max() >= n_speakers:
        raise error(f"{name}: test-speaker indices must be integers in [0, {n_speakers})")
    return scores, is_target, speaker.astype(np.int64)


def scores_path(report_folder, split):
    """Where the score file of ``split`` goes: ``<report_folder>/scores/<split>.npz``.

    Example
    -------
    >>> scores_path("results/demo", "eval").replace(os.sep, "/")
    'results/demo/scores/eval.npz'
    """
    return os.path.join(report_folder, "scores", f"{split}.npz")


def speakers_of_trials(test_ids, utt2spk, where="trial list"):
    """The speaker of each test utterance (looked up once per distinct id).

    Arguments
    ---------
    test_ids : sequence of str
        Test utterance id of each trial (``Trials.test``).
    utt2spk : dict
        ``{utterance id: speaker}`` (the manifest's ``spk_id`` column).
    where : str
        Named in the error (e.g. the trial list's path).

    Returns
    -------
    numpy.ndarray
        str ``[n]``.

    Example
    -------
    >>> speakers_of_trials(["u2", "u1", "u2"], {"u1": "A", "u2": "B"}).tolist()
    ['B', 'A', 'B']
    >>> speakers_of_trials(["u3"], {"u1": "A"}, "eval/all.txt")
    Traceback (most recent call last):
    ...
    speechbrain_ext.trial_scores.TrialScoresError: eval/all.txt: test id 'u3' is not in the manifest (no spk_id)
    """
    uniq, inverse = np.unique(np.asarray(test_ids, dtype=str), return_inverse=True)
    missing = [u for u in uniq.tolist() if u not in utt2spk]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise TrialScoresError(f"{where}: test id {missing[0]!r} is not in the manifest (no spk_id){more}")
    return np.array([str(utt2spk[u]) for u in uniq.tolist()])[inverse]


def _as_float(scores):
    """float32 when that loses no digit of any score (the scorer works in float32), else float64."""
    scores = np.asarray(scores, dtype=np.float64)
    as32 = scores.astype(np.float32)
    return as32 if np.array_equal(as32.astype(np.float64), scores, equal_nan=True) else scores


def _check_llrs(path, llrs, conditions):
    """``llrs`` as ``{kind: {condition: float64 [n]}}``, checked against the conditions' scores.

    Every kind must be one of :data:`LLR_KINDS` and cover exactly the conditions, each
    with one finite LLR per trial; the error names the file, the condition and the kind.
    """
    out = {}
    for kind, by_condition in llrs.items():
        if kind not in LLR_KINDS:
            raise TrialScoresError(f"{path}: unknown LLR kind {kind!r} (known: {', '.join(LLR_KINDS)})")
        odd = sorted(set(by_condition) ^ set(conditions))
        if odd:
            raise TrialScoresError(f"{path}: {kind!r} LLRs must cover exactly the conditions {list(conditions)}; "
                                   f"condition {odd[0]!r} is in one but not the other")
        out[kind] = {}
        for cond, (scores, _, _) in conditions.items():
            where = f"{path}: condition {cond!r}: {kind!r} LLRs"
            llr = np.asarray(by_condition[cond])
            if not np.issubdtype(llr.dtype, np.floating) and not np.issubdtype(llr.dtype, np.integer):
                raise TrialScoresError(f"{where} must be numbers, got dtype {llr.dtype}")
            if llr.shape != scores.shape:
                raise TrialScoresError(f"{where}: shape {llr.shape} for {scores.size} scores (one LLR per trial)")
            llr = llr.astype(np.float64)
            n_bad = llr.size - int(np.count_nonzero(np.isfinite(llr)))
            if n_bad:
                raise TrialScoresError(f"{where}: {n_bad} non-finite LLR(s) (NaN or inf) out of {llr.size}")
            out[kind][cond] = llr
    return out


def save_trial_scores(path, scores_by_condition, test_speakers, meta=None, llrs=None):
    """Write a run's per-trial scores of one split (atomically).

    Arguments
    ---------
    path : str
        Destination, normally :func:`scores_path` ``(report_folder, split)``.
    scores_by_condition : dict
        ``{condition: (scores, labels)}``, as ``score_trial_dir(..., return_scores=True)`` returns.
    test_speakers : dict
        ``{condition: speaker name of each trial's test utterance}`` (see :func:`speakers_of_trials`).
    meta : dict or None
        JSON-serialisable run facts; ``seed`` (int) pairs runs across systems.
    llrs : dict or None
        ``{kind: {condition: LLR per trial}}`` (kinds of :data:`LLR_KINDS`, every
        condition, finite values); None or empty: scores only.

    Returns
    -------
    TrialScores
        What was written (as :func:`load_trial_scores` will read it).

    Example
    -------
    >>> import tempfile
    >>> p = scores_path(tempfile.mkdtemp(), "eval")
    >>> _ = save_trial_scores(p, {"all": ([0.9, 0.2, 0.7], [1, 0, 0])}, {"all": ["B", "A", "B"]}, {"seed": 1},
    ...                       llrs={"calibrated": {"all": [2.0, -3.0, 0.5]}})
    >>> ts = load_trial_scores(p)
    >>> ts.speakers, ts.conditions["all"][2].tolist(), ts.seed, ts.llr_kinds, ts.llr("calibrated", "all").tolist()
    (('A', 'B'), [1, 0, 1], 1, ('calibrated',), [2.0, -3.0, 0.5])
    """
    meta = dict(meta or {})
    missing = [c for c in scores_by_condition if c not in test_speakers]
    if missing:
        raise TrialScoresError(f"{path}: no test speakers for condition(s) {missing}")
    names = np.unique(np.concatenate([np.asarray(test_speakers[c], dtype=str) for c in scores_by_condition]))
    arrays = {"format": np.array(FORMAT), "speakers": names, "conditions": np.array(list(scores_by_condition))}
    conditions = {}
    for cond, (scores, labels) in scores_by_condition.items():
        if not cond or "/" in cond:
            raise TrialScoresError(f"{path}: condition name {cond!r} must be non-empty and without '/'")
        scores, labels = _as_float(scores), np.asarray(labels)
        spk = np.asarray(test_speakers[cond], dtype=str)
        index = np.searchsorted(names, spk).astype(np.int32)
        check_trials(scores, labels, index, len(names), f"{path}: condition {cond!r}")
        conditions[cond] = (scores, labels.astype(np.int8), index)
        arrays.update({f"{k}/{cond}": v for k, v in zip(_FIELDS, conditions[cond])})
    checked = _check_llrs(path, llrs or {}, conditions)
    if checked:
        arrays["llr_kinds"] = np.array(list(checked))
        arrays.update({f"llr/{kind}/{cond}": v for kind, by_cond in checked.items() for cond, v in by_cond.items()})
    try:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TrialScoresError(f"{path}: meta is not JSON-serialisable: {err}") from err
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return TrialScores(os.fspath(path), tuple(names.tolist()), conditions, meta, checked)


def _read(path):
    if not os.path.isfile(path):
        raise MissingScoresError(f"no per-trial score file {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise TrialScoresError(f"{path}: not a readable score file ({type(err).__name__}: {err})") from err


def _key(data, path, key):
    if key not in data:
        raise TrialScoresError(f"{path}: no key {key!r} (expected a {FORMAT} file)")
    return data[key]


def load_trial_scores(path):
    """Read and check a score file written by :func:`save_trial_scores`.

    Raises
    ------
    MissingScoresError
        No such file.
    TrialScoresError
        Unreadable, another format, a key missing, or a condition inconsistent
        (lengths, labels, speaker indices, non-finite scores, no target or no
        non-target), or its LLRs (a kind missing a condition, a length other than the
        scores', non-finite values); the message names the file and the key or condition.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "bad.npz"); np.savez(p, speakers=np.array(["A"]))
    >>> load_trial_scores(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechbrain_ext.trial_scores.TrialScoresError: ...bad.npz: no key 'format' (expected a ... file)
    """
    path = os.fspath(path)
    data = _read(path)
    fmt = str(_key(data, path, "format"))
    if fmt != FORMAT:
        raise TrialScoresError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    speakers = tuple(str(s) for s in _key(data, path, "speakers").tolist())
    try:
        meta = json.loads(str(_key(data, path, "meta")))
    except json.JSONDecodeError as err:
        raise TrialScoresError(f"{path}: key 'meta' is not JSON: {err}") from err
    conditions = {}
    for cond in (str(c) for c in _key(data, path, "conditions").tolist()):
        scores, labels, index = (_key(data, path, f"{k}/{cond}") for k in _FIELDS)
        if not np.issubdtype(index.dtype, np.integer) or not np.issubdtype(scores.dtype, np.floating):
            raise TrialScoresError(f"{path}: condition {cond!r}: scores must be float and test_speaker int")
        check_trials(scores, labels, index, len(speakers), f"{path}: condition {cond!r}")
        conditions[cond] = (scores, labels, index)
    kinds = [str(k) for k in np.atleast_1d(data["llr_kinds"]).tolist()] if "llr_kinds" in data else []
    llrs = {kind: {cond: _key(data, path, f"llr/{kind}/{cond}") for cond in conditions} for kind in kinds}
    return TrialScores(path, speakers, conditions, meta, _check_llrs(path, llrs, conditions))
