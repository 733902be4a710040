"""The SynthEmo baseline recipe, end to end on a tiny corpus: train, resume, verify."""

import json
import math
import os

import pytest
import torch

from speechbrain_ext.compare import summarise
from speechbrain_ext.epoch_log import read_epoch_log
from speechbrain_ext.trial_scores import load_trial_scores


def read_metrics(output_root, system="ecapa_aam", seed=1986):
    with open(os.path.join(output_root, system, f"seed{seed}", "report", "metrics.json")) as f:
        return json.load(f)


def selected_epoch(records):
    """The epoch the rule of speechbrain_ext.selection picks: lowest selection EER, ties to the later epoch."""
    return max(records, key=lambda r: (-r["selection"]["EER"], r["epoch"]))["epoch"]


def test_baseline_trains_verifies_and_resumes(run_synthemo_recipe):
    completed, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "1")
    metrics = read_metrics(out)
    assert list(metrics["splits"]) == ["eval", "ood"]  # in-generator eval and out-of-generator ood
    conditions = metrics["conditions"]
    assert conditions == metrics["splits"]["eval"]["conditions"]
    assert {"all", "neutral_neutral", "neutral_emotional"} <= set(conditions)
    for split in metrics["splits"].values():
        for cond in split["conditions"].values():
            assert 0.0 <= cond["eer"] <= 1.0 and cond["min_dcf"] >= 0.0 and cond["min_dcf_p0.05"] >= 0.0
            assert cond["n_target"] > 0 and cond["n_nontarget"] > 0
            assert cond["eer_ci"][0] <= cond["eer"] <= cond["eer_ci"][1]
            assert math.isfinite(cond["cllr"]) and math.isfinite(cond["raw_cllr"])
    exp = os.path.join(out, "ecapa_aam", "seed1986")
    for name in ("report.md", "det.png", "score_hist.png", "det_ood.png", "calibration.json"):
        assert os.path.getsize(os.path.join(exp, "report", name)) > 0
    for split in ("eval", "ood"):
        assert load_trial_scores(os.path.join(exp, "report", "scores", f"{split}.npz")).meta["split"] == split
    assert {r["split"] for r in summarise({"run": [exp]}, "ood", n_draws=10)} == {"ood"}
    assert "ood:" in completed.stdout and "neutral_emotional" in completed.stdout
    assert "report.md" in completed.stdout
    assert os.path.isfile(os.path.join(exp, "save", "label_encoder.txt"))

    # The same command with more epochs resumes after epoch 1 instead of starting over.
    run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "2", output_root=out)
    with open(os.path.join(exp, "train_log.txt")) as f:
        epochs = [line.split(",")[0] for line in f if line.startswith("epoch")]
    assert epochs == ["epoch: 1", "epoch: 2"]
    records = read_epoch_log(os.path.join(exp, "train_log.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["valid"]) == {"valid", "ood_valid"} and r["selection"]["rule"] == "valid"
        assert r["selection"]["EER"] == r["valid"]["valid"]["EER"]
        assert {"loss", "seconds", "step_seconds", "loader_wait_seconds"} <= set(r["train"])
    metrics = read_metrics(out)
    best = next(r for r in records if r["epoch"] == selected_epoch(records))
    assert metrics["epoch"] == best["epoch"] and metrics["valid_EER"] == best["selection"]["EER"]
    assert metrics["valid"] == {name: m["EER"] for name, m in best["valid"].items()}


@pytest.mark.parametrize("rule", ["mean", "ood_valid"])
def test_checkpoint_selection_by_mean_or_by_ood_valid(run_synthemo_recipe, rule):
    # only the in-generator eval split (a split set to null is dropped): the selection is what is tested
    _, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "2", "--checkpoint_selection", rule,
                                 "--bootstrap_draws", "50", "--eval_splits", "{ood: null}")
    exp = os.path.join(out, "ecapa_aam", "seed1986")
    records = read_epoch_log(os.path.join(exp, "train_log.jsonl"))
    for r in records:
        per_split = [m["EER"] for m in r["valid"].values()]
        expected = round(sum(per_split) / len(per_split), 4) if rule == "mean" else r["valid"]["ood_valid"]["EER"]
        assert r["selection"] == {"rule": rule, "EER": expected, "minDCF": r["selection"]["minDCF"]}
    metrics = read_metrics(out)
    best = next(r for r in records if r["epoch"] == selected_epoch(records))
    assert metrics["selection"] == rule and metrics["epoch"] == best["epoch"]
    assert metrics["valid_EER"] == best["selection"]["EER"] and list(metrics["splits"]) == ["eval"]


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


def test_speed_perturbation_trains_with_copypaste_and_a_wrong_classifier_size_is_named(run_synthemo_recipe, tmp_path):
    # CopyPaste (x and x' of a speaker share its speed: one draw per class of the batch) layered with
    # speed perturbation: 3 x 8 tiny speakers, so a classifier of 24 outputs in the checkpoint.
    system = tmp_path / "copypaste_speedperturb.yaml"
    hparams = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "SynthEmo", "hparams")
    system.write_text(f"base: [{os.path.abspath(hparams)}/ecapa_aam_copypaste_cos.yaml, "
                      f"{os.path.abspath(hparams)}/../../shared_hparams/speed_perturb.yaml]\n"
                      "system: copypaste_speedperturb\n")
    _, out = run_synthemo_recipe(str(system), "--number_of_epochs", "1", "--bootstrap_draws", "20")
    exp = os.path.join(out, "copypaste_speedperturb", "seed1986")
    assert read_metrics(out, "copypaste_speedperturb")["epoch"] == 1
    (checkpoint,) = [d for d in os.listdir(os.path.join(exp, "save")) if d.startswith("CKPT")]
    weight = torch.load(os.path.join(exp, "save", checkpoint, "classifier.ckpt"))["weight"]
    assert weight.shape[0] == 24

    completed, _ = run_synthemo_recipe(str(system), "--number_of_epochs", "1", "--speed_perturb_speeds",
                                       "[1.0, 0.9]", output_root=tmp_path / "other", check=False)
    assert completed.returncode != 0
    assert "classifier has 24 outputs but speed perturbation needs 16" in completed.stdout + completed.stderr


def test_same_accent_batches_train_and_a_misspelled_column_is_named(run_synthemo_recipe, tmp_path):
    system = "ecapa_aam_amsupcon_accentbatches.yaml"
    _, out = run_synthemo_recipe(system, "--number_of_epochs", "1", "--bootstrap_draws", "20")
    exp = os.path.join(out, "ecapa_aam_amsupcon_accentbatches", "seed1986")
    (checkpoint,) = [d for d in os.listdir(os.path.join(exp, "save")) if d.startswith("CKPT")]
    with open(os.path.join(exp, "save", checkpoint, "train_sampler.ckpt")) as f:
        state = json.load(f)
    with open(os.path.join(out, "manifests", "speakers.csv")) as f:
        accents = {line.split(",")[5] for line in f.read().splitlines()[1:] if line.split(",")[1] == "train"}
    assert state["grouped_share"] == 1.0 and state["n_groups"] == len(accents) >= 2

    completed, _ = run_synthemo_recipe(system, "--number_of_epochs", "1", "--batch_group_column", "acent",
                                       output_root=tmp_path / "other", check=False)
    assert completed.returncode != 0
    assert "speakers.csv: no column 'acent'" in completed.stdout + completed.stderr
