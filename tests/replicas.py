"""Miniature replicas of the corpus layouts read by ``data_prep.<corpus>``.

Each ``make_<corpus>(root)`` writes, under ``root``, a few tiny audio files (0.2 s
of seeded noise, 16-bit, in the corpus's format and sample rate) with the real
folder structure, file-name conventions and list formats (see the docstring of
each ``data_prep`` module for where the layouts were verified), and returns a dict
describing what it wrote (``data_folder`` plus corpus-specific keys). The
builders are deterministic and take a few tens of milliseconds, so end-to-end
recipe tests can reuse them::

    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
    import replicas  # noqa: E402
    info = replicas.make_voxceleb(tmp_path / "vox")

A test module of one preparation takes its replica as a fixture
(``corpus = replicas.replica_fixture(replicas.make_cremad)``) and checks outputs with
:func:`read_text`, :func:`emotion_manifest` and :func:`prepare_twice`.

Audio is noise, so nothing speaker-like can be learnt from it; the replicas
exercise preparation, manifests, trial lists and data loading only.
"""

import json
import os
import shutil
import zlib

import numpy as np
import soundfile as sf

SECONDS = 0.2


def write_audio(path, seconds=SECONDS, samplerate=16000):
    """Write ``seconds`` of seeded noise to ``path`` (FLAC for ``.flac``, else WAV), 16-bit.

    The noise depends only on the file name, so replicas are byte-identical across runs.

    Example
    -------
    >>> import tempfile, soundfile
    >>> p = write_audio(os.path.join(tempfile.mkdtemp(), "a", "x.flac"))
    >>> soundfile.info(p).frames, soundfile.info(p).format
    (3200, 'FLAC')
    """
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(os.path.basename(path).encode()))
    data = (rng.standard_normal(int(round(seconds * samplerate))) * 0.1).astype("float32")
    fmt = "FLAC" if path.endswith(".flac") else "WAV"
    sf.write(path, data, samplerate, format=fmt, subtype="PCM_16")
    return path


def write_text(path, text, encoding="utf-8"):
    """Write ``text`` to ``path`` (creating folders) and return the path.

    Example
    -------
    >>> import tempfile
    >>> p = write_text(os.path.join(tempfile.mkdtemp(), "l", "a.lst"), "id00000\\n")
    >>> open(p).read()
    'id00000\\n'
    """
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------- CN-Celeb

CNCELEB_TRAIN = {
    # CN-Celeb1 dev speakers (dev.lst also lists id00003, whose folder is absent)
    "id00000": ["singing-01-001", "singing-01-002", "singing-01-003", "speech-01-001", "speech-01-002"],
    "id00001": ["interview-01-001", "interview-01-002", "vlog-01-001"],
    "id00002": ["drama-01-001", "drama-01-002"],
}
CNCELEB2_TRAIN = {
    "id10001": [
        "live_broadcast-01-001",
        "recitation-01-001",
        "recitation-01-002",
        "recitation-01-003",
        "recitation-01-004",
    ],
    "id10002": ["play-01-001", "play-01-002"],
}
CNCELEB_ENROL = {
    "id00800-enroll": ["id00800/singing-01-001", "id00800/speech-01-001"],
    "id00801-enroll": ["id00801/vlog-01-001"],
}
CNCELEB_TEST = [
    "id00800-singing-01-002",
    "id00800-speech-02-001",
    "id00801-vlog-01-002",
    "id00801-movie-01-001",
]


