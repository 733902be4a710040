"""Noise and room-impulse-response manifests for SpeechBrain's ``AddNoise`` / ``AddReverb``.

The real-corpus recipes augment training crops with additive noise from MUSAN
(OpenSLR 17) and reverberation from the simulated RIRs of RIRS_NOISES (OpenSLR 28),
in folders the user names (``--musan_folder``, ``--rir_folder``)::

    <musan_folder>/noise/{free-sound,sound-bible}/*.wav      (a folder holding musan/ is accepted)
    <musan_folder>/music/<source>/*.wav
    <musan_folder>/speech/<source>/*.wav
    <rir_folder>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room*/*.wav
                                                       (a folder holding RIRS_NOISES/ is accepted)

:func:`prepare_noise` walks the chosen sub-folders and writes ``noise.csv`` and
``rir.csv`` in the format ``AddNoise``/``AddReverb`` read (SpeechBrain's extended CSV:
``ID, duration, wav, wav_format, wav_opts``, absolute paths). Those classes load a
whole file per draw, so noise files longer than ``max_noise_seconds`` are cut into
equal segments of at most that length, and multi-channel files are reduced to their
first channel; both are written as 16-bit FLAC under ``<save_folder>/audio/`` (an
existing file of the right length is reused). Files at another sample rate are
counted skips. A missing folder is an error naming the path expected. Preparation
is idempotent (option hash in ``prepare.json``) and locked like the corpora's.

:func:`prepare_recipe_data` is the ``prepare_data`` of the real-corpus recipes: the
corpus preparation, then this one unless augmentation is switched off
(``--wav_augment null``), so a run without augmentation needs no MUSAN.
"""

import csv
import functools
import logging
import math
import os

import numpy as np
import soundfile as sf

from data_prep.common import PreparationError
from data_prep.corpus_utils import SkipLog, has_frames, run_parallel, run_preparation, write_flac16
from speechbrain_ext.files import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["MUSAN_SUBSETS", "RIR_SUBSETS", "choose", "prepare_noise", "prepare_recipe_data", "segment_bounds",
           "white_noise_list"]

MUSAN_SUBSETS = ("noise", "music", "speech")
RIR_SUBSETS = ("simulated_rirs",)
AUDIO_EXTS = (".wav", ".flac")
CSV_COLUMNS = ("ID", "duration", "wav", "wav_format", "wav_opts")
MUSAN_HINT = "MUSAN (OpenSLR 17: musan/noise, musan/music, musan/speech)"
RIR_HINT = "RIRS_NOISES (OpenSLR 28: RIRS_NOISES/simulated_rirs/...)"
OFF_HINT = "or switch augmentation off with --wav_augment null"


def _resolve_root(folder, nested, hint, option):
    """``folder`` itself, or ``folder/<nested>`` when that is where the corpus is."""
    if folder is None or str(folder).strip() == "":
        raise PreparationError(f"{option} is not set: give the folder of {hint} with --{option}, {OFF_HINT}")
    folder = os.path.abspath(str(folder))
    if not os.path.isdir(folder):
        raise PreparationError(f"{option}: folder not found: {folder} (expected {hint}; {OFF_HINT})")
    inner = os.path.join(folder, nested)
    return inner if os.path.isdir(inner) else folder


def _subset_folders(root, subsets, hint, option):
    folders = []
    for subset in subsets:
        path = os.path.join(root, subset)
        if not os.path.isdir(path):
            raise PreparationError(f"{option}: missing folder {path} (expected {hint}; {OFF_HINT})")
        folders.append((subset, path))
    return folders


