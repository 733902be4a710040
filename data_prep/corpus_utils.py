"""Helpers shared by the corpus preparations (``data_prep.<corpus>``), on top of
:mod:`data_prep.common`.

- :class:`SkipLog`: counted skips (file listed but absent, unreadable audio, empty
  audio, file name not following the corpus convention, ...) with the first few
  items of each kind, logged once and recorded in ``prepare_summary.json``.
- :func:`read_durations`: durations from ``soundfile.info`` (frames / samplerate)
  on a thread pool, classifying failures into counted skips.
- :func:`run_preparation`: the lock / idempotence / marker skeleton every
  ``prepare_<corpus>`` uses (``prepare.json`` is removed before a re-preparation
  and written last; outputs of an earlier preparation that the new one no longer
  writes are removed).
- :func:`pick_valid_speakers`: deterministic hold-out of validation speakers.
- :func:`write_verification_outputs`: the outputs of a speaker-verification corpus
  with official evaluation lists (CN-Celeb, VoxCeleb): validation speakers held out
  of training, the three manifests, ``trials/valid/all.txt`` and the evaluation lists.
- :func:`run_parallel`, :func:`has_frames`, :func:`write_flac16`: audio written by a
  preparation (combined segments, noise segments) on a thread pool, atomically, and
  reused when an earlier run wrote it completely.
- :func:`is_hidden_file`: what every walk ignores (macOS ``._*`` and ``.DS_Store``,
  interrupted atomic writes).

The emotional corpora share more: :mod:`data_prep.emotional`.

Besides ``prepare.json`` (written by :func:`data_prep.common.mark_prepared` and
hashed on the options only), every preparation writes ``prepare_summary.json``:
counts per split, trial counts per condition and the skips; the same dict is
returned by ``prepare_<corpus>`` (with ``status`` = ``"prepared"`` or ``"skipped"``).
"""

import concurrent.futures
import json
import logging
import os
import random
import re
import time
from collections import Counter, defaultdict

import soundfile as sf

from data_prep.common import (
    PREPARE_MARKER,
    PreparationError,
    data_root_path,
    is_prepared,
    mark_prepared,
    prep_lock,
    speaker_trials,
    write_manifest,
    write_trials,
)
from speechbrain_ext.files import atomic_path, atomic_write

logger = logging.getLogger(__name__)

SUMMARY_FILE = "prepare_summary.json"
MAX_EXAMPLES = 5
PROGRESS_SECONDS = 30
LFS_POINTER_PREFIX = b"version https://git-lfs"


class SkipLog:
    """Counted skips by kind, keeping the first few items of each kind.

    Example
    -------
    >>> skips = SkipLog()
    >>> skips.add("missing", "/c/a.wav")
    >>> skips.add("missing", "/c/b.wav")
    >>> skips.total(), skips.as_dict()
    (2, {'missing': {'count': 2, 'first': ['/c/a.wav', '/c/b.wav']}})
    >>> skips.log("demo")  # one warning per kind, on the data_prep.corpus_utils logger
    """

    def __init__(self):
        self.counts = Counter()
        self.examples = defaultdict(list)

    def add(self, kind, item):
        """Count one skipped ``item`` (a path or an id) of ``kind``."""
        self.counts[kind] += 1
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(str(item))

    def total(self):
        """Number of skipped items, all kinds together."""
        return sum(self.counts.values())

    def as_dict(self):
        """``{kind: {"count": n, "first": [...]}}`` sorted by kind."""
        return {k: {"count": self.counts[k], "first": list(self.examples[k])} for k in sorted(self.counts)}

    def log(self, corpus):
        """Log one warning per kind with the first few items."""
        for kind in sorted(self.counts):
            logger.warning(
                "%s: skipped %d item(s) (%s); first: %s",
                corpus,
                self.counts[kind],
                kind,
                ", ".join(self.examples[kind]),
            )