def make_cnceleb(root, extra_speakers=0, extra_genres=("speech", "vlog"), extra_utterances_per_genre=2):
    """CN-Celeb1 (``CN-Celeb_flac``) + CN-Celeb2 (``CN-Celeb2_flac``), 16 kHz FLAC.

    CN-Celeb1 dev: id00000-id00002 (``dev.lst`` also names id00003, which has no
    folder); eval speakers id00800 (two enrolment utterances) and id00801 (one),
    4 test files; every model meets every test file in ``trials.lst`` (8 trials).
    Lists name ``.wav`` files as the real release does. CN-Celeb2: id10001, id10002.

    ``extra_speakers`` adds CN-Celeb1 dev speakers id00004, id00005, ... (listed in
    ``dev.lst``), each with ``extra_utterances_per_genre`` files in every genre of
    ``extra_genres`` (for recipe runs that need more speakers for P x K batches).

    Returns
    -------
    dict
        ``data_folder``, ``train`` ({spk: [utt]} of both corpora), ``enrol``
        ({model: [spk/utt]}), ``test`` ([stem]), ``trials`` ([(label, model, stem)]).

    Example
    -------
    >>> import tempfile
    >>> info = make_cnceleb(tempfile.mkdtemp())
    >>> sorted(os.listdir(os.path.join(info["data_folder"], "CN-Celeb_flac", "eval", "lists")))
    ['enroll.lst', 'enroll.map', 'test.lst', 'trials.lst']
    """
    root = str(root)
    cn1 = os.path.join(root, "CN-Celeb_flac")
    cn2 = os.path.join(root, "CN-Celeb2_flac")
    extra = {
        f"id{4 + i:05d}": [f"{g}-01-{k + 1:03d}" for g in extra_genres for k in range(extra_utterances_per_genre)]
        for i in range(extra_speakers)
    }
    for spk, utts in {**CNCELEB_TRAIN, **extra}.items():
        for utt in utts:
            write_audio(os.path.join(cn1, "data", spk, f"{utt}.flac"))
    for utts in CNCELEB_ENROL.values():
        for utt in utts:
            write_audio(os.path.join(cn1, "data", f"{utt}.flac"))
    for stem in CNCELEB_TEST:
        spk, utt = stem.split("-", 1)
        write_audio(os.path.join(cn1, "data", spk, f"{utt}.flac"))
        write_audio(os.path.join(cn1, "eval", "test", f"{stem}.flac"))
    for model in CNCELEB_ENROL:
        write_audio(os.path.join(cn1, "eval", "enroll", f"{model}.flac"), seconds=2 * SECONDS)
    write_text(
        os.path.join(cn1, "dev", "dev.lst"), "".join(f"{s}\n" for s in [*CNCELEB_TRAIN, "id00003", *extra])
    )
    lists = os.path.join(cn1, "eval", "lists")
    write_text(os.path.join(lists, "enroll.lst"), "".join(f"{m} enroll/{m}.wav\n" for m in CNCELEB_ENROL))
    write_text(
        os.path.join(lists, "enroll.map"),
        "".join(f"{m} " + " ".join(f"{u}.wav" for u in utts) + "\n" for m, utts in CNCELEB_ENROL.items()),
    )
    write_text(os.path.join(lists, "test.lst"), "".join(f"test/{s}.wav\n" for s in CNCELEB_TEST))
    trials = [(int(m.split("-")[0] == s.split("-")[0]), m, s) for m in CNCELEB_ENROL for s in CNCELEB_TEST]
    write_text(
        os.path.join(lists, "trials.lst"), "".join(f"{m} test/{s}.wav {lab}\n" for lab, m, s in trials)
    )
    for spk, utts in CNCELEB2_TRAIN.items():
        for utt in utts:
            write_audio(os.path.join(cn2, "data", spk, f"{utt}.flac"))
    write_text(os.path.join(cn2, "spk.lst"), "".join(f"{s}\n" for s in CNCELEB2_TRAIN))
    return {
        "data_folder": root,
        "train": {**CNCELEB_TRAIN, **extra, **CNCELEB2_TRAIN},
        "enrol": dict(CNCELEB_ENROL),
        "test": list(CNCELEB_TEST),
        "trials": trials,
    }


# --------------------------------------------------------------------------- VoxCeleb

