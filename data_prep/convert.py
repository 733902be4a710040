"""VoxCeleb2's ``.m4a`` (AAC in MP4) converted to WAV or FLAC in Python, with PyAV.

libsndfile (hence ``soundfile``, the preparations and the data pipeline) cannot read
AAC, and torchaudio here reads no file format without TorchCodec. PyAV's wheels
bundle FFmpeg's decoders, so no system package is needed (``pip install av``, or the
``convert`` extra of this package)::

    python -m data_prep.convert <vox2_dev>                 # <n>.wav next to every <n>.m4a
    python -m data_prep.convert <vox2_dev>/dev/aac <vox2_dev>/wav --format flac --workers 16

Every ``.m4a`` under the source folder (VoxCeleb2: ``<spk>/<video>/<n>.m4a``, at any
depth; macOS ``._*`` files ignored) becomes the file of the same relative path,
another extension, under the destination folder (default: the source folder):
16 kHz mono, 16-bit.

- **Parallel**: ``--workers`` processes (default: the CPU count), a progress bar
  with the rate and the time left.
- **Resumable**: each output is written under a temporary name and renamed when
  complete (:func:`speechbrain_ext.files.atomic_path`), so a file that exists is a
  finished one; it is still checked (readable, and as long as its source says)
  before being skipped, so an output left short by another tool is converted again.
  Run the same command again after an interruption.
- **Checked**: the decoded audio is compared with the duration the MP4 declares for
  its audio stream; decoded samples beyond it (AAC's padding of its last frame) are
  cut, a shortfall of more than two AAC frames is a failure (``duration_mismatch``:
  a truncated file). The written file is read back and must hold exactly the
  samples decoded.
- **Failures are named**: ``unreadable`` (not an MP4 PyAV can open: truncated
  before its index, not audio), ``no_audio_stream``, ``decode_error``,
  ``duration_mismatch``, ``write_error``; each failed file is listed in the
  summary (``<dst>/convert_summary.json`` and the last lines printed) and the exit
  status is 1. A full output disk (``ENOSPC``) stops the conversion at once (status
  2): every file already converted is kept, nothing half-written remains, and the
  same command continues once space is freed.

Measured speed: ``bench/bench_convert.py`` (files/s per core, bench/README.md).
"""

import argparse
import concurrent.futures
import dataclasses
import errno
import io
import os
import sys
import time
from collections import defaultdict

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data_prep.corpus_utils import is_hidden_file
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_path, atomic_write_json

FORMATS = {"wav": ("WAV", ".wav"), "flac": ("FLAC", ".flac")}
SOURCE_EXT = ".m4a"
SAMPLE_RATE = 16000
AAC_FRAME = 1024  # samples per AAC frame at the source rate
TOLERANCE_FRAMES = 2 * AAC_FRAME  # priming and padding: at most about two frames
SUMMARY_FILE = "convert_summary.json"
MAX_LISTED = 1000  # failed files listed per kind in the summary file
EXIT_FAILED, EXIT_STOPPED = 1, 2


@dataclasses.dataclass(frozen=True)
class Job:
    """One conversion: ``src`` (an ``.m4a``) to ``dst``."""

    src: str
    dst: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one :class:`Job`: ``status`` ``converted``, ``skipped`` (already done) or
    ``failed`` (with the failure ``kind`` and a ``message``); ``seconds`` of audio written.
    """

    status: str
    kind: str = ""
    message: str = ""
    seconds: float = 0.0


class ConversionError(SpeechBrainExtError, RuntimeError):
    """The conversion cannot run at all (PyAV missing, no source folder).

    Example
    -------
    >>> str(ConversionError("no folder /data/vox2_dev"))
    'no folder /data/vox2_dev'
    """


def _av():
    try:
        import av
    except ImportError:
        raise ConversionError(
            "converting .m4a needs PyAV (its wheels bundle FFmpeg): pip install av "
            "(or this package's extra: pip install 'speechbrain-ext-sv[convert]')"
        ) from None
    return av


class _Failure(Exception):
    """A conversion failure of one file, of a named kind."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def find_jobs(src_root, dst_root=None, fmt="wav"):
    """Every ``.m4a`` under ``src_root`` (sorted) and its output under ``dst_root`` (default ``src_root``).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "id00012", "v1"))
    >>> for name in ("00001.m4a", "00002.M4A", "._00001.m4a", "notes.txt"):
    ...     open(os.path.join(d, "id00012", "v1", name), "w").close()
    >>> [os.path.relpath(j.dst, d) for j in find_jobs(d, fmt="flac")]
    ['id00012/v1/00001.flac', 'id00012/v1/00002.flac']
    """
    src_root = os.path.abspath(src_root)
    dst_root = os.path.abspath(dst_root or src_root)
    ext = FORMATS[fmt][1]
    jobs = []
    for dirpath, dirnames, filenames in os.walk(src_root, followlinks=True):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src_root)
        for name in sorted(filenames):
            stem, src_ext = os.path.splitext(name)
            if src_ext.lower() == SOURCE_EXT and not is_hidden_file(name):
                jobs.append(Job(os.path.join(dirpath, name), os.path.normpath(os.path.join(dst_root, rel, stem + ext))))
    return jobs


