"""ESD (Emotional Speech Dataset; Zhou, Sisman, Liu & Li, ICASSP 2021 / Speech
Communication 2022): 10 Mandarin (0001-0010) and 10 English (0011-0020) speakers,
350 parallel sentences in each of 5 emotions (Neutral, Angry, Happy, Sad, Surprise).

Layout (verified against the HLTSingapore/Emotional-Speech-Data README, the
original-archive tree in Strong-AI-Lab/emotion ``datasets/ESD/process.py`` and the
flat tree listed in felixbur/nkululeko ``data/esd/esd_test.csv``)::

    <data_folder>/                 the "Emotion Speech Dataset" folder (a folder that
                                   contains "Emotion Speech Dataset/" is accepted too)
        0001/ ... 0020/
            <spk>.txt              transcript, one "<spk>_<nnnnnn>\\t<text>\\t<emotion>" per line
            Neutral/ Angry/ Happy/ Sad/ Surprise/
                <spk>_<nnnnnn>.wav                 (flat release)
                {train,evaluation,test}/<spk>_<nnnnnn>.wav   (original archive)

Transcript encodings differ by speaker (UTF-8, UTF-16, GB2312, Latin-1 per the
Strong-AI-Lab script): a BOM selects UTF-16, else UTF-8, GB18030 and Latin-1 are
tried in that order. Lines that do not split into 3 tab-separated fields are
ignored (counted in the summary as ``transcript_lines_unparsed``).

Manifests: ``ID`` = file stem (``0011_000351``), ``spk_id`` = ``0011``,
``emotion`` = lowercased folder name (neutral, angry, happy, sad, surprise),
``text`` = the transcript normalised by :func:`data_prep.corpus_utils.text_key`
(lowercase, punctuation removed), used by :func:`data_prep.common.emotion_trials`
so enrolment and test never share a sentence.

Default split (our choice): per selected language the last two speakers are
evaluation speakers (0009, 0010, 0019, 0020); ``n_valid_speakers`` (default 2,
round-robin over languages, so one per language) of the others are validation
speakers, chosen by ``seed``; the rest train.
"""

import codecs
import logging
import os
import re

from data_prep.common import PreparationError
from data_prep.corpus_utils import (
    SkipLog,
    filter_emotions,
    prepare_emotional_corpus,
    run_preparation,
    text_key,
)

logger = logging.getLogger(__name__)

CORPUS = "ESD"
VERSION = "ESD (Emotional Speech Dataset, HLTSingapore release: 0001-0020, 5 emotion folders)"
EMOTION_FOLDERS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
LANGUAGE_SPEAKERS = {
    "zh": [f"{i:04d}" for i in range(1, 11)],
    "en": [f"{i:04d}" for i in range(11, 21)],
}
NESTED_FOLDER = "Emotion Speech Dataset"


def language_of(spk):
    """Language code of an ESD speaker.

    Example
    -------
    >>> language_of("0003"), language_of("0015")
    ('zh', 'en')
    """
    return "zh" if int(spk) <= 10 else "en"


def default_eval_speakers(languages):
    """The last two speakers of each language.

    Example
    -------
    >>> default_eval_speakers(["zh", "en"])
    ['0009', '0010', '0019', '0020']
    """
    return sorted(s for lang in languages for s in LANGUAGE_SPEAKERS[lang][-2:])


