"""Large-margin fine-tuning killed mid-ramp, then the same command: the ramp continues exactly.

The source is the ``baseline`` fixture (2 epochs of the SynthEmo baseline). The
stage (``ecapa_aam_lm.yaml``, 1 epoch of 20 steps on the tiny corpus, margin ramp
over 10 steps) runs once uninterrupted and once killed at step 7 (after the
intra-epoch checkpoint of step 6) and resumed.
"""

import os

import pytest
from reliability_helpers import (
    INTERVAL,
    ROOT,
    child_env,
    experiment_dir,
    read_markers,
    recipe_command,
    run_until_paused,
)

pytestmark = pytest.mark.slow

LM_YAML = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam_lm.yaml")
KILL = "train:1:7"


def lm_args(baseline_out, system):
    return ("--init_from", experiment_dir(baseline_out), "--system", system, "--ckpt_interval_steps", INTERVAL,
            "--manifest_folder", os.path.join(baseline_out, "manifests"))


def run_lm(corpus, out, markers, *args):
    import subprocess

    completed = subprocess.run(recipe_command(corpus, out, *args, hparams=LM_YAML), capture_output=True, text=True,
                               timeout=300, env=child_env(markers), cwd=ROOT)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-5000:]


def train_log(out, system):
    with open(os.path.join(experiment_dir(out, system=system), "train_log.txt")) as f:
        lines = [line.strip() for line in f if line.startswith("epoch")]
    return [", ".join(p for p in line.replace(" - ", ", ").split(", ") if "seconds" not in p) for line in lines]


def metrics(out, system):
    import json

    with open(os.path.join(experiment_dir(out, system=system), "report", "metrics.json")) as f:
        found = json.load(f)
    return {k: v for k, v in found.items() if k not in ("command", "checkpoint", "system")}


def steps(markers):
    return {int(m[2]): (m[3], m[4]) for m in markers if m[0] == "train"}


def test_sigkill_mid_ramp_resumes_the_ramp_bit_identically(corpus, baseline, tmp_path, scenario):
    row = scenario(
        "large-margin fine-tuning: SIGKILL mid-ramp (step 7 of a 10-step margin ramp), then the same command",
        "resumes from the step-6 checkpoint with the margin schedule restored: same batches and losses at every "
        "step, the same per-epoch margin mean/min/max, bit-identical metrics",
        group="resume",
    )
    base_out, _ = baseline
    out = str(tmp_path / "out")
    reference_markers = str(tmp_path / "reference.txt")
    run_lm(corpus, out, reference_markers, *lm_args(base_out, "lm_reference"))
    markers = str(tmp_path / "markers.txt")
    killed = run_until_paused(corpus, out, KILL, markers, *lm_args(base_out, "lm_killed"), hparams=LM_YAML)
    n_killed = len(killed)
    run_lm(corpus, out, markers, *lm_args(base_out, "lm_killed"))
    resumed = steps(read_markers(markers)[n_killed:])
    reference = steps(read_markers(reference_markers))
    assert min(resumed) == 7 and max(resumed) == max(reference) == 20
    assert resumed == {k: reference[k] for k in resumed}  # same batches, same losses (so the same margins)
    assert train_log(out, "lm_killed") == train_log(out, "lm_reference")  # incl. aam_margin mean / min / max
    assert "aam_margin_min" in train_log(out, "lm_reference")[0]
    assert metrics(out, "lm_killed") == metrics(out, "lm_reference")
    row.observed = (f"killed after step 7; resumed at step {min(resumed)}; the {len(resumed)} steps run again have the "
                    "reference's batches and losses; train_log (margins) and metrics.json identical")
