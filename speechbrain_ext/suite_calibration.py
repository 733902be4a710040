"""Suite report section ``calibration``: calibrated vs raw scores, quality vs plain calibration.

For every compared row and every split and headline condition of the suite, from the
per-trial LLRs of the runs' score files (:mod:`speechbrain_ext.trial_scores`, kinds
``calibrated``: the run's configured calibration, and ``plain``: the score-only one fitted
on the same trials, present when the configured one uses quality measures):

- with 95 % intervals (speaker bootstrap, two-level over seeds: the suite comparison's
  draws, :meth:`speechbrain_ext.compare.SplitComparison.replicates` with the Cllr and
  actual DCF of :mod:`speechbrain_ext.bootstrap_llr`): Cllr of the raw scores read as
  LLRs, of the configured calibration and of the plain one; actual DCF at the first prior
  of the configured calibration, minDCF of the same LLRs and the ratio actual / min per
  run (> 1: cost of miscalibration);
- min Cllr (PAV) of the configured LLRs: mean over seeds, without interval (a PAV per
  bootstrap draw is not vectorised);
- paired differences within each run (same speakers, same seeds; negative = lower cost):
  calibrated - raw Cllr, quality - plain Cllr, quality - plain actual DCF, with the verdict
  of :func:`speechbrain_ext.compare.verdict`.

Runs whose score files hold no LLRs (evaluated before they were saved) are listed with the
command that adds them (a finished run only re-evaluates); a row without any such run is
skipped with that note, never the whole report.
"""

import shlex

import numpy as np

from speechbrain_ext.bootstrap import SpeakerTrials
from speechbrain_ext.bootstrap_llr import SpeakerLLRs
from speechbrain_ext.calibration_metrics import min_cllr
from speechbrain_ext.compare import SplitComparison, load_run, verdict
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.suite import SuiteError
from speechbrain_ext.suite_report import Section, interval_cell

__all__ = ["CalibrationSection", "calibration_rows"]


def _llr_metrics(comparison, kind):
    """``replicates``' values: Cllr and actual DCF of ``kind`` LLRs (``raw``: the scores read as LLRs)."""
    def values(run, condition, counts):
        scores, labels, spk = run.conditions[condition]
        llr = scores if kind == "raw" else run.llr(kind, condition)
        name = f"{run.path}: condition {condition!r}: {kind} {'scores' if kind == 'raw' else 'LLRs'}"
        return SpeakerLLRs(llr, labels, spk, len(comparison.speakers), name).metrics(counts, comparison.p_targets)
    return values


def _llr_order_metrics(comparison):
    """``replicates``' values: minDCF of the configured calibration's LLRs (their order)."""
    def values(run, condition, counts):
        _, labels, spk = run.conditions[condition]
        trials = SpeakerTrials(run.llr("calibrated", condition), labels, spk, len(comparison.speakers),
                               f"{run.path}: condition {condition!r}: calibrated LLRs")
        return trials.metrics(counts, comparison.p_targets)
    return values


def _difference(comparison, system, a, b):
    low, high = comparison.system_interval(system, a[1] - b[1])
    return {"difference": float(np.mean(a[0] - b[0])), "low": low, "high": high, "half_width": (high - low) / 2,
            "verdict": verdict(low, high)}


