"""The splits of the hparams: parsed, checked before training, every bad one named with its path."""

import os
import re

import pytest

from speechbrain_ext.calibration_metrics import CalibrationError
from speechbrain_ext.epoch_log import EpochLogError, read_epoch_log, write_epoch
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.split_metrics import check_calibration
from speechbrain_ext.splits import Split, SplitError, calibration_splits, check_splits, parse_splits, recipe_splits


@pytest.fixture
def prepared(tmp_path):
    for name in ("eval", "ood", "valid"):
        (tmp_path / f"{name}.csv").write_text("ID,duration,wav,spk_id\n")
        (tmp_path / "trials" / name).mkdir(parents=True)
        (tmp_path / "trials" / name / "all.txt").write_text("1 a b\n")

    def split(name, **changes):
        return {"annotation": str(tmp_path / f"{name}.csv"), "trials": str(tmp_path / "trials" / name), **changes}

    hparams = {"eval_splits": {"eval": split("eval"), "ood": split("ood")},
               "valid_splits": {"valid": split("valid", condition="all")}, "checkpoint_selection": "valid"}
    return tmp_path, hparams, split


def test_good_splits_in_order_and_null_drops_one(prepared):
    _, hparams, _ = prepared
    eval_splits, valid_splits = check_splits(hparams)
    assert [s.name for s in eval_splits] == ["eval", "ood"] and valid_splits[0].condition == "all"
    hparams["eval_splits"]["ood"] = None
    assert [s.name for s in check_splits(hparams)[0]] == ["eval"]


@pytest.mark.parametrize("key, split, change, message", [
    ("eval_splits", "ood", {"annotation": "/nope/ood.csv"}, "eval_splits.ood: annotation not found: /nope/ood.csv"),
    ("eval_splits", "ood", {"trials": "/nope/trials/ood"}, "eval_splits.ood: trial folder not found: /nope/trials/ood"),
    ("valid_splits", "valid", {"annotation": "/nope/v.csv"}, "valid_splits.valid: annotation not found: /nope/v.csv"),
    ("valid_splits", "valid", {"condition": "same_emotion"},
     "valid_splits.valid: condition 'same_emotion' has no trial list <tmp>/trials/valid/same_emotion.txt"),
    ("valid_splits", "valid", {"trails": "x"}, "valid_splits.valid: unknown key 'trails'"),
])
def test_a_missing_file_or_folder_is_named_with_its_split(prepared, key, split, change, message):
    tmp_path, hparams, _ = prepared
    hparams[key][split] = {**hparams[key][split], **change}
    with pytest.raises(SplitError) as err:
        check_splits(hparams)
    assert str(err.value).replace(str(tmp_path), "<tmp>").startswith(message)
    assert isinstance(err.value, SpeechBrainExtError)


def test_empty_trial_folder_and_malformed_values(prepared):
    tmp_path, hparams, split = prepared
    (tmp_path / "trials" / "empty").mkdir()
    hparams["eval_splits"]["ood"] = split("ood", trials=str(tmp_path / "trials" / "empty"))
    with pytest.raises(SplitError, match=re.escape(f"eval_splits.ood: no trial list (*.txt) in {tmp_path}")):
        check_splits(hparams)
    with pytest.raises(SplitError, match="eval_splits.eval: needs 'annotation' and 'trials'"):
        parse_splits({"eval": "eval.csv"}, "eval_splits")
    with pytest.raises(SplitError, match="valid_splits names no split"):
        parse_splits({"valid": None}, "valid_splits")
    with pytest.raises(SplitError, match="the hparams have no 'eval_splits'"):
        check_splits({"valid_splits": {}})


def test_a_scoring_tool_reads_only_the_eval_splits(prepared):
    tmp_path, _, _ = prepared
    hparams_file = tmp_path / "score.yaml"
    split = f"{{annotation: {tmp_path}/eval.csv, trials: {tmp_path}/trials/eval}}"
    hparams_file.write_text(f"data_folder: {tmp_path}\neval_splits: {{eval: {split}}}\n"
                            "valid_splits: {valid: {annotation: /nope/valid.csv, trials: /nope}}\n")
    eval_splits, data_folder = recipe_splits(str(hparams_file))
    assert [s.name for s in eval_splits] == ["eval"] and data_folder == str(tmp_path)
    with pytest.raises(SplitError, match="eval_splits.mine: annotation not found: /nope/mine.csv"):
        recipe_splits(str(hparams_file), ["--eval_splits", "{mine: {annotation: /nope/mine.csv, trials: /nope}}"])


