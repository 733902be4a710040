#!/usr/bin/env python3
"""`make demo`'s schedule: its systems 2 at a time with 1 thread each, or one after another with 2 threads.

Runs the real recipe (``recipes/SynthEmo/train.py``, training then the evaluation stage:
extraction and scoring of eval and ood) for each of the demo's systems on a reduced
SynthEmo corpus (``--train-speakers`` training speakers, a tenth of that for every other
split; the encoder and batch of the recipe's base settings), ``--epochs`` epochs, in two
schedules:

- ``sequential``: one run after another, ``OMP_NUM_THREADS=2`` (both cores for each run);
- ``parallel``: two runs at a time (a pool of 2, in the demo's order), ``OMP_NUM_THREADS=1`` each.

The corpus is generated first and not timed. Each schedule's wall time runs from the
start of its first run to the end of its last, in fresh output folders; the schedules
alternate for ``--repeats`` rounds (the machine is shared: the load average before
each round is printed). The median ratio parallel / sequential says which is faster.

    .venv/bin/python bench/bench_demo_parallel.py --write
"""

import argparse
import concurrent.futures
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from readme_sections import write_section  # noqa: E402

HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
HEADER = "## Demo schedule: parallel or sequential systems"
SYSTEMS = ("ecapa_aam", "ecapa_aam_amsupcon_caa_mgda", "ecapa_aam_copypaste_cos_em")  # demo.yaml's rows
SCHEDULES = {"sequential": (1, 2), "parallel": (2, 1)}  # name: (jobs, threads per run)


def corpus_options(args):
    small = max(2, args.train_speakers // 10)
    return ["--data_folder", os.path.join(args.work, "data"), "--n_train_speakers", str(args.train_speakers),
            "--n_valid_speakers", str(small), "--n_eval_speakers", str(small)]


def run_one(args, system, out, threads):
    command = [sys.executable, os.path.join(ROOT, "recipes", "SynthEmo", "train.py"),
               os.path.join(HPARAMS, system + ".yaml"), *corpus_options(args), "--output_folder", out,
               "--manifest_folder", os.path.join(args.work, "manifests"), "--number_of_epochs", str(args.epochs),
               "--noprogressbar"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(out + ".log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed; log: {out}.log")


def schedule(args, name, round_):
    jobs, threads = SCHEDULES[name]
    folder = os.path.join(args.work, f"{name}{round_}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_one, args, s, os.path.join(folder, s), threads) for s in args.systems]
        for future in futures:
            future.result()
    return time.perf_counter() - start


def prepare(args):
    """Generate the corpus and its manifests (not timed), as the recipe's ``prepare_data`` does."""
    code = ("import sys; from speechbrain_ext.hparams import load_hparams; "
            "h, _ = load_hparams(sys.argv[1], sys.argv[2]); h['prepare_data']()")
    options = corpus_options(args)
    overrides = "\n".join(f"{k.lstrip('-')}: {v}" for k, v in zip(options[::2], options[1::2]))
    overrides += f"\nmanifest_folder: {os.path.join(args.work, 'manifests')}"
    subprocess.run([sys.executable, "-c", code, os.path.join(HPARAMS, "ecapa_aam.yaml"), overrides], check=True,
                   cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2"), capture_output=True)


def section(args, times, loads):
    ratios = [p / s for p, s in zip(times["parallel"], times["sequential"])]
    faster = "parallel" if statistics.median(ratios) < 1 else "sequential"
    rows = "\n".join(
        f"| {i + 1} | {loads[i]:.2f} | {times['sequential'][i]:.0f} | {times['parallel'][i]:.0f} | {ratios[i]:.2f} |"
        for i in range(len(ratios)))
    command = (f".venv/bin/python bench/bench_demo_parallel.py --train-speakers {args.train_speakers} "
               f"--epochs {args.epochs} --repeats {args.repeats}"
               + ("" if tuple(args.systems) == SYSTEMS else " --systems " + " ".join(args.systems)) + " --write")
    return f"""{HEADER}

Command: `{command}`

Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), Python {platform.python_version()}.
Systems: {', '.join(args.systems)}; each run trains {args.epochs} epoch(s) on {args.train_speakers} training
speakers at the recipe's base encoder and batch, then evaluates eval and ood (extraction and scoring).
sequential = one run after another with `OMP_NUM_THREADS=2`; parallel = two runs at a time with
`OMP_NUM_THREADS=1` each (wall time from the first start to the last end).

| round | load avg (1 min) before | sequential (s) | parallel (s) | parallel / sequential |
|---:|---:|---:|---:|---:|
{rows}

Median ratio {statistics.median(ratios):.2f}: **{faster}** is faster; `make demo` uses it by default
(`recipes/SynthEmo/demo.yaml`, `jobs` and `threads`).
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-speakers", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--write", action="store_true", help="replace this script's section of bench/README.md")
    args = parser.parse_args(argv)
    keep = args.work is not None
    args.work = args.work or tempfile.mkdtemp(prefix="bench_demo_")
    try:
        prepare(args)
        times, loads = {name: [] for name in SCHEDULES}, []
        for round_ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            order = list(SCHEDULES) if round_ % 2 == 0 else list(SCHEDULES)[::-1]
            for name in order:
                times[name].append(schedule(args, name, round_))
                print(f"round {round_ + 1}: {name} {times[name][-1]:.0f} s", flush=True)
        text = section(args, times, loads)
        print(text)
        if args.write:
            write_section(HEADER, text)
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
