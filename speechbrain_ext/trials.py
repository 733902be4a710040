"""Trial lists and enrolment maps: ``<1|0> <enrol_id> <test_id>`` and ``<model_id> <utt_id>...`` files.

Every malformed line is an error naming the file and the line.
"""

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Trials", "load_enrol_map", "load_trials"]


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
