"""Linear logistic calibration of verification scores to log-likelihood ratios.

``llr = a * score + b + sum_k c_k * q_k`` with optional quality measures ``q_k``
(:mod:`speechbrain_ext.quality`: log durations, embedding norms, cohort means),
fitted as in BOSARIS ``train_linear_calibration``: a logistic regression on
calibration trials in which targets weigh ``p / N_tar`` and non-targets
``(1 - p) / N_non`` and the logit carries the fixed offset ``log(p / (1 - p))``.
Minimising that objective is minimising the Cllr at the effective prior ``p``
(at ``p = 0.5``, the default, exactly the Cllr of ``methods.md``), so the fitted
``a, b, c`` give LLRs, whatever the proportion of targets among the trials.

The fit standardises every column (score and quality) for conditioning, solves
by Newton's method with a backtracking line search (the objective is convex and
smooth), and folds the scaling back into ``a, b, c``. By default (``l2=None``) it
is unpenalised, as in BOSARIS, unless that problem has no unique finite
solution: when the calibration trials are separable (by the score and the
measures together) or measures are collinear (``log_dur_min + log_dur_max =
log_dur_enrol + log_dur_test``), it adds the L2 penalty :data:`AUTO_L2` on the
standardised slopes (never on ``b``) and warns (:class:`CalibrationWarning`):
separable trials leave the slope set by the penalty, so the LLRs are
overconfident. ``l2`` set to a number always uses that penalty.

Metrics (Cllr, min Cllr, actual DCF) are in :mod:`speechbrain_ext.calibration_metrics`.

Example
-------
>>> rng = np.random.default_rng(0)
>>> labels = rng.random(4000) < 0.3
>>> scores = np.where(labels, rng.normal(0.6, 0.1, 4000), rng.normal(0.1, 0.1, 4000))
>>> cal = fit_calibration(scores, labels)
>>> llr = cal.llr(scores)
>>> from speechbrain_ext.calibration_metrics import cllr
>>> cllr(llr, labels) < cllr(scores, labels)
True
"""

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from speechbrain_ext import quality as sx_quality
from speechbrain_ext.calibration_metrics import CalibrationError, as_labels, as_vector, count_classes

__all__ = [
    "AUTO_L2",
    "Calibration",
    "CalibrationError",
    "CalibrationWarning",
    "calibrate_eval",
    "fit_calibration",
]

#: The penalty added when the unpenalised fit is ill-posed (separable trials, collinear measures).
AUTO_L2 = 1e-6
FORMAT = "speechbrain_ext.calibration"
FORMAT_VERSION = 1
_FIELDS = ("slope", "offset", "quality_names", "quality_coefs", "p_target", "n_target", "n_nontarget", "l2",
           "score_kind")


class CalibrationWarning(UserWarning):
    """A calibration that was fitted but deserves a look (separable trials, a constant measure).

    Example
    -------
    >>> issubclass(CalibrationWarning, UserWarning)
    True
    """


