"""Both papers' system trained for one epoch with SpeechBrain's ``--precision bf16`` (issue 14 item 5)."""

import json
import math
import os

SYSTEM = "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em"


def test_bf16_run_of_the_combined_system_trains_and_reports(run_synthemo_recipe):
    completed, out = run_synthemo_recipe(
        f"{SYSTEM}.yaml", "--number_of_epochs", "1", "--crop_seconds", "1.0", "--precision", "bf16"
    )
    exp = os.path.join(out, SYSTEM, "seed1986")
    with open(os.path.join(exp, "log.txt")) as f:
        assert "Using training precision: `--precision=bf16`" in f.read()
    with open(os.path.join(exp, "train_log.txt")) as f:
        epoch = next(line for line in f if line.startswith("epoch: 1"))
    # Every term of both papers (AM-SupCon with CAA, MGDA's alpha, CopyPaste, L_cos, EM) was computed and finite.
    for key in ("train loss", "aam", "contrastive", "alpha", "aam_parallel", "parallel_cos", "em_masked_share"):
        value = float(epoch.split(f"{key}: ")[1].split(",")[0].split()[0])
        assert math.isfinite(value), key
    with open(os.path.join(exp, "report", "metrics.json")) as f:
        metrics = json.load(f)
    assert all(0.0 <= cond["eer"] <= 1.0 for cond in metrics["conditions"].values())