def _open(path):
    av = _av()
    try:
        return av.open(path)
    except av.FFmpegError as err:
        raise _Failure("unreadable", f"cannot open ({type(err).__name__}: {err})") from None


def declared_seconds(path):
    """Duration the MP4 declares for its first audio stream (``None`` when it declares none).

    Raises the failures ``unreadable`` and ``no_audio_stream``.
    """
    with _open(path) as container:
        return _declared(container)


def _declared(container):
    if not container.streams.audio:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise _Failure("no_audio_stream", f"no audio stream (streams: {', '.join(kinds)})")
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def decode(path, rate=SAMPLE_RATE):
    """``(int16 samples [S], declared seconds or None)`` of the first audio stream, mono at ``rate``.

    Samples beyond the declared duration (AAC padding) are cut; a shortfall of more than
    :data:`TOLERANCE_FRAMES` (at the source rate) is the failure ``duration_mismatch``.
    """
    av = _av()
    with _open(path) as container:
        seconds = _declared(container)
        stream = container.streams.audio[0]
        source_rate = stream.codec_context.sample_rate or rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = []
        try:
            for frame in container.decode(stream):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except av.FFmpegError as err:
            raise _Failure("decode_error", f"cannot decode ({type(err).__name__}: {err})") from None
    samples = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    if seconds is None:
        return samples, None
    expected = int(round(seconds * rate))
    if expected - samples.size > TOLERANCE_FRAMES * rate / source_rate:
        raise _Failure("duration_mismatch", f"decoded {samples.size / rate:.3f} s of the {seconds:.3f} s the "
                       f"file declares (truncated?)")
    return samples[:expected], seconds


def write_audio(path, samples, rate, fmt):
    """Write int16 ``samples`` to ``path`` (a temporary name: the format is given, not guessed).

    The file is encoded in memory and written by Python, whose write raises
    ``OSError(ENOSPC)`` on a full disk (libsndfile writing the file itself only says
    "System error").
    """
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=FORMATS[fmt][0], subtype="PCM_16")
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def is_complete(job, rate=SAMPLE_RATE):
    """True when ``job.dst`` is readable audio at ``rate`` as long as the source declares (two AAC frames of slack)."""
    if not os.path.exists(job.dst):
        return False
    try:
        info = sf.info(job.dst)
        seconds = declared_seconds(job.src)
    except (RuntimeError, _Failure):  # libsndfile errors derive from RuntimeError
        return False
    if info.samplerate != rate or info.channels != 1:
        return False
    return seconds is None or abs(info.frames - seconds * rate) <= TOLERANCE_FRAMES


def convert_one(job, rate=SAMPLE_RATE, fmt="wav"):
    """Convert one file (or skip it when already done); never raises for a bad file: see :class:`Outcome`."""
    if is_complete(job, rate):
        return Outcome("skipped")
    try:
        samples, _seconds = decode(job.src, rate)
        with atomic_path(job.dst, fsync=False) as tmp:
            write_audio(tmp, samples, rate, fmt)
            frames = sf.info(tmp).frames
            if frames != samples.size:
                raise _Failure("write_error", f"wrote {frames} of {samples.size} samples")
    except _Failure as failure:
        return Outcome("failed", failure.kind, str(failure))
    except OSError as err:
        kind = "disk_full" if err.errno == errno.ENOSPC else "write_error"
        return Outcome("failed", kind, f"cannot write {job.dst} ({err})")
    except Exception as err:  # one bad file never ends the run: it is named with what went wrong
        return Outcome("failed", "error", f"{type(err).__name__}: {err}")
    return Outcome("converted", seconds=samples.size / rate)


def _outcomes(jobs, workers, options, stopped):
    """``(job, outcome)`` in completion order; no new job starts once ``stopped()`` is true."""
    if workers <= 1:
        for job in jobs:
            if stopped():
                return
            yield job, convert_one(job, **options)
        return
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        pending, queue = {}, iter(jobs)
        while True:
            while len(pending) < 4 * workers and not stopped():
                job = next(queue, None)
                if job is None:
                    break
                pending[pool.submit(convert_one, job, **options)] = job
            if not pending:
                return
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()


