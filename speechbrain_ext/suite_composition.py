"""Suite report section ``composition``: a target split's EER at a reference split's mix of impostors.

For every compared row (and the anchor), on one condition: the reference split's EER (e.g.
in-generator ``eval``), the target split's (``ood``), the target split's EER with its non-target
trials reweighted to the reference's shares of same-attribute pairs
(:mod:`speechbrain_ext.trial_composition`), and the ratios target / reference, raw and matched.
Every figure has its 95 % interval from the suite's bootstrap settings (speakers and seeds; the
ratios pair each run's two splits by seed).

Options (suite file ``{section: composition, ...}``; paths relative to the runs folder):
``reference`` and ``target`` (splits), ``keys`` (columns of ``attributes``, the speaker table),
``id_column`` and ``delimiter`` of that table (VoxCeleb1's ``vox1_meta.csv``: ``"VoxCeleb1 ID"``, a tab),
``condition``, ``manifest`` and ``trials`` (``{split}`` / ``{condition}`` templates of the
utterance manifest and the trial list the scores were computed on). When the target split has no
non-target pair of a kind the reference has (a small corpus), the section says so instead of a table.
"""

import os

import numpy as np

from speechbrain_ext.bootstrap import percentile_interval
from speechbrain_ext.compare import SplitComparison, verdict
from speechbrain_ext.emotion_report import read_labels
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.suite import SuiteError
from speechbrain_ext.suite_report import ANCHOR_LABEL, Section, interval_cell
from speechbrain_ext.trial_composition import ComposedTrials, TrialComposition, UnmatchedComposition, read_attributes

__all__ = ["CompositionSection"]


