"""data_prep.voxceleb on a miniature VoxCeleb1 + VoxCeleb2 replica (tests/replicas.py)."""

import logging
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.common import PreparationError  # noqa: E402
from data_prep.voxceleb import prepare_voxceleb  # noqa: E402

TRAIN = """ID,duration,wav,spk_id
id00015/0fijmz4vTVU/00001,0.200,$data_root/vox2_dev/id00015/0fijmz4vTVU/00001.wav,id00015
id00018/5BVBfpfzjIk/00001,0.200,$data_root/vox2_dev/id00018/5BVBfpfzjIk/00001.wav,id00018
id00018/5BVBfpfzjIk/00002,0.200,$data_root/vox2_dev/id00018/5BVBfpfzjIk/00002.wav,id00018
id10002/vid3CCCCCCC/00001,0.200,$data_root/wav/id10002/vid3CCCCCCC/00001.wav,id10002
id10002/vid3CCCCCCC/00002,0.200,$data_root/wav/id10002/vid3CCCCCCC/00002.wav,id10002
id10003/vid4DDDDDDD/00001,0.200,$data_root/wav/id10003/vid4DDDDDDD/00001.wav,id10003
id10003/vid5EEEEEEE/00001,0.200,$data_root/wav/id10003/vid5EEEEEEE/00001.wav,id10003
"""
VALID = """ID,duration,wav,spk_id
id00012/21Uxsk56VDQ/00001,0.200,$data_root/vox2_dev/id00012/21Uxsk56VDQ/00001.wav,id00012
id00012/21Uxsk56VDQ/00002,0.200,$data_root/vox2_dev/id00012/21Uxsk56VDQ/00002.wav,id00012
id10001/vid1AAAAAAA/00001,0.200,$data_root/wav/id10001/vid1AAAAAAA/00001.wav,id10001
id10001/vid1AAAAAAA/00002,0.200,$data_root/wav/id10001/vid1AAAAAAA/00002.wav,id10001
id10001/vid2BBBBBBB/00001,0.200,$data_root/wav/id10001/vid2BBBBBBB/00001.wav,id10001
"""
EVAL_O = """ID,duration,wav,spk_id
id10270/8jEAjG6SegY/00008,0.200,$data_root/wav/id10270/8jEAjG6SegY/00008.wav,id10270
id10270/x6uYqmx31kE/00001,0.200,$data_root/wav/id10270/x6uYqmx31kE/00001.wav,id10270
id10271/1gtz-CUIygI/00001,0.200,$data_root/wav/id10271/1gtz-CUIygI/00001.wav,id10271
id10271/1gtz-CUIygI/00002,0.200,$data_root/wav/id10271/1gtz-CUIygI/00002.wav,id10271
"""
VOX1_O = """1 id10270/x6uYqmx31kE/00001 id10270/8jEAjG6SegY/00008
0 id10270/x6uYqmx31kE/00001 id10271/1gtz-CUIygI/00001
1 id10271/1gtz-CUIygI/00001 id10271/1gtz-CUIygI/00002
0 id10271/1gtz-CUIygI/00002 id10270/8jEAjG6SegY/00008
"""
VALID_TRIALS = """1 id00012/21Uxsk56VDQ/00001 id00012/21Uxsk56VDQ/00002
0 id10001/vid2BBBBBBB/00001 id00012/21Uxsk56VDQ/00002
0 id10001/vid2BBBBBBB/00001 id00012/21Uxsk56VDQ/00002
0 id10001/vid1AAAAAAA/00001 id00012/21Uxsk56VDQ/00002
1 id00012/21Uxsk56VDQ/00002 id00012/21Uxsk56VDQ/00001
0 id10001/vid1AAAAAAA/00001 id00012/21Uxsk56VDQ/00001
0 id10001/vid1AAAAAAA/00001 id00012/21Uxsk56VDQ/00001
0 id10001/vid2BBBBBBB/00001 id00012/21Uxsk56VDQ/00001
1 id10001/vid1AAAAAAA/00001 id10001/vid2BBBBBBB/00001
0 id00012/21Uxsk56VDQ/00001 id10001/vid2BBBBBBB/00001
0 id00012/21Uxsk56VDQ/00001 id10001/vid2BBBBBBB/00001
0 id00012/21Uxsk56VDQ/00001 id10001/vid2BBBBBBB/00001
1 id10001/vid1AAAAAAA/00001 id10001/vid1AAAAAAA/00002
0 id00012/21Uxsk56VDQ/00001 id10001/vid1AAAAAAA/00002
0 id00012/21Uxsk56VDQ/00001 id10001/vid1AAAAAAA/00002
0 id00012/21Uxsk56VDQ/00001 id10001/vid1AAAAAAA/00002
1 id10001/vid2BBBBBBB/00001 id10001/vid1AAAAAAA/00001
0 id00012/21Uxsk56VDQ/00002 id10001/vid1AAAAAAA/00001
0 id00012/21Uxsk56VDQ/00001 id10001/vid1AAAAAAA/00001
0 id00012/21Uxsk56VDQ/00002 id10001/vid1AAAAAAA/00001
"""
OPTS = {"use_vox2": True, "n_valid_speakers": 2}


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_voxceleb)


