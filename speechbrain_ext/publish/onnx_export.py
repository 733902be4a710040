"""Waveform → speaker embedding in one module, exported to TorchScript and ONNX, with a parity check.

SpeechBrain's inference path is ``Fbank → InputNormalization → encoder``
(``ECAPA_TDNN``, :class:`~speechbrain_ext.encoders.ResNet34`,
:class:`~speechbrain_ext.encoders.CAMPPlus`...). Two parts of it do not survive a graph
export with a dynamic time axis as they are (SpeechBrain issues #1750 and #2661), and
its padded batches do not give an utterance the embedding it gets alone (#1374):

* ``Fbank`` starts with ``torch.stft(..., return_complex=True)``: ONNX has no complex
  type, and ONNX Runtime's own ``STFT`` operator (opset 17) is far less precise than
  PyTorch's FFT (about 0.2 dB on quiet bins, measured). :class:`ConvSTFT` computes
  the same centred, windowed, one-sided DFT as a strided ``conv1d`` with a fixed
  DFT-basis kernel (cos and sin rows, window included), which every runtime supports.
  The mel filterbank and the dB conversion are SpeechBrain's own module, reused.
* ``ECAPA_TDNN``'s ``length_to_mask`` calls ``len(lengths)`` and ``expand``, which a
  tracer freezes to the example's batch size, and its convolutions read the padding of
  shorter utterances. :class:`EmbeddingPipeline` runs the modules through
  :class:`speechbrain_ext.batching.PaddingInvariantEmbedder`, whose masks are built from
  the tensors themselves (trace-safe) and whose encoders
  (:class:`~speechbrain_ext.encoders.ecapa.PaddingInvariantECAPA` for ECAPA-TDNN, ResNet
  and CAM++ as they are) treat padding as the utterance alone would: the exported graph
  gives each utterance of a padded batch its alone embedding.

An encoder that :func:`speechbrain_ext.batching.invariant_encoder` does not know (or
features it cannot mask: deltas, context windows) is exported as it computes, padded
batch and all; the parity report then says ``padding_invariant: False``.

:func:`export_torchscript` traces the pipeline (with ``torch.stft``: exact) and drops the
archive's debug records (they hold the absolute paths of the traced sources),
:func:`export_onnx` exports it with the legacy TorchScript-based exporter (opset 17,
dynamic batch and sample axes; the dynamo exporter needs ``onnxscript``, which the
project does not depend on), and :func:`parity_report` compares either one with
:func:`speechbrain_ext.batching.embed_batch`, the evaluation's own extraction, on
inputs of several lengths.
"""

import contextlib
import math
import os
import warnings
import zipfile

import torch
import torch.nn.functional as F
from speechbrain.processing.features import spectral_magnitude

from speechbrain_ext.batching import PaddingInvariantEmbedder, embed_batch, supports_masking
from speechbrain_ext.files import atomic_path

__all__ = [
    "ConvSTFT",
    "EmbeddingPipeline",
    "ExportableFbank",
    "example_batch",
    "export_onnx",
    "export_torchscript",
    "onnx_session",
    "parity_report",
    "reference_embeddings",
]

#: Default lengths (seconds) of the parity check: the batch is zero-padded to the longest.
PARITY_SECONDS = (1.5, 0.73, 1.11)


