"""SIGKILL at three points of training (and in the middle of a checkpoint write), then the same command.

The reference is the ``baseline`` fixture: the same command, never interrupted
(2 epochs of 20 steps, a checkpoint every 3 steps). A resumed run must redo at most
3 steps, replay the same batches with the same losses from the step after its
checkpoint (sampler, RNG, augmentation-loader and epoch statistics restored), and
end with bit-identical metrics.
"""

import os
import random

import pytest
import torch
from reliability_helpers import (
    EPOCHS,
    INTERVAL,
    STEPS_PER_EPOCH,
    checkpoints,
    experiment_dir,
    read_markers,
    read_metrics,
    run_recipe,
    run_until_paused,
    train_log_epochs,
)

from speechbrain_ext.checkpoints import RECORD_NAME, file_digest
from speechbrain_ext.epoch_log import read_epoch_log

pytestmark = pytest.mark.slow

ARGS = ("--number_of_epochs", EPOCHS, "--ckpt_interval_steps", INTERVAL)
# the "random step" of epoch 2 (after at least one intra-epoch checkpoint), fixed by a seed
KILL_STEP = random.Random(20251122).randint(INTERVAL + 1, STEPS_PER_EPOCH - 1)


def global_step(epoch, step):
    return (int(epoch) - 1) * STEPS_PER_EPOCH + int(step)


def train_steps(markers):
    """``{global step: (batch crc, loss)}`` of the training markers."""
    return {global_step(m[1], m[2]): (m[3], m[4]) for m in markers if m[0] == "train"}


def last_saved_step(markers):
    saves = [m for m in markers if m[0] == "saved"]
    epoch, step, end_of_epoch = int(saves[-1][1]), int(saves[-1][2]), saves[-1][3] == "1"
    kind = f"end of epoch {epoch}" if end_of_epoch else f"intra-epoch, epoch {epoch} step {step}"
    return global_step(epoch, STEPS_PER_EPOCH if end_of_epoch else step), kind, saves[-1][4]


def comparable(metrics):
    return {k: v for k, v in metrics.items() if k not in ("command", "checkpoint")}


def json_log_epochs(output_root):
    """``train_log.jsonl`` without the wall-clock fields; each epoch must be there once."""
    records = read_epoch_log(os.path.join(experiment_dir(output_root), "train_log.jsonl"))
    assert [r["epoch"] for r in records] == list(range(1, int(EPOCHS) + 1))
    return [{**r, "valid_seconds": None, "train": {k: v for k, v in r["train"].items() if "seconds" not in k}}
            for r in records]


def where(step):
    epoch, within = divmod(step - 1, STEPS_PER_EPOCH)
    return f"epoch {epoch + 1} step {within + 1}"


def kill_and_resume(corpus, baseline, tmp_path, pause, row):
    """Kill at ``pause``, run the same command again, compare with the baseline; fills ``row``."""
    base_out, base_markers = baseline
    out, markers = str(tmp_path / "out"), str(tmp_path / "markers.txt")
    killed = run_until_paused(corpus, out, pause, markers, *ARGS)
    done = max(train_steps(killed))
    saved_at, saved_kind, _ = last_saved_step(killed)
    n_killed = len(killed)
    run_recipe(corpus, out, *ARGS, markers=markers)
    resumed = read_markers(markers)[n_killed:]
    resumed_steps = train_steps(resumed)
    first = min(resumed_steps)
    redone = done - saved_at
    # resumed from the last checkpoint, not from scratch and not later
    assert first == saved_at + 1, (first, saved_at)
    assert redone <= INTERVAL
    # the same batches (sampler) with the same losses (model, optimiser, RNG, augmentation) at every step
    reference = train_steps(base_markers)
    assert resumed_steps == {k: reference[k] for k in resumed_steps}
    assert train_log_epochs(out) == train_log_epochs(base_out)
    assert json_log_epochs(out) == json_log_epochs(base_out)  # one line per epoch, the same values
    assert comparable(read_metrics(out)) == comparable(read_metrics(base_out))
    assert not [n for n in os.listdir(os.path.join(experiment_dir(out), "save")) if n.startswith(".tmp-")]
    eer = read_metrics(out)["conditions"]["all"]["eer"]
    row.redone = redone
    row.observed = (
        f"killed after {where(done)} (global step {done}); last checkpoint: {saved_kind}; resumed at {where(first)}; "
        f"steps redone: {redone} (interval {INTERVAL}); same batches and losses at the {len(resumed_steps)} steps "
        f"run again; train_log.txt, train_log.jsonl (one line per epoch) and metrics.json identical "
        f"(EER all {eer:.4f})"
    )


def test_sigkill_mid_epoch_after_intra_epoch_checkpoint(corpus, baseline, tmp_path, scenario):
    row = scenario(
        f"SIGKILL mid-epoch at a random step (epoch 2, step {KILL_STEP}), then the same command",
        f"resumes from the last intra-epoch checkpoint (every {INTERVAL} steps); steps redone <= {INTERVAL}; "
        "sampler + RNG restored; metrics bit-identical to an uninterrupted run",
    )
    kill_and_resume(corpus, baseline, tmp_path, f"train:2:{KILL_STEP}", row)


