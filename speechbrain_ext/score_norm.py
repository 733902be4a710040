"""Cohort score normalisation: adaptive symmetric normalisation (AS-norm) against a cohort.

``s' = 0.5 * [(s - mu_e) / sigma_e + (s - mu_t) / sigma_t]`` over the top-N cohort
scores of each side (``methods.md``, "Evaluation conventions"). :func:`cohort_stats`
works in torch and returns torch tensors.
"""

import math

import numpy as np
import torch

__all__ = ["as_matrix", "as_norm", "cohort_stats", "l2_normalise"]

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
