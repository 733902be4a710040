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
Strong-AI-Lab script): a BOM selects UTF-16, else UTF-8 is tried, then GB18030 for
the Mandarin speakers and Windows-1252 for the English ones, then Latin-1 (the one
used is in the summary, ``transcript_encodings``). GB18030 is never tried on an
English transcript: it decodes most Latin-1 text without error, turning ``naïve``
into ``na飗e``. A
transcript in which no line reads as ``<spk>_<nnnnnn> <text> <emotion>`` after decoding
(an encoding ESD does not use: UTF-32, EBCDIC...) is an error naming the file.

Known quirk of the published transcripts: 15 lines do not split into three
tab-separated fields (``0012_001355``, ``0013_000431``, ``0015_000137`` ...; the
Strong-AI-Lab script patches them by ID), typically a space instead of a tab after
the utterance ID. Those are repaired here by their shape, not by a list of IDs: a
line ``<spk>_<nnnnnn><spaces><text>\t<emotion>`` is read as the three fields
(counted as ``transcript_lines_repaired``, the first named in the log). Lines that
still do not parse are ignored (``transcript_lines_unparsed``).

ESD is parallel: utterance ``n`` of every emotion block is the same sentence
(``(n - 1) % 350``, :func:`parallel_index`). Every utterance's sentence key is the
text of its parallel group (the most common text key of the group's transcribed
utterances), so an utterance whose own line is missing or unreadable still gets
the sentence of its parallel utterances (``sentence_from_parallel``) and is never
paired with them as a "different sentence"; a group whose transcripts disagree is
counted (``parallel_text_mismatch``). An utterance whose whole group has no
transcript is a counted skip (``no_transcript``) and is not in any manifest.

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
import logging
import os
import re
from collections import Counter, defaultdict

from data_prep.common import PreparationError
from data_prep.corpus_utils import MAX_EXAMPLES, check_subset, is_hidden_file, text_key
from data_prep.emotional import EmotionalCorpus, Walk, prepare_emotional

logger = logging.getLogger(__name__)

VERSION = "ESD (Emotional Speech Dataset, HLTSingapore release: 0001-0020, 5 emotion folders)"
EMOTION_FOLDERS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
SENTENCES_PER_EMOTION = 350
TRANSCRIPT_LINE = re.compile(r"(?P<id>\d{4}_\d{6})(?:\t|[ \t]+(?=\S))(?P<text>.*?)\t+(?P<emotion>[^\t]+)")
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


