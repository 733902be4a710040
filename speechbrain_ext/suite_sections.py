"""Built-in report sections of a suite (``sections: [emotion_gap, projection, balancer, calibration]``).

- ``emotion_gap``: EER per test emotion (neutral enrolment; conditions ``test_<emotion>``,
  neutral test = ``neutral_neutral``) of every system, per split: the figure of
  :func:`speechbrain_ext.emotion_report.plot_emotion_gap` (mean ± std over seeds) and the
  table with 95 % intervals and paired differences from the suite's comparison;
- ``projection``: 2-D PCA of the evaluation embeddings of two rows at one seed
  (:func:`speechbrain_ext.emotion_report.plot_projection`);
- ``balancer``: loss balancing and class-aware attention statistics of the training log
  (MGDA's α, the CAA weights' spread, the last epoch's loss terms);
- ``calibration``: calibrated vs raw Cllr, quality vs plain calibration, actual vs minimum
  DCF, with intervals and within-run paired differences
  (:class:`speechbrain_ext.suite_calibration.CalibrationSection`);
- ``composition``: a target split's EER (ood) at a reference split's mix of impostors (eval):
  how much of the gap between the two is the trial lists' composition, not the model
  (:class:`speechbrain_ext.suite_composition.CompositionSection`);
- ``rescore``: the finished runs scored after training on other trial lists (other recipe
  settings, e.g. SynthEmo with stronger emotions), with intervals and paired differences
  (:class:`speechbrain_ext.suite_rescore.RescoreSection`).

A suite's own sections subclass :class:`speechbrain_ext.suite_report.Section` in a file next
to the suite (``sections: [my_sections.py:MySection]``).
"""

import os

from speechbrain_ext import report
from speechbrain_ext.suite_calibration import CalibrationSection
from speechbrain_ext.suite_composition import CompositionSection
from speechbrain_ext.suite_report import ANCHOR_LABEL, Section, fmt, interval_cell, mean_std
from speechbrain_ext.suite_rescore import RescoreSection

__all__ = ["SECTIONS", "Balancer", "CalibrationSection", "CompositionSection", "EmotionGap", "Projection",
           "RescoreSection"]


def _emotion_condition(emotion):
    from speechbrain_ext import emotion_report

    return emotion_report.NEUTRAL_CONDITION if emotion == emotion_report.NEUTRAL else f"test_{emotion}"


class EmotionGap(Section):
    """EER per test emotion: one figure and one table per split (see the module notes).

    Arguments
    ---------
    splits : list of str or None
        The splits shown (default: every split of the suite).

    Example
    -------
    >>> EmotionGap(splits=["eval"]).splits
    ['eval']
    """

    def __init__(self, splits=None):
        self.splits = splits

    def _metrics(self, ctx):
        systems = {row.label: [r.metrics for r in ctx.finished(row)] for row in ctx.rows}
        if ctx.anchor_note.startswith(ANCHOR_LABEL):
            systems[ANCHOR_LABEL] = [report.read_metrics(ctx.suite.anchor_folder)]
        return systems

    def render(self, ctx):
        """Figure, intervals and paired differences per split."""
        from speechbrain_ext import emotion_report

        lines = ["## Emotion gap: EER per test emotion (neutral enrolment)", ""]
        systems = self._metrics(ctx)
        splits = [s for s in (self.splits or ctx.suite.splits) if s in ctx.comparison.get("splits", {})]
        if not systems or not splits:
            return lines + ["No finished run.", ""]
        reference = ctx.comparison["settings"]["reference"]
        for split in splits:
            png = os.path.join(ctx.figure_dir, f"{ctx.stem}_gap_{split}.png")
            table = emotion_report.plot_emotion_gap(systems, png, title=f"EER per test emotion ({split})", split=split)
            emotions = emotion_report.emotion_order({e for t in table.values() for e in t})
            header = " | ".join(emotions)
            lines += [f"### Split `{split}`", "", f"![EER per test emotion, {split}]({os.path.basename(png)})", "",
                      "The figure: mean ± std over seeds. The table: EER (%) [95 % CI] over speakers and seeds "
                      "(neutral = `neutral_neutral`, the others `test_<emotion>`).", "",
                      f"| system | {header} |", "|:---|" + "---:|" * len(emotions)]
            for system in systems:
                cells = []
                for emotion in emotions:
                    row = ctx.summary(split, _emotion_condition(emotion), system)
                    m = row["metrics"]["eer"] if row else None
                    cells.append(interval_cell("eer", m["value"], m["low"], m["high"]) if m else "n/a")
                lines.append(f"| {system} | " + " | ".join(cells) + " |")
            if reference:
                lines += ["", f"Paired ΔEER (points) vs {reference} per test emotion:", "",
                          f"| system | {header} |", "|:---|" + "---:|" * len(emotions)]
                for system in [s for s in systems if s != reference]:
                    cells = []
                    for emotion in emotions:
                        d = ctx.difference(split, _emotion_condition(emotion), system)
                        m = d["metrics"]["eer"] if d else None
                        cells.append(interval_cell("eer", m["difference"], m["low"], m["high"], m["verdict"], True)
                                     if m else "n/a")
                    lines.append(f"| {system} | " + " | ".join(cells) + " |")
            lines.append("")
        return lines