class ConvSTFT(torch.nn.Module):
    """SpeechBrain's ``STFT`` (one-sided, centred) as a strided convolution: ONNX-exportable.

    Output ``[B, T, n_fft // 2 + 1, 2]`` (real, imaginary), the layout of
    ``speechbrain.processing.features.STFT`` for 2-D input. The kernel is built in
    float64 and stored in float32.

    Arguments
    ---------
    stft : speechbrain.processing.features.STFT
        The module to reproduce (its ``n_fft``, hop, window, centring and padding).

    Example
    -------
    >>> from speechbrain.processing.features import STFT
    >>> ref = STFT(sample_rate=16000)
    >>> x = torch.randn(2, 3200)
    >>> out = ConvSTFT(ref)(x)
    >>> out.shape == ref(x).shape, bool((out - ref(x)).abs().max() < 1e-3)
    (True, True)
    """

    def __init__(self, stft):
        super().__init__()
        if not stft.onesided or stft.normalized_stft:
            raise ValueError("ConvSTFT reproduces one-sided, unnormalised STFTs only")
        self.n_fft, self.hop_length = stft.n_fft, stft.hop_length
        self.center, self.pad_mode = stft.center, stft.pad_mode
        window = stft.window.detach().to(torch.float64)
        if window.numel() < self.n_fft:  # torch.stft centres a shorter window inside n_fft
            left = (self.n_fft - window.numel()) // 2
            window = F.pad(window, (left, self.n_fft - window.numel() - left))
        n_bins = self.n_fft // 2 + 1
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(n_bins, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(k, n) / self.n_fft
        kernel = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
        self.register_buffer("kernel", kernel.to(torch.float32).unsqueeze(1), persistent=False)
        self.n_bins = n_bins

    def forward(self, x):
        """``x [B, S]`` → ``[B, T, F, 2]``."""
        x = x.unsqueeze(1)
        if self.center:
            pad = self.n_fft // 2
            x = F.pad(x, (pad, pad), mode=self.pad_mode)
        spec = F.conv1d(x, self.kernel, stride=self.hop_length)  # [B, 2F, T]
        real, imag = spec[:, : self.n_bins], spec[:, self.n_bins :]
        return torch.stack([real, imag], dim=-1).transpose(1, 2)


class ExportableFbank(torch.nn.Module):
    """``speechbrain.lobes.features.Fbank`` with its STFT replaceable by :class:`ConvSTFT`.

    The filterbank, deltas and context window are the original submodules.

    Arguments
    ---------
    fbank : speechbrain.lobes.features.Fbank
        The feature extractor of the trained model.
    stft : str
        ``"conv"`` (ONNX-exportable) or ``"torch"`` (the original ``torch.stft``).

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> fb = Fbank(n_mels=40)
    >>> x = torch.randn(1, 8000)
    >>> bool((ExportableFbank(fb, "torch")(x) == fb(x)).all())
    True
    """

    def __init__(self, fbank, stft="conv"):
        super().__init__()
        if stft not in ("conv", "torch"):
            raise ValueError(f"stft must be 'conv' or 'torch', got {stft!r}")
        self.fbank = fbank
        self.stft = ConvSTFT(fbank.compute_STFT) if stft == "conv" else fbank.compute_STFT

    def forward(self, wavs):
        """``wavs [B, S]`` → features ``[B, T, n_mels]``."""
        feats = self.fbank.compute_fbanks(spectral_magnitude(self.stft(wavs)))
        if self.fbank.deltas:
            delta1 = self.fbank.compute_deltas(feats)
            delta2 = self.fbank.compute_deltas(delta1)
            feats = torch.cat([feats, delta1, delta2], dim=2)
        if self.fbank.context:
            feats = self.fbank.context_window(feats)
        return feats


class _PaddedEmbedder(torch.nn.Module):
    """SpeechBrain's own computation on the padded batch, for modules the invariant embedder cannot mask."""

    def __init__(self, features, mean_var_norm, embedding_model):
        super().__init__()
        self.features, self.mean_var_norm, self.encoder = features, mean_var_norm, embedding_model

    def forward(self, wavs, wav_lens):
        return self.encoder(self.mean_var_norm(self.features(wavs), wav_lens), wav_lens)


class EmbeddingPipeline(torch.nn.Module):
    """``(wavs [B, S], wav_lens [B]) → embeddings [B, D]``: Fbank, normalisation, encoder, padding-invariant.

    The computation of :func:`speechbrain_ext.batching.embed_batch` (each utterance of a
    padded batch gets its alone embedding) in one exportable module, through
    :class:`~speechbrain_ext.batching.PaddingInvariantEmbedder`; for modules that cannot
    be masked, SpeechBrain's ``encode_batch`` computation as it is
    (``padding_invariant`` is then False). The modules are shared with the model, not
    copied; the pipeline is put in eval mode.

    Arguments
    ---------
    compute_features : speechbrain.lobes.features.Fbank
    mean_var_norm : speechbrain.processing.features.InputNormalization
    embedding_model : torch.nn.Module
        ``ECAPA_TDNN``, :class:`~speechbrain_ext.encoders.ResNet34`,
        :class:`~speechbrain_ext.encoders.CAMPPlus`, or any module with their interface.
    stft : str
        ``"conv"`` for ONNX, ``"torch"`` for TorchScript (exact).

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> enc = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8)
    >>> pipe = EmbeddingPipeline(Fbank(n_mels=40), InputNormalization(norm_type="sentence", std_norm=False), enc)
    >>> pipe(torch.randn(2, 8000), torch.tensor([1.0, 0.5])).shape, pipe.padding_invariant
    (torch.Size([2, 8]), True)
    """

    def __init__(self, compute_features, mean_var_norm, embedding_model, stft="conv"):
        super().__init__()
        features = ExportableFbank(compute_features, stft)
        self.padding_invariant = supports_masking(compute_features, mean_var_norm, embedding_model)
        if self.padding_invariant:
            self.embedder = PaddingInvariantEmbedder(compute_features, mean_var_norm, embedding_model, features)
        else:
            self.embedder = _PaddedEmbedder(features, mean_var_norm, embedding_model)
        self.eval()

    def forward(self, wavs, wav_lens):
        """Embeddings ``[B, D]`` of a zero-padded batch with relative lengths."""
        return self.embedder(wavs, wav_lens).squeeze(1)


def reference_embeddings(compute_features, mean_var_norm, embedding_model, wavs, wav_lens):
    """SpeechBrain's own computation (``encode_batch``) on the padded batch: ``[B, D]``, no gradient.

    What a folder loaded with ``EncoderClassifier.from_hparams`` computes; for a shorter
    utterance of a padded batch it is not its alone embedding (see :func:`parity_report`).

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> enc = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> reference_embeddings(Fbank(n_mels=40), InputNormalization(norm_type="sentence"), enc,
    ...                      torch.randn(1, 8000), torch.ones(1)).shape
    torch.Size([1, 8])
    """
    with torch.no_grad():
        feats = mean_var_norm(compute_features(wavs), wav_lens)
        return embedding_model(feats, wav_lens)[:, 0]


def example_batch(sample_rate, seconds=PARITY_SECONDS, seed=0):
    """A zero-padded batch of noise-like 'speech' of the given lengths and its relative lengths.

    Example
    -------
    >>> wavs, lens = example_batch(16000, seconds=(1.0, 0.5))
    >>> tuple(wavs.shape), lens.tolist()
    ((2, 16000), [1.0, 0.5])
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = [int(round(s * sample_rate)) for s in seconds]
    longest = max(sizes)
    wavs = torch.zeros(len(sizes), longest)
    t = torch.arange(longest) / sample_rate
    for i, n in enumerate(sizes):
        tone = torch.sin(2 * math.pi * (120 + 40 * i) * t[:n]) * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t[:n]))
        wavs[i, :n] = 0.3 * tone + 0.05 * torch.randn(n, generator=gen)
    return wavs, torch.tensor(sizes, dtype=torch.float32) / longest


@contextlib.contextmanager
def _tracing(compute_features, mean_var_norm, embedding_model, stft, sample_rate):
    """``(pipeline, example inputs)`` to trace, without gradients or the exporters' warnings."""
    pipeline = EmbeddingPipeline(compute_features, mean_var_norm, embedding_model, stft=stft)
    wavs, lens = example_batch(sample_rate, seconds=(2.0, 1.5))
    with warnings.catch_warnings(), torch.no_grad():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        yield pipeline, (wavs, lens)


def _drop_debug_records(path):
    """Rewrite a TorchScript archive without its ``*.debug_pkl`` records, in place (atomically).

    The records map the graph to the traced Python sources by absolute file name (the
    virtual environment's and the package's folders: a user name under ``/home``) and
    quote those sources; ``torch.jit.load`` does not need them, and without them an
    error inside the graph names the operation but not the Python line.
    """
    with zipfile.ZipFile(path) as source, atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as target:
        for info in source.infolist():
            if not info.filename.endswith(".debug_pkl"):
                target.writestr(info, source.read(info))


def export_torchscript(compute_features, mean_var_norm, embedding_model, path, sample_rate=16000):
    """Trace the pipeline (``torch.stft``) to a TorchScript file without debug records; returns ``path``.

    The traced module takes ``(wavs [B, S] float32, wav_lens [B] float32)`` and returns
    ``[B, D]``; batch size and length are free (traced on a batch of 2 s and 1.5 s).
    The archive holds no absolute path of this machine (:func:`_drop_debug_records`).

    Example
    -------
    >>> import tempfile, os
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> enc = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8)
    >>> p = export_torchscript(Fbank(n_mels=40), InputNormalization(norm_type="sentence"), enc,
    ...                        os.path.join(tempfile.mkdtemp(), "m.pt"))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     module = torch.jit.load(p)
    >>> module(torch.randn(3, 5000), torch.ones(3)).shape
    torch.Size([3, 8])
    >>> os.path.dirname(os.path.abspath(__file__)).encode() in open(p, "rb").read()
    False
    """
    with _tracing(compute_features, mean_var_norm, embedding_model, "torch", sample_rate) as (pipeline, example):
        torch.jit.save(torch.jit.trace(pipeline, example, check_trace=False), os.fspath(path))
    _drop_debug_records(os.fspath(path))
    return os.fspath(path)


def export_onnx(compute_features, mean_var_norm, embedding_model, path, sample_rate=16000, opset=17):
    """Export the pipeline (``ConvSTFT``) to ONNX with dynamic batch and sample axes; returns ``path``.

    Inputs ``wavs`` ``[batch, samples]`` float32 and ``wav_lens`` ``[batch]`` float32
    (relative lengths); output ``embeddings`` ``[batch, D]``.

    Example
    -------
    >>> import tempfile, os, numpy as np
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> modules = (Fbank(n_mels=40), InputNormalization(norm_type="sentence"),
    ...            ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8))
    >>> p = export_onnx(*modules, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> wavs = np.random.default_rng(0).standard_normal((3, 5000), dtype=np.float32)
    >>> out = onnx_session(p).run(None, {"wavs": wavs, "wav_lens": np.ones(3, np.float32)})
    >>> out[0].shape
    (3, 8)
    """
    with _tracing(compute_features, mean_var_norm, embedding_model, "conv", sample_rate) as (pipeline, example):
        torch.onnx.export(
            pipeline,
            example,
            os.fspath(path),
            dynamo=False,
            opset_version=opset,
            input_names=["wavs", "wav_lens"],
            output_names=["embeddings"],
            dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "wav_lens": {0: "batch"}, "embeddings": {0: "batch"}},
        )
    return os.fspath(path)


