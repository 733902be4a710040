"""data_prep.cremad on a miniature CREMA-D replica (tests/replicas.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.common import PreparationError  # noqa: E402
from data_prep.cremad import prepare_cremad  # noqa: E402

OPTS = {"eval_speakers": ("1090", "1091"), "n_valid_speakers": 2, "nontargets_per_target": 1}
EMOTIONS = {"ANG": "angry", "NEU": "neutral", "SAD": "sad"}
TEST_SAD = """1 1090_TIE_NEU_XX 1090_IEO_SAD_HI
0 1091_IEO_NEU_XX 1090_IEO_SAD_HI
1 1091_IEO_NEU_XX 1091_TIE_SAD_LO
0 1090_TIE_NEU_XX 1091_TIE_SAD_LO
"""
NEUTRAL_NEUTRAL = """1 1090_TIE_NEU_XX 1090_IEO_NEU_XX
0 1091_IEO_NEU_XX 1090_IEO_NEU_XX
1 1091_IEO_NEU_XX 1091_TIE_NEU_XX
0 1090_TIE_NEU_XX 1091_TIE_NEU_XX
"""


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_cremad)


def manifest(stems):
    return replicas.emotion_manifest(
        (s, f"AudioWAV/{s}.wav", s[:4], EMOTIONS[s.split("_")[2]], s.split("_")[1]) for s in stems
    )


def test_manifests_and_trials(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_cremad(corpus["data_folder"], save, **OPTS)
    assert summary["speakers"] == {"train": ["1003"], "valid": ["1001", "1002"], "eval": ["1090", "1091"]}
    files = corpus["files"]
    assert read(save, "eval.csv") == manifest(f for f in files if f[:4] in ("1090", "1091"))
    assert read(save, "valid.csv") == manifest(f for f in files if f[:4] in ("1001", "1002"))
    assert read(save, "train.csv") == manifest(f for f in files if f[:4] == "1003")
    assert "1002_ITH_SAD_X,0.200,$data_root/AudioWAV/1002_ITH_SAD_X.wav,1002,sad,ITH\n" in read(
        save, "valid.csv"
    )
    assert read(save, "trials/eval/test_sad.txt") == TEST_SAD
    assert read(save, "trials/eval/neutral_neutral.txt") == NEUTRAL_NEUTRAL
    assert summary["trials"]["eval/all"] == 2 * 3 * 3 * 2
    assert summary["skipped"] == {}


def test_default_eval_actors_must_exist(corpus, tmp_path):
    with pytest.raises(PreparationError, match="1082"):
        prepare_cremad(corpus["data_folder"], str(tmp_path / "prep"))


def test_missing_audio_folder_names_path(tmp_path):
    with pytest.raises(PreparationError) as err:
        prepare_cremad(str(tmp_path), str(tmp_path / "prep"), **OPTS)
    assert os.path.join(str(tmp_path), "AudioWAV") in str(err.value) and "CREMA-D" in str(err.value)


def test_unreadable_lfs_pointer_and_misnamed_files_are_counted(corpus, tmp_path):
    audio = os.path.join(corpus["data_folder"], "AudioWAV")
    replicas.write_text(
        os.path.join(audio, "1003_IEO_ANG_MD.wav"),
        "version https://git-lfs.github.com/spec/v1\noid sha256:c6f94b\nsize 72862\n",
    )
    with open(os.path.join(audio, "1003_TIE_ANG_XX.wav"), "wb") as f:
        f.write(b"\x00" * 100)
    replicas.write_audio(os.path.join(audio, "1003_XYZ_ANG_XX.wav"))
    replicas.write_audio(os.path.join(audio, "1003_IEO_BOR_XX.wav"))
    save = str(tmp_path / "prep")
    summary = prepare_cremad(corpus["data_folder"], save, **OPTS)
    assert summary["skipped"] == {
        "lfs_pointer": {"count": 1, "first": [os.path.join(audio, "1003_IEO_ANG_MD.wav")]},
        "unparsed_name": {
            "count": 2,
            "first": [os.path.join(audio, "1003_IEO_BOR_XX.wav"), os.path.join(audio, "1003_XYZ_ANG_XX.wav")],
        },
        "unreadable": {"count": 1, "first": [os.path.join(audio, "1003_TIE_ANG_XX.wav")]},
    }
    assert summary["train"] == {"utterances": 4, "speakers": 1}


def test_all_lfs_pointers_is_an_error(corpus, tmp_path):
    audio = os.path.join(corpus["data_folder"], "AudioWAV")
    for name in os.listdir(audio):
        replicas.write_text(os.path.join(audio, name), "version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(PreparationError, match="lfs_pointer"):
        prepare_cremad(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)


def test_idempotent_then_option_change(corpus, tmp_path):
    save = str(tmp_path / "prep")
    replicas.prepare_twice(prepare_cremad, corpus["data_folder"], save, **OPTS)
    summary = prepare_cremad(corpus["data_folder"], save, **{**OPTS, "n_valid_speakers": 0})
    assert summary["status"] == "prepared"
    assert summary["train"] == {"utterances": 19, "speakers": 3}
    assert read(save, "valid.csv") == "ID,duration,wav,spk_id,emotion,text\n"


def test_silent_file_of_the_readme_is_a_named_skip(tmp_path):
    info = replicas.make_cremad(tmp_path / "corpus", silent_file=True)
    audio = os.path.join(info["data_folder"], "AudioWAV")
    save = str(tmp_path / "prep")
    summary = prepare_cremad(info["data_folder"], save, **OPTS)
    assert summary["skipped"] == {
        "known_unusable": {
            "count": 1,
            "first": [os.path.join(audio, "1076_MTI_SAD_XX.wav") + " (no audio, per the CREMA-D documentation)"],
        }
    }
    manifests = read(save, "train.csv") + read(save, "valid.csv") + read(save, "eval.csv")
    assert "1076_MTI_SAD_XX" not in manifests and "1076_IEO_NEU_XX" in manifests
    trials = read(save, "trials/valid/all.txt") + read(save, "trials/eval/all.txt")
    assert "1076_MTI_SAD_XX" not in trials


def test_appledouble_files_and_upper_case_extension(corpus, tmp_path):
    audio = os.path.join(corpus["data_folder"], "AudioWAV")
    replicas.add_appledouble(audio, (".wav",))
    os.rename(os.path.join(audio, "1001_IEO_SAD_HI.wav"), os.path.join(audio, "1001_IEO_SAD_HI.WAV"))
    save = str(tmp_path / "prep")
    summary = prepare_cremad(corpus["data_folder"], save, **OPTS)
    assert summary["skipped"] == {}
    assert summary["train"]["utterances"] + summary["valid"]["utterances"] == 19
    assert "1001_IEO_SAD_HI,0.200,$data_root/AudioWAV/1001_IEO_SAD_HI.WAV,1001,sad,IEO\n" in (
        read(save, "train.csv") + read(save, "valid.csv")
    )
