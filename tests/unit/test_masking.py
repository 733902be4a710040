"""Tests of speechbrain_ext.masking: energy-based emotion-aware masking (methods.md B.3)."""


import numpy as np
import pytest
import torch

from speechbrain_ext.masking import EnergyEmotionMask

# ---------------------------------------------------------------------------- emotion-aware masking


def _reference_energy(wav, frame_length=400, hop=160):
    """Loop reference of the centred frame RMS (numpy, float64)."""
    wav = np.asarray(wav, dtype=np.float64)
    padded = np.pad(wav, frame_length // 2)
    n = 1 + len(wav) // hop
    return np.array([np.sqrt(np.mean(padded[t * hop : t * hop + frame_length] ** 2)) for t in range(n)])


@pytest.mark.parametrize("samples", [1, 399, 400, 16000, 16159, 16160, 23457, 48000])
def test_frame_grid_matches_fbank(samples):
    from speechbrain.lobes.features import Fbank

    wav = torch.randn(1, samples)
    em = EnergyEmotionMask()
    n_fbank = Fbank(n_mels=80)(wav).shape[1]
    assert em.num_frames(samples) == n_fbank
    energy = em.frame_energy(wav)
    assert energy.shape == (1, n_fbank)
    np.testing.assert_allclose(energy[0].numpy(), _reference_energy(wav[0].numpy()), rtol=1e-5, atol=1e-7)
    out, mask = em(torch.randn(1, n_fbank, 80), wav)
    assert mask.shape == (1, n_fbank)


def _bursts():
    """16000 samples (101 frames) of silence with impulses at samples 1600, 8000, 14400."""
    wav = torch.zeros(16000)
    wav[1600] = 3.0  # frames 9, 10, 11 (an impulse at 160 t is in frames t-1, t, t+1)
    wav[8000] = 2.0  # frames 49, 50, 51
    wav[14400] = 1.0  # frames 89, 90, 91
    return wav


def test_masks_highest_energy_frames_with_index_tie_break():
    wav = _bursts()[None]
    feats = torch.randn(1, 101, 4)
    _, mask = EnergyEmotionMask(mask_ratio=6 / 101)(feats, wav)
    assert torch.nonzero(mask[0]).flatten().tolist() == [9, 10, 11, 49, 50, 51]
    _, mask = EnergyEmotionMask(mask_ratio=7 / 101)(feats, wav)  # one of three tied frames: the first
    assert torch.nonzero(mask[0]).flatten().tolist() == [9, 10, 11, 49, 50, 51, 89]


def test_matches_reference_topk_on_random_batch():
    gen = torch.Generator().manual_seed(0)
    wavs = torch.randn(4, 9600, generator=gen) * torch.rand(4, 9600, generator=gen).pow(4)
    lengths = torch.tensor([1.0, 0.83, 0.5, 0.27])
    feats = torch.randn(4, 61, 3, generator=gen)
    em = EnergyEmotionMask(mask_ratio=0.3)
    _, mask = em(feats, wavs, lengths)
    for b in range(4):
        n_valid = int(torch.round(lengths[b] * 9600))
        energy = _reference_energy(np.pad(wavs[b, :n_valid].numpy(), (0, 9600 - n_valid)))
        t_valid = int(torch.round(lengths[b] * 61))
        k = round(0.3 * t_valid)
        order = np.argsort(-energy[:t_valid], kind="stable")
        assert sorted(order[:k].tolist()) == torch.nonzero(mask[b]).flatten().tolist()


def test_padding_never_counted_or_masked():
    wavs = torch.zeros(2, 16000)
    wavs[:, 2000:2400] = 0.1  # quiet speech in the valid part
    wavs[1, 8000:] = 100.0  # loud padding in utterance 1 (relative length 0.5)
    feats = torch.ones(2, 101, 2)
    feats[1, 50:] = 1000.0  # padding features must not enter the mean fill
    lengths = torch.tensor([1.0, 0.5])
    em = EnergyEmotionMask(mask_ratio=0.2)
    masked, mask = em(feats, wavs, lengths)
    t_valid = [101, 50]  # round(0.5 * 101) = round(50.5) = 50 (torch.round: halves to even)
    assert mask.sum(dim=1).tolist() == [round(0.2 * t) for t in t_valid] == [20, 10]
    assert not mask[1, 50:].any()
    assert torch.equal(masked[1, 50:], feats[1, 50:])  # padding untouched
    torch.testing.assert_close(masked[1][mask[1]], torch.ones(10, 2))  # mean over valid unmasked = 1
    # The loud padding samples do not leak into valid frames near the boundary.
    clean = wavs.clone()
    clean[1, 8000:] = 0
    assert torch.equal(em(feats, clean, lengths)[1], mask)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.2, 0.25, 0.5, 1.0])
