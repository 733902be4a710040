"""Padding-invariant batched extraction: an utterance's embedding does not depend on its batch.

In a zero-padded batch SpeechBrain's pipeline ``Fbank → InputNormalization → encoder``
gives a shorter utterance another embedding than it gets alone (SpeechBrain #1374), for
two reasons, both measured by ``bench/bench_extraction.py``:

* **lengths are relative to the padded waveform**, so the frame counts the
  normalisation and the encoder derive from them (``t < length * T``) are off by one
  frame for about half the utterances: an utterance of ``n`` samples has
  ``1 + n // hop`` frames alone (centred STFT), while ``n / N * (1 + N // hop)`` is
  not that number for the batch's longest length ``N``;
* **convolutions read the padding**: ECAPA-TDNN pads with ``reflect`` at the end of
  the batch tensor, so the last real frames of a shorter utterance see padding instead
  of their own reflection.

The STFT itself is not the problem: with SpeechBrain's default centring and
``pad_mode="constant"`` every real frame of the padded waveform holds the same samples
as alone (zeros after the end either way), and the dB floor (``top_db``) is set by the
loudest real frame. :class:`PaddingInvariantEmbedder` therefore (1) zeroes the
waveform after each utterance's end, (2) counts each utterance's frames exactly and
passes relative lengths placed a quarter frame before the boundary, so that
``t < l * T``, ``round(l * T)`` and ``ceil(l * T)`` all count the same frames, and (3)
runs an encoder whose convolutions and statistics treat padding as the utterance alone
would: :class:`~speechbrain_ext.encoders.ResNet34` and
:class:`~speechbrain_ext.encoders.CAMPPlus` as they are,
``ECAPA_TDNN`` through :class:`~speechbrain_ext.encoders.ecapa.PaddingInvariantECAPA`.

:func:`embed_batch` is the call for the evaluation stage; for a front-end or encoder
that this cannot mask (Fbank deltas or context windows, a ``reflect``-padded STFT, an
unknown encoder) it falls back to sub-batches of equal sample length
(:func:`equal_length_batches`), which is invariant by construction but runs at nearly
one utterance per call on corpora of continuous durations.
"""

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization
from torch import nn

from speechbrain_ext.encoders import CAMPPlus, ResNet
from speechbrain_ext.encoders.ecapa import PaddingInvariantECAPA
from speechbrain_ext.errors import SpeechBrainExtError

__all__ = [
    "BatchingError",
    "PaddingInvariantEmbedder",
    "embed_batch",
    "equal_length_batches",
    "frame_counts",
    "frame_relative_lengths",
    "invariant_encoder",
    "supports_masking",
]

#: Where a relative length puts the boundary: this fraction of a frame before it.
BOUNDARY_OFFSET = 0.25


class BatchingError(SpeechBrainExtError, ValueError):
    """Extraction cannot be made independent of the batch; the message names the module.

    Example
    -------
    >>> isinstance(BatchingError("x"), ValueError)
    True
    """


