"""The SynthEmo baseline recipe, end to end on a tiny corpus: train, resume, verify."""

import json
import os

import pytest


def read_metrics(output_root, system="ecapa_aam", seed=1986):
    with open(os.path.join(output_root, system, f"seed{seed}", "report", "metrics.json")) as f:
        return json.load(f)


def test_baseline_trains_verifies_and_resumes(run_synthemo_recipe):
    completed, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "1")
    metrics = read_metrics(out)
    conditions = metrics["conditions"]
    assert {"all", "neutral_neutral", "neutral_emotional"} <= set(conditions)
    for cond in conditions.values():
        assert 0.0 <= cond["eer"] <= 1.0 and cond["min_dcf"] >= 0.0
        assert cond["n_target"] > 0 and cond["n_nontarget"] > 0
    exp = os.path.join(out, "ecapa_aam", "seed1986")
    for name in ("report.md", "det.png", "score_hist.png"):
        assert os.path.getsize(os.path.join(exp, "report", name)) > 0
    assert "neutral_emotional" in completed.stdout and "report.md" in completed.stdout
    assert os.path.isfile(os.path.join(exp, "save", "label_encoder.txt"))

    # The same command with more epochs resumes after epoch 1 instead of starting over.
    run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "2", output_root=out)
    with open(os.path.join(exp, "train_log.txt")) as f:
        epochs = [line.split(",")[0] for line in f if line.startswith("epoch")]
    assert epochs == ["epoch: 1", "epoch: 2"]
    assert read_metrics(out)["epoch"] in (1, 2)  # the epoch with the lower valid EER


def test_unknown_override_fails_with_the_key_named(run_synthemo_recipe):
    completed, _ = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epoch", "1", check=False)
    assert completed.returncode != 0
    # SpeechBrain's logging sends uncaught errors to stdout, so look at both streams.
    output = completed.stdout + completed.stderr
    assert "unknown hyperparameter 'number_of_epoch'" in output and "number_of_epochs" in output


@pytest.mark.parametrize("n_speakers", ["5"])
def test_wrong_speaker_count_is_named(run_synthemo_recipe, n_speakers):
    completed, _ = run_synthemo_recipe(
        "ecapa_aam.yaml", "--number_of_epochs", "1", "--n_speakers", n_speakers, check=False
    )
    assert completed.returncode != 0
    assert "has 8 speakers but the hparams set n_speakers=5" in completed.stdout + completed.stderr
