"""VoxCeleb2 m4a conversion speed: files (and audio seconds) per second per CPU core of ``data_prep.convert``.

What is measured: :func:`data_prep.convert.convert_tree` over ``--n`` AAC-in-MP4 files
made with PyAV (16 kHz mono, seeded noise) in a ``<spk>/<video>/<n>.m4a`` tree, with
lengths drawn as ``4 + Exponential(3.8 s)`` clipped to 20 s (mean about 7.7 s; VoxCeleb2
averages 7.8 s per utterance, Chung, Nagrani & Zisserman, Interspeech 2018, Table 1, and
has no utterance under 4 s). Each (format, workers) pair converts the same tree into
a fresh output folder; the time is the best of ``--repeats`` runs. A second run over
a finished tree measures the resume check (every output verified, nothing written).

Usage::

    .venv/bin/python bench/bench_convert.py [--n 200] [--workers 1 2] [--repeats 2] [--write]

``--write`` replaces the "## VoxCeleb2 m4a conversion" section of bench/README.md.
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from readme_sections import write_section  # noqa: E402

SECTION = "## VoxCeleb2 m4a conversion"
VOX2_DEV_UTTERANCES = 1_092_009  # VoxCeleb2 dev (Chung, Nagrani & Zisserman 2018)


def lengths(n, seed=0):
    """Utterance lengths in seconds: ``4 + Exponential(3.8)`` clipped to 20 s.

    Example
    -------
    >>> x = lengths(2000)
    >>> bool(x.min() >= 4.0 and x.max() <= 20.0), 7.0 < float(x.mean()) < 8.5
    (True, True)
    """
    rng = np.random.default_rng(seed)
    return np.minimum(4.0 + rng.exponential(3.8, n), 20.0)


def make_tree(root, n):
    """``n`` m4a files under ``root`` (10 per video, 50 per speaker); returns the total audio seconds."""
    import replicas

    total = 0.0
    for k, secs in enumerate(lengths(n)):
        path = os.path.join(root, f"id{k // 50:05d}", f"video{k // 10:05d}", f"{k % 10 + 1:05d}.m4a")
        replicas.write_m4a(path, seconds=float(secs))
        total += float(secs)
    return total


def timed(src, dst, fmt, workers, repeats):
    """Best wall time of converting ``src`` into a fresh ``dst``, and the summary of the last run."""
    from data_prep import convert

    best, summary = float("inf"), None
    for _ in range(repeats):
        shutil.rmtree(dst, ignore_errors=True)
        start = time.perf_counter()
        summary = convert.convert_tree(src, dst, fmt, workers=workers, progress=False)
        best = min(best, time.perf_counter() - start)
        if summary["failed"] or summary["converted"] != summary["files"]:
            raise RuntimeError(f"conversion failed: {summary}")
    return best, summary


def run(n, workers_list, repeats):
    """Rows ``(format, workers, seconds, files/s, files/s per worker, audio x real time)`` and the resume time."""
    from data_prep import convert

    work = tempfile.mkdtemp(prefix="bench_convert_")
    try:
        src = os.path.join(work, "m4a")
        audio = make_tree(src, n)
        rows = []
        for fmt in ("wav", "flac"):
            for workers in workers_list:
                seconds, _ = timed(src, os.path.join(work, f"{fmt}{workers}"), fmt, workers, repeats)
                rows.append((fmt, workers, seconds, n / seconds, n / seconds / workers, audio / seconds))
        start = time.perf_counter()
        again = convert.convert_tree(src, os.path.join(work, f"wav{workers_list[0]}"), "wav",
                                     workers=workers_list[0], progress=False)
        resume = time.perf_counter() - start
        assert again["skipped_already_done"] == n
        return rows, audio, resume
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(n, rows, audio, resume, workers_list, command):
    """The README section."""
    import av

    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared with other jobs), "
        f"Python {platform.python_version()}, PyAV {av.__version__} (libavcodec {libavcodec}"
        f"). {n} files, {audio / 3600:.2f} h of audio (mean {audio / n:.2f} s), 16 kHz mono AAC in, "
        "16 kHz mono 16-bit out; best of the repeats.",
        "",
        "| output | workers | time (s) | files/s | files/s per worker | audio / real time |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {f} | {w} | {s:.2f} | {r:.1f} | {p:.1f} | {x:.0f}x |" for f, w, s, r, p, x in rows]
    one = next(r for r in rows if r[0] == "wav" and r[1] == min(workers_list))
    lines += [
        "",
        f"Resume check over the finished tree (every output opened and checked against its source, nothing "
        f"written), {workers_list[0]} worker(s): {n / resume:.0f} files/s.",
        "",
        f"Extrapolation, not a measurement: VoxCeleb2 dev ({VOX2_DEV_UTTERANCES:,} files) at {one[4]:.1f} files/s "
        f"per core takes about {VOX2_DEV_UTTERANCES / one[4] / 3600:.1f} core-hours, i.e. about "
        f"{VOX2_DEV_UTTERANCES / one[4] / 3600 / 16:.2f} h with 16 workers, if the disk keeps up: the output is "
        f"about {VOX2_DEV_UTTERANCES * 7.8 * 32000 / 1e9:.0f} GB of WAV ({VOX2_DEV_UTTERANCES:,} x 7.8 s x 32 kB/s), "
        "less as FLAC.",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Run the benchmark; print (and with ``--write`` store) the README section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    rows, audio, resume = run(args.n, args.workers, args.repeats)
    command = "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_convert.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    text = render(args.n, rows, audio, resume, args.workers, command.strip())
    print(text)
    if args.write:
        write_section(SECTION, text, os.path.join(ROOT, "bench", "README.md"))


if __name__ == "__main__":
    main()