def speakers_of(manifest):
    return {line.split(",")[3] for line in manifest.splitlines()[1:]}


def test_vox1_o_manifests_and_trials(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(corpus["data_folder"], save, **OPTS)
    assert summary["status"] == "prepared"
    assert read(save, "train.csv") == TRAIN
    assert read(save, "valid.csv") == VALID
    assert read(save, "eval.csv") == EVAL_O
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O
    assert read(save, "trials/valid/all.txt") == VALID_TRIALS
    assert sorted(os.listdir(os.path.join(save, "trials", "eval"))) == ["vox1_o.txt"]
    assert summary["trials"] == {"valid/all": 20, "eval/vox1_o": 4} and summary["skipped"] == {}
    # the Vox1-O test speakers never train
    assert not (speakers_of(TRAIN) | speakers_of(VALID)) & {"id10270", "id10271"}


def test_vox1_only_training(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(corpus["data_folder"], save, n_valid_speakers=0)
    assert read(save, "train.csv") == (
        "ID,duration,wav,spk_id\n"
        + "".join(
            f"{u},0.200,$data_root/wav/{u}.wav,{u[:7]}\n"
            for u in corpus["vox1"]
            if u[:7] in ("id10001", "id10002", "id10003")
        )
    )
    assert read(save, "valid.csv") == "ID,duration,wav,spk_id\n"
    assert read(save, "trials/valid/all.txt") == ""
    assert summary["train"] == {"utterances": 7, "speakers": 3}


def test_e_and_h_exclude_their_speakers_and_need_vox2(corpus, tmp_path, caplog):
    save = str(tmp_path / "prep")
    with caplog.at_level(logging.WARNING, logger="data_prep.voxceleb"):
        summary = prepare_voxceleb(
            corpus["data_folder"], save, trial_lists=("vox1_o", "vox1_e", "vox1_h"), **OPTS
        )
    assert "Vox1-E/H" in caplog.text and "excluded from training" in caplog.text
    assert speakers_of(read(save, "train.csv")) | speakers_of(read(save, "valid.csv")) == {
        "id00012",
        "id00015",
        "id00018",
        "id10003",
    }
    assert read(save, "trials/eval/vox1_e.txt") == (
        "1 id10001/vid1AAAAAAA/00001 id10001/vid2BBBBBBB/00001\n"
        "0 id10001/vid1AAAAAAA/00001 id10002/vid3CCCCCCC/00001\n"
    )
    assert read(save, "trials/eval/vox1_h.txt") == (
        "1 id10002/vid3CCCCCCC/00001 id10002/vid3CCCCCCC/00002\n"
        "0 id10002/vid3CCCCCCC/00001 id10001/vid1AAAAAAA/00002\n"
    )
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O
    assert summary["eval"] == {"utterances": 9, "speakers": 4}
    with pytest.raises(PreparationError, match="use_vox2=True"):
        prepare_voxceleb(corpus["data_folder"], str(tmp_path / "p2"), trial_lists=("vox1_h",))


def test_missing_list_names_expected_path(corpus, tmp_path):
    os.remove(os.path.join(corpus["data_folder"], "list_test_hard2.txt"))
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(corpus["data_folder"], str(tmp_path / "prep"), trial_lists=("vox1_h",), **OPTS)
    assert os.path.join(corpus["data_folder"], "list_test_hard2.txt") in str(err.value)
    assert "VoxCeleb1" in str(err.value)


def test_missing_audio_folder_names_expected_paths(tmp_path):
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(str(tmp_path), str(tmp_path / "prep"))
    assert os.path.join(str(tmp_path), "wav") in str(err.value)
    assert os.path.join(str(tmp_path), "vox1_dev_wav", "wav") in str(err.value)


def test_trial_naming_unknown_utterance_is_an_error(corpus, tmp_path):
    with open(os.path.join(corpus["data_folder"], "veri_test2.txt"), "a") as f:
        f.write("0 id10270/x6uYqmx31kE/00001.wav id10299/NoSuchVideo/00042.wav\n")
    with pytest.raises(PreparationError, match="id10299/NoSuchVideo/00042"):
        prepare_voxceleb(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)


def test_m4a_only_vox2_explains_conversion(tmp_path):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="m4a")
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    message = str(err.value)
    root = os.path.join(info["data_folder"], "vox2_dev")
    assert "5 .m4a files and no .wav" in message and f"python -m data_prep.convert {root}\n" in message


def test_partially_converted_vox2_counts_m4a(corpus, tmp_path):
    m4a = os.path.join(corpus["data_folder"], "vox2_dev", "id00015", "0fijmz4vTVU", "00002.m4a")
    replicas.write_text(m4a, "not converted")
    summary = prepare_voxceleb(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["skipped"]["m4a_not_converted"] == {"count": 1, "first": [m4a]}


def test_unreadable_audio_is_a_counted_skip(corpus, tmp_path):
    bad_train = os.path.join(corpus["data_folder"], "wav", "id10003", "vid4DDDDDDD", "00001.wav")
    bad_eval = os.path.join(corpus["data_folder"], "wav", "id10271", "1gtz-CUIygI", "00002.wav")
    for path in (bad_train, bad_eval):
        with open(path, "wb") as f:
            f.write(b"RIFF garbage")
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(corpus["data_folder"], save, **OPTS)
    assert summary["skipped"]["unreadable"] == {"count": 2, "first": [bad_train, bad_eval]}
    assert "id10003/vid4DDDDDDD/00001" not in read(save, "train.csv")
    assert summary["trials_dropped"] == {"vox1_o": 2}
    assert read(save, "trials/eval/vox1_o.txt") == (
        "1 id10270/x6uYqmx31kE/00001 id10270/8jEAjG6SegY/00008\n"
        "0 id10270/x6uYqmx31kE/00001 id10271/1gtz-CUIygI/00001\n"
    )


def test_idempotent_then_option_change(corpus, tmp_path):
    save = str(tmp_path / "prep")
    again = replicas.prepare_twice(prepare_voxceleb, corpus["data_folder"], save, {"num_workers": 2}, **OPTS)
    assert again["status"] == "skipped" and again["train"] == {"utterances": 7, "speakers": 4}
    changed = prepare_voxceleb(corpus["data_folder"], save, trial_lists=("vox1_o", "vox1_h"), **OPTS)
    assert changed["status"] == "prepared"
    assert os.path.exists(os.path.join(save, "trials/eval/vox1_h.txt"))
    back = prepare_voxceleb(corpus["data_folder"], save, **OPTS)  # the stale vox1_h list is removed
    assert back["status"] == "prepared"
    assert sorted(os.listdir(os.path.join(save, "trials", "eval"))) == ["vox1_o.txt"]


def test_split_archive_layout_and_lists_folder(corpus, tmp_path):
    root = corpus["data_folder"]
    for name, speakers in (
        ("vox1_dev_wav", ("id10001", "id10002", "id10003")),
        ("vox1_test_wav", ("id10270", "id10271")),
    ):
        for spk in speakers:
            shutil.move(os.path.join(root, "wav", spk), os.path.join(root, name, "wav", spk))
    os.rmdir(os.path.join(root, "wav"))
    os.makedirs(os.path.join(root, "meta"))
    shutil.move(os.path.join(root, "veri_test2.txt"), os.path.join(root, "meta", "veri_test2.txt"))
    save = str(tmp_path / "prep")
    prepare_voxceleb(root, save, **OPTS)
    assert read(save, "train.csv") == TRAIN.replace("$data_root/wav/", "$data_root/vox1_dev_wav/wav/")
    assert read(save, "eval.csv") == EVAL_O.replace("$data_root/wav/", "$data_root/vox1_test_wav/wav/")
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O


def _wespeaker_layout(root):
    """VoxCeleb1 as WeSpeaker unpacks it: ``unzip vox1_dev_wav.zip -d dev``, ``unzip vox1_test_wav.zip -d test``."""
    for name, speakers in (("dev", ("id10001", "id10002", "id10003")), ("test", ("id10270", "id10271"))):
        for spk in speakers:
            shutil.move(os.path.join(root, "wav", spk), os.path.join(root, name, "wav", spk))
    os.rmdir(os.path.join(root, "wav"))


def test_wespeaker_layout_dev_wav_and_test_wav(corpus, tmp_path):
    _wespeaker_layout(corpus["data_folder"])
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(corpus["data_folder"], save, **OPTS)
    assert read(save, "train.csv") == TRAIN.replace("$data_root/wav/", "$data_root/dev/wav/")
    assert read(save, "eval.csv") == EVAL_O.replace("$data_root/wav/", "$data_root/test/wav/")
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O
    assert summary["vox1_roots"] == [os.path.join(corpus["data_folder"], r) for r in ("dev/wav", "test/wav")]


def test_wespeaker_layout_is_no_voxceleb2_candidate(tmp_path):
    # VoxCeleb1's dev/wav holds converted audio of id1xxxx speakers; VoxCeleb2, unzipped beside it
    # as dev/aac, is not converted yet: the error must be about the .m4a, not a missing VoxCeleb2.
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="m4a", vox2_folder="dev/aac")
    _wespeaker_layout(info["data_folder"])
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert ".m4a files and no .wav" in str(err.value)
    assert os.path.join(info["data_folder"], "dev", "aac") in str(err.value)


def test_duration_from_none_skips_header_reads(corpus, tmp_path):
    save = str(tmp_path / "prep")
    prepare_voxceleb(corpus["data_folder"], save, duration_from="none", **OPTS)
    assert read(save, "train.csv") == TRAIN.replace(",0.200,", ",0.000,")


def test_two_concurrent_preparations(corpus, tmp_path):
    save = str(tmp_path / "prep")
    results = replicas.run_concurrently(
        prepare_voxceleb, {"data_folder": corpus["data_folder"], "save_folder": save, **OPTS}
    )
    assert sorted(r["status"] for r in results) == ["prepared", "skipped"]
    assert read(save, "train.csv") == TRAIN
    assert read(save, "valid.csv") == VALID
    assert read(save, "eval.csv") == EVAL_O
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O


def test_under_speechbrain_run_on_main(corpus, tmp_path):
    from speechbrain.utils.distributed import run_on_main

    save = str(tmp_path / "prep")
    kwargs = {"data_folder": corpus["data_folder"], "save_folder": save, **OPTS}
    run_on_main(prepare_voxceleb, kwargs=kwargs)
    run_on_main(prepare_voxceleb, kwargs=kwargs)  # as every rank does after the barrier: a skip
    assert read(save, "train.csv") == TRAIN
    assert read(save, "trials/eval/vox1_o.txt") == VOX1_O


@pytest.mark.parametrize("vox2_folder", ["vox2_dev/dev/aac", "vox2_dev/aac", "dev/aac", "vox2_dev/dev/wav"])
def test_vox2_as_it_unzips(tmp_path, vox2_folder):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="wav", vox2_folder=vox2_folder)
    save = str(tmp_path / "prep")
    prepare_voxceleb(info["data_folder"], save, **OPTS)
    assert read(save, "train.csv") == TRAIN.replace("$data_root/vox2_dev/", f"$data_root/{vox2_folder}/")
    assert read(save, "valid.csv") == VALID.replace("$data_root/vox2_dev/", f"$data_root/{vox2_folder}/")


