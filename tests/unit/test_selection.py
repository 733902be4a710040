"""Checkpoint selection: the checkpoint with the lowest selection EER is the one evaluated (ties: later epoch)."""

import os
from types import SimpleNamespace

import pytest
import torch
from fake_corpus import gained, make_loader, write_split

from speechbrain_ext import selection
from speechbrain_ext.checkpoints import SafeCheckpointer
from speechbrain_ext.recipe import evaluate_best_checkpoint
from speechbrain_ext.report import read_metrics


def save_epochs(checkpointer, model, eers, keep=None):
    """One end-of-epoch checkpoint per EER (the model's weight = the epoch), then an intra-epoch one."""
    for epoch, eer in enumerate(eers, 1):
        model.weight.data.fill_(float(epoch))
        meta = {"EER": eer, "epoch": epoch, "valid": {"valid": eer, "ood_valid": 50.0 - eer}, "selection": "valid"}
        if keep is None:
            checkpointer.save_checkpoint(meta=meta)
        else:
            selection.keep_best(checkpointer, meta, num_to_keep=keep)
    model.weight.data.fill_(99.0)
    checkpointer.save_checkpoint(end_of_epoch=False)  # no EER: never selected


def hparams_for(tmp_path, root, splits):
    eval_split, valid_split = splits
    out = str(tmp_path / "exp")
    return {
        "output_folder": out, "report_folder": os.path.join(out, "report"), "data_folder": root,
        "eval_splits": {"eval": {"annotation": eval_split.annotation, "trials": eval_split.trials}},
        "valid_splits": {"valid": {"annotation": valid_split.annotation, "trials": valid_split.trials}},
        "checkpoint_selection": "valid", "score_norm": "none", "score_norm_subtract_mean": False, "sample_rate": 16000,
        "calibration_splits": ["valid"], "calibration_quality": "duration_norm", "calibration_p_target": 0.5,
        "bootstrap_draws": 20,
        "train_annotation": valid_split.annotation, "cohort_utterances_per_speaker": 5, "cohort_top_n": 300, "seed": 0,
    }


@pytest.mark.parametrize("eers, best", [
    ([5.0, 3.0, 4.0], 2),  # the best epoch is not the last
    ([2.0, 3.0, 4.0], 1),  # nor the newest end-of-epoch checkpoint
    ([5.0, 3.0, 3.0], 3),  # a tie goes to the later epoch
])
def test_the_lowest_selection_eer_is_evaluated(tmp_path, eers, best):
    root = str(tmp_path / "corpus")
    os.makedirs(root)
    splits = (write_split(root, "eval", seed=0), write_split(root, "valid", seed=1))
    hparams = hparams_for(tmp_path, root, splits)
    model = torch.nn.Linear(1, 1, bias=False)
    checkpointer = SafeCheckpointer(os.path.join(hparams["output_folder"], "save"), {"model": model})
    save_epochs(checkpointer, model, eers)
    seen = []

    def inference_functions():
        seen.append(model.weight.item())  # the weights evaluated: those of the recovered checkpoint
        return gained(model.weight.item()), make_loader

    brain = SimpleNamespace(checkpointer=checkpointer, inference_functions=inference_functions)
    evaluate_best_checkpoint(brain, hparams, "t", {"seed": 1})
    metrics = read_metrics(hparams["report_folder"])
    assert seen == [float(best)] and metrics["epoch"] == best
    assert metrics["valid_EER"] == eers[best - 1] == metrics["valid"]["valid"]
    assert metrics["valid"] == {"valid": eers[best - 1], "ood_valid": 50.0 - eers[best - 1]}
    assert metrics["selection"] == "valid"


@pytest.mark.parametrize("eers, kept, best", [([5.0, 3.0, 4.0], [2, 3], 2), ([5.0, 3.0, 3.0], [3], 3)])
def test_keep_best_keeps_what_recover_best_picks(tmp_path, eers, kept, best):
    model = torch.nn.Linear(1, 1, bias=False)
    checkpointer = SafeCheckpointer(str(tmp_path / "save"), {"model": model})
    save_epochs(checkpointer, model, eers, keep=1)
    remaining = sorted(c.meta["epoch"] for c in checkpointer.list_checkpoints() if "epoch" in c.meta)
    assert remaining == kept
    assert selection.recover_best(checkpointer).meta["epoch"] == best and model.weight.item() == best
