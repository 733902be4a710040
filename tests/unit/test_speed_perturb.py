"""speechbrain_ext.speed_perturb: speed perturbation, each perturbed speaker a new class."""

import os

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from system_files import changed_keys, composed_texts

from speechbrain_ext.augment import SpeakerSpeedPerturb
from speechbrain_ext.hparams import load_hparams
from speechbrain_ext.speed_perturb import SpeedPerturbError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
RATE = 16000


def peak_hz(wave):
    """The frequency of the strongest FFT bin of a 1-d waveform at RATE."""
    spectrum = torch.fft.rfft(wave * torch.hann_window(wave.numel(), dtype=wave.dtype)).abs()
    return float(spectrum.argmax()) * RATE / wave.numel()


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_a_tone_played_at_a_speed_has_its_pitch_and_length_scaled_by_it(speed):
    # 400 Hz for 1 s; played at s it is 400 s Hz and lasts 1 / s seconds (cut at 1 s when longer).
    t = torch.arange(RATE, dtype=torch.float64) / RATE
    tone = torch.sin(2 * torch.pi * 400.0 * t).unsqueeze(0)
    perturb = SpeakerSpeedPerturb(n_speakers=1, speeds=[1.0, speed])
    wavs, lens = perturb.apply(tone, torch.ones(1), torch.tensor([1]))
    valid = min(RATE, -(-RATE * 10 // round(speed * 10)))  # ceil(RATE / speed)
    assert wavs.shape == tone.shape
    assert float(lens[0]) == pytest.approx(valid / RATE, abs=1 / RATE)
    played = wavs[0, : valid - 200]  # away from the resampler's edge
    assert peak_hz(played) == pytest.approx(400.0 * speed, abs=2.0)
    if speed > 1:
        assert torch.count_nonzero(wavs[0, valid + 5:]) == 0  # zero-padded after the shorter playback


def test_speed_one_rows_are_returned_unchanged_and_padding_keeps_its_share():
    perturb = SpeakerSpeedPerturb(n_speakers=3, speeds=[1.0, 1.1])
    wavs, lens = torch.randn(3, 1000, dtype=torch.float64), torch.tensor([1.0, 0.5, 1.0])
    out, out_lens = perturb.apply(wavs, lens, torch.tensor([0, 1, 0]))
    assert torch.equal(out[0], wavs[0]) and torch.equal(out[2], wavs[2])
    assert out_lens.tolist() == [1.0, pytest.approx(455 / 1000), 1.0]  # ceil(500 / 1.1) valid samples
    assert not torch.equal(wavs, out) and torch.equal(wavs[1], wavs[1])  # the input is not modified in place


def test_one_speed_per_speaker_of_the_batch_and_the_classes_follow_it():
    torch.manual_seed(3)
    perturb = SpeakerSpeedPerturb(n_speakers=5, speeds=[1.0, 0.9, 1.1])
    labels = torch.tensor([4, 0, 4, 2, 0, 2, 4])
    counts = torch.zeros(3)
    for _ in range(300):
        index = perturb.draw(labels)
        for label in labels.unique():
            assert index[labels == label].unique().numel() == 1
        counts += torch.bincount(index[[1, 0, 3]], minlength=3)  # one row per speaker
        classes = perturb.expand(labels, index)
        assert torch.equal(classes % 5, labels) and torch.equal(classes // 5, index)
    # 900 draws, each speed with probability 1/3: 300 expected, sd about 14
    assert counts.min() > 240 and counts.max() < 360


def test_forward_relabels_and_a_batch_draws_the_same_under_the_same_seed():
    perturb = SpeakerSpeedPerturb(n_speakers=4)
    wavs, labels = torch.randn(6, 800), torch.tensor([0, 0, 1, 1, 3, 3])
    torch.manual_seed(11)
    first = perturb(wavs, torch.ones(6), labels)
    torch.manual_seed(11)
    second = perturb(wavs, torch.ones(6), labels)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert first[2].max() < perturb.n_classes == 12


def test_a_label_beyond_n_speakers_is_named():
    with pytest.raises(SpeedPerturbError, match="speaker label 7 is outside \\[0, 5\\).*n_speakers"):
        SpeakerSpeedPerturb(n_speakers=5)(torch.randn(2, 100), torch.ones(2), torch.tensor([1, 7]))


@pytest.mark.parametrize(("speeds", "message"), [
    ([], "is empty"),
    ([1.0, 0.9, 0.9], "0.9 twice"),
    ([1.0, 2.5], "2.5 is outside"),
    ([1.0, 0.0], "0.0 is outside"),
    ([1.0, 0.93333], "not a whole number of hertz"),
])
def test_bad_speeds_are_named(speeds, message):
    with pytest.raises(SpeedPerturbError, match=message):
        SpeakerSpeedPerturb(n_speakers=5, speeds=speeds)


def test_bad_speaker_count_and_classifier_are_named():
    with pytest.raises(SpeedPerturbError, match="n_speakers must be >= 1"):
        SpeakerSpeedPerturb(n_speakers=0)
    perturb = SpeakerSpeedPerturb(n_speakers=5, speeds=[1.0, 0.9])
    perturb.check_classifier(Classifier(input_size=4, out_neurons=10))
    with pytest.raises(SpeedPerturbError, match="15 outputs but speed perturbation needs 10 .*n_speakers \\* 2"):
        perturb.check_classifier(Classifier(input_size=4, out_neurons=15))
    with pytest.raises(SpeedPerturbError, match="Sequential.*no 2-d weight"):
        perturb.check_classifier(torch.nn.Sequential(torch.nn.Linear(4, 10)))


@pytest.mark.parametrize(("plain", "perturbed"), [
    ("ecapa_aam.yaml", "ecapa_aam_speedperturb.yaml"),
    ("ecapa_aam_amsupcon.yaml", "ecapa_aam_amsupcon_speedperturb.yaml"),
])
def test_a_speed_perturbed_system_differs_from_its_base_only_in_the_perturbation(plain, perturbed, tmp_path):
    assert changed_keys(plain, perturbed) == {"speed_perturb", "speed_perturb_speeds", "classifier", "system"}
    assert composed_texts(plain)["speed_perturb"].strip() == "speed_perturb:"  # null
    hparams, _ = load_hparams(os.path.join(HPARAMS, perturbed),
                              {"manifest_folder": str(tmp_path), "output_root": str(tmp_path)})
    perturb = hparams["speed_perturb"]
    assert perturb.speeds == [1.0, 0.9, 1.1] and perturb.n_speakers == hparams["n_speakers"]
    perturb.check_classifier(hparams["classifier"])
    assert hparams["modules"]["classifier"] is hparams["classifier"]


@pytest.mark.parametrize("recipe", ["CNCeleb", "VoxCeleb"])
def test_the_fragment_layers_on_the_paper_scale_systems_the_same_way(recipe, tmp_path):
    # The CN-Celeb and VoxCeleb READMEs' recipe: `base: [ecapa_aam.yaml, ../../shared_hparams/speed_perturb.yaml]`.
    folder = os.path.join(ROOT, "recipes", recipe, "hparams")
    layered = tmp_path / "ecapa_aam_sp.yaml"
    layered.write_text(f"base: [{folder}/ecapa_aam.yaml, {ROOT}/recipes/shared_hparams/speed_perturb.yaml]\n"
                       "system: ecapa_aam_sp\n")
    assert changed_keys("ecapa_aam.yaml", str(layered), folder) == {
        "speed_perturb", "speed_perturb_speeds", "classifier", "system"}
    classifier = composed_texts(str(layered), folder)["classifier"]
    assert "input_size: !ref <emb_dim>" in classifier and "out_neurons: !ref <n_speakers> * 3" in classifier
