"""Pieces every corpus preparation shares: the option hash that makes
preparation idempotent, a lock against concurrent preparations, manifest
and trial-list writers, and trial generation for corpora without an official list.

The on-disk contract of a prepared corpus (``save_folder``)::

    train.csv            training utterances   (ID, duration, wav, spk_id[, emotion, ...])
    valid.csv            utterances of the validation speakers (disjoint from train)
    eval.csv             every utterance an evaluation trial names
    trials/valid/<condition>.txt    trial lists on valid.csv (tuning only)
    trials/eval/<condition>.txt     trial lists on eval.csv (reporting only)
    trials/<split>/enrol.map        optional: "<model_id> <utt_id> [<utt_id> ...]"
    prepare.json         the options hash and the outputs; written last

A trial line is ``<1|0> <enrol_id> <test_id>``; an enrol id is either an utterance
ID of the manifest or a model id of ``enrol.map`` (multi-utterance enrolment).
Wav paths in manifests start with ``$data_root`` so a prepared folder survives a
move of the corpus (SpeechBrain replaces it through ``replacements``).
"""

import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import os
import random
from collections import defaultdict

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("ID", "duration", "wav", "spk_id")
PREPARE_MARKER = "prepare.json"
PREP_FORMAT_VERSION = 1
PREP_LOCK_FILE = ".prepare.lock"


class PreparationError(SpeechBrainExtError, RuntimeError):
    """A corpus is not laid out as its preparation expects.

    Example
    -------
    >>> str(PreparationError("missing /x/dev.lst"))
    'missing /x/dev.lst'
    >>> isinstance(PreparationError("x"), (SpeechBrainExtError, RuntimeError))
    True
    """


@contextlib.contextmanager
def prep_lock(folder, lock_file=PREP_LOCK_FILE):
    """Hold an exclusive lock on ``folder`` for the duration of a preparation.

    Two preparations started at once on the same folder run one after the other;
    the second then finds the outputs complete and skips. Locks with different
    ``lock_file`` names are independent, so a corpus generator can lock its data
    folder while the manifest writer locks a save folder that may be the same one.

    Arguments
    ---------
    folder : str
        The folder to lock (created if absent).
    lock_file : str
        Name of the lock file inside ``folder`` (an absolute path is used as is).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with prep_lock(d), prep_lock(d, ".corpus.lock"):
    ...     sorted(os.listdir(d))
    ['.corpus.lock', '.prepare.lock']
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, lock_file), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def options_hash(options):
    """A stable hash of the preparation options (JSON-serialisable values).

    Example
    -------
    >>> options_hash({"a": 1, "b": [1, 2]}) == options_hash({"b": [1, 2], "a": 1})
    True
    """
    payload = json.dumps({"format": PREP_FORMAT_VERSION, **options}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_prepared(save_folder, options):
    """True when ``prepare.json`` matches ``options`` and every output it lists exists.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> is_prepared(d, {"seed": 1})
    False
    >>> mark_prepared(d, {"seed": 1}, [])
    >>> is_prepared(d, {"seed": 1}), is_prepared(d, {"seed": 2})
    (True, False)
    """
    marker = os.path.join(save_folder, PREPARE_MARKER)
    try:
        with open(marker) as f:
            info = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    if info.get("options_hash") != options_hash(options):
        return False
    return all(os.path.exists(os.path.join(save_folder, p)) for p in info.get("outputs", []))


def mark_prepared(save_folder, options, outputs):
    """Write ``prepare.json`` (last, atomically) listing ``outputs`` relative to ``save_folder``.

    Example
    -------
    >>> import tempfile, json, os
    >>> d = tempfile.mkdtemp()
    >>> mark_prepared(d, {"x": 1}, ["train.csv"])
    >>> json.load(open(os.path.join(d, "prepare.json")))["outputs"]
    ['train.csv']
    """
    outputs = [os.path.relpath(p, save_folder) if os.path.isabs(p) else p for p in outputs]
    info = {"options": options, "options_hash": options_hash(options), "outputs": outputs}
    with atomic_write(os.path.join(save_folder, PREPARE_MARKER)) as f:
        json.dump(info, f, indent=2, sort_keys=True, default=str)


def data_root_path(path, data_folder):
    """Express ``path`` as ``$data_root/<relative>`` when it lies under ``data_folder``.

    Example
    -------
    >>> data_root_path("/corpus/a/b.wav", "/corpus")
    '$data_root/a/b.wav'
    >>> data_root_path("/elsewhere/b.wav", "/corpus")
    '/elsewhere/b.wav'
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(data_folder))
    if rel.startswith(".."):
        return os.path.abspath(path)
    return "$data_root/" + rel.replace(os.sep, "/")