class Projection(Section):
    """2-D PCA of the evaluation embeddings of two rows ("before / after") at the first seed both finished.

    Arguments
    ---------
    rows : list of str or None
        Row names (default: the reference and the last compared row).
    manifest : str
        The split's manifest (speaker and emotion of every utterance), relative to the runs folder.
    split : str
        Whose cached embeddings are projected.

    Example
    -------
    >>> Projection().manifest
    'manifests/eval.csv'
    """

    def __init__(self, rows=None, manifest="manifests/eval.csv", split="eval"):
        self.rows, self.manifest, self.split = rows, manifest, split

    def render(self, ctx):
        """The figure and the emotion shift of each panel."""
        from speechbrain_ext import emotion_report

        names = self.rows or list(dict.fromkeys([ctx.suite.reference, ctx.suite.compared[-1].name]))
        rows = [r for r in ctx.suite.rows if r.name in names]
        manifest = os.path.join(ctx.suite.runs, self.manifest)
        seed = next((s for s in ctx.suite.seeds if all(ctx.runs[(r.name, s)].metrics for r in rows)), None)
        lines = ["## Embeddings before / after", ""]
        if not rows or seed is None or not os.path.isfile(manifest):
            return lines + [f"Not drawn: no seed where {', '.join(names)} all finished, or no {manifest}.", ""]
        png = os.path.join(ctx.figure_dir, f"{ctx.stem}_projection.png")
        folders = {f"{r.label}, seed {seed}": ctx.runs[(r.name, seed)].folder for r in rows}
        info = emotion_report.plot_projection(folders, manifest, png)
        shifts = ", ".join(f"{name}: {v['emotion_shift']:.3f}" for name, v in info.items())
        return lines + [f"![2-D PCA of the {self.split} embeddings]({os.path.basename(png)})", "",
                        f"2-D PCA (exact SVD) of the L2-normalised `{self.split}` embeddings of one seed; colour: "
                        f"speaker, marker: emotion. Emotion shift (mean 1 − cos between a speaker's emotional and "
                        f"neutral centroids; lower is more emotion-invariant): {shifts}.", ""]


class Balancer(Section):
    """MGDA's α, the CAA weights and the last epoch's loss terms of every row (training log).

    Example
    -------
    >>> Balancer().render.__doc__.split(".")[0]
    'The table (means over epochs and seeds; losses of the last epoch)'
    """

    def render(self, ctx):
        """The table (means over epochs and seeds; losses of the last epoch)."""
        lines = ["## Loss balancing and class-aware attention (training log)", "",
                 "| system | MGDA α, mean | α, range over steps | α, last epoch | CAA weight on negatives, std "
                 "| anchors with a positive | last-epoch AAM loss | last-epoch contrastive loss |",
                 "|:---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in ctx.rows:
            alpha = ctx.log_values(row, "train", "alpha")
            lows, highs = ctx.log_values(row, "train", "alpha_min"), ctx.log_values(row, "train", "alpha_max")
            span = f"{min(lows):.3f} – {max(highs):.3f}" if lows and highs else "—"
            caa = ctx.log_values(row, "train", "caa_weight_std")
            pos = ctx.log_values(row, "train", "anchors_with_positives")
            last = {k: ctx.log_values(row, "train", k, last_only=True) for k in ("alpha", "aam", "contrastive")}
            lines.append(
                f"| {row.label} | {fmt(*mean_std(alpha), 3) if alpha else '— (fixed weights)'} | {span} "
                f"| {fmt(*mean_std(last['alpha']), 3) if alpha else '—'} | {fmt(*mean_std(caa), 3) if caa else '—'} "
                f"| {fmt(*mean_std(pos), 3) if pos else '—'} | {fmt(*mean_std(last['aam']))} "
                f"| {fmt(*mean_std(last['contrastive']))} |")
        return lines + ["", "α multiplies the AAM-softmax loss and 1 − α the contrastive term (MGDA-UB over the "
                        "batch embeddings): near 0 the contrastive gradient dominates, near 1 the AAM one; "
                        "fixed-weight rows add both with weight 1. The CAA column is the spread of the attention "
                        "weights on negative pairs within a step (each anchor's weights average 1, so 0 means CAA "
                        "changes nothing). Training-log statistics, mean ± std over epochs and seeds: not "
                        "evaluation metrics.",
                        ""]


#: The built-in sections by the name a suite file uses.
SECTIONS = {"emotion_gap": EmotionGap, "projection": Projection, "balancer": Balancer,
            "calibration": CalibrationSection, "composition": CompositionSection, "rescore": RescoreSection}
