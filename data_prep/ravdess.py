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

The Kaggle copy (uwrfkaggler/ravdess-emotional-speech-audio) holds the 24 actor
folders twice: at its top and again under ``audio_speech_actors_01-24/``. The top
level is read and the nested copy ignored (logged); a ``data_folder`` holding only
one folder of ``Actor_XX`` folders (the nested copy alone, or the Zenodo zip
extracted into a folder of its own) is read through that folder.

Manifests: ``ID`` = file stem (``03-01-05-02-01-01-12``), ``spk_id`` =
``Actor_<actor>`` (from the file name), ``emotion`` = the names above, ``text`` =
statement code (``01``/``02``; the text key of :func:`data_prep.common.emotion_trials`,
so each speaker enrols on one statement and is tested on the other).

Default split (our choice): Actor_19-Actor_24 (3 male, 3 female) are evaluation
speakers; ``n_valid_speakers`` (default 2, round-robin over gender, so one of each)
of the others are validation speakers (by ``seed``).

The corpus is described as data (:data:`CORPUS`, a
:class:`data_prep.emotional.EmotionalCorpus`); :func:`data_prep.emotional.prepare_emotional`
does the rest.
"""

import logging
import os

from data_prep.common import PreparationError
from data_prep.emotional import EmotionalCorpus, FileNamePattern, NamedFiles, prepare_emotional

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
NAME_PATTERN = FileNamePattern(
    regex=r"(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-(?P<statement>\d{2})"
    r"-(?P<repetition>\d{2})-(?P<actor>\d{2})\.wav",
    values={"emotion": EMOTIONS},
    speaker="Actor_{actor}",
    text="statement",
    keep={"modality": "03", "channel": "01"},  # audio-only speech: no video, no song
    filtered_kind="filtered_not_audio_speech",
)
DEFAULT_EVAL_SPEAKERS = tuple(f"Actor_{a:02d}" for a in range(19, 25))

logger = logging.getLogger(__name__)


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
    return NAME_PATTERN.parse(name)


def _actor_dirs(folder):
    return sorted(
        os.path.join(folder, d)
        for d in os.listdir(folder)
        if d.startswith("Actor_") and os.path.isdir(os.path.join(folder, d))
    )


def actor_folders(data_folder):
    """The ``Actor_XX`` folders of ``data_folder`` (or of its one subfolder that has them), sorted;
    an error naming the path when there are none.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); os.makedirs(os.path.join(d, "Actor_02")); os.makedirs(os.path.join(d, "Actor_01"))
    >>> [os.path.basename(f) for f in actor_folders(d)]
    ['Actor_01', 'Actor_02']
    >>> outer = tempfile.mkdtemp(); os.rename(d, os.path.join(outer, "audio_speech_actors_01-24"))
    >>> [os.path.relpath(f, outer) for f in actor_folders(outer)]
    ['audio_speech_actors_01-24/Actor_01', 'audio_speech_actors_01-24/Actor_02']
    """
    if not os.path.isdir(data_folder):
        raise PreparationError(f"{VERSION}: missing folder {data_folder}")
    folders = _actor_dirs(data_folder)
    # a zip made on macOS carries __MACOSX/ with AppleDouble copies of every folder: never a copy to read
    nested = sorted(
        path
        for path in (os.path.join(data_folder, d) for d in os.listdir(data_folder)
                     if not d.startswith(("Actor_", ".")) and d != "__MACOSX")
        if os.path.isdir(path) and _actor_dirs(path)
    )
    if folders:
        for path in nested:
            logger.info("RAVDESS: ignoring %s (a second copy of the actor folders, as in the Kaggle download)", path)
        return folders
    if len(nested) == 1:
        logger.info("RAVDESS: reading the actor folders of %s", nested[0])
        return _actor_dirs(nested[0])
    if nested:
        raise PreparationError(f"{VERSION}: several folders of actor folders in {data_folder}: {nested}; "
                               f"give one of them as data_folder")
    raise PreparationError(f"{VERSION}: no actor folder such as {os.path.join(data_folder, 'Actor_01')}")


CORPUS = EmotionalCorpus(name="RAVDESS", key="ravdess", walk=NamedFiles(actor_folders, NAME_PATTERN),
                         eval_speakers=DEFAULT_EVAL_SPEAKERS, n_valid_speakers=2, speaker_id=speaker_name,
                         stratum_of=gender_of)


def prepare_ravdess(data_folder, save_folder, eval_speakers=None, n_valid_speakers=CORPUS.n_valid_speakers,
                    emotions=None, seed=1234, nontargets_per_target=3, num_workers=None):
    """Prepare RAVDESS speech (audio-only; ``data_folder`` holds ``Actor_01`` ... ``Actor_24``)
    for emotion-robust speaker verification.

    The arguments and the returned summary are those of
    :func:`data_prep.emotional.prepare_emotional`; by default Actor_19-24 are
    evaluation speakers, 2 of the others validation speakers (one of each gender),
    and all eight emotions are kept. Actors may be given as numbers, codes or ``Actor_XX``.

    Example
    -------
    >>> import tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> for actor in range(1, 7):
    ...     folder = os.path.join(root, f"Actor_{actor:02d}")
    ...     os.makedirs(folder)
    ...     for emotion, statement in (("01", "01"), ("05", "02")):
    ...         name = f"03-01-{emotion}-01-{statement}-01-{actor:02d}.wav"
    ...         soundfile.write(os.path.join(folder, name), numpy.zeros(1600), 16000)
    >>> summary = prepare_ravdess(root, tempfile.mkdtemp(), eval_speakers=[5, 6])
    >>> summary["speakers"]["eval"], sorted(gender_of(s) for s in summary["speakers"]["valid"])
    (['Actor_05', 'Actor_06'], ['female', 'male'])
    """
    return prepare_emotional(CORPUS, data_folder, save_folder, eval_speakers, n_valid_speakers, emotions, seed,
                             nontargets_per_target, num_workers)
