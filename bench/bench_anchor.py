"""Speed of the Resemblyzer anchor (``speechbrain_ext.anchor``) on SynthEmo utterances, 1 and 2 threads.

Each measurement is a fresh subprocess with ``OMP_NUM_THREADS`` set before torch and numpy
load (their thread pools are sized at import). It reads the utterances (not timed), embeds the
first one (librosa's numba kernels load on first use; they are compiled on an install's first
run and cached on disk), then times one pass of ``ResemblyzerEncoder.embed`` over every
utterance, its preprocessing (volume + WebRTC VAD) and ``embed_utterance`` (mel spectrogram +
LSTM) timed apart. The processes of the thread counts are interleaved over ``--rounds`` rounds
(the load of a shared machine drifts); utterances/s and the real-time factor (processing
seconds per second of audio) come from the median pass of each thread count.

The utterances are those of a small SynthEmo corpus's *valid* split, generated into a temporary
folder unless ``--data-folder`` and ``--manifest`` name an existing one.

Usage::

    .venv/bin/python bench/bench_anchor.py            # print the markdown section
    .venv/bin/python bench/bench_anchor.py --write    # also put it in bench/README.md
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from readme_sections import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Resemblyzer anchor"
CORPUS = {"n_train": 2, "n_valid": 6, "n_eval": 2, "n_sentences": 4}


def worker(manifest, data_folder, limit):
    """One timed pass in this process (its thread count is ``OMP_NUM_THREADS``); returns a dict."""
    sys.path.insert(0, ROOT)
    start = time.perf_counter()
    import torch

    from speechbrain_ext import anchor, extraction

    encoder = anchor.ResemblyzerEncoder()
    loaded = time.perf_counter() - start
    signals = [ex["sig"].numpy() for ex in extraction.utterance_dataset(manifest, data_folder, anchor.SAMPLE_RATE)]
    signals = signals[:limit]
    first = time.perf_counter()
    encoder.embed(signals[0])
    first = time.perf_counter() - first
    prepare = lstm = 0.0
    for wav in signals:  # encoder.embed, its two halves timed apart
        t0 = time.perf_counter()
        prepared = encoder.prepare(wav)
        t1 = time.perf_counter()
        with torch.no_grad():
            encoder.model.embed_utterance(prepared)
        prepare, lstm = prepare + t1 - t0, lstm + time.perf_counter() - t1
    return {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "utterances": len(signals),
        "audio_seconds": sum(len(w) for w in signals) / anchor.SAMPLE_RATE,
        "import_and_load_s": loaded,
        "first_utterance_s": first,
        "prepare_s": prepare,
        "embed_utterance_s": lstm,
    }


def run_worker(threads, manifest, data_folder, limit):
    """Run :func:`worker` in a fresh subprocess with ``OMP_NUM_THREADS=threads``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--manifest", manifest,
               "--data-folder", data_folder, "--limit", str(limit)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(threads, manifest, data_folder, limit, rounds):
    """Rounds of one process per thread count, interleaved (the load of a shared machine drifts).

    Returns one record per thread count: the worker's fields, each a median over the rounds,
    and ``pass_s``, the median time of a pass.
    """
    runs = {k: [] for k in threads}
    for _ in range(rounds):
        for k in threads:
            runs[k].append(run_worker(k, manifest, data_folder, limit))
    records = []
    for k, done in runs.items():
        record = {key: statistics.median(r[key] for r in done) for key in done[0] if key != "omp_num_threads"}
        record["omp_num_threads"] = str(k)
        record["pass_s"] = statistics.median(r["prepare_s"] + r["embed_utterance_s"] for r in done)
        records.append(record)
    return records


