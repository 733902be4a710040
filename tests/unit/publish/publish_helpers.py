"""Helpers of the publishing tests: a small untrained experiment, wav files, a fake Hub, machine strings."""

import contextlib
import getpass
import json
import os
import re
import sys

import numpy as np
import soundfile as sf
import torch

from speechbrain_ext.hparams import load_hparams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HPARAMS_DIR = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
RECIPE = os.path.join(HPARAMS_DIR, "ecapa_aam.yaml")
SPEAKERS = ["S0001", "S0002", "S0003", "S0004"]
METRICS = {
    "all": {"eer": 0.125, "eer_threshold": 0.4321, "min_dcf": 0.5, "min_dcf_threshold": 0.6, "min_dcf_p_target": 0.01,
            "n_target": 20, "n_nontarget": 60},
    "neutral_emotional": {"eer": 0.25, "eer_threshold": 0.3, "min_dcf": 0.75, "min_dcf_threshold": 0.7,
                          "min_dcf_p_target": 0.01, "n_target": 8, "n_nontarget": 24},
}
TOKEN = "hf_SECRET_test_token_123"


def build_experiment(root, channels=16, recipe=RECIPE, sizes=None):
    """An experiment folder as the recipe writes it, with two checkpoints (the EARLIER one best).

    ``sizes``: overrides of the system file (e.g. a tiny ResNet34's ``resnet_channels``);
    default ``{"channels": channels}`` (ECAPA-TDNN's width).
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    torch.manual_seed(0)
    sizes = {"channels": channels} if sizes is None else sizes
    overrides = {"output_root": str(root), "data_folder": str(root / "data"), "n_train_speakers": len(SPEAKERS),
                 **sizes}
    hp, composed = load_hparams(recipe, overrides)
    exp = hp["output_folder"]
    os.makedirs(os.path.join(exp, "report"), exist_ok=True)
    with open(os.path.join(exp, "hyperparams.yaml"), "w") as f:
        f.write(f"# composed from {recipe}\n{composed}")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(SPEAKERS)
    encoder.save(os.path.join(hp["save_folder"], "label_encoder.txt"))
    with torch.no_grad():  # non-trivial batch-norm statistics
        for module in hp["embedding_model"].modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    best = hp["checkpointer"].save_checkpoint(meta={"EER": 10.0, "epoch": 1})
    with torch.no_grad():
        for p in hp["embedding_model"].parameters():
            p.add_(0.1 * torch.randn_like(p))
    worse = hp["checkpointer"].save_checkpoint(meta={"EER": 30.0, "epoch": 2})
    command = (f"python {ROOT}/recipes/SynthEmo/train.py {recipe} --data_folder {root}/data "
               f"--output_root {root} " + " ".join(f"--{k} {v}" for k, v in sizes.items()))
    metrics = {"conditions": METRICS, "checkpoint": os.path.relpath(best.path, exp), "valid_EER": 10.0,
               "epoch": 1, "system": hp["system"], "seed": 1986, "command": command}
    with open(os.path.join(exp, "report", "metrics.json"), "w") as f:
        json.dump(metrics, f)
    hp["checkpointer"].recover_if_possible(min_key="EER")  # the training-time modules, best checkpoint
    for key in ("mean_var_norm", "embedding_model", "classifier"):
        hp[key].eval()
    return exp, hp, best.path, worse.path


def write_wav(path, seconds, seed, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wav = 0.3 * np.sin(2 * np.pi * (110 + 30 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, wav.astype(np.float32), rate)
    return str(path)


def user_names():
    names = {os.environ.get("USER", ""), os.environ.get("LOGNAME", "")}
    with contextlib.suppress(Exception):
        names.add(getpass.getuser())
    with contextlib.suppress(OSError):
        names.add(os.getlogin())
    return {n for n in names if len(n) >= 3}


def machine_paths():
    """Folders of this machine that could end up in an export: the repository, the Python environment, home."""
    return {ROOT, sys.prefix, os.path.realpath(sys.prefix), os.path.expanduser("~")}


def assert_no_machine_strings(folder, *paths):
    for name in sorted(os.listdir(folder)):  # every file, binary ones included
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        for path in {str(p) for p in paths} | machine_paths():
            assert path.encode() not in data, f"{name} contains {path}"
    for name in ("hyperparams.yaml", "README.md", "verification.json", "export.json"):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        for path in paths:
            assert str(path) not in text, f"{name} contains {path}"
        assert os.path.expanduser("~") not in text
        for user in user_names():
            assert not re.search(rf"(?<![\w-]){re.escape(user)}(?![\w-])", text), f"{name} names user {user}"
