"""Checkpoint selection: which end-of-epoch checkpoint is kept and evaluated.

The rule, decided here only (:func:`rank`): the lowest selection EER wins; between
checkpoints of equal EER the later epoch wins (then the newer checkpoint). The
selection EER is the checkpoint meta ``"EER"`` (in %), written by the Brain after
each validation from ``checkpoint_selection`` (:func:`selection_metric`): one valid
split's EER, or the mean over every valid split. The Brain keeps checkpoints with
:func:`keep_best` and the recipe evaluates :func:`recover_best`: both rank with the
same function, so the checkpoint kept is the checkpoint evaluated.
SpeechBrain's own ``find_checkpoints(min_key="EER")`` (used by the export and the
pre-trained encoder loader) orders the same way: lowest EER, ties to the newest.
"""

import math

from speechbrain_ext.splits import MEAN

__all__ = ["has_selection_metric", "keep_best", "rank", "recover_best", "selection_metric"]


def selection_metric(per_split, rule):
    """The selection EER and minDCF of one validation: a split's, or the mean over splits (``"mean"``).

    Arguments
    ---------
    per_split : dict
        ``{split: {"EER": %, "minDCF": float}}`` in the order of ``valid_splits``.
    rule : str
        A split name or ``"mean"``.

    Returns
    -------
    dict
        ``{"EER", "minDCF"}`` (rounded like the per-split values).

    Example
    -------
    >>> v = {"valid": {"EER": 4.0, "minDCF": 0.5}, "ood_valid": {"EER": 9.0, "minDCF": 0.7}}
    >>> selection_metric(v, "ood_valid"), selection_metric(v, "mean")
    ({'EER': 9.0, 'minDCF': 0.7}, {'EER': 6.5, 'minDCF': 0.6})
    """
    if rule == MEAN:
        n = len(per_split)
        return {
            "EER": round(sum(m["EER"] for m in per_split.values()) / n, 4),
            "minDCF": round(sum(m["minDCF"] for m in per_split.values()) / n, 5),
        }
    return {"EER": per_split[rule]["EER"], "minDCF": per_split[rule]["minDCF"]}


def has_selection_metric(ckpt):
    """True for an end-of-epoch checkpoint that carries a selection EER (intra-epoch ones do not).

    Example
    -------
    >>> from types import SimpleNamespace as C
    >>> has_selection_metric(C(meta={"EER": 3.0})), has_selection_metric(C(meta={"end-of-epoch": False}))
    (True, False)
    """
    return "EER" in ckpt.meta


def rank(ckpt):
    """Sort key of a checkpoint, higher is better: lower EER, then later epoch, then newer.

    A checkpoint without a selection EER ranks below every one that has it.

    Example
    -------
    >>> from types import SimpleNamespace as C
    >>> ckpts = [C(meta={"EER": 3.0, "epoch": 2, "unixtime": 2.0}), C(meta={"EER": 3.0, "epoch": 3, "unixtime": 3.0}),
    ...          C(meta={"EER": 5.0, "epoch": 4, "unixtime": 4.0}), C(meta={"unixtime": 5.0})]
    >>> max(ckpts, key=rank).meta["epoch"]
    3
    """
    meta = ckpt.meta
    if "EER" not in meta:
        return (-math.inf, -math.inf, float(meta.get("unixtime", 0.0)))
    return (-float(meta["EER"]), float(meta.get("epoch", 0)), float(meta.get("unixtime", 0.0)))


def keep_best(checkpointer, meta, num_to_keep):
    """Save an end-of-epoch checkpoint with ``meta``; keep the ``num_to_keep`` best by :func:`rank` and the newest.

    Arguments
    ---------
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
    meta : dict
        Holds ``"EER"`` (the selection EER, %) and ``"epoch"``.
    num_to_keep : int
        Best checkpoints kept (the most recent ones are kept too, to resume from).
    """
    checkpointer.save_and_keep_only(meta=meta, importance_keys=[rank], num_to_keep=num_to_keep)


def recover_best(checkpointer):
    """Load the best checkpoint by :func:`rank` into the recoverables; returns it (None when there is none)."""
    return checkpointer.recover_if_possible(importance_key=rank, ckpt_predicate=has_selection_metric)
