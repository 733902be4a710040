"""EER of a trial list at another list's composition of non-target pairs.

Two evaluation splits can differ in how hard their impostors are for reasons that have
nothing to do with the model: SynthEmo's out-of-generator split draws its speakers from 12
voice bases and 2 accents, the in-generator eval split from 46 bases and 6 accents, so an
ood non-target pair shares its base about 4 times and its accent 3 times as often. The ratio
of the two EERs then mixes "the model learned the generator" with "ood's impostors are more
alike". This module separates the two.

A trial's *cell* says which speaker attributes (``keys``, e.g. base, accent, gender) its two
sides share: a bit per key. :class:`TrialComposition` holds the cells of a list;
:meth:`TrialComposition.weights_to` gives each non-target cell of a *target* list the integer
weight that makes its non-target shares those of a *reference* list (targets keep weight 1:
EER and minDCF normalise misses and false alarms separately, so only the non-targets' mix
matters). :class:`ComposedTrials` computes EER and minDCF of the weighted list under the
speaker bootstrap, exactly (integer weights; a pseudo speaker per (speaker, cell) carries the
speaker's draw count times the cell's weight), so the result has the same intervals as every
other figure (:class:`speechbrain_ext.compare.SplitComparison.replicates`).

The reweighted EER answers: "what would ood's EER be if its impostors were as varied as
eval's?". It is reported next to the raw EERs, never in their place.
"""

import csv

import numpy as np

from speechbrain_ext.bootstrap import SpeakerTrials
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.trial_scores import speakers_of_trials
from speechbrain_ext.trials import load_trials

__all__ = ["ComposedTrials", "CompositionError", "TrialComposition", "UnmatchedComposition", "read_attributes"]

#: The smallest non-zero cell weight: integer weights give every cell its reference share to within 2 %
#: (relative), while the bootstrap's weighted counts of a list of ~100,000 trials stay exact in float64.
MIN_WEIGHT = 25


class CompositionError(SpeechBrainExtError, ValueError):
    """Trial cells cannot be formed or matched; the message names the file, speaker, key or cell.

    Example
    -------
    >>> isinstance(CompositionError("speakers.csv: no column 'base'"), ValueError)
    True
    """


