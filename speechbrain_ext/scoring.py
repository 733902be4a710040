"""Speaker-verification scoring: batched cosine scores of trial lists, optionally AS-normalised.

:func:`score_trials` scores a trial list (:mod:`speechbrain_ext.trials`) against an
embedding table, with multi-utterance enrolment models and AS-norm
(:mod:`speechbrain_ext.score_norm`); the metrics of the scores are in
:mod:`speechbrain_ext.metrics`. This module is also the short, stable namespace of
the whole back-end: every name of those modules is importable from here
(``speechbrain_ext.scoring.compute_eer``, ``.load_trials``, ``.as_norm``...).
"""

from dataclasses import dataclass

import numpy as np
import torch

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.metrics import compute_eer, compute_min_dcf, det_curve, evaluate_conditions, split_by_label
from speechbrain_ext.score_norm import as_matrix, as_norm, cohort_stats, l2_normalise
from speechbrain_ext.trials import Trials, load_enrol_map, load_trials

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
    "split_by_label",
]

# Elements gathered per chunk in score_trials: bounds the working set to tens of MB whatever the list size.
_TRIAL_CHUNK_ELEMENTS = 1 << 22


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
    emb = as_matrix(embeddings, "embeddings")
    ids = list(ids)
    sides = _trial_sides(trials, enrol_map or {}, _row_index(ids, emb.shape[0]))
    enrol_vecs, test_vecs = _side_vectors(emb, ids, sides)
    n = len(trials)
    scores = torch.empty(n, dtype=enrol_vecs.dtype, device=emb.device)
    inv_e_t = torch.from_numpy(sides.inv_e.reshape(-1)).to(emb.device)
    inv_t_t = torch.from_numpy(sides.inv_t.reshape(-1)).to(emb.device)
    chunk = max(1, _TRIAL_CHUNK_ELEMENTS // emb.shape[1])
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        scores[sl] = (enrol_vecs[inv_e_t[sl]] * test_vecs[inv_t_t[sl]]).sum(dim=1)

    if cohort is not None:
        mu_e, sd_e = cohort_stats(enrol_vecs, cohort, top_n)
        mu_t, sd_t = cohort_stats(test_vecs, cohort, top_n)
        scores = as_norm(scores.to(mu_e.dtype), mu_e[inv_e_t], sd_e[inv_e_t], mu_t[inv_t_t], sd_t[inv_t_t])
    return scores.cpu().numpy().astype(np.float64)


def _row_index(ids, n_rows):
    """``{utterance id: embedding row}``; the ids must be unique and one per row."""
    if len(ids) != n_rows:
        raise ValueError(f"{len(ids)} ids for {n_rows} embeddings")
    index = {u: i for i, u in enumerate(ids)}
    if len(index) != len(ids):
        seen = set()
        dup = next(u for u in ids if u in seen or seen.add(u))
        raise ValueError(f"utterance id {dup!r} appears more than once in ids")
    return index


@dataclass(frozen=True)
class _Sides:
    """The unique enrolment and test ids of a trial list and the embedding rows they need.

    ``rows[j]`` belongs to unique enrolment id ``seg[j]`` (a model of several utterances
    has several rows); ``test_rows[k]`` is the row of unique test id ``k``;
    ``inv_e``/``inv_t`` map each trial to its unique enrolment / test id.
    """

    uniq_e: np.ndarray
    inv_e: np.ndarray
    inv_t: np.ndarray
    rows: list
    seg: list
    test_rows: np.ndarray


def _trial_sides(trials, enrol_map, index):
    """Resolve each unique enrolment and test id of ``trials`` once; a missing embedding is an error."""
    uniq_e, inv_e = np.unique(np.asarray(trials.enrol), return_inverse=True)
    uniq_t, inv_t = np.unique(np.asarray(trials.test), return_inverse=True)
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
    return _Sides(uniq_e, inv_e, inv_t, rows, seg, test_rows)


def _side_vectors(emb, ids, sides):
    """Unit enrolment vectors (normalised mean of a model's normalised utterances) and unit test vectors."""
    used = np.unique(np.concatenate([np.asarray(sides.rows, dtype=np.int64), sides.test_rows]))
    used_t = torch.from_numpy(used).to(emb.device)
    dtype = emb.dtype if emb.dtype in (torch.float32, torch.float64) else torch.float32
    normed = l2_normalise(emb.index_select(0, used_t).to(dtype), "embeddings", [ids[i] for i in used])
    # Positions of the needed rows inside the compact "normed" matrix.
    where = np.empty(emb.shape[0], dtype=np.int64)
    where[used] = np.arange(used.size)
    seg_t = torch.as_tensor(sides.seg, dtype=torch.int64, device=emb.device)
    enrol_vecs = torch.zeros(sides.uniq_e.size, emb.shape[1], dtype=dtype, device=emb.device)
    enrol_vecs.index_add_(0, seg_t, normed[torch.from_numpy(where[sides.rows]).to(emb.device)])
    # The mean's direction is the sum's direction, so renormalising the sum suffices.
    enrol_vecs = l2_normalise(enrol_vecs, "enrolment models", sides.uniq_e.tolist())
    test_vecs = normed[torch.from_numpy(where[sides.test_rows]).to(emb.device)]
    return enrol_vecs, test_vecs