def test_mask_count_is_round_rho_t_valid(ratio):
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([1.0, 0.9, 0.75, 0.5, 0.33, 0.1, 0.005])
    wavs = torch.randn(7, 12000, generator=gen)
    feats = torch.randn(7, 76, 5, generator=gen)
    masked, mask = EnergyEmotionMask(mask_ratio=ratio)(feats, wavs, lengths)
    t_valid = torch.round(lengths * 76).long()  # InputNormalization's convention
    expected = [round(ratio * int(t)) for t in t_valid]
    assert mask.sum(dim=1).tolist() == expected
    valid = torch.arange(76)[None] < t_valid[:, None]
    assert not (mask & ~valid).any()
    assert torch.isfinite(masked).all()
    if ratio == 0.0:
        assert torch.equal(masked, feats)
    if ratio == 1.0:  # nothing unmasked: fill with the mean of all valid frames
        b = 1
        torch.testing.assert_close(masked[b, 0], feats[b, : int(t_valid[b])].mean(dim=0))


def test_silent_input_deterministic_no_nan():
    wavs = torch.zeros(3, 16000)
    feats = torch.zeros(3, 101, 8)
    lengths = torch.tensor([1.0, 0.6, 0.3])
    for contiguous in (False, True):
        em = EnergyEmotionMask(mask_ratio=0.2, contiguous=contiguous)
        m1, mask1 = em(feats, wavs, lengths)
        m2, mask2 = em(feats, wavs, lengths)
        assert torch.equal(mask1, mask2) and torch.isfinite(m1).all()
        # Ties go to the lowest indices: the first k valid frames.
        for b, t_valid in enumerate([101, 61, 30]):
            k = round(0.2 * t_valid)
            assert torch.nonzero(mask1[b]).flatten().tolist() == list(range(k))


def test_fill_values_by_hand():
    wavs = torch.zeros(2, 1120)  # 8 frames
    wavs[0, 240] = 5.0  # frames 1, 2
    wavs[1, 800] = 5.0  # frames 4, 5, 6
    feats = torch.stack(
        [
            torch.tensor([[1, 10], [9, 9], [9, 9], [2, 20], [3, 30], [4, 40], [5, 50], [6, 60]]),
            torch.tensor([[1, -1], [2, -2], [3, -3], [4, -4], [7, 7], [7, 7], [7, 7], [8, 8]]),
        ]
    ).float()
    lengths = torch.tensor([1.0, 0.875])  # utterance 1: 7 valid frames, k = round(0.25 * 7) = 2
    masked, mask = EnergyEmotionMask(mask_ratio=0.25, fill="mean")(feats, wavs, lengths)
    assert mask.int().tolist() == [[0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 0, 0]]
    # Utterance 0: mean of frames 0, 3..7 = (1+2+3+4+5+6)/6, (10+...+60)/6.
    torch.testing.assert_close(masked[0, 1], torch.tensor([3.5, 35.0]))
    # Utterance 1: mean of valid unmasked frames 0, 1, 2, 3, 6 (frame 7 is padding).
    torch.testing.assert_close(masked[1, 4], torch.tensor([17.0 / 5, -3.0 / 5]))
    torch.testing.assert_close(masked[1, 7], feats[1, 7])
    masked, _ = EnergyEmotionMask(mask_ratio=0.25, fill="zero")(feats, wavs, lengths)
    assert torch.equal(masked[0, 1:3], torch.zeros(2, 2)) and torch.equal(masked[1, 4:6], torch.zeros(2, 2))
    assert torch.equal(masked[0, 0], feats[0, 0])