def _ratio_draws(cmp, system, draws, ref_draws, paired_with=None):
    """Per draw, target / reference EER of the same resampled runs (seeds paired across the two splits)."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a draw with EER 0: no ratio
        ratio = (cmp.resampled_means(system, draws, paired_with)
                 / cmp.resampled_means(system, ref_draws, paired_with))
    return np.where(np.isfinite(ratio), ratio, np.nan)


def _ratio_differences(cmp, system, reference, per_run):
    """``{raw|matched: {difference, low, high, verdict, paired}}``: system's ratio - the reference's, draw by draw.

    The same speaker draws for both systems on each split; runs paired by seed when the two
    have the same seeds (as :meth:`SplitComparison.difference`), else resampled independently.
    """
    out = {}
    for name in ("raw", "matched"):
        (value, draws, ref_draws), (ref_value, r_draws, r_ref_draws) = per_run[system][name], per_run[reference][name]
        diff = (_ratio_draws(cmp, system, draws, ref_draws, paired_with=reference)
                - _ratio_draws(cmp, reference, r_draws, r_ref_draws, paired_with=system))
        low, high = percentile_interval(diff, cmp.level)
        out[name] = {"difference": float(value - ref_value), "low": low, "high": high, "verdict": verdict(low, high),
                     "paired": cmp.paired_seeds(system, reference)}
    return out


class CompositionSection(Section):
    """The target split's EER at the reference split's composition of non-target pairs (see the module notes).

    Example
    -------
    >>> CompositionSection().keys
    ('base', 'accent', 'gender')
    """

    def __init__(self, reference="eval", target="ood", keys=("base", "accent", "gender"), condition="all",
                 attributes="manifests/speakers.csv", id_column="spk_id", delimiter=",",
                 manifest="manifests/{split}.csv", trials="manifests/trials/{split}/{condition}.txt"):
        self.reference, self.target, self.keys, self.condition = reference, target, tuple(keys), condition
        self.attributes, self.id_column, self.delimiter = attributes, id_column, delimiter
        self.manifest, self.trials = manifest, trials

    def _path(self, ctx, template, split):
        return os.path.join(ctx.suite.runs, template.format(split=split, condition=self.condition))

    def _composition(self, ctx, split, attributes):
        utt2spk = {u: v[0] for u, v in read_labels(self._path(ctx, self.manifest, split), ("spk_id",)).items()}
        return TrialComposition.from_files(self._path(ctx, self.trials, split), utt2spk, attributes, self.keys)

    def numbers(self, ctx):
        """``(shares, rows)``: non-target shares per cell of both splits, and per system its figures."""
        systems = {row.label: [r.folder for r in ctx.finished(row)] for row in ctx.rows}
        if ctx.anchor_note.startswith(ANCHOR_LABEL):
            systems[ANCHOR_LABEL] = [ctx.suite.anchor_folder]
        attributes = read_attributes(os.path.join(ctx.suite.runs, self.attributes), self.keys, self.id_column,
                                     self.delimiter)
        ref_comp, tgt_comp = (self._composition(ctx, s, attributes) for s in (self.reference, self.target))
        weights = tgt_comp.weights_to(ref_comp)
        options = dict(n_draws=ctx.suite.draws, seed=ctx.suite.bootstrap_seed, conditions=[self.condition])
        ref_cmp, tgt_cmp = (SplitComparison(systems, s, **options) for s in (self.reference, self.target))

        def matched(run, condition, counts):
            scores, labels, spk = run.conditions[condition]
            trials = ComposedTrials(scores, labels, spk, len(tgt_cmp.speakers), tgt_comp, weights,
                                    f"{run.path}: {self.target} condition {condition!r}", tgt_cmp.speakers)
            return trials.metrics(counts, tgt_cmp.p_targets)

        per_run, rows = {}, []
        for system in systems:
            ref_point, ref_draws = (v["eer"] for v in ref_cmp.replicates(system, self.condition))
            row = {"system": system, "n_runs": len(systems[system]),
                   "reference": ref_cmp.estimate(system, ref_point, ref_draws)}
            per_run[system] = {}
            for name, values in (("raw", tgt_cmp.replicates(system, self.condition)),
                                 ("matched", tgt_cmp.replicates(system, self.condition, matched, "composition"))):
                point, draws = (v["eer"] for v in values)
                row[name] = tgt_cmp.estimate(system, point, draws)
                ratio = float(point.mean() / ref_point.mean())
                per_run[system][name] = (ratio, draws, ref_draws)
                low, high = percentile_interval(_ratio_draws(tgt_cmp, system, draws, ref_draws), tgt_cmp.level)
                row[f"{name}_ratio"] = {"value": ratio, "low": low, "high": high}
            rows.append(row)
        reference = ctx.suite.row(ctx.suite.reference).label
        if reference in per_run:
            for row in rows:
                if row["system"] != reference:
                    row["ratio_difference"] = _ratio_differences(tgt_cmp, row["system"], reference, per_run)
        return {"reference": ref_comp.shares().tolist(), "target": tgt_comp.shares().tolist(),
                "cells": [ref_comp.cell_name(c) for c in range(ref_comp.n_cells)]}, rows

    def render(self, ctx):
        """The shares of both splits, then one row per system."""
        ref, tgt = f"`{self.reference}`", f"`{self.target}`"
        lines = [f"## {tgt} at {ref}'s mix of impostors", ""]
        try:
            shares, rows = self.numbers(ctx)
        except UnmatchedComposition as err:  # e.g. a small corpus without some kind of pair: said, not fatal
            return lines + [f"Not computed: {err}.", ""]
        except (OSError, SpeechBrainExtError, ValueError) as err:
            raise SuiteError(f"{ctx.suite.path}: section composition: {err}") from err
        lines += [f"Non-target trials of condition `{self.condition}` by the speaker attributes their two sides "
                  f"share (`{self.attributes}`):", "", f"| pair of speakers | {ref} | {tgt} |", "|:---|---:|---:|"]
        lines += [f"| {name} | {100 * a:.1f} % | {100 * b:.1f} % |"
                  for name, a, b in zip(shares["cells"], shares["reference"], shares["target"])]
        lines += ["", f"EER (%) [95 % CI]; *matched*: {tgt}'s EER with its non-target trials weighted so that these "
                  f"shares are {ref}'s (`speechbrain_ext.trial_composition`); ratios {tgt} / {ref} per draw, the "
                  "runs paired by seed across the two splits.", "",
                  f"| system | runs | {ref} | {tgt} | {tgt} matched | ratio | ratio matched |",
                  "|:---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            eers = [interval_cell("eer", r[k]["value"], r[k]["low"], r[k]["high"])
                    for k in ("reference", "raw", "matched")]
            ratios = [f"{r[k]['value']:.2f} [{r[k]['low']:.2f}, {r[k]['high']:.2f}]" for k in ("raw_ratio",
                                                                                              "matched_ratio")]
            lines.append(f"| {r['system']} | {r['n_runs']} | " + " | ".join(eers + ratios) + " |")
        lines += ["", f"What the matched column removes is the part of {tgt}'s extra error that comes from "
                  f"its impostors sharing attributes more often than {ref}'s; what remains is the model's "
                  "own gap on held-out material. Both are shown; neither replaces the raw EER.", ""]
        compared = [r for r in rows if "ratio_difference" in r]
        if compared:
            reference = ctx.suite.row(ctx.suite.reference).label
            lines += [f"Does a system narrow the gap? Its ratio minus {reference}'s, per draw (same speaker draws; "
                      "runs paired by seed where both have the same seeds): negative is a narrower gap, "
                      "**better** / **worse** only when the interval excludes 0.", "",
                      "| system | pairing | ratio − reference's | ratio matched − reference's |",
                      "|:---|:---|---:|---:|"]
            for r in compared:
                d = r["ratio_difference"]
                cells = [interval_cell("ratio", d[k]["difference"], d[k]["low"], d[k]["high"], d[k]["verdict"],
                                       signed=True) for k in ("raw", "matched")]
                pairing = "paired by seed" if d["raw"]["paired"] else "unpaired"
                lines.append(f"| {r['system']} | {pairing} | " + " | ".join(cells) + " |")
            lines.append("")
        return lines