VOX1_FILES = [
    "id10001/vid1AAAAAAA/00001",
    "id10001/vid1AAAAAAA/00002",
    "id10001/vid2BBBBBBB/00001",
    "id10002/vid3CCCCCCC/00001",
    "id10002/vid3CCCCCCC/00002",
    "id10003/vid4DDDDDDD/00001",
    "id10003/vid5EEEEEEE/00001",
    "id10270/x6uYqmx31kE/00001",
    "id10270/8jEAjG6SegY/00008",
    "id10271/1gtz-CUIygI/00001",
    "id10271/1gtz-CUIygI/00002",
]
VOX2_FILES = [
    "id00012/21Uxsk56VDQ/00001",
    "id00012/21Uxsk56VDQ/00002",
    "id00015/0fijmz4vTVU/00001",
    "id00018/5BVBfpfzjIk/00001",
    "id00018/5BVBfpfzjIk/00002",
]
VOX_TRIALS = {
    "veri_test2.txt": [
        (1, "id10270/x6uYqmx31kE/00001", "id10270/8jEAjG6SegY/00008"),
        (0, "id10270/x6uYqmx31kE/00001", "id10271/1gtz-CUIygI/00001"),
        (1, "id10271/1gtz-CUIygI/00001", "id10271/1gtz-CUIygI/00002"),
        (0, "id10271/1gtz-CUIygI/00002", "id10270/8jEAjG6SegY/00008"),
    ],
    "list_test_all2.txt": [
        (1, "id10001/vid1AAAAAAA/00001", "id10001/vid2BBBBBBB/00001"),
        (0, "id10001/vid1AAAAAAA/00001", "id10002/vid3CCCCCCC/00001"),
    ],
    "list_test_hard2.txt": [
        (1, "id10002/vid3CCCCCCC/00001", "id10002/vid3CCCCCCC/00002"),
        (0, "id10002/vid3CCCCCCC/00001", "id10001/vid1AAAAAAA/00002"),
    ],
}


def write_m4a(path, seconds=SECONDS, samplerate=16000, audio=True, faststart=False):
    """Write ``seconds`` of seeded noise to ``path`` as AAC in an MP4 box (VoxCeleb2's ``.m4a``), with PyAV.

    ``audio=False`` writes an MP4 holding one video stream and no audio stream;
    ``faststart=True`` puts the index (``moov``) before the audio, so a truncated copy
    still opens and declares the whole duration.
    Returns the number of samples written (the decoded file may hold a few more:
    AAC pads its last frame).

    Example
    -------
    >>> import tempfile, av
    >>> p = os.path.join(tempfile.mkdtemp(), "id00012", "vid", "00001.m4a")
    >>> write_m4a(p)
    3200
    >>> with av.open(p) as f:
    ...     f.streams.audio[0].codec_context.name, f.streams.audio[0].rate
    ('aac', 16000)
    """
    import av

    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(round(seconds * samplerate))
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, "w", format="mp4", options=options) as out:
        if not audio:
            stream = out.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), "uint8"), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode()]:
                out.mux(packet)
            return 0
        stream = out.add_stream("aac", rate=samplerate, layout="mono")
        rng = np.random.default_rng(zlib.crc32(os.path.basename(path).encode()))
        data = (rng.standard_normal(n) * 0.1).astype("float32")[None, :]
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
        frame.sample_rate = samplerate
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return n