@dataclass(frozen=True)
class Calibration:
    """A fitted linear calibration: ``llr = slope * score + offset + quality @ quality_coefs``.

    Arguments
    ---------
    slope : float
        ``a``, LLR nats per score unit.
    offset : float
        ``b``, nats.
    quality_names : tuple of str
        The quality measures, in the order of ``quality_coefs``.
    quality_coefs : tuple of float
        ``c_k``, nats per unit of each measure.
    p_target : float
        The effective prior the fit was weighted to.
    n_target : int
        Target trials of the fit.
    n_nontarget : int
        Non-target trials of the fit.
    l2 : float
        The penalty the fit used (on standardised slopes); 0 when unpenalised.
    score_kind : str
        What the scores were (e.g. ``"cosine"``, ``"as-norm top-300"``): a
        calibration applies only to scores computed the same way.

    Example
    -------
    >>> cal = Calibration(slope=10.0, offset=-4.0, quality_names=("log_dur_min",), quality_coefs=(0.5,))
    >>> cal.llr([0.5, 0.2], {"log_dur_min": [0.0, 2.0]}).tolist()
    [1.0, -1.0]
    >>> Calibration.from_dict(cal.to_dict()) == cal
    True
    """

    slope: float
    offset: float
    quality_names: tuple = ()
    quality_coefs: tuple = ()
    p_target: float = 0.5
    n_target: int = 0
    n_nontarget: int = 0
    l2: float = 0.0
    score_kind: str = ""

    def __post_init__(self):
        if not isinstance(self.score_kind, str):
            raise CalibrationError(f"score_kind must be a string, got {self.score_kind!r}")
        object.__setattr__(self, "quality_names", tuple(str(m) for m in self.quality_names))
        object.__setattr__(self, "quality_coefs", tuple(float(c) for c in self.quality_coefs))
        numbers = (self.slope, self.offset, self.l2, *self.quality_coefs)
        if not all(math.isfinite(float(x)) for x in numbers):
            raise CalibrationError(f"calibration coefficients must be finite, got {numbers}")
        if len(self.quality_names) != len(self.quality_coefs):
            raise CalibrationError(
                f"{len(self.quality_names)} quality names for {len(self.quality_coefs)} coefficients"
            )
        if len(set(self.quality_names)) != len(self.quality_names):
            raise CalibrationError(f"quality measure names repeat: {list(self.quality_names)}")
        if not 0.0 < self.p_target < 1.0:
            raise CalibrationError(f"p_target must be in (0, 1), got {self.p_target}")

    def llr(self, scores, quality=None):
        """LLRs (nats) of raw scores and, when the calibration uses them, their quality measures.

        Arguments
        ---------
        scores : array-like
            1-D finite scores, the same kind the calibration was fitted on.
        quality : dict or numpy.ndarray or None
            ``{name: 1-D array}`` holding exactly :attr:`quality_names`, or an
            ``[n, k]`` matrix in that column order; None when there are none.

        Returns
        -------
        numpy.ndarray

        Example
        -------
        >>> Calibration(slope=2.0, offset=1.0).llr([0.0, 1.0]).tolist()
        [1.0, 3.0]
        >>> Calibration(2.0, 1.0, ("norm_min",), (1.0,)).llr([0.0], {"log_dur_min": [1.0]})
        Traceback (most recent call last):
            ...
        speechbrain_ext.calibration_metrics.CalibrationError: quality measures do not match: missing ['norm_min'], ...
        """
        scores = as_vector(scores, "scores")
        _, q = sx_quality.quality_matrix(quality, self.quality_names, scores.size, strict=True)
        return self.slope * scores + self.offset + q @ np.asarray(self.quality_coefs, dtype=np.float64)

    def required_metadata(self):
        """Per-utterance metadata keys needed to compute this calibration's quality measures.

        Raises :class:`CalibrationError` when a measure is not one of
        :data:`speechbrain_ext.quality.QUALITY_MEASURES` (it was fitted on values
        supplied directly, which nothing can recompute from audio).

        Example
        -------
        >>> Calibration(1.0, 0.0, ("norm_max", "log_dur_min"), (0.1, 0.2)).required_metadata()
        ('duration', 'norm')
        """
        return sx_quality.required_metadata(self.quality_names)

    def check_computable(self, available):
        """Raise unless every quality measure can be computed from the ``available`` metadata keys.

        ``python -m speechbrain_ext.verify`` calls this with what it can measure
        on two files (e.g. ``("duration", "norm")``) before loading audio.

        Example
        -------
        >>> cal = Calibration(1.0, 0.0, ("cohort_mean_max",), (0.3,))
        >>> cal.check_computable(("duration", "norm"))
        Traceback (most recent call last):
            ...
        speechbrain_ext.calibration_metrics.CalibrationError: this calibration was fitted with quality measure ...
        """
        available = tuple(available)
        for name in self.quality_names:
            key = sx_quality.required_metadata((name,))[0]
            if key not in available:
                raise CalibrationError(
                    f"this calibration was fitted with quality measure {name!r}, which needs per-utterance "
                    f"{key!r}; only {', '.join(available) or 'nothing'} can be computed here"
                )

    def to_dict(self):
        """JSON-ready description (for an exported model's ``calibration.json``).

        Example
        -------
        >>> d = Calibration(10.0, -4.0).to_dict()
        >>> d["format"], d["version"], d["slope"], d["quality_names"]
        ('speechbrain_ext.calibration', 1, 10.0, [])
        """
        out = {"format": FORMAT, "version": FORMAT_VERSION}
        for field in _FIELDS:
            value = getattr(self, field)
            out[field] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data):
        """The calibration a :meth:`to_dict` described; a clear error for anything else.

        Example
        -------
        >>> Calibration.from_dict({"format": "speechbrain_ext.calibration", "version": 1, "slope": 1.0})
        Traceback (most recent call last):
            ...
        speechbrain_ext.calibration_metrics.CalibrationError: calibration description lacks 'offset', ...
        """
        if not isinstance(data, Mapping):
            raise CalibrationError(f"a calibration description is a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise CalibrationError(
                f"not a calibration of format {FORMAT!r} version {FORMAT_VERSION}: "
                f"format={data.get('format')!r}, version={data.get('version')!r}"
            )
        missing = [f for f in _FIELDS if f not in data]
        if missing:
            raise CalibrationError(f"calibration description lacks {', '.join(map(repr, missing))}")
        unknown = sorted(set(data) - set(_FIELDS) - {"format", "version"})
        if unknown:
            raise CalibrationError(f"calibration description has unknown keys {unknown}")
        try:
            return cls(
                slope=float(data["slope"]), offset=float(data["offset"]),
                quality_names=tuple(data["quality_names"]), quality_coefs=tuple(data["quality_coefs"]),
                p_target=float(data["p_target"]), n_target=int(data["n_target"]),
                n_nontarget=int(data["n_nontarget"]), l2=float(data["l2"]), score_kind=data["score_kind"],
            )
        except (TypeError, ValueError) as err:
            if isinstance(err, CalibrationError):
                raise
            raise CalibrationError(f"calibration description has a value of the wrong type: {err}") from None