class Tally:
    """Counts and failures of a conversion run; ``summary()`` is what the summary file holds.

    Example
    -------
    >>> t = Tally(3)
    >>> t.add(Job("a.m4a", "a.wav"), Outcome("converted", seconds=2.0))
    >>> t.add(Job("b.m4a", "b.wav"), Outcome("failed", "no_audio_stream", "no audio stream (streams: video)"))
    >>> s = t.summary(); s["converted"], s["failed"]["no_audio_stream"]["files"]
    (1, ['b.m4a: no audio stream (streams: video)'])
    """

    def __init__(self, total):
        self.total = total
        self.counts = defaultdict(int)
        self.failures = defaultdict(list)
        self.seconds = 0.0
        self.stopped = ""

    def add(self, job, outcome):
        """Count one outcome."""
        self.counts[outcome.status] += 1
        self.seconds += outcome.seconds
        if outcome.status == "failed":
            self.failures[outcome.kind].append(f"{job.src}: {outcome.message}")
            if outcome.kind == "disk_full" and not self.stopped:
                self.stopped = f"the output disk is full ({outcome.message})"

    def summary(self):
        """The counts, the failed files by kind (the first :data:`MAX_LISTED` by path) and why the run stopped early."""
        return {
            "files": self.total,
            "converted": self.counts["converted"],
            "skipped_already_done": self.counts["skipped"],
            "failed": {k: {"count": len(v), "files": sorted(v)[:MAX_LISTED]} for k, v in sorted(self.failures.items())},
            "not_started": self.total - sum(self.counts.values()),
            "audio_hours_written": round(self.seconds / 3600, 4),
            "stopped": self.stopped or None,
        }


def convert_tree(src_root, dst_root=None, fmt="wav", workers=None, rate=SAMPLE_RATE, progress=True):
    """Convert every ``.m4a`` under ``src_root`` (see the module docstring); return the summary.

    The summary is also written to ``<dst_root>/convert_summary.json`` (when the disk lets it).

    Example
    -------
    >>> import tempfile
    >>> convert_tree(tempfile.mkdtemp(), progress=False)["files"]
    0
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    if not os.path.isdir(src_root):
        raise ConversionError(f"no folder {src_root}")
    _av()
    dst_root = os.path.abspath(dst_root or src_root)
    jobs = find_jobs(src_root, dst_root, fmt)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    tally = Tally(len(jobs))
    start = time.monotonic()
    bar = tqdm(total=len(jobs), unit="file", disable=not progress, dynamic_ncols=True, desc="m4a -> " + fmt)
    with bar:
        for job, outcome in _outcomes(jobs, workers, {"rate": rate, "fmt": fmt}, lambda: bool(tally.stopped)):
            tally.add(job, outcome)
            bar.update()
            if outcome.status == "failed":
                bar.set_postfix(failed=sum(len(v) for v in tally.failures.values()))
    summary = {"source": os.path.abspath(src_root), "output": dst_root, "format": fmt, "workers": workers,
               **tally.summary(), "seconds": round(time.monotonic() - start, 3)}
    try:
        atomic_write_json(os.path.join(dst_root, SUMMARY_FILE), summary, indent=2)
    except OSError as err:  # a full disk: the summary is still printed
        summary["summary_file_error"] = str(err)
    return summary


def report(summary, out=None):
    """Print the summary (to ``out``, default stdout): counts, each failed file (first 20 per kind), how to go on."""
    out = out or sys.stdout
    print(f"{summary['converted']} converted, {summary['skipped_already_done']} already done, "
          f"{sum(f['count'] for f in summary['failed'].values())} failed, {summary['not_started']} not started "
          f"of {summary['files']} .m4a files under {summary['source']} ({summary['seconds']:.1f} s)", file=out)
    for kind, failed in summary["failed"].items():
        print(f"failed ({kind}): {failed['count']}", file=out)
        for line in failed["files"][:20]:
            print(f"  {line}", file=out)
    if summary["stopped"]:
        print(f"stopped: {summary['stopped']}; every finished file is kept: free space and run the same command "
              f"again (finished files are skipped)", file=out)
    print(f"summary: {os.path.join(summary['output'], SUMMARY_FILE)}", file=out)


def main(argv=None):
    """Command line: ``python -m data_prep.convert SRC [DST] [--format wav|flac] [--workers N]``."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder of .m4a files (VoxCeleb2: <spk>/<video>/<n>.m4a)")
    parser.add_argument("dst", nargs="?", help="output folder (default: next to each .m4a)")
    parser.add_argument("--format", default="wav", choices=sorted(FORMATS))
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the CPU count)")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = convert_tree(args.src, args.dst, args.format, args.workers, args.sample_rate, not args.no_progress)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    report(summary)
    if summary["stopped"]:
        return EXIT_STOPPED
    return EXIT_FAILED if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