def root_relative(path, data_folder):
    """:func:`data_prep.common.data_root_path` with a fast path for paths built under
    ``data_folder`` (a prefix cut instead of ``os.path.relpath``: 1M paths in well under a second).

    Example
    -------
    >>> root_relative("/corpus/wav/a.wav", "/corpus"), root_relative("/other/a.wav", "/corpus")
    ('$data_root/wav/a.wav', '/other/a.wav')
    """
    prefix = data_folder.rstrip(os.sep) + os.sep
    if path.startswith(prefix) and os.sep == "/" and "/../" not in path and "/./" not in path:
        return "$data_root/" + path[len(prefix) :]
    return data_root_path(path, data_folder)


def is_hidden_file(name):
    """True for a hidden file, never corpus audio whatever its extension: the AppleDouble
    ``._<name>`` resource forks and ``.DS_Store`` that macOS leaves in archives and
    copies, the ``.tmp-*`` of an interrupted atomic write. The walks of every
    preparation ignore them, so they are neither utterances nor skips.

    Example
    -------
    >>> [is_hidden_file(n) for n in ("._00001.wav", ".DS_Store", ".tmp-12-34-00001.wav", "00001.wav")]
    [True, True, True, False]
    """
    return name.startswith(".")


def audio_duration(path):
    """Duration in seconds of an audio file from its header (``soundfile.info``).

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(p, numpy.zeros(8000), 16000)
    >>> audio_duration(p)
    0.5
    """
    info = sf.info(path)
    return info.frames / info.samplerate