def _objective(beta, design, sign, weights, offset, penalty):
    eta = design @ beta + offset
    return float(weights @ np.logaddexp(0.0, sign * eta) + 0.5 * penalty @ (beta * beta))


def _separates(eta, is_target):
    return bool(eta[is_target > 0].min() > eta[is_target == 0].max())


def _newton_logistic(design, is_target, weights, offset, penalty, max_iter, give_up_if_separable=False, tol=1e-12):
    """Minimise the prior-weighted logistic loss + ½ Σ penalty β² by damped Newton steps.

    With ``give_up_if_separable``, returns None as soon as an iterate separates the
    classes (the unpenalised optimum is then at infinity).
    """
    beta = np.zeros(design.shape[1])
    sign = np.where(is_target, -1.0, 1.0)  # a target costs softplus(-eta), a non-target softplus(eta)
    args = (design, sign, weights, offset, penalty)
    value = _objective(beta, *args)
    for _ in range(max_iter):
        eta = design @ beta
        if give_up_if_separable and _separates(eta, is_target):
            return None
        post = expit(eta + offset)
        grad = design.T @ (weights * (post - is_target)) + penalty * beta
        hess = (design * (weights * post * (1.0 - post))[:, None]).T @ design + np.diag(penalty)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            raise CalibrationError(
                "the calibration fit is singular (collinear quality measures with l2=0?): use l2 > 0"
            ) from None
        decrement = float(grad @ step)
        if decrement / 2 < tol:
            return beta
        t = 1.0
        while t > 1e-10:
            candidate = beta - t * step
            new_value = _objective(candidate, *args)
            if new_value <= value - 0.25 * t * decrement:
                break
            t /= 2
        else:
            if decrement < 1e-8:  # no decrease left within float precision: at the optimum
                return beta
            raise CalibrationError("the calibration fit stalled (line search found no decrease)")
        beta, value = candidate, new_value
    raise CalibrationError(
        f"the calibration fit did not converge in {max_iter} Newton steps; if the calibration trials "
        "are separable, use l2 > 0"
    )