def decode_transcript(raw, language=None):
    """Decode transcript bytes whatever their encoding (see the module docstring): ``(text, encoding)``.

    Arguments
    ---------
    raw : bytes
        The transcript file's content.
    language : str or None
        ``"zh"`` or ``"en"`` (:func:`language_of` the speaker): the 8-bit encoding tried
        after UTF-8 (GB18030, Windows-1252); ``None`` tries GB18030 (Mandarin first).

    Example
    -------
    >>> decode_transcript("0011_000001\\tHi.\\tNeutral\\n".encode("utf-16"))
    ('0011_000001\\tHi.\\tNeutral\\n', 'utf-16')
    >>> decode_transcript("0001_000001\\t打开\\t中立".encode("gb2312"), "zh")
    ('0001_000001\\t打开\\t中立', 'gb18030')
    >>> decode_transcript("0012_000001\\tHi.".encode("utf-16-le"))
    ('0012_000001\\tHi.', 'utf-16-le')
    >>> decode_transcript("0016_000001\\tA naïve idea.".encode("latin-1"), "en")
    ('0016_000001\\tA naïve idea.', 'cp1252')
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16"), "utf-16"
    head = raw[:200]
    if len(head) > 1 and b"\x00" in head and b"\x00\x00" not in head:
        # UTF-16 without a BOM (ASCII digits leave one NUL byte each; UTF-32 leaves three)
        encoding = "utf-16-le" if head[1] == 0 else "utf-16-be"
        return raw.decode(encoding, errors="replace"), encoding
    # An English transcript is never tried as GB18030: most Latin-1 byte pairs are valid GB18030.
    eight_bit = ("cp1252",) if language == "en" else ("gb18030",)
    for encoding in ("utf-8-sig", *eight_bit):
        try:
            return raw.decode(encoding), encoding.replace("-sig", "")
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def parse_transcript(text):
    """``{utt_id: sentence}`` of a transcript, the numbers of the lines repaired
    (a space instead of the tab after the ID) and of the lines that do not parse.

    Example
    -------
    >>> parse_transcript("0011_000001\\tAuthor of the danger trail.\\tNeutral\\nbroken line\\n\\n"
    ...                  "0015_000137 Let it be.\\tNeutral\\n")
    ({'0011_000001': 'Author of the danger trail.', '0015_000137': 'Let it be.'}, [4], [2])
    """
    sentences = {}
    repaired, unparsed = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = TRANSCRIPT_LINE.fullmatch(line)
        if match is None or not match["text"].strip():
            unparsed.append(number)
            continue
        if line[len(match["id"])] != "\t":
            repaired.append(number)
        sentences[match["id"]] = match["text"].strip()
    return sentences, repaired, unparsed


def parallel_index(utt_id):
    """The sentence number (1-350) of an ESD utterance: the same in every emotion block.

    Example
    -------
    >>> parallel_index("0015_000002"), parallel_index("0015_000352"), parallel_index("0015_001750")
    (2, 2, 350)
    """
    return (int(utt_id.split("_")[1]) - 1) % SENTENCES_PER_EMOTION + 1


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
    """``({utt_id: sentence}, encoding, repaired, unparsed)`` of ``<spk_dir>/<spk>.txt`` (line numbers)."""
    transcript = os.path.join(spk_dir, f"{spk}.txt")
    if not os.path.isfile(transcript):
        raise PreparationError(f"{VERSION}: missing transcript {transcript}")
    with open(transcript, "rb") as f:
        raw = f.read()
    language = language_of(spk)
    text, encoding = decode_transcript(raw, language)
    sentences, repaired, unparsed = parse_transcript(text)
    if not sentences and raw.strip():
        tried = "GB18030" if language == "zh" else "Windows-1252"
        raise PreparationError(
            f"{transcript}: no line reads as '<spk>_<nnnnnn>\\t<text>\\t<emotion>' after decoding as {encoding} "
            f"(tried UTF-16 by its BOM, UTF-8, {tried}, Latin-1; ESD's transcripts use those): "
            f"save it in UTF-8 and run again"
        )
    for kind, numbers in (("repaired (space instead of a tab after the ID)", repaired), ("ignored", unparsed)):
        if numbers:
            logger.warning("ESD: %d line(s) of %s %s; first: %s", len(numbers), transcript, kind,
                           ", ".join(f"line {n}" for n in numbers[:MAX_EXAMPLES]))
    return sentences, encoding, repaired, unparsed


def _speaker_files(spk_dir, spk, skips):
    """``[(utt_id, emotion, path)]`` of the ``<spk>_<nnnnnn>.wav`` files under the emotion folders of one speaker."""
    name_re = re.compile(rf"^{spk}_(\d{{6}})\.wav$", re.IGNORECASE)
    files = []
    for folder in EMOTION_FOLDERS:
        emo_dir = os.path.join(spk_dir, folder)
        if not os.path.isdir(emo_dir):
            raise PreparationError(f"{VERSION}: missing emotion folder {emo_dir}")
        for dirpath, dirnames, filenames in os.walk(emo_dir, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.lower().endswith(".wav") or is_hidden_file(name):
                    continue
                path = os.path.join(dirpath, name)
                if not name_re.match(name):
                    skips.add("unparsed_name", path)
                    continue
                files.append((name[:-4], folder.lower(), path))
    return files


def _parallel_sentences(files, sentences, counts):
    """``{parallel index: sentence key}`` of one speaker: the most common key of each group's transcribed utterances."""
    keys = defaultdict(Counter)
    for utt, _emotion, _path in files:
        if sentences.get(utt):
            keys[parallel_index(utt)][text_key(sentences[utt])] += 1
    counts["parallel_text_mismatch"] += sum(len(c) > 1 for c in keys.values())
    return {index: c.most_common(1)[0][0] for index, c in keys.items()}


def _speaker_items(spk_dir, spk, sentences, skips, counts):
    """Items of one speaker, each with the sentence of its parallel group (see the module docstring),
    and the IDs of every audio file found.
    """
    files = _speaker_files(spk_dir, spk, skips)
    group_text = _parallel_sentences(files, sentences, counts)
    items = []
    for utt, emotion, path in files:
        text = group_text.get(parallel_index(utt))
        if text is None:
            skips.add("no_transcript", path)
            continue
        counts["sentence_from_parallel"] += not sentences.get(utt)
        items.append({"ID": utt, "path": path, "spk_id": spk, "emotion": emotion, "text": text})
    return items, {utt for utt, _, _ in files}


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
    counts = Counter(transcript_lines_repaired=0, transcript_lines_unparsed=0, sentence_from_parallel=0,
                     parallel_text_mismatch=0)
    encodings = {}
    for spk in speakers_of(options["languages"]):
        spk_dir = os.path.join(root, spk)
        if not os.path.isdir(spk_dir):
            raise PreparationError(f"{VERSION}: missing speaker folder {spk_dir}")
        sentences, encodings[spk], repaired, unparsed = _read_transcript(spk_dir, spk)
        counts["transcript_lines_repaired"] += len(repaired)
        counts["transcript_lines_unparsed"] += len(unparsed)
        spk_items, found = _speaker_items(spk_dir, spk, sentences, skips, counts)
        for utt in sorted(set(sentences) - found):
            skips.add("missing", os.path.join(spk_dir, f"{utt}.wav (listed in {spk}.txt)"))
        items += spk_items
    return Walk(items, {**counts, "transcript_encodings": encodings})


CORPUS = EmotionalCorpus(name="ESD", key="esd", walk=walk_esd, n_valid_speakers=2, stratum_of=language_of,
                         prep_version=2,
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
