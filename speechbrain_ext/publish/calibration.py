"""The score calibration an export carries: found next to the run's metrics, checked, applied by ``verify``.

A training run with a calibration writes ``<report_folder>/calibration.json``
(:meth:`speechbrain_ext.calibration.Calibration.to_dict`, fitted on the validation
speakers' trials) next to ``metrics.json``. The export copies it into the model folder;
``python -m speechbrain_ext.verify`` turns the cosine score of two files into a
log-likelihood ratio with it and decides at a stated prior.

``verify`` scores one pair of files with nothing else at hand, so it can compute the
quality measures that read per-file durations and embedding norms
(:data:`VERIFY_METADATA`), and only raw cosine scores: a calibration fitted on AS-norm
scores, or with cohort means, needs the AS-norm cohort, which an export does not carry.
:func:`verify_problem` says why a calibration cannot be applied; the export warns and the
card says so, and ``verify`` refuses rather than print a wrong LLR.
"""

import json
import math
import os

from speechbrain_ext import quality as sx_quality
from speechbrain_ext.calibration import Calibration
from speechbrain_ext.calibration_metrics import CalibrationError, bayes_threshold
from speechbrain_ext.publish.layout import CALIBRATION, DEFAULT_PRIOR, PublishError, model_file

__all__ = [
    "VERIFY_METADATA",
    "calibration_card",
    "calibration_metrics",
    "find_calibration",
    "model_calibration",
    "pair_llr",
    "read_calibration",
    "verify_problem",
]

#: Per-file metadata ``verify`` measures: the duration (s) and the embedding norm before length normalisation.
VERIFY_METADATA = ("duration", "norm")
#: The score kind ``verify`` computes (``Calibration.score_kind`` of a calibration it can apply).
VERIFY_SCORE_KIND = "cosine"


def find_calibration(metrics_file, path=None):
    """The run's ``calibration.json``: ``path`` if given (it must exist), else the one next to ``metrics.json``.

    Returns None when the run has none (it is exported uncalibrated).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> find_calibration(os.path.join(d, "metrics.json")) is None
    True
    >>> find_calibration(os.path.join(d, "metrics.json"), os.path.join(d, "cal.json"))
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: calibration file not found: .../cal.json
    """
    if path is not None:
        if not os.path.isfile(path):
            raise PublishError(f"calibration file not found: {path}")
        return path
    found = os.path.join(os.path.dirname(os.path.abspath(metrics_file)), CALIBRATION)
    return found if os.path.isfile(found) else None


