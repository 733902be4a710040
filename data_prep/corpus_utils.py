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
- :func:`prepare_emotional_corpus`: the shared body of the emotional corpora
  (ESD, CREMA-D, RAVDESS, Dusha): durations, speaker split, manifests with
  ``emotion`` and ``text`` columns, and the trial conditions of
  :func:`data_prep.common.emotion_trials` for ``valid`` and ``eval``.

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
    atomic_write,
    data_root_path,
    emotion_trials,
    is_prepared,
    mark_prepared,
    prep_lock,
    write_manifest,
    write_trials,
)

logger = logging.getLogger(__name__)

SUMMARY_FILE = "prepare_summary.json"
MAX_EXAMPLES = 5
EMOTION_COLUMNS = ("emotion", "text")
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
            if now - last_log > 30:
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


def prepare_emotional_corpus(
    corpus,
    data_folder,
    save_folder,
    items,
    skips,
    eval_speakers,
    n_valid_speakers,
    seed,
    nontargets_per_target=3,
    num_workers=None,
    stratum_of=None,
    extra_summary=None,
):
    """Shared body of the emotional corpora: durations, split, manifests, trials.

    Arguments
    ---------
    corpus : str
        Corpus name for logs.
    data_folder : str
        Corpus root (``$data_root`` of the manifests).
    save_folder : str
        Output folder.
    items : list of dict
        One per audio file: ``ID``, ``path`` (absolute), ``spk_id``, ``emotion``, ``text``.
    skips : SkipLog
        Skips so far (layout parsing); audio skips are added here.
    eval_speakers : collection of str
        Speakers of ``eval.csv`` (must be present in ``items``).
    n_valid_speakers : int
        Validation speakers held out of the remaining ones (deterministic by ``seed``).
    seed : int
        Seed of the validation choice and of the trials.
    nontargets_per_target : int
        Passed to :func:`data_prep.common.emotion_trials`.
    num_workers : int or None
        Threads for header reads.
    stratum_of : callable or None
        Speaker -> stratum for :func:`pick_valid_speakers`.
    extra_summary : dict or None
        Merged into the summary.

    Returns
    -------
    (list of str, dict)
        The outputs and the summary, as :func:`run_preparation` expects.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> data, save = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> items = []
    >>> for spk in ("a", "b", "c", "d", "e"):
    ...     for emo in ("neutral", "sad"):
    ...         for text in ("t1", "t2"):
    ...             path = os.path.join(data, f"{spk}_{emo}_{text}.wav")
    ...             soundfile.write(path, numpy.zeros(1600), 16000)
    ...             items.append({"ID": f"{spk}_{emo}_{text}", "path": path, "spk_id": spk,
    ...                           "emotion": emo, "text": text})
    >>> outputs, summary = prepare_emotional_corpus("demo", data, save, items, SkipLog(), ["d", "e"], 2, 0)
    >>> summary["speakers"]["eval"], len(summary["speakers"]["valid"]), summary["train"]
    (['d', 'e'], 2, {'utterances': 4, 'speakers': 1})
    >>> open(os.path.join(save, "eval.csv")).readline().strip()
    'ID,duration,wav,spk_id,emotion,text'
    """
    durations = read_durations([it["path"] for it in items], skips, num_workers, label=corpus)
    rows = []
    for it in items:
        if it["path"] not in durations:
            continue
        rows.append(
            {
                "ID": it["ID"],
                "duration": durations[it["path"]],
                "wav": root_relative(it["path"], data_folder),
                "spk_id": it["spk_id"],
                "emotion": it["emotion"],
                "text": clean_text(it["text"]),
            }
        )
    if not rows:
        raise PreparationError(f"{corpus}: no readable audio under {data_folder} (skips: {skips.as_dict()})")
    rows.sort(key=lambda r: r["ID"])
    speakers = {r["spk_id"] for r in rows}
    eval_set = set(eval_speakers)
    absent = sorted(eval_set - speakers)
    if absent:
        raise PreparationError(
            f"{corpus}: eval speakers without readable audio under {data_folder}: {absent}"
        )
    valid_set = set(pick_valid_speakers(speakers - eval_set, n_valid_speakers, seed, stratum_of))
    splits = {"train": [], "valid": [], "eval": []}
    for row in rows:
        spk = row["spk_id"]
        splits["eval" if spk in eval_set else "valid" if spk in valid_set else "train"].append(row)
    outputs = []
    for name, split_rows in splits.items():
        path = os.path.join(save_folder, f"{name}.csv")
        write_manifest(path, split_rows, extra_columns=EMOTION_COLUMNS)
        outputs.append(path)
    trial_counts = {}
    for split in ("valid", "eval"):
        if split == "valid" and not splits[split]:  # n_valid_speakers=0: an empty list
            outputs += write_conditions(save_folder, split, {"all": []})
            trial_counts["valid/all"] = 0
            continue
        conditions = emotion_trials(splits[split], seed=seed, nontargets_per_target=nontargets_per_target)
        if not conditions.get("all"):
            raise PreparationError(
                f"{corpus}: no {split} trials could be made from {split_summary(splits[split])}"
            )
        outputs += write_conditions(save_folder, split, conditions)
        trial_counts.update({f"{split}/{name}": len(t) for name, t in conditions.items()})
    skips.log(corpus)
    summary = {name: split_summary(r) for name, r in splits.items()}
    summary["emotions"] = sorted({r["emotion"] for r in rows})
    summary["speakers"] = {name: sorted({r["spk_id"] for r in r_}) for name, r_ in splits.items()}
    summary["trials"] = trial_counts
    summary["skipped"] = skips.as_dict()
    summary.update(extra_summary or {})
    return outputs, summary


def filter_emotions(items, emotions, skips, corpus):
    """Keep the items whose emotion is in ``emotions`` (``None``: keep all).

    Items of other emotions are counted under ``filtered_emotion`` (not an
    error). An emotion name the corpus does not have raises.

    Example
    -------
    >>> items = [{"ID": "a", "emotion": "neutral"}, {"ID": "b", "emotion": "calm"}]
    >>> [i["ID"] for i in filter_emotions(items, ["neutral"], SkipLog(), "x")]
    ['a']
    """
    if emotions is None:
        return items
    known = {it["emotion"] for it in items}
    unknown = sorted(set(emotions) - known)
    if unknown:
        raise PreparationError(f"{corpus}: unknown emotion(s) {unknown}; the corpus has {sorted(known)}")
    keep = []
    for it in items:
        if it["emotion"] in emotions:
            keep.append(it)
        else:
            skips.add("filtered_emotion", it["ID"])
    return keep