def read_attributes(path, keys, id_column="spk_id", delimiter=","):
    """``{speaker: (value of each key)}`` from a speaker table (SynthEmo's ``speakers.csv``).

    Any delimited table with a header works, e.g. VoxCeleb1's ``vox1_meta.csv``
    (``id_column="VoxCeleb1 ID"``, ``delimiter="\\t"``, keys ``Gender``, ``Nationality``).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "speakers.csv")
    >>> _ = open(p, "w").write("spk_id,gender,accent\\nA,f,en\\nB,m,en\\n")
    >>> read_attributes(p, ["accent", "gender"])
    {'A': ('en', 'f'), 'B': ('en', 'm')}
    >>> read_attributes(p, ["base"])
    Traceback (most recent call last):
    ...
    speechbrain_ext.trial_composition.CompositionError: ...speakers.csv: no column 'base' (columns: spk_id, ...)
    >>> _ = open(p, "w").write("VoxCeleb1 ID\\tGender\\nid10001\\tm\\n")
    >>> read_attributes(p, ["Gender"], id_column="VoxCeleb1 ID", delimiter="\\t")
    {'id10001': ('m',)}
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = reader.fieldnames or []
        for key in (id_column, *keys):
            if key not in columns:
                raise CompositionError(f"{path}: no column {key!r} (columns: {', '.join(columns)})")
        table = {}
        for line, row in enumerate(reader, start=2):
            for key in (id_column, *keys):
                if not (row.get(key) or "").strip():
                    raise CompositionError(f"{path}:{line}: empty {key!r} value")
            if row[id_column] in table:
                raise CompositionError(f"{path}:{line}: speaker {row[id_column]!r} listed twice")
            table[row[id_column]] = tuple(row[k] for k in keys)
        return table


class UnmatchedComposition(CompositionError):
    """The target list has no non-target pair of a kind the reference list has: no weights can match them.

    Example
    -------
    >>> issubclass(UnmatchedComposition, CompositionError)
    True
    """


class TrialComposition:
    """Which of ``keys`` the two speakers of each trial share.

    Arguments
    ---------
    cells : array-like of int
        Per trial: bit ``i`` set when the two speakers share ``keys[i]``.
    labels : array-like of int
        1 (target) / 0 (non-target) per trial.
    keys : sequence of str
        The attribute names, in bit order.
    name : str
        Named in error messages (e.g. the trial list's path).
    test_speakers : array-like of str or None
        The test speaker of each trial, when known (:meth:`from_files`): scores of other trials are refused.

    Example
    -------
    >>> c = TrialComposition([3, 1, 0, 0], [1, 0, 0, 0], ["accent", "gender"])
    >>> c.shares().tolist()  # non-targets: cell 0 (share nothing) twice, cell 1 (same accent) once
    [0.6666666666666666, 0.3333333333333333, 0.0, 0.0]
    >>> c.cell_name(1)
    'same accent, other gender'
    """

    def __init__(self, cells, labels, keys, name="trials", test_speakers=None):
        self.keys, self.name = tuple(keys), name
        self.test_speakers = None if test_speakers is None else np.asarray(test_speakers, dtype=str)
        self.cells = np.asarray(cells, dtype=np.int64)
        self.labels = np.asarray(labels).astype(np.int8)
        if not self.keys:
            raise CompositionError(f"{name}: no attribute key to form cells with")
        if self.cells.shape != self.labels.shape:
            raise CompositionError(f"{name}: {self.cells.size} cells for {self.labels.size} trials")
        if self.cells.size and (self.cells.min() < 0 or self.cells.max() >= self.n_cells):
            raise CompositionError(f"{name}: cells must lie in [0, {self.n_cells}) for {len(self.keys)} key(s)")

    @property
    def n_cells(self):
        """Number of cells: one per subset of shared keys."""
        return 1 << len(self.keys)

    def cell_name(self, cell):
        """The cell in words."""
        return ", ".join(f"{'same' if cell >> i & 1 else 'other'} {key}" for i, key in enumerate(self.keys))

    @classmethod
    def from_files(cls, trial_file, utt2spk, attributes, keys):
        """The composition of a ``<1|0> <enrol> <test>`` trial list.

        Arguments
        ---------
        trial_file : str
            The trial list.
        utt2spk : dict
            ``{utterance id: speaker}`` of every enrol and test utterance.
        attributes : dict
            ``{speaker: (value of each key)}`` (:func:`read_attributes`).
        keys : sequence of str
            The attribute names, in the order of the tuples of ``attributes``.

        Example
        -------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "all.txt")
        >>> _ = open(p, "w").write("1 a1 a2\\n0 a1 b1\\n0 a1 c1\\n")
        >>> spk = {"a1": "A", "a2": "A", "b1": "B", "c1": "C"}
        >>> attrs = {"A": ("en", "f"), "B": ("en", "m"), "C": ("us", "f")}
        >>> TrialComposition.from_files(p, spk, attrs, ["accent", "gender"]).cells.tolist()
        [3, 1, 2]
        """
        trials = load_trials(trial_file)
        enrol = speakers_of_trials(trials.enrol, utt2spk, trial_file)
        test = speakers_of_trials(trials.test, utt2spk, trial_file)
        speakers = np.unique(np.concatenate([enrol, test]))
        missing = [s for s in speakers.tolist() if s not in attributes]
        if missing:
            raise CompositionError(f"{trial_file}: speaker {missing[0]!r} has no attributes"
                                   f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
        table = np.array([attributes[s] for s in speakers.tolist()], dtype=object).reshape(len(speakers), len(keys))
        e, t = np.searchsorted(speakers, enrol), np.searchsorted(speakers, test)
        cells = np.zeros(len(trials), dtype=np.int64)
        for i in range(len(keys)):
            cells |= (table[e, i] == table[t, i]).astype(np.int64) << i
        return cls(cells, trials.labels, keys, trial_file, test)

    def shares(self):
        """Share of the non-target trials in each cell, ``[n_cells]``."""
        counts = np.bincount(self.cells[self.labels == 0], minlength=self.n_cells)
        return counts / max(int(counts.sum()), 1)

    def weights_to(self, reference, min_weight=MIN_WEIGHT):
        """Integer weight of each cell's non-targets that gives this list ``reference``'s non-target shares.

        A cell with non-targets in ``reference`` but none here cannot be matched (an error
        names it); a cell that ``reference`` lacks gets weight 0.

        Example
        -------
        >>> ref = TrialComposition([0, 0, 0, 1], [0, 0, 0, 0], ["accent"])  # 3/4 other accent
        >>> here = TrialComposition([0, 1], [0, 0], ["accent"])           # 1/2
        >>> w = here.weights_to(ref); w.tolist(), float(w[0] / (w[0] + w[1]))
        ([75, 25], 0.75)
        """
        if tuple(reference.keys) != self.keys:
            raise CompositionError(f"{self.name}: keys {self.keys} differ from {reference.name}'s {reference.keys}")
        want, have = reference.shares(), self.shares()
        lacking = np.flatnonzero((want > 0) & (have == 0))
        if lacking.size:
            raise UnmatchedComposition(
                f"{self.name}: no non-target trial with {self.cell_name(int(lacking[0]))}, which is "
                f"{100 * want[lacking[0]]:.2f} % of {reference.name}'s: the composition cannot be matched")
        ratio = np.divide(want, have, out=np.zeros_like(want), where=have > 0)
        return np.rint(ratio * (min_weight / ratio[ratio > 0].min())).astype(np.int64)


class ComposedTrials:
    """A scored trial list whose non-targets carry per-cell integer weights, for speaker-bootstrap draws.

    Arguments
    ---------
    scores, labels, test_speaker, n_speakers :
        As :class:`speechbrain_ext.bootstrap.SpeakerTrials`.
    composition : TrialComposition
        The cells of the same trials (same order, same labels: checked).
    weights : array-like of int
        ``[n_cells]`` non-target weights (:meth:`TrialComposition.weights_to`).
    name : str
        Named in error messages.
    speakers : sequence of str or None
        Names of the test speaker indices; checked against the composition's test speakers when both are known.

    Example
    -------
    >>> from speechbrain_ext.scoring import compute_eer
    >>> comp = TrialComposition([1, 0, 1, 1], [1, 0, 0, 0], ["accent"])
    >>> t = ComposedTrials([0.9, 0.1, 0.95, 0.2], [1, 0, 0, 0], [0, 0, 1, 1], 2, comp, [2, 1])
    >>> float(t.metrics([[1, 1]])["eer"][0]) == compute_eer([0.9], [0.1, 0.1, 0.95, 0.2])[0]  # cell 0 counted twice
    True
    >>> bool(np.isnan(t.metrics([[0, 2]])["eer"][0]))  # a draw of speaker 1 only has no target trial
    True
    """

    def __init__(self, scores, labels, test_speaker, n_speakers, composition, weights, name="trials", speakers=None):
        labels = np.asarray(labels).astype(np.int8)
        same = labels.shape == composition.labels.shape and np.array_equal(labels, composition.labels)
        if same and speakers is not None and composition.test_speakers is not None:
            same = np.array_equal(np.asarray(speakers, dtype=str)[np.asarray(test_speaker)], composition.test_speakers)
        if not same:
            raise CompositionError(f"{name}: the scores and {composition.name} are not the same trials "
                                   f"({labels.size} and {composition.labels.size} trials, or labels or test "
                                   "speakers differ)")
        weights = np.asarray(weights, dtype=np.int64)
        if weights.shape != (composition.n_cells,) or weights.min() < 0:
            raise CompositionError(f"{name}: need {composition.n_cells} non-negative cell weights, got {weights}")
        self.n_speakers, self.n_slots = int(n_speakers), composition.n_cells + 1
        # One pseudo speaker per (test speaker, cell); targets in their own slot with weight 1.
        slot = np.where(labels == 1, composition.n_cells, composition.cells)
        pseudo = np.asarray(test_speaker, dtype=np.int64) * self.n_slots + slot
        self._weights = np.append(weights, 1)
        self._trials = SpeakerTrials(scores, labels, pseudo, self.n_speakers * self.n_slots, name)

    def metrics(self, counts, p_targets=(0.01, 0.05), c_miss=1.0, c_fa=1.0):
        """EER and normalised minDCF of every draw (``counts``: ``[n_draws, n_speakers]``)."""
        counts = np.asarray(counts, dtype=np.int64)
        expanded = (counts[:, :, None] * self._weights[None, None, :]).reshape(len(counts), -1)
        return self._trials.metrics(expanded, p_targets, c_miss, c_fa)