def onnx_session(path, threads=None):
    """An ``onnxruntime.InferenceSession`` on the CPU (``threads``: intra-op threads, default ORT's).

    Example
    -------
    >>> callable(onnx_session)
    True
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])


def _parity_batches(sample_rate, seconds):
    """The padded batch of ``seconds`` and each of its utterances alone (batch 1, its own length)."""
    wavs, lens = example_batch(sample_rate, seconds)
    batches = [(wavs, lens)]
    for i, rel in enumerate(lens.tolist()):
        n = int(round(rel * wavs.shape[1]))
        batches.append((wavs[i : i + 1, :n], torch.ones(1)))
    return batches


def _runners(torchscript, onnx):
    """``{kind: run(wavs, lens) -> [B, D]}`` of the exported files given."""
    runners = {}
    if torchscript is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            module = torch.jit.load(os.fspath(torchscript))

        def run_ts(w, ln, module=module):
            with torch.no_grad():
                return module(w, ln)

        runners["torchscript"] = run_ts
    if onnx is not None:
        session = onnx_session(onnx, threads=torch.get_num_threads())

        def run_onnx(w, ln, session=session):
            return torch.from_numpy(session.run(None, {"wavs": w.numpy(), "wav_lens": ln.numpy()})[0])

        runners["onnx"] = run_onnx
    return runners


def parity_report(compute_features, mean_var_norm, embedding_model, torchscript=None, onnx=None,
                  sample_rate=16000, seconds=PARITY_SECONDS):
    """Largest differences of exported pipelines from the PyTorch modules on a padded batch and alone.

    The batch holds utterances of ``seconds`` (zero-padded to the longest, relative
    lengths as SpeechBrain uses them), plus each utterance alone at its own length
    (batch 1), so both dynamic axes and the length masks are exercised. The reference is
    :func:`speechbrain_ext.batching.embed_batch` (every utterance as if alone), or
    :func:`reference_embeddings` for a pipeline that is not padding-invariant.

    Returns
    -------
    dict
        ``{"seconds": [...], "embedding_scale": max |reference|, "padding_invariant": bool,
        "reference": "embed_batch" or "encode_batch", "encode_batch_padded_diff": max |difference|
        between SpeechBrain's encode_batch on the padded batch and the reference,
        "<kind>": {"max_abs_diff", "min_cosine"}}`` for each of ``torchscript`` / ``onnx``
        given (paths to the exported files).

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain_ext.encoders import ResNet34
    >>> modules = (Fbank(n_mels=24), InputNormalization(norm_type="sentence"), ResNet34(24, 4, 8).eval())
    >>> r = parity_report(*modules, seconds=(0.5, 0.3))
    >>> r["padding_invariant"], r["reference"]
    (True, 'embed_batch')
    """
    invariant = EmbeddingPipeline(compute_features, mean_var_norm, embedding_model).padding_invariant
    reference = embed_batch if invariant else reference_embeddings
    batches = _parity_batches(sample_rate, seconds)
    with torch.no_grad():
        refs = [reference(compute_features, mean_var_norm, embedding_model, w, ln).reshape(w.shape[0], -1)
                for w, ln in batches]
    naive = reference_embeddings(compute_features, mean_var_norm, embedding_model, *batches[0])
    report = {"seconds": list(seconds), "embedding_scale": float(max(r.abs().max() for r in refs)),
              "padding_invariant": invariant, "reference": "embed_batch" if invariant else "encode_batch",
              "encode_batch_padded_diff": float((naive - refs[0]).abs().max())}
    for kind, run in _runners(torchscript, onnx).items():
        max_abs, min_cos = 0.0, 1.0
        for (w, ln), ref in zip(batches, refs):
            out = run(w, ln)
            if out.shape != ref.shape:
                raise AssertionError(f"{kind}: output shape {tuple(out.shape)} != {tuple(ref.shape)}")
            max_abs = max(max_abs, float((out - ref).abs().max()))
            min_cos = min(min_cos, float(F.cosine_similarity(out.double(), ref.double(), dim=-1).min()))
        report[kind] = {"max_abs_diff": max_abs, "min_cosine": min_cos}
    return report
