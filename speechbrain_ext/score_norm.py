"""Cohort score normalisation: adaptive symmetric normalisation (AS-norm) against a cohort.

``s' = 0.5 * [(s - mu_e) / sigma_e + (s - mu_t) / sigma_t]`` over the top-N cohort
scores of each side (``methods.md``, "Evaluation conventions"). :func:`cohort_stats`
works in torch and returns torch tensors.

The cohort, as WeSpeaker builds it (``tools/vector_mean.py``, ``wespeaker/bin/score.py``
and ``score_norm.py`` of its ``examples/cnceleb/v2`` and ``voxceleb/v2`` recipes): one
vector per training speaker, the mean of the raw (not length-normalised) embeddings
of its utterances (:func:`speaker_means`; all of them there, or a seeded sample per
speaker, :func:`cohort_sample`); optionally the mean embedding of the training
utterances is subtracted from every embedding, cohort and trial sides alike, before
cosine scoring (:func:`embedding_mean`, :func:`subtract_mean`: WeSpeaker's
``--cal_mean True``). WeSpeaker's cohort std is the biased (N) estimate and ours the
unbiased (N - 1) one: every normalised score differs by the same factor
``sqrt((N - 1) / N)``, which changes no EER or minDCF.
"""

import math
import random

import numpy as np
import torch

__all__ = [
    "as_matrix",
    "as_norm",
    "cohort_sample",
    "cohort_stats",
    "embedding_mean",
    "l2_normalise",
    "speaker_means",
    "subtract_mean",
]

# Rows of the [chunk, M] score matrix in cohort_stats: bounds the working set to tens of MB.
_COHORT_CHUNK_ELEMENTS = 1 << 22


def as_matrix(x, name):
    """A 2-D floating torch view of ``x`` (a tensor or an array), named ``name`` in errors.

    Example
    -------
    >>> as_matrix(np.ones((2, 3), dtype=np.int64), "embeddings").dtype
    torch.float32
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def l2_normalise(x, name, row_names=None):
    """Rows of ``x`` scaled to unit length; a zero or non-finite row is an error naming it.

    Example
    -------
    >>> l2_normalise(torch.tensor([[3.0, 4.0]], dtype=torch.float64), "embeddings").tolist()
    [[0.6, 0.8]]
    """
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
    emb = as_matrix(embeddings, "embeddings")
    coh = as_matrix(cohort, "cohort")
    if emb.shape[1] != coh.shape[1]:
        raise ValueError(f"embeddings dim {emb.shape[1]} != cohort dim {coh.shape[1]}")
    k = min(int(top_n), coh.shape[0])
    if k < 2:
        raise ValueError(
            f"need at least 2 cohort scores per row for a std, got top_n={top_n}, M={coh.shape[0]}"
        )
    dtype = torch.promote_types(torch.promote_types(emb.dtype, coh.dtype), torch.float32)
    emb = l2_normalise(emb.to(dtype), "embeddings")
    coh = l2_normalise(coh.to(emb.device, dtype), "cohort")
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


def cohort_sample(ids, speakers, per_speaker="all", seed=0):
    """The utterances whose embeddings make the cohort: every one (``"all"``, WeSpeaker's
    setting) or ``per_speaker`` drawn per speaker by a seeded sample across all its utterances.

    Each speaker's draw depends only on ``(seed, speaker)`` and its own utterances, so
    adding a speaker changes no other speaker's sample. The result keeps the order of ``ids``.

    Arguments
    ---------
    ids : sequence of str
        Utterance ids.
    speakers : sequence of str
        Their speakers, aligned with ``ids``.
    per_speaker : int or "all"
        Utterances per speaker (a speaker with fewer keeps all of its own).
    seed : int
        Seed of the draw.

    Example
    -------
    >>> ids = [f"s{k}_{i}" for k in (1, 2) for i in range(4)]
    >>> spk = [u.split("_")[0] for u in ids]
    >>> cohort_sample(ids, spk) == ids
    True
    >>> picked = cohort_sample(ids, spk, per_speaker=2, seed=3)
    >>> len(picked), sorted({u[:2] for u in picked}), picked == cohort_sample(ids, spk, 2, seed=3)
    (4, ['s1', 's2'], True)
    """
    if per_speaker == "all":
        return list(ids)
    if isinstance(per_speaker, bool) or not isinstance(per_speaker, int) or per_speaker < 1:
        raise ValueError(f"cohort utterances per speaker must be a positive integer or 'all', not {per_speaker!r}")
    by_speaker = {}
    for utt, spk in zip(ids, speakers):
        by_speaker.setdefault(spk, []).append(utt)
    keep = set()
    for spk, utts in by_speaker.items():
        keep.update(random.Random(f"{seed}|{spk}").sample(sorted(utts), min(per_speaker, len(utts))))
    return [u for u in ids if u in keep]


def embedding_mean(embeddings):
    """Mean of the raw embeddings (``[D]``): what WeSpeaker's ``--cal_mean`` subtracts.

    Example
    -------
    >>> embedding_mean(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [2.0, 3.0]
    """
    emb = as_matrix(embeddings, "embeddings")
    if emb.shape[0] == 0:
        raise ValueError("embedding_mean of no embedding")
    return emb.to(torch.promote_types(emb.dtype, torch.float32)).mean(dim=0)


def subtract_mean(embeddings, mean):
    """``embeddings - mean`` (rows), as a tensor; a mean of another dimension is an error.

    Example
    -------
    >>> subtract_mean(np.array([[1.0, 2.0]]), torch.tensor([0.5, 0.5])).tolist()
    [[0.5, 1.5]]
    """
    emb = as_matrix(embeddings, "embeddings")
    mean = torch.as_tensor(mean).to(emb.device, emb.dtype).reshape(-1)
    if mean.shape[0] != emb.shape[1]:
        raise ValueError(f"mean of dim {mean.shape[0]} for embeddings of dim {emb.shape[1]}")
    return emb - mean


def speaker_means(embeddings, speakers, mean=None):
    """One vector per speaker: the mean of its raw embeddings (minus ``mean`` when given).

    Arguments
    ---------
    embeddings : torch.Tensor or numpy.ndarray
        ``[N, D]`` raw embeddings.
    speakers : sequence of str
        The speaker of each row.
    mean : torch.Tensor or None
        Subtracted from every mean (WeSpeaker subtracts the training mean from the
        cohort as from the trial sides).

    Returns
    -------
    names : list of str
        The speakers, sorted.
    means : torch.Tensor
        ``[len(names), D]``, not normalised (:func:`cohort_stats` normalises).

    Example
    -------
    >>> names, means = speaker_means(torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]]), ["b", "b", "a"])
    >>> names, means.tolist()
    (['a', 'b'], [[0.0, 5.0], [2.0, 1.0]])
    """
    emb = as_matrix(embeddings, "embeddings")
    emb = emb.to(torch.promote_types(emb.dtype, torch.float32))
    speakers = list(speakers)
    if len(speakers) != emb.shape[0]:
        raise ValueError(f"{len(speakers)} speakers for {emb.shape[0]} embeddings")
    names = sorted(set(speakers))
    position = {name: k for k, name in enumerate(names)}
    index = torch.tensor([position[s] for s in speakers], dtype=torch.int64, device=emb.device)
    sums = torch.zeros(len(names), emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, index, emb)
    counts = torch.bincount(index, minlength=len(names)).to(emb.dtype).unsqueeze(1)
    means = sums / counts
    return names, (means if mean is None else subtract_mean(means, mean))
