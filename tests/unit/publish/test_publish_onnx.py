"""ONNX and TorchScript files of an export against the evaluation's padding-invariant extraction."""

import os
import warnings

import numpy as np
import torch

from speechbrain_ext.batching import embed_batch
from speechbrain_ext.publish.onnx_export import onnx_session, reference_embeddings


def test_onnx_and_torchscript_match_pytorch_on_new_lengths(experiment, exported):
    """Parity on lengths and batch sizes the export never saw (tolerance 1e-4 absolute), padding-invariant."""
    _, hp, _, _ = experiment
    modules = (hp["compute_features"], hp["mean_var_norm"], hp["embedding_model"])
    result, out = exported
    assert result["onnx"]["onnx"]["max_abs_diff"] <= 1e-4 and result["onnx"]["padding_invariant"]
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export; it still loads
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(os.path.join(out, "embedding.torchscript.pt"))
    session = onnx_session(os.path.join(out, "embedding.onnx"), threads=1)
    gen = torch.Generator().manual_seed(3)
    naive_gap = 0.0
    for sizes in ((12345,), (8000, 20011, 16000), (4000, 3999)):
        longest = max(sizes)
        wavs = torch.zeros(len(sizes), longest)
        for i, n in enumerate(sizes):
            wavs[i, :n] = 0.1 * torch.randn(n, generator=gen)
        lens = torch.tensor(sizes, dtype=torch.float32) / longest
        want = embed_batch(*modules, wavs, lens)[:, 0]
        alone = torch.cat([embed_batch(*modules, wavs[i : i + 1, :n], torch.ones(1))[:, 0]
                           for i, n in enumerate(sizes)])
        got_onnx = session.run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})[0]
        with torch.no_grad():
            got_ts = scripted(wavs, lens)
        assert got_onnx.shape == tuple(want.shape)
        assert np.abs(got_onnx - want.numpy()).max() <= 1e-4
        assert np.abs(got_onnx - alone.numpy()).max() <= 1e-4  # an utterance's embedding ignores its batch
        assert (got_ts - want).abs().max() <= 1e-4
        naive_gap = max(naive_gap, float((reference_embeddings(*modules, wavs, lens) - alone).abs().max()))
    assert naive_gap > 1e-3  # SpeechBrain's padded computation is not: the check above can fail
