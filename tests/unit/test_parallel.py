"""Tests of speechbrain_ext.parallel: the joined batch of originals and CopyPaste parallels."""

import torch

from speechbrain_ext.parallel import ParallelLayout, join_halves


def test_join_halves_pads_to_common_length_and_keeps_samples():
    a = (torch.arange(1.0, 7.0).reshape(2, 3), torch.tensor([1.0, 2 / 3]))
    b = (torch.ones(2, 5), torch.tensor([0.4, 1.0]))
    wavs, lens = join_halves(a, b)
    assert wavs.shape == (4, 5)
    torch.testing.assert_close(lens, torch.tensor([0.6, 0.4, 0.4, 1.0]))
    assert wavs[0].tolist() == [1.0, 2.0, 3.0, 0.0, 0.0] and wavs[3].tolist() == [1.0] * 5


def test_layout_tracks_rows_through_an_augmenter_that_concatenates_the_clean_batch():
    from speechbrain.augment.augmenter import Augmenter
    from speechbrain.augment.time_domain import DropChunk

    aug = Augmenter(concat_original=True, augmentations=[DropChunk(drop_count_low=1, drop_count_high=1)])
    wavs = torch.randn(6, 800)
    out, _ = aug(wavs, torch.ones(6))
    layout = ParallelLayout(aug.replicate_labels(torch.arange(6)), 3)
    assert out.shape[0] == 12 and layout.source.tolist() == list(range(6)) * 2
    assert layout.original_rows.tolist() == [0, 1, 2, 6, 7, 8]
    first, second = layout.pairs
    assert first.tolist() == [0, 6, 1, 7, 2, 8] and second.tolist() == [3, 9, 4, 10, 5, 11]
