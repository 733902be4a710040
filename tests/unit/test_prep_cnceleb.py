"""data_prep.cnceleb on a miniature CN-Celeb1 + CN-Celeb2 replica (tests/replicas.py)."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.cnceleb import prepare_cnceleb  # noqa: E402
from data_prep.common import PreparationError  # noqa: E402

OPTS = {"min_duration": 0.4, "n_valid_speakers": 2}
WRITE = {**OPTS, "concat_enrol": "write"}  # enrolments concatenated from enroll.map (the default reads eval/enroll)
CN1 = "$data_root/CN-Celeb_flac"

TRAIN = """ID,duration,wav,spk_id
id00001/interview-01-001-comb2,0.400,{s}/combined/train/id00001/interview-01-001-comb2.flac,id00001
id00001/vlog-01-001,0.200,$data_root/CN-Celeb_flac/data/id00001/vlog-01-001.flac,id00001
id00002/drama-01-001-comb2,0.400,{s}/combined/train/id00002/drama-01-001-comb2.flac,id00002
id10002/play-01-001-comb2,0.400,{s}/combined/train/id10002/play-01-001-comb2.flac,id10002
"""
VALID = """ID,duration,wav,spk_id
id00000/singing-01-001-comb3,0.600,{s}/combined/train/id00000/singing-01-001-comb3.flac,id00000
id00000/speech-01-001-comb2,0.400,{s}/combined/train/id00000/speech-01-001-comb2.flac,id00000
id10001/live_broadcast-01-001,0.200,$data_root/CN-Celeb2_flac/data/id10001/live_broadcast-01-001.flac,id10001
id10001/recitation-01-001-comb2,0.400,{s}/combined/train/id10001/recitation-01-001-comb2.flac,id10001
id10001/recitation-01-003-comb2,0.400,{s}/combined/train/id10001/recitation-01-003-comb2.flac,id10001
"""
EVAL = """ID,duration,wav,spk_id
enroll/id00800-enroll,0.400,{s}/combined/enroll/id00800-enroll.flac,id00800
enroll/id00801-enroll,0.200,{s}/combined/enroll/id00801-enroll.flac,id00801
id00800/singing-01-001,0.200,$data_root/CN-Celeb_flac/data/id00800/singing-01-001.flac,id00800
id00800/speech-01-001,0.200,$data_root/CN-Celeb_flac/data/id00800/speech-01-001.flac,id00800
id00801/vlog-01-001,0.200,$data_root/CN-Celeb_flac/data/id00801/vlog-01-001.flac,id00801
test/id00800-singing-01-002,0.200,$data_root/CN-Celeb_flac/eval/test/id00800-singing-01-002.flac,id00800
test/id00800-speech-02-001,0.200,$data_root/CN-Celeb_flac/eval/test/id00800-speech-02-001.flac,id00800
test/id00801-movie-01-001,0.200,$data_root/CN-Celeb_flac/eval/test/id00801-movie-01-001.flac,id00801
test/id00801-vlog-01-002,0.200,$data_root/CN-Celeb_flac/eval/test/id00801-vlog-01-002.flac,id00801
"""
AVG = """1 id00800-enroll test/id00800-singing-01-002
1 id00800-enroll test/id00800-speech-02-001
0 id00800-enroll test/id00801-vlog-01-002
0 id00800-enroll test/id00801-movie-01-001
0 id00801-enroll test/id00800-singing-01-002
0 id00801-enroll test/id00800-speech-02-001
1 id00801-enroll test/id00801-vlog-01-002
1 id00801-enroll test/id00801-movie-01-001
"""
ENROL_MAP = """id00800-enroll id00800/singing-01-001 id00800/speech-01-001
id00801-enroll id00801/vlog-01-001
"""


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_cnceleb)


def test_manifests_trials_and_combined_audio(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_cnceleb(corpus["data_folder"], save, **WRITE)
    assert summary["status"] == "prepared"
    assert read(save, "train.csv") == TRAIN.format(s=save)
    assert read(save, "valid.csv") == VALID.format(s=save)
    assert read(save, "eval.csv") == EVAL.format(s=save)
    assert read(save, "trials/eval/cnc_eval_avg.txt") == AVG
    concat = AVG.replace("id00800-enroll", "enroll/id00800-enroll").replace(
        "id00801-enroll", "enroll/id00801-enroll"
    )
    assert read(save, "trials/eval/cnc_eval_concat.txt") == concat
    assert read(save, "trials/eval/enrol.map") == ENROL_MAP
    valid = [line.split() for line in read(save, "trials/valid/all.txt").splitlines()]
    valid_ids = {line.split(",")[0] for line in VALID.splitlines()[1:]}
    assert len(valid) == 20 and sum(t[0] == "1" for t in valid) == 5
    assert all(t[1] in valid_ids and t[2] in valid_ids and t[1] != t[2] for t in valid)
    assert all((t[0] == "1") == (t[1].split("/")[0] == t[2].split("/")[0]) for t in valid)
    # a combined file is the exact concatenation of its segments
    data = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "data", "id00000")
    parts = [sf.read(os.path.join(data, f"singing-01-00{i}.flac"), dtype="int16")[0] for i in (1, 2, 3)]
    combined, rate = sf.read(
        os.path.join(save, "combined/train/id00000/singing-01-001-comb3.flac"), dtype="int16"
    )
    assert rate == 16000 and np.array_equal(combined, np.concatenate(parts))
    enrol = [
        os.path.join(corpus["data_folder"], "CN-Celeb_flac", "data", f"{u}.flac")
        for u in corpus["enrol"]["id00800-enroll"]
    ]
    expected = np.concatenate([sf.read(p, dtype="int16")[0] for p in enrol])
    assert np.array_equal(
        sf.read(os.path.join(save, "combined/enroll/id00800-enroll.flac"), dtype="int16")[0], expected
    )
    assert summary["skipped"]["missing"]["count"] == 1  # dev.lst names id00003, which has no folder
    assert "id00003" in summary["skipped"]["missing"]["first"][0]
    assert summary["train"] == {"utterances": 4, "speakers": 3}


def test_list_mode_and_corpus_enrolment(corpus, tmp_path):
    save = str(tmp_path / "prep")
    prepare_cnceleb(corpus["data_folder"], save, combine_mode="list", concat_enrol="corpus", **OPTS)
    lines = read(save, "train.csv").splitlines()
    assert lines[0] == "ID,duration,wav,spk_id,wav_list"
    assert lines[1] == (
        f"id00001/interview-01-001-comb2,0.400,{CN1}/data/id00001/interview-01-001.flac,id00001,"
        f"{CN1}/data/id00001/interview-01-001.flac;{CN1}/data/id00001/interview-01-002.flac"
    )
    assert (
        lines[2] == f"id00001/vlog-01-001,0.200,{CN1}/data/id00001/vlog-01-001.flac,id00001,"
        f"{CN1}/data/id00001/vlog-01-001.flac"
    )
    assert read(save, "eval.csv").splitlines()[1:3] == [
        f"enroll/id00800-enroll,0.400,{CN1}/eval/enroll/id00800-enroll.flac,id00800",
        f"enroll/id00801-enroll,0.400,{CN1}/eval/enroll/id00801-enroll.flac,id00801",
    ]
    assert not os.path.exists(os.path.join(save, "combined"))


def test_idempotent_then_option_change_reprepares_and_prunes(corpus, tmp_path):
    save = str(tmp_path / "prep")
    again = replicas.prepare_twice(prepare_cnceleb, corpus["data_folder"], save, {"num_workers": 1}, **WRITE)
    assert again["status"] == "skipped" and again["train"] == {"utterances": 4, "speakers": 3}
    changed = prepare_cnceleb(corpus["data_folder"], save, min_duration=0.0, n_valid_speakers=2, concat_enrol="write")
    assert changed["status"] == "prepared"
    assert "comb" not in read(save, "train.csv")
    assert not os.path.exists(os.path.join(save, "combined", "train"))  # stale combined audio removed
    assert os.path.exists(os.path.join(save, "combined", "enroll", "id00800-enroll.flac"))


@pytest.mark.parametrize(
    "relative",
    [
        "CN-Celeb_flac/eval/lists/trials.lst",
        "CN-Celeb_flac/eval/lists/enroll.map",
        "CN-Celeb_flac/dev/dev.lst",
        "CN-Celeb2_flac/spk.lst",
    ],
)
def test_missing_list_names_path_and_version(corpus, tmp_path, relative):
    os.remove(os.path.join(corpus["data_folder"], relative))
    with pytest.raises(PreparationError) as err:
        prepare_cnceleb(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert os.path.join(corpus["data_folder"], relative) in str(err.value)
    assert "OpenSLR 82" in str(err.value)


def test_listed_but_absent_and_unreadable_are_counted(corpus, tmp_path):
    cn1 = os.path.join(corpus["data_folder"], "CN-Celeb_flac")
    os.remove(os.path.join(cn1, "data", "id00800", "speech-01-001.flac"))  # listed in enroll.map
    with open(os.path.join(cn1, "data", "id00001", "vlog-01-001.flac"), "wb") as f:
        f.write(b"not a flac file at all")
    with open(os.path.join(cn1, "eval", "test", "id00801-movie-01-001.flac"), "wb") as f:
        f.write(b"")
    save = str(tmp_path / "prep")
    summary = prepare_cnceleb(corpus["data_folder"], save, **OPTS)
    assert summary["skipped"]["missing"]["count"] == 2
    assert any("speech-01-001.wav" in s for s in summary["skipped"]["missing"]["first"])
    assert summary["skipped"]["unreadable"] == {
        "count": 2,
        "first": [
            os.path.join(cn1, "data", "id00001", "vlog-01-001.flac"),
            os.path.join(cn1, "eval", "test", "id00801-movie-01-001.flac"),
        ],
    }
    assert summary["trials_dropped"] == {"cnc_eval_avg": 2, "cnc_eval_concat": 2}
    assert (
        read(save, "trials/eval/enrol.map")
        == "id00800-enroll id00800/singing-01-001\nid00801-enroll id00801/vlog-01-001\n"
    )
    assert "vlog-01-001" not in read(save, "train.csv")
    assert "movie" not in read(save, "trials/eval/cnc_eval_avg.txt")


def test_unknown_trial_entry_is_an_error(corpus, tmp_path):
    trials = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "eval", "lists", "trials.lst")
    with open(trials, "a") as f:
        f.write(
            "id00800-enroll test/id00899-vlog-09-009.wav 0\n"
            "id00999-enroll test/id00800-singing-01-002.wav 0\n"
        )
    with pytest.raises(PreparationError) as err:
        prepare_cnceleb(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert "test/id00899-vlog-09-009.wav" in str(err.value) and "id00999-enroll" in str(err.value)


def test_other_list_path_forms(corpus, tmp_path):
    lists = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "eval", "lists")
    replicas.write_text(
        os.path.join(lists, "trials.lst"),
        "id00800-enroll id00800-singing-01-002.flac target\n"  # bare stem, flac, target/nontarget
        "id00800-enroll id00801/vlog-01-002.flac nontarget\n"  # <spk>/<utt> form, found in eval/test
        "id00801-enroll id00801/vlog-01-001.wav 1\n",  # <spk>/<utt> form only in data/
    )
    replicas.write_text(
        os.path.join(lists, "enroll.map"),
        "id00800-enroll data/id00800/singing-01-001.flac\nid00801-enroll id00801/vlog-01-001\n",
    )
    save = str(tmp_path / "prep")
    prepare_cnceleb(corpus["data_folder"], save, protocols=["avg"], **OPTS)
    assert read(save, "trials/eval/cnc_eval_avg.txt") == (
        "1 id00800-enroll test/id00800-singing-01-002\n"
        "0 id00800-enroll test/id00801-vlog-01-002\n"
        "1 id00801-enroll id00801/vlog-01-001\n"
    )
    assert not os.path.exists(os.path.join(save, "trials/eval/cnc_eval_concat.txt"))


def test_eval_speakers_never_train(corpus, tmp_path):
    dev = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "dev", "dev.lst")
    with open(dev, "a") as f:
        f.write("id00800\n")
    save = str(tmp_path / "prep")
    summary = prepare_cnceleb(corpus["data_folder"], save, **OPTS)
    assert summary["skipped"]["eval_speaker_in_training_list"] == {"count": 1, "first": ["id00800"]}
    assert "id00800" not in read(save, "train.csv") + read(save, "valid.csv")


def test_two_concurrent_preparations(corpus, tmp_path):
    save = str(tmp_path / "prep")
    results = replicas.run_concurrently(
        prepare_cnceleb, {"data_folder": corpus["data_folder"], "save_folder": save, **WRITE}
    )
    assert sorted(r["status"] for r in results) == ["prepared", "skipped"]
    assert read(save, "train.csv") == TRAIN.format(s=save)
    assert read(save, "eval.csv") == EVAL.format(s=save)
    assert sf.info(os.path.join(save, "combined/train/id00000/singing-01-001-comb3.flac")).frames == 9600
    assert not [f for f in os.listdir(save) if f.startswith(".tmp")]


def test_corpus_enrolment_needs_its_folder(corpus, tmp_path):
    import shutil

    enroll = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "eval", "enroll")
    shutil.rmtree(enroll)
    with pytest.raises(PreparationError) as err:
        prepare_cnceleb(corpus["data_folder"], str(tmp_path / "prep"), concat_enrol="corpus", **OPTS)
    assert enroll in str(err.value)
    prepare_cnceleb(corpus["data_folder"], str(tmp_path / "prep"), **WRITE)  # needs no eval/enroll/


def wespeaker_trials(cn1):
    """CNC-Eval-Avg.lst and CNC-Eval-Concat.lst as WeSpeaker's examples/cnceleb/v2 writes them
    (local/prepare_data.sh: awk over trials.lst; local/format_trials_cnceleb.py: enroll.lst's file per model)."""
    lists = os.path.join(cn1, "eval", "lists")
    enroll = dict(line.split() for line in open(os.path.join(lists, "enroll.lst")) if line.strip())
    avg, concat = [], []
    for line in open(os.path.join(lists, "trials.lst")):
        model, test, label = line.split()
        label = "target" if label == "1" else "nontarget"
        avg.append((model, test, label))
        concat.append((enroll[model], test, label))
    return avg, concat


def as_ours(trials):
    labels = {"target": "1", "nontarget": "0"}
    return "".join(f"{labels[lab]} {e.removesuffix('.wav')} {t.removesuffix('.wav')}\n" for e, t, lab in trials)


def test_protocol_splits_as_wespeaker_computes_them(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_cnceleb(corpus["data_folder"], save, **OPTS)
    avg, concat = wespeaker_trials(os.path.join(corpus["data_folder"], "CN-Celeb_flac"))
    assert read(save, "trials/eval_avg/cnc_eval_avg.txt") == as_ours(avg) == AVG
    assert read(save, "trials/eval_concat/cnc_eval_concat.txt") == as_ours(concat)
    assert read(save, "trials/eval_avg/enrol.map") == ENROL_MAP
    assert sorted(os.listdir(os.path.join(save, "trials", "eval_concat"))) == ["cnc_eval_concat.txt"]
    tests = [line for line in EVAL.format(s=save).splitlines() if line.startswith("test/")]
    enrolled = [line for line in EVAL.format(s=save).splitlines()[1:] if line.startswith("id008")]
    assert read(save, "eval_avg.csv").splitlines() == ["ID,duration,wav,spk_id", *enrolled, *tests]
    assert read(save, "eval_concat.csv").splitlines() == [
        "ID,duration,wav,spk_id",
        f"enroll/id00800-enroll,0.400,{CN1}/eval/enroll/id00800-enroll.flac,id00800",
        f"enroll/id00801-enroll,0.400,{CN1}/eval/enroll/id00801-enroll.flac,id00801",
        *tests,
    ]
    assert summary["eval_splits"] == {
        "eval_avg": {"annotation": "eval_avg.csv", "trials": "trials/eval_avg", "utterances": 7, "trials_count": 8},
        "eval_concat": {"annotation": "eval_concat.csv", "trials": "trials/eval_concat", "utterances": 6,
                        "trials_count": 8},
    }
    # until the eval_splits contract lands: the union, with both lists, where the evaluation stage reads today
    assert sorted(os.listdir(os.path.join(save, "trials", "eval"))) == [
        "cnc_eval_avg.txt", "cnc_eval_concat.txt", "enrol.map"]
    assert read(save, "trials/eval/cnc_eval_concat.txt") == as_ours(concat)


def test_list_mode_is_read_by_training_as_the_combined_audio(corpus, tmp_path):
    from speechbrain_ext import data

    save = str(tmp_path / "prep")
    prepare_cnceleb(corpus["data_folder"], save, combine_mode="list", **OPTS)
    dataset = data.load_dataset(os.path.join(save, "train.csv"), corpus["data_folder"])
    data.add_audio(dataset, data.AudioReader(16000))
    dataset.set_output_keys(["id", "sig", "audio_issue", "duration"])
    cn1_data = os.path.join(corpus["data_folder"], "CN-Celeb_flac", "data", "id00001")
    parts = [sf.read(os.path.join(cn1_data, f"interview-01-00{i}.flac"), dtype="float32")[0] for i in (1, 2)]
    for example in dataset:
        assert example["audio_issue"] == ""
        assert example["sig"].shape[0] == round(example["duration"] * 16000)  # the duration the row claims
        if example["id"] == "id00001/interview-01-001-comb2":
            assert np.array_equal(example["sig"].numpy(), np.concatenate(parts))
    crop = data.AudioReader(16000, crop_seconds=0.3, seed=1)  # a training crop spans both segments
    dataset = data.add_audio(data.load_dataset(os.path.join(save, "train.csv"), corpus["data_folder"]), crop)
    dataset.set_output_keys(["id", "sig"])
    sig = next(e["sig"] for e in dataset if e["id"] == "id00001/interview-01-001-comb2")
    start = crop.span(6400, 16000, "id00001/interview-01-001-comb2")[0]
    assert np.array_equal(sig.numpy(), np.concatenate(parts)[start : start + 4800])


def test_appledouble_upper_case_crlf_lists_and_symlinked_roots(corpus, tmp_path):
    root = corpus["data_folder"]
    cn1 = os.path.join(root, "CN-Celeb_flac")
    replicas.add_appledouble(root, (".flac", ".lst", ".map"))
    os.rename(os.path.join(cn1, "data", "id00001", "vlog-01-001.flac"),
              os.path.join(cn1, "data", "id00001", "vlog-01-001.FLAC"))
    replicas.to_crlf(root, (".lst", ".map"))
    link = replicas.symlinked(root, "CN-Celeb2_flac", tmp_path / "cn2_elsewhere")
    save = str(tmp_path / "prep")
    summary = prepare_cnceleb(str(link), save, **WRITE)
    assert sorted(summary["skipped"]) == ["missing"] and summary["skipped"]["missing"]["count"] == 1  # id00003
    assert read(save, "train.csv") == TRAIN.format(s=save).replace("vlog-01-001.flac", "vlog-01-001.FLAC")
    assert read(save, "valid.csv") == VALID.format(s=save)
    assert read(save, "trials/eval_avg/cnc_eval_avg.txt") == AVG
