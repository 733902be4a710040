"""Configuration faults: every one ends the run with one ``error: ...`` line naming the key, path or folder."""

import os

import pytest
from reliability_helpers import BASE_YAML, TINY, checkpoints, copy_experiment, experiment_dir, run_recipe

from speechbrain_ext.hparams import load_hparams
from speechbrain_ext.recipe import FINGERPRINT, check_config_change


def error_line(completed):
    assert completed.returncode == 1, completed.output[-3000:]
    lines = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert lines, completed.output[-3000:]
    assert "Traceback" not in completed.stderr
    return lines[-1]


def test_unknown_override_key(corpus, tmp_path, scenario):
    row = scenario("Unknown override key (--number_of_epoch 2)", "error naming the key and the closest keys")
    completed = run_recipe(corpus, str(tmp_path / "out"), "--number_of_epoch", 2, check=False)
    line = error_line(completed)
    assert "unknown hyperparameter 'number_of_epoch'" in line and "number_of_epochs" in line
    row.observed = line.replace(os.path.dirname(BASE_YAML), "<hparams>")


@pytest.mark.parametrize("key,value,want", [("number_of_epochs", "abc", "an integer"), ("lr", "fast", "a number"),
                                            ("allow_config_change", "3", "true or false")])
def test_wrong_type_override(corpus, tmp_path, scenario, key, value, want):
    row = scenario(f"Wrong type (--{key} {value})", "error naming the key, the expected type and the value")
    completed = run_recipe(corpus, str(tmp_path / "out"), f"--{key}", value, check=False)
    line = error_line(completed)
    assert f"--{key} expects {want}" in line and line.endswith(f"got {value!r}".replace("'3'", "3"))
    assert not os.path.exists(experiment_dir(str(tmp_path / "out")))  # refused before anything is written
    row.observed = line.replace(os.path.dirname(BASE_YAML), "<hparams>")


def test_missing_manifest(corpus, tmp_path, scenario):
    row = scenario(
        "Missing data: --train_annotation /nope/train.csv (a corpus that is not there)",
        "error naming the path",
    )
    completed = run_recipe(corpus, str(tmp_path / "out"), "--train_annotation", "/nope/train.csv", check=False)
    line = error_line(completed)
    assert "manifest not found: /nope/train.csv" in line
    row.observed = line


def _fake_experiment(corpus, out, overrides):
    """An output folder as a run with ``overrides`` leaves it: fingerprint + a checkpoint folder."""
    over = {"data_folder": corpus, "output_root": out, **TINY, "channels": 32, "speakers_per_batch": 4, **overrides}
    hparams, composed = load_hparams(BASE_YAML, over)
    check_config_change(hparams["output_folder"], hparams["save_folder"], composed)
    ckpt = os.path.join(hparams["save_folder"], "CKPT+2000-01-01+00-00-00+00")
    os.makedirs(ckpt)
    with open(os.path.join(ckpt, "CKPT.yaml"), "w") as f:
        f.write("end-of-epoch: true\nunixtime: 1.0\nEER: 10.0\n")
    return hparams["output_folder"]


def test_output_folder_of_another_experiment_is_refused(corpus, tmp_path, scenario):
    row = scenario(
        "Output folder holding checkpoints of another configuration (trained with --lr 0.01, run with the default)",
        "refused before anything is written, naming the folder and the differing key(s) and --allow_config_change",
    )
    out = str(tmp_path / "out")
    folder = _fake_experiment(corpus, out, {"lr": 0.01, "aam_margin": 0.3})
    with open(os.path.join(folder, FINGERPRINT)) as f:
        before = f.read()
    completed = run_recipe(corpus, out, "--number_of_epochs", 3, check=False)
    line = error_line(completed)
    assert folder in line and "lr (0.01 -> 0.002)" in line and "aam_margin (0.3 -> 0.1)" in line
    assert "--allow_config_change True" in line and "number_of_epochs" not in line
    with open(os.path.join(folder, FINGERPRINT)) as f:
        assert f.read() == before
    assert not os.path.exists(os.path.join(folder, "hyperparams.yaml"))
    row.observed = line.replace(str(tmp_path), "<tmp>")


@pytest.mark.slow
def test_allow_config_change_continues(baseline, corpus, tmp_path, scenario):
    row = scenario(
        "Same, with --allow_config_change True (real checkpoints of a finished run, --aam_margin 0.3)",
        "a warning lists the changed keys; the run resumes from the checkpoints and finishes",
    )
    out = copy_experiment(baseline[0], str(tmp_path / "out"))
    refused = run_recipe(corpus, out, "--number_of_epochs", 2, "--aam_margin", 0.3, check=False)
    assert "aam_margin (0.1 -> 0.3)" in error_line(refused)
    completed = run_recipe(corpus, out, "--number_of_epochs", 2, "--aam_margin", 0.3, "--allow_config_change", True)
    assert "resuming" in completed.output and "aam_margin (0.1 -> 0.3)" in completed.output
    assert checkpoints(out)
    row.observed = "first refused ('aam_margin (0.1 -> 0.3)'); with the flag: warning 'resuming ... with a " \
        "changed configuration (allow_config_change): aam_margin (0.1 -> 0.3)', evaluation finished"


@pytest.mark.parametrize("override, named", [
    ("{ood: {annotation: /nope/ood.csv}}", "eval_splits.ood: annotation not found: /nope/ood.csv"),
    ("{ood: {trials: /nope/trials/ood}}", "eval_splits.ood: trial folder not found: /nope/trials/ood"),
])
def test_missing_split_is_named_before_training(corpus, tmp_path, scenario, override, named):
    row = scenario(
        f"An evaluation split naming a missing file or folder (--eval_splits \"{override}\")",
        "error naming the split and the path, before any training step (no checkpoint, no log)",
    )
    out = str(tmp_path / "out")
    completed = run_recipe(corpus, out, "--number_of_epochs", 1, "--eval_splits", override, check=False)
    line = error_line(completed)
    assert named in line
    assert not checkpoints(out) and not os.path.exists(os.path.join(experiment_dir(out), "train_log.txt"))
    row.observed = line