def table(results):
    """Markdown rows of the measurements (one row per thread count).

    Example
    -------
    >>> r = {"omp_num_threads": "1", "torch_threads": 1, "utterances": 2, "audio_seconds": 5.0,
    ...      "import_and_load_s": 2.0, "first_utterance_s": 1.0, "pass_s": 0.05,
    ...      "prepare_s": 0.01, "embed_utterance_s": 0.05}
    >>> print(table([r]).splitlines()[2])
    | 1 | 1 | 40.0 | 0.0100 | 100x | 25.0 | 17 % | 2.0 s | 1.00 s |
    """
    lines = [
        "| OMP_NUM_THREADS | torch threads | utterances/s | real-time factor | speed | ms/utterance "
        "| preprocessing share | import + load | first utterance |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        median = r["pass_s"]
        rtf = median / r["audio_seconds"]
        share = r["prepare_s"] / (r["prepare_s"] + r["embed_utterance_s"])
        lines.append(
            f"| {r['omp_num_threads']} | {r['torch_threads']} | {r['utterances'] / median:.1f} | {rtf:.4f} "
            f"| {1 / rtf:.0f}x | {1000 * median / r['utterances']:.1f} | {100 * share:.0f} % "
            f"| {r['import_and_load_s']:.1f} s | {r['first_utterance_s']:.2f} s |"
        )
    return "\n".join(lines)


def corpus(args):
    """``(manifest, data_folder)``: the given ones, or a small SynthEmo corpus generated in a temp folder."""
    if args.manifest:
        return args.manifest, args.data_folder
    sys.path.insert(0, ROOT)
    from data_prep.synthetic import prepare_synthemo

    root = tempfile.mkdtemp(prefix="bench_anchor_")
    prepare_synthemo(os.path.join(root, "data"), os.path.join(root, "manifests"), seed=1234, progress=False, **CORPUS)
    return os.path.join(root, "manifests", "valid.csv"), os.path.join(root, "data")


def main(argv=None):
    """Measure, print the section and optionally write it to bench/README.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", help="manifest of the utterances (default: generate a small SynthEmo)")
    parser.add_argument("--data-folder", help="its $data_root")
    parser.add_argument("--limit", type=int, default=120, help="at most this many utterances")
    parser.add_argument("--rounds", type=int, default=3, help="processes per thread count, interleaved")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.manifest, args.data_folder, args.limit)))
        return
    manifest, data_folder = corpus(args)
    load = os.getloadavg()[0]
    results = measure(args.threads, manifest, data_folder, args.limit, args.rounds)
    import numpy
    import torch

    first = results[0]
    body = [
        SECTION,
        "",
        "Command: `.venv/bin/python bench/bench_anchor.py --write`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared; 1-min load average "
        f"{load:.1f} at the start), Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {numpy.__version__}, resemblyzer 0.1.4 on CPU. {first['utterances']} utterances of a "
        f"SynthEmo valid split ({first['audio_seconds']:.0f} s of audio, {CORPUS}), "
        f"`ResemblyzerEncoder.embed` with Resemblyzer's preprocessing; one pass per process, median of "
        f"{args.rounds} processes per thread count, interleaved.",
        "",
        table(results),
        "",
    ]
    if len(results) > 1:
        ratio = results[0]["pass_s"] / results[-1]["pass_s"]
        body += [f"Speed-up of {results[-1]['omp_num_threads']} threads over {first['omp_num_threads']}: "
                 f"{ratio:.2f}x.", ""]
        if ratio < 1:
            body += ["More threads were slower here: the LSTM runs 160 steps of small matrix products per "
                     "1.6 s window, and each step's OpenMP threads wait for one another whenever another "
                     "process holds a core. On a shared machine run the anchor with `OMP_NUM_THREADS=1`.", ""]
    body += [
        "The real-time factor is processing time over audio time (lower is faster). The first utterance "
        "of a process includes loading librosa's numba kernels (compiled on an install's first run and "
        "cached on disk; that first compilation is not in this table). Preprocessing share: "
        "`preprocess_wav` (volume + WebRTC VAD) in the time of one utterance; the rest is "
        "`embed_utterance` (librosa mel spectrogram + LSTM over 1.6 s windows at 1.3 windows/s).",
    ]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
