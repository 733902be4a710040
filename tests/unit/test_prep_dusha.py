"""data_prep.dusha on a miniature Dusha crowd replica (tests/replicas.py)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.common import PreparationError  # noqa: E402
from data_prep.dusha import prepare_dusha  # noqa: E402

OPTS = {"n_valid_speakers": 2, "nontargets_per_target": 1}
TEST_ANGRY = """1 d0neu000000000000000000000000 d1ang000000000000000000000000
0 e1neu000000000000000000000000 d1ang000000000000000000000000
1 e1neu000000000000000000000000 e0ang000000000000000000000000
0 d0neu000000000000000000000000 e0ang000000000000000000000000
"""


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_dusha)


def manifest(audios, speakers):
    return replicas.emotion_manifest(
        (h, f"{subset}/wavs/{h}.wav", spk, emo, text)
        for h, (subset, spk, emo, text) in audios.items()
        if spk in speakers
    )


def test_manifests_and_trials(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_dusha(corpus["data_folder"], save, **OPTS)
    assert summary["speakers"] == {
        "train": ["spk_c"],
        "valid": ["spk_a", "spk_b"],
        "eval": ["spk_d", "spk_e"],
    }
    assert read(save, "eval.csv") == manifest(corpus["audios"], {"spk_d", "spk_e"})
    assert read(save, "valid.csv") == manifest(corpus["audios"], {"spk_a", "spk_b"})
    assert read(save, "train.csv") == manifest(corpus["audios"], {"spk_c"})
    assert read(save, "trials/eval/test_angry.txt") == TEST_ANGRY
    assert summary["skipped"] == {} and summary["crowd_test_speakers_in_crowd_train"] == 0


def test_rows_without_labels_absent_audio_and_conflicts_are_counted(corpus, tmp_path):
    root = corpus["data_folder"]
    path = os.path.join(root, "crowd_train", "raw_crowd_train.jsonl")
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    rows[2]["speaker_emo"] = "sad"  # second audio of spk_a: its 2nd annotation row disagrees
    rows.append({**rows[0], "hash_id": "nolabel", "speaker_emo": None})
    rows.append({**rows[0], "hash_id": "nospeaker", "source_id": ""})
    rows.append({**rows[0], "hash_id": "absent", "audio_path": "wavs/absent.wav"})
    replicas.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    save = str(tmp_path / "prep")
    summary = prepare_dusha(root, save, **OPTS)
    assert summary["skipped"] == {
        "conflicting_rows": {"count": 1, "first": [rows[2]["hash_id"]]},
        "missing": {"count": 1, "first": [os.path.join(root, "crowd_train", "wavs", "absent.wav")]},
        "no_source_id": {"count": 1, "first": ["nospeaker"]},
        "no_speaker_emo": {"count": 1, "first": ["nolabel"]},
    }
    assert summary["train"]["utterances"] + summary["valid"]["utterances"] == 12


def test_missing_markup_or_column_is_an_error(corpus, tmp_path):
    root = corpus["data_folder"]
    tsv = os.path.join(root, "crowd_test", "raw_crowd_test.tsv")
    lines = open(tsv, encoding="utf-8").read().splitlines()
    header = lines[0].split("\t")
    keep = [i for i, c in enumerate(header) if c != "source_id"]
    replicas.write_text(tsv, "".join("\t".join(line.split("\t")[i] for i in keep) + "\n" for line in lines))
    with pytest.raises(PreparationError) as err:
        prepare_dusha(root, str(tmp_path / "prep"), **OPTS)
    assert tsv in str(err.value) and "'source_id'" in str(err.value)
    os.remove(tsv)
    with pytest.raises(PreparationError) as err:
        prepare_dusha(root, str(tmp_path / "prep"), **OPTS)
    assert os.path.join(root, "crowd_test", "raw_crowd_test.jsonl") in str(err.value)
    assert "Dusha crowd" in str(err.value)


def test_seeded_eval_speakers_without_crowd_test(corpus, tmp_path):
    save = str(tmp_path / "prep")
    kwargs = {"subsets": ["crowd_train"], "n_eval_speakers": 2, "n_valid_speakers": 0}
    summary = prepare_dusha(corpus["data_folder"], save, **kwargs)
    assert summary["speakers"]["valid"] == []
    assert sorted(summary["speakers"]["eval"] + summary["speakers"]["train"]) == ["spk_a", "spk_b", "spk_c"]
    assert len(summary["speakers"]["eval"]) == 2
    assert (
        prepare_dusha(corpus["data_folder"], str(tmp_path / "again"), **kwargs)["speakers"]
        == summary["speakers"]
    )
    with pytest.raises(ValueError):
        prepare_dusha(corpus["data_folder"], save, subsets=["crowd_train"])


def test_idempotent_then_option_change(corpus, tmp_path):
    save = str(tmp_path / "prep")
    replicas.prepare_twice(prepare_dusha, corpus["data_folder"], save, **OPTS)
    summary = prepare_dusha(
        corpus["data_folder"], save, **{**OPTS, "emotions": ["neutral", "angry"], "seed": 7}
    )
    assert summary["status"] == "prepared"


def test_missing_wavs_folder_names_path(corpus, tmp_path):
    import shutil

    wavs = os.path.join(corpus["data_folder"], "crowd_train", "wavs")
    shutil.rmtree(wavs)
    with pytest.raises(PreparationError) as err:
        prepare_dusha(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert wavs in str(err.value)


def test_crowd_folder_reordered_columns_crlf_and_empty_source_id(tmp_path):
    columns = tuple(reversed(replicas.DUSHA_COLUMNS))
    info = replicas.make_dusha(tmp_path / "dusha", crowd_folder=True, tsv_columns=columns)
    tsv = os.path.join(info["crowd"], "crowd_test", "raw_crowd_test.tsv")
    lines = open(tsv, encoding="utf-8").read().splitlines()
    spk = columns.index("source_id")
    emptied = lines[1].split("\t")
    emptied[spk] = ""
    lines[1] = lines[2] = "\t".join(emptied)  # both annotation rows of spk_d's first audio
    replicas.write_text(tsv, "\r\n".join(lines) + "\r\n")
    expected = replicas.emotion_manifest(
        (h, f"{subset}/wavs/{h}.wav", s, emo, text)
        for h, (subset, s, emo, text) in info["audios"].items()
        if s in ("spk_d", "spk_e") and h != emptied[columns.index("hash_id")]
    )
    for data_folder in (info["crowd"], info["data_folder"]):  # the crowd/ folder, or the folder holding it
        save = str(tmp_path / os.path.basename(data_folder) / "prep")
        summary = prepare_dusha(data_folder, save, **OPTS)
        assert summary["skipped"] == {"no_source_id": {"count": 1, "first": [emptied[columns.index("hash_id")]]}}
        prefix = "$data_root/" if data_folder == info["crowd"] else "$data_root/crowd/"
        assert read(save, "eval.csv") == expected.replace("$data_root/", prefix)


def test_tsv_missing_a_column_or_a_field_and_nothing_prepared_is_lost(corpus, tmp_path):
    root = corpus["data_folder"]
    save = str(tmp_path / "prep")
    prepare_dusha(root, save, **OPTS)
    before = {name: read(save, name) for name in ("train.csv", "valid.csv", "eval.csv", "trials/eval/all.txt")}
    tsv = os.path.join(root, "crowd_test", "raw_crowd_test.tsv")
    lines = open(tsv, encoding="utf-8").read().splitlines()
    replicas.write_text(tsv, "\n".join(lines[:3] + [lines[3].rsplit("\t", 2)[0]] + lines[4:]) + "\n")
    summary = prepare_dusha(root, str(tmp_path / "short"), **OPTS)
    assert summary["skipped"]["short_row"] == {"count": 1, "first": [f"{tsv}:4"]}
    header = lines[0].split("\t")
    keep = [i for i, c in enumerate(header) if c != "speaker_emo"]
    replicas.write_text(tsv, "".join("\t".join(line.split("\t")[i] for i in keep) + "\n" for line in lines))
    with pytest.raises(PreparationError, match="missing column 'speaker_emo'") as err:
        prepare_dusha(root, save, **{**OPTS, "seed": 5})
    assert tsv in str(err.value)
    assert {name: read(save, name) for name in before} == before


def test_jsonl_row_without_a_required_key_is_a_counted_skip_and_a_non_object_is_named(corpus, tmp_path):
    jsonl = os.path.join(corpus["data_folder"], "crowd_train", "raw_crowd_train.jsonl")
    lines = open(jsonl, encoding="utf-8").read().splitlines()
    row = json.loads(lines[4])
    del row["audio_path"]  # a later row without a required key used to raise a bare KeyError
    replicas.write_text(jsonl, "\n".join(lines[:4] + [json.dumps(row, ensure_ascii=False)] + lines[5:]) + "\n")
    summary = prepare_dusha(corpus["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["skipped"]["short_row"] == {"count": 1, "first": [f"{jsonl}:5"]}
    replicas.write_text(jsonl, "\n".join(lines[:2] + ['["not", "an", "object"]'] + lines[2:]) + "\n")
    with pytest.raises(PreparationError, match="not a JSON object") as err:
        prepare_dusha(corpus["data_folder"], str(tmp_path / "again"), **OPTS)
    assert f"{jsonl}:3" in str(err.value)
