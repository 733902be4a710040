"""The tables of an evaluation report: ``report.md`` (splits side by side) and the terminal summary.

Metrics are those of :mod:`speechbrain_ext.split_metrics` (fractions; EER shown in %).
A metric with an interval is shown as ``value [low, high]``. A condition whose trials
repeat another's (``aliases``) is shown once, its other names in brackets.
"""

import json

import numpy as np

__all__ = ["format_metrics_table", "format_splits", "markdown"]

# The (plain) columns appear only when the metrics have them (a quality-measure calibration).
_CAL_COLUMNS = (
    ("Cllr (raw)", "raw_cllr", 3), ("Cllr", "cllr", 3), ("Cllr (plain)", "plain_cllr", 3), ("min Cllr", "min_cllr", 3),
    ("actDCF(0.01) (raw)", "raw_act_dcf@0.01", 3), ("actDCF(0.01)", "act_dcf@0.01", 3),
    ("actDCF(0.01) (plain)", "plain_act_dcf@0.01", 3),
    ("actDCF(0.05) (raw)", "raw_act_dcf@0.05", 3), ("actDCF(0.05)", "act_dcf@0.05", 3),
    ("actDCF(0.05) (plain)", "plain_act_dcf@0.05", 3),
)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
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
            if k.startswith("min_dcf_p") and k[9:10].isdigit() and not k.endswith(("_threshold", "_ci"))
        },
        key=lambda k: -float(k[9:]),
    )
    cols += [(f"minDCF({k[9:]})", k) for k in extra]
    return cols


def _cell(m, key, digits, scale=1.0, interval=True):
    """``value`` or ``value [low, high]`` (``-`` when absent)."""
    if key not in m or m[key] is None:
        return "-"
    text = f"{scale * m[key]:.{digits}f}"
    ci = m.get(f"{key}_ci") if interval else None
    if ci and None not in ci:
        text += f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"
    return text


def _rows(metrics):
    cols = _dcf_columns(metrics)
    with_cllr = any("cllr" in m for m in metrics.values())
    header = ["condition", "EER %"] + [h for h, _ in cols] + (["Cllr"] if with_cllr else []) + ["#target",
                                                                                                 "#nontarget"]
    rows = []
    for name, m in metrics.items():
        rows.append(
            [str(name), _cell(m, "eer", 2, 100.0)]
            + [_cell(m, k, 4) for _, k in cols]
            + ([_cell(m, "cllr", 3)] if with_cllr else [])
            + [str(m.get("n_target", "-")), str(m.get("n_nontarget", "-"))]
        )
    return header, rows


