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
file ``1040_ITH_SAD_X.wav`` (level ``X`` is accepted); ``1076_MTI_SAD_XX.wav``
has no audio (the corpus's documentation says so; the file is a near-silent
clip that reads without error): it is never used and is counted as a
``known_unusable`` skip naming it (:data:`KNOWN_UNUSABLE`). macOS ``._*`` files
are ignored; a ``.WAV`` extension is accepted.

Manifests: ``ID`` = file stem (``1001_DFA_ANG_XX``), ``spk_id`` = actor,
``emotion`` as above, ``text`` = sentence code (the text key of
:func:`data_prep.common.emotion_trials`).

Default split (our choice): actors 1082-1091 are evaluation speakers;
``n_valid_speakers`` (default 5) of the others are validation speakers (by ``seed``).

The corpus is described as data (:data:`CORPUS`, a
:class:`data_prep.emotional.EmotionalCorpus`); :func:`data_prep.emotional.prepare_emotional`
does the rest.
"""

import os

from data_prep.common import PreparationError
from data_prep.emotional import EmotionalCorpus, FileNamePattern, NamedFiles, prepare_emotional

VERSION = "CREMA-D (CheyneyComputerScience/CREMA-D, AudioWAV fetched with git-lfs)"
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = {"LO": "LO", "MD": "MD", "HI": "HI", "XX": "XX", "X": "XX"}  # "X": one file of older clones
DEFAULT_EVAL_SPEAKERS = tuple(str(a) for a in range(1082, 1092))
KNOWN_UNUSABLE = {"1076_MTI_SAD_XX": "no audio, per the CREMA-D documentation"}
NAME_PATTERN = FileNamePattern(
    regex=r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{1,2})\.wav",
    values={"sentence": {s: s for s in SENTENCES}, "emotion": EMOTIONS, "level": LEVELS},
    speaker="{actor}",
    text="sentence",
)


def audio_folders(data_folder):
    """The folder of the audio files: ``<data_folder>/AudioWAV`` (an error naming it when absent).

    Example
    -------
    >>> audio_folders("/nowhere")
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: CREMA-D (...): missing folder /nowhere/AudioWAV
    """
    audio_dir = os.path.join(data_folder, "AudioWAV")
    if not os.path.isdir(audio_dir):
        raise PreparationError(f"{VERSION}: missing folder {audio_dir}")
    return [audio_dir]


CORPUS = EmotionalCorpus(name="CREMA-D", key="cremad", walk=NamedFiles(audio_folders, NAME_PATTERN),
                         eval_speakers=DEFAULT_EVAL_SPEAKERS, n_valid_speakers=5, speaker_id=str,
                         known_unusable=KNOWN_UNUSABLE, prep_version=2)


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
    fields = NAME_PATTERN.parse(name)
    return None if fields is None else tuple(fields.values())


def prepare_cremad(data_folder, save_folder, eval_speakers=None, n_valid_speakers=CORPUS.n_valid_speakers,
                   emotions=None, seed=1234, nontargets_per_target=3, num_workers=None):
    """Prepare CREMA-D (``data_folder`` holds ``AudioWAV/``) for emotion-robust speaker verification.

    The arguments and the returned summary are those of
    :func:`data_prep.emotional.prepare_emotional`; by default actors 1082-1091 are
    evaluation speakers, 5 of the others validation speakers, and all six emotions
    (``angry disgust fear happy neutral sad``) are kept. Actors may be given as numbers.

    Example
    -------
    >>> import tempfile
    >>> prepare_cremad(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: CREMA-D (...): missing folder .../AudioWAV
    """
    return prepare_emotional(CORPUS, data_folder, save_folder, eval_speakers, n_valid_speakers, emotions, seed,
                             nontargets_per_target, num_workers)