@pytest.mark.parametrize("vox2_folder", ["vox2_dev/dev/aac", "vox2_dev/aac", "dev/aac"])
def test_unconverted_vox2_as_it_unzips_names_the_conversion_command(tmp_path, vox2_folder):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="m4a", vox2_folder=vox2_folder)
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert f"python -m data_prep.convert {info['vox2_folder']}\n" in str(err.value)
    assert "5 .m4a files and no .wav" in str(err.value)


def test_converted_copy_next_to_the_unzipped_m4a_is_preferred(tmp_path):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="m4a", vox2_folder="vox2_dev/dev/aac")
    for utt in replicas.VOX2_FILES:
        replicas.write_audio(os.path.join(info["data_folder"], "vox2_dev", "wav", f"{utt}.flac"))
    save = str(tmp_path / "prep")
    prepare_voxceleb(info["data_folder"], save, **OPTS)
    assert read(save, "train.csv") == TRAIN.replace("vox2_dev/id000", "vox2_dev/wav/id000").replace(
        "1.wav,id000", "1.flac,id000").replace("2.wav,id000", "2.flac,id000")


def test_nothing_for_vox2_names_the_places_looked_at(corpus, tmp_path):
    shutil.rmtree(os.path.join(corpus["data_folder"], "vox2_dev"))
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert os.path.join(corpus["data_folder"], "vox2_dev") in str(err.value) and "use_vox2=False" in str(err.value)


