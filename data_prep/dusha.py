"""Dusha, crowd subset (Kondratenko et al. 2022, "Large Raw Emotional Dataset with
Aggregation Mechanism"; salute-developers/golos ``dusha/``): Russian speech acted by
crowd workers in 4 emotions (angry, sad, neutral, positive), about 2,068 speakers.

Layout (verified against salute-developers/golos ``dusha/data_processing``:
``processing.py`` reads ``<dataset>/raw_<dataset>.jsonl`` or ``.tsv`` and
``<dataset>/wavs``; ``utils/datacls.py`` ``MarkupDataclass`` names the columns;
``utils/aggregation.py`` resolves ``audio_path`` relative to ``<dataset>/``).
``data_folder`` is the ``crowd/`` folder that ``crowd.tar`` extracts (the one
holding ``crowd_train/`` and ``crowd_test/``); a folder holding ``crowd/`` is
accepted too::

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
tabs without quoting, as the golos reader does; columns are found by the header
(any order, CRLF line ends accepted); a row with fewer fields than the header, or a
``.jsonl`` row after the first without one of the required keys, is a counted skip
(``short_row``, file and line named); a ``.jsonl`` line that is not a JSON object is an
error naming its file and line. Durations come from the audio
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

The corpus is described as data (:data:`CORPUS`, a
:class:`data_prep.emotional.EmotionalCorpus` whose walk reads the markup files);
:func:`data_prep.emotional.prepare_emotional` does the rest.
"""

import json
import logging
import os

from data_prep.common import PreparationError
from data_prep.corpus_utils import check_subset, text_key
from data_prep.emotional import EmotionalCorpus, Walk, prepare_emotional

logger = logging.getLogger(__name__)

NAME = "Dusha"
VERSION = "Dusha crowd (crowd.tar from salute-developers/golos)"
SUBSETS = ("crowd_train", "crowd_test")
CROWD_FOLDER = "crowd"  # what crowd.tar extracts
SHORT_ROW = "\x00short_row"  # key of the row read_markup yields for a TSV line with too few fields
REQUIRED_COLUMNS = ("hash_id", "audio_path", "speaker_emo", "source_id")
EMOTIONS = ("angry", "sad", "neutral", "positive")


def _missing(value):
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() in ("", "nan")


def crowd_root(data_folder):
    """The folder holding ``crowd_train/`` and ``crowd_test/``: ``data_folder`` or its ``crowd/``.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "crowd", "crowd_test"))
    >>> os.path.relpath(crowd_root(d), d), crowd_root(os.path.join(d, "crowd")) == os.path.join(d, "crowd")
    ('crowd', True)
    """
    nested = os.path.join(data_folder, CROWD_FOLDER)
    if not any(os.path.isdir(os.path.join(data_folder, s)) for s in SUBSETS) and os.path.isdir(nested):
        return nested
    return data_folder


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

    Raises :class:`data_prep.common.PreparationError` naming a missing required column
    (header, or first JSON row) or a JSON line that is not an object. A TSV line with fewer
    fields than the header, or a later JSON row without a required key, yields
    ``{SHORT_ROW: line number}``.

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
            for number, line in enumerate(f, start=2):
                if line.strip():
                    fields = line.rstrip("\r\n").split("\t")
                    yield dict(zip(header, fields)) if len(fields) >= len(header) else {SHORT_ROW: number}
        else:
            checked = False
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise PreparationError(f"{path}:{number}: not JSON ({err})") from None
                if not isinstance(row, dict):
                    raise PreparationError(f"{path}:{number}: not a JSON object: {line.strip()[:80]!r}")
                if not checked:
                    _check_columns(path, row.keys())
                    checked = True
                elif any(column not in row for column in REQUIRED_COLUMNS):
                    # a later row without a required key would crash the walk (KeyError): counted as a TSV short row
                    yield {SHORT_ROW: number}
                    continue
                yield row


def _check_columns(path, columns):
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            raise PreparationError(
                f"{path}: missing column {column!r} (found {sorted(columns)}; {VERSION} raw markup "
                f"has hash_id, audio_path, duration, annotator_emo, golden_emo, speaker_text, "
                f"speaker_emo, source_id, annotator_id)"
            )


def _conflicts(first, emo, spk):
    """True when a later annotation row of an audio names another emotion or speaker than its first row."""
    if _missing(emo) or _missing(spk):
        return False
    return str(emo).strip().lower() != first["emotion"] or str(spk).strip() != first["spk_id"]


def _item(row, data_folder, subset):
    """``(item, None)`` of a markup row, or ``(None, (skip kind, skipped item))`` when its labels are unusable."""
    hash_id = row["hash_id"]
    emo, spk = row.get("speaker_emo"), row.get("source_id")
    if _missing(spk):
        return None, ("no_source_id", hash_id)
    if _missing(emo):
        return None, ("no_speaker_emo", hash_id)
    emotion = str(emo).strip().lower()
    if emotion not in EMOTIONS:
        return None, ("unknown_speaker_emo", f"{hash_id}:{emotion}")
    text = row.get("speaker_text")
    return {
        "ID": hash_id,
        "path": os.path.join(data_folder, subset, str(row["audio_path"]).strip()),
        "spk_id": str(spk).strip(),
        "emotion": emotion,
        "text": "" if _missing(text) else text_key(text),
        "subset": subset,
    }, None


