"""The machine-readable training log: one JSON object per epoch in ``train_log.jsonl``.

The Brain writes it next to SpeechBrain's ``train_log.txt`` (:func:`log_path`) after
every validation. One line per epoch::

    {"epoch": 2, "lr": 0.0011,
     "train": {"loss": 3.39, "aam": 3.39, "seconds": 2.6, "step_seconds": 2.4, "loader_wait_seconds": 0.2, ...},
     "valid": {"valid": {"EER": 18.83, "minDCF": 0.687}, "ood_valid": {"EER": 25.0, "minDCF": 0.9}},
     "valid_seconds": 0.5,
     "selection": {"rule": "valid", "EER": 18.83, "minDCF": 0.687}}

EER in %, seconds of wall-clock time. Resume-safe: writing epoch ``N`` first drops
every line of an epoch ``>= N`` (a run killed after its log line but before its
checkpoint validates epoch ``N`` again; a run restarted from an earlier checkpoint
redoes the later epochs), then replaces the file atomically. Each epoch is
therefore in the file once, as the run that last reached it saw it.
"""

import json
import logging
import math
import numbers
import os

import torch

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write

__all__ = ["EpochLogError", "jsonable", "log_path", "read_epoch_log", "write_epoch"]

logger = logging.getLogger(__name__)


class EpochLogError(SpeechBrainExtError, ValueError):
    """A ``train_log.jsonl`` line is not an epoch record; the message names the file and line.

    Example
    -------
    >>> str(EpochLogError("train_log.jsonl:3: not JSON"))
    'train_log.jsonl:3: not JSON'
    """


def log_path(train_log):
    """``train_log.jsonl`` next to SpeechBrain's text log (its name with ``.jsonl`` for the extension).

    Example
    -------
    >>> log_path("results/x/train_log.txt")
    'results/x/train_log.jsonl'
    """
    return os.path.splitext(os.fspath(train_log))[0] + ".jsonl"


def jsonable(value):
    """A JSON-ready copy: tensors and numpy numbers become Python numbers, non-finite floats None.

    Example
    -------
    >>> jsonable({"loss": torch.tensor(2.5), "n": 3, "bad": float("nan"), "s": [1.0]})
    {'loss': 2.5, 'n': 3, 'bad': None, 's': [1.0]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return str(value)


def read_epoch_log(path, strict=True):
    """The records of a ``train_log.jsonl``, in file order (empty when there is no file).

    Arguments
    ---------
    path : str
    strict : bool
        A line that is not an epoch record raises :class:`EpochLogError` (naming the file
        and line); with False it is skipped with a warning.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "train_log.jsonl")
    >>> read_epoch_log(p)
    []
    >>> _ = open(p, "w").write('{"epoch": 1}\\nnot json\\n')
    >>> read_epoch_log(p, strict=False)
    [{'epoch': 1}]
    >>> read_epoch_log(p)
    Traceback (most recent call last):
    ...
    speechbrain_ext.epoch_log.EpochLogError: ...train_log.jsonl:2: not an epoch record (a JSON object with "epoch"): ...
    """
    if not os.path.isfile(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                    raise ValueError("no integer 'epoch'")
            except ValueError as err:
                message = f'{path}:{number}: not an epoch record (a JSON object with "epoch"): {err}'
                if strict:
                    raise EpochLogError(message) from err
                logger.warning("%s; the line is dropped", message)
                continue
            records.append(record)
    return records


def write_epoch(path, record):
    """Write one epoch's record: drop the lines of this and later epochs, append it, replace the file.

    A line of the file that is not an epoch record is dropped with a warning.

    Arguments
    ---------
    path : str
        The ``train_log.jsonl``.
    record : dict
        Holds an integer ``"epoch"``; made JSON-ready with :func:`jsonable`.

    Returns
    -------
    list of dict
        The records now in the file.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "train_log.jsonl")
    >>> for epoch, eer in ((1, 9.0), (2, 8.0), (2, 7.5), (3, 7.0)):  # epoch 2 validated twice
    ...     _ = write_epoch(p, {"epoch": epoch, "selection": {"EER": eer}})
    >>> [(r["epoch"], r["selection"]["EER"]) for r in read_epoch_log(p)]
    [(1, 9.0), (2, 7.5), (3, 7.0)]
    >>> [r["epoch"] for r in write_epoch(p, {"epoch": 2})]  # a restart from epoch 1's checkpoint
    [1, 2]
    """
    record = jsonable(record)
    epoch = record.get("epoch")
    if not isinstance(epoch, int):
        raise EpochLogError(f"{path}: a record needs an integer 'epoch', got {epoch!r}")
    # a damaged line must not stop training at the end of an epoch: it is dropped with a warning
    records = [r for r in read_epoch_log(path, strict=False) if r["epoch"] < epoch] + [record]
    with atomic_write(path) as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=False, allow_nan=False) + "\n")
    return records
