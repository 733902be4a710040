"""Figures of a comparison of systems, from the files their runs wrote.

- :func:`plot_systems_det`: one DET plot per split with a curve per system, all on the
  same trials (read from each run's score file ``scores/<split>.npz``; runs scored on
  other trial lists are refused, as :mod:`speechbrain_ext.compare` refuses them);
- :func:`plot_systems_emotion_gap`: EER per test emotion, one line per system
  (:func:`speechbrain_ext.emotion_report.plot_emotion_gap` on each run's ``metrics.json``).

Generic over recipes: a system is a label and one run (a run folder or its report
folder), e.g. the rows of ``make demo`` and the Resemblyzer anchor.
"""

import os

from speechbrain_ext.compare import ComparisonError, SplitComparison, load_run
from speechbrain_ext.metrics import compute_eer, split_by_label
from speechbrain_ext.report import plot_det

__all__ = ["plot_systems_det", "plot_systems_emotion_gap", "report_folder"]


def report_folder(run):
    """The folder holding a run's ``metrics.json``: the run itself or its ``report/`` subfolder.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.mkdir(os.path.join(d, "report"))
    >>> _ = open(os.path.join(d, "report", "metrics.json"), "w").write("{}")
    >>> report_folder(d) == os.path.join(d, "report")
    True
    """
    run = os.fspath(run)
    nested = os.path.join(run, "report")
    return nested if os.path.isfile(os.path.join(nested, "metrics.json")) else run


def plot_systems_det(systems, split, path, condition="all", title=None):
    """Write one DET plot of ``condition`` of ``split`` with a curve per system.

    Arguments
    ---------
    systems : dict
        ``{label: run}``: a run folder, report folder, score file or TrialScores.
    split : str
        The split whose score files are read (``eval``, ``ood``...).
    path : str
        The PNG to write.
    condition : str
        The trial condition drawn.
    title : str or None
        Default: ``"<split>, <condition> trials"``.

    Returns
    -------
    dict
        ``{label: EER fraction}`` of the curves drawn (also shown in the legend).

    Example
    -------
    >>> import tempfile, numpy as np
    >>> from speechbrain_ext.trial_scores import TrialScores
    >>> lab = np.array([1, 0, 0, 1], np.int8); spk = np.array([0, 0, 1, 1], np.int32)
    >>> run = lambda s: TrialScores("r", ("A", "B"), {"all": (np.array(s), lab, spk)})
    >>> p = os.path.join(tempfile.mkdtemp(), "det.png")
    >>> plot_systems_det({"a": run([.9, .1, .2, .8]), "b": run([.6, .7, .1, .9])}, "eval", p)
    {'a': 0.0, 'b': 0.5}
    """
    loaded = {label: load_run(run, split) for label, run in systems.items()}
    if not loaded:
        raise ComparisonError("no system to plot")
    first = next(iter(loaded.values()))
    curves, eers = {}, {}
    for label, scores in loaded.items():
        if condition not in scores.conditions:
            raise ComparisonError(f"{scores.path}: no condition {condition!r} in split {split!r} "
                                  f"(has: {', '.join(scores.conditions)})")
        SplitComparison.check_same_trials(first, scores, condition, context=f"DET of split {split!r}")
        values, labels, _ = scores.conditions[condition]
        curves[label] = (values, labels)
        eers[label] = float(compute_eer(*split_by_label(condition, values, labels))[0])
    plot_det(curves, path, title or f"{split}, {condition} trials", eers=eers)
    return eers


def plot_systems_emotion_gap(systems, path, split=None, title=None):
    """Write the emotion-gap figure (EER per test emotion, neutral enrolment), one line per system.

    Arguments
    ---------
    systems : dict
        ``{label: run}``: a run folder or report folder holding ``metrics.json``.
    path : str
        The PNG to write.
    split : str or None
        The split (default: each report's first).
    title : str or None
        Figure title.

    Returns
    -------
    dict
        The plotted table (:func:`speechbrain_ext.emotion_report.emotion_gap_table`).

    Example
    -------
    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "metrics.json"), "w").write(json.dumps(
    ...     {"conditions": {"neutral_neutral": {"eer": 0.1}, "test_sad": {"eer": 0.2}}}))
    >>> table = plot_systems_emotion_gap({"a": d}, os.path.join(d, "gap.png"))
    >>> table["a"]["sad"]
    (20.0, 0.0, 1)
    """
    from speechbrain_ext.emotion_report import plot_emotion_gap  # matplotlib: imported when drawing

    runs = {label: [os.path.join(report_folder(run), "metrics.json")] for label, run in systems.items()}
    title = title or f"EER per test emotion (neutral enrolment){'' if split is None else f', {split}'}"
    return plot_emotion_gap(runs, path, title=title, split=split)
