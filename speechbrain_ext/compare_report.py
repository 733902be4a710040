"""Markdown + JSON report of a comparison, and the ``python -m speechbrain_ext.compare`` command.

:func:`build_report` gathers, per split, the summary of every system, the paired
differences against a reference and the resolution of the trial set
(:class:`speechbrain_ext.compare.SplitComparison`); :func:`render_markdown` turns it
into tables; :func:`write_report` writes both files atomically.
"""

import argparse
import math
import shlex
import sys

from .bootstrap import metric_keys
from .bootstrap_llr import llr_metric_keys
from .compare import SCORES, ComparisonError, SplitComparison
from .errors import SpeechBrainExtError
from .files import atomic_write, atomic_write_json

__all__ = ["build_report", "main", "parse_system", "render_markdown", "write_report"]

FORMAT = "speechbrain_ext.compare/1"
_RESOLUTION = {
    True: "One trial moves a metric by its step (a miss: 1/(2·targets) of EER, c_miss·p/(C_def·targets) of "
          "minDCF; a false alarm: 1/(2·non-targets), c_fa·(1−p)/(C_def·non-targets)); the half-width is the "
          "median over the compared systems of the difference interval's. A difference below the larger of "
          "the two cannot be resolved on this trial set.",
    False: "The half-width is the median over the compared systems of the difference interval's: a difference "
           "below it cannot be resolved on this trial set (an LLR metric has no fixed one-trial step).",
}