@pytest.mark.parametrize("vox2_root", ["vox2_dev", "wav"])
def test_speechbrain_merged_layout_for_o_e_and_h(tmp_path, caplog, vox2_root):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="merged")
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(info["data_folder"], save, **OPTS, vox2_root=vox2_root)
    merged = TRAIN.replace("$data_root/vox2_dev/", "$data_root/wav/")
    assert read(save, "train.csv") == merged and read(save, "eval.csv") == EVAL_O
    assert summary["skipped"] == {}
    with caplog.at_level(logging.WARNING, logger="data_prep.voxceleb"):
        summary = prepare_voxceleb(info["data_folder"], str(tmp_path / "oeh"), vox2_root=vox2_root,
                                   trial_lists=("vox1_o", "vox1_e", "vox1_h"), **OPTS)
    assert "VoxCeleb2 utterances of trial speakers excluded" not in caplog.text
    assert summary["skipped"] == {}
    oeh = str(tmp_path / "oeh")
    assert speakers_of(read(oeh, "train.csv")) | speakers_of(read(oeh, "valid.csv")) == {
        "id00012", "id00015", "id00018", "id10003"}
    assert read(oeh, "trials/eval/vox1_o.txt") == VOX1_O
    assert summary["trials"] == {"valid/all": summary["trials"]["valid/all"], "eval/vox1_o": 4, "eval/vox1_e": 2,
                                 "eval/vox1_h": 2}