def write_manifest(path, rows, extra_columns=()):
    """Write a SpeechBrain CSV manifest atomically; refuse duplicate IDs.

    Arguments
    ---------
    path : str
        Destination CSV.
    rows : list of dict
        Each has at least ``ID``, ``duration`` (seconds), ``wav``, ``spk_id``.
    extra_columns : sequence of str
        Further columns, in order (e.g. ``("emotion", "text")``).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> write_manifest(p, [{"ID": "u1", "duration": 1.5, "wav": "$data_root/u1.wav", "spk_id": "s1"}])
    >>> open(p).read().splitlines()
    ['ID,duration,wav,spk_id', 'u1,1.500,$data_root/u1.wav,s1']
    """
    columns = list(MANIFEST_COLUMNS) + list(extra_columns)
    seen = {}
    for line, row in enumerate(rows, start=2):
        missing = [c for c in columns if c not in row]
        if missing:
            raise PreparationError(f"{path}: row for ID {row.get('ID')!r} lacks columns {missing}")
        if row["ID"] in seen:
            raise PreparationError(
                f"{path}: duplicate ID {row['ID']!r} (rows {seen[row['ID']]} and {line})"
            )
        seen[row["ID"]] = line
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            values = [row[c] for c in columns]
            values[1] = f"{float(row['duration']):.3f}"
            writer.writerow(values)


def write_trials(path, trials):
    """Write a trial list: one ``<label> <enrol_id> <test_id>`` line per trial.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> write_trials(p, [(1, "a", "b"), (0, "a", "c")])
    >>> open(p).read()
    '1 a b\\n0 a c\\n'
    """
    with atomic_write(path) as f:
        for label, enrol, test in trials:
            f.write(f"{int(label)} {enrol} {test}\n")


def write_enrol_map(path, mapping):
    """Write a multi-utterance enrolment map: ``<model_id> <utt_id> [<utt_id> ...]``.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "enrol.map")
    >>> write_enrol_map(p, {"m1": ["u1", "u2"]})
    >>> open(p).read()
    'm1 u1 u2\\n'
    """
    with atomic_write(path) as f:
        for model, utts in mapping.items():
            f.write(model + " " + " ".join(utts) + "\n")


def speaker_trials(rows, seed, nontargets_per_target=3, max_targets_per_speaker=None):
    """Trials for a speaker-labelled set without an official list.

    Every utterance is a test once; it is paired with one other utterance of its
    speaker (target) and ``nontargets_per_target`` utterances of other speakers.
    Deterministic for a seed.

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``ID`` and ``spk_id``.
    seed : int
        Seed of the pairing.
    nontargets_per_target : int
        Non-target trials per target trial.
    max_targets_per_speaker : int or None
        Cap on test utterances per speaker.

    Returns
    -------
    list of (label, enrol_id, test_id)

    Example
    -------
    >>> rows = [{"ID": f"{s}_{i}", "spk_id": s} for s in "ab" for i in range(2)]
    >>> sorted(t[0] for t in speaker_trials(rows, seed=0, nontargets_per_target=1))
    [0, 0, 0, 0, 1, 1, 1, 1]
    """
    rng = random.Random(seed)
    by_spk = defaultdict(list)
    for row in rows:
        by_spk[row["spk_id"]].append(row["ID"])
    speakers = sorted(by_spk)
    trials = []
    for spk in speakers:
        utts = sorted(by_spk[spk])
        if len(utts) < 2 or len(speakers) < 2:
            continue
        tests = utts if max_targets_per_speaker is None else rng.sample(utts, min(len(utts), max_targets_per_speaker))
        others = [s for s in speakers if s != spk]
        for test in tests:
            enrol = rng.choice([u for u in utts if u != test])
            trials.append((1, enrol, test))
            for _ in range(nontargets_per_target):
                other = rng.choice(others)
                trials.append((0, rng.choice(sorted(by_spk[other])), test))
    return trials


