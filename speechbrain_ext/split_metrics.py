"""The metrics of one run's evaluation splits: EER / minDCF, speaker-bootstrap intervals, calibration.

For every split and condition (:func:`split_results`):

- ``eer``, ``min_dcf`` (p_target 0.01), ``min_dcf_p0.05`` and thresholds
  (:func:`speechbrain_ext.scoring.evaluate_conditions` at :data:`P_TARGETS`);
- ``eer_ci``, ``min_dcf_ci``, ``min_dcf_p0.05_ci``: 95 % percentile intervals of a
  bootstrap over the test speakers (``methods.md``, Uncertainty), computed by
  :class:`speechbrain_ext.compare.SplitComparison` on the score file just written, so a
  later comparison of runs reads the same numbers; conditions whose trials are
  identical (a list written twice under two names) are listed in ``aliases``;
- with calibration splits: a linear calibration (:mod:`speechbrain_ext.calibration`,
  quality measures of :mod:`speechbrain_ext.quality`) is fitted once on their trials,
  pooled, and applied to every condition, which gains ``cllr``, ``min_cllr``,
  ``act_dcf@0.01``, ``act_dcf@0.05`` of the calibrated LLRs, ``llr_eer`` and
  ``llr_min_dcf@<p>`` of the LLRs (equal to the raw ones unless quality measures
  reorder the trials), and ``raw_cllr``, ``raw_min_cllr``, ``raw_act_dcf@<p>``: the raw
  scores read as if they were LLRs, for contrast. When the calibration uses quality
  measures, the plain (score-only) calibration is fitted on the same trials as well and
  every condition gains ``plain_cllr`` and ``plain_act_dcf@<p>`` of its LLRs (quality vs
  plain); the score files hold both calibrations' LLRs per trial
  (:mod:`speechbrain_ext.trial_scores`, kinds ``calibrated`` and ``plain``). A calibration that cannot be fitted
  (too few calibration trials, one class only...) is skipped with a warning: the other
  metrics are reported and ``calibration_info["error"]`` names the cause.
"""

import logging
from dataclasses import dataclass

import numpy as np

from speechbrain_ext import quality as sx_quality
from speechbrain_ext import scoring
from speechbrain_ext.calibration import fit_calibration
from speechbrain_ext.calibration_metrics import CalibrationError, actual_dcf, calibration_report, cllr
from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.metrics import compute_eer, split_by_label

__all__ = ["P_TARGETS", "SplitResults", "check_calibration", "speaker_intervals", "split_results"]

logger = logging.getLogger(__name__)

#: Priors of every minDCF and actual DCF of a report.
P_TARGETS = (0.01, 0.05)
#: Coverage of the intervals.
LEVEL = 0.95


@dataclass
class SplitResults:
    """What :func:`split_results` returns.

    Attributes
    ----------
    metrics : dict
        ``{split: {condition: {metric: value}}}``.
    aliases : dict
        ``{split: {condition kept: [identical conditions]}}``.
    calibration : speechbrain_ext.calibration.Calibration or None
    calibration_info : dict or None
        What the calibration was fitted on (for ``metrics.json``), or ``{"split", "error"}``
        when it could not be fitted.
    """

    metrics: dict
    aliases: dict
    calibration: object = None
    calibration_info: dict = None


def check_calibration(quality, p_target, as_norm):
    """Refuse calibration settings that cannot work, before training; returns the measure names.

    Example
    -------
    >>> check_calibration("duration_norm", 0.5, as_norm=False)
    ('log_dur_min', 'log_dur_max', 'norm_min', 'norm_max')
    >>> check_calibration("qmf", 0.5, as_norm=False)
    Traceback (most recent call last):
    ...
    speechbrain_ext.calibration_metrics.CalibrationError: calibration_quality 'qmf' needs the cohort means ...
    """
    names = sx_quality.measure_names(quality)
    if "cohort_mean" in sx_quality.required_metadata(names) and not as_norm:
        raise CalibrationError(
            f"calibration_quality {quality!r} needs the cohort means of AS-norm: set score_norm: as-norm, "
            "or choose measures without cohort_mean (e.g. duration_norm)"
        )
    if not 0.0 < float(p_target) < 1.0:
        raise CalibrationError(f"calibration_p_target must be in (0, 1), got {p_target}")
    return names


def _finite(value):
    """A float, or None where no draw had a value (JSON has no NaN)."""
    return float(value) if np.isfinite(value) else None