def make_voxceleb(root, vox2="wav", extra_vox2_speakers=0, extra_utterances=4, vox2_folder="vox2_dev"):
    """VoxCeleb1 ``wav/<spk>/<video>/<n>.wav`` + the three cleaned trial lists (+ VoxCeleb2 dev).

    VoxCeleb1: dev speakers id10001-id10003, Vox1-O test speakers id10270 and
    id10271. ``list_test_all2.txt``/``list_test_hard2.txt`` name id10001 and id10002
    (dev speakers, as the real Vox1-E/H do); id10003 appears in no list.
    VoxCeleb2 (id00012, id00015, id00018) goes to ``<vox2_folder>/<spk>/<video>/<n>``:
    ``vox2="wav"`` as converted wav, ``vox2="m4a"`` as unconverted ``.m4a`` (not
    valid audio), ``vox2="aac"`` as real AAC-in-MP4 ``.m4a`` (:func:`write_m4a`),
    ``vox2="merged"`` as wav merged into VoxCeleb1's ``wav/`` (SpeechBrain's
    documented layout), ``None`` no VoxCeleb2. ``vox2_folder`` reproduces how the
    archive unzips (``vox2_dev/dev/aac``, ``vox2_dev/aac``, ``dev/aac``). With
    ``vox2="wav"``, ``extra_vox2_speakers`` adds VoxCeleb2 speakers id08000,
    id08001, ... with ``extra_utterances`` files over two videos each (for recipe
    runs that need more training speakers).

    Returns
    -------
    dict
        ``data_folder``, ``vox1`` and ``vox2`` (utterance IDs), ``trials``
        ({list file: [(label, enrol_id, test_id)]}), ``vox2_folder`` (absolute).

    Example
    -------
    >>> import tempfile
    >>> info = make_voxceleb(tempfile.mkdtemp(), vox2=None)
    >>> open(os.path.join(info["data_folder"], "veri_test2.txt")).readline()
    '1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\\n'
    """
    root = str(root)
    for utt in VOX1_FILES:
        write_audio(os.path.join(root, "wav", f"{utt}.wav"))
    for name, trials in VOX_TRIALS.items():
        write_text(os.path.join(root, name), "".join(f"{lab} {e}.wav {t}.wav\n" for lab, e, t in trials))
    vox2_files = list(VOX2_FILES)
    folder = os.path.join(root, "wav" if vox2 == "merged" else vox2_folder)
    if vox2 in ("wav", "merged"):
        vox2_files += [
            f"id{8000 + i:05d}/extra{k % 2}VIDEO/{k // 2 + 1:05d}"
            for i in range(extra_vox2_speakers)
            for k in range(extra_utterances)
        ]
        for utt in vox2_files:
            write_audio(os.path.join(folder, f"{utt}.wav"))
    elif vox2 == "m4a":
        for utt in VOX2_FILES:
            write_text(os.path.join(folder, f"{utt}.m4a"), "not audio: an AAC stream in an MP4 box")
    elif vox2 == "aac":
        for utt in VOX2_FILES:
            write_m4a(os.path.join(folder, f"{utt}.m4a"))
    elif vox2 is not None:
        raise ValueError(f"vox2 must be 'wav', 'm4a', 'aac', 'merged' or None, not {vox2!r}")
    return {
        "data_folder": root,
        "vox1": list(VOX1_FILES),
        "vox2": vox2_files if vox2 else [],
        "trials": {k: list(v) for k, v in VOX_TRIALS.items()},
        "vox2_folder": folder,
    }


# --------------------------------------------------------------------------- ESD

ESD_EMOTIONS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
ESD_SENTENCES = {
    "zh": ["打开 空调。", "今天 天气 很好！"],
    "en": ["Author of the danger trail.", "Going along slushy country roads."],
}
ESD_ENCODINGS = {"0001": "gb2312", "0003": "utf-16", "0016": "latin-1", "0017": "latin-1"}  # others: utf-8
# Strong-AI-Lab/emotion datasets/ESD/process.py reads 0016.txt and 0017.txt as Latin-1 but 0011/0015/0020 as
# UTF-8: they hold non-UTF-8 (8-bit) bytes. make_esd(non_ascii=True) gives every English speaker this sentence.
ESD_NON_ASCII_SENTENCE = "A naïve idea."
ESD_CHINESE_EMOTIONS = {
    "Neutral": "中立",
    "Angry": "生气",
    "Happy": "快乐",
    "Sad": "伤心",
    "Surprise": "惊喜",
}


ESD_PUBLISHED_SPACE_AFTER_ID = ("0012_001355", "0013_000431", "0015_000137")  # 3 of the 14 (issue 13)


