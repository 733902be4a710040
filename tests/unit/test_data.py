import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_ext import data as sx_data


def write_manifest(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "lines, message",
    [
        (["ID,duration,wav"], r"line 1: missing column\(s\) \['spk_id'\]"),
        (
            ["ID,duration,wav,spk_id", "a,1,x.wav,s", "b,1,y.wav,s", "a,2,z.wav,s"],
            r"line 4: duplicate ID 'a'.*line 2",
        ),
        (["ID,duration,wav,spk_id", "a,one,x.wav,s"], r"line 2: duration 'one' of 'a' is not a number"),
        (["ID,duration,wav,spk_id", "a,nan,x.wav,s"], r"line 2: duration nan of 'a' is invalid"),
        (["ID,duration,wav,spk_id", "a,1,x.wav"], r"line 2: 3 fields, header has 4"),
        (["ID,duration,wav,spk_id"], r"lists no utterance"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path, lines, message):
    path = write_manifest(tmp_path / "m.csv", lines)
    with pytest.raises(sx_data.ManifestError, match=message):
        sx_data.check_manifest(path)


def test_missing_and_empty_manifest(tmp_path):
    with pytest.raises(sx_data.ManifestError, match="manifest not found"):
        sx_data.check_manifest(str(tmp_path / "nope.csv"))
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(sx_data.ManifestError, match="empty manifest"):
        sx_data.check_manifest(str(tmp_path / "e.csv"))


@pytest.fixture
def audio_files(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    files["good"] = tmp_path / "good.wav"
    sf.write(files["good"], rng.standard_normal(32000).astype("float32") * 0.1, 16000)
    files["rate8k"] = tmp_path / "rate8k.wav"
    sf.write(files["rate8k"], rng.standard_normal(8000).astype("float32") * 0.1, 8000)
    files["stereo"] = tmp_path / "stereo.wav"
    sf.write(files["stereo"], rng.standard_normal((16000, 2)).astype("float32") * 0.1, 16000)
    files["zero"] = tmp_path / "zero.wav"
    sf.write(files["zero"], np.zeros(0, dtype="float32"), 16000)
    files["nan"] = tmp_path / "nan.wav"
    sf.write(files["nan"], np.full(1600, np.nan, dtype="float32"), 16000, subtype="FLOAT")
    files["corrupt"] = tmp_path / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x00\x01garbage" * 20)
    files["truncated"] = tmp_path / "truncated.wav"
    files["truncated"].write_bytes(files["good"].read_bytes()[:30])
    files["missing"] = tmp_path / "missing.wav"
    return files


@pytest.mark.parametrize(
    "name, issue",
    [
        ("good", ""),
        ("rate8k", "resampled"),
        ("stereo", "downmixed"),
        ("zero", "error: zero-length"),
        ("nan", "error: non-finite"),
        ("corrupt", "error: cannot open"),
        ("truncated", "error: cannot open"),
        ("missing", "error: cannot open"),
    ],
)
def test_audio_reader_turns_bad_files_into_named_issues(audio_files, name, issue):
    sig, got = sx_data.AudioReader(16000)(str(audio_files[name]), name)
    assert got.startswith(issue)
    if issue.startswith("error"):
        assert sig.numel() == 0 and str(audio_files[name]) in got
    else:
        assert sig.dim() == 1 and sig.numel() > 0 and torch.isfinite(sig).all()


def test_resampled_length_and_crop_are_deterministic_per_epoch(audio_files):
    sig, _ = sx_data.AudioReader(16000)(str(audio_files["rate8k"]))
    assert sig.shape == (16000,)
    reader = sx_data.AudioReader(16000, crop_seconds=0.5, seed=3)
    a, _ = reader(str(audio_files["good"]), "u")
    b, _ = reader(str(audio_files["good"]), "u")
    assert a.shape == (8000,) and torch.equal(a, b)
    reader.set_epoch(1)
    crops = {tuple(reader(str(audio_files["good"]), "u")[0][:4].tolist()) for _ in range(2)}
    assert len(crops) == 1 and not torch.equal(reader(str(audio_files["good"]), "u")[0], a)


def test_crop_is_a_contiguous_segment(tmp_path):
    path = tmp_path / "ramp.wav"
    sf.write(path, (np.arange(32000) / 32000).astype("float32"), 16000, subtype="FLOAT")
    crop, _ = sx_data.AudioReader(16000, crop_seconds=0.5, seed=1)(str(path), "u")
    start = int(round(float(crop[0]) * 32000))
    assert torch.allclose(crop, torch.arange(start, start + 8000) / 32000)


def test_short_file_is_returned_whole_under_crop(audio_files):
    sig, issue = sx_data.AudioReader(16000, crop_seconds=5.0)(str(audio_files["good"]), "u")
    assert sig.shape == (32000,) and issue == ""


def test_collate_drops_bad_examples_and_counter_tracks_share():
    examples = [
        {"id": "a", "sig": torch.ones(4), "audio_issue": ""},
        {"id": "b", "sig": torch.zeros(0), "audio_issue": "error: zero-length audio (b.wav)"},
        {"id": "c", "sig": torch.ones(2), "audio_issue": "resampled"},
    ]
    batch = sx_data.collate_skipping(examples)
    assert batch.id == ["a", "c"]
    wavs, lens = batch.sig
    assert wavs.shape == (2, 4) and lens.tolist() == [1.0, 0.5]
    counter = sx_data.AudioIssueCounter()
    counter.update(batch.all_issues, batch.all_ids)
    assert (counter.seen, counter.skipped, counter.resampled) == (3, 1, 1)
    assert counter.first_errors == ["b: zero-length audio (b.wav)"]
    empty = sx_data.collate_skipping(examples[1:2])
    assert empty.batchsize == 0 and empty.all_ids == ["b"]


def test_label_encoder_mismatch_names_both_numbers(tmp_path):
    ds = DynamicItemDataset({"a": {"spk_id": "s1"}, "b": {"spk_id": "s2"}, "c": {"spk_id": "s3"}})
    with pytest.raises(sx_data.ManifestError, match="has 3 speakers but the hparams set n_speakers=5"):
        sx_data.speaker_label_encoder(ds, str(tmp_path / "enc.txt"), expected=5)


def test_manifest_column_error_names_column():
    ds = DynamicItemDataset({"a": {"spk_id": "s1"}})
    with pytest.raises(sx_data.ManifestError, match="no column 'emotion'.*'a'"):
        sx_data.manifest_column(ds, "emotion")
