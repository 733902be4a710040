"""The evaluation and validation splits of a recipe, as its hparams name them, checked before training.

Every recipe's hparams hold two mappings of splits and a selection rule::

    eval_splits:              # scored with the selected checkpoint, reported side by side
        eval:
            annotation: <manifest_folder>/eval.csv
            trials: <manifest_folder>/trials/eval
        ood: {annotation: ..., trials: ...}
    valid_splits:             # scored after every epoch, on one trial list each
        valid:
            annotation: <manifest_folder>/valid.csv
            trials: <manifest_folder>/trials/valid
            condition: all    # the list <trials>/<condition>.txt (default: all)
    checkpoint_selection: valid   # a valid split's name, or "mean" (mean EER over valid_splits)
    calibration_splits: null      # valid splits whose trials, pooled, fit the calibration (null: the first)

A split whose value is ``null`` is left out, so a system file or the command line can
drop a split its base defines (``--eval_splits "{ood: null}"``): plain mappings merge
key by key (:func:`speechbrain_ext.hparams.merge_layer`). :func:`check_splits` runs
before training and names the split and the path of anything missing.
"""

import os
from dataclasses import dataclass

from speechbrain_ext.hparams import HparamsError

__all__ = ["MEAN", "Split", "SplitError", "calibration_splits", "check_splits", "parse_splits", "recipe_splits",
           "scoring_arguments",
           "selection_rule"]

#: ``checkpoint_selection`` value that selects on the mean EER over every valid split.
MEAN = "mean"
_KEYS = {"annotation", "trials", "condition"}


class SplitError(HparamsError):
    """A split of ``eval_splits`` / ``valid_splits`` is malformed or names a missing file or folder.

    Example
    -------
    >>> str(SplitError("eval_splits.ood: annotation not found: /x/ood.csv"))
    'eval_splits.ood: annotation not found: /x/ood.csv'
    """


@dataclass(frozen=True)
class Split:
    """One split: a manifest, its trial folder and (validation only) the trial list scored.

    Example
    -------
    >>> Split("eval", "m/eval.csv", "m/trials/eval").condition
    'all'
    """

    name: str
    annotation: str
    trials: str
    condition: str = "all"


def parse_splits(value, key):
    """The splits of one hparams mapping (``eval_splits`` or ``valid_splits``), in their order.

    Arguments
    ---------
    value : dict
        ``{name: {"annotation": path, "trials": folder[, "condition": name]} or None}``.
    key : str
        The hparams key, named in errors.

    Returns
    -------
    list of Split

    Example
    -------
    >>> s = parse_splits({"eval": {"annotation": "e.csv", "trials": "t/eval"}, "ood": None}, "eval_splits")
    >>> [(x.name, x.annotation, x.condition) for x in s]
    [('eval', 'e.csv', 'all')]
    >>> parse_splits({"eval": {"annotation": "e.csv"}}, "eval_splits")
    Traceback (most recent call last):
    ...
    speechbrain_ext.splits.SplitError: eval_splits.eval: needs 'annotation' and 'trials' (a manifest and ...
    """
    if not isinstance(value, dict):
        raise SplitError(f"{key} must be a mapping of split names to {{annotation, trials}}, got {value!r}")
    out = []
    for name, spec in value.items():
        if spec is None:
            continue
        where = f"{key}.{name}"
        if not isinstance(spec, dict) or not {"annotation", "trials"} <= set(spec):
            raise SplitError(
                f"{where}: needs 'annotation' and 'trials' (a manifest and its trial folder), got {spec!r}"
            )
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise SplitError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
        if "/" in str(name) or not str(name):
            raise SplitError(f"{where}: a split name must be non-empty and without '/'")
        out.append(Split(str(name), str(spec["annotation"]), str(spec["trials"]), str(spec.get("condition", "all"))))
    if not out:
        raise SplitError(f"{key} names no split")
    return out


def selection_rule(rule, valid_splits):
    """Check ``checkpoint_selection`` against the valid splits; returns it.

    Example
    -------
    >>> splits = [Split("valid", "v.csv", "t/valid"), Split("ood_valid", "o.csv", "t/ood_valid")]
    >>> selection_rule("mean", splits), selection_rule("ood_valid", splits)
    ('mean', 'ood_valid')
    >>> selection_rule("eval", splits)
    Traceback (most recent call last):
    ...
    speechbrain_ext.splits.SplitError: checkpoint_selection: 'eval' is neither 'mean' nor a valid split ...
    """
    names = [s.name for s in valid_splits]
    if rule != MEAN and rule not in names:
        raise SplitError(
            f"checkpoint_selection: {rule!r} is neither {MEAN!r} nor a valid split (valid_splits: {', '.join(names)})"
        )
    return rule


def calibration_splits(names, valid_splits):
    """The valid splits named by ``calibration_splits`` (their trial lists are pooled for the fit).

    ``null``: the first valid split (the default; a key at null changes no run's
    configuration). An empty list: no calibration. A name that is not a valid split, or a
    name given twice, is refused (the key and the valid splits are named).

    Example
    -------
    >>> splits = [Split("valid", "v.csv", "t/valid"), Split("ood_valid", "o.csv", "t/ood_valid")]
    >>> [s.name for s in calibration_splits(["valid", "ood_valid"], splits)]
    ['valid', 'ood_valid']
    >>> [s.name for s in calibration_splits(None, splits)], calibration_splits([], splits)
    (['valid'], [])
    >>> calibration_splits(["eval"], splits)
    Traceback (most recent call last):
    ...
    speechbrain_ext.splits.SplitError: calibration_splits: 'eval' is not a valid split (valid_splits: valid, ood_valid)
    """
    if names is None:
        return list(valid_splits[:1])
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise SplitError(f"calibration_splits: a list of valid split names (or null), got {names!r}")
    by_name = {s.name: s for s in valid_splits}
    for name in names:
        if name not in by_name:
            raise SplitError(f"calibration_splits: {name!r} is not a valid split "
                             f"(valid_splits: {', '.join(by_name) or 'none'})")
    if len(set(names)) != len(names):
        raise SplitError(f"calibration_splits: a split is named twice in {list(names)}")
    return [by_name[name] for name in names]


