"""What the evaluation stage's new outputs cost: intervals, calibration, score files, per-split plots.

At SynthEmo v2's default size: eval and ood with 200 speakers each, valid with 100 (the
calibration trials), 2 sentences x 5 emotions per speaker, 20 non-targets per target
(:func:`data_prep.common.emotion_trials`, the lists v2 writes), random 192-d embeddings
with a speaker direction, an emotion offset and utterance noise. Timed, on the same
trials (one run each; a shared CPU is noisy, so read the ratios, not the last digit):

(a) parsing and scoring every trial list of eval and ood and the valid ``all`` list
    (what evaluation did before; the embedding extraction, which dominates a real run,
    is not included);
(b) the per-trial score files (``trial_scores.save_trial_scores``);
(c) the speaker-bootstrap intervals, 1,000 draws (``split_metrics.speaker_intervals``);
(d) the calibration: fit on valid ``all`` with ``duration_norm`` and Cllr / min Cllr /
    actual DCF of raw scores and LLRs of every condition (``split_metrics.calibrate_splits``);
(e) ``report.write_report`` (metrics.json, report.md, DET and histogram plots of both splits),
    against (e0) the report as it was: the eval split alone, its EER / minDCF only.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluation.py          # print the table
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluation.py --write  # also update bench/README.md
"""

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch
from readme_sections import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from data_prep.common import emotion_trials, write_trials  # noqa: E402
from speechbrain_ext import report, scoring, split_metrics, trial_scores  # noqa: E402
from speechbrain_ext.evaluation import ScoredSplit, score_lists  # noqa: E402

SECTION = "## Evaluation outputs"
EMOTIONS = ("neutral", "happy", "sad", "angry", "fear")


def make_split(root, name, n_speakers, rng, n_sentences=2, dim=192):
    """Rows, trial folder and embeddings of one split."""
    rows, ids, vectors = {}, [], []
    offsets = {e: rng.normal(scale=0.6, size=dim) for e in EMOTIONS}
    for s in range(n_speakers):
        spk = f"{name}{s:04d}"
        direction = rng.normal(size=dim)
        for j in range(n_sentences):
            for emo in EMOTIONS:
                utt = f"{spk}_{emo}_{j}"
                rows[utt] = {"ID": utt, "spk_id": spk, "emotion": emo, "text": f"t{j}",
                             "duration": float(rng.uniform(1.5, 5.0))}
                ids.append(utt)
                vectors.append(direction + offsets[emo] + rng.normal(scale=1.1, size=dim))
    trials_dir = os.path.join(root, "trials", name)
    for cond, trials in emotion_trials(list(rows.values()), seed=1, nontargets_per_target=20).items():
        write_trials(os.path.join(trials_dir, f"{cond}.txt"), trials)
    embeddings = torch.tensor(np.array(vectors), dtype=torch.float32) * torch.rand(len(ids), 1).add(0.5)
    return rows, ids, embeddings, trials_dir


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run(n_eval=200, n_valid=100, n_draws=1000):
    rng = np.random.default_rng(0)
    root = tempfile.mkdtemp()
    data = {"eval": make_split(root, "eval", n_eval, rng), "ood": make_split(root, "ood", n_eval, rng),
            "valid": make_split(root, "valid", n_valid, rng)}
    times, splits = {}, {}
    t_score = 0.0
    for name, (rows, ids, emb, trials_dir) in data.items():
        conditions = ["all"] if name == "valid" else None
        (trials, scores, enrol_map), t = timed(score_lists, ids, emb, trials_dir, conditions)
        t_score += t
        splits[name] = ScoredSplit(name, ids, emb, rows, trials, scores, enrol_map)
    calibration = splits.pop("valid")
    metrics = {n: scoring.evaluate_conditions(s.scores, split_metrics.P_TARGETS) for n, s in splits.items()}
    times["(a) parse and score every list (before)"] = t_score
    n_trials = sum(len(t) for s in splits.values() for t in s.trials.values())
    out = os.path.join(root, "report")
    saved, t_files, t_boot = {}, 0.0, 0.0
    for name, s in splits.items():
        saved[name], t = timed(lambda s=s, name=name: trial_scores.save_trial_scores(
            trial_scores.scores_path(out, name), s.scores, s.test_speakers(), {"split": name}))
        t_files += t
        (intervals, _), t = timed(split_metrics.speaker_intervals, saved[name], name, n_draws)
        t_boot += t
        for cond, values in metrics[name].items():
            values.update(intervals[cond])
    times["(b) per-trial score files"] = t_files
    times[f"(c) speaker-bootstrap intervals, {n_draws} draws"] = t_boot
    (_, cal_metrics, info, _), t = timed(split_metrics.calibrate_splits, calibration, splits, "duration_norm", 0.5,
                                      "cosine")
    times["(d) calibration: fit + Cllr / min Cllr / actual DCF of every condition"] = t
    for name, conditions in cal_metrics.items():
        for cond, values in conditions.items():
            metrics[name][cond].update(values)
    plain = scoring.evaluate_conditions(splits["eval"].scores, split_metrics.P_TARGETS)
    _, t = timed(report.write_report, os.path.join(root, "plain"), {"eval": plain}, {"eval": splits["eval"].scores},
                 "bench")
    times["(e0) report of the eval split alone (before)"] = t
    _, t = timed(report.write_report, out, metrics, {n: s.scores for n, s in splits.items()}, "bench",
                 extra={"calibration": info})
    times["(e) report: metrics.json, report.md, DET + histogram of both splits"] = t
    return times, n_trials, sum(len(s.ids) for s in splits.values())


def table(times, n_trials, n_utts, n_draws):
    before = times["(a) parse and score every list (before)"] + times["(e0) report of the eval split alone (before)"]
    extra = sum(v for k, v in times.items() if not k.startswith(("(a)", "(e0)")))
    extra -= times["(e0) report of the eval split alone (before)"]
    lines = [
        SECTION, "",
        "`speechbrain_ext.split_metrics` and the report of `speechbrain_ext.evaluation.evaluate`, at SynthEmo v2's "
        f"default size: eval + ood, {n_utts:,} utterances, {n_trials:,} trials over every condition of both splits; "
        "calibration fitted on valid `all` (100 speakers). Command:", "",
        "    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluation.py --write", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), Python "
        f"{platform.python_version()}, numpy {np.__version__}, load average {os.getloadavg()[0]:.1f} at the end. "
        "One run each (a shared CPU: read the ratios).", "",
        "| step | time (s) | x ((a) + (e0)) |", "|:---|---:|---:|",
    ]
    for key, value in times.items():
        lines.append(f"| {key} | {value:.2f} | {value / before:.2f} |")
    lines += ["", f"What the new outputs add, (b) + (c) + (d) + (e) - (e0): {extra:.1f} s, {extra / before:.1f}x what "
              "scoring and reporting the eval split took before, (a) + (e0). A real run also extracts the embeddings "
              "of every utterance (and, now, of the ood and valid splits), which this benchmark leaves out.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update bench/README.md")
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args(argv)
    times, n_trials, n_utts = run(n_draws=args.draws)
    text = table(times, n_trials, n_utts, args.draws)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