def _read_subset(data_folder, subset, manifest_format, items, conflicts, skips):
    """Add the audios of one subset to ``items`` (by ``hash_id``; the first row with usable labels wins);
    return its speakers. An audio none of whose rows has usable labels is one skip (its first row's reason).
    """
    path = markup_path(data_folder, subset, manifest_format)
    wavs = os.path.join(data_folder, subset, "wavs")
    if not os.path.isdir(wavs):
        raise PreparationError(f"{VERSION}: missing folder {wavs}")
    logger.info("%s: reading %s", NAME, path)
    speakers, rejected = set(), {}
    for row in read_markup(path):
        if SHORT_ROW in row:
            skips.add("short_row", f"{path}:{row[SHORT_ROW]}")
            continue
        hash_id = str(row.get("hash_id", "")).strip()
        if not hash_id:
            skips.add("no_hash_id", path)
            continue
        if hash_id in items:
            if _conflicts(items[hash_id], row.get("speaker_emo"), row.get("source_id")):
                conflicts.add(hash_id)
            continue
        item, reason = _item({**row, "hash_id": hash_id}, data_folder, subset)
        if item is None:
            rejected.setdefault(hash_id, reason)
        else:
            items[hash_id] = item
            speakers.add(item["spk_id"])
    for hash_id, (kind, what) in rejected.items():
        if hash_id not in items:
            skips.add(kind, what)
    return speakers


def walk_dusha(data_folder, options, skips):
    """Items of the subsets of ``options`` (see the module docstring); the ``crowd_test``
    speakers are the evaluation speakers of the default split.

    Example
    -------
    >>> import tempfile
    >>> options = {"subsets": ["crowd_test"], "manifest_format": "tsv"}
    >>> walk_dusha(tempfile.mkdtemp(), options, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: Dusha crowd (...): missing .../crowd_test/raw_crowd_test.tsv
    """
    data_folder = crowd_root(data_folder)
    items, subset_speakers, conflicts = {}, {}, set()
    for subset in options["subsets"]:
        fmt = options["manifest_format"]
        subset_speakers[subset] = _read_subset(data_folder, subset, fmt, items, conflicts, skips)
    for hash_id in sorted(conflicts):
        skips.add("conflicting_rows", hash_id)
    overlap = sorted(subset_speakers.get("crowd_test", set()) & subset_speakers.get("crowd_train", set()))
    if overlap and options["eval_speakers"] is None and options["n_eval_speakers"] is None:
        logger.warning(
            "%s: %d crowd_test speaker(s) also appear in crowd_train; all their utterances go to eval",
            NAME,
            len(overlap),
        )
    return Walk(
        sorted(items.values(), key=lambda it: it["ID"]),
        {"crowd_test_speakers_in_crowd_train": len(overlap)},
        eval_speakers=subset_speakers.get("crowd_test"),
    )


CORPUS = EmotionalCorpus(name=NAME, key="dusha", walk=walk_dusha, n_valid_speakers=20)


def prepare_dusha(data_folder, save_folder, subsets=SUBSETS, manifest_format="auto", eval_speakers=None,
                  n_eval_speakers=None, n_valid_speakers=CORPUS.n_valid_speakers, emotions=None, seed=1234,
                  nontargets_per_target=3, num_workers=None):
    """Prepare the Dusha crowd subset for emotion-robust speaker verification: ``data_folder`` is the
    ``crowd/`` folder of ``crowd.tar`` (it holds ``crowd_train/`` and ``crowd_test/``; its parent is accepted too).

    The other arguments and the returned summary are those of
    :func:`data_prep.emotional.prepare_emotional`; by default the ``crowd_test``
    speakers are evaluation speakers, 20 of the others validation speakers, and all
    four emotions (angry, sad, neutral, positive) are kept.

    Arguments
    ---------
    subsets : sequence of str
        Subsets read (``crowd_train``, ``crowd_test``).
    manifest_format : str
        ``auto`` (``.jsonl`` if present, else ``.tsv``), ``jsonl`` or ``tsv``.
    n_eval_speakers : int or None
        Choose this many evaluation speakers by ``seed`` instead of the
        ``crowd_test`` speakers (``eval_speakers`` names them explicitly).

    Example
    -------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> prepare_dusha(root, os.path.join(root, "prep"), manifest_format="tsv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: Dusha crowd (...): missing .../crowd_train/raw_crowd_train.tsv
    """
    subsets = check_subset("subsets", subsets, SUBSETS)
    if manifest_format not in ("auto", "jsonl", "tsv"):
        raise ValueError(f"manifest_format must be auto, jsonl or tsv, not {manifest_format!r}")
    if eval_speakers is None and n_eval_speakers is None and "crowd_test" not in subsets:
        raise ValueError("without crowd_test, give eval_speakers or n_eval_speakers")
    layout = {"subsets": subsets, "manifest_format": manifest_format, "n_eval_speakers": n_eval_speakers}
    return prepare_emotional(CORPUS, data_folder, save_folder, eval_speakers, n_valid_speakers, emotions, seed,
                             nontargets_per_target, num_workers, layout=layout)