def decode_transcript(raw):
    """Decode transcript bytes whatever their encoding (see the module docstring).

    Example
    -------
    >>> decode_transcript("0011_000001\\tHi.\\tNeutral\\n".encode("utf-16"))
    '0011_000001\\tHi.\\tNeutral\\n'
    >>> decode_transcript("0001_000001\\t打开\\t中立".encode("gb2312"))
    '0001_000001\\t打开\\t中立'
    >>> decode_transcript("0012_000001\\tHi.".encode("utf-16-le"))
    '0012_000001\\tHi.'
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    head = raw[:200]
    if len(head) > 1 and b"\x00" in head:  # UTF-16 without a BOM (ASCII digits leave NUL bytes)
        return raw.decode("utf-16-le" if head[1] == 0 else "utf-16-be", errors="replace")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def parse_transcript(text):
    """``{utt_id: sentence}`` from a transcript, and the number of unparsed lines.

    Example
    -------
    >>> parse_transcript("0011_000001\\tAuthor of the danger trail.\\tNeutral\\nbroken line\\n\\n")
    ({'0011_000001': 'Author of the danger trail.'}, 1)
    """
    sentences = {}
    unparsed = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            unparsed += 1
            continue
        sentences[fields[0].strip()] = fields[1].strip()
    return sentences, unparsed


def _resolve_root(data_folder):
    nested = os.path.join(data_folder, NESTED_FOLDER)
    if (
        not os.path.isdir(os.path.join(data_folder, "0001"))
        and not os.path.isdir(os.path.join(data_folder, "0011"))
        and os.path.isdir(nested)
    ):
        return nested
    return data_folder


def _collect(root, speakers, skips):
    items = []
    unparsed_lines = 0
    for spk in speakers:
        spk_dir = os.path.join(root, spk)
        if not os.path.isdir(spk_dir):
            raise PreparationError(f"{VERSION}: missing speaker folder {spk_dir}")
        transcript = os.path.join(spk_dir, f"{spk}.txt")
        if not os.path.isfile(transcript):
            raise PreparationError(f"{VERSION}: missing transcript {transcript}")
        with open(transcript, "rb") as f:
            sentences, unparsed = parse_transcript(decode_transcript(f.read()))
        unparsed_lines += unparsed
        name_re = re.compile(rf"^{spk}_(\d{{6}})\.wav$")
        found = set()
        for folder in EMOTION_FOLDERS:
            emo_dir = os.path.join(spk_dir, folder)
            if not os.path.isdir(emo_dir):
                raise PreparationError(f"{VERSION}: missing emotion folder {emo_dir}")
            for dirpath, dirnames, filenames in os.walk(emo_dir):
                dirnames.sort()
                for name in sorted(filenames):
                    if not name.lower().endswith(".wav"):
                        continue
                    path = os.path.join(dirpath, name)
                    if not name_re.match(name):
                        skips.add("unparsed_name", path)
                        continue
                    utt = name[:-4]
                    found.add(utt)
                    sentence = sentences.get(utt)
                    if sentence is None:
                        skips.add("no_transcript", path)
                    items.append(
                        {
                            "ID": utt,
                            "path": path,
                            "spk_id": spk,
                            "emotion": folder.lower(),
                            "text": text_key(sentence) if sentence else "",
                        }
                    )
        for utt in sorted(set(sentences) - found):
            skips.add("missing", os.path.join(spk_dir, f"{utt}.wav (listed in {spk}.txt)"))
    return items, unparsed_lines


def prepare_esd(
    data_folder,
    save_folder,
    languages=("zh", "en"),
    eval_speakers=None,
    n_valid_speakers=2,
    emotions=None,
    seed=1234,
    nontargets_per_target=3,
    num_workers=None,
):
    """Prepare ESD for emotion-robust speaker verification (see the module docstring).

    Arguments
    ---------
    data_folder : str
        The ESD root (speaker folders 0001-0020).
    save_folder : str
        Where manifests, trials and ``prepare.json`` go.
    languages : sequence of str
        ``"zh"`` (speakers 0001-0010) and/or ``"en"`` (0011-0020).
    eval_speakers : sequence of str or None
        Evaluation speakers (``None``: :func:`default_eval_speakers`).
    n_valid_speakers : int
        Validation speakers held out of the training speakers (by ``seed``,
        round-robin over languages).
    emotions : sequence of str or None
        Emotions to keep (lowercase names; ``None``: all five).
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
    >>> prepare_esd(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: ESD (...): missing speaker folder .../0001
    """
    languages = list(languages)
    bad = sorted(set(languages) - set(LANGUAGE_SPEAKERS))
    if bad or not languages:
        raise ValueError(
            f"languages must be a non-empty subset of {sorted(LANGUAGE_SPEAKERS)}, got {languages}"
        )
    speakers = sorted(s for lang in languages for s in LANGUAGE_SPEAKERS[lang])
    eval_speakers = sorted(eval_speakers) if eval_speakers is not None else default_eval_speakers(languages)
    outside = sorted(set(eval_speakers) - set(speakers))
    if outside:
        raise ValueError(f"eval_speakers {outside} are not speakers of the languages {languages}")
    options = {
        "corpus": "esd",
        "prep_version": 1,
        "languages": languages,
        "eval_speakers": eval_speakers,
        "n_valid_speakers": n_valid_speakers,
        "emotions": sorted(emotions) if emotions is not None else None,
        "seed": seed,
        "nontargets_per_target": nontargets_per_target,
    }
    data_folder = os.path.abspath(data_folder)
    save_folder = os.path.abspath(save_folder)

    def build():
        root = _resolve_root(data_folder)
        skips = SkipLog()
        items, unparsed_lines = _collect(root, speakers, skips)
        items = filter_emotions(items, emotions, skips, CORPUS)
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
            stratum_of=language_of,
            extra_summary={"transcript_lines_unparsed": unparsed_lines},
        )

    return run_preparation(CORPUS, save_folder, options, build)