def _interval_key(key, p_targets):
    """Bootstrap metric key -> metrics.json interval key (the first prior's minDCF is ``min_dcf``)."""
    if key == f"min_dcf_p{p_targets[0]:g}":
        return "min_dcf_ci"
    return f"{key}_ci"


def speaker_intervals(scores, split, n_draws=1000, seed=0, p_targets=P_TARGETS):
    """Speaker-bootstrap intervals of every condition of one run's split.

    Arguments
    ---------
    scores : speechbrain_ext.trial_scores.TrialScores
        The split's per-trial scores.
    split : str
        Its name (keys the draws).
    n_draws : int
        Bootstrap draws.
    seed : int
        Seed of the draws.
    p_targets : sequence of float
        Priors of the minDCF values.

    Returns
    -------
    intervals : dict
        ``{condition: {"eer_ci": [low, high], "min_dcf_ci": [...], "min_dcf_p0.05_ci": [...], "n_speakers"}}``.
    aliases : dict
        ``{condition kept: [conditions with identical trials and scores]}``.

    Example
    -------
    >>> from speechbrain_ext.trial_scores import TrialScores
    >>> lab = np.array([1, 0] * 4, np.int8); spk = np.repeat(np.arange(4), 2).astype(np.int32)
    >>> trials = (np.array([.9, .1] * 4), lab, spk)
    >>> ts = TrialScores("r", tuple("ABCD"), {"all": trials, "copy": trials})
    >>> cis, aliases = speaker_intervals(ts, "eval", n_draws=50)
    >>> cis["copy"]["eer_ci"], cis["all"]["n_speakers"], aliases
    ([0.0, 0.0], 4, {'all': ['copy']})
    """
    comparison = SplitComparison({"run": [scores]}, split, n_draws=n_draws, seed=seed, p_targets=p_targets,
                                 level=LEVEL)
    out = {}
    for row in comparison.summary():
        n_speakers = int(np.unique(scores.conditions[row["condition"]][2]).size)
        cis = {_interval_key(k, p_targets): [_finite(m["low"]), _finite(m["high"])] for k, m in row["metrics"].items()}
        for cond in [row["condition"], *row["aliases"]]:
            out[cond] = {**cis, "n_speakers": n_speakers}
    return out, comparison.aliases


def _flat_calibration(report):
    out = {}
    for key, value in report["calibrated"].items():
        out[key if key in ("cllr", "min_cllr") or key.startswith("act_dcf") else f"llr_{key}"] = value
    for key in ("cllr", "min_cllr", *(k for k in report["raw"] if k.startswith("act_dcf"))):
        out[f"raw_{key}"] = report["raw"][key]
    return out


def _calibration_set(scored, condition, names):
    scores, _ = scored.scores[condition]
    return sx_quality.calibration_set(scored.trials[condition], scores, scored.ids, scored.utterance_metadata(),
                                      names, scored.enrol_map)


def _joined(names):
    """``valid+ood_valid``: each name once, in order (``all`` for two lists both called ``all``)."""
    return "+".join(dict.fromkeys(names))


def _pooled(calibration_splits, names):
    """The calibration trials of every split, one list after the other."""
    parts = [_calibration_set(split, next(iter(split.scores)), names) for split in calibration_splits]
    return sx_quality.CalibrationSet(np.concatenate([p.scores for p in parts]),
                                     np.concatenate([p.labels for p in parts]),
                                     {k: np.concatenate([p.quality[k] for p in parts]) for k in parts[0].quality})


def _plain(fit_on, p_target, score_kind):
    """The score-only calibration on the same trials (contrast of a quality calibration), or None if it fails."""
    try:
        return fit_calibration(fit_on.scores, fit_on.labels, None, (), p_target, score_kind=score_kind)
    except CalibrationError as err:
        logger.warning("no plain (score-only) calibration for contrast: %s", err)
        return None


def _plain_metrics(llr, labels):
    out = {"plain_cllr": cllr(llr, labels)}
    out.update({f"plain_act_dcf@{p:g}": actual_dcf(llr, labels, p) for p in P_TARGETS})
    return out


