"""Waveform → speaker embedding in one module, exported to TorchScript and ONNX, with a parity check.

SpeechBrain's inference path is ``Fbank → InputNormalization → ECAPA_TDNN`` and two
parts of it do not survive a graph export with a dynamic time axis (SpeechBrain
issues #1750 and #2661):

* ``Fbank`` starts with ``torch.stft(..., return_complex=True)``: ONNX has no complex
  type, and ONNX Runtime's own ``STFT`` operator (opset 17) is far less precise than
  PyTorch's FFT (about 0.2 dB on quiet bins, measured). :class:`ConvSTFT` computes
  the same centred, windowed, one-sided DFT as a strided ``conv1d`` with a fixed
  DFT-basis kernel (cos and sin rows, window included), which every runtime supports.
  The mel filterbank and the dB conversion are SpeechBrain's own module, reused.
* ``length_to_mask`` (SE blocks, attentive statistics pooling) calls ``len(lengths)``
  and ``expand``, which a tracer freezes to the example's batch size.
  :class:`ExportableECAPA` runs the same layers of the same ``ECAPA_TDNN`` instance
  with masks built by broadcasting from the tensors themselves, so the batch and time
  axes stay symbolic.

:class:`EmbeddingPipeline` chains the three parts: ``(wavs [B, S], wav_lens [B]) →
embeddings [B, D]`` with relative lengths as in SpeechBrain. :func:`export_torchscript`
traces it (with ``torch.stft``: exact), :func:`export_onnx` exports it with the legacy
TorchScript-based exporter (opset 17, dynamic batch and sample axes; the dynamo
exporter needs ``onnxscript``, which the project does not depend on), and
:func:`parity_report` compares either one to SpeechBrain's modules on inputs of several
lengths.
"""

import contextlib
import math
import os
import warnings

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.ECAPA_TDNN import SERes2NetBlock, TDNNBlock
from speechbrain.processing.features import spectral_magnitude

