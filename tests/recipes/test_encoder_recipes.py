"""ResNet34 and CAM++ selected from YAML: one tiny epoch of each, and with the paper-A losses."""

import json
import os

import pytest
import torch

from speechbrain_ext.hparams import load_hparams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "recipes", "shared_hparams")
TINY = ("--number_of_epochs", "1", "--n_mels", "24", "--crop_seconds", "1.0", "--emb_dim", "16")
TINY_WIDTH = {
    "resnet34": ("--resnet_channels", "4"),
    "campp": ("--campp_growth_rate", "4", "--campp_init_channels", "16", "--campp_head_channels", "4",
              "--campp_block_layers", "[2, 2, 2]"),
}
# A parameter that only the named encoder has (WeSpeaker's / 3D-Speaker's names).
ENCODER_KEY = {"resnet34": "seg_1.weight", "campp": "xvector.dense.linear.weight"}


def run_outputs(out, system):
    exp = os.path.join(out, system, "seed1986")
    with open(os.path.join(exp, "report", "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(exp, "train_log.txt")) as f:
        log = f.read()
    ckpts = [d for d in os.listdir(os.path.join(exp, "save")) if d.startswith("CKPT+")]
    state = torch.load(os.path.join(exp, "save", ckpts[0], "embedding_model.ckpt"), weights_only=True)
    return metrics, log, state


def check_metrics(metrics, system):
    assert metrics["system"] == system
    for cond in metrics["conditions"].values():
        assert 0.0 <= cond["eer"] <= 1.0 and cond["n_target"] > 0 and cond["n_nontarget"] > 0


@pytest.mark.parametrize("encoder", ["resnet34", "campp"])
def test_encoder_system_trains_one_epoch_and_verifies(run_synthemo_recipe, encoder):
    system = f"{encoder}_aam"
    _, out = run_synthemo_recipe(f"{system}.yaml", *TINY, *TINY_WIDTH[encoder])
    metrics, log, state = run_outputs(out, system)
    check_metrics(metrics, system)
    assert "epoch: 1" in log and "train aam:" in log
    assert ENCODER_KEY[encoder] in state and state[ENCODER_KEY[encoder]].shape[0] == 16


def test_paper_a_losses_and_balancer_train_resnet34_unchanged(run_synthemo_recipe, tmp_path):
    # Any system + the encoder fragment: here the paper-A row with ResNet34.
    system = "resnet34_aam_amsupcon_caa_mgda"
    hparams = tmp_path / f"{system}.yaml"
    paper_a = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam_amsupcon_caa_mgda.yaml")
    hparams.write_text(f"base: [{paper_a}, {os.path.join(SHARED, 'resnet34.yaml')}]\nsystem: {system}\n")
    _, out = run_synthemo_recipe(str(hparams), *TINY, *TINY_WIDTH["resnet34"])
    metrics, log, state = run_outputs(out, system)
    check_metrics(metrics, system)
    # AAM + AM-SupCon with class-aware attention, balanced by MGDA: every term logged.
    for key in ("train aam:", "train contrastive:", "train alpha:", "caa_weight_std"):
        assert key in log, key
    assert ENCODER_KEY["resnet34"] in state


@pytest.mark.parametrize("corpus", ["CNCeleb", "VoxCeleb"])
def test_paper_scale_files_build_the_published_sizes(corpus):
    published = {"resnet34_aam": ("ResNet34", 6_634_336, 256), "campp_aam": ("CAMPPlus", 7_176_224, 512)}
    for system, (cls, n_params, emb_dim) in published.items():
        path = os.path.join(ROOT, "recipes", corpus, "hparams", f"{system}.yaml")
        hp, _ = load_hparams(path, {"data_folder": "/nonexistent"})
        encoder = hp["embedding_model"]
        assert hp["system"] == system and type(encoder).__name__ == cls
        assert sum(p.numel() for p in encoder.parameters()) == n_params
        assert hp["classifier"].weight.shape[1] == emb_dim
        assert hp["modules"]["embedding_model"] is encoder
        assert hp["checkpointer"].recoverables["embedding_model"] is encoder


def test_synthemo_files_are_sized_to_the_baseline_cost():
    # bench/README.md, "Encoder training-step cost (SynthEmo)": 3.0x and 4.0x the baseline's step
    sized = {"resnet34_aam": ("ResNet34", 207_212), "campp_aam": ("CAMPPlus", 481_224)}
    for system, (cls, n_params) in sized.items():
        hp, _ = load_hparams(os.path.join(ROOT, "recipes", "SynthEmo", "hparams", f"{system}.yaml"),
                             {"data_folder": "/nonexistent"})
        assert type(hp["embedding_model"]).__name__ == cls and hp["classifier"].weight.shape[1] == 192
        assert sum(p.numel() for p in hp["embedding_model"].parameters()) == n_params
    assert hp["campp_block_layers"] == [12, 24, 16]  # the published depth