def format_metrics_table(metrics):
    """A plain-text aligned table of per-condition metrics, for the terminal.

    Arguments
    ---------
    metrics : dict
        ``{condition: {"eer", "min_dcf", "n_target", "n_nontarget", ...}}`` as
        returned by :func:`speechbrain_ext.scoring.evaluate_conditions`; intervals
        (``eer_ci``...) and ``cllr`` are shown when present.

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


def format_splits(metrics_by_split):
    """One terminal table per split, each under its name.

    Example
    -------
    >>> print(format_splits({"eval": {"all": {"eer": 0.1, "min_dcf": 0.5}}}))
    eval:
    condition  EER %  minDCF(0.01)  #target  #nontarget
    ---------  -----  ------------  -------  ----------
    all        10.00        0.5000        -           -
    """
    return "\n\n".join(f"{split}:\n{format_metrics_table(m)}" for split, m in metrics_by_split.items())


def _shown_conditions(metrics_by_split, aliases):
    """Conditions in report order, without those that only repeat another; ``{kept: [aliases]}``."""
    order, repeats = [], {}
    for split, conditions in metrics_by_split.items():
        for kept, others in (aliases or {}).get(split, {}).items():
            repeats.setdefault(kept, [])
            repeats[kept] += [o for o in others if o not in repeats[kept]]
        order += [c for c in conditions if c not in order]
    hidden = {o for others in repeats.values() for o in others} - set(repeats)
    return [c for c in order if c not in hidden], repeats


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _side_by_side(metrics_by_split, shown, repeats, key, digits, scale=1.0):
    splits = list(metrics_by_split)
    rows = []
    for cond in shown:
        label = cond + (f" (= {', '.join(repeats[cond])})" if repeats.get(cond) else "")
        rows.append([label] + [_cell(metrics_by_split[s].get(cond, {}), key, digits, scale) for s in splits])
    return _table(["condition", *splits], rows)


def _counts(metrics_by_split, shown):
    splits = list(metrics_by_split)
    rows = []
    for cond in shown:
        cells = []
        for s in splits:
            m = metrics_by_split[s].get(cond)
            cells.append("-" if m is None else f"{m.get('n_target', '-')} / {m.get('n_nontarget', '-')} / "
                         f"{m.get('n_speakers', '-')}")
        rows.append([cond, *cells])
    return _table(["condition", *[f"{s}: #target / #nontarget / #speakers" for s in splits]], rows)


def _calibration(metrics_by_split, shown, info):
    if "error" in info:
        return ["## Calibration", "", f"Not fitted on `{info['split']}`: {info['error']}.", ""]
    out = [
        "## Calibration",
        "",
        f"Linear calibration fitted on `{info['split']}/{info['condition']}` ({info['n_target']} target, "
        f"{info['n_nontarget']} non-target trials; quality measures: {', '.join(info['quality']) or 'none'}; "
        f"effective prior {info['p_target']:g}), applied to every split; `{info['file']}`. Cllr in bits "
        "(1 = uninformative); actual DCF at the Bayes threshold, normalised like minDCF; (raw) reads the raw "
        "scores as if they were LLRs" + ("; (plain) is the score-only calibration fitted on the same trials, "
                                          "for contrast with the quality measures." if info.get("plain") else "."),
        "",
    ]
    for split, conditions in metrics_by_split.items():
        columns = [c for c in _CAL_COLUMNS if any(c[1] in m for m in conditions.values())]
        rows = [[c] + [_cell(conditions[c], k, d, interval=False) for _, k, d in columns]
                for c in shown if c in conditions]
        out += [f"### {split}", "", *_table(["condition", *[h for h, _, _ in columns]], rows)]
    return out


def markdown(metrics_by_split, title, extra=None, aliases=None, plots=()):
    """``report.md``: the splits side by side, counts, calibration, run information and plots.

    Example
    -------
    >>> m = {"eval": {"all": {"eer": 0.1, "eer_ci": [0.05, 0.2], "min_dcf": 0.5}},
    ...      "ood": {"all": {"eer": 0.2, "min_dcf": 0.7}}}
    >>> text = markdown(m, "demo")
    >>> "| all | 10.00 [5.00, 20.00] | 20.00 |" in text
    True
    """
    extra = dict(extra or {})
    shown, repeats = _shown_conditions(metrics_by_split, aliases)
    any_split = next(iter(metrics_by_split.values()))
    out = [f"# {title}", "", "## Evaluation", "",
           f"Splits side by side: {', '.join(f'`{s}`' for s in metrics_by_split)}. Each value with its 95 % "
           "interval from a bootstrap over the test speakers (methods.md, Uncertainty). EER and minDCF "
           "(normalised NIST cost) as defined in `methods.md`; a trial is accepted when score >= threshold.", ""]
    out += ["### EER (%)", "", *_side_by_side(metrics_by_split, shown, repeats, "eer", 2, 100.0)]
    for header, key in _dcf_columns(any_split):
        out += [f"### {header}", "", *_side_by_side(metrics_by_split, shown, repeats, key, 4)]
    out += ["### Trials", "", *_counts(metrics_by_split, shown)]
    if isinstance(extra.get("calibration"), dict):
        out += _calibration(metrics_by_split, shown, extra["calibration"])
    if extra:
        out += ["## Run", ""]
        for key, value in extra.items():
            text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
            out.append(f"- **{key}**: `{text}`")
        out.append("")
    for caption, path in plots:
        out += [f"![{caption}]({path})", ""]
    return "\n".join(out)
