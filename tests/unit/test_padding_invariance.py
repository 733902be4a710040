"""An utterance's embedding alone vs in a padded batch with longer utterances (SpeechBrain #1374).

The pipeline is the recipes' (Fbank 80 → InputNormalization sentence, std_norm False →
encoder), in eval mode with trained-looking BatchNorm statistics. Each test also runs
SpeechBrain's naive padded batch (``brain.encode``'s computation) to show the same
comparison fails without the mechanism.
"""

import math
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from speechbrain.lobes.features import MFCC, Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import STFT, InputNormalization

from speechbrain_ext.batching import (
    BatchingError,
    PaddingInvariantEmbedder,
    embed_batch,
    equal_length_batches,
    frame_counts,
    supports_masking,
)
from speechbrain_ext.encoders import CAMPPlus, ResNet34

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_encoders import perturb_batchnorm  # noqa: E402

TOLERANCE = 1e-4  # issue #14: max |alone - batched| <= 1e-4
# 16150 samples: 101 frames alone, but 16150 / 47777 * 299 = 101.07 frames for the naive
# lengths, so SpeechBrain counts a padded frame as real; the others differ by padding only.
SIZES = (47777, 16150, 33001, 24000)


ENCODERS = {
    "ecapa": lambda: ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], lin_neurons=16, attention_channels=8),
    "resnet34": lambda: ResNet34(channels=4, lin_neurons=16),
    "campp": lambda: CAMPPlus(lin_neurons=16, growth_rate=4, init_channels=16, head_channels=4,
                              block_layers=(2, 2, 2)),
}


def speech_like(sizes, seed=0):
    """A zero-padded batch of tone-plus-noise signals and SpeechBrain's relative lengths."""
    gen = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(sizes), max(sizes))
    for i, n in enumerate(sizes):
        t = torch.arange(n) / 16000
        envelope = 0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t)
        tone = 0.3 * torch.sin(2 * math.pi * (120 + 40 * i) * t) * envelope
        wavs[i, :n] = tone + 0.05 * torch.randn(n, generator=gen)
    return wavs, torch.tensor(sizes, dtype=torch.float32) / max(sizes)


@pytest.fixture(scope="module")
def front_end():
    return Fbank(n_mels=80), InputNormalization(norm_type="sentence", std_norm=False).eval()


def alone(fbank, norm, encoder, wav):
    one = torch.ones(1)
    with torch.no_grad():
        return encoder(norm(fbank(wav.unsqueeze(0)), one), one)[0, 0]


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_embedding_alone_equals_embedding_in_a_batch_with_longer_utterances(name, front_end):
    fbank, norm = front_end
    torch.manual_seed(0)
    encoder = perturb_batchnorm(ENCODERS[name]())
    wavs, lens = speech_like(SIZES)
    references = [alone(fbank, norm, encoder, wavs[i, :n]) for i, n in enumerate(SIZES)]

    batched = embed_batch(fbank, norm, encoder, wavs, lens)[:, 0]
    worst = max(float((batched[i] - ref).abs().max()) for i, ref in enumerate(references))
    assert worst <= TOLERANCE, worst

    # Other companions, another order, another padded length: the same embeddings.
    order = [3, 1, 2]
    sizes = [SIZES[i] for i in order]
    sub_wavs, sub_lens = wavs[order, : max(sizes)], torch.tensor(sizes, dtype=torch.float32) / max(sizes)
    batched = embed_batch(fbank, norm, encoder, sub_wavs, sub_lens)[:, 0]
    for row, i in enumerate(order):
        assert (batched[row] - references[i]).abs().max() <= TOLERANCE

    # The naive padded batch (SpeechBrain's encode) fails the same comparison.
    with torch.no_grad():
        naive = encoder(norm(fbank(wavs), lens), lens)[:, 0]
    naive_worst = max(float((naive[i] - ref).abs().max()) for i, ref in enumerate(references))
    assert naive_worst > 10 * TOLERANCE, naive_worst


def test_the_longest_utterance_of_a_batch_is_unchanged(front_end):
    fbank, norm = front_end
    encoder = perturb_batchnorm(ENCODERS["ecapa"]())
    wavs, lens = speech_like(SIZES)
    with torch.no_grad():
        naive = encoder(norm(fbank(wavs), lens), lens)[0, 0]
    assert (embed_batch(fbank, norm, encoder, wavs, lens)[0, 0] - naive).abs().max() < 1e-5