def _check_one(split, key, validation):
    where = f"{key}.{split.name}"
    if not os.path.isfile(split.annotation):
        raise SplitError(f"{where}: annotation not found: {split.annotation} (did data preparation run?)")
    if not os.path.isdir(split.trials):
        raise SplitError(f"{where}: trial folder not found: {split.trials} (did data preparation run?)")
    lists = sorted(n[: -len(".txt")] for n in os.listdir(split.trials) if n.endswith(".txt"))
    if not lists:
        raise SplitError(f"{where}: no trial list (*.txt) in {split.trials}")
    if validation and split.condition not in lists:
        raise SplitError(
            f"{where}: condition {split.condition!r} has no trial list {os.path.join(split.trials, split.condition)}"
            f".txt (lists there: {', '.join(lists)})"
        )


def check_splits(hparams):
    """Parse and check ``eval_splits``, ``valid_splits`` and ``checkpoint_selection`` before training.

    Every manifest must exist, every trial folder must hold trial lists, and every
    valid split's ``condition`` list must be there: otherwise a :class:`SplitError`
    names the split and the path, before any epoch is spent.

    Returns
    -------
    eval_splits, valid_splits : list of Split

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "t"))
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("ID\\n"); _ = open(os.path.join(d, "t", "all.txt"), "w")
    >>> ok = {"annotation": os.path.join(d, "m.csv"), "trials": os.path.join(d, "t")}
    >>> hp = {"eval_splits": {"eval": ok}, "valid_splits": {"valid": ok}, "checkpoint_selection": "valid"}
    >>> [s.name for s in check_splits(hp)[0]]
    ['eval']
    >>> hp["eval_splits"]["ood"] = {"annotation": "/nope/ood.csv", "trials": ok["trials"]}
    >>> check_splits(hp)
    Traceback (most recent call last):
    ...
    speechbrain_ext.splits.SplitError: eval_splits.ood: annotation not found: /nope/ood.csv (did data preparation run?)
    """
    for key in ("eval_splits", "valid_splits", "checkpoint_selection"):
        _require(hparams, key)
    eval_splits = parse_splits(hparams["eval_splits"], "eval_splits")
    valid_splits = parse_splits(hparams["valid_splits"], "valid_splits")
    selection_rule(hparams["checkpoint_selection"], valid_splits)
    for split in valid_splits:
        _check_one(split, "valid_splits", validation=True)
    return _checked_eval_splits(eval_splits), valid_splits


def _require(hparams, key):
    if key not in hparams:
        raise SplitError(f"the hparams have no {key!r} (see speechbrain_ext.splits)")


def _checked_eval_splits(eval_splits):
    for split in eval_splits:
        _check_one(split, "eval_splits", validation=False)
    return eval_splits


def recipe_splits(hparams_file, recipe_args=()):
    """``(eval_splits, data_folder)`` of a recipe configuration, for a tool that scores its trial lists.

    ``recipe_args`` are the recipe's own command-line overrides (``["--data_folder", "x"]``),
    applied as its ``train.py`` applies them; the eval splits' manifests and trial folders are
    checked, so the corpus must be prepared already. Only ``eval_splits`` is read: a tool that
    scores needs no validation split (``--eval_splits "{eval: null, mine: {annotation: ...,
    trials: ...}}"`` scores a trial list of one's own with a recipe's settings).

    Example
    -------
    >>> recipe_splits("/nonexistent.yaml")
    Traceback (most recent call last):
    ...
    speechbrain_ext.hparams.HparamsError: hyperparameter file not found: /nonexistent.yaml
    """
    from speechbrain_ext.hparams import load_hparams
    from speechbrain_ext.recipe import parse_arguments

    _, _, overrides = parse_arguments([hparams_file, *recipe_args])
    hparams, _ = load_hparams(hparams_file, overrides)
    _require(hparams, "eval_splits")
    return _checked_eval_splits(parse_splits(hparams["eval_splits"], "eval_splits")), hparams["data_folder"]


def scoring_arguments(parser, threads_help="torch threads (default 1)"):
    """The command line shared by the tools that score a recipe's ``eval_splits`` with one encoder.

    ``out_dir``, ``hparams``, ``--cache-dir``, ``--draws`` and ``--threads``; the recipe's own
    ``--key value`` overrides are what ``parse_known_args`` leaves (:func:`recipe_splits`).

    Example
    -------
    >>> import argparse
    >>> p = argparse.ArgumentParser(); scoring_arguments(p)
    >>> args, rest = p.parse_known_args(["out", "h.yaml", "--draws", "10", "--data_folder", "d"])
    >>> args.out_dir, args.draws, args.threads, rest
    ('out', 10, 1, ['--data_folder', 'd'])
    """
    parser.add_argument("out_dir", help="where metrics.json, report.md, the plots and scores/ go")
    parser.add_argument("hparams", help="a recipe's hparams file: its eval_splits and data_folder are scored")
    parser.add_argument("--cache-dir", help="embedding cache folder (default: <out_dir>/embeddings)")
    parser.add_argument("--draws", type=int, default=1000, help="speaker-bootstrap draws (default 1000)")
    parser.add_argument("--threads", type=int, default=1, help=threads_help)
