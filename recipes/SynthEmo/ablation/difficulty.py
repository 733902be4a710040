#!/usr/bin/env python3
"""How much do SynthEmo's emotions cost a speaker model? The baseline on corpora of several emotion strengths.

For each ``expressiveness_mean`` given (the voice-space key that scales every speaker's emotion
presets, ``data_prep/voices.py``), the recipe generates SynthEmo with that value into
``<data-root>/SynthEmo_expr<m>`` (1.0 is the default corpus, ``data/SynthEmo``), trains the
baseline (``../hparams/ecapa_aam.yaml`` at its own settings, each seed given) and scores only
its VALIDATION splits (valid, ood_valid): a default chosen from this table never saw eval or ood.
The table gives EER (%) of the selected checkpoint, mean ± std over the seeds, on all trials, on
neutral-enrolment / emotional-test trials (n→e) and on neutral / neutral trials (n→n): their
difference is what emotion costs; and the ood_valid / valid ratio of the means.

    python recipes/SynthEmo/ablation/difficulty.py 1.0 1.6 2.2 [--jobs 2] [--seeds 1986 1987] \\
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

import numpy as np

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
        log_path = os.path.join(out, f"log_seed{seed}.txt")
        with open(log_path, "w") as log:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"expressiveness_mean {mean:g}, seed {seed}: the recipe failed "
                               f"(exit {done.returncode}); see {log_path}")
        print(f"expressiveness_mean {mean:g}, seed {seed}: {time.time() - start:.0f} s", flush=True)
    with open(metrics) as f:
        return json.load(f)


def table(results):
    """Markdown rows: EER % (mean ± std over seeds) per validation split and condition, one row per strength.

    Arguments
    ---------
    results : dict
        ``{expressiveness_mean: [metrics.json of each seed]}``.

    Example
    -------
    >>> m = lambda e: {"splits": {s: {"conditions": {c: {"eer": e} for c in CONDITIONS}} for s in SPLITS}}
    >>> table({1.0: [m(0.02), m(0.04)]})[-1]
    '| 1 | 2 | 3.00 ± 1.41 | 3.00 ± 1.41 | 3.00 ± 1.41 | 3.00 ± 1.41 | 3.00 ± 1.41 | 3.00 ± 1.41 | 1.00, 1.00 |'
    """
    names = {"all": "all", "neutral_emotional": "n→e", "neutral_neutral": "n→n"}
    head = " | ".join(f"{s} {names[c]}" for s in SPLITS for c in CONDITIONS)
    lines = [f"| expressiveness_mean | seeds | {head} | {SPLITS[1]} / {SPLITS[0]} (all, n→e) |",
             "|---:|---:|" + "---:|" * (len(SPLITS) * len(CONDITIONS) + 1)]
    for mean, runs in sorted(results.items()):
        eer = {(s, c): np.array([100 * m["splits"][s]["conditions"][c]["eer"] for m in runs])
               for s in SPLITS for c in CONDITIONS}
        cells = [f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if v.size > 1 else f"{v.mean():.2f}" for v in eer.values()]
        ratios = [eer[(SPLITS[1], c)].mean() / eer[(SPLITS[0], c)].mean() for c in ("all", "neutral_emotional")]
        lines.append(f"| {mean:g} | {len(runs)} | " + " | ".join(cells) + " | "
                     + ", ".join(f"{r:.2f}" for r in ratios) + " |")
    return lines


def main(argv=None):
    """Run every emotion strength (``--jobs`` at a time) and write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("means", nargs="+", type=float, help="expressiveness_mean values (1.0: the default corpus)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1986])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-root", default="data")
    p.add_argument("--runs", default="results/difficulty")
    p.add_argument("--report", default="results/difficulty_expressiveness.md")
    a = p.parse_args(argv)
    if len(set(a.means)) != len(a.means) or min(a.means) <= 0:
        p.error(f"expressiveness_mean values must be distinct and > 0, got {a.means}")
    if len(set(a.seeds)) != len(a.seeds):
        p.error(f"seeds must be distinct, got {a.seeds}")
    todo = [(m, seed) for seed in a.seeds for m in a.means]
    with ThreadPoolExecutor(a.jobs) as pool:
        metrics = list(pool.map(lambda job: run(*job, a.data_root, a.runs), todo))
    done = {m: [x for (mean, _), x in zip(todo, metrics) if mean == m] for m in a.means}
    lines = [
        "# SynthEmo: what emotion costs the baseline, per emotion strength", "",
        f"`python {os.path.relpath(__file__)} {' '.join(f'{m:g}' for m in a.means)} --seeds "
        f"{' '.join(map(str, a.seeds))}`: the baseline (`ecapa_aam.yaml`, its own settings) trained on SynthEmo "
        "generated with each `expressiveness_mean`; EER (%) of the checkpoint selected on valid, mean ± std over "
        "the seeds, VALIDATION speakers only (eval and ood not scored). n→e: neutral enrolment, emotional test; "
        "n→n: neutral / neutral; the ratio is of the means. A choice of corpus setting on the validation "
        "speakers, not a verdict.", "",
        *table(done), "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
    with open(a.report, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
