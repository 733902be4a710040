"""Evaluation report: ``metrics.json``, ``report.md``, DET plots and score histograms of every split.

The metrics are those of :mod:`speechbrain_ext.split_metrics` (EER and minDCF as
fractions; the markdown and terminal tables of :mod:`speechbrain_ext.report_tables`
show EER in %). ``metrics.json``::

    {"splits": {"eval": {"conditions": {condition: {metric: value}}, "aliases": {...}}, "ood": {...}},
     "conditions": <the first split's conditions>,
     "checkpoint", "epoch", "valid_EER", "valid", "selection", "score_norm", "calibration", ... (run info)}

Every file is written to a temporary name in ``out_dir`` and renamed over the
destination, so a reader never sees a half-written report. :func:`read_metrics`
is the one reader of ``metrics.json`` (the model export, the emotion report and the
ablation tables use it) and :func:`split_conditions` picks a split; neither imports
a plotting library.
"""

import io
import json
import math
import os

import numpy as np
import torch

from speechbrain_ext import report_tables
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_bytes, atomic_write_json
from speechbrain_ext.report_tables import format_metrics_table, format_splits
from speechbrain_ext.scoring import det_curve, split_by_label

__all__ = [
    "METRICS_FILE", "MetricsError", "format_metrics_table", "format_splits", "plot_det", "read_metrics",
    "split_conditions", "write_report",
]

#: The file name of the metrics in a report folder.
METRICS_FILE = "metrics.json"
# DET tick positions, as error fractions; those outside the axis range are dropped.
_DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
# Grid of the thinning in normal-deviate units: a DET of 1M trials has 1M steps,
# far more than a 6-inch plot resolves.
_DET_RESOLUTION = 0.005


class MetricsError(SpeechBrainExtError, ValueError):
    """A ``metrics.json`` is missing or is not the file :func:`write_report` writes; the message names it.

    Example
    -------
    >>> str(MetricsError("report/metrics.json: no such file"))
    'report/metrics.json: no such file'
    """


def read_metrics(path_or_dir):
    """The ``metrics.json`` of a report (its path, or the folder holding it) as a dict.

    Arguments
    ---------
    path_or_dir : str or os.PathLike
        A ``metrics.json`` file or a report folder containing one.

    Returns
    -------
    dict
        ``{"conditions": {condition: {"eer", "eer_threshold", "min_dcf", ...}}, "splits": {...}, **run info}``
        (``splits`` is absent from reports written before it existed).

    Raises
    ------
    MetricsError
        The file is missing, is not JSON, has no non-empty ``conditions`` mapping, or a
        ``splits`` entry without one.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "metrics.json"), "w").write('{"conditions": {"all": {"eer": 0.1}}}')
    >>> read_metrics(d)["conditions"]["all"]["eer"]
    0.1
    >>> read_metrics(os.path.join(d, "nothing"))
    Traceback (most recent call last):
    ...
    speechbrain_ext.report.MetricsError: .../nothing: no such file (expected the metrics.json of a report)
    """
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    if not os.path.isfile(path):
        raise MetricsError(f"{path}: no such file (expected the metrics.json of a report)")
    try:
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError) as err:
        raise MetricsError(f"{path}: not a readable metrics.json: {err}") from err
    if not isinstance(metrics, dict) or not metrics.get("conditions") or not isinstance(metrics["conditions"], dict):
        raise MetricsError(f"{path}: no 'conditions' (expected the metrics.json of speechbrain_ext.report)")
    splits = metrics.get("splits", {})
    bad = [n for n, v in splits.items() if not isinstance(v, dict) or not isinstance(v.get("conditions"), dict)] \
        if isinstance(splits, dict) else ["<splits>"]
    if bad:
        raise MetricsError(f"{path}: split {bad[0]!r} has no 'conditions' mapping")
    return metrics


def split_conditions(metrics, split=None):
    """The per-condition metrics of ``split`` (default: the first split, i.e. the top-level ``conditions``).

    Example
    -------
    >>> m = {"conditions": {"all": {"eer": 0.1}},
    ...      "splits": {"eval": {"conditions": {"all": {"eer": 0.1}}}, "ood": {"conditions": {"all": {"eer": 0.3}}}}}
    >>> split_conditions(m)["all"]["eer"], split_conditions(m, "ood")["all"]["eer"]
    (0.1, 0.3)
    >>> split_conditions(m, "valid")
    Traceback (most recent call last):
    ...
    speechbrain_ext.report.MetricsError: no split 'valid' in these metrics (splits: eval, ood)
    """
    if split is None:
        return metrics["conditions"]
    splits = metrics.get("splits") or {}
    if split not in splits:
        raise MetricsError(f"no split {split!r} in these metrics (splits: {', '.join(splits) or 'none'})")
    return splits[split]["conditions"]