def _check_trials(scores, labels, min_trials):
    scores = as_vector(scores, "calibration scores")
    is_target = as_labels(labels, scores.size)
    n_target, _ = count_classes(is_target, "the calibration trials")
    if scores.size < min_trials:
        raise CalibrationError(f"only {scores.size} calibration trials: at least {min_trials} are needed")
    if scores.min() == scores.max():
        raise CalibrationError(f"all {scores.size} calibration scores equal {scores[0]}: nothing to calibrate")
    return scores, is_target, n_target


def _standardised_design(columns, names):
    """Columns scaled to zero mean and unit variance, plus a ones column; constant measures left out."""
    mean, scale = columns.mean(axis=0), columns.std(axis=0)
    used = scale > 0
    for name in np.asarray(names, dtype=object)[~used[1:]]:
        warnings.warn(f"quality measure {name!r} is constant over the calibration trials: its coefficient "
                      "is fixed at 0", CalibrationWarning, stacklevel=3)
    design = np.column_stack([(columns[:, used] - mean[used]) / scale[used], np.ones(columns.shape[0])])
    return design, mean, scale, used


def _collinear(design, names):
    """The columns (named) of an exact linear relation in the standardised design, or []."""
    z = design[:, :-1]
    if z.shape[1] < 2:
        return []
    values, vectors = np.linalg.eigh(z.T @ z / z.shape[0])
    if values[0] > 1e-9 * values[-1]:
        return []
    return [name for name, v in zip(names, vectors[:, 0]) if abs(v) > 1e-3]


def _solve(design, is_target, weights, offset, l2, max_iter, names):
    """``(beta, l2 used)``: ``l2`` as given, or (None) unpenalised unless ill-posed, then :data:`AUTO_L2`."""
    def newton(value, give_up=False):
        penalty = np.append(np.full(design.shape[1] - 1, float(value)), 0.0)
        return _newton_logistic(design, is_target, weights, offset, penalty, max_iter, give_up)

    collinear = _collinear(design, names)
    if collinear and not l2:
        if l2 is not None:
            raise CalibrationError(f"{collinear} are collinear over the calibration trials: use l2 > 0 or drop one")
        warnings.warn(f"{collinear} are collinear over the calibration trials: fitted with l2={AUTO_L2}",
                      CalibrationWarning, stacklevel=3)
        return newton(AUTO_L2), AUTO_L2
    if l2 is not None:
        return newton(l2), float(l2)
    beta = newton(0.0, give_up=True)
    return (beta, 0.0) if beta is not None else (newton(AUTO_L2), AUTO_L2)


def _warn_if_separable(eta, is_target, l2):
    if _separates(eta, is_target):
        bound = f"set by l2={l2}" if l2 else "unbounded (l2=0): the fit stopped where the loss is flat"
        warnings.warn(f"the {eta.size} calibration trials are separable: the slope is {bound} and the LLRs "
                      "will be overconfident; calibrate on more, or harder, trials", CalibrationWarning, stacklevel=3)


