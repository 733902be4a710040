"""A non-finite loss stops training at once, naming the step, and never replaces the last good checkpoint.

The NaN comes from the data, as it would in practice: a float wav whose samples are
finite but absurdly large (1e30, a broken float export) passes the reader's checks,
overflows the filterbank and poisons the batch.
"""

import csv
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from reliability_helpers import INTERVAL, SEED, experiment_dir, read_markers, run_recipe

from speechbrain_ext.checkpoints import SafeCheckpointer
from speechbrain_ext.sampling import SpeakerBalancedBatchSampler

pytestmark = pytest.mark.slow


def first_step_of_each_row(labels):
    """1-based step of epoch 1 at which each dataset row first appears (the recipe's sampler and seed)."""
    batches = SpeakerBalancedBatchSampler(labels, 4, 2, seed=SEED).epoch_batches(epoch=1)
    first = {}
    for step, batch in enumerate(batches, start=1):
        for index in batch:
            first.setdefault(int(index), step)
    return first


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_synthemo, tmp_path, scenario):
    row = scenario(
        "NaN loss (a float wav with samples of 1e30 in train.csv), checkpoint every 3 steps",
        "training stops with one error line naming epoch and step; no checkpoint is written after the last good "
        "one, which stays intact (finite weights); after fixing the data the same command resumes from it",
    )
    data_folder, manifests = tiny_synthemo
    with open(os.path.join(manifests, "train.csv"), newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    first = first_step_of_each_row([r["spk_id"] for r in rows])
    index = next(i for i, step in sorted(first.items()) if 8 <= step <= 13 and step % INTERVAL)
    nan_step = first[index]
    original = rows[index]["wav"]
    data, rate = sf.read(original.replace("$data_root", data_folder), dtype="float32")
    poisoned = tmp_path / "huge.wav"
    sf.write(poisoned, (data.astype(np.float64) * 1e30).astype("float32"), rate, subtype="FLOAT")
    rows[index]["wav"] = str(poisoned)
    manifest = tmp_path / "train.csv"

    def write_manifest():
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)

    write_manifest()
    out, markers = str(tmp_path / "out"), str(tmp_path / "markers.txt")
    args = ("--number_of_epochs", 1, "--ckpt_interval_steps", INTERVAL, "--train_annotation", manifest)
    done = run_recipe(data_folder, out, *args, markers=markers, check=False)
    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: "))
    assert f"loss is nan at epoch 1, step {nan_step}" in line and "Traceback" not in done.stderr
    saves = [m for m in read_markers(markers) if m[0] == "saved"]
    good_step = (nan_step - 1) // INTERVAL * INTERVAL
    assert [int(m[2]) for m in saves][-1] == good_step
    assert f"(last: {saves[-1][4]})" in line
    save = os.path.join(experiment_dir(out), "save")
    remaining = sorted(n for n in os.listdir(save) if n.startswith("CKPT+"))
    assert remaining == [saves[-1][4]]
    # intact (record verified) and finite
    intact = SafeCheckpointer(save).list_checkpoints()
    assert [c.path.name for c in intact] == remaining
    weights = torch.load(os.path.join(save, remaining[0], "embedding_model.ckpt"), weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())

    rows[index]["wav"] = original  # the data is fixed; same command again
    write_manifest()
    n = len(read_markers(markers))
    run_recipe(data_folder, out, *args, markers=markers)
    resumed = [m for m in read_markers(markers)[n:] if m[0] == "train"]
    assert resumed[0][1:3] == ["1", str(good_step + 1)]
    row.observed = (
        line.replace(str(tmp_path), "<tmp>")[:200] + f" | the only checkpoint left is the step-{good_step} one "
        f"(record intact, weights finite); after fixing the wav the same command resumed at step {good_step + 1}"
    )
