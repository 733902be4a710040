"""Figures of a comparison of systems, from the files their runs wrote.

:func:`plot_systems_det`: one figure, one DET panel per split, a curve per system, all
systems on the same trials (read from each run's score file ``scores/<split>.npz``; runs
scored on other trial lists are refused, as :mod:`speechbrain_ext.compare` refuses them).
:class:`Det` is the suite report section that draws it (:mod:`speechbrain_ext.suite_report`).

Generic over recipes: a system is a label and one run (a run folder, its report folder
or a score file), e.g. the rows of ``make demo`` and the Resemblyzer anchor.
"""

import os

from speechbrain_ext.compare import ComparisonError, SplitComparison, load_run
from speechbrain_ext.metrics import compute_eer, split_by_label
from speechbrain_ext.report import plot_det
from speechbrain_ext.suite_report import ANCHOR_LABEL, Section

__all__ = ["Det", "plot_systems_det"]


def _curves(systems, split, condition):
    loaded = {label: load_run(run, split) for label, run in systems.items()}
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
    return curves, eers


def plot_systems_det(systems, splits, path, condition="all"):
    """Write one figure with a DET panel per split of ``condition``, a curve per system.

    Arguments
    ---------
    systems : dict
        ``{label: run}``: a run folder, report folder, score file or TrialScores per system
        (a TrialScores holds one split: give one split only then).
    splits : sequence of str
        The splits whose score files are read (``eval``, ``ood``...), one panel each.
    path : str
        The PNG to write.
    condition : str
        The trial condition drawn.

    Returns
    -------
    dict
        ``{split: {label: EER fraction}}`` of the curves drawn (also in the legends).

    Example
    -------
    >>> import tempfile, numpy as np
    >>> from speechbrain_ext.trial_scores import TrialScores
    >>> lab = np.array([1, 0, 0, 1], np.int8); spk = np.array([0, 0, 1, 1], np.int32)
    >>> run = lambda s: TrialScores("r", ("A", "B"), {"all": (np.array(s), lab, spk)})
    >>> p = os.path.join(tempfile.mkdtemp(), "det.png")
    >>> plot_systems_det({"a": run([.9, .1, .2, .8]), "b": run([.6, .7, .1, .9])}, ["eval"], p)
    {'eval': {'a': 0.0, 'b': 0.5}}
    """
    if not systems:
        raise ComparisonError("no system to plot")
    panels, out = [], {}
    for split in splits:
        curves, eers = _curves(systems, split, condition)
        panels.append((f"{split}, {condition} trials", curves, eers))
        out[split] = eers
    plot_det(panels, os.fspath(path))
    return out


class Det(Section):
    """Suite report section: one DET figure, a panel per split, a curve per system and the anchor.

    A row with several seeds is drawn with its first finished seed (the intervals of the
    tables cover every seed).

    Arguments
    ---------
    condition : str
        The trial condition drawn.
    splits : list of str or None
        The panels (default: every split of the suite).

    Example
    -------
    >>> Det(condition="neutral_emotional").condition
    'neutral_emotional'
    """

    def __init__(self, condition="all", splits=None):
        self.condition, self.splits = condition, splits

    def render(self, ctx):
        """The figure and its caption."""
        lines = [f"## DET curves: every system, `{self.condition}` trials", ""]
        systems = {row.label: ctx.finished(row)[0].folder for row in ctx.rows}
        if ctx.anchor_note.startswith(ANCHOR_LABEL):
            systems[ANCHOR_LABEL] = ctx.suite.anchor_folder
        splits = [s for s in (self.splits or ctx.suite.splits) if s in ctx.comparison.get("splits", {})]
        if not systems or not splits:
            return lines + ["No finished run.", ""]
        png = os.path.join(ctx.figure_dir, f"{ctx.stem}_det.png")
        plot_systems_det(systems, splits, png, self.condition)
        seeds = {row.label: ctx.finished(row)[0].seed for row in ctx.rows}
        return lines + [f"![DET curves, {', '.join(splits)}]({os.path.basename(png)})", "",
                        f"Panels: {', '.join(f'`{s}`' for s in splits)}, all systems on the same trials; the legend "
                        "gives each curve's EER (the dot on the diagonal). Seed drawn per system: "
                        + ", ".join(f"{k} {v}" for k, v in seeds.items()) + ".", ""]