def test_sigkill_right_after_end_of_epoch_checkpoint(corpus, baseline, tmp_path, scenario):
    n_epoch1_saves = STEPS_PER_EPOCH // INTERVAL + 1
    row = scenario(
        "SIGKILL right after the end-of-epoch-1 checkpoint",
        "resumes at epoch 2 step 1, nothing redone; metrics bit-identical",
    )
    kill_and_resume(corpus, baseline, tmp_path, f"saved:{n_epoch1_saves}", row)


def test_sigkill_during_validation(corpus, baseline, tmp_path, scenario):
    row = scenario(
        "SIGKILL during validation (epoch 1, 2nd validation batch)",
        f"resumes from the last intra-epoch checkpoint of epoch 1, redoes <= {INTERVAL} steps and the validation; "
        "metrics bit-identical",
    )
    kill_and_resume(corpus, baseline, tmp_path, "valid:1:2", row)


def test_sigkill_while_a_checkpoint_is_written(corpus, baseline, tmp_path, scenario):
    n = STEPS_PER_EPOCH // INTERVAL + 3  # the 2nd intra-epoch checkpoint of epoch 2
    row = scenario(
        "SIGKILL while a checkpoint is being written (half of optimizer.ckpt on disk)",
        "no half-written checkpoint is visible; the previous checkpoint stays loadable (weights_only) and the "
        "next run resumes from it; metrics bit-identical",
        group="checkpoint faults",
    )
    out, markers = str(tmp_path / "out"), str(tmp_path / "markers.txt")
    killed = run_until_paused(corpus, out, f"saving:{n}:optimizer.ckpt", markers, *ARGS)
    save = os.path.join(experiment_dir(out), "save")
    partial = [n for n in os.listdir(save) if n.startswith(".tmp-CKPT+")]
    assert len(partial) == 1 and any(m[0] == "partial" for m in killed)
    visible = checkpoints(out)
    _, previous_kind, previous = last_saved_step(killed)
    assert previous in visible
    # the previous checkpoint is intact: its record matches and every torch file loads with weights_only=True
    import json

    with open(os.path.join(save, previous, RECORD_NAME)) as f:
        record = json.load(f)["files"]
    for name, info in record.items():
        path = os.path.join(save, previous, name)
        assert file_digest(path) == info["sha256"]
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                torch.load(path, weights_only=True)
    summary, row.redone = kill_and_resume_after(corpus, baseline, out, markers, killed)
    assert not [n for n in os.listdir(save) if n.startswith((".tmp-", "damaged-"))]
    row.observed = (
        f"killed while writing {partial[0]}/optimizer.ckpt; visible checkpoints: {len(visible)} intact "
        f"(newest: {previous_kind}; record and weights_only load OK); the next run removed the partial "
        f"folder and {summary}"
    )


def kill_and_resume_after(corpus, baseline, out, markers, killed):
    base_out, base_markers = baseline
    saved_at, _, _ = last_saved_step(killed)
    done = max(train_steps(killed))
    run_recipe(corpus, out, *ARGS, markers=markers)
    resumed = train_steps(read_markers(markers)[len(killed):])
    assert min(resumed) == saved_at + 1
    assert done - saved_at <= INTERVAL
    reference = train_steps(base_markers)
    assert resumed == {k: reference[k] for k in resumed}
    assert comparable(read_metrics(out)) == comparable(read_metrics(base_out))
    assert json_log_epochs(out) == json_log_epochs(base_out)
    summary = f"resumed at {where(min(resumed))} (steps redone: {done - saved_at}); metrics bit-identical"
    return summary, done - saved_at


def test_same_seed_twice_gives_identical_metrics(corpus, baseline, tmp_path, scenario):
    row = scenario(
        "Same seed twice (second run without intra-epoch checkpoints)",
        "identical metrics.json (every condition, valid EER, epoch)",
        group="reproducibility",
    )
    out = str(tmp_path / "out")
    run_recipe(corpus, out, "--number_of_epochs", EPOCHS)
    a, b = comparable(read_metrics(baseline[0])), comparable(read_metrics(out))
    assert a == b
    row.observed = (
        f"identical: {len(a['conditions'])} conditions, EER all {a['conditions']['all']['eer']:.4f}, "
        f"valid EER {a['valid_EER']} (checkpointing every {INTERVAL} steps or not)"
    )


def test_different_seeds_give_different_metrics(corpus, baseline, tmp_path, scenario):
    row = scenario("Different seeds (1986 vs 7)", "different metrics", group="reproducibility")
    out = str(tmp_path / "out")
    run_recipe(corpus, out, "--number_of_epochs", EPOCHS, "--seed", 7)
    a, b = read_metrics(baseline[0])["conditions"], read_metrics(out, seed=7)["conditions"]
    differing = sorted(c for c in a if a[c] != b[c])
    assert differing
    row.observed = (
        f"{len(differing)} of {len(a)} conditions differ (EER all {a['all']['eer']:.4f} vs {b['all']['eer']:.4f})"
    )