def _pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use: readers need no plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | torch.Tensor):
        return obj.tolist()
    return str(obj)


def _ndtri(p):
    return torch.special.ndtri(torch.from_numpy(np.asarray(p, dtype=np.float64))).numpy()


def _thin(x, y):
    """Drop points closer than the plot resolution to their predecessor."""
    q = np.stack([np.round(x / _DET_RESOLUTION), np.round(y / _DET_RESOLUTION)], axis=1)
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = np.any(q[1:] != q[:-1], axis=1)
    keep[-1] = True
    return x[keep], y[keep]


def _save_figure(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _det_floor(curves, hi):
    """Axis floor: the smallest non-zero rate any curve shows inside the plotted square, so a
    good system is not squeezed into a corner nor a poor one given empty decades.
    """
    seen = [0.01]
    for p_fa, p_miss, _ in curves.values():
        seen += [
            p_miss[(p_miss > 0) & (p_fa <= hi)].min(initial=1.0),
            p_fa[(p_fa > 0) & (p_miss <= hi)].min(initial=1.0),
        ]
    return max(1e-4, min(seen))


def _draw_det(ax, split, metrics, title):
    """One DET panel on ``ax``: a curve per entry of ``split`` (``{name: (pos, neg)}``)."""
    curves = {name: det_curve(pos, neg) for name, (pos, neg) in split.items()}
    hi = 0.5
    lo = _det_floor(curves, hi)
    lo_z, hi_z = _ndtri(lo * 0.8), _ndtri(hi)
    for name, (p_fa, p_miss, _) in curves.items():
        x = np.clip(_ndtri(p_fa), lo_z, hi_z + 1)
        y = np.clip(_ndtri(p_miss), lo_z, hi_z + 1)
        x, y = _thin(x, y)
        eer = metrics.get(name, {}).get("eer")
        label = f"{name} (EER {100 * eer:.2f} %)" if eer is not None else str(name)
        (line,) = ax.plot(x, y, label=label, linewidth=1.5)
        if eer is not None and 0 < eer < 1:
            z = float(_ndtri(eer))
            ax.plot([z], [z], "o", color=line.get_color(), markersize=4)
    ax.plot([lo_z, hi_z], [lo_z, hi_z], ":", color="grey", linewidth=0.8)
    ticks = []
    for t in sorted((t for t in _DET_TICKS if lo * 0.8 <= t <= hi), reverse=True):
        # Keep labels legible: at least 0.3 normal deviates between neighbours.
        if not ticks or _ndtri(ticks[-1]) - _ndtri(t) >= 0.3:
            ticks.append(t)
    ticks = ticks[::-1]
    tick_z = _ndtri(ticks)
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(tick_z, labels)
    ax.set_yticks(tick_z, labels)
    ax.set_xlim(lo_z, hi_z)
    ax.set_ylim(lo_z, hi_z)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.set_title(f"DET — {title}")
    ax.grid(True, linewidth=0.4, alpha=0.6)
    ax.legend(loc="best", fontsize=8)


def _plot_det(split, metrics, title, path):
    fig, ax = _pyplot().subplots(figsize=(6, 6))
    _draw_det(ax, split, metrics, title)
    _save_figure(fig, path)


def plot_det(panels, path):
    """One figure of DET panels side by side, a curve per entry: several systems on the same trials.

    Arguments
    ---------
    panels : list of (str, dict, dict or None)
        ``(title, {label: (scores, labels)}, {label: EER fraction} or None)`` per panel
        (labels 1 target, 0 non-target); the EERs are shown in the legend and marked.
    path : str
        The PNG to write (atomically).

    Example
    -------
    >>> import tempfile
    >>> lab = np.array([1, 0, 0, 1, 0, 0])
    >>> curves = {"a": (np.array([.9, .1, .2, .8, .3, .6]), lab), "b": (np.array([.6, .7, .1, .9, .2, .3]), lab)}
    >>> p = os.path.join(tempfile.mkdtemp(), "det.png")
    >>> plot_det([("eval", curves, {"a": 0.25}), ("ood", curves, None)], p)
    >>> os.path.getsize(p) > 1000
    True
    """
    if not panels:
        raise ValueError("no DET panel to plot")
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(6 * len(panels), 6), squeeze=False)
    for ax, (title, curves, eers) in zip(axes.flat, panels):
        split = {label: split_by_label(label, scores, labels) for label, (scores, labels) in curves.items()}
        _draw_det(ax, split, {label: {"eer": eer} for label, eer in (eers or {}).items()}, title)
    fig.tight_layout()
    _save_figure(fig, os.fspath(path))


