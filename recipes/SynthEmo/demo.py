#!/usr/bin/env python3
"""`make demo`: the baseline, both papers' systems and the recommended one, side by side on SynthEmo.

    python recipes/SynthEmo/demo.py [--jobs N] [--threads N] [--rows NAME ...] [--set key=value ...]

Runs the suite ``recipes/SynthEmo/demo.yaml`` in stages with the time left
(:mod:`speechbrain_ext.suite_demo`): the corpus, every system's training and evaluation, the
Resemblyzer anchor, the choice of the system to publish (validation splits only) and its
export to ``results/demo/model``, the report ``results/demo/report.md`` (+ ``metrics.json``).
The same command resumes an interrupted demo; after a finished one it prints the summary again.
"""

import argparse
import logging
import os
import shlex
import sys

from speechbrain_ext.comparison_figures import Det  # noqa: F401  (sections of demo.yaml)
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.suite import load_suite
from speechbrain_ext.suite_publish import Publish  # noqa: F401
from speechbrain_ext.suite_runner import parse_settings


def parse_args(argv):
    """The command line (see the module docstring)."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(prog="python recipes/SynthEmo/demo.py", description=__doc__.split("\n")[0])
    p.add_argument("--suite", default=os.path.join(here, "demo.yaml"), help="the demo's suite file")
    p.add_argument("--out", default="results/demo", help="report, model and runs folder (default results/demo)")
    p.add_argument("--jobs", type=int, help="systems trained at once (default: the suite file's)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of each system (default: the suite file's)")
    p.add_argument("--rows", nargs="+", help="only these systems, by name (the baseline is always kept)")
    p.add_argument("--set", nargs="+", default=[], metavar="key=value", dest="settings",
                   help="recipe overrides of every system, e.g. number_of_epochs=1")
    p.add_argument("--draws", type=int, help="bootstrap draws of the intervals (default: the suite file's)")
    return p.parse_args(argv)


def load(args):
    """The demo's suite with the command line's changes; runs, report and model go under ``--out``."""
    settings = parse_settings(args.settings)
    rows = None
    if args.rows:
        reference = load_suite(args.suite).reference
        rows = [reference, *(r for r in args.rows if r != reference)]
    out = os.path.abspath(args.out)
    return load_suite(args.suite, rows=rows, settings=settings, runs=os.path.join(out, "runs"),
                      report=os.path.join(out, "report.md"), jobs=args.jobs, threads=args.threads, draws=args.draws)


def main(argv=None):
    """Run the demo; returns the exit status (1 with one ``error:`` line on bad input)."""
    from speechbrain_ext.suite_demo import run_demo

    argv = sys.argv[1:] if argv is None else argv
    try:
        suite = load(parse_args(argv))
        return run_demo(suite, command=shlex.join(["python", "recipes/SynthEmo/demo.py", *argv]))
    except SpeechBrainExtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