@pytest.mark.parametrize("rule, ok", [("valid", True), ("mean", True), ("ood", False), ("eval", False)])
def test_checkpoint_selection_names_a_valid_split_or_mean(prepared, rule, ok):
    _, hparams, _ = prepared
    hparams["checkpoint_selection"] = rule
    if ok:
        check_splits(hparams)
    else:
        with pytest.raises(SplitError, match=f"checkpoint_selection: '{rule}' is neither 'mean' nor a valid split"):
            check_splits(hparams)


def test_calibration_settings_are_checked():
    assert check_calibration(["norm_min"], 0.05, as_norm=False) == ("norm_min",)
    with pytest.raises(CalibrationError, match="unknown quality set 'durations'"):
        check_calibration("durations", 0.5, as_norm=False)
    with pytest.raises(CalibrationError, match="calibration_p_target must be in"):
        check_calibration("none", 1.0, as_norm=False)
    assert "cohort_mean_min" in check_calibration("qmf", 0.5, as_norm=True)


def test_epoch_log_holds_each_epoch_once_across_resumes(tmp_path):
    path = str(tmp_path / "train_log.jsonl")
    write_epoch(path, {"epoch": 1, "valid": {"valid": {"EER": 9.0}}})
    write_epoch(path, {"epoch": 2, "valid": {"valid": {"EER": 8.0}}})
    # killed after logging epoch 2 but before its checkpoint: epoch 2 is validated again
    write_epoch(path, {"epoch": 2, "valid": {"valid": {"EER": 8.5}}})
    write_epoch(path, {"epoch": 3, "valid": {"valid": {"EER": 7.0}}})
    assert [(r["epoch"], r["valid"]["valid"]["EER"]) for r in read_epoch_log(path)] == [(1, 9.0), (2, 8.5), (3, 7.0)]
    with open(path) as f:
        assert len(f.read().splitlines()) == 3
    assert not [n for n in os.listdir(tmp_path) if n != "train_log.jsonl"]  # the rewrite leaves no temp file
    with pytest.raises(EpochLogError, match="a record needs an integer 'epoch'"):
        write_epoch(path, {"epoch": "3"})
    # a damaged line never stops training: it is dropped (with a warning) at the next write
    with open(path, "a") as f:
        f.write('{"epoch": 4, "valid": \n')
    with pytest.raises(EpochLogError, match=r"train_log.jsonl:4: not an epoch record"):
        read_epoch_log(path)
    assert [r["epoch"] for r in write_epoch(path, {"epoch": 4})] == [1, 2, 3, 4]


@pytest.mark.parametrize("names, message", [
    ("valid", "a list of valid split names"),
    (["valid", "valid"], "named twice"),
    (["ood"], "'ood' is not a valid split (valid_splits: valid, ood_valid)"),
])
def test_bad_calibration_splits_are_named(names, message):
    valid = [Split("valid", "v.csv", "t/valid"), Split("ood_valid", "o.csv", "t/ood_valid")]
    with pytest.raises(SplitError, match=re.escape(message)):
        calibration_splits(names, valid)


def test_a_recipe_without_calibration_splits_is_refused_before_training(prepared):
    from speechbrain_ext.recipe import check_evaluation_settings

    _, hparams, _ = prepared
    hparams.update(calibration_quality="duration_norm", calibration_p_target=0.5, score_norm="none")
    with pytest.raises(SplitError, match="no 'calibration_splits'"):
        check_evaluation_settings(hparams)
    hparams["calibration_splits"] = None  # the first valid split
    assert [s.name for s in check_evaluation_settings(hparams)[2]] == ["valid"]
    hparams["calibration_splits"] = []  # no calibration
    assert check_evaluation_settings(hparams)[2] == []


def test_changing_calibration_splits_keeps_a_runs_checkpoints(tmp_path):
    """An evaluation-only key: a finished run re-evaluates with other calibration splits, no config error."""
    from speechbrain_ext.recipe import ConfigChangeError, check_config_change

    out, save = str(tmp_path), str(tmp_path / "save")
    assert check_config_change(out, save, "lr: 1\n") == []  # a run made before the key existed
    os.makedirs(tmp_path / "save" / "CKPT+1")
    (tmp_path / "save" / "CKPT+1" / "CKPT.yaml").write_text("")
    assert check_config_change(out, save, "lr: 1\ncalibration_splits: [valid, ood_valid]\n") == []
    with pytest.raises(ConfigChangeError, match="valid_splits"):  # validation splits decide the checkpoints
        check_config_change(out, save, "lr: 1\nvalid_splits: {valid: null}\n")