def test_unmaskable_front_end_falls_back_to_equal_length_batches():
    # MFCC deltas pad at the batch's end: embed_batch computes equal-length sub-batches instead.
    mfcc, norm = MFCC(context=False), InputNormalization(norm_type="sentence", std_norm=False).eval()
    encoder = perturb_batchnorm(ECAPA_TDNN(60, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8))
    sizes = (12000, 7000, 7000)
    wavs, lens = speech_like(sizes)
    assert not supports_masking(mfcc, norm, encoder)
    batched = embed_batch(mfcc, norm, encoder, wavs, lens)[:, 0]
    for i, n in enumerate(sizes):
        assert (batched[i] - alone(mfcc, norm, encoder, wavs[i, :n])).abs().max() <= TOLERANCE
    with pytest.raises(BatchingError, match="cannot mask MFCC"):
        PaddingInvariantEmbedder(mfcc, norm, encoder)


def test_non_zero_padding_in_the_loader_is_ignored(front_end):
    fbank, norm = front_end
    encoder = perturb_batchnorm(ENCODERS["resnet34"]())
    wavs, lens = speech_like(SIZES[:2])
    noisy = wavs.clone()
    noisy[1, SIZES[1]:] = 0.5
    clean = embed_batch(fbank, norm, encoder, wavs, lens)
    assert torch.equal(embed_batch(fbank, norm, encoder, noisy, lens), clean)


def test_batch_dependent_normalisation_and_training_mode_are_refused(front_end):
    fbank, norm = front_end
    encoder = perturb_batchnorm(ENCODERS["resnet34"]())
    wavs, lens = speech_like(SIZES[:2])
    with pytest.raises(BatchingError, match="norm_type='batch'"):
        embed_batch(fbank, InputNormalization(norm_type="batch").eval(), encoder, wavs, lens)
    encoder.train()
    with pytest.raises(BatchingError, match="embedding_model is in training mode"):
        embed_batch(fbank, norm, encoder, wavs, lens)


@pytest.mark.parametrize("center", [True, False])
def test_frame_counts_are_the_stfts(center):
    stft = STFT(sample_rate=16000, center=center)
    sizes = [400, 559, 560, 16000, 16150, 16159, 16160]
    counts = frame_counts(stft, torch.tensor(sizes, dtype=torch.float32))
    assert counts.tolist() == [stft(torch.zeros(1, n)).shape[1] for n in sizes]


def test_equal_length_batches_plan():
    plan = equal_length_batches([16000, 8000, 16000, 16000, 8000, 12000], batch_size=2)
    assert plan == [[0, 2], [3], [5], [1, 4]]
    assert sorted(i for batch in plan for i in batch) == list(range(6))
    with pytest.raises(BatchingError, match="batch_size must be at least 1"):
        equal_length_batches([1], batch_size=0)


# ---------------------------------------------------------------------------- the Brain's extraction
def _brain(tmp_path, corpus, row):
    from test_emotion_brain import make_brain

    brain = make_brain(tmp_path, corpus, row=row)
    brain.modules.eval()
    perturb_batchnorm(brain.modules.embedding_model)
    return brain


@pytest.mark.parametrize("row", ["ecapa_aam.yaml", "ecapa_aam_copypaste_cos_em.yaml"])
def test_brain_inference_and_validation_embed_each_utterance_as_alone(tmp_path, tiny_synthemo, row):
    """The evaluation's ``encode`` and the validation's batches give an utterance its alone embedding."""
    import speechbrain as sb

    brain = _brain(tmp_path, tiny_synthemo, row)
    encode, _ = brain.inference_functions()
    wavs, lens = speech_like(SIZES)
    batched = encode(wavs, lens)[:, 0]
    alone = torch.cat([encode(wavs[i : i + 1, :n], torch.ones(1))[:, 0] for i, n in enumerate(SIZES)])
    assert (batched - alone).abs().max() <= TOLERANCE
    # what the Brain's training-time encode gives the same padded batch: the test can fail
    with torch.no_grad():
        naive = brain.encode(wavs, lens)[:, 0]
    assert (naive - alone).abs().max() > TOLERANCE

    brain.on_stage_start(sb.Stage.VALID, 1)
    brain.evaluate_batch(SimpleNamespace(batchsize=len(SIZES), id=list("abcd"), to=lambda device: SimpleNamespace(
        sig=(wavs, lens))), sb.Stage.VALID)
    assert (brain.valid_embeddings[0] - alone).abs().max() <= TOLERANCE


def test_embedding_cache_key_names_the_extraction(tmp_path):
    """A cache written by SpeechBrain's padded batches (version 1) is not reused."""
    from speechbrain_ext import extraction

    manifest = tmp_path / "m.csv"
    manifest.write_text("ID\n")
    key = extraction.cache_key("/ckpt", str(manifest))
    extraction_version = extraction.EXTRACTION_VERSION
    try:
        extraction.EXTRACTION_VERSION = extraction_version - 1
        assert extraction.cache_key("/ckpt", str(manifest)) != key
    finally:
        extraction.EXTRACTION_VERSION = extraction_version