def calibrate_splits(calibration_splits, splits, quality, p_target, score_kind):
    """Fit a calibration on the pooled trials of ``calibration_splits``; calibration metrics of every split.

    When the calibration uses quality measures, the plain (score-only) calibration is
    fitted on the same trials too and its ``plain_*`` metrics are reported beside; the
    returned calibration (``calibration.json``) is always the configured one.

    Arguments
    ---------
    calibration_splits : list of speechbrain_ext.evaluation.ScoredSplit
        Each scored on one condition: their trials, pooled, are the calibration trials.
    splits : dict
        ``{name: ScoredSplit}`` to calibrate.
    quality : str or list
        Quality measures (:func:`speechbrain_ext.quality.measure_names`).
    p_target : float
        Effective prior of the fit.
    score_kind : str
        How the scores were computed (stored with the calibration).

    Returns
    -------
    calibration : speechbrain_ext.calibration.Calibration
    metrics : dict
        ``{split: {condition: {"cllr", "min_cllr", "act_dcf@<p>", "llr_eer", "llr_min_dcf@<p>",
        "raw_cllr", "raw_min_cllr", "raw_act_dcf@<p>"[, "plain_cllr", "plain_act_dcf@<p>"]}}}``.
    info : dict
        What it was fitted on (``split`` and ``condition``: the names joined by "+";
        ``plain``: whether the score-only contrast was fitted), with the EER and EER
        threshold of the raw scores of those trials (``eer``, ``eer_threshold``: the
        operating point an export ships, chosen on validation speakers).
    llrs : dict
        ``{split: {"calibrated": {condition: LLRs}[, "plain": {...}]}}`` for the score files.
    """
    names = sx_quality.measure_names(quality)
    where = _joined(s.name for s in calibration_splits), _joined(c for s in calibration_splits for c in s.scores)
    fit_on = _pooled(calibration_splits, names)
    calibration = fit_calibration(fit_on.scores, fit_on.labels, fit_on.quality or None, names, p_target,
                                  score_kind=score_kind)
    plain = _plain(fit_on, p_target, score_kind) if names else None
    metrics, llrs = {}, {}
    for name, scored in splits.items():
        metrics[name], llrs[name] = {}, {"calibrated": {}, **({"plain": {}} if plain else {})}
        for cond, (scores, labels) in scored.scores.items():
            applied = _calibration_set(scored, cond, names)
            llr = llrs[name]["calibrated"][cond] = calibration.llr(applied.scores, applied.quality or None)
            metrics[name][cond] = _flat_calibration(calibration_report(scores, labels, llr, P_TARGETS))
            if plain:
                llrs[name]["plain"][cond] = plain.llr(applied.scores)
                metrics[name][cond].update(_plain_metrics(llrs[name]["plain"][cond], labels))
    eer, threshold = compute_eer(*split_by_label("/".join(where), fit_on.scores, fit_on.labels))
    info = {"split": where[0], "condition": where[1], "quality": list(names),
            "eer": float(eer), "eer_threshold": float(threshold),
            "p_target": float(p_target), "n_target": calibration.n_target, "n_nontarget": calibration.n_nontarget,
            "file": "calibration.json", "plain": plain is not None}
    return calibration, metrics, info, llrs


def split_results(splits, calibration_splits, quality, p_target, score_kind, n_draws, save_scores):
    """Every metric of every evaluation split (module docstring).

    Arguments
    ---------
    splits : dict
        ``{name: ScoredSplit}``, in report order.
    calibration_splits : list of ScoredSplit
        The calibration trials (pooled); empty: no calibration.
    quality, p_target, score_kind
        As in :func:`calibrate_splits`.
    n_draws : int
        Speaker-bootstrap draws.
    save_scores : callable
        ``save_scores(split, test_speakers, llrs) -> TrialScores``: writes the split's score file
        (``llrs``: ``{kind: {condition: LLRs}}`` of :func:`calibrate_splits`, or None).

    Returns
    -------
    SplitResults
    """
    results = SplitResults({}, {})
    extra, llrs = {}, {}
    if calibration_splits:
        try:
            calibration, extra, info, llrs = calibrate_splits(calibration_splits, splits, quality, p_target,
                                                              score_kind)
        except CalibrationError as err:
            where = _joined(s.name for s in calibration_splits)
            logger.warning("no calibration: it could not be fitted on split %r: %s", where, err)
            results.calibration_info = {"split": where, "error": str(err)}
        else:
            results.calibration, results.calibration_info = calibration, info
    for name, scored in splits.items():
        metrics = results.metrics[name] = scoring.evaluate_conditions(scored.scores, P_TARGETS)
        saved = save_scores(name, scored.test_speakers(), llrs.get(name))
        intervals, results.aliases[name] = speaker_intervals(saved, name, n_draws)
        for cond, values in metrics.items():
            values.update(intervals[cond])
            values.update(extra.get(name, {}).get(cond, {}))
    return results