def read_calibration(path):
    """The :class:`~speechbrain_ext.calibration.Calibration` of a ``calibration.json``; errors name the file.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "calibration.json")
    >>> _ = open(p, "w").write(json.dumps(Calibration(10.0, -4.0, score_kind="cosine").to_dict()))
    >>> read_calibration(p).slope
    10.0
    >>> _ = open(p, "w").write('{"slope": 1.0}')
    >>> read_calibration(p)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: .../calibration.json: not a calibration: not a calibration ...
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise PublishError(f"{path}: not a readable calibration.json: {err}") from err
    try:
        return Calibration.from_dict(data)
    except CalibrationError as err:
        raise PublishError(f"{path}: not a calibration: {err}") from err


def model_calibration(source):
    """``(path, calibration)`` of a model folder or Hub repo, or ``(None, None)`` when it is uncalibrated.

    Example
    -------
    >>> import tempfile
    >>> model_calibration(tempfile.mkdtemp())
    (None, None)
    """
    path = model_file(os.fspath(source), CALIBRATION)
    return (None, None) if path is None else (path, read_calibration(path))


def verify_problem(calibration):
    """Why ``verify`` cannot apply ``calibration`` to one pair of files, or None when it can.

    Example
    -------
    >>> verify_problem(Calibration(1.0, 0.0, ("log_dur_min", "norm_max"), (0.1, 0.2), score_kind="cosine")) is None
    True
    >>> verify_problem(Calibration(1.0, 0.0, score_kind="as-norm top-300"))
    "it was fitted on 'as-norm top-300' scores, which verify cannot reproduce: AS-norm needs the training ..."
    >>> verify_problem(Calibration(1.0, 0.0, ("cohort_mean_max",), (0.3,), score_kind="cosine"))
    "it was fitted with quality measure 'cohort_mean_max', which needs per-utterance 'cohort_mean' (the ..."
    """
    kind = calibration.score_kind
    if kind != VERIFY_SCORE_KIND:
        if "norm" in kind.lower():
            return (f"it was fitted on {kind!r} scores, which verify cannot reproduce: AS-norm needs the training "
                    "run's cohort, which the export does not carry (verify computes raw cosine scores)")
        return f"its score_kind is {kind!r}, not {VERIFY_SCORE_KIND!r}: verify computes raw cosine scores only"
    for name in calibration.quality_names:
        if name not in sx_quality.QUALITY_MEASURES:
            return (f"it was fitted with quality measure {name!r}, which is not one of speechbrain_ext.quality's "
                    "measures: nothing can compute it from two files")
        key = sx_quality.QUALITY_MEASURES[name].metadata
        if key not in VERIFY_METADATA:
            return (f"it was fitted with quality measure {name!r}, which needs per-utterance {key!r} (the AS-norm "
                    f"cohort's scores, which the export does not carry); verify measures only "
                    f"{', '.join(VERIFY_METADATA)} of the two files")
    return None


def pair_llr(calibration, score, durations, norms):
    """``(llr, {measure: value})`` of one trial: enrolment = the first file, test = the second.

    Arguments
    ---------
    calibration : speechbrain_ext.calibration.Calibration
        One :func:`verify_problem` accepts.
    score : float
        The cosine score of the two files.
    durations : tuple of float
        Seconds of audio of the two files.
    norms : tuple of float
        Norms of their embeddings before length normalisation.

    Example
    -------
    >>> cal = Calibration(10.0, -4.0, ("log_dur_min",), (1.0,), score_kind="cosine")
    >>> llr, quality = pair_llr(cal, 0.5, (1.0, 4.0), (9.0, 11.0))
    >>> round(llr, 6), quality
    (1.0, {'log_dur_min': 0.0})
    """
    sides = [{"duration": [float(d)], "norm": [float(n)]} for d, n in zip(durations, norms)]
    try:
        quality = sx_quality.trial_quality(calibration.quality_names, sides[0], sides[1])
        llr = float(calibration.llr([float(score)], quality or None)[0])
    except CalibrationError as err:
        raise PublishError(f"cannot apply the calibration: {err}") from err
    return llr, {name: float(values[0]) for name, values in quality.items()}


def calibration_metrics(metrics):
    """``{condition: {metric: value}}`` of the calibration metrics a ``metrics.json`` holds (may be empty).

    The evaluation adds ``cllr``, ``min_cllr`` and ``act_dcf@<p>`` of the calibrated
    LLRs, and ``raw_cllr`` (the cosine scores read as LLRs), to each condition.

    Example
    -------
    >>> calibration_metrics({"conditions": {"all": {"eer": 0.1, "cllr": 0.4, "act_dcf@0.01": 0.6},
    ...                                     "x": {"eer": 0.2}}})
    {'all': {'cllr': 0.4, 'act_dcf@0.01': 0.6}}
    """
    out = {}
    for cond, values in metrics["conditions"].items():
        kept = {k: v for k, v in values.items() if k in ("cllr", "min_cllr", "raw_cllr") or k.startswith("act_dcf@")}
        if "cllr" in kept:
            out[cond] = kept
    return out


def _number(value, fmt=".3f"):
    return format(float(value), fmt) if isinstance(value, int | float) and math.isfinite(value) else "-"


def _measured(metrics):
    measured = calibration_metrics(metrics)
    if not measured:
        return ["The run's `metrics.json` holds no calibration metrics (Cllr, actual DCF) to show here.", ""]
    priors = sorted({k for m in measured.values() for k in m if k.startswith("act_dcf@")},
                    key=lambda k: float(k.split("@", 1)[1]))
    lines = ["Measured on the evaluation trials (speakers unseen in training and in the calibration); Cllr in "
             "bits, 0 is perfect and 1 is an uninformative system; actual DCF: normalised cost of the Bayes "
             "decision, comparable with the minDCF above:", ""]
    lines.append("| condition | Cllr | min Cllr | " + " | ".join(f"actual DCF (p={k.split('@')[1]})" for k in priors)
                 + " | Cllr of the raw cosine |")
    lines.append("|:---|---:|---:|" + "---:|" * len(priors) + "---:|")
    for cond, m in measured.items():
        cells = [_number(m.get("cllr")), _number(m.get("min_cllr"))] + [_number(m.get(k)) for k in priors]
        lines.append(f"| {cond} | " + " | ".join(cells) + f" | {_number(m.get('raw_cllr'))} |")
    return lines + [""]


def _fit_lines(calibration, fit):
    where = ""
    if isinstance(fit, dict) and fit.get("split"):
        where = f" (split `{fit['split']}`" + (f", list `{fit['condition']}`" if fit.get("condition") else "") + ")"
    lines = [
        f"`{CALIBRATION}` maps the cosine score to a log-likelihood ratio (natural log): "
        "LLR = a · score + b + Σ c_k · q_k, fitted by prior-weighted logistic regression "
        f"(effective prior {calibration.p_target:g}) on {calibration.n_target} target and "
        f"{calibration.n_nontarget} non-target trials of the validation speakers{where}; scores: "
        f"{calibration.score_kind or 'unstated'}.",
        "",
        "| term | coefficient |",
        "|:---|---:|",
        f"| a (score) | {calibration.slope:.4f} |",
        f"| b (offset) | {calibration.offset:.4f} |",
    ]
    lines += [f"| `{n}` | {c:.4f} |" for n, c in zip(calibration.quality_names, calibration.quality_coefs)]
    measures = ", ".join(f"`{n}`" for n in calibration.quality_names) or "none"
    return lines + ["", f"Quality measures: {measures} (log durations in seconds, embedding norms before length "
                        "normalisation; enrolment = the first file, test = the second).", ""]


def calibration_card(calibration, problem=None, fit=None, metrics=None, reason=None):
    """The card's ``## Calibration`` section (lines); ``calibration`` None: the model is uncalibrated.

    Example
    -------
    >>> calibration_card(None, reason="the training run wrote no calibration.json")[2]
    'Uncalibrated: the training run wrote no calibration.json. Scores are cosines, not log-likelihood ...'
    >>> cal = Calibration(10.0, -4.0, score_kind="cosine", n_target=20, n_nontarget=60)
    >>> "20 target and 60 non-target" in "\\n".join(calibration_card(cal, metrics={"conditions": {}}))
    True
    """
    lines = ["## Calibration", ""]
    if calibration is None:
        return lines + [f"Uncalibrated: {reason or 'no calibration'}. Scores are cosines, not log-likelihood "
                        "ratios; decide with the threshold above.", ""]
    lines += _fit_lines(calibration, fit)
    if problem:
        lines += [f"> `python -m speechbrain_ext.verify` cannot apply this calibration: {problem}. It decides on "
                  "the cosine score with `--threshold`.", ""]
    else:
        threshold = bayes_threshold(DEFAULT_PRIOR)
        lines += [
            "`python -m speechbrain_ext.verify` computes these measures from the two files, prints the LLR and "
            "accepts when LLR >= −log(p / (1 − p)), the Bayes threshold at the prior p of a same-speaker trial "
            f"given with `--prior` (default {DEFAULT_PRIOR:g}: LLR >= {threshold:.3f}; `--prior 0.5`: LLR >= 0).",
            "",
        ]
    return lines + _measured(metrics or {"conditions": {}})