def _walk_audio(folder):
    """Audio files under ``folder`` (recursive), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [os.path.join(dirpath, n) for n in sorted(filenames) if n.lower().endswith(AUDIO_EXTS)]
    return found


def segment_bounds(frames, max_frames):
    """Equal segments of at most ``max_frames`` covering ``frames`` (``None``: one segment).

    Example
    -------
    >>> segment_bounds(10, 4)
    [(0, 3), (3, 7), (7, 10)]
    >>> segment_bounds(10, None), segment_bounds(3, 4)
    ([(0, 10)], [(0, 3)])
    """
    if not max_frames or frames <= max_frames:
        return [(0, frames)]
    n = math.ceil(frames / max_frames)
    edges = [round(i * frames / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _write_segment(job):
    """Write frames ``[start, stop)`` of ``src``'s first channel to FLAC ``dst`` (``job = (src, dst, start, stop)``;
    atomic; reused if complete).
    """
    src, dst, start, stop = job
    if has_frames(dst, stop - start):
        return
    data, rate = sf.read(src, start=start, stop=stop, dtype="int16", always_2d=True)
    write_flac16(dst, data[:, 0], rate)


def _plan(kind, subset, folder, save_folder, max_seconds, sample_rate, skips):
    """Rows ``(ID, duration, path)`` and segment jobs for the audio files of one sub-folder."""
    rows, jobs = [], []
    for path in _walk_audio(folder):
        try:
            info = sf.info(path)
        except Exception:  # libsndfile raises several types on bad files
            skips.add("unreadable", path)
            continue
        if info.frames <= 0:
            skips.add("empty", path)
            continue
        if info.samplerate != sample_rate:
            skips.add(f"sample_rate_not_{sample_rate}", path)
            continue
        rel = os.path.splitext(os.path.relpath(path, folder))[0].replace(os.sep, "/")
        uid = f"{kind}/{subset}/{rel}"
        max_frames = int(max_seconds * sample_rate) if max_seconds else None
        bounds = segment_bounds(info.frames, max_frames)
        if len(bounds) == 1 and info.channels == 1:
            rows.append((uid, info.frames / sample_rate, path))
            continue
        for k, (start, stop) in enumerate(bounds):
            suffix = f"-{k:03d}" if len(bounds) > 1 else "-ch0"
            dst = os.path.join(save_folder, "audio", kind, subset, f"{rel}{suffix}.flac")
            rows.append((f"{uid}{suffix}", (stop - start) / sample_rate, dst))
            jobs.append((path, dst, start, stop))
    return rows, jobs


def _write_csv(path, rows):
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for uid, duration, wav in rows:
            ext = os.path.splitext(wav)[1].lower().lstrip(".")
            writer.writerow([uid, f"{duration:.3f}", wav, ext, ""])


def white_noise_list(folder, seconds, sample_rate=16000, seed=0):
    """Write Gaussian white-noise files of the given durations and their ``noise.csv`` in ``folder``.

    A noise list for ``AddNoise`` without MUSAN: tests, benchmarks, a smoke run. Returns the
    CSV's path.

    Example
    -------
    >>> import tempfile
    >>> path = white_noise_list(tempfile.mkdtemp(), [0.5, 1.25])
    >>> [line.split(",")[:2] for line in open(path).read().splitlines()]
    [['ID', 'duration'], ['noise0', '0.500'], ['noise1', '1.250']]
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i, length in enumerate(seconds):
        path = os.path.join(os.path.abspath(folder), f"noise{i}.wav")
        sf.write(path, rng.normal(scale=0.1, size=int(sample_rate * length)).astype(np.float32), sample_rate)
        rows.append((f"noise{i}", float(length), path))
    csv_path = os.path.join(folder, "noise.csv")
    _write_csv(csv_path, rows)
    return csv_path


def _write_kind(kind, folders, max_seconds, save_folder, sample_rate, skips, num_workers):
    """Plan, cut and list the audio of one kind (``noise`` or ``rir``); return its CSV path and summary."""
    rows, jobs = [], []
    for subset, folder in folders:
        sub_rows, sub_jobs = _plan(kind, subset, folder, save_folder, max_seconds, sample_rate, skips)
        rows += sub_rows
        jobs += sub_jobs
    if not rows:
        where = ", ".join(f for _, f in folders)
        raise PreparationError(
            f"no readable {sample_rate} Hz audio (.wav/.flac) under {where} (skips: {skips.as_dict()})"
        )
    run_parallel(_write_segment, jobs, num_workers, label=f"{kind} segments")
    path = os.path.join(save_folder, f"{kind}.csv")
    _write_csv(path, rows)
    summary = {
        "files": len(rows),
        "hours": round(sum(d for _, d, _ in rows) / 3600, 3),
        "segments_written": len(jobs),
        "folders": [f for _, f in folders],
    }
    return path, summary


def _build(kinds, save_folder, sample_rate, num_workers):
    """``(outputs, summary)`` of the CSVs of ``kinds`` = ``[(kind, [(subset, folder)], max_seconds)]``."""
    skips = SkipLog()
    summary, outputs = {}, []
    for kind, folders, max_seconds in kinds:
        path, summary[kind] = _write_kind(kind, folders, max_seconds, save_folder, sample_rate, skips, num_workers)
        outputs.append(path)
    skips.log("augmentation")
    summary["skipped"] = skips.as_dict()
    return outputs, summary