def _ratio(numerator, denominator):
    """Per run and draw: actual / min DCF; NaN where minDCF is 0 (no ratio)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def calibration_rows(comparison, conditions=None):
    """The section's numbers: per condition and system, metrics with intervals and within-run differences.

    Arguments
    ---------
    comparison : speechbrain_ext.compare.SplitComparison
        Systems whose runs all hold ``calibrated`` LLRs; its first prior is the DCF's.
    conditions : sequence of str or None
        Conditions (or their aliases) shown; default: every condition of the comparison.

    Returns
    -------
    list of dict
        ``{"condition", "system", "n_runs", "plain", "metrics": {"raw_cllr", "cllr", "plain_cllr",
        "act_dcf", "min_dcf", "act_min_ratio": {"value", "low", "high"}, "min_cllr": {"value"}},
        "differences": {"calibrated_raw_cllr", "quality_plain_cllr", "quality_plain_act_dcf":
        {"difference", "low", "high", "half_width", "verdict"}}}``; the ``plain`` entries only when
        every run of the system holds plain LLRs.
    """
    p = comparison.p_targets[0]
    act, mindcf = f"act_dcf_p{p:g}", f"min_dcf_p{p:g}"
    kept = [c for c in comparison.conditions
            if conditions is None or {c, *comparison.aliases.get(c, [])} & set(conditions)]
    rows = []
    for cond in kept:
        for system, runs in comparison.systems.items():
            fetch = {kind: comparison.replicates(system, cond, _llr_metrics(comparison, kind), f"{kind} LLR")
                     for kind in ("raw", "calibrated", *(["plain"] if all("plain" in r.llr_kinds for r in runs)
                                                          else []))}
            order = comparison.replicates(system, cond, _llr_order_metrics(comparison), "calibrated order")
            pair = {kind: {k: (point[k], draws[k]) for k in point} for kind, (point, draws) in fetch.items()}
            metrics = {f"{'' if kind == 'calibrated' else kind + '_'}cllr": comparison.estimate(system, *v["cllr"])
                       for kind, v in pair.items()}
            cal, minimum = pair["calibrated"][act], (order[0][mindcf], order[1][mindcf])
            metrics["act_dcf"] = comparison.estimate(system, *cal)
            metrics["min_dcf"] = comparison.estimate(system, *minimum)
            metrics["act_min_ratio"] = comparison.estimate(system, _ratio(cal[0], minimum[0]),
                                                 _ratio(cal[1], minimum[1]))
            metrics["min_cllr"] = {"value": float(np.mean([min_cllr(r.llr("calibrated", cond), r.conditions[cond][1])
                                                           for r in runs]))}
            differences = {"calibrated_raw_cllr": _difference(comparison, system, pair["calibrated"]["cllr"],
                                                              pair["raw"]["cllr"])}
            if "plain" in pair:
                differences["quality_plain_cllr"] = _difference(comparison, system, pair["calibrated"]["cllr"],
                                                                pair["plain"]["cllr"])
                differences["quality_plain_act_dcf"] = _difference(comparison, system, cal, pair["plain"][act])
            rows.append({"condition": cond, "system": system, "n_runs": len(runs), "plain": "plain" in pair,
                         "metrics": metrics, "differences": differences})
    return rows


class CalibrationSection(Section):
    """Calibrated vs raw Cllr, quality vs plain calibration, actual vs minimum DCF (see the module notes).

    Arguments
    ---------
    splits : list of str or None
        The splits shown (default: every split of the suite).
    conditions : list of str or None
        The conditions shown (default: the suite's headline conditions).
    p_target : float
        Prior of the actual DCF and minDCF columns.

    Example
    -------
    >>> CalibrationSection(splits=["eval"]).p_target
    0.01
    """

    def __init__(self, splits=None, conditions=None, p_target=0.01):
        self.splits, self.conditions, self.p_target = splits, conditions, float(p_target)

    def _systems(self, ctx, split, missing):
        """``{row label: [TrialScores with LLRs]}``; runs without LLRs are added to ``missing``."""
        systems = {}
        for row in ctx.rows:
            runs = []
            for run in ctx.finished(row):
                scores = load_run(run.folder, split)
                if "calibrated" in scores.llr_kinds:
                    runs.append(scores)
                else:
                    missing.setdefault((row, run.seed), []).append(split)
            if runs:
                systems[row.label] = runs
        return systems

    def render(self, ctx):
        """The metrics table and the paired-difference table of every split, then the runs without LLRs."""
        p = f"{self.p_target:g}"
        lines = ["## Calibration: calibrated vs raw scores, quality vs plain calibration", "",
                 f"Cllr in bits (1 = uninformative), actual DCF at the Bayes threshold of p = {p} normalised like "
                 "minDCF, from each run's per-trial LLRs (`report/scores/<split>.npz`); value [95 % CI] over "
                 "speakers and seeds (the comparison's speaker draws). *Raw*: the scores read as LLRs; "
                 "*configured*: the run's calibration (`calibration.json`, with its quality measures); *plain*: "
                 "the score-only calibration fitted on the same trials (only when the configured one uses "
                 "quality measures). minDCF is that of the configured LLRs; min Cllr (PAV) is the mean over "
                 "seeds, without interval.", ""]
        missing = {}
        for split in self.splits or ctx.suite.splits:
            lines += self._split(ctx, split, missing)
        if missing:
            lines += self._missing(ctx, missing)
        return lines

    def _split(self, ctx, split, missing):
        systems = self._systems(ctx, split, missing)
        if not systems:
            return [f"### Split `{split}`", "", "No run holds LLRs on this split (see below).", ""]
        try:
            comparison = SplitComparison(systems, split, n_draws=ctx.suite.draws, seed=ctx.suite.bootstrap_seed,
                                         p_targets=(self.p_target,))
            rows = calibration_rows(comparison, self.conditions or ctx.suite.conditions)
        except SpeechBrainExtError as err:
            raise SuiteError(f"{ctx.suite.path}: calibration section, split {split!r}: {err}") from err
        p = f"{self.p_target:g}"
        lines = [f"### Split `{split}`", "",
                 f"| system | condition | runs | Cllr raw | Cllr configured | Cllr plain | min Cllr | actDCF({p}) "
                 f"| minDCF({p}) | actDCF / minDCF |", "|:---|:---|---:|" + "---:|" * 7]
        for r in rows:
            m = r["metrics"]
            cells = [self._cell(m, k) for k in ("raw_cllr", "cllr")]
            cells += [self._cell(m, "plain_cllr") if r["plain"] else "= configured (no quality measures)",
                      f"{m['min_cllr']['value']:.3f}", *(self._cell(m, k) for k in ("act_dcf", "min_dcf",
                                                                                     "act_min_ratio"))]
            lines.append(f"| {r['system']} | `{r['condition']}` | {r['n_runs']} | " + " | ".join(cells) + " |")
        lines += ["", "Paired differences within each run (same speakers, same seeds; negative = lower cost) "
                  "and verdict:", "",
                  f"| system | condition | ΔCllr configured − raw | ΔCllr quality − plain | ΔactDCF({p}) quality − "
                  "plain |", "|:---|:---|---:|---:|---:|"]
        for r in rows:
            d = r["differences"]
            cells = [self._cell(d, k, True) if k in d else "n/a (no quality measures)"
                     for k in ("calibrated_raw_cllr", "quality_plain_cllr", "quality_plain_act_dcf")]
            lines.append(f"| {r['system']} | `{r['condition']}` | " + " | ".join(cells) + " |")
        return lines + [""]

    @staticmethod
    def _cell(values, key, difference=False):
        v = values[key]
        if difference:
            return interval_cell(key, v["difference"], v["low"], v["high"], v["verdict"], signed=True)
        return interval_cell(key, v["value"], v["low"], v["high"])

    @staticmethod
    def _missing(ctx, missing):
        lines = ["Runs whose score files hold no per-trial LLRs (evaluated before they were saved), left out "
                 "above; re-running a run's recipe command adds them (a finished run only re-evaluates):", ""]
        for (row, seed), splits in missing.items():
            command = shlex.join(["python", *ctx.suite.run_command(row, seed)[1:]])
            lines.append(f"- {row.label}, seed {seed} ({', '.join(splits)}): `{command}`")
        skipped = [row.label for row in ctx.rows
                   if all((row, r.seed) in missing for r in ctx.finished(row))]
        if skipped:
            lines += ["", f"Rows skipped (no run with LLRs): {', '.join(skipped)}."]
        return lines + [""]