def make_esd(root, speakers=None, space_after_id=(), non_ascii=False):
    """ESD: ``<spk>/<Emotion>/<spk>_<nnnnnn>.wav`` + ``<spk>/<spk>.txt``, 16 kHz WAV.

    Every speaker (default all 20) has 2 parallel sentences in each of the 5
    emotions, numbered like the real corpus (Neutral 000001-, Angry 000351-,
    Happy 000701-, Sad 001051-, Surprise 001401-). Transcripts are tab-separated
    ``id text emotion`` (Chinese emotion names for Mandarin speakers), in mixed
    encodings (GB2312 for 0001, UTF-16 for 0003, Latin-1 for 0016 and 0017, else UTF-8).

    ``non_ascii=True`` gives every English speaker a third sentence,
    :data:`ESD_NON_ASCII_SENTENCE` (``naïve``), so the Latin-1 transcripts hold
    non-ASCII bytes as the published ones do.

    ``space_after_id`` reproduces the published quirk: the line of each of these
    IDs has a space instead of the tab after the ID. An ID outside the replica
    (e.g. :data:`ESD_PUBLISHED_SPACE_AFTER_ID`) brings its parallel group: the
    same sentence number in the 5 emotions of its speaker, with its own sentence.

    Returns
    -------
    dict
        ``data_folder``, ``speakers``, ``utterances`` ({spk: [utt_id]}),
        ``sentences`` ({utt_id: text}).

    Example
    -------
    >>> import tempfile
    >>> info = make_esd(tempfile.mkdtemp(), speakers=["0011"])
    >>> info["utterances"]["0011"][:3]
    ['0011_000001', '0011_000002', '0011_000351']
    >>> info = make_esd(tempfile.mkdtemp(), speakers=["0015"], space_after_id=["0015_000137"])
    >>> [u for u in info["utterances"]["0015"] if u.endswith("137") or u.endswith("487")]
    ['0015_000137', '0015_000487']
    >>> open(os.path.join(info["data_folder"], "0015", "0015.txt")).read().splitlines()[2]
    '0015_000137 Parallel sentence 137 of 0015.\\tNeutral'
    """
    root = str(root)
    speakers = [f"{i:04d}" for i in range(1, 21)] if speakers is None else list(speakers)
    broken = set(space_after_id)
    utterances, sentences = {}, {}
    for spk in speakers:
        lang = "zh" if int(spk) <= 10 else "en"
        sentences_of_lang = [*ESD_SENTENCES[lang], *([ESD_NON_ASCII_SENTENCE] if non_ascii and lang == "en" else [])]
        numbers = {k + 1: text for k, text in enumerate(sentences_of_lang)}
        for utt in sorted(broken):
            index = (int(utt[5:]) - 1) % 350 + 1
            if utt.startswith(spk + "_") and index not in numbers:
                numbers[index] = f"Parallel sentence {index} of {spk}."
        lines = []
        utterances[spk] = []
        for block, emotion in enumerate(ESD_EMOTIONS):
            for index, sentence in sorted(numbers.items()):
                utt = f"{spk}_{block * 350 + index:06d}"
                write_audio(os.path.join(root, spk, emotion, f"{utt}.wav"))
                label = ESD_CHINESE_EMOTIONS[emotion] if lang == "zh" else emotion
                lines.append(f"{utt}{' ' if utt in broken else chr(9)}{sentence}\t{label}\n")
                utterances[spk].append(utt)
                sentences[utt] = sentence
        write_text(os.path.join(root, spk, f"{spk}.txt"), "".join(lines), ESD_ENCODINGS.get(spk, "utf-8"))
    return {"data_folder": root, "speakers": speakers, "utterances": utterances, "sentences": sentences}


# --------------------------------------------------------------------------- CREMA-D

CREMAD_ACTORS = ("1001", "1002", "1003", "1090", "1091")
CREMAD_CLIPS = (
    ("IEO", "NEU", "XX"),
    ("TIE", "NEU", "XX"),
    ("IEO", "SAD", "HI"),
    ("TIE", "SAD", "LO"),
    ("IEO", "ANG", "MD"),
    ("TIE", "ANG", "XX"),
)


CREMAD_SILENT = "1076_MTI_SAD_XX"  # no audio, per the corpus's documentation


def make_cremad(root, silent_file=False):
    """CREMA-D: ``AudioWAV/<actor>_<sentence>_<EMO>_<level>.wav``, 16 kHz WAV.

    Actors 1001-1003, 1090, 1091; sentences IEO and TIE in NEU, SAD and ANG (6
    clips each), plus ``1002_ITH_SAD_X.wav`` (the misnamed file of older clones).
    ``silent_file`` adds actor 1076's :data:`CREMAD_SILENT` as the corpus has it: a
    valid WAV header over near-silent samples (it reads without error) next to the
    actor's other clips (``1076_IEO_NEU_XX``, ``1076_TIE_SAD_LO``).

    Returns
    -------
    dict
        ``data_folder``, ``actors``, ``files`` (stems).

    Example
    -------
    >>> import tempfile
    >>> info = make_cremad(tempfile.mkdtemp())
    >>> len(info["files"]), info["files"][0]
    (31, '1001_IEO_NEU_XX')
    """
    root = str(root)
    files = [f"{a}_{s}_{e}_{lv}" for a in CREMAD_ACTORS for s, e, lv in CREMAD_CLIPS] + ["1002_ITH_SAD_X"]
    files += ["1076_IEO_NEU_XX", "1076_TIE_SAD_LO"] if silent_file else []
    for stem in files:
        write_audio(os.path.join(root, "AudioWAV", f"{stem}.wav"))
    if silent_file:
        sf.write(os.path.join(root, "AudioWAV", f"{CREMAD_SILENT}.wav"), np.zeros(800, "float32"), 16000,
                 subtype="PCM_16")
    actors = list(CREMAD_ACTORS) + (["1076"] if silent_file else [])
    return {"data_folder": root, "actors": actors, "files": files}


