"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset; Cao et al., IEEE TAC 2014):
91 actors (1001-1091) speaking 12 sentences in 6 emotions.

Layout (verified against the CheyneyComputerScience/CREMA-D repository: file list
``AudioWAV/``/``AudioMP3/``, its README, and the sentence/emotion/level code table
reproduced in public CREMA-D loaders)::

    <data_folder>/AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav     (16 kHz mono)

    actor     1001 ... 1091
    sentence  IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI
    EMO       ANG DIS FEA HAP NEU SAD  -> angry disgust fear happy neutral sad
    level     LO MD HI XX (unspecified)

Known corpus issues handled (CheyneyComputerScience/CREMA-D issues #3, #6, #8):
a clone without git-lfs has pointer files instead of audio (counted as
``lfs_pointer`` skips; an error when nothing is readable); older clones name one
file ``1040_ITH_SAD_X.wav`` (level ``X`` is accepted); ``1076_MTI_NEU_XX.wav``
cannot be decoded by some tools (counted ``unreadable`` if libsndfile refuses it).

Manifests: ``ID`` = file stem (``1001_DFA_ANG_XX``), ``spk_id`` = actor,
``emotion`` as above, ``text`` = sentence code (the text key of
:func:`data_prep.common.emotion_trials`).

Default split (our choice): actors 1082-1091 are evaluation speakers;
``n_valid_speakers`` (default 5) of the others are validation speakers (by ``seed``).
"""

import logging
import os
import re

from data_prep.common import PreparationError
from data_prep.corpus_utils import SkipLog, filter_emotions, prepare_emotional_corpus, run_preparation

logger = logging.getLogger(__name__)

CORPUS = "CREMA-D"
VERSION = "CREMA-D (CheyneyComputerScience/CREMA-D, AudioWAV fetched with git-lfs)"
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX", "X")
DEFAULT_EVAL_SPEAKERS = tuple(str(a) for a in range(1082, 1092))
NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})\.wav$")


def parse_name(name):
    """``(actor, sentence, emotion, level)`` of a CREMA-D file name, or ``None``.

    Example
    -------
    >>> parse_name("1001_DFA_ANG_XX.wav")
    ('1001', 'DFA', 'angry', 'XX')
    >>> parse_name("1040_ITH_SAD_X.wav")
    ('1040', 'ITH', 'sad', 'XX')
    >>> parse_name("1001_DFA_ANG_XX.mp3") is None, parse_name("1001_ABC_ANG_XX.wav") is None
    (True, True)
    """
    m = NAME_RE.match(name)
    if not m:
        return None
    actor, sentence, emo, level = m.groups()
    if sentence not in SENTENCES or emo not in EMOTIONS or level not in LEVELS:
        return None
    return actor, sentence, EMOTIONS[emo], "XX" if level == "X" else level


def _collect(audio_dir, skips):
    items = []
    for name in sorted(os.listdir(audio_dir)):
        path = os.path.join(audio_dir, name)
        if not name.lower().endswith(".wav") or not os.path.isfile(path):
            continue
        parsed = parse_name(name)
        if parsed is None:
            skips.add("unparsed_name", path)
            continue
        actor, sentence, emotion, _level = parsed
        items.append({"ID": name[:-4], "path": path, "spk_id": actor, "emotion": emotion, "text": sentence})
    return items


def prepare_cremad(
    data_folder,
    save_folder,
    eval_speakers=DEFAULT_EVAL_SPEAKERS,
    n_valid_speakers=5,
    emotions=None,
    seed=1234,
    nontargets_per_target=3,
    num_workers=None,
):
    """Prepare CREMA-D for emotion-robust speaker verification (see the module docstring).

    Arguments
    ---------
    data_folder : str
        The CREMA-D root (contains ``AudioWAV/``).
    save_folder : str
        Where manifests, trials and ``prepare.json`` go.
    eval_speakers : sequence of str
        Evaluation actors (default 1082-1091).
    n_valid_speakers : int
        Validation actors held out of the training actors (by ``seed``).
    emotions : sequence of str or None
        Emotions to keep (``angry disgust fear happy neutral sad``; ``None``: all).
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
    >>> prepare_cremad(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: CREMA-D (...): missing folder .../AudioWAV
    """
    eval_speakers = sorted(str(s) for s in eval_speakers)
    options = {
        "corpus": "cremad",
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
        audio_dir = os.path.join(data_folder, "AudioWAV")
        if not os.path.isdir(audio_dir):
            raise PreparationError(f"{VERSION}: missing folder {audio_dir}")
        skips = SkipLog()
        items = filter_emotions(_collect(audio_dir, skips), emotions, skips, CORPUS)
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
        )

    return run_preparation(CORPUS, save_folder, options, build)
