"""data_prep.ravdess on a miniature RAVDESS replica (tests/replicas.py)."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.common import PreparationError  # noqa: E402
from data_prep.ravdess import prepare_ravdess  # noqa: E402

OPTS = {"eval_speakers": (23, 24), "n_valid_speakers": 2, "nontargets_per_target": 1}
EMOTIONS = {"01": "neutral", "05": "angry"}
TEST_ANGRY = """1 03-01-01-01-02-01-23 03-01-05-01-01-01-23
0 03-01-01-01-02-01-24 03-01-05-01-01-01-23
1 03-01-01-01-02-01-23 03-01-05-02-01-01-23
0 03-01-01-01-02-01-24 03-01-05-02-01-01-23
1 03-01-01-01-02-01-24 03-01-05-01-01-01-24
0 03-01-01-01-02-01-23 03-01-05-01-01-01-24
1 03-01-01-01-02-01-24 03-01-05-02-01-01-24
0 03-01-01-01-02-01-23 03-01-05-02-01-01-24
"""


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_ravdess)


def manifest(stems):
    fields = [(s, s.split("-")) for s in stems]
    return replicas.emotion_manifest(
        (s, f"Actor_{f[6]}/{s}.wav", f"Actor_{f[6]}", EMOTIONS[f[2]], f[4]) for s, f in fields
    )


def test_manifests_and_trials(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_ravdess(corpus["data_folder"], save, **OPTS)
    # validation: one male (odd) and one female (even) actor
    assert summary["speakers"] == {
        "train": ["Actor_02", "Actor_03"],
        "valid": ["Actor_01", "Actor_04"],
        "eval": ["Actor_23", "Actor_24"],
    }
    files = corpus["files"]
    assert read(save, "eval.csv") == manifest(f for f in files if f[-2:] in ("23", "24"))
    assert read(save, "train.csv") == manifest(f for f in files if f[-2:] in ("02", "03"))
    assert read(save, "valid.csv") == manifest(f for f in files if f[-2:] in ("01", "04"))
    assert read(save, "trials/eval/test_angry.txt") == TEST_ANGRY
    song = os.path.join(corpus["data_folder"], "Actor_01", "03-02-01-01-01-01-01.wav")
    assert summary["skipped"] == {"filtered_not_audio_speech": {"count": 1, "first": [song]}}


def test_default_eval_actors_and_missing_folder(corpus, tmp_path):
    with pytest.raises(PreparationError, match="Actor_19"):
        prepare_ravdess(corpus["data_folder"], str(tmp_path / "prep"))
    with pytest.raises(PreparationError) as err:
        prepare_ravdess(str(tmp_path / "empty_dir_parent"), str(tmp_path / "prep"))
    assert "RAVDESS (Zenodo 1188976" in str(err.value)


def test_unreadable_and_misnamed_are_counted(corpus, tmp_path):
    actor = os.path.join(corpus["data_folder"], "Actor_02")
    with open(os.path.join(actor, "03-01-05-02-02-01-02.wav"), "wb") as f:
        f.write(b"nonsense")
    replicas.write_audio(os.path.join(actor, "03-01-09-01-01-01-02.wav"), samplerate=48000)  # emotion 09
    summary = prepare_ravdess(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["skipped"]["unreadable"] == {
        "count": 1,
        "first": [os.path.join(actor, "03-01-05-02-02-01-02.wav")],
    }
    assert summary["skipped"]["unparsed_name"] == {
        "count": 1,
        "first": [os.path.join(actor, "03-01-09-01-01-01-02.wav")],
    }
    assert summary["train"] == {"utterances": 11, "speakers": 2}


def test_idempotent_then_option_change(corpus, tmp_path):
    save = str(tmp_path / "prep")
    replicas.prepare_twice(prepare_ravdess, corpus["data_folder"], save, **OPTS)
    summary = prepare_ravdess(
        corpus["data_folder"], save, **{**OPTS, "eval_speakers": ["Actor_03", "Actor_04"]}
    )
    assert summary["status"] == "prepared"
    assert summary["speakers"]["eval"] == ["Actor_03", "Actor_04"]


def test_kaggle_copy_with_its_nested_duplicate(tmp_path):
    info = replicas.make_ravdess(tmp_path / "kaggle", kaggle=True)
    save = str(tmp_path / "prep")
    summary = prepare_ravdess(info["data_folder"], save, **OPTS)
    assert summary["eval"] == {"utterances": 12, "speakers": 2}
    assert summary["train"]["utterances"] + summary["valid"]["utterances"] == 24
    assert replicas.RAVDESS_KAGGLE_NESTED not in read(save, "train.csv") + read(save, "eval.csv")
    # the nested copy alone (its parent given as data_folder) is read through that folder
    for actor in info["actors"]:
        shutil.rmtree(os.path.join(info["data_folder"], actor))
    summary = prepare_ravdess(info["data_folder"], str(tmp_path / "nested"), **OPTS)
    assert summary["eval"] == {"utterances": 12, "speakers": 2}
    assert f"$data_root/{replicas.RAVDESS_KAGGLE_NESTED}/Actor_23/" in read(str(tmp_path / "nested"), "eval.csv")


def test_appledouble_files_are_ignored(corpus, tmp_path):
    replicas.add_appledouble(os.path.join(corpus["data_folder"], "Actor_02"), (".wav",))
    summary = prepare_ravdess(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["skipped"] == {"filtered_not_audio_speech": {"count": 1, "first": [
        os.path.join(corpus["data_folder"], "Actor_01", "03-02-01-01-01-01-01.wav")]}}


def test_macos_zip_folder_beside_the_nested_copy_is_not_a_second_copy(tmp_path):
    # a zip made on macOS unpacks __MACOSX/<same folders>/ beside the real ones (AppleDouble "._" files)
    info = replicas.make_ravdess(tmp_path / "kaggle", kaggle=True)
    for actor in info["actors"]:
        shutil.rmtree(os.path.join(info["data_folder"], actor))
    shadow = os.path.join(info["data_folder"], "__MACOSX", replicas.RAVDESS_KAGGLE_NESTED, "Actor_23")
    os.makedirs(shadow)
    open(os.path.join(shadow, "._03-01-01-01-01-01-23.wav"), "wb").close()
    os.makedirs(os.path.join(info["data_folder"], "__MACOSX", "Actor_23"))
    summary = prepare_ravdess(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["eval"] == {"utterances": 12, "speakers": 2}
    assert "__MACOSX" not in read(str(tmp_path / "prep"), "eval.csv")