def _clean(value):
    """JSON-safe copy: NaN becomes None, tuples lists, numpy scalars Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(comparisons, reference=None, command=None):
    """The report of one or more splits as a JSON-ready dict.

    Arguments
    ---------
    comparisons : list of SplitComparison
        One per split, all with the same settings.
    reference : str or None
        System that every other is compared with (no differences when None).
    command : str or None
        The command that produced it (printed in the report).

    Example
    -------
    >>> import numpy as np
    >>> from speechbrain_ext.trial_scores import TrialScores
    >>> lab = np.array([1, 0] * 4, np.int8); spk = np.repeat(np.arange(4), 2).astype(np.int32)
    >>> ts = TrialScores("r", tuple("ABCD"), {"all": (np.array([.9, .1, .2, .3] * 2), lab, spk)})
    >>> rep = build_report([SplitComparison({"a": [ts], "b": [ts]}, n_draws=20)], reference="a")
    >>> sorted(rep["splits"]["eval"]), rep["splits"]["eval"]["differences"][0]["system"]
    (['aliases', 'differences', 'n_speakers', 'resolution', 'summary', 'systems'], 'b')
    """
    if not comparisons:
        raise ComparisonError("no split to report")
    first = comparisons[0]
    report = {
        "format": FORMAT,
        "command": command,
        "settings": {"n_draws": first.n_draws, "seed": first.seed, "level": first.level,
                     "p_targets": list(first.p_targets), "reference": reference, "measure": first.measure},
        "splits": {},
    }
    for cmp in comparisons:
        if reference is not None and reference not in cmp.systems:
            raise ComparisonError(f"reference {reference!r} is not one of the systems {list(cmp.systems)}")
        differences = []
        if reference is not None:
            for name in cmp.systems:
                if name != reference:
                    differences += cmp.difference(name, reference)
        report["splits"][cmp.split] = {
            "n_speakers": len(cmp.speakers),
            "systems": {n: {"runs": [r.path for r in runs], "seeds": [r.seed for r in runs]}
                        for n, runs in cmp.systems.items()},
            "aliases": cmp.aliases,
            "summary": cmp.summary(),
            "differences": differences,
            "resolution": cmp.resolution(differences),
        }
    return _clean(report)


def _label(key):
    """Column name of a metric key.

    Example
    -------
    >>> [_label(k) for k in ("eer", "min_dcf_p0.01", "cllr", "act_dcf_p0.05")]
    ['EER (%)', 'minDCF(0.01)', 'Cllr', 'actDCF(0.05)']
    """
    if key == "eer":
        return "EER (%)"
    if key == "cllr":
        return "Cllr"
    kind, _, prior = key.rpartition("_p")
    return f"{'minDCF' if kind == 'min_dcf' else 'actDCF'}({prior})"


def _num(key, value, signed=False):
    """EER in % (points for a difference), minDCF as is; ``n/a`` for a missing value.

    Example
    -------
    >>> _num("eer", 0.05912), _num("min_dcf_p0.01", -0.0123, signed=True), _num("eer", None)
    ('5.91', '-0.012', 'n/a')
    """
    if value is None:
        return "n/a"
    text = f"{100 * value:{'+' if signed else ''}.2f}" if key == "eer" else f"{value:{'+' if signed else ''}.3f}"
    return text.replace("+0.00", "0.00").replace("-0.00", "0.00") if signed and float(text) == 0 else text


def _with_interval(key, m, value_key, signed=False):
    return f"{_num(key, m[value_key], signed)} [{_num(key, m['low'], signed)}, {_num(key, m['high'], signed)}]"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _summary_table(split, keys):
    header = ["condition", "system", "runs"] + [f"{_label(k)} [95 % CI]" for k in keys]
    rows = [[f"`{r['condition']}`", r["system"], r["n_runs"]] + [_with_interval(k, r["metrics"][k], "value")
                                                                   for k in keys] for r in split["summary"]]
    return _table(header, rows)


def _difference_table(split, keys):
    header = ["condition", "system", "seeds"]
    for k in keys:
        header += [f"Δ {_label(k).replace('(%)', '(points)')} [95 % CI]", "verdict"]
    rows = []
    for d in split["differences"]:
        pairing = "paired" if d["paired_seeds"] else "unpaired" if max(d["n_runs"]) > 1 else "1 run each"
        row = [f"`{d['condition']}`", d["system"], pairing]
        for k in keys:
            m = d["metrics"][k]
            row += [_with_interval(k, m, "difference", signed=True), f"**{m['verdict']}**"]
        rows.append(row)
    return _table(header, rows)


def _resolution_table(split, keys):
    header = ["condition", "targets", "non-targets", "speakers"]
    header += [f"{_label(k).replace('(%)', '(points)')}: 1 miss / 1 FA" for k in keys]
    header += [f"half-width Δ {_label(k).replace('(%)', '(points)')}" for k in keys]
    rows = []
    for r in split["resolution"]:
        row = [f"`{r['condition']}`", f"{r['n_target']:,}", f"{r['n_nontarget']:,}", r["n_speakers"]]
        row += [" / ".join(_num(k, s) if k == "eer" else f"{s:.4f}" for s in r["steps"][k]) if k in r["steps"]
                else "–" for k in keys]
        row += ["–" if r["half_width"][k] is None else _num(k, r["half_width"][k]) for k in keys]
        rows.append(row)
    return _table(header, rows)


def render_markdown(report, title="System comparison"):
    """The report as markdown: per split, systems, paired differences, resolution.

    Example
    -------
    >>> import numpy as np
    >>> from speechbrain_ext.trial_scores import TrialScores
    >>> lab = np.array([1, 0] * 4, np.int8); spk = np.repeat(np.arange(4), 2).astype(np.int32)
    >>> ts = TrialScores("r", tuple("ABCD"), {"all": (np.array([.9, .1] * 4), lab, spk)})
    >>> text = render_markdown(build_report([SplitComparison({"a": [ts]}, n_draws=20)]))
    >>> print(text.splitlines()[0]); print([l for l in text.splitlines() if l.startswith("| `all`")][0])
    # System comparison
    | `all` | a | 1 | 0.00 [0.00, 0.00] | 0.000 [0.000, 0.000] | 0.000 [0.000, 0.000] |
    """
    s = report["settings"]
    measure = s.get("measure", SCORES)
    keys = (metric_keys if measure == SCORES else llr_metric_keys)(s["p_targets"])
    level = f"{100 * s['level']:g} %"
    lines = [f"# {title}", ""]
    if report.get("command"):
        lines += [f"Command: `{report['command']}`", ""]
    if measure != SCORES:
        lines += [f"Compared: the `{measure}` LLRs of the score files (Cllr, actual DCF at the Bayes threshold), "
                  "not the scores.", ""]
    lines += [
        f"Every value has its {level} interval: percentile bootstrap over {s['n_draws']:,} draws (seed {s['seed']}) "
        "that resample the test speakers with replacement, keeping all trials of a drawn speaker, and for a "
        "system with several runs also resample its runs (the value is the mean over runs). Differences are "
        "system − reference on the same draws: negative means fewer errors; runs are paired by seed when both "
        "systems have the same seeds (\"paired\"), otherwise resampled independently (\"unpaired\"). "
        "The verdict is \"better\"/\"worse\" only when the interval of the difference excludes 0; each "
        "interval holds for its own cell, so across many cells about 1 in 20 true-zero differences still gets one.",
        "",
    ]
    for split_name, split in report["splits"].items():
        lines += [f"## Split `{split_name}` ({split['n_speakers']} test speakers)", ""]
        for name, info in split["systems"].items():
            seeds = ", ".join("?" if x is None else str(x) for x in info["seeds"])
            lines.append(f"- {name}: {len(info['runs'])} run(s), seeds {seeds}")
        for kept, others in split["aliases"].items():
            lines.append(f"- `{kept}` is also " + ", ".join(f"`{o}`" for o in others)
                         + " (identical trials and scores in every run): shown once")
        undefined = [r for r in split["summary"] if r["undefined_draws"]]
        for r in undefined:
            lines.append(f"- {r['system']} / `{r['condition']}`: {r['undefined_draws']} draw(s) without a target "
                         "or non-target trial, left out of the interval")
        lines += ["", "### Every system", ""] + _summary_table(split, keys) + [""]
        if split["differences"]:
            lines += [f"### Paired differences vs {s['reference']}", ""] + _difference_table(split, keys) + [""]
        lines += ["### What the trial set can resolve", "", _RESOLUTION[measure == SCORES], ""]
        lines += _resolution_table(split, keys) + [""]
    return "\n".join(lines)


def write_report(path, report, json_path=None, title="System comparison"):
    """Write the markdown report to ``path`` and the JSON to ``json_path`` (default: ``.json`` beside it).

    Example
    -------
    >>> import json, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "cmp.md")
    >>> rep = {"format": FORMAT, "settings": {"n_draws": 1, "seed": 0, "level": 0.95, "p_targets": [0.01],
    ...        "reference": None}, "splits": {}}
    >>> write_report(p, rep)[1].endswith("cmp.json"), json.load(open(p[:-3] + ".json"))["format"]
    (True, 'speechbrain_ext.compare/1')
    """
    json_path = json_path or (path[:-3] if path.endswith(".md") else path) + ".json"
    with atomic_write(path) as f:
        f.write(render_markdown(report, title) + "\n")
    atomic_write_json(json_path, report, allow_nan=False)
    return path, json_path


def parse_system(spec):
    """``"NAME=RUN[,RUN...]"`` → ``(name, [runs])``.

    Example
    -------
    >>> parse_system("baseline=runs/a,runs/b")
    ('baseline', ['runs/a', 'runs/b'])
    >>> parse_system("runs/a")
    Traceback (most recent call last):
    ...
    speechbrain_ext.compare.ComparisonError: 'runs/a': expected SYSTEM=RUN_DIR[,RUN_DIR...]
    """
    name, sep, runs = spec.partition("=")
    runs = [r for r in runs.split(",") if r]
    if not sep or not name.strip() or not runs:
        raise ComparisonError(f"{spec!r}: expected SYSTEM=RUN_DIR[,RUN_DIR...]")
    return name.strip(), runs


def _arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.compare",
        description="Compare systems (sets of runs) with speaker-bootstrap intervals and paired differences.",
    )
    parser.add_argument("systems", nargs="+", metavar="SYSTEM=RUN_DIR[,RUN_DIR...]",
                        help="a system name and its runs (folders with scores/<split>.npz or report/scores/...)")
    parser.add_argument("--reference", help="system that every other one is compared with")
    parser.add_argument("--split", nargs="+", default=["eval"], help="splits to report (default: eval)")
    parser.add_argument("--out", required=True, help="markdown report path")
    parser.add_argument("--json", help="JSON report path (default: --out with .json)")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--p-target", type=float, nargs="+", default=[0.01, 0.05], help="minDCF priors")
    parser.add_argument("--conditions", nargs="+", help="only these conditions (default: all)")
    parser.add_argument("--llr", metavar="KIND", help="compare the runs' LLRs of this kind (calibrated, plain): "
                        "Cllr and actual DCF instead of EER and minDCF")
    parser.add_argument("--title", default="System comparison")
    return parser.parse_args(argv)


def main(argv=None):
    """Command-line entry point; returns the exit status (1 with one ``error:`` line on bad input).

    Example
    -------
    >>> main(["a=x", "a=y", "--out", "r.md"])  # prints "error: system 'a' is given twice" to stderr
    1
    """
    args = _arguments(argv)
    try:
        systems = {}
        for spec in args.systems:
            name, runs = parse_system(spec)
            if name in systems:
                raise ComparisonError(f"system {name!r} is given twice")
            systems[name] = runs
        options = {"n_draws": args.draws, "seed": args.seed, "level": args.level,
                   "p_targets": args.p_target, "conditions": args.conditions, "measure": args.llr or SCORES}
        comparisons = [SplitComparison(systems, split, **options) for split in args.split]
        # quoted, so that the report's command line can be pasted back into a shell (a --title has spaces)
        command = shlex.join(["python", "-m", "speechbrain_ext.compare", *(sys.argv[1:] if argv is None else argv)])
        report = build_report(comparisons, args.reference, command)
        paths = write_report(args.out, report, args.json, args.title)
    except SpeechBrainExtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("wrote " + " and ".join(paths))
    return 0
