"""Evaluation report: ``metrics.json``, ``report.md``, a DET plot and score histograms.

The metrics are those of :func:`speechbrain_ext.scoring.evaluate_conditions`
(EER and minDCF as fractions; the markdown and terminal tables show EER in %).
Every file is written to a temporary name in ``out_dir`` and renamed over the
destination, so a reader never sees a half-written report. :func:`read_metrics`
is the one reader of ``metrics.json`` (the model export, the emotion report and the
ablation tables use it); it imports no plotting library.
"""

import io
import json
import math
import os

import numpy as np
import torch

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_bytes, atomic_write_json
from speechbrain_ext.scoring import det_curve, split_by_label

__all__ = ["METRICS_FILE", "MetricsError", "format_metrics_table", "read_metrics", "write_report"]

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
        ``{"conditions": {condition: {"eer", "eer_threshold", "min_dcf", ...}}, **run info}``.

    Raises
    ------
    MetricsError
        The file is missing, is not JSON, or has no non-empty ``conditions`` mapping.

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
    return metrics


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


def _dcf_columns(metrics):
    """(header, key) of every minDCF column present, the primary one first."""
    first = next(iter(metrics.values()), {})
    p = first.get("min_dcf_p_target", 0.01)
    cols = [(f"minDCF({p:g})", "min_dcf")]
    extra = sorted(
        {
            k
            for m in metrics.values()
            for k in m
            if k.startswith("min_dcf_p") and k[9:10].isdigit() and not k.endswith("_threshold")
        },
        key=lambda k: -float(k[9:]),
    )
    cols += [(f"minDCF({k[9:]})", k) for k in extra]
    return cols


def _rows(metrics):
    cols = _dcf_columns(metrics)
    header = ["condition", "EER %"] + [h for h, _ in cols] + ["#target", "#nontarget"]
    rows = []
    for name, m in metrics.items():
        rows.append(
            [str(name), f"{100 * m['eer']:.2f}"]
            + [f"{m[k]:.4f}" if k in m else "-" for _, k in cols]
            + [str(m.get("n_target", "-")), str(m.get("n_nontarget", "-"))]
        )
    return header, rows


def format_metrics_table(metrics):
    """A plain-text aligned table of per-condition metrics, for the terminal.

    Arguments
    ---------
    metrics : dict
        ``{condition: {"eer", "min_dcf", "n_target", "n_nontarget", ...}}`` as
        returned by :func:`speechbrain_ext.scoring.evaluate_conditions`.

    Returns
    -------
    str
        Header, a rule, one line per condition; numbers right-aligned.

    Example
    -------
    >>> print(format_metrics_table({"vox1-O": {"eer": 0.0123, "min_dcf": 0.1,
    ...                                        "n_target": 10, "n_nontarget": 90}}))
    condition  EER %  minDCF(0.01)  #target  #nontarget
    ---------  -----  ------------  -------  ----------
    vox1-O      1.23        0.1000       10          90
    """
    header, rows = _rows(metrics)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _markdown(metrics, title, extra):
    header, rows = _rows(metrics)
    out = [f"# {title}", "", "| " + " | ".join(header) + " |"]
    out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += [
        "",
        "EER and minDCF (normalised NIST cost) as defined in `methods.md`; a trial is accepted "
        "when score >= threshold.",
        "",
    ]
    if extra:
        out.append("## Run")
        out.append("")
        for key, value in extra.items():
            text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
            out.append(f"- **{key}**: `{text}`")
        out.append("")
    out += ["![DET curves](det.png)", "", "![Score histograms](score_hist.png)", ""]
    return "\n".join(out)


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


def _plot_det(split, metrics, title, path):
    curves = {name: det_curve(pos, neg) for name, (pos, neg) in split.items()}
    hi = 0.5
    # Axis floor: the smallest non-zero rate any curve shows inside the plotted square, so a
    # good system is not squeezed into a corner nor a poor one given empty decades.
    seen = [0.01]
    for p_fa, p_miss, _ in curves.values():
        seen += [
            p_miss[(p_miss > 0) & (p_fa <= hi)].min(initial=1.0),
            p_fa[(p_fa > 0) & (p_miss <= hi)].min(initial=1.0),
        ]
    lo = max(1e-4, min(seen))
    lo_z, hi_z = _ndtri(lo * 0.8), _ndtri(hi)
    fig, ax = _pyplot().subplots(figsize=(6, 6))
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
    _save_figure(fig, path)


def _plot_hist(split, metrics, title, path):
    n = len(split)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _pyplot().subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (name, (pos, neg)) in zip(axes.flat, split.items()):
        lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 61)
        ax.hist(neg, bins=bins, density=True, alpha=0.55, label=f"non-target ({len(neg)})")
        ax.hist(pos, bins=bins, density=True, alpha=0.55, label=f"target ({len(pos)})")
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


def write_report(out_dir, metrics, scores_by_condition, title, extra=None):
    """Write ``metrics.json``, ``report.md``, ``det.png`` and ``score_hist.png``.

    Arguments
    ---------
    out_dir : str or os.PathLike
        Created if needed.
    metrics : dict
        ``{condition: {...}}`` from :func:`speechbrain_ext.scoring.evaluate_conditions`.
    scores_by_condition : dict
        ``{condition: (scores, labels)}``, the input of those metrics (for the plots).
    title : str
        Heading of the report and of the plots.
    extra : dict or None
        Run information (checkpoint, command, ...): top-level keys of
        ``metrics.json`` and a list in ``report.md``. It may not use the key
        ``"conditions"``.

    Returns
    -------
    dict
        ``{"metrics": path, "report": path, "det": path, "score_hist": path}``.

    Example
    -------
    >>> import tempfile, json
    >>> from speechbrain_ext.scoring import evaluate_conditions
    >>> data = {"all": ([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0])}
    >>> paths = write_report(tempfile.mkdtemp(), evaluate_conditions(data), data, "demo",
    ...                      extra={"checkpoint": "ckpt/best"})
    >>> sorted(paths)
    ['det', 'metrics', 'report', 'score_hist']
    >>> m = json.load(open(paths["metrics"]))
    >>> m["checkpoint"], m["conditions"]["all"]["eer"], m["conditions"]["all"]["n_target"]
    ('ckpt/best', 0.5, 2)
    """
    extra = dict(extra or {})
    if "conditions" in extra:
        raise ValueError("extra may not contain the key 'conditions'")
    missing = [name for name in metrics if name not in scores_by_condition]
    if missing:
        raise ValueError(f"no scores for condition(s) {missing}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "metrics": os.path.join(out_dir, METRICS_FILE),
        "report": os.path.join(out_dir, "report.md"),
        "det": os.path.join(out_dir, "det.png"),
        "score_hist": os.path.join(out_dir, "score_hist.png"),
    }
    payload = {"conditions": metrics, **extra}
    atomic_write_json(paths["metrics"], payload, default=_json_default, allow_nan=False)
    atomic_write_bytes(paths["report"], _markdown(metrics, title, extra).encode("utf-8"))
    split = {name: split_by_label(name, *scores_by_condition[name]) for name in metrics}
    _plot_det(split, metrics, title, paths["det"])
    _plot_hist(split, metrics, title, paths["score_hist"])
    return paths