def _failure_kind(path):
    """Why ``soundfile.info`` failed on ``path``: missing, lfs_pointer or unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER_PREFIX))
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    return "lfs_pointer" if head == LFS_POINTER_PREFIX else "unreadable"


def _probe(path):
    try:
        info = sf.info(path)
    except Exception:  # libsndfile raises LibsndfileError/RuntimeError/TypeError on bad files
        return None, _failure_kind(path)
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "empty"
    return info.frames / info.samplerate, None


def _probe_chunk(paths):
    return [_probe(p) for p in paths]


def default_workers():
    """Threads for header reads: I/O bound, so a few per core (at most 32).

    Example
    -------
    >>> 1 <= default_workers() <= 32
    True
    """
    return max(1, min(32, 4 * (os.cpu_count() or 1)))


def read_durations(paths, skips, num_workers=None, duration_from="soundfile", label="audio"):
    """Durations of ``paths`` (seconds); failures become counted skips.

    Arguments
    ---------
    paths : list of str
        Audio files.
    skips : SkipLog
        Receives ``missing`` (absent file), ``unreadable`` (``soundfile.info``
        failed), ``lfs_pointer`` (a git-lfs pointer instead of audio) and ``empty``
        (zero frames) skips.
    num_workers : int or None
        Threads (``None``: :func:`default_workers`).
    duration_from : str
        ``"soundfile"`` reads every header; ``"none"`` reads nothing and gives
        0.0 for every path (benchmarks of the walk and manifest path only: such
        manifests cannot drive duration sorting or cropping).
    label : str
        Name used in progress logs.

    Returns
    -------
    dict
        path -> duration, only for the readable files.

    Example
    -------
    >>> skips = SkipLog()
    >>> read_durations(["/nonexistent/a.wav"], skips), skips.counts["missing"]
    ({}, 1)
    >>> read_durations(["/x.wav"], SkipLog(), duration_from="none")
    {'/x.wav': 0.0}
    """
    if duration_from == "none":
        return dict.fromkeys(paths, 0.0)
    if duration_from != "soundfile":
        raise ValueError(f"duration_from must be 'soundfile' or 'none', not {duration_from!r}")
    paths = list(paths)
    chunk = 1024
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    durations = {}
    start = time.monotonic()
    last_log = start
    with concurrent.futures.ThreadPoolExecutor(num_workers or default_workers()) as pool:
        done = 0
        for part, results in zip(chunks, pool.map(_probe_chunk, chunks)):
            for path, (duration, kind) in zip(part, results):
                if kind is None:
                    durations[path] = duration
                else:
                    skips.add(kind, path)
            done += len(part)
            now = time.monotonic()
            if now - last_log > PROGRESS_SECONDS:
                logger.info("%s: read %d/%d headers (%.0f s)", label, done, len(paths), now - start)
                last_log = now
    if skips.counts.get("lfs_pointer"):
        logger.warning(
            "%s: %d file(s) are git-lfs pointers, not audio: fetch them with `git lfs pull`",
            label,
            skips.counts["lfs_pointer"],
        )
    return durations


def pick_valid_speakers(speakers, n_valid, seed, stratum_of=None):
    """Choose ``n_valid`` validation speakers deterministically for ``seed``.

    With ``stratum_of`` (speaker -> stratum, e.g. language or gender) the choice
    goes round-robin over the strata in sorted order, so two strata and
    ``n_valid=2`` give one speaker of each. At least one speaker is left; one
    validation speaker alone is refused (no non-target trial could be made).

    Example
    -------
    >>> pick_valid_speakers(["a", "b", "c", "d"], 2, 0) == pick_valid_speakers(["d", "c", "b", "a"], 2, 0)
    True
    >>> sorted(s[0] for s in pick_valid_speakers(["x1", "x2", "y1", "y2"], 2, 0, stratum_of=lambda s: s[0]))
    ['x', 'y']
    """
    speakers = sorted(set(speakers))
    if n_valid <= 0:
        return []
    if n_valid == 1:
        raise ValueError("n_valid_speakers must be 0 or at least 2: trials need another speaker")
    if n_valid >= len(speakers):
        raise PreparationError(
            f"n_valid_speakers={n_valid} leaves no training speaker ({len(speakers)} available)"
        )
    rng = random.Random(seed)
    groups = defaultdict(list)
    for spk in speakers:
        groups[stratum_of(spk) if stratum_of else ""].append(spk)
    order = sorted(groups)
    for key in order:
        rng.shuffle(groups[key])
    chosen = []
    i = 0
    while len(chosen) < n_valid:
        group = groups[order[i % len(order)]]
        if group:
            chosen.append(group.pop())
        i += 1
    return sorted(chosen)


def clean_text(text):
    """A manifest-safe text: one line, single spaces, no ``$`` (SpeechBrain's CSV
    loader would read ``$word`` as a replacement variable; it becomes ``＄``).

    Example
    -------
    >>> clean_text("  Costs  $5\\n now ")
    'Costs ＄5 now'
    """
    return " ".join(str(text).replace("$", "\uff04").split())


def text_key(text):
    """A comparison key for a transcript: lowercase, letters/digits/spaces only.

    Example
    -------
    >>> text_key("Hello,  World!") == text_key("hello world")
    True
    """
    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


def relative_outputs(save_folder, paths):
    """Paths relative to ``save_folder`` (sorted, unique).

    Example
    -------
    >>> relative_outputs("/s", ["/s/train.csv", "trials/eval/all.txt", "/s/train.csv"])
    ['train.csv', 'trials/eval/all.txt']
    """
    rel = {os.path.relpath(p, save_folder) if os.path.isabs(p) else p for p in paths}
    return sorted(rel)


def _previous_outputs(save_folder):
    try:
        with open(os.path.join(save_folder, PREPARE_MARKER)) as f:
            return list(json.load(f).get("outputs", []))
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def run_preparation(corpus, save_folder, options, build):
    """Run ``build`` under :func:`data_prep.common.prep_lock` unless already prepared.

    ``build()`` writes the outputs and returns ``(outputs, summary)``; outputs
    are paths (absolute or relative to ``save_folder``). Then ``prepare_summary.json``
    and, last, ``prepare.json`` are written. Outputs of the previous preparation
    that ``build`` did not write again are removed (plain files only).

    Returns
    -------
    dict
        The summary, with ``status`` = ``"prepared"`` or ``"skipped"``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> def build():
    ...     open(os.path.join(d, "train.csv"), "w").close()
    ...     return ["train.csv"], {"train": 0}
    >>> run_preparation("demo", d, {"seed": 1}, build)["status"]
    'prepared'
    >>> run_preparation("demo", d, {"seed": 1}, build)["status"]
    'skipped'
    """
    save_folder = os.path.abspath(save_folder)
    with prep_lock(save_folder):
        if is_prepared(save_folder, options):
            logger.info("%s: %s is already prepared with these options, skipping", corpus, save_folder)
            try:
                with open(os.path.join(save_folder, SUMMARY_FILE)) as f:
                    summary = json.load(f)
            except (FileNotFoundError, json.JSONDecodeError):
                summary = {}
            summary["status"] = "skipped"
            return summary
        previous = _previous_outputs(save_folder)
        marker = os.path.join(save_folder, PREPARE_MARKER)
        if os.path.exists(marker):
            os.remove(marker)  # a crash from here on must not leave a marker for the old options
        start = time.monotonic()
        outputs, summary = build()
        summary = dict(summary)
        summary["corpus"] = corpus
        summary["seconds"] = round(time.monotonic() - start, 3)
        outputs = relative_outputs(save_folder, outputs)
        with atomic_write(os.path.join(save_folder, SUMMARY_FILE)) as f:
            json.dump(summary, f, indent=2, sort_keys=True, default=str)
        outputs = sorted(set(outputs) | {SUMMARY_FILE})
        for old in previous:
            path = os.path.join(save_folder, old)
            if old not in outputs and old != PREPARE_MARKER and os.path.isfile(path):
                os.remove(path)
        mark_prepared(save_folder, options, outputs)
        logger.info("%s: prepared %s in %.1f s", corpus, save_folder, summary["seconds"])
        summary["status"] = "prepared"
        return summary


def split_summary(rows):
    """Utterance and speaker counts of a manifest's rows.

    Example
    -------
    >>> split_summary([{"spk_id": "a"}, {"spk_id": "a"}, {"spk_id": "b"}])
    {'utterances': 3, 'speakers': 2}
    """
    return {"utterances": len(rows), "speakers": len({r["spk_id"] for r in rows})}


def write_conditions(save_folder, split, conditions):
    """Write ``trials/<split>/<condition>.txt`` for each condition; return the paths.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> [os.path.relpath(p, d) for p in write_conditions(d, "eval", {"all": [(1, "a", "b")]})]
    ['trials/eval/all.txt']
    """
    paths = []
    for name in sorted(conditions):
        path = os.path.join(save_folder, "trials", split, f"{name}.txt")
        write_trials(path, conditions[name])
        paths.append(path)
    return paths


def check_subset(name, given, allowed):
    """``list(given)``; a ``ValueError`` naming ``allowed`` when it is empty or has another value.

    Example
    -------
    >>> check_subset("languages", ("en",), ["en", "zh"])
    ['en']
    >>> check_subset("languages", ["fr"], ["en", "zh"])
    Traceback (most recent call last):
    ...
    ValueError: languages must be a non-empty subset of ['en', 'zh'], got ['fr']
    """
    given = list(given)
    if not given or set(given) - set(allowed):
        raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {given}")
    return given


def audio_row(uid, path, duration, data_folder, spk_id):
    """A manifest row of one audio file (``wav`` under ``$data_root`` when it lies in ``data_folder``).

    Example
    -------
    >>> audio_row("s1/u1", "/c/s1/u1.wav", 1.5, "/c", "s1")
    {'ID': 's1/u1', 'duration': 1.5, 'wav': '$data_root/s1/u1.wav', 'spk_id': 's1'}
    """
    return {"ID": uid, "duration": duration, "wav": root_relative(path, data_folder), "spk_id": spk_id}


def validation_options(n_valid_speakers, valid_max_targets_per_speaker, seed, nontargets_per_target):
    """The options of the validation split that :func:`write_verification_outputs` reads.

    Example
    -------
    >>> sorted(validation_options(20, 10, 1234, 3))
    ['n_valid_speakers', 'nontargets_per_target', 'seed', 'valid_max_targets_per_speaker']
    """
    return {
        "n_valid_speakers": n_valid_speakers,
        "valid_max_targets_per_speaker": valid_max_targets_per_speaker,
        "seed": seed,
        "nontargets_per_target": nontargets_per_target,
    }


def write_verification_outputs(save_folder, train_rows, eval_rows, eval_conditions, options, extra_columns=()):
    """Hold out validation speakers of ``train_rows``; write the manifests and trial lists.

    ``options`` holds :func:`validation_options`: ``n_valid_speakers`` and ``seed``
    (the held-out speakers, by :func:`pick_valid_speakers`), ``nontargets_per_target``
    and ``valid_max_targets_per_speaker`` (``trials/valid/all.txt``, by
    :func:`data_prep.common.speaker_trials`). ``extra_columns`` go to ``train.csv``
    and ``valid.csv`` only; ``trials/eval/<condition>.txt`` holds ``eval_conditions``.

    Returns
    -------
    outputs : list of str
        The files written.
    summary : dict
        ``train``/``valid``/``eval`` counts and ``trials`` per list.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> rows = [{"ID": f"{s}/{i}", "duration": 1.0, "wav": f"{s}/{i}.wav", "spk_id": s} for s in "abc" for i in (1, 2)]
    >>> options = validation_options(n_valid_speakers=2, valid_max_targets_per_speaker=1, seed=0,
    ...                              nontargets_per_target=1)
    >>> outputs, summary = write_verification_outputs(d, rows, rows[:2], {"o": [(1, "a/1", "a/2")]}, options)
    >>> summary["train"], summary["valid"], summary["trials"]
    ({'utterances': 2, 'speakers': 1}, {'utterances': 4, 'speakers': 2}, {'valid/all': 4, 'eval/o': 1})
    """
    speakers = {r["spk_id"] for r in train_rows}
    valid_spk = set(pick_valid_speakers(speakers, options["n_valid_speakers"], options["seed"]))
    valid_rows = [r for r in train_rows if r["spk_id"] in valid_spk]
    train_rows = [r for r in train_rows if r["spk_id"] not in valid_spk]
    outputs = []
    for name, rows, extra in (("train", train_rows, extra_columns), ("valid", valid_rows, extra_columns),
                              ("eval", eval_rows, ())):
        path = os.path.join(save_folder, f"{name}.csv")
        write_manifest(path, rows, extra_columns=extra)
        outputs.append(path)
    valid_trials = speaker_trials(
        valid_rows,
        options["seed"],
        options["nontargets_per_target"],
        max_targets_per_speaker=options["valid_max_targets_per_speaker"],
    )
    outputs += write_conditions(save_folder, "valid", {"all": valid_trials})
    outputs += write_conditions(save_folder, "eval", eval_conditions)
    summary = {
        "train": split_summary(train_rows),
        "valid": split_summary(valid_rows),
        "eval": split_summary(eval_rows),
        "trials": {"valid/all": len(valid_trials), **{f"eval/{n}": len(t) for n, t in eval_conditions.items()}},
    }
    return outputs, summary


def run_parallel(function, jobs, num_workers=None, label="jobs"):
    """``[function(job) for job in jobs]`` on a thread pool, logging progress every 30 s.

    Example
    -------
    >>> run_parallel(abs, [-2, 3, -4], num_workers=2)
    [2, 3, 4]
    """
    jobs = list(jobs)
    with concurrent.futures.ThreadPoolExecutor(num_workers or default_workers()) as pool:
        futures = [pool.submit(function, job) for job in jobs]
        start = last = time.monotonic()
        for done, _ in enumerate(concurrent.futures.as_completed(futures), start=1):
            if time.monotonic() - last > PROGRESS_SECONDS:
                last = time.monotonic()
                logger.info("%s: %d/%d done (%.0f s)", label, done, len(futures), last - start)
        return [f.result() for f in futures]


def has_frames(path, frames):
    """True when ``path`` is readable audio of exactly ``frames`` frames (a complete earlier write).

    Example
    -------
    >>> import tempfile, numpy
    >>> p = os.path.join(tempfile.mkdtemp(), "a.flac")
    >>> has_frames(p, 160)
    False
    >>> write_flac16(p, numpy.zeros(160), 16000)
    >>> has_frames(p, 160), has_frames(p, 161)
    (True, False)
    """
    if not os.path.exists(path):
        return False
    try:
        return sf.info(path).frames == frames
    except Exception:  # a broken earlier file is rewritten
        return False


def write_flac16(path, data, samplerate):
    """Write ``data`` to ``path`` as 16-bit FLAC through a temporary file renamed over it.

    No fsync: a preparation writes up to hundreds of thousands of these, and a file
    left short by a crash fails :func:`has_frames` and is written again.
    """
    with atomic_path(path, fsync=False) as tmp:
        sf.write(tmp, data, samplerate, format="FLAC", subtype="PCM_16")
