"""Dusha, crowd subset (Kondratenko et al. 2022, "Large Raw Emotional Dataset with
Aggregation Mechanism"; salute-developers/golos ``dusha/``): Russian speech acted by
crowd workers in 4 emotions (angry, sad, neutral, positive), about 2,068 speakers.

Layout (verified against salute-developers/golos ``dusha/data_processing``:
``processing.py`` reads ``<dataset>/raw_<dataset>.jsonl`` or ``.tsv`` and
``<dataset>/wavs``; ``utils/datacls.py`` ``MarkupDataclass`` names the columns;
``utils/aggregation.py`` resolves ``audio_path`` relative to ``<dataset>/``)::

    <data_folder>/crowd_train/raw_crowd_train.jsonl   (or raw_crowd_train.tsv)
    <data_folder>/crowd_train/wavs/<hash_id>.wav
    <data_folder>/crowd_test/raw_crowd_test.jsonl     (or raw_crowd_test.tsv)
    <data_folder>/crowd_test/wavs/<hash_id>.wav

The raw files have one row per *annotation* (several per audio) with the columns
``hash_id, audio_path, duration, annotator_emo, golden_emo, speaker_text,
speaker_emo, source_id, annotator_id``. This preparation reads ``hash_id``,
``audio_path``, ``speaker_emo`` (the emotion the speaker was asked to act: the
label used here, not the annotators' votes), ``source_id`` (the speaker) and,
when present, ``speaker_text``; a missing required column raises an error naming
it. Rows are deduplicated by ``hash_id`` (first row wins; audios whose rows
disagree on ``speaker_emo``/``source_id`` are counted as ``conflicting_rows``).
Rows without ``speaker_emo`` or ``source_id`` are counted skips. The ``.jsonl``
file is read when both exist (``manifest_format`` chooses). TSV files are split on
tabs without quoting, as the golos reader does. Durations come from the audio
headers, not from the ``duration`` column.

Manifests: ``ID`` = ``hash_id``, ``spk_id`` = ``source_id``, ``emotion`` =
``speaker_emo`` lowercased, ``text`` = ``speaker_text`` normalised by
:func:`data_prep.corpus_utils.text_key` (the text key of
:func:`data_prep.common.emotion_trials`).

Default split: evaluation speakers are the speakers present in ``crowd_test``
(every utterance of theirs, from either subset, goes to ``eval.csv``; the overlap
with ``crowd_train`` speakers is reported); ``eval_speakers`` or
``n_eval_speakers`` (seeded choice) override it. ``n_valid_speakers`` (default 20)
of the other speakers are validation speakers (by ``seed``).
"""

import json
import logging
import os

from data_prep.common import PreparationError
from data_prep.corpus_utils import (
    SkipLog,
    filter_emotions,
    pick_valid_speakers,
    prepare_emotional_corpus,
    run_preparation,
    text_key,
)

logger = logging.getLogger(__name__)

CORPUS = "Dusha"
VERSION = "Dusha crowd (crowd.tar from salute-developers/golos)"
SUBSETS = ("crowd_train", "crowd_test")
REQUIRED_COLUMNS = ("hash_id", "audio_path", "speaker_emo", "source_id")
EMOTIONS = ("angry", "sad", "neutral", "positive")


def _missing(value):
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() in ("", "nan")


def markup_path(data_folder, subset, manifest_format="auto"):
    """The raw markup file of ``subset``: ``raw_<subset>.jsonl`` (preferred) or ``.tsv``.

    Example
    -------
    >>> import tempfile
    >>> markup_path(tempfile.mkdtemp(), "crowd_test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: Dusha crowd (...): missing .../raw_crowd_test.jsonl (or .tsv)
    """
    base = os.path.join(data_folder, subset, f"raw_{subset}")
    formats = {"auto": ("jsonl", "tsv"), "jsonl": ("jsonl",), "tsv": ("tsv",)}[manifest_format]
    for ext in formats:
        if os.path.isfile(f"{base}.{ext}"):
            return f"{base}.{ext}"
    alternatives = " (or .tsv)" if manifest_format == "auto" else ""
    raise PreparationError(f"{VERSION}: missing {base}.{formats[0]}{alternatives}")


def read_markup(path):
    """Yield the rows (dicts) of a raw Dusha markup file (``.jsonl`` or ``.tsv``).

    Raises :class:`data_prep.common.PreparationError` naming a missing required column.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "raw_crowd_test.tsv")
    >>> _ = open(p, "w").write("hash_id\\taudio_path\\tspeaker_emo\\nh1\\twavs/h1.wav\\tsad\\n")
    >>> list(read_markup(p))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: .../raw_crowd_test.tsv: missing column 'source_id' ...
    """
    with open(path, encoding="utf-8") as f:
        if path.endswith(".tsv"):
            header = f.readline().rstrip("\r\n").split("\t")
            _check_columns(path, header)
            for line in f:
                if line.strip():
                    yield dict(zip(header, line.rstrip("\r\n").split("\t")))
        else:
            checked = False
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise PreparationError(f"{path}:{number}: not JSON ({err})") from None
                if not checked:
                    _check_columns(path, row.keys())
                    checked = True
                yield row


def _check_columns(path, columns):
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            raise PreparationError(
                f"{path}: missing column {column!r} (found {sorted(columns)}; {VERSION} raw markup "
                f"has hash_id, audio_path, duration, annotator_emo, golden_emo, speaker_text, "
                f"speaker_emo, source_id, annotator_id)"
            )


