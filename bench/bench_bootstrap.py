"""Benchmark of the speaker bootstrap and the run comparison (``speechbrain_ext.bootstrap`` / ``compare``).

(a) A realistic ablation report, end to end: fabricated per-trial score files of
    6 systems x 5 seeds x 10 conditions x 2 splits (20,000-50,000 trials per
    condition, 200 test speakers), then ``python -m speechbrain_ext.compare`` in a
    fresh subprocess with 1,000 draws: wall time, CPU time and peak RSS of that
    process (imports included).
(b) One (run, condition) of 35,000 trials, 1,000 draws: the checkpoint/segment path
    of :class:`SpeakerTrials` against the plain vectorised one that the method
    describes (per draw, the weight of every trial and weighted cumulative sums over
    all of them), which is :func:`weighted_metrics`; the two must agree exactly.
    Times are CPU seconds of this process (best of 3), less sensitive than wall time
    to the other jobs on a shared machine; the ratio is what to read.
(c) Coverage: a population of 40,000 speakers whose targets and non-targets are
    shifted per speaker gives a "true" EER; repeatedly draw 100 speakers from it and
    count how often the 95 % interval holds that EER, for the speaker bootstrap and,
    for contrast, for a bootstrap over trials (which ignores that a speaker's trials
    move together).

Usage::

    .venv/bin/python bench/bench_bootstrap.py            # print the table
    .venv/bin/python bench/bench_bootstrap.py --write    # also update bench/README.md
"""

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
from readme_sections import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain_ext.bootstrap import (  # noqa: E402
    SpeakerTrials,
    percentile_interval,
    speaker_draws,
    weighted_metrics,
)
from speechbrain_ext.trial_scores import save_trial_scores, scores_path  # noqa: E402

README = os.path.join(ROOT, "bench", "README.md")
SECTION = "## Speaker bootstrap and run comparison"


def fabricate(root, args):
    """Write the score files of every run; returns ``{system: [run folder, ...]}``."""
    rng = np.random.default_rng(0)
    names = np.array([f"spk{i:04d}" for i in range(args.speakers)])
    lists = {}
    for split in args.splits:
        for c in range(args.conditions):
            n = int(rng.integers(args.min_trials, args.max_trials + 1))
            speakers = rng.integers(0, args.speakers, n)
            lists[split, f"cond{c:02d}"] = (speakers, (rng.random(n) < 0.1).astype(np.int8))
    systems = {}
    for s in range(args.systems):
        separation = 2.0 + 0.15 * s
        for seed in range(args.seeds):
            folder = os.path.join(root, f"sys{s}-seed{seed}")
            run_rng = np.random.default_rng([s, seed])
            speaker_shift = run_rng.normal(0, 0.3, args.speakers)
            for split in args.splits:
                scores, test_speakers = {}, {}
                for (sp, cond), (spk, labels) in lists.items():
                    if sp != split:
                        continue
                    noise = run_rng.normal(size=labels.size) + speaker_shift[spk]
                    scores[cond] = ((noise + separation * labels) / 10).astype(np.float32), labels
                    test_speakers[cond] = names[spk]
                save_trial_scores(scores_path(folder, split), scores, test_speakers, {"seed": seed})
            systems.setdefault(f"system{s}", []).append(folder)
    return systems


def end_to_end(systems, args, out_dir):
    command = [sys.executable, "-m", "speechbrain_ext.compare", "--reference", "system0",
               "--split", *args.splits, "--draws", str(args.draws), "--out", os.path.join(out_dir, "report.md")]
    command += [f"{name}={','.join(runs)}" for name, runs in systems.items()]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OPENBLAS_NUM_THREADS": str(args.threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(os.path.join(out_dir, "report.md"), encoding="utf-8") as f:
        verdicts = f.read().count("**better**")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": after.ru_maxrss / 1024, "better_cells": verdicts}