# --------------------------------------------------------------------------- RAVDESS

RAVDESS_ACTORS = (1, 2, 3, 4, 23, 24)
RAVDESS_CLIPS = (("01", "01"), ("05", "01"), ("05", "02"))  # (emotion, intensity)


RAVDESS_KAGGLE_NESTED = "audio_speech_actors_01-24"


def make_ravdess(root, kaggle=False):
    """RAVDESS: ``Actor_XX/03-01-<emo>-<int>-<stmt>-<rep>-<actor>.wav``, 48 kHz WAV.

    Actors 1-4, 23, 24; neutral (normal) and angry (normal, strong) for both
    statements, repetition 01 (6 speech files each); Actor_01 also has a song
    file (``03-02-...``), which the preparation filters out. ``kaggle=True`` lays
    the files out as the Kaggle download does: the actor folders at the top and a
    second copy of them under :data:`RAVDESS_KAGGLE_NESTED`.

    Returns
    -------
    dict
        ``data_folder``, ``actors`` (``Actor_XX``), ``files`` (speech stems), ``song`` (stems).

    Example
    -------
    >>> import tempfile, soundfile
    >>> info = make_ravdess(tempfile.mkdtemp())
    >>> p = os.path.join(info["data_folder"], "Actor_01", info["files"][0] + ".wav")
    >>> info["files"][0], soundfile.info(p).samplerate
    ('03-01-01-01-01-01-01', 48000)
    """
    root = str(root)
    files = []
    for actor in RAVDESS_ACTORS:
        for emo, intensity in RAVDESS_CLIPS:
            for statement in ("01", "02"):
                stem = f"03-01-{emo}-{intensity}-{statement}-01-{actor:02d}"
                write_audio(os.path.join(root, f"Actor_{actor:02d}", f"{stem}.wav"), samplerate=48000)
                files.append(stem)
    song = ["03-02-01-01-01-01-01"]
    write_audio(os.path.join(root, "Actor_01", f"{song[0]}.wav"), samplerate=48000)
    if kaggle:
        for actor in RAVDESS_ACTORS:
            shutil.copytree(os.path.join(root, f"Actor_{actor:02d}"),
                            os.path.join(root, RAVDESS_KAGGLE_NESTED, f"Actor_{actor:02d}"))
    return {
        "data_folder": root,
        "actors": [f"Actor_{a:02d}" for a in RAVDESS_ACTORS],
        "files": files,
        "song": song,
    }


# --------------------------------------------------------------------------- Dusha

DUSHA_SPEAKERS = {"crowd_train": ("spk_a", "spk_b", "spk_c"), "crowd_test": ("spk_d", "spk_e")}
DUSHA_TEXTS = ("включи музыку", "какая погода завтра")
DUSHA_EMOTIONS = ("neutral", "angry")
DUSHA_COLUMNS = (
    "hash_id",
    "audio_path",
    "duration",
    "annotator_emo",
    "golden_emo",
    "speaker_text",
    "speaker_emo",
    "source_id",
    "annotator_id",
)


