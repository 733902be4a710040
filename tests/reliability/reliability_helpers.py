"""Helpers of the reliability suite: run, kill and resume the real recipe through the harness."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(ROOT, "tests", "reliability", "harness.py")
BASE_YAML = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam.yaml")
TINY = {"n_train_speakers": 8, "n_valid_speakers": 3, "n_eval_speakers": 4, "n_sentences": 4}
INTERVAL = 3  # --ckpt_interval_steps of the resume scenarios
EPOCHS = 2
STEPS_PER_EPOCH = 20  # 8 speakers x 20 utterances, P=4 x K=2 batches
SEED = 1986


# ----------------------------------------------------------------------------- running the recipe
def experiment_dir(output_root, seed=SEED, system="ecapa_aam"):
    return os.path.join(output_root, system, f"seed{seed}")


def recipe_command(data_folder, output_root, *extra, hparams=BASE_YAML):
    """The real recipe through the observing harness (``tests/reliability/harness.py``)."""
    command = [sys.executable, HARNESS, hparams, "--data_folder", data_folder, "--output_root", output_root]
    for key, value in TINY.items():
        command += [f"--{key}", str(value)]
    command += ["--channels", "32", "--speakers_per_batch", "4", "--num_workers", "0", "--noprogressbar"]
    return command + [str(e) for e in extra]


def child_env(markers=None, pause=None, **extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("SX_PAUSE_AT", None)
    env.pop("SX_MARKERS", None)
    if markers:
        env["SX_MARKERS"] = str(markers)
    if pause:
        env["SX_PAUSE_AT"] = pause
    env.update(extra)
    return env


def run_recipe(data_folder, output_root, *extra, markers=None, check=True, timeout=300, env=None, **popen):
    """Run the recipe to its end; returns the ``CompletedProcess`` (``output`` = stdout + stderr)."""
    completed = subprocess.run(
        recipe_command(data_folder, output_root, *extra), capture_output=True, text=True, timeout=timeout,
        env=env or child_env(markers), cwd=ROOT, **popen,
    )
    completed.output = completed.stdout + completed.stderr
    if check and completed.returncode != 0:
        raise AssertionError(f"recipe failed ({completed.returncode}):\n{completed.output[-5000:]}")
    return completed


def run_until_paused(data_folder, output_root, pause, markers, *extra, timeout=300, hparams=BASE_YAML):
    """Start the recipe, wait until the harness reports ``paused <pause>``, then SIGKILL it.

    Returns the markers written up to the kill.
    """
    log = open(f"{markers}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        recipe_command(data_folder, output_root, *extra, hparams=hparams), stdout=log, stderr=subprocess.STDOUT,
        env=child_env(markers, pause), cwd=ROOT,
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if os.path.exists(markers) and f"paused {pause}" in open(markers).read():
                break
            if proc.poll() is not None:
                tail = open(log.name).read()[-3000:]
                raise AssertionError(f"the run ended ({proc.returncode}) before {pause}:\n{tail}")
            time.sleep(0.05)
        else:
            raise AssertionError(f"{pause} not reached in {timeout} s")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    return read_markers(markers)


def read_markers(path):
    """The harness's event lines as lists of fields."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def read_metrics(output_root, seed=SEED):
    with open(os.path.join(experiment_dir(output_root, seed), "report", "metrics.json")) as f:
        return json.load(f)


def train_log_epochs(output_root, seed=SEED):
    """``train_log.txt`` lines without the wall-clock fields (``seconds``)."""
    with open(os.path.join(experiment_dir(output_root, seed), "train_log.txt")) as f:
        lines = [line.strip() for line in f if line.startswith("epoch")]
    return [", ".join(p for p in line.replace(" - ", ", ").split(", ") if "seconds" not in p) for line in lines]


def checkpoints(output_root, seed=SEED):
    save = os.path.join(experiment_dir(output_root, seed), "save")
    return sorted(n for n in os.listdir(save) if n.startswith("CKPT+")) if os.path.isdir(save) else []


def copy_experiment(src_root, dst_root):
    """A copy of a finished run's output root (to break it without touching the original)."""
    shutil.copytree(src_root, dst_root)
    return dst_root