def _collect(data_folder, subsets, manifest_format, skips):
    items = {}
    subset_speakers = {}
    conflicts = set()
    for subset in subsets:
        path = markup_path(data_folder, subset, manifest_format)
        wavs = os.path.join(data_folder, subset, "wavs")
        if not os.path.isdir(wavs):
            raise PreparationError(f"{VERSION}: missing folder {wavs}")
        logger.info("%s: reading %s", CORPUS, path)
        speakers = set()
        for row in read_markup(path):
            hash_id = str(row.get("hash_id", "")).strip()
            if not hash_id:
                skips.add("no_hash_id", path)
                continue
            emo, spk = row.get("speaker_emo"), row.get("source_id")
            if hash_id in items:
                first = items[hash_id]
                if (
                    not _missing(emo)
                    and not _missing(spk)
                    and (str(emo).strip().lower() != first["emotion"] or str(spk).strip() != first["spk_id"])
                ):
                    conflicts.add(hash_id)
                continue
            if _missing(spk):
                skips.add("no_source_id", hash_id)
                continue
            if _missing(emo):
                skips.add("no_speaker_emo", hash_id)
                continue
            emotion = str(emo).strip().lower()
            if emotion not in EMOTIONS:
                skips.add("unknown_speaker_emo", f"{hash_id}:{emotion}")
                continue
            spk = str(spk).strip()
            text = row.get("speaker_text")
            items[hash_id] = {
                "ID": hash_id,
                "path": os.path.join(data_folder, subset, str(row["audio_path"]).strip()),
                "spk_id": spk,
                "emotion": emotion,
                "text": "" if _missing(text) else text_key(text),
                "subset": subset,
            }
            speakers.add(spk)
        subset_speakers[subset] = speakers
    for hash_id in sorted(conflicts):
        skips.add("conflicting_rows", hash_id)
    return sorted(items.values(), key=lambda it: it["ID"]), subset_speakers


def prepare_dusha(
    data_folder,
    save_folder,
    subsets=SUBSETS,
    manifest_format="auto",
    eval_speakers=None,
    n_eval_speakers=None,
    n_valid_speakers=20,
    emotions=None,
    seed=1234,
    nontargets_per_target=3,
    num_workers=None,
):
    """Prepare the Dusha crowd subset for emotion-robust speaker verification.

    Arguments
    ---------
    data_folder : str
        The Dusha root (holds ``crowd_train/`` and ``crowd_test/``).
    save_folder : str
        Where manifests, trials and ``prepare.json`` go.
    subsets : sequence of str
        Subsets read (``crowd_train``, ``crowd_test``).
    manifest_format : str
        ``auto`` (``.jsonl`` if present, else ``.tsv``), ``jsonl`` or ``tsv``.
    eval_speakers : sequence of str or None
        Explicit evaluation speakers (``source_id``).
    n_eval_speakers : int or None
        Choose this many evaluation speakers by ``seed`` instead of the
        ``crowd_test`` speakers.
    n_valid_speakers : int
        Validation speakers held out of the training speakers (by ``seed``).
    emotions : sequence of str or None
        Emotions to keep (``None``: angry, sad, neutral, positive).
    seed : int
        Seed of the speaker choices and of the trials.
    nontargets_per_target : int
        Non-target trials per target trial.
    num_workers : int or None
        Threads reading audio headers (does not change the outputs).

    Returns
    -------
    dict
        Summary: utterances/speakers per split, trial counts, skips, ``status``.

    Example
    -------
    >>> import tempfile
    >>> prepare_dusha(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: Dusha crowd (...): missing .../raw_crowd_train.jsonl (or .tsv)
    """
    subsets = list(subsets)
    unknown = sorted(set(subsets) - set(SUBSETS))
    if unknown or not subsets:
        raise ValueError(f"subsets must be a non-empty subset of {SUBSETS}, got {subsets}")
    if manifest_format not in ("auto", "jsonl", "tsv"):
        raise ValueError(f"manifest_format must be auto, jsonl or tsv, not {manifest_format!r}")
    if eval_speakers is None and n_eval_speakers is None and "crowd_test" not in subsets:
        raise ValueError("without crowd_test, give eval_speakers or n_eval_speakers")
    options = {
        "corpus": "dusha",
        "prep_version": 1,
        "subsets": subsets,
        "manifest_format": manifest_format,
        "eval_speakers": sorted(eval_speakers) if eval_speakers is not None else None,
        "n_eval_speakers": n_eval_speakers,
        "n_valid_speakers": n_valid_speakers,
        "emotions": sorted(emotions) if emotions is not None else None,
        "seed": seed,
        "nontargets_per_target": nontargets_per_target,
    }
    data_folder = os.path.abspath(data_folder)
    save_folder = os.path.abspath(save_folder)

    def build():
        skips = SkipLog()
        items, subset_speakers = _collect(data_folder, subsets, manifest_format, skips)
        items = filter_emotions(items, emotions, skips, CORPUS)
        speakers = sorted({it["spk_id"] for it in items})
        if eval_speakers is not None:
            chosen = sorted(eval_speakers)
        elif n_eval_speakers is not None:
            chosen = pick_valid_speakers(speakers, n_eval_speakers, f"{seed}-eval")
        else:
            chosen = sorted(subset_speakers["crowd_test"] & set(speakers))
        overlap = sorted(subset_speakers.get("crowd_test", set()) & subset_speakers.get("crowd_train", set()))
        if overlap and eval_speakers is None and n_eval_speakers is None:
            logger.warning(
                "%s: %d crowd_test speaker(s) also appear in crowd_train; all their utterances go to eval",
                CORPUS,
                len(overlap),
            )
        return prepare_emotional_corpus(
            CORPUS,
            data_folder,
            save_folder,
            items,
            skips,
            chosen,
            n_valid_speakers,
            seed,
            nontargets_per_target,
            num_workers,
            extra_summary={"crowd_test_speakers_in_crowd_train": len(overlap)},
        )

    return run_preparation(CORPUS, save_folder, options, build)