def make_dusha(root, crowd_folder=False, tsv_columns=DUSHA_COLUMNS):
    """Dusha crowd: ``crowd_train/raw_crowd_train.jsonl`` and ``crowd_test/raw_crowd_test.tsv``
    (the two formats golos writes) with ``wavs/<hash_id>.wav``, 16 kHz WAV.

    Speakers (``source_id``) spk_a-spk_c in crowd_train, spk_d and spk_e in
    crowd_test, each with 2 texts x {neutral, angry} (4 audios); every audio has
    two annotation rows (annotators disagree; ``speaker_emo`` is the same).
    ``crowd_folder=True`` writes both subsets under ``root/crowd/``, as ``crowd.tar``
    extracts; ``tsv_columns`` orders the TSV columns.

    Returns
    -------
    dict
        ``data_folder`` (``root``), ``crowd`` (the folder holding the subsets),
        ``audios`` ({hash_id: (subset, spk, emotion, text)}).

    Example
    -------
    >>> import tempfile
    >>> info = make_dusha(tempfile.mkdtemp())
    >>> len(info["audios"]), sorted(os.listdir(os.path.join(info["data_folder"], "crowd_test")))
    (20, ['raw_crowd_test.tsv', 'wavs'])
    """
    root = str(root)
    crowd = os.path.join(root, "crowd") if crowd_folder else root
    audios = {}
    for subset, speakers in DUSHA_SPEAKERS.items():
        rows = []
        for spk in speakers:
            for t, text in enumerate(DUSHA_TEXTS):
                for emotion in DUSHA_EMOTIONS:
                    hash_id = f"{spk[-1]}{t}{emotion[:3]}" + "0" * 24
                    write_audio(os.path.join(crowd, subset, "wavs", f"{hash_id}.wav"))
                    audios[hash_id] = (subset, spk, emotion, text)
                    for annotator, vote in (("ann1", emotion), ("ann2", "other")):
                        rows.append(
                            {
                                "hash_id": hash_id,
                                "audio_path": f"wavs/{hash_id}.wav",
                                "duration": f"{SECONDS}",
                                "annotator_emo": vote,
                                "golden_emo": "",
                                "speaker_text": text,
                                "speaker_emo": emotion,
                                "source_id": spk,
                                "annotator_id": annotator,
                            }
                        )
        if subset == "crowd_train":
            write_text(
                os.path.join(crowd, subset, f"raw_{subset}.jsonl"),
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
            )
        else:
            write_text(
                os.path.join(crowd, subset, f"raw_{subset}.tsv"),
                "\t".join(tsv_columns) + "\n" + "".join("\t".join(r[c] for c in tsv_columns) + "\n" for r in rows),
            )
    return {"data_folder": root, "crowd": crowd, "audios": audios}


# --------------------------------------------------------------------------- helpers for tests