def prepare_noise(
    musan_folder,
    rir_folder,
    save_folder,
    musan_subsets=MUSAN_SUBSETS,
    rir_subsets=RIR_SUBSETS,
    max_noise_seconds=5.0,
    sample_rate=16000,
    num_workers=None,
):
    """Write ``noise.csv`` (MUSAN) and ``rir.csv`` (RIRS_NOISES) for ``AddNoise``/``AddReverb``.

    Arguments
    ---------
    musan_folder : str
        The MUSAN folder (or a folder holding ``musan/``).
    rir_folder : str
        The RIRS_NOISES folder (or a folder holding ``RIRS_NOISES/``).
    save_folder : str
        Where ``noise.csv``, ``rir.csv``, segments and ``prepare.json`` go.
    musan_subsets : sequence of str
        Sub-folders of MUSAN used as additive noise (all three by default; our choice,
        with one SNR range for all, where Kaldi/WeSpeaker use one range per type).
    rir_subsets : sequence of str
        Sub-folders of RIRS_NOISES used as impulse responses (relative paths such as
        ``simulated_rirs/smallroom`` are accepted).
    max_noise_seconds : float or None
        Longer noise files are cut into segments of at most this length.
    sample_rate : int
        Expected sample rate; files at another rate are counted skips.
    num_workers : int or None
        Threads writing segments.

    Returns
    -------
    dict
        Summary: files and hours per CSV, segments written, skips, ``status``.

    Example
    -------
    >>> import tempfile, numpy
    >>> root = tempfile.mkdtemp()
    >>> for sub in ("noise", "music", "speech"):
    ...     os.makedirs(os.path.join(root, "musan", sub, "a"))
    ...     sf.write(os.path.join(root, "musan", sub, "a", "x.wav"), numpy.zeros(24000), 16000)
    >>> os.makedirs(os.path.join(root, "RIRS_NOISES", "simulated_rirs", "smallroom"))
    >>> sf.write(os.path.join(root, "RIRS_NOISES", "simulated_rirs", "smallroom", "r.wav"), numpy.zeros(800), 16000)
    >>> out = prepare_noise(root, root, os.path.join(root, "aug"), max_noise_seconds=1.0)
    >>> out["noise"]["files"], out["noise"]["segments_written"], out["rir"]["files"]
    (6, 6, 1)
    >>> open(os.path.join(root, "aug", "rir.csv")).readline().strip()
    'ID,duration,wav,wav_format,wav_opts'
    >>> prepare_noise(os.path.join(root, "none"), root, os.path.join(root, "aug"))
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: musan_folder: folder not found: .../none (expected MUSAN ...
    """
    musan = _resolve_root(musan_folder, "musan", MUSAN_HINT, "musan_folder")
    rirs = _resolve_root(rir_folder, "RIRS_NOISES", RIR_HINT, "rir_folder")
    noise_folders = _subset_folders(musan, list(musan_subsets), MUSAN_HINT, "musan_folder")
    rir_folders = _subset_folders(rirs, list(rir_subsets), RIR_HINT, "rir_folder")
    save_folder = os.path.abspath(save_folder)
    options = {
        "prep": "noise",
        "prep_version": 1,
        "musan_folder": musan,
        "rir_folder": rirs,
        "musan_subsets": list(musan_subsets),
        "rir_subsets": list(rir_subsets),
        "max_noise_seconds": max_noise_seconds,
        "sample_rate": sample_rate,
    }
    kinds = (("noise", noise_folders, max_noise_seconds), ("rir", rir_folders, None))
    build = functools.partial(_build, kinds, save_folder, sample_rate, num_workers)
    return run_preparation("augmentation (MUSAN + RIRS_NOISES)", save_folder, options, build)


def choose(options, key, what="corpus"):
    """``options[key]`` with an error naming the choices (for ``!apply:`` in a recipe YAML).

    Example
    -------
    >>> choose({"esd": 14, "cremad": 76}, "esd")
    14
    >>> choose({"esd": 14, "cremad": 76}, "ESD")
    Traceback (most recent call last):
    ...
    ValueError: corpus 'ESD' is not one of: cremad, esd
    """
    if key not in options:
        raise ValueError(f"{what} {key!r} is not one of: {', '.join(sorted(options))}")
    return options[key]


def prepare_recipe_data(prepare_corpus, data_folder, save_folder, prepare_noise=None, augment=None,
                        corpus_options=None):
    """The ``prepare_data`` of a real-corpus recipe: the corpus, then the noise CSVs if augmenting.

    Arguments
    ---------
    prepare_corpus : callable
        ``prepare_<corpus>`` with its options bound (``!name:`` in the YAML); called
        with ``data_folder`` and ``save_folder``.
    data_folder : str
        The corpus root.
    save_folder : str
        Where the manifests go.
    prepare_noise : callable or None
        :func:`prepare_noise` with its arguments bound, or ``None``.
    augment : object or None
        The recipe's ``wav_augment``; ``None`` (``--wav_augment null``) skips the noise
        preparation.
    corpus_options : dict or None
        Further keyword arguments of ``prepare_corpus``.

    Returns
    -------
    dict
        ``{"corpus": summary[, "noise": summary]}``.

    Example
    -------
    >>> calls = []
    >>> out = prepare_recipe_data(lambda **kw: calls.append(sorted(kw)) or "ok", "/c", "/s",
    ...                           prepare_noise=lambda: "noise", augment=None)
    >>> out, calls
    ({'corpus': 'ok'}, [['data_folder', 'save_folder']])
    """
    summary = {"corpus": prepare_corpus(data_folder=data_folder, save_folder=save_folder, **(corpus_options or {}))}
    if augment is not None and prepare_noise is not None:
        summary["noise"] = prepare_noise()
    return summary
