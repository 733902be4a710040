"""Benchmark of the calibration back-end (``speechbrain_ext.calibration`` and friends).

On 1,000,000 random trials (10 % targets) over 50,000 utterances, best of 3 runs:

(a) ``fit_calibration`` on the score alone and with the six ``"qmf"`` quality measures;
(b) ``min_cllr`` with scipy's ``isotonic_regression`` and with the numpy PAV fallback
    (the ratio is what a user of scipy < 1.12 pays), on continuous and on rounded scores;
(c) ``llr_metrics`` (Cllr, min Cllr, EER, actual and minimum DCF at p = 0.01);
(d) gathering metadata (``side_metadata``, both sides) and ``trial_quality``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_calibration.py          # print the table
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_calibration.py --write  # also update bench/README.md
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
from readme_sections import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain_ext.calibration import fit_calibration  # noqa: E402
from speechbrain_ext.calibration_metrics import llr_metrics, min_cllr  # noqa: E402
from speechbrain_ext.quality import side_metadata, trial_quality  # noqa: E402

README = os.path.join(ROOT, "bench", "README.md")
SECTION = "## Calibration back-end"


def make_trials(n_trials, n_utts, seed=0):
    rng = np.random.default_rng(seed)
    utt_ids = np.array([f"u{i:06d}" for i in range(n_utts)])
    meta = {
        "duration": np.exp(rng.uniform(0.0, 3.4, n_utts)),
        "norm": rng.uniform(10.0, 30.0, n_utts),
        "cohort_mean": rng.uniform(0.0, 0.3, n_utts),
    }
    enrol, test = rng.integers(0, n_utts, n_trials), rng.integers(0, n_utts, n_trials)
    labels = rng.random(n_trials) < 0.1
    scores = np.where(labels, rng.normal(0.6, 0.15, n_trials), rng.normal(0.1, 0.1, n_trials))
    return utt_ids, meta, utt_ids[enrol], utt_ids[test], scores, labels


def best_of(repeats, fn, *args, **kwargs):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times)


def gather_quality(enrol_ids, test_ids, utt_ids, meta):
    enrol = side_metadata(enrol_ids, utt_ids, meta)
    test = side_metadata(test_ids, utt_ids, meta)
    return trial_quality("qmf", enrol, test)


def measure(n_trials=1_000_000, n_utts=50_000, repeats=3):
    utt_ids, meta, enrol_ids, test_ids, scores, labels = make_trials(n_trials, n_utts)
    quality = gather_quality(enrol_ids, test_ids, utt_ids, meta)
    rounded = np.round(scores, 3)
    rows = [
        ("(a) fit, score only", best_of(repeats, fit_calibration, scores, labels)),
        ("(a) fit, score + 6 QMF measures", best_of(repeats, fit_calibration, scores, labels, quality)),
        ("(b) min Cllr, scipy PAV, continuous scores", best_of(repeats, min_cllr, scores, labels)),
        ("(b) min Cllr, numpy PAV, continuous scores",
         best_of(repeats, min_cllr, scores, labels, use_scipy=False)),
        ("(b) min Cllr, scipy PAV, scores rounded to 1e-3", best_of(repeats, min_cllr, rounded, labels)),
        ("(b) min Cllr, numpy PAV, scores rounded to 1e-3",
         best_of(repeats, min_cllr, rounded, labels, use_scipy=False)),
        ("(c) llr_metrics (Cllr, min Cllr, EER, actDCF, minDCF)", best_of(repeats, llr_metrics, scores, labels)),
        ("(d) side_metadata x 2 + trial_quality('qmf')",
         best_of(repeats, gather_quality, enrol_ids, test_ids, utt_ids, meta)),
    ]
    ratio = rows[3][1] / rows[2][1]
    return rows, ratio


def table(rows, ratio, n_trials):
    lines = [
        "`speechbrain_ext.calibration`, `.calibration_metrics`, `.quality` on "
        f"{n_trials:,} random trials (10 % targets, 50,000 utterances). Command:",
        "",
        "    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_calibration.py --write",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), "
        f"Python {platform.python_version()}, numpy {np.__version__}. Best of 3 runs.",
        "",
        "| measurement | time |",
        "|:---|---:|",
    ]
    lines += [f"| {name} | {seconds * 1000:,.0f} ms |" for name, seconds in rows]
    lines += ["", f"numpy PAV / scipy PAV on continuous scores: {ratio:.2f}x."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="rewrite this script's section of bench/README.md")
    args = parser.parse_args(argv)
    rows, ratio = measure(args.trials)
    text = table(rows, ratio, args.trials)
    print(text)
    if args.write:
        write_section(SECTION, text, README)


if __name__ == "__main__":
    main()
