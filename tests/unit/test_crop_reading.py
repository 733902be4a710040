"""AudioReader reads a training crop from disk (seek + read of its frames), at the offset of the keyed
draw it has always used, and reads a ``wav_list`` manifest row as the concatenation of its segments."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext import data
from speechbrain_ext.seeding import keyed_draw


def reference_crop(path, utt_id, crop_seconds, seed, epoch):
    """The crop of the reader before issue 13: sf.info, the keyed offset, sf.read(start, stop)."""
    info = sf.info(path)
    start, stop = 0, info.frames
    crop = int(round(crop_seconds * info.samplerate))
    if info.frames > crop:
        start = keyed_draw(seed, epoch, utt_id, sep="|") % (info.frames - crop + 1)
        stop = start + crop
    return sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)[0][:, 0]


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_crop_offsets_are_those_of_the_keyed_draw(tmp_path, fmt):
    rng = np.random.default_rng(0)
    reader = data.AudioReader(16000, crop_seconds=0.5, seed=1986)
    for k, frames in enumerate([100, 8000, 8001, 16000, 33333, 160000]):
        path = str(tmp_path / f"u{k}.{fmt}")
        sf.write(path, rng.uniform(-0.5, 0.5, frames).astype("float32"), 16000, subtype="PCM_16")
        for epoch in (0, 1, 7):
            reader.set_epoch(epoch)
            sig, issue = reader(path, f"spk/u{k}")
            assert issue == ""
            expected = reference_crop(path, f"spk/u{k}", 0.5, 1986, epoch)
            assert np.array_equal(sig.numpy(), expected), (fmt, frames, epoch)


def test_a_crop_reads_only_its_frames(tmp_path, monkeypatch):
    path = str(tmp_path / "long.flac")
    sf.write(path, np.zeros(20 * 16000, "float32"), 16000, subtype="PCM_16")
    reads = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    sig, issue = data.AudioReader(16000, crop_seconds=3.0)(path, "u")
    assert issue == "" and sig.shape == (48000,) and reads == [48000]


def test_a_list_is_read_as_the_concatenation_of_its_segments(tmp_path):
    rng = np.random.default_rng(1)
    paths, parts = [], []
    for k, frames in enumerate([3000, 500, 7000]):
        parts.append((rng.uniform(-0.5, 0.5, frames) * 32767).astype("int16"))
        paths.append(str(tmp_path / f"seg{k}.flac"))
        sf.write(paths[-1], parts[-1], 16000, subtype="PCM_16")
    whole = np.concatenate(parts).astype("float32") / 32768
    sig, issue = data.AudioReader(16000)(paths, "u")
    assert issue == "" and np.array_equal(sig.numpy(), whole)
    reader = data.AudioReader(16000, crop_seconds=0.25, seed=5)  # 4000 frames: spans segments for most draws
    spans = set()
    for epoch in range(20):
        reader.set_epoch(epoch)
        start = keyed_draw(5, epoch, "u", sep="|") % (len(whole) - 4000 + 1)
        sig, issue = reader(paths, "u")
        assert issue == "" and np.array_equal(sig.numpy(), whole[start : start + 4000])
        spans.add((start < 3000, start + 4000 > 3500))
    assert (True, True) in spans  # some crops cross the segment boundaries


def test_a_bad_segment_names_its_path(tmp_path):
    good = str(tmp_path / "good.wav")
    sf.write(good, np.zeros(1600, "float32"), 16000)
    other_rate = str(tmp_path / "other.wav")
    sf.write(other_rate, np.zeros(800, "float32"), 8000)
    sig, issue = data.AudioReader(16000)([good, str(tmp_path / "absent.wav")], "u")
    assert sig.numel() == 0 and issue.startswith("error: cannot open (file not found)") and "absent.wav" in issue
    sig, issue = data.AudioReader(16000)([good, other_rate], "u")
    assert sig.numel() == 0 and "different rates" in issue and "other.wav" in issue


def test_a_wav_list_manifest_reads_its_segments(tmp_path):
    segs = []
    for k, value in enumerate((0.25, -0.5)):
        segs.append(f"seg{k}.wav")
        sf.write(str(tmp_path / segs[-1]), np.full(1600, value, "float32"), 16000)
    manifest = tmp_path / "train.csv"
    manifest.write_text(
        "ID,duration,wav,spk_id,wav_list\n"
        f"u1,0.200,$data_root/{segs[0]},s1,$data_root/{segs[0]};$data_root/{segs[1]}\n"
        f"u2,0.100,$data_root/{segs[1]},s1,$data_root/{segs[1]}\n"
    )
    dataset = data.add_audio(data.load_dataset(str(manifest), str(tmp_path)), data.AudioReader(16000))
    dataset.set_output_keys(["id", "sig", "audio_issue"])
    first, second = dataset[0], dataset[1]
    assert first["sig"].shape == (3200,) and second["sig"].shape == (1600,)
    assert torch.equal(first["sig"][:1600], torch.full((1600,), 0.25))
    assert torch.equal(first["sig"][1600:], torch.full((1600,), -0.5))
    assert os.path.isfile(str(tmp_path / segs[0]))
