"""recipes/shared_hparams/dropout_augment.yaml: frequency and chunk dropout layered on a recipe's augmentation."""

import os

import pytest
import torch
from speechbrain.augment.time_domain import AddNoise, AddReverb, DropChunk, DropFreq
from system_files import changed_keys, composed_texts

from speechbrain_ext.hparams import load_hparams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
AUGMENT_KEYS = {"drop_freq", "drop_chunk", "wav_augment", "system"}
PAIRS = [("ecapa_aam.yaml", "ecapa_aam_dropaug.yaml"), ("ecapa_aam_amsupcon.yaml", "ecapa_aam_amsupcon_dropaug.yaml")]


@pytest.mark.parametrize(("plain", "dropped"), PAIRS)
def test_a_dropout_system_differs_from_its_base_only_in_the_augmentation(plain, dropped):
    assert changed_keys(plain, dropped) == AUGMENT_KEYS
    assert composed_texts(dropped)["system"] == f"system: {dropped.removesuffix('.yaml')}\n"


def test_the_chain_keeps_the_batch_and_silences_at_most_a_fifth_of_a_crop(tmp_path):
    hparams, _ = load_hparams(os.path.join(HPARAMS, "ecapa_aam_dropaug.yaml"),
                              {"manifest_folder": str(tmp_path), "output_root": str(tmp_path)})
    augment = hparams["wav_augment"]
    kinds = [type(a) for a in augment.augmentations.values()]
    assert kinds == [AddNoise, AddReverb, DropFreq, DropChunk] and not augment.concat_original
    # Dropout alone (the noise and RIR files of the recipe are not needed for it).
    torch.manual_seed(0)
    wavs = torch.randn(64, 16000) + 3.0  # never zero, so every zero is a dropped sample
    dropped = hparams["drop_chunk"](wavs, torch.ones(64))
    assert dropped.shape == wavs.shape
    silenced = (dropped == 0).sum(dim=1)
    assert silenced.min() >= 500 and silenced.max() <= 3000
    filtered = hparams["drop_freq"](wavs)
    assert filtered.shape == wavs.shape and not torch.allclose(filtered, wavs)