def test_contiguous_picks_max_energy_span():
    wav = torch.zeros(16000)
    wav[4000:6000] = 1.0  # frames 27..36 lie fully inside (RMS 1), neighbours partly
    wav[12800] = 40.0  # frames 79, 80, 81 have RMS 2: top-k would take them first
    feats = torch.randn(1, 101, 3)
    ratio = 10 / 101
    _, mask = EnergyEmotionMask(mask_ratio=ratio, contiguous=True)(feats, wav[None])
    assert torch.nonzero(mask[0]).flatten().tolist() == list(range(27, 37))
    _, topk = EnergyEmotionMask(mask_ratio=ratio)(feats, wav[None])
    assert {79, 80, 81} <= set(torch.nonzero(topk[0]).flatten().tolist())


def test_contiguous_matches_brute_force():
    gen = torch.Generator().manual_seed(2)
    wavs = torch.randn(3, 8000, generator=gen) * torch.rand(3, 8000, generator=gen).pow(3)
    lengths = torch.tensor([1.0, 0.7, 0.4])
    em = EnergyEmotionMask(mask_ratio=0.3, contiguous=True)
    _, mask = em(torch.zeros(3, 51, 2), wavs, lengths)
    energy = em.frame_energy(wavs, lengths).double()
    for b in range(3):
        t_valid = int(torch.round(lengths[b] * 51))
        k = round(0.3 * t_valid)
        sums = [float(energy[b, s : s + k].sum()) for s in range(t_valid - k + 1)]
        start = int(np.argmax(sums))
        assert torch.nonzero(mask[b]).flatten().tolist() == list(range(start, start + k))


def test_em_options_and_errors():
    em = EnergyEmotionMask(apply_to="parallel")
    assert em.apply_to == "parallel"
    with pytest.raises(ValueError):
        EnergyEmotionMask(apply_to="original")
    with pytest.raises(ValueError):
        EnergyEmotionMask(fill="noise")
    with pytest.raises(ValueError, match="frames"):
        em(torch.zeros(1, 100, 80), torch.zeros(1, 16000))


def test_select_lowest_masks_lowest_energy_valid_frames():
    gen = torch.Generator().manual_seed(1)
    wavs = torch.randn(3, 9600, generator=gen) * torch.rand(3, 9600, generator=gen).pow(4)
    lengths = torch.tensor([1.0, 0.6, 0.35])
    feats = torch.randn(3, 61, 3, generator=gen)
    _, mask = EnergyEmotionMask(mask_ratio=0.25, select="lowest")(feats, wavs, lengths)
    for b in range(3):
        n_valid = int(torch.round(lengths[b] * 9600))
        energy = _reference_energy(np.pad(wavs[b, :n_valid].numpy(), (0, 9600 - n_valid)))
        t_valid = int(torch.round(lengths[b] * 61))
        order = np.argsort(energy[:t_valid], kind="stable")
        assert sorted(order[: round(0.25 * t_valid)].tolist()) == torch.nonzero(mask[b]).flatten().tolist()


@pytest.mark.parametrize("contiguous", [False, True])
def test_select_random_counts_valid_frames_and_follows_the_seed(contiguous):
    wavs = _bursts().repeat(4, 1)
    lengths = torch.tensor([1.0, 0.7, 0.4, 0.05])
    feats = torch.randn(4, 101, 2)
    em = EnergyEmotionMask(mask_ratio=0.3, select="random", contiguous=contiguous)
    torch.manual_seed(5)
    _, mask = em(feats, wavs, lengths)
    t_valid = torch.round(lengths * 101).long()
    assert mask.sum(dim=1).tolist() == torch.round(0.3 * t_valid.double()).long().tolist()
    for b in range(4):
        assert not mask[b, t_valid[b]:].any()  # padding never masked
        if contiguous:
            idx = torch.nonzero(mask[b]).flatten()
            assert idx.numel() == 0 or (idx.diff() == 1).all()
    torch.manual_seed(5)
    assert torch.equal(em(feats, wavs, lengths)[1], mask)
    torch.manual_seed(6)
    assert not torch.equal(em(feats, wavs, lengths)[1], mask)
    # the energy never enters the choice: the highest-energy frames are not favoured
    assert not torch.equal(mask, EnergyEmotionMask(mask_ratio=0.3, contiguous=contiguous)(feats, wavs, lengths)[1])


def test_select_rejects_unknown():
    with pytest.raises(ValueError, match="select"):
        EnergyEmotionMask(select="loudest")
    assert "select='random'" in repr(EnergyEmotionMask(select="random"))