def fit_calibration(scores, labels, quality=None, quality_names=(), p_target=0.5, l2=None, min_trials=20,
                    max_iter=100, score_kind=""):
    """Fit ``llr = a * score + b + Σ c_k q_k`` by prior-weighted logistic regression.

    Arguments
    ---------
    scores : array-like
        1-D finite scores of the calibration trials (e.g. the validation speakers' list).
    labels : array-like
        1 target, 0 non-target.
    quality : dict or numpy.ndarray or None
        ``{name: 1-D array}`` (all its measures, or those named by ``quality_names``)
        or an ``[n, k]`` matrix whose columns ``quality_names`` names.
    quality_names : sequence of str
        The measures to use; names of :data:`speechbrain_ext.quality.QUALITY_MEASURES`
        if ``verify`` must recompute them.
    p_target : float
        Effective prior the trials are weighted to (0.5: the Cllr itself).
    l2 : float or None
        Penalty on the standardised slopes (not the offset), >= 0; None: none
        unless the problem is ill-posed, then :data:`AUTO_L2` (module docstring).
    min_trials : int
        Fewest calibration trials accepted.
    max_iter : int
        Newton steps allowed.
    score_kind : str
        Stored with the calibration: how the scores were computed.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        One class only, too few trials, non-finite or all-equal scores, non-finite
        quality values (named by measure and trial index), mismatched lengths or
        names, a fit that does not converge.

    Warns
    -----
    CalibrationWarning
        A constant quality measure (its coefficient is fixed at 0), collinear
        measures, or separable trials.

    Example
    -------
    >>> s = np.array([0.1, 0.2, 0.3, 0.4, 0.5] * 8)
    >>> y = np.array([0, 0, 1, 0, 1] * 8)
    >>> cal = fit_calibration(s, y)
    >>> cal.slope > 0, cal.n_target, cal.n_nontarget
    (True, 16, 24)
    >>> fit_calibration(s, np.ones(40))
    Traceback (most recent call last):
        ...
    speechbrain_ext.calibration_metrics.CalibrationError: the calibration trials have 40 target and 0 non-target ...
    """
    if not 0.0 < p_target < 1.0:
        raise CalibrationError(f"p_target must be in (0, 1), got {p_target}")
    if l2 is not None and not l2 >= 0:
        raise CalibrationError(f"l2 must be >= 0, got {l2}")
    scores, is_target, n_target = _check_trials(scores, labels, min_trials)
    names, q = sx_quality.quality_matrix(quality, quality_names, scores.size, strict=False)
    columns = np.column_stack([scores, q])
    design, mean, scale, used = _standardised_design(columns, names)
    n_non = scores.size - n_target
    weights = np.where(is_target, p_target / n_target, (1.0 - p_target) / n_non)
    offset = math.log(p_target / (1.0 - p_target))
    used_names = ["score", *np.asarray(names, dtype=object)[used[1:]]]
    beta, l2 = _solve(design, is_target.astype(np.float64), weights, offset, l2, max_iter, used_names)
    coefs = np.zeros(columns.shape[1])
    coefs[used] = beta[:-1] / scale[used]
    _warn_if_separable(design @ beta, is_target, l2)
    return Calibration(
        slope=float(coefs[0]), offset=float(beta[-1] - coefs @ mean), quality_names=names,
        quality_coefs=tuple(coefs[1:].tolist()), p_target=float(p_target), n_target=n_target,
        n_nontarget=n_non, l2=float(l2), score_kind=score_kind,
    )


def calibrate_eval(valid, evaluation, p_target=0.5, **fit_options):
    """Fit a calibration on the validation speakers' trials and apply it to the evaluation trials.

    Arguments
    ---------
    valid : speechbrain_ext.quality.CalibrationSet
        The calibration trials (speakers disjoint from ``evaluation``); its
        quality measures are those of the calibration.
    evaluation : speechbrain_ext.quality.CalibrationSet
        The trials to calibrate; it must hold the same quality measures.
    p_target : float
        Effective prior of the fit.
    **fit_options
        More arguments of :func:`fit_calibration` (``l2``, ``min_trials``...).

    Returns
    -------
    calibration : Calibration
    llr : numpy.ndarray
        The evaluation trials' LLRs.

    Example
    -------
    >>> from speechbrain_ext.quality import CalibrationSet
    >>> rng = np.random.default_rng(1)
    >>> def trials(n):
    ...     y = rng.random(n) < 0.5
    ...     return CalibrationSet(np.where(y, rng.normal(0.3, 0.15, n), rng.normal(0.0, 0.15, n)), y, {})
    >>> cal, llr = calibrate_eval(trials(200), trials(100))
    >>> llr.shape, cal.n_target + cal.n_nontarget
    ((100,), 200)
    """
    names = tuple(valid.quality)
    cal = fit_calibration(valid.scores, valid.labels, valid.quality or None, names, p_target, **fit_options)
    return cal, cal.llr(evaluation.scores, evaluation.quality or None)
