"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song; Livingstone &
Russo, PLoS ONE 2018): 24 actors (odd = male, even = female), two statements, 8 emotions.

Layout (verified against the RAVDESS file-naming description reproduced on its
Zenodo/Kaggle pages and in public loaders: 7-part identifier
``modality-channel-emotion-intensity-statement-repetition-actor``)::

    <data_folder>/Actor_01/ ... Actor_24/
        03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav   (48 kHz)

    modality    01 full-AV, 02 video-only, 03 audio-only   -> only 03 is used
    channel     01 speech, 02 song                         -> only 01 is used
    emotion     01 neutral 02 calm 03 happy 04 sad 05 angry 06 fearful 07 disgust 08 surprised
    intensity   01 normal, 02 strong (none for neutral)
    statement   01 "Kids are talking by the door", 02 "Dogs are sitting by the door"

Other files under ``Actor_XX/`` (song, video) are counted as
``filtered_not_audio_speech``; names not following the convention as ``unparsed_name``.

Manifests: ``ID`` = file stem (``03-01-05-02-01-01-12``), ``spk_id`` =
``Actor_<actor>`` (from the file name), ``emotion`` = the names above, ``text`` =
statement code (``01``/``02``; the text key of :func:`data_prep.common.emotion_trials`,
so each speaker enrols on one statement and is tested on the other).

Default split (our choice): Actor_19-Actor_24 (3 male, 3 female) are evaluation
speakers; ``n_valid_speakers`` (default 2, round-robin over gender, so one of each)
of the others are validation speakers (by ``seed``).
"""

import logging
import os
import re

from data_prep.common import PreparationError
from data_prep.corpus_utils import SkipLog, filter_emotions, prepare_emotional_corpus, run_preparation

logger = logging.getLogger(__name__)

CORPUS = "RAVDESS"
VERSION = "RAVDESS (Zenodo 1188976, Audio_Speech_Actors_01-24)"
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.wav$")
DEFAULT_EVAL_SPEAKERS = tuple(f"Actor_{a:02d}" for a in range(19, 25))


def speaker_name(actor):
    """``Actor_XX`` for an actor number, a two-digit code or a name.

    Example
    -------
    >>> speaker_name(3), speaker_name("12"), speaker_name("Actor_07")
    ('Actor_03', 'Actor_12', 'Actor_07')
    """
    if isinstance(actor, str) and actor.startswith("Actor_"):
        return actor
    return f"Actor_{int(actor):02d}"


def gender_of(spk):
    """``male`` for odd actor numbers, ``female`` for even ones.

    Example
    -------
    >>> gender_of("Actor_01"), gender_of("Actor_24")
    ('male', 'female')
    """
    return "male" if int(spk.split("_")[1]) % 2 else "female"


def parse_name(name):
    """The 7 fields of a RAVDESS file name as a dict, or ``None``.

    Example
    -------
    >>> f = parse_name("03-01-06-01-02-01-12.wav")
    >>> f["emotion"], f["statement"], f["actor"], f["modality"], f["channel"]
    ('fearful', '02', '12', '03', '01')
    >>> parse_name("03-01-09-01-02-01-12.wav") is None
    True
    """
    m = NAME_RE.match(name)
    if not m or m.group(3) not in EMOTIONS:
        return None
    modality, channel, emo, intensity, statement, repetition, actor = m.groups()
    return {
        "modality": modality,
        "channel": channel,
        "emotion": EMOTIONS[emo],
        "intensity": intensity,
        "statement": statement,
        "repetition": repetition,
        "actor": actor,
    }


def _collect(data_folder, skips):
    actor_dirs = sorted(
        d
        for d in os.listdir(data_folder)
        if d.startswith("Actor_") and os.path.isdir(os.path.join(data_folder, d))
    )
    if not actor_dirs:
        raise PreparationError(f"{VERSION}: no actor folder such as {os.path.join(data_folder, 'Actor_01')}")
    items = []
    for actor_dir in actor_dirs:
        folder = os.path.join(data_folder, actor_dir)
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not name.lower().endswith(".wav") or not os.path.isfile(path):
                continue
            fields = parse_name(name)
            if fields is None:
                skips.add("unparsed_name", path)
                continue
            if fields["modality"] != "03" or fields["channel"] != "01":
                skips.add("filtered_not_audio_speech", path)
                continue
            items.append(
                {
                    "ID": name[:-4],
                    "path": path,
                    "spk_id": speaker_name(fields["actor"]),
                    "emotion": fields["emotion"],
                    "text": fields["statement"],
                }
            )
    return items


def prepare_ravdess(
    data_folder,
    save_folder,
    eval_speakers=DEFAULT_EVAL_SPEAKERS,
    n_valid_speakers=2,
    emotions=None,
    seed=1234,
    nontargets_per_target=3,
    num_workers=None,
):
    """Prepare RAVDESS speech (audio-only) for emotion-robust speaker verification.

    Arguments
    ---------
    data_folder : str
        The folder holding ``Actor_01`` ... ``Actor_24``.
    save_folder : str
        Where manifests, trials and ``prepare.json`` go.
    eval_speakers : sequence
        Evaluation actors (numbers, codes or ``Actor_XX``; default Actor_19-24).
    n_valid_speakers : int
        Validation actors held out of the training actors (by ``seed``, round-robin
        over gender).
    emotions : sequence of str or None
        Emotions to keep (e.g. without ``calm``; ``None``: all eight).
    seed : int
        Seed of the validation choice and of the trials.
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
    >>> prepare_ravdess(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: RAVDESS (...): no actor folder such as .../Actor_01
    """
    eval_speakers = sorted(speaker_name(s) for s in eval_speakers)
    options = {
        "corpus": "ravdess",
        "prep_version": 1,
        "eval_speakers": eval_speakers,
        "n_valid_speakers": n_valid_speakers,
        "emotions": sorted(emotions) if emotions is not None else None,
        "seed": seed,
        "nontargets_per_target": nontargets_per_target,
    }
    data_folder = os.path.abspath(data_folder)
    save_folder = os.path.abspath(save_folder)

    def build():
        if not os.path.isdir(data_folder):
            raise PreparationError(f"{VERSION}: missing folder {data_folder}")
        skips = SkipLog()
        items = filter_emotions(_collect(data_folder, skips), emotions, skips, CORPUS)
        return prepare_emotional_corpus(
            CORPUS,
            data_folder,
            save_folder,
            items,
            skips,
            eval_speakers,
            n_valid_speakers,
            seed,
            nontargets_per_target,
            num_workers,
            stratum_of=gender_of,
        )

    return run_preparation(CORPUS, save_folder, options, build)
