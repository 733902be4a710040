"""data_prep.esd on a miniature ESD replica (tests/replicas.py)."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep.common import PreparationError  # noqa: E402
from data_prep.esd import prepare_esd  # noqa: E402

KEYS = {
    "打开 空调。": "打开 空调",
    "今天 天气 很好！": "今天 天气 很好",
    "Author of the danger trail.": "author of the danger trail",
    "Going along slushy country roads.": "going along slushy country roads",
}
EMOTION_OF_BLOCK = ["neutral", "angry", "happy", "sad", "surprise"]
TEST_SAD = """1 0009_000002 0009_001051
0 0020_000001 0009_001051
1 0010_000001 0010_001052
0 0020_000001 0010_001052
1 0019_000001 0019_001052
0 0009_000002 0019_001052
1 0020_000001 0020_001052
0 0019_000001 0020_001052
"""


read = replicas.read_text
corpus = replicas.replica_fixture(replicas.make_esd)


def expected_rows(info, speakers):
    rows = []
    for spk in speakers:
        for utt in info["utterances"][spk]:
            emotion = EMOTION_OF_BLOCK[(int(utt[5:]) - 1) // 350]
            wav = f"{spk}/{emotion.capitalize()}/{utt}.wav"
            rows.append((utt, wav, spk, emotion, KEYS[info["sentences"][utt]]))
    return replicas.emotion_manifest(rows)


def test_default_split_manifests_and_trials(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_esd(corpus["data_folder"], save, nontargets_per_target=1)
    assert summary["speakers"] == {
        "train": ["0001", "0003", "0004", "0005", "0006", "0007", "0008"]
        + ["0011", "0012", "0013", "0014", "0015", "0016", "0017"],
        "valid": ["0002", "0018"],  # one per language
        "eval": ["0009", "0010", "0019", "0020"],  # the last two of each language
    }
    assert read(save, "eval.csv") == expected_rows(corpus, ["0009", "0010", "0019", "0020"])
    assert read(save, "valid.csv") == expected_rows(corpus, ["0002", "0018"])
    assert read(save, "train.csv") == expected_rows(corpus, summary["speakers"]["train"])
    assert read(save, "trials/eval/test_sad.txt") == TEST_SAD
    assert sorted(os.listdir(os.path.join(save, "trials", "eval"))) == [
        "all.txt",
        "neutral_emotional.txt",
        "neutral_neutral.txt",
        "same_emotion.txt",
        "test_angry.txt",
        "test_happy.txt",
        "test_sad.txt",
        "test_surprise.txt",
    ]
    assert os.path.exists(os.path.join(save, "trials", "valid", "all.txt"))
    # every eval trial: enrol and test never share a sentence for the same speaker
    text = {line.split(",")[0]: line.split(",")[5] for line in read(save, "eval.csv").splitlines()[1:]}
    trials = [line.split() for line in read(save, "trials/eval/all.txt").splitlines()]
    assert len(trials) == 4 * 5 * 5 * 2  # speakers x test utts x enrol emotions x (1 target + 1 non-target)
    for label, enrol, test in trials:
        assert (label == "1") == (enrol[:4] == test[:4])
        if label == "1":
            assert text[enrol] != text[test]
    assert summary["skipped"] == {} and summary["transcript_lines_unparsed"] == 0


def test_transcripts_in_any_encoding(corpus, tmp_path):
    save = str(tmp_path / "prep")
    prepare_esd(corpus["data_folder"], save)
    train = read(save, "train.csv")
    assert (
        "0001_000001,0.200,$data_root/0001/Neutral/0001_000001.wav,0001,neutral,打开 空调\n" in train
    )  # GB2312
    assert (
        "0003_001402,0.200,$data_root/0003/Surprise/0003_001402.wav,0003,surprise,今天 天气 很好\n" in train
    )  # UTF-16
    assert (
        "0016_000351,0.200,$data_root/0016/Angry/0016_000351.wav,0016,angry,author of the danger trail\n"
        in train
    )



def test_latin1_english_transcripts_are_never_read_as_gb18030(tmp_path):
    # "naïve" in Latin-1 is also valid GB18030 ("na飗e"); the English 0016/0017 transcripts are Latin-1
    info = replicas.make_esd(tmp_path / "esd", speakers=[f"{i:04d}" for i in range(11, 21)], non_ascii=True)
    save = str(tmp_path / "prep")
    summary = prepare_esd(info["data_folder"], save, languages=["en"])
    assert summary["transcript_encodings"]["0016"] == "cp1252"
    assert summary["transcript_encodings"]["0011"] == "utf-8"
    rows = read(save, "train.csv") + read(save, "valid.csv") + read(save, "eval.csv")
    assert "0016_000003,0.200,$data_root/0016/Neutral/0016_000003.wav,0016,neutral,a naïve idea\n" in rows
    assert "0017_001403,0.200,$data_root/0017/Surprise/0017_001403.wav,0017,surprise,a naïve idea\n" in rows
    assert "飗" not in rows

def test_one_language(corpus, tmp_path):
    save = str(tmp_path / "prep")
    summary = prepare_esd(corpus["data_folder"], save, languages=["en"])
    assert summary["speakers"]["eval"] == ["0019", "0020"]
    assert summary["speakers"]["valid"] == ["0011", "0018"]
    assert summary["train"] == {"utterances": 60, "speakers": 6}
    with pytest.raises(ValueError):
        prepare_esd(corpus["data_folder"], save, languages=["en"], eval_speakers=["0001"])


@pytest.mark.parametrize("relative", ["0011/Angry", "0011/0011.txt", "0020"])
def test_missing_folder_or_transcript_names_path(corpus, tmp_path, relative):
    path = os.path.join(corpus["data_folder"], relative)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    with pytest.raises(PreparationError) as err:
        prepare_esd(corpus["data_folder"], str(tmp_path / "prep"))
    assert path in str(err.value) and "ESD (Emotional Speech Dataset" in str(err.value)


def test_absent_unreadable_and_misnamed_files_are_counted(corpus, tmp_path):
    root = corpus["data_folder"]
    os.remove(os.path.join(root, "0011", "Angry", "0011_000352.wav"))  # listed in 0011.txt
    with open(os.path.join(root, "0012", "Neutral", "0012_000001.wav"), "wb") as f:
        f.write(b"RIFF....WAVEfmt broken")
    replicas.write_audio(os.path.join(root, "0013", "Sad", "0013_extra.wav"))
    with open(os.path.join(root, "0014", "0014.txt"), "a", encoding="utf-8") as f:
        f.write("this line has no tabs\n")
    save = str(tmp_path / "prep")
    summary = prepare_esd(corpus["data_folder"], save)
    assert summary["skipped"] == {
        "missing": {
            "count": 1,
            "first": [os.path.join(root, "0011", "0011_000352.wav (listed in 0011.txt)")],
        },
        "unparsed_name": {"count": 1, "first": [os.path.join(root, "0013", "Sad", "0013_extra.wav")]},
        "unreadable": {"count": 1, "first": [os.path.join(root, "0012", "Neutral", "0012_000001.wav")]},
    }
    assert summary["transcript_lines_unparsed"] == 1
    assert "0012_000001," not in read(save, "train.csv")


def test_archive_layout_with_split_subfolders_and_nested_root(corpus, tmp_path):
    root = corpus["data_folder"]
    emo_dir = os.path.join(root, "0011", "Happy")
    os.makedirs(os.path.join(emo_dir, "train"))
    os.makedirs(os.path.join(emo_dir, "test"))
    shutil.move(os.path.join(emo_dir, "0011_000701.wav"), os.path.join(emo_dir, "train", "0011_000701.wav"))
    shutil.move(os.path.join(emo_dir, "0011_000702.wav"), os.path.join(emo_dir, "test", "0011_000702.wav"))
    outer = tmp_path / "outer"
    shutil.move(root, str(outer / "Emotion Speech Dataset"))
    save = str(tmp_path / "prep")
    prepare_esd(str(outer), save)
    train = read(save, "train.csv")
    prefix = "$data_root/Emotion Speech Dataset/0011/Happy"
    assert (
        f"0011_000701,0.200,{prefix}/train/0011_000701.wav,0011,happy,author of the danger trail\n" in train
    )
    assert (
        f"0011_000702,0.200,{prefix}/test/0011_000702.wav,0011,happy,going along slushy country roads\n"
        in train
    )


def test_idempotent_then_emotion_subset(corpus, tmp_path):
    save = str(tmp_path / "prep")
    replicas.prepare_twice(prepare_esd, corpus["data_folder"], save)
    summary = prepare_esd(corpus["data_folder"], save, emotions=["neutral", "sad"])
    assert summary["status"] == "prepared" and summary["emotions"] == ["neutral", "sad"]
    assert summary["skipped"]["filtered_emotion"]["count"] == 20 * 2 * 3
    assert sorted(os.listdir(os.path.join(save, "trials", "eval"))) == [
        "all.txt",
        "neutral_emotional.txt",
        "neutral_neutral.txt",
        "same_emotion.txt",
        "test_sad.txt",
    ]
    with pytest.raises(PreparationError, match="unknown emotion"):
        prepare_esd(corpus["data_folder"], save, emotions=["calm"])


def parallel_index(utt):
    return (int(utt[5:]) - 1) % 350


def same_sentence_targets(save, condition="all", split="eval"):
    trials = [line.split() for line in read(save, f"trials/{split}/{condition}.txt").splitlines()]
    return [t for t in trials if t[0] == "1" and parallel_index(t[1]) == parallel_index(t[2])]


def test_space_instead_of_tab_on_a_real_utterance_is_repaired(tmp_path):
    # issue 13: 0015_000352's line broken, eval speakers 0015 and 0019, seed 2 gave "1 0015_000352 0015_000002"
    info = replicas.make_esd(tmp_path / "corpus", space_after_id=["0015_000352"])
    save = str(tmp_path / "prep")
    summary = prepare_esd(info["data_folder"], save, eval_speakers=["0015", "0019"], seed=2)
    assert same_sentence_targets(save) == []
    assert "0015_000352,0.200,$data_root/0015/Angry/0015_000352.wav,0015,angry,going along slushy country roads\n" in (
        read(save, "eval.csv")
    )
    assert summary["transcript_lines_repaired"] == 1 and summary["transcript_lines_unparsed"] == 0
    assert summary["sentence_from_parallel"] == 0 and summary["skipped"] == {}
    assert summary["eval"] == {"utterances": 20, "speakers": 2}


def test_published_broken_lines_are_repaired(tmp_path):
    info = replicas.make_esd(tmp_path / "corpus", space_after_id=replicas.ESD_PUBLISHED_SPACE_AFTER_ID)
    save = str(tmp_path / "prep")
    summary = prepare_esd(info["data_folder"], save, eval_speakers=["0012", "0013", "0015"], n_valid_speakers=0)
    assert summary["transcript_lines_repaired"] == 3 and summary["parallel_text_mismatch"] == 0
    eval_rows = read(save, "eval.csv")
    assert "0015_000137,0.200,$data_root/0015/Neutral/0015_000137.wav,0015,neutral,parallel sentence 137 of 0015\n" in (
        eval_rows
    )
    assert summary["eval"]["utterances"] == 3 * 15
    for condition in ("all", "test_sad", "neutral_neutral"):
        assert same_sentence_targets(save, condition) == []


def test_unknown_sentence_takes_its_parallel_group_or_is_skipped(corpus, tmp_path):
    root = corpus["data_folder"]
    path = os.path.join(root, "0015", "0015.txt")
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("0015_000352")]  # one line of group 2 gone
    kept = [line for line in kept if parallel_index(line[:11]) != 0]  # every line of group 1 gone
    kept.append("0015_000352\n")  # an ID alone: unparsed
    replicas.write_text(path, "".join(kept))
    save = str(tmp_path / "prep")
    summary = prepare_esd(root, save, eval_speakers=["0015", "0019"], seed=2, n_valid_speakers=0)
    assert summary["sentence_from_parallel"] == 1 and summary["transcript_lines_unparsed"] == 1
    assert summary["skipped"]["no_transcript"]["count"] == 5
    group_1 = [
        os.path.join(root, "0015", e, f"0015_{350 * k + 1:06d}.wav") for k, e in enumerate(replicas.ESD_EMOTIONS)
    ]
    assert summary["skipped"]["no_transcript"]["first"] == group_1
    eval_rows = read(save, "eval.csv")
    assert "0015_000001," not in eval_rows and summary["eval"]["utterances"] == 15
    assert "0015_000352,0.200,$data_root/0015/Angry/0015_000352.wav,0015,angry,going along slushy country roads\n" in (
        eval_rows
    )
    assert same_sentence_targets(save) == []


@pytest.mark.parametrize("encoding", ["utf-32", "cp500"])  # UTF-32, EBCDIC: no encoding ESD uses
def test_transcript_in_an_unknown_encoding_is_named_and_nothing_prepared_is_lost(corpus, tmp_path, encoding):
    root = corpus["data_folder"]
    save = str(tmp_path / "prep")
    prepare_esd(root, save)
    before = {name: read(save, name) for name in ("train.csv", "valid.csv", "eval.csv", "trials/eval/all.txt")}
    path = os.path.join(root, "0016", "0016.txt")
    text = open(path, encoding="latin-1").read()
    with open(path, "wb") as f:
        f.write(text.encode(encoding))
    with pytest.raises(PreparationError, match="no line reads as") as err:
        prepare_esd(root, save, seed=7)
    assert path in str(err.value) and "UTF-8" in str(err.value)
    assert {name: read(save, name) for name in before} == before


def test_appledouble_symlinked_root_and_upper_case_extension(corpus, tmp_path):
    root = corpus["data_folder"]
    with open(os.path.join(root, "0011", "Neutral", "._0011_000001.wav"), "wb") as f:
        f.write(b"\x00\x05\x16\x07AppleDouble resource fork")
    with open(os.path.join(root, "0011", ".DS_Store"), "wb") as f:
        f.write(b"Bud1")
    sad = os.path.join(root, "0012", "Sad")
    os.rename(os.path.join(sad, "0012_001051.wav"), os.path.join(sad, "0012_001051.WAV"))
    link = tmp_path / "esd_link"
    os.symlink(root, link)
    save = str(tmp_path / "prep")
    summary = prepare_esd(str(link), save, languages=["en"])
    assert summary["skipped"] == {}
    assert summary["train"]["utterances"] + summary["valid"]["utterances"] + summary["eval"]["utterances"] == 100
    assert "0012_001051,0.200,$data_root/0012/Sad/0012_001051.WAV,0012,sad," in read(save, "train.csv") + read(
        save, "valid.csv"
    )