def frame_counts(stft, n_samples):
    """Frames SpeechBrain's ``STFT`` gives ``n_samples`` samples alone.

    Arguments
    ---------
    stft : speechbrain.processing.features.STFT
        Its ``n_fft``, ``hop_length`` (samples) and ``center`` are used.
    n_samples : torch.Tensor
        ``[B]`` sample counts (floats or integers).

    Returns
    -------
    torch.Tensor
        ``[B]`` float frame counts.

    Example
    -------
    >>> from speechbrain.processing.features import STFT
    >>> stft = STFT(sample_rate=16000)
    >>> frame_counts(stft, torch.tensor([16000.0, 16150.0]))
    tensor([101., 101.])
    >>> stft(torch.zeros(1, 16150)).shape[1]
    101
    """
    n = n_samples.to(torch.float32)
    if stft.center:
        n = n + 2 * (stft.n_fft // 2)
    return torch.div(n - stft.n_fft, stft.hop_length, rounding_mode="floor") + 1


def frame_relative_lengths(n_frames, total):
    """Relative lengths that every SpeechBrain convention reads as ``n_frames`` of ``total``.

    Example
    -------
    >>> rel = frame_relative_lengths(torch.tensor([3.0, 10.0]), 10)
    >>> (torch.arange(10) < rel.unsqueeze(1) * 10).sum(1), torch.round(rel * 10), torch.ceil(rel * 10)
    (tensor([ 3, 10]), tensor([ 3., 10.]), tensor([ 3., 10.]))
    """
    return (n_frames - BOUNDARY_OFFSET) / total


def invariant_encoder(encoder):
    """The module that runs ``encoder`` independently of padding, or ``None`` if unknown.

    Example
    -------
    >>> enc = ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8)
    >>> type(invariant_encoder(enc)).__name__, invariant_encoder(torch.nn.Linear(2, 2))
    ('PaddingInvariantECAPA', None)
    """
    if isinstance(encoder, ResNet | CAMPPlus | PaddingInvariantECAPA):
        return encoder
    if isinstance(encoder, ECAPA_TDNN):
        return PaddingInvariantECAPA(encoder)
    return None


def supports_masking(compute_features, mean_var_norm, embedding_model):
    """Whether :class:`PaddingInvariantEmbedder` can run these modules (else: equal-length batches).

    Raises :class:`BatchingError` for a normalisation that depends on the batch by
    definition (``InputNormalization(norm_type="batch")``): no batching fixes that.

    Example
    -------
    >>> enc = ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8)
    >>> norm = InputNormalization(norm_type="sentence", std_norm=False)
    >>> supports_masking(Fbank(n_mels=20), norm, enc), supports_masking(Fbank(n_mels=20, deltas=True), norm, enc)
    (True, False)
    >>> supports_masking(Fbank(n_mels=20), InputNormalization(norm_type="batch"), enc)
    Traceback (most recent call last):
    ...
    speechbrain_ext.batching.BatchingError: mean_var_norm: InputNormalization(norm_type='batch') ...
    """
    if isinstance(mean_var_norm, InputNormalization) and mean_var_norm.norm_type == "batch":
        raise BatchingError(
            "mean_var_norm: InputNormalization(norm_type='batch') normalises each utterance with its batch's "
            "statistics, so its embedding depends on the batch whatever the padding; use 'sentence' or 'global'"
        )
    if not isinstance(compute_features, Fbank) or compute_features.deltas or compute_features.context:
        return False  # deltas and context windows pad at the batch's end
    if compute_features.compute_STFT.center and compute_features.compute_STFT.pad_mode != "constant":
        return False
    return isinstance(mean_var_norm, InputNormalization) and invariant_encoder(embedding_model) is not None


def _bare(module):
    """The module a data-parallel wrapper holds (what the recipe configured), else ``module``."""
    if isinstance(module, nn.parallel.DistributedDataParallel | nn.DataParallel):
        return module.module
    return module


def _check_eval(modules):
    for name, module in modules.items():
        if module.training:
            raise BatchingError(
                f"{name} is in training mode: BatchNorm and InputNormalization then use and update the "
                "batch's statistics, so embeddings depend on the batch; call .eval() first"
            )


def _sample_counts(wavs, wav_lens):
    """Samples per utterance from SpeechBrain's relative lengths (exact for ``n / N`` in float32)."""
    return torch.round(wav_lens.to(torch.float32) * wavs.shape[1])


class PaddingInvariantEmbedder(nn.Module):
    """``(wavs [B, S], wav_lens [B]) → [B, 1, D]``, each row as if its utterance were alone.

    The modules are shared with the model, not copied; call ``eval()`` on them first.

    Arguments
    ---------
    compute_features : speechbrain.lobes.features.Fbank
        The recipe's feature extractor (its STFT geometry gives the frame counts).
    mean_var_norm : speechbrain.processing.features.InputNormalization
        ``sentence`` or ``global`` normalisation.
    embedding_model : torch.nn.Module
        ``ECAPA_TDNN``, :class:`~speechbrain_ext.encoders.ResNet34` (or any
        :class:`~speechbrain_ext.encoders.ResNet`) or :class:`~speechbrain_ext.encoders.CAMPPlus`.
    features : torch.nn.Module or None
        Computes the same features as ``compute_features`` by other means (an exporter's
        ONNX-friendly STFT); default ``compute_features`` itself.

    Example
    -------
    >>> enc = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> norm = InputNormalization(norm_type="sentence", std_norm=False).eval()
    >>> embed = PaddingInvariantEmbedder(Fbank(n_mels=40), norm, enc)
    >>> wavs = torch.randn(2, 8000) * torch.tensor([[1.0], [0.0]])
    >>> wavs[1, :5150] = torch.randn(5150)
    >>> with torch.no_grad():
    ...     alone = enc(norm(Fbank(n_mels=40)(wavs[1:, :5150]), torch.ones(1)), torch.ones(1))
    ...     batched = embed(wavs, torch.tensor([1.0, 5150 / 8000]))
    >>> bool((batched[1] - alone[0]).abs().max() < 1e-4)
    True
    """

    def __init__(self, compute_features, mean_var_norm, embedding_model, features=None):
        super().__init__()
        if not supports_masking(compute_features, mean_var_norm, embedding_model):
            raise BatchingError(
                f"PaddingInvariantEmbedder cannot mask {type(compute_features).__name__} / "
                f"{type(mean_var_norm).__name__} / {type(embedding_model).__name__} (Fbank without deltas or "
                "context, InputNormalization, and ECAPA_TDNN, ResNet or CAMPPlus are supported); "
                "use embed_batch, which falls back to equal-length batches"
            )
        self.stft = compute_features.compute_STFT
        self.features = compute_features if features is None else features
        self.mean_var_norm = mean_var_norm
        self.encoder = invariant_encoder(embedding_model)

    def forward(self, wavs, wav_lens):
        """Embeddings ``[B, 1, D]`` of a zero-padded batch with relative lengths."""
        n_samples = _sample_counts(wavs, wav_lens)
        steps = torch.cumsum(torch.ones_like(wavs[0], dtype=torch.float32), dim=0) - 1
        wavs = wavs * (steps.unsqueeze(0) < n_samples.unsqueeze(1)).to(wavs.dtype)
        feats = self.features(wavs)
        total = torch.ones_like(feats[0, :, 0], dtype=torch.float32).sum()
        n_frames = torch.minimum(frame_counts(self.stft, n_samples), total)
        lengths = frame_relative_lengths(n_frames, total)
        feats = self.mean_var_norm(feats, lengths)
        return self.encoder(feats, lengths)


def equal_length_batches(lengths, batch_size):
    """Batches of utterances of exactly equal length, at most ``batch_size`` each, longest first.

    The batch plan of length bucketing: a batch holds no padding at all, so any
    pipeline gives each utterance its alone embedding; on continuous durations most
    batches hold one utterance.

    Arguments
    ---------
    lengths : sequence of int
        Samples (or any exact length) per utterance.
    batch_size : int
        Largest batch.

    Returns
    -------
    list of list of int
        Utterance indices per batch.

    Example
    -------
    >>> equal_length_batches([5, 3, 5, 5, 3], batch_size=2)
    [[0, 2], [3], [1, 4]]
    """
    if batch_size < 1:
        raise BatchingError(f"batch_size must be at least 1, got {batch_size}")
    groups = {}
    for index, length in enumerate(lengths):
        groups.setdefault(int(length), []).append(index)
    return [
        members[i : i + batch_size]
        for _, members in sorted(groups.items(), key=lambda item: -item[0])
        for i in range(0, len(members), batch_size)
    ]


def embed_equal_lengths(encode, wavs, wav_lens):
    """``encode`` on sub-batches of equal length (no padding): each utterance's output as if it were alone.

    The reference computation for any function of a batch, e.g. a Brain's ``encode`` with
    features a test-time probe changed. Does not switch off gradients.

    Arguments
    ---------
    encode : callable
        ``encode(wavs [n, S], lens [n]) -> [n, ...]``.
    wavs : torch.Tensor
        ``[B, S]`` zero-padded waveforms.
    wav_lens : torch.Tensor
        ``[B]`` relative lengths.

    Example
    -------
    >>> wavs = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]])
    >>> embed_equal_lengths(lambda w, l: w.mean(dim=1, keepdim=True), wavs, torch.tensor([1.0, 0.5]))
    tensor([[2.5000],
            [5.5000]])
    """
    n_samples = _sample_counts(wavs, wav_lens).long().tolist()
    rows = [None] * len(n_samples)
    for group in equal_length_batches(n_samples, len(n_samples)):
        sub = wavs[group, : n_samples[group[0]]]
        out = encode(sub, torch.ones(len(group), device=wavs.device))
        for row, index in zip(out, group):
            rows[index] = row
    return torch.stack(rows)


def _embed_equal_lengths(compute_features, mean_var_norm, embedding_model, wavs, wav_lens):
    """The reference computation on sub-batches of equal length: no padding, any modules."""
    return embed_equal_lengths(lambda sub, ones: embedding_model(mean_var_norm(compute_features(sub), ones), ones),
                               wavs, wav_lens)


def embed_batch(compute_features, mean_var_norm, embedding_model, wavs, wav_lens):
    """Embeddings ``[B, 1, D]`` of a padded batch, each as if its utterance were alone.

    The evaluation stage's replacement for ``brain.encode(wavs, lens)``: masked
    (:class:`PaddingInvariantEmbedder`) when the modules allow it, else computed on
    sub-batches of equal length. No gradient; the modules must be in eval mode.

    Arguments
    ---------
    compute_features, mean_var_norm, embedding_model : torch.nn.Module
        The recipe's ``modules`` of the same names.
    wavs : torch.Tensor
        ``[B, S]`` zero-padded waveforms.
    wav_lens : torch.Tensor
        ``[B]`` relative lengths (SpeechBrain's ``PaddedBatch``).

    Example
    -------
    >>> from speechbrain.lobes.features import MFCC
    >>> enc = ECAPA_TDNN(60, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> norm = InputNormalization(norm_type="sentence", std_norm=False).eval()
    >>> wavs = torch.randn(3, 4000)
    >>> mfcc = MFCC(context=False)  # deltas pad at the batch end: equal-length sub-batches
    >>> out = embed_batch(mfcc, norm, enc, wavs, torch.tensor([1.0, 0.5, 0.5]))
    >>> alone = embed_batch(mfcc, norm, enc, wavs[1:2, :2000], torch.ones(1))
    >>> out.shape, bool((out[1] - alone[0]).abs().max() < 1e-5)
    (torch.Size([3, 1, 8]), True)
    """
    compute_features, mean_var_norm, embedding_model = (
        _bare(m) for m in (compute_features, mean_var_norm, embedding_model)
    )
    _check_eval({"mean_var_norm": mean_var_norm, "embedding_model": embedding_model})
    with torch.no_grad():
        if supports_masking(compute_features, mean_var_norm, embedding_model):
            return PaddingInvariantEmbedder(compute_features, mean_var_norm, embedding_model)(wavs, wav_lens)
        return _embed_equal_lengths(compute_features, mean_var_norm, embedding_model, wavs, wav_lens)
