#!/usr/bin/env python3
"""How much do SynthEmo's emotions cost a speaker model? The baseline on corpora of several emotion strengths.

For each ``expressiveness_mean`` given (the voice-space key that scales every speaker's emotion
presets, ``data_prep/voices.py``), the recipe generates SynthEmo with that value into
``<data-root>/SynthEmo_expr<m>`` (1.0 is the default corpus, ``data/SynthEmo``), trains the
baseline (``../hparams/ecapa_aam.yaml`` at its own settings, one seed) and scores only its
VALIDATION splits (valid, ood_valid): a default chosen from this table never saw eval or ood.
The table gives EER (%) of the selected checkpoint on all trials, on neutral-enrolment /
emotional-test trials and on neutral / neutral trials: their difference is what emotion costs.

    python recipes/SynthEmo/ablation/difficulty.py 1.0 1.6 2.2 [--jobs 2] [--seed 1986] \\
        [--runs results/difficulty] [--report results/difficulty_expressiveness.md]

Resumable: a finished run (its ``report/metrics.json``) is not trained again.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

RECIPE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(RECIPE, "hparams", "ecapa_aam.yaml")
SPLITS = ("valid", "ood_valid")
CONDITIONS = ("all", "neutral_emotional", "neutral_neutral")


def data_folder(root, mean):
    """Where the corpus of one emotion strength goes.

    Example
    -------
    >>> data_folder("data", 1.0), data_folder("data", 1.6)
    ('data/SynthEmo', 'data/SynthEmo_expr1.6')
    """
    return os.path.join(root, "SynthEmo" if mean == 1.0 else f"SynthEmo_expr{mean:g}")


def command(mean, seed, data_root, runs):
    """The recipe's command line for one emotion strength (validation splits scored, eval and ood not)."""
    out = os.path.join(runs, f"expr{mean:g}")
    manifests = os.path.join(out, "manifests")
    scored = {"eval": None, "ood": None}
    scored.update({s: {"annotation": f"{manifests}/{s}.csv", "trials": f"{manifests}/trials/{s}"} for s in SPLITS})
    return out, [
        sys.executable, os.path.join(RECIPE, "train.py"), HPARAMS, "--seed", str(seed),
        "--data_folder", data_folder(data_root, mean), "--output_root", out, "--manifest_folder", manifests,
        "--voice_space", json.dumps({"expressiveness_mean": mean}), "--eval_splits", json.dumps(scored),
    ]


def run(mean, seed, data_root, runs):
    """Train (unless finished) and return the selected checkpoint's metrics."""
    out, cmd = command(mean, seed, data_root, runs)
    metrics = os.path.join(out, "ecapa_aam", f"seed{seed}", "report", "metrics.json")
    if not os.path.isfile(metrics):
        os.makedirs(out, exist_ok=True)
        start = time.time()
        with open(os.path.join(out, "log.txt"), "w") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"expressiveness_mean {mean:g}: the recipe failed (exit {done.returncode}); "
                               f"see {os.path.join(out, 'log.txt')}")
        print(f"expressiveness_mean {mean:g}: {time.time() - start:.0f} s", flush=True)
    with open(metrics) as f:
        return json.load(f), " ".join(cmd)


def table(results):
    """Markdown rows: EER % per validation split and condition, one row per emotion strength.

    Example
    -------
    >>> m = {"splits": {s: {"conditions": {c: {"eer": 0.02} for c in CONDITIONS}} for s in SPLITS}}
    >>> table({1.0: m})[-1]
    '| 1 | 2.00 | 2.00 | 2.00 | +0.00 | 2.00 | 2.00 | 2.00 | +0.00 |'
    """
    head = " | ".join(f"{s} all | {s} n→e | {s} n→n | {s} n→e − n→n" for s in SPLITS)
    lines = [f"| expressiveness_mean | {head} |", "|---:|" + "---:|" * 4 * len(SPLITS)]
    for mean, metrics in sorted(results.items()):
        cells = []
        for split in SPLITS:
            eer = {c: 100 * metrics["splits"][split]["conditions"][c]["eer"] for c in CONDITIONS}
            cells += [f"{eer[c]:.2f}" for c in CONDITIONS]
            cells.append(f"{eer['neutral_emotional'] - eer['neutral_neutral']:+.2f}")
        lines.append(f"| {mean:g} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    """Run every emotion strength (``--jobs`` at a time) and write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("means", nargs="+", type=float, help="expressiveness_mean values (1.0: the default corpus)")
    p.add_argument("--seed", type=int, default=1986)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-root", default="data")
    p.add_argument("--runs", default="results/difficulty")
    p.add_argument("--report", default="results/difficulty_expressiveness.md")
    a = p.parse_args(argv)
    if len(set(a.means)) != len(a.means) or min(a.means) <= 0:
        p.error(f"expressiveness_mean values must be distinct and > 0, got {a.means}")
    with ThreadPoolExecutor(a.jobs) as pool:
        done = dict(zip(a.means, pool.map(lambda m: run(m, a.seed, a.data_root, a.runs), a.means)))
    lines = [
        "# SynthEmo: what emotion costs the baseline, per emotion strength", "",
        f"`python {os.path.relpath(__file__)} {' '.join(f'{m:g}' for m in a.means)} --seed {a.seed}`: the "
        "baseline (`ecapa_aam.yaml`, its own settings, one seed) trained on SynthEmo generated with each "
        "`expressiveness_mean`; EER (%) of the checkpoint selected on valid, VALIDATION speakers only "
        "(eval and ood not scored). n→e: neutral enrolment, emotional test; n→n: neutral / neutral. "
        "One seed, no interval: a choice of corpus setting, not a verdict.", "",
        *table({m: metrics for m, (metrics, _) in done.items()}), "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
    with open(a.report, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