def emotion_trials(rows, seed, nontargets_per_target=3, neutral="neutral", enrol_fraction=0.5):
    """Trial conditions of an emotional test set (methods.md, evaluation conventions).

    Each speaker's utterances are split by text (or ID when there is no text column)
    into an enrolment pool and a test pool, so no trial pairs the same sentence.
    Every test utterance meets, for every enrolment emotion, one target enrolment
    utterance of its speaker and ``nontargets_per_target`` of other speakers.
    The conditions are subsets of that one list:

    - ``all``: every trial;
    - ``same_emotion``: enrolment emotion == test emotion;
    - ``neutral_emotional``: neutral enrolment, non-neutral test;
    - ``neutral_neutral``: neutral enrolment and test;
    - ``test_<emotion>``: neutral enrolment, test in ``<emotion>``, for every
      non-neutral emotion (the neutral one would repeat ``neutral_neutral``).

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``ID``, ``spk_id``, ``emotion`` and optionally ``text``.
    seed : int
        Seed of the pairing.
    nontargets_per_target : int
        Non-target trials per target trial.
    neutral : str
        Name of the neutral emotion.
    enrol_fraction : float
        Share of each speaker's sentences used for enrolment.

    Returns
    -------
    dict
        condition -> list of (label, enrol_id, test_id)

    Example
    -------
    >>> rows = [{"ID": f"{s}_{e}_{t}", "spk_id": s, "emotion": e, "text": f"t{t}"}
    ...         for s in "ab" for e in ("neutral", "sad") for t in range(4)]
    >>> conds = emotion_trials(rows, seed=0, nontargets_per_target=1)
    >>> sorted(conds)
    ['all', 'neutral_emotional', 'neutral_neutral', 'same_emotion', 'test_sad']
    >>> len(conds["all"]), sum(t[0] for t in conds["all"])
    (32, 16)
    """
    rng = random.Random(seed)
    emotion_of = {r["ID"]: r["emotion"] for r in rows}
    enrol_pool, test_pool = _enrol_and_test_pools(rows, seed, enrol_fraction)
    speakers = sorted(enrol_pool)
    emotions = sorted({r["emotion"] for r in rows})
    trials = []
    for spk in speakers:
        for test in test_pool[spk]:
            for emo in emotions:
                if not enrol_pool[spk].get(emo):
                    continue
                trials.append((1, rng.choice(enrol_pool[spk][emo]), test))
                others = [s for s in speakers if s != spk and enrol_pool[s].get(emo)]
                for _ in range(nontargets_per_target if others else 0):
                    other = rng.choice(others)
                    trials.append((0, rng.choice(enrol_pool[other][emo]), test))
    conditions = {"all": trials}

    def subset(keep):
        return [t for t in trials if keep(emotion_of[t[1]], emotion_of[t[2]])]

    conditions["same_emotion"] = subset(lambda e, t: e == t)
    conditions["neutral_emotional"] = subset(lambda e, t: e == neutral and t != neutral)
    conditions["neutral_neutral"] = subset(lambda e, t: e == neutral and t == neutral)
    for emo in (e for e in emotions if e != neutral):
        conditions[f"test_{emo}"] = subset(lambda e, t, emo=emo: e == neutral and t == emo)
    return {name: t for name, t in conditions.items() if t}


def _enrol_and_test_pools(rows, seed, enrol_fraction):
    """Per speaker: ``{emotion: [enrolment IDs]}`` and ``[test IDs]``, split by sentence.

    Each speaker's shuffle has its own seed, so adding a speaker changes no other
    speaker's pools.
    """
    by_spk = defaultdict(list)
    for row in rows:
        by_spk[row["spk_id"]].append(row)
    enrol_pool, test_pool = {}, {}
    for spk, spk_rows in by_spk.items():
        keys = sorted({r.get("text") or r["ID"] for r in spk_rows})
        rng_keys = keys[:]
        random.Random(f"{seed}-{spk}").shuffle(rng_keys)
        n_enrol = max(1, int(round(enrol_fraction * len(keys))))
        enrol_keys = set(rng_keys[:n_enrol])
        enrol_pool[spk] = defaultdict(list)
        test_pool[spk] = []
        for r in sorted(spk_rows, key=lambda r: r["ID"]):
            if (r.get("text") or r["ID"]) in enrol_keys:
                enrol_pool[spk][r["emotion"]].append(r["ID"])
            else:
                test_pool[spk].append(r["ID"])
    return enrol_pool, test_pool