def _plot_hist(split, metrics, title, path):
    n = len(split)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _pyplot().subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (name, (pos, neg)) in zip(axes.flat, split.items()):
        lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 61)
        # stairs of precomputed densities: one artist per side instead of one bar per bin (much faster)
        for side, label in ((neg, "non-target"), (pos, "target")):
            ax.stairs(np.histogram(side, bins=bins, density=True)[0], bins, fill=True, alpha=0.55,
                      label=f"{label} ({len(side)})")
        thr = metrics.get(name, {}).get("eer_threshold")
        if thr is not None:
            ax.axvline(thr, color="black", linewidth=0.8, linestyle="--", label="EER threshold")
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel("score")
        ax.legend(fontsize=6, loc="best", framealpha=0.6)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def _plot_split(out_dir, name, metrics, scores_by_condition, title, first):
    """DET and histogram plots of one split: ``det.png`` / ``score_hist.png`` for the first, ``det_<split>.png``..."""
    missing = [c for c in metrics if c not in scores_by_condition]
    if missing:
        raise ValueError(f"split {name!r}: no scores for condition(s) {missing}")
    suffix = "" if first else f"_{name}"
    paths = {kind: os.path.join(out_dir, f"{kind}{suffix}.png") for kind in ("det", "score_hist")}
    split = {cond: split_by_label(cond, *scores_by_condition[cond]) for cond in metrics}
    _plot_det(split, metrics, f"{title} ({name})", paths["det"])
    _plot_hist(split, metrics, f"{title} ({name})", paths["score_hist"])
    return paths


def write_report(out_dir, metrics, scores, title, extra=None, aliases=None):
    """Write ``metrics.json``, ``report.md`` and the DET / histogram plots of every split.

    Arguments
    ---------
    out_dir : str or os.PathLike
        Created if needed.
    metrics : dict
        ``{split: {condition: {...}}}`` (:mod:`speechbrain_ext.split_metrics`, or
        :func:`speechbrain_ext.scoring.evaluate_conditions` per split), in report order.
    scores : dict
        ``{split: {condition: (scores, labels)}}``, the input of those metrics (for the plots).
    title : str
        Heading of the report and of the plots.
    extra : dict or None
        Run information (checkpoint, command, ...): top-level keys of ``metrics.json``
        and a list in ``report.md``. It may not use the keys ``"conditions"`` or ``"splits"``.
    aliases : dict or None
        ``{split: {condition: [conditions with identical trials]}}``: shown once in ``report.md``.

    Returns
    -------
    dict
        ``{"metrics": path, "report": path, "det": path, "score_hist": path, "plots": {split: {...}}}``.

    Example
    -------
    >>> import tempfile, json
    >>> from speechbrain_ext.scoring import evaluate_conditions
    >>> data = {"all": ([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0])}
    >>> paths = write_report(tempfile.mkdtemp(), {"eval": evaluate_conditions(data)}, {"eval": data}, "demo",
    ...                      extra={"checkpoint": "ckpt/best"})
    >>> sorted(paths)
    ['det', 'metrics', 'plots', 'report', 'score_hist']
    >>> m = json.load(open(paths["metrics"]))
    >>> m["checkpoint"], m["conditions"]["all"]["eer"], m["splits"]["eval"]["conditions"]["all"]["n_target"]
    ('ckpt/best', 0.5, 2)
    """
    extra = dict(extra or {})
    reserved = [k for k in ("conditions", "splits") if k in extra]
    if reserved:
        raise ValueError(f"extra may not contain the key(s) {reserved}")
    if not metrics:
        raise ValueError("no split to report")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    plots = {name: _plot_split(out_dir, name, m, scores.get(name, {}), title, i == 0)
             for i, (name, m) in enumerate(metrics.items())}
    first = next(iter(metrics))
    paths = {"metrics": os.path.join(out_dir, METRICS_FILE), "report": os.path.join(out_dir, "report.md"),
             **plots[first], "plots": plots}
    payload = {
        "splits": {name: {"conditions": m, "aliases": (aliases or {}).get(name, {})} for name, m in metrics.items()},
        "conditions": metrics[first],
        **extra,
    }
    atomic_write_json(paths["metrics"], payload, default=_json_default, allow_nan=False)
    figures = [(f"{kind} — {name}", os.path.basename(path)) for name, p in plots.items() for kind, path in p.items()]
    text = report_tables.markdown(metrics, title, extra, aliases, figures)
    atomic_write_bytes(paths["report"], text.encode("utf-8"))
    return paths
