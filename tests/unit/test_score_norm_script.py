"""recipes/SynthEmo/ablation/score_norm.sh: bad arguments are refused, naming what is wrong, before any work."""

import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "SynthEmo", "ablation", "score_norm.sh")


@pytest.fixture
def root(tmp_path):
    """A runs folder with prepared manifests and one unfinished run."""
    (tmp_path / "runs" / "manifests").mkdir(parents=True)
    (tmp_path / "runs" / "manifests" / "train.csv").write_text("ID,duration,wav,spk_id\n")
    (tmp_path / "runs" / "recommended" / "seed7" / "report").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("args, message", [
    ([], "usage:"),
    (["recommended"], "usage:"),
    (["no_such_system", "{run}"], "no system file recipes/SynthEmo/hparams/no_such_system.yaml"),
    (["recommended", "{run}"], "recommended/seed7' is not a finished run folder"),
    (["recommended", "{root}/runs/recommended"], "is not a finished run folder named seed<N>"),
])
def test_script_refuses_bad_arguments_before_scoring_anything(root, args, message):
    run = str(root / "runs" / "recommended" / "seed7")
    args = [a.format(run=run, root=root) for a in args]
    env = {**os.environ, "SCORE_NORM_ROOT": str(root / "runs"), "SCORE_NORM_OUT": str(root / "out")}
    result = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (root / "out").exists()


def test_script_needs_prepared_manifests(tmp_path):
    env = {**os.environ, "SCORE_NORM_ROOT": str(tmp_path / "empty")}
    result = subprocess.run(["bash", SCRIPT, "recommended", str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "empty/manifests has no train.csv" in result.stderr