def add_appledouble(root, extensions):
    """Write a macOS AppleDouble ``._<name>`` next to every file of ``root`` ending with one of ``extensions``.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = write_text(os.path.join(d, "a", "x.wav"), "")
    >>> add_appledouble(d, (".wav",)); sorted(os.listdir(os.path.join(d, "a")))
    ['._x.wav', 'x.wav']
    """
    for dirpath, _dirs, files in os.walk(str(root)):
        for name in files:
            if name.endswith(tuple(extensions)) and not name.startswith("._"):
                with open(os.path.join(dirpath, "._" + name), "wb") as f:
                    f.write(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")


def to_crlf(root, extensions):
    """Rewrite every text file of ``root`` ending with one of ``extensions`` with CRLF line ends.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); p = write_text(os.path.join(d, "l.lst"), "a\\nb\\n")
    >>> to_crlf(d, (".lst",)); open(p, newline="").read()
    'a\\r\\nb\\r\\n'
    """
    for dirpath, _dirs, files in os.walk(str(root)):
        for name in files:
            if name.endswith(tuple(extensions)) and not name.startswith("._"):
                path = os.path.join(dirpath, name)
                write_text(path, open(path, encoding="utf-8").read().replace("\n", "\r\n"))


def symlinked(root, moved, elsewhere):
    """Move ``root/moved`` to ``elsewhere`` and leave a symlink in its place; return a symlink to ``root``
    (made next to ``elsewhere``), so a preparation reads a symlinked root holding a symlinked folder.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = write_text(os.path.join(d, "c", "s", "x.txt"), "x")
    >>> link = symlinked(os.path.join(d, "c"), "s", os.path.join(d, "far"))
    >>> os.path.islink(link), os.path.islink(os.path.join(d, "c", "s")), open(os.path.join(link, "s", "x.txt")).read()
    (True, True, 'x')
    """
    root = str(root)
    shutil.move(os.path.join(root, moved), str(elsewhere))
    os.symlink(str(elsewhere), os.path.join(root, moved))
    link = os.path.join(os.path.dirname(str(elsewhere)), os.path.basename(root) + "_link")
    os.symlink(root, link)
    return link


def _call(queue, func, kwargs):
    try:
        queue.put(("ok", func(**kwargs)))
    except BaseException as err:  # reported to the parent, which raises
        queue.put(("error", repr(err)))


def run_concurrently(func, kwargs, n=2, timeout=120):
    """Start ``n`` processes (spawn) that all call ``func(**kwargs)`` at once; return their results.

    ``func`` must be importable (e.g. ``data_prep.voxceleb.prepare_voxceleb``).
    Raises ``RuntimeError`` if a process fails.

    Example
    -------
    >>> pids = run_concurrently(os.getpid, {})
    >>> len(set(pids)) == 2 and os.getpid() not in pids
    True
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_call, args=(queue, func, kwargs)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout)
    errors = [r for status, r in results if status == "error"]
    if errors:
        raise RuntimeError(f"concurrent preparation failed: {errors}")
    return [r for _, r in results]


def mtimes(folder):
    """``{relative path: mtime_ns}`` of every file under ``folder`` except the lock file
    (``.prepare.lock`` is reopened, so touched, by every call of a preparation).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = write_text(os.path.join(d, "a.txt"), "x")
    >>> list(mtimes(d))
    ['a.txt']
    """
    out = {}
    for dirpath, _dirs, files in os.walk(str(folder)):
        for name in files:
            if name == ".prepare.lock":
                continue
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, str(folder))] = os.stat(path).st_mtime_ns
    return out


def replica_fixture(make):
    """A pytest fixture ``corpus`` that builds ``make(tmp_path / "corpus")`` for each test.

    Example
    -------
    >>> replica_fixture(make_cremad).__name__
    'corpus'
    """
    import pytest

    @pytest.fixture()
    def corpus(tmp_path):
        return make(tmp_path / "corpus")

    return corpus


def read_text(folder, name):
    """The text (UTF-8) of ``folder/name``, e.g. a prepared manifest or trial list.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = write_text(os.path.join(d, "trials", "all.txt"), "1 a b\\n")
    >>> read_text(d, "trials/all.txt")
    '1 a b\\n'
    """
    with open(os.path.join(str(folder), name), encoding="utf-8") as f:
        return f.read()


def emotion_manifest(rows, duration="0.200"):
    """The expected text of an emotional corpus's manifest, rows sorted by ID.

    ``rows`` are ``(ID, wav relative to $data_root, spk_id, emotion, text)``; every
    replica file lasts :data:`SECONDS`.

    Example
    -------
    >>> print(emotion_manifest([("b", "B.wav", "s", "sad", "t2"), ("a", "A.wav", "s", "neutral", "t1")]), end="")
    ID,duration,wav,spk_id,emotion,text
    a,0.200,$data_root/A.wav,s,neutral,t1
    b,0.200,$data_root/B.wav,s,sad,t2
    """
    lines = [f"{uid},{duration},$data_root/{wav},{spk},{emo},{text}\n" for uid, wav, spk, emo, text in sorted(rows)]
    return "ID,duration,wav,spk_id,emotion,text\n" + "".join(lines)


def prepare_twice(prepare, data_folder, save_folder, again=None, **options):
    """Prepare, then prepare again: the second call must be a skip that touches no file.

    ``again`` updates the options of the second call with options that must not
    change the outputs (e.g. ``num_workers``). Returns the second summary.

    Example
    -------
    >>> import tempfile
    >>> info = make_cremad(tempfile.mkdtemp())
    >>> from data_prep.cremad import prepare_cremad
    >>> opts = {"eval_speakers": ("1090", "1091"), "n_valid_speakers": 2}
    >>> again = prepare_twice(prepare_cremad, info["data_folder"], tempfile.mkdtemp(), {"num_workers": 1}, **opts)
    >>> again["status"]
    'skipped'
    """
    prepare(data_folder, save_folder, **options)
    before = mtimes(save_folder)
    summary = prepare(data_folder, save_folder, **{**options, **(again or {})})
    if summary["status"] != "skipped":
        raise AssertionError(f"the second preparation of {save_folder} was not a skip: {summary}")
    if mtimes(save_folder) != before:
        raise AssertionError(f"the skipped preparation touched files in {save_folder}")
    return summary