def cpu_best(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def one_condition(args):
    rng = np.random.default_rng(1)
    n, n_spk = args.single_trials, args.speakers
    speakers = rng.integers(0, n_spk, n)
    labels = (rng.random(n) < 0.1).astype(np.int8)
    scores = ((rng.normal(size=n) + rng.normal(0, 0.3, n_spk)[speakers] + 2.5 * labels) / 10).astype(np.float32)
    counts = speaker_draws(n_spk, args.draws, seed=0)
    fast_s, fast = cpu_best(lambda: SpeakerTrials(scores, labels, speakers, n_spk).metrics(counts), args.repeats)
    plain_s, plain = cpu_best(lambda: weighted_metrics(scores, labels, counts[:, speakers]), args.repeats)
    same = all(np.array_equal(fast[k], plain[k], equal_nan=True) for k in fast)
    return {"trials": n, "fast_s": fast_s, "plain_s": plain_s, "identical": same}


def population_sample(rng, n_speakers, per_speaker=60):
    """Scores of a fabricated population: per-speaker target and non-target shifts."""
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    labels = (rng.random(speakers.size) < 0.2).astype(np.int8)
    target_shift, nontarget_shift = rng.normal(0, 0.6, n_speakers), rng.normal(0, 0.3, n_speakers)
    noise = rng.normal(size=speakers.size)
    scores = noise + labels * (2.0 + target_shift[speakers]) + (1 - labels) * nontarget_shift[speakers]
    return scores, labels, speakers


def coverage(args):
    rng = np.random.default_rng(0)
    scores, labels, _ = population_sample(rng, 40_000)
    true = SpeakerTrials(scores, labels, np.zeros(labels.size, int), 1).metrics([[1]], (0.01,))["eer"][0]
    hits = {"speakers": 0, "trials": 0}
    for i in range(args.coverage_samples):
        s, y, g = population_sample(rng, args.coverage_speakers)
        for kind, groups in (("speakers", g), ("trials", np.arange(y.size))):
            n_groups = int(groups.max()) + 1
            draws = speaker_draws(n_groups, args.draws if kind == "speakers" else 300, seed=i)
            eer = SpeakerTrials(s, y, groups, n_groups).metrics(draws, (0.01,))["eer"]
            low, high = percentile_interval(eer)
            hits[kind] += int(low <= true <= high)
    return {"true_eer": true, **{k: v / args.coverage_samples for k, v in hits.items()}}


def render(res, args, command):
    e, o = res["end_to_end"], res["one"]
    n_runs = args.systems * args.seeds
    cells = n_runs * args.conditions * len(args.splits)
    load = ", ".join(f"{x:.1f}" for x in res["load"])
    lines = [
        "`speechbrain_ext.bootstrap` (speaker bootstrap of EER and normalised minDCF, many draws at once) and "
        "`python -m speechbrain_ext.compare` (intervals, paired differences, report). Command:",
        "",
        f"    {command}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared; load average {load} "
        f"before the run), Python {platform.python_version()}, numpy {np.__version__}, "
        f"{args.threads} BLAS thread(s). Fabricated runs; the scores only need to overlap.",
        "",
        "| measurement | value |",
        "|:---|---:|",
        f"| (a) report: {args.systems} systems x {args.seeds} seeds x {args.conditions} conditions x "
        f"{len(args.splits)} splits = {cells} (run, condition) lists, {args.min_trials:,}-{args.max_trials:,} "
        f"trials each, {args.speakers} speakers, {args.draws:,} draws, wall | {e['wall_s']:.1f} s |",
        f"| (a) same, CPU time of the process | {e['cpu_s']:.1f} s |",
        f"| (a) same, peak RSS of the process | {e['peak_rss_mib']:.0f} MiB |",
        f"| (a) CPU per (run, condition) list, all {args.draws:,} draws and the point estimate | "
        f"{1000 * e['cpu_s'] / cells:.0f} ms |",
        f"| (b) one list of {o['trials']:,} trials, {args.draws:,} draws, checkpoints + segments (CPU) | "
        f"{1000 * o['fast_s']:.0f} ms |",
        f"| (b) same, plain weighted cumulative sums over every trial (CPU) | {1000 * o['plain_s']:.0f} ms |",
        f"| (b) ratio plain / checkpoints | {o['plain_s'] / o['fast_s']:.1f}x |",
        "",
        f"(b) results identical draw by draw: {'yes' if o['identical'] else 'NO'}. "
        f"The report held {e['better_cells']} \"better\" verdict cells (systems are built increasingly separated). "
        "Wall time includes waiting for the shared cores (see the load average); CPU time is the work itself. "
        "The report is single-process.",
        "",
    ]
    if "coverage" in res:
        c = res["coverage"]
        lines += [
            f"(c) Coverage of the 95 % interval of EER over {args.coverage_samples} samples of "
            f"{args.coverage_speakers} speakers (60 trials each, 20 % targets, per-speaker score shifts) from a "
            f"population of 40,000 speakers with EER {100 * c['true_eer']:.2f} %: speaker bootstrap "
            f"**{100 * c['speakers']:.0f} %**, bootstrap over trials {100 * c['trials']:.0f} % "
            "(300 draws; it treats a speaker's trials as independent and is too narrow).",
            "",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--conditions", type=int, default=10)
    parser.add_argument("--splits", nargs="+", default=["eval", "ood"])
    parser.add_argument("--speakers", type=int, default=200)
    parser.add_argument("--min-trials", type=int, default=20_000)
    parser.add_argument("--max-trials", type=int, default=50_000)
    parser.add_argument("--single-trials", type=int, default=35_000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--coverage-samples", type=int, default=200, help="0 skips the coverage check (c)")
    parser.add_argument("--coverage-speakers", type=int, default=100)
    parser.add_argument("--write", action="store_true", help=f"replace the '{SECTION}' section of {README}")
    args = parser.parse_args(argv)
    argv_used = argv if argv is not None else sys.argv[1:]
    command = shlex.join([".venv/bin/python", "bench/bench_bootstrap.py", *argv_used])
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    res = {"load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as root:
        systems = fabricate(root, args)
        res["end_to_end"] = end_to_end(systems, args, root)
    res["one"] = one_condition(args)
    if args.coverage_samples:
        res["coverage"] = coverage(args)
    section = render(res, args, command.strip())
    print(section)
    if args.write:
        write_section(SECTION, section, README)
        print(f"updated {README}")


if __name__ == "__main__":
    main()