def test_merged_layout_without_use_vox2_leaves_vox2_out(tmp_path):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="merged")
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(info["data_folder"], save, n_valid_speakers=0)
    assert summary["skipped"]["vox2_not_used"]["count"] == 5
    assert speakers_of(read(save, "train.csv")) == {"id10001", "id10002", "id10003"}
    with pytest.raises(PreparationError, match="use_vox2=True"):
        prepare_voxceleb(info["data_folder"], str(tmp_path / "h"), trial_lists=("vox1_h",))


def test_appledouble_upper_case_crlf_lists_and_symlinked_roots(corpus, tmp_path):
    root = corpus["data_folder"]
    replicas.add_appledouble(root, (".wav",))
    video = os.path.join(root, "vox2_dev", "id00018", "5BVBfpfzjIk")
    os.rename(os.path.join(video, "00002.wav"), os.path.join(video, "00002.WAV"))
    replicas.to_crlf(root, (".txt",))
    link = replicas.symlinked(root, "vox2_dev", tmp_path / "elsewhere")
    save = str(tmp_path / "prep")
    summary = prepare_voxceleb(str(link), save, **OPTS)
    assert summary["skipped"] == {}
    assert read(save, "train.csv") == TRAIN.replace("5BVBfpfzjIk/00002.wav", "5BVBfpfzjIk/00002.WAV")
    assert read(save, "eval.csv") == EVAL_O and read(save, "trials/eval/vox1_o.txt") == VOX1_O
