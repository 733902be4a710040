"""data_prep.noise: MUSAN / RIRS_NOISES manifests that SpeechBrain's AddNoise and AddReverb read."""

import csv
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.common import PreparationError
from data_prep.noise import prepare_noise, prepare_recipe_data


def write(path, seconds, rate=16000, channels=1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(len(path))
    data = (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype("float32")
    sf.write(path, data if channels > 1 else data[:, 0], rate, subtype="PCM_16")
    return path


@pytest.fixture
def corpora(tmp_path):
    root = tmp_path / "corpora"
    write(str(root / "musan" / "noise" / "free-sound" / "noise-free-sound-0000.wav"), 1.0)
    write(str(root / "musan" / "music" / "fma" / "music-fma-0000.wav"), 12.0)  # long: cut into 5 s segments
    write(str(root / "musan" / "speech" / "librivox" / "speech-librivox-0000.wav"), 2.0)
    write(str(root / "musan" / "speech" / "librivox" / "speech-8k.wav"), 1.0, rate=8000)  # wrong rate: skipped
    rirs = root / "RIRS_NOISES" / "simulated_rirs"
    write(str(rirs / "smallroom" / "Room001" / "Room001-00001.wav"), 0.3)
    write(str(rirs / "mediumroom" / "Room002" / "Room002-00001.wav"), 0.4, channels=2)  # first channel kept
    write(str(root / "RIRS_NOISES" / "pointsource_noises" / "noise-01.wav"), 1.0)  # not a chosen subset
    return root


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_manifests_segments_skips_and_idempotence(corpora, tmp_path):
    out = str(tmp_path / "aug")
    summary = prepare_noise(str(corpora / "musan"), str(corpora / "RIRS_NOISES"), out)
    assert summary["status"] == "prepared"
    noise = read_csv(os.path.join(out, "noise.csv"))
    assert list(noise[0]) == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    ids = [row["ID"] for row in noise]
    assert "noise/noise/free-sound/noise-free-sound-0000" in ids
    music = [row for row in noise if row["ID"].startswith("noise/music/")]
    assert len(music) == 3 and all(float(r["duration"]) <= 5.0 for r in music)
    assert sum(float(r["duration"]) for r in music) == pytest.approx(12.0, abs=1e-3)
    assert all(os.path.isabs(r["wav"]) and os.path.isfile(r["wav"]) for r in noise)
    assert summary["skipped"]["sample_rate_not_16000"]["count"] == 1
    rirs = read_csv(os.path.join(out, "rir.csv"))
    assert len(rirs) == 2 and not any("pointsource" in r["wav"] for r in rirs)
    stereo = [r for r in rirs if "mediumroom" in r["ID"]][0]
    assert stereo["ID"].endswith("-ch0") and sf.info(stereo["wav"]).channels == 1
    assert prepare_noise(str(corpora / "musan"), str(corpora / "RIRS_NOISES"), out)["status"] == "skipped"


def test_speechbrain_augmenters_read_the_manifests(corpora, tmp_path):
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    out = str(tmp_path / "aug")
    prepare_noise(str(corpora), str(corpora), out)  # folders holding musan/ and RIRS_NOISES/ are accepted
    torch.manual_seed(0)
    clean = 0.1 * torch.randn(4, 16000)
    lens = torch.ones(4)
    noisy = AddNoise(csv_file=os.path.join(out, "noise.csv"), snr_low=0, snr_high=0, num_workers=0)(clean, lens)
    reverb = AddReverb(csv_file=os.path.join(out, "rir.csv"), num_workers=0)(clean)
    for augmented in (noisy, reverb):
        assert augmented.shape == clean.shape and torch.isfinite(augmented).all()
        assert not torch.allclose(augmented, clean)


@pytest.mark.parametrize(
    "musan,rir,expected",
    [
        ("nowhere", "RIRS_NOISES", "musan_folder: folder not found: {root}/nowhere"),
        ("musan", "nowhere", "rir_folder: folder not found: {root}/nowhere"),
        (None, "RIRS_NOISES", "musan_folder is not set"),
    ],
)
def test_missing_folders_are_named(corpora, tmp_path, musan, rir, expected):
    musan_path = None if musan is None else str(corpora / musan)
    with pytest.raises(PreparationError) as err:
        prepare_noise(musan_path, str(corpora / rir), str(tmp_path / "aug"))
    assert expected.format(root=corpora) in str(err.value)
    assert "--wav_augment null" in str(err.value)


def test_missing_subset_folder_is_named(corpora, tmp_path):
    os.rename(corpora / "musan" / "speech", corpora / "speech_moved")
    with pytest.raises(PreparationError, match=f"missing folder {corpora}/musan/speech "):
        prepare_noise(str(corpora), str(corpora), str(tmp_path / "aug"))


def test_recipe_preparation_skips_the_noise_without_augmentation(tmp_path):
    calls = []

    def corpus(data_folder, save_folder, seed=0):
        calls.append((data_folder, save_folder, seed))
        return {"status": "prepared"}

    def noise():
        raise AssertionError("no noise preparation without augmentation")

    out = prepare_recipe_data(corpus, "/c", "/s", prepare_noise=noise, augment=None, corpus_options={"seed": 3})
    assert out == {"corpus": {"status": "prepared"}} and calls == [("/c", "/s", 3)]
    out = prepare_recipe_data(corpus, "/c", "/s", prepare_noise=lambda: "done", augment=object())
    assert out["noise"] == "done"
