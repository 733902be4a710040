"""ResNet34 and CAM++ runs export like ECAPA-TDNN: hub layout, padding-invariant ONNX / TorchScript, parity.

Tiny experiments are built from the SynthEmo system files of the two encoders (untrained,
saved with the recipe's Checkpointer, as in conftest); an encoder that
``speechbrain_ext.batching`` cannot mask exports as it computes, and says so.
"""

import os
import warnings

import numpy as np
import pytest
import torch
from publish_helpers import HPARAMS_DIR, assert_no_machine_strings, build_experiment

from speechbrain_ext.batching import embed_batch
from speechbrain_ext.publish import export_model
from speechbrain_ext.publish.onnx_export import (
    EmbeddingPipeline,
    export_onnx,
    export_torchscript,
    onnx_session,
    parity_report,
)

TINY = {
    "ResNet34": ("resnet34_aam.yaml", {"resnet_channels": 4, "emb_dim": 16}, "speechbrain_ext.encoders.ResNet34"),
    "CAM++": ("campp_aam.yaml", {"campp_growth_rate": 4, "campp_init_channels": 8, "campp_head_channels": 4,
                                 "campp_block_layers": [1, 1, 1], "emb_dim": 16}, "speechbrain_ext.encoders.CAMPPlus"),
}


def padded_batch(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(sizes), max(sizes))
    for i, n in enumerate(sizes):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=gen)
    return wavs, torch.tensor(sizes, dtype=torch.float32) / max(sizes)


@pytest.mark.parametrize("encoder", sorted(TINY))
def test_new_encoder_run_exports_to_the_hub_layout_and_onnx_with_parity(encoder, tmp_path):
    recipe, sizes, class_path = TINY[encoder]
    exp, hp, _, _ = build_experiment(tmp_path, recipe=os.path.join(HPARAMS_DIR, recipe), sizes=sizes)
    out = tmp_path / "model"
    result = export_model(exp, out, onnx=True)  # strict load, reload through EncoderClassifier, parity

    parity = result["onnx"]
    assert parity["padding_invariant"] and parity["reference"] == "embed_batch"
    assert parity["onnx"]["max_abs_diff"] <= 1e-4 and parity["torchscript"]["max_abs_diff"] <= 1e-4
    modules = (hp["compute_features"], hp["mean_var_norm"], hp["embedding_model"])
    wavs, lens = padded_batch((9000, 16000, 5001), seed=5)  # lengths the export never saw
    alone = torch.cat([embed_batch(*modules, wavs[i : i + 1, :n], torch.ones(1))[:, 0]
                       for i, n in enumerate((9000, 16000, 5001))])
    got = onnx_session(out / "embedding.onnx", threads=1).run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})
    assert got[0].shape == (3, 16) and np.abs(got[0] - alone.numpy()).max() <= 1e-4

    card = (out / "README.md").read_text()
    yaml_text = (out / "hyperparams.yaml").read_text()
    assert f"| encoder | {encoder} (`{class_path}`): input_size=80, " in card
    assert "| embedding | 16 dimensions, cosine scoring |" in card and f"- {encoder}\n" in card  # a Hub tag
    assert "ECAPA" not in card and "ECAPA-TDNN" not in yaml_text  # the classifier is ECAPA_TDNN.Classifier
    assert f"`{class_path}`. `hyperparams.yaml` names them, so `from_hparams` needs the `speechbrain_ext` package" \
        in card
    assert f"!new:{class_path}" in yaml_text and f"({hp['system']}, {encoder})" in yaml_text
    assert "# The model blocks name classes of speechbrain_ext: install it before loading." in yaml_text
    assert_no_machine_strings(out, exp)


class LengthBlindEncoder(torch.nn.Module):
    """ECAPA's interface (``[B, T, F], lengths -> [B, 1, D]``) but averaging the padding too."""

    def __init__(self, n_mels=24, dim=8):
        super().__init__()
        self.proj = torch.nn.Linear(n_mels, dim)

    def forward(self, feats, lengths=None):
        return self.proj(feats.mean(dim=1, keepdim=True))


def test_encoder_the_batching_cannot_mask_exports_as_it_computes(tmp_path):
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    torch.manual_seed(0)
    modules = (Fbank(n_mels=24), InputNormalization(norm_type="sentence").eval(), LengthBlindEncoder().eval())
    assert EmbeddingPipeline(*modules).padding_invariant is False
    onnx_path, ts_path = str(tmp_path / "m.onnx"), str(tmp_path / "m.pt")
    export_onnx(*modules, onnx_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        export_torchscript(*modules, ts_path)
    report = parity_report(*modules, torchscript=ts_path, onnx=onnx_path)
    assert report["padding_invariant"] is False and report["reference"] == "encode_batch"
    assert report["onnx"]["max_abs_diff"] <= 1e-4 and report["torchscript"]["max_abs_diff"] <= 1e-4
