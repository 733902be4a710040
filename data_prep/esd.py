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

The corpus is described as data (:data:`CORPUS`, a
:class:`data_prep.emotional.EmotionalCorpus` whose walk reads the transcripts and
the emotion folders); :func:`data_prep.emotional.prepare_emotional` does the rest.
"""

import codecs
import os
import re

from data_prep.common import PreparationError
from data_prep.corpus_utils import check_subset, text_key
from data_prep.emotional import EmotionalCorpus, Walk, prepare_emotional

VERSION = "ESD (Emotional Speech Dataset, HLTSingapore release: 0001-0020, 5 emotion folders)"
EMOTION_FOLDERS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
LANGUAGE_SPEAKERS = {
    "zh": [f"{i:04d}" for i in range(1, 11)],
    "en": [f"{i:04d}" for i in range(11, 21)],
}


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


def speakers_of(languages):
    """The speakers of ``languages``, sorted.

    Example
    -------
    >>> speakers_of(["en"])[:2]
    ['0011', '0012']
    """
    return sorted(s for lang in languages for s in LANGUAGE_SPEAKERS[lang])


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


NESTED_FOLDER = "Emotion Speech Dataset"  # a data_folder holding this folder is accepted too


def _resolve_root(data_folder):
    nested = os.path.join(data_folder, NESTED_FOLDER)
    if (
        not os.path.isdir(os.path.join(data_folder, "0001"))
        and not os.path.isdir(os.path.join(data_folder, "0011"))
        and os.path.isdir(nested)
    ):
        return nested
    return data_folder


def _read_transcript(spk_dir, spk):
    """``({utt_id: sentence}, unparsed line count)`` of ``<spk_dir>/<spk>.txt``."""
    transcript = os.path.join(spk_dir, f"{spk}.txt")
    if not os.path.isfile(transcript):
        raise PreparationError(f"{VERSION}: missing transcript {transcript}")
    with open(transcript, "rb") as f:
        return parse_transcript(decode_transcript(f.read()))


def _speaker_items(spk_dir, spk, sentences, skips):
    """Items of the ``<spk>_<nnnnnn>.wav`` files under the emotion folders of one speaker."""
    name_re = re.compile(rf"^{spk}_(\d{{6}})\.wav$")
    items = []
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
                sentence = sentences.get(name[:-4])
                if sentence is None:
                    skips.add("no_transcript", path)
                items.append(
                    {
                        "ID": name[:-4],
                        "path": path,
                        "spk_id": spk,
                        "emotion": folder.lower(),
                        "text": text_key(sentence) if sentence else "",
                    }
                )
    return items


def walk_esd(data_folder, options, skips):
    """Items of the speakers of ``options["languages"]`` (see the module docstring for the layout).

    Example
    -------
    >>> import tempfile
    >>> walk_esd(tempfile.mkdtemp(), {"languages": ["en"]}, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: ESD (...): missing speaker folder .../0011
    """
    root = _resolve_root(data_folder)
    items = []
    unparsed_lines = 0
    for spk in speakers_of(options["languages"]):
        spk_dir = os.path.join(root, spk)
        if not os.path.isdir(spk_dir):
            raise PreparationError(f"{VERSION}: missing speaker folder {spk_dir}")
        sentences, unparsed = _read_transcript(spk_dir, spk)
        unparsed_lines += unparsed
        spk_items = _speaker_items(spk_dir, spk, sentences, skips)
        for utt in sorted(set(sentences) - {it["ID"] for it in spk_items}):
            skips.add("missing", os.path.join(spk_dir, f"{utt}.wav (listed in {spk}.txt)"))
        items += spk_items
    return Walk(items, {"transcript_lines_unparsed": unparsed_lines})


CORPUS = EmotionalCorpus(name="ESD", key="esd", walk=walk_esd, n_valid_speakers=2, stratum_of=language_of,
                         eval_speakers=lambda options: default_eval_speakers(options["languages"]))


def prepare_esd(data_folder, save_folder, languages=("zh", "en"), eval_speakers=None,
                n_valid_speakers=CORPUS.n_valid_speakers, emotions=None, seed=1234, nontargets_per_target=3,
                num_workers=None):
    """Prepare ESD (speaker folders 0001-0020 in ``data_folder``) for emotion-robust speaker verification.

    The other arguments and the returned summary are those of
    :func:`data_prep.emotional.prepare_emotional`; by default the last two speakers
    of each language are evaluation speakers (:func:`default_eval_speakers`), 2 of
    the others validation speakers (one per language), and all five emotions are kept.

    Arguments
    ---------
    languages : sequence of str
        ``"zh"`` (speakers 0001-0010) and/or ``"en"`` (0011-0020).

    Example
    -------
    >>> prepare_esd("/corpus/ESD", "/tmp/esd", languages=["fr"])
    Traceback (most recent call last):
    ...
    ValueError: languages must be a non-empty subset of ['en', 'zh'], got ['fr']
    """
    languages = check_subset("languages", languages, sorted(LANGUAGE_SPEAKERS))
    outside = sorted(set(eval_speakers or ()) - set(speakers_of(languages)))
    if outside:
        raise ValueError(f"eval_speakers {outside} are not speakers of the languages {languages}")
    return prepare_emotional(CORPUS, data_folder, save_folder, eval_speakers, n_valid_speakers, emotions, seed,
                             nontargets_per_target, num_workers, layout={"languages": languages})