__all__ = [
    "ConvSTFT",
    "EmbeddingPipeline",
    "ExportableECAPA",
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


def _time_mask(x, lengths):
    """``[B, 1, L]`` float mask ``t < lengths * L`` (``length_to_mask``'s values), trace-safe.

    The positions come from a cumulative sum over ``x``'s own time axis, so neither the
    batch size nor ``L`` becomes a constant of a traced graph.
    """
    pos = torch.cumsum(torch.ones_like(x[0, 0]), dim=0)  # 1 .. L, dtype of x
    length = pos[-1:]
    return ((pos - 1).unsqueeze(0) < lengths.to(x.dtype).unsqueeze(1) * length).to(x.dtype).unsqueeze(1)


class ExportableECAPA(torch.nn.Module):
    """The layers of a trained ``ECAPA_TDNN`` with trace-safe length masks.

    Numerically the same computation as ``ECAPA_TDNN.forward(x, lengths)`` (same
    modules, same operation order); only the masks are built differently.

    Arguments
    ---------
    ecapa : speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
        The trained encoder (shared, not copied).

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> enc = ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> x, lens = torch.randn(2, 50, 20), torch.tensor([1.0, 0.6])
    >>> bool(torch.allclose(ExportableECAPA(enc)(x, lens), enc(x, lens), atol=1e-6))
    True
    """

    def __init__(self, ecapa):
        super().__init__()
        self.ecapa = ecapa
        for block in ecapa.blocks:
            if not isinstance(block, TDNNBlock | SERes2NetBlock):
                raise TypeError(f"unsupported ECAPA block {type(block).__name__}")

    @staticmethod
    def _se(se, x, mask):
        total = mask.sum(dim=2, keepdim=True)
        s = (x * mask).sum(dim=2, keepdim=True) / total
        s = se.relu(se.conv1(s))
        s = se.sigmoid(se.conv2(s))
        return s * x

    @staticmethod
    def _res2net_se(block, x, mask):
        residual = block.shortcut(x) if block.shortcut else x
        x = block.tdnn1(x)
        x = block.res2net_block(x)
        x = block.tdnn2(x)
        x = ExportableECAPA._se(block.se_block, x, mask)
        return x + residual

    @staticmethod
    def _asp(asp, x, mask):
        def stats(x, m, eps=asp.eps):
            mean = (m * x).sum(2)
            std = torch.sqrt((m * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(eps))
            return mean, std

        if asp.global_context:
            total = mask.sum(dim=2, keepdim=True).float()
            mean, std = stats(x, mask / total)
            attn = torch.cat([x, mean.unsqueeze(2).expand_as(x), std.unsqueeze(2).expand_as(x)], dim=1)
        else:
            attn = x
        attn = asp.conv(asp.tanh(asp.tdnn(attn)))
        attn = attn.masked_fill(mask == 0, float("-inf"))
        attn = F.softmax(attn, dim=2)
        mean, std = stats(x, attn)
        return torch.cat((mean, std), dim=1).unsqueeze(2)

    def forward(self, feats, lengths):
        """``feats [B, T, F]``, relative ``lengths [B]`` → embeddings ``[B, 1, D]``."""
        enc = self.ecapa
        x = feats.transpose(1, 2)
        mask = _time_mask(x, lengths)
        outputs = []
        for block in enc.blocks:
            x = block(x) if isinstance(block, TDNNBlock) else self._res2net_se(block, x, mask)
            outputs.append(x)
        x = enc.mfa(torch.cat(outputs[1:], dim=1))
        x = self._asp(enc.asp, x, mask)
        x = enc.fc(enc.asp_bn(x))
        return x.transpose(1, 2)


class EmbeddingPipeline(torch.nn.Module):
    """``(wavs [B, S], wav_lens [B]) → embeddings [B, D]``: Fbank, normalisation, ECAPA-TDNN.

    The computation of ``EncoderClassifier.encode_batch`` (and of the training
    Brain's ``encode``) in one exportable module; the modules are shared with the
    model, not copied. Call ``eval()`` first (done here).

    Arguments
    ---------
    compute_features : speechbrain.lobes.features.Fbank
    mean_var_norm : speechbrain.processing.features.InputNormalization
    embedding_model : speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    stft : str
        ``"conv"`` for ONNX, ``"torch"`` for TorchScript (exact).

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> enc = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8)
    >>> pipe = EmbeddingPipeline(Fbank(n_mels=40), InputNormalization(norm_type="sentence", std_norm=False), enc)
    >>> pipe(torch.randn(2, 8000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 8])
    """

    def __init__(self, compute_features, mean_var_norm, embedding_model, stft="conv"):
        super().__init__()
        self.features = ExportableFbank(compute_features, stft)
        self.mean_var_norm = mean_var_norm
        self.encoder = ExportableECAPA(embedding_model)
        self.eval()

    def forward(self, wavs, wav_lens):
        """Embeddings ``[B, D]`` of a zero-padded batch with relative lengths."""
        feats = self.features(wavs)
        feats = self.mean_var_norm(feats, wav_lens)
        return self.encoder(feats, wav_lens).squeeze(1)


def reference_embeddings(compute_features, mean_var_norm, embedding_model, wavs, wav_lens):
    """SpeechBrain's own computation (``encode_batch``): ``[B, D]``, no gradient.

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


def export_torchscript(compute_features, mean_var_norm, embedding_model, path, sample_rate=16000):
    """Trace the pipeline (``torch.stft``) to a TorchScript file; returns ``path``.

    The traced module takes ``(wavs [B, S] float32, wav_lens [B] float32)`` and returns
    ``[B, D]``; batch size and length are free (traced on a batch of 2 × 2 s).

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
    """
    with _tracing(compute_features, mean_var_norm, embedding_model, "torch", sample_rate) as (pipeline, example):
        torch.jit.save(torch.jit.trace(pipeline, example, check_trace=False), os.fspath(path))
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


def parity_report(compute_features, mean_var_norm, embedding_model, torchscript=None, onnx=None,
                  sample_rate=16000, seconds=PARITY_SECONDS):
    """Largest differences of exported pipelines from SpeechBrain's modules on a padded batch.

    The batch holds utterances of ``seconds`` (zero-padded to the longest, relative
    lengths as SpeechBrain uses them), plus each utterance alone at its own length
    (batch 1), so both dynamic axes and the length masks are exercised.

    Returns
    -------
    dict
        ``{"seconds": [...], "embedding_scale": max |reference|,
        "<kind>": {"max_abs_diff", "min_cosine"}}`` for each of ``torchscript`` /
        ``onnx`` given (paths to the exported files).

    Example
    -------
    >>> parity_report.__name__
    'parity_report'
    """
    wavs, lens = example_batch(sample_rate, seconds)
    batches = [(wavs, lens)]
    for i, rel in enumerate(lens.tolist()):
        n = int(round(rel * wavs.shape[1]))
        batches.append((wavs[i : i + 1, :n], torch.ones(1)))
    refs = [reference_embeddings(compute_features, mean_var_norm, embedding_model, w, ln) for w, ln in batches]
    report = {"seconds": list(seconds), "embedding_scale": float(max(r.abs().max() for r in refs))}
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
    for kind, run in runners.items():
        max_abs, min_cos = 0.0, 1.0
        for (w, ln), ref in zip(batches, refs):
            out = run(w, ln)
            if out.shape != ref.shape:
                raise AssertionError(f"{kind}: output shape {tuple(out.shape)} != {tuple(ref.shape)}")
            max_abs = max(max_abs, float((out - ref).abs().max()))
            min_cos = min(min_cos, float(F.cosine_similarity(out.double(), ref.double(), dim=-1).min()))
        report[kind] = {"max_abs_diff": max_abs, "min_cosine": min_cos}
    return report
