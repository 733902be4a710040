"""Shared fixtures: a tiny SynthEmo corpus generated once per test session."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CORPUS = {"n_train": 8, "n_valid": 3, "n_eval": 4, "n_sentences": 4}


def pytest_configure(config):
    # SpeechBrain and torch spawn many threads by default; two cores is the budget.
    os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def tiny_synthemo(tmp_path_factory):
    """A tiny SynthEmo corpus and its prepared manifests: ``(data_folder, manifest_folder)``."""
    from data_prep.synthemo import prepare_synthemo

    root = tmp_path_factory.mktemp("synthemo")
    data_folder, manifests = str(root / "data"), str(root / "manifests")
    prepare_synthemo(data_folder, manifests, seed=1234, **TINY_CORPUS)
    return data_folder, manifests


@pytest.fixture
def run_synthemo_recipe(tiny_synthemo, tmp_path):
    """Run ``recipes/SynthEmo/train.py <hparams>`` on the tiny corpus; returns ``(completed, output_root)``.

    The same code path as a real run: only the corpus size and the encoder width differ.
    """
    data_folder, _ = tiny_synthemo

    def run(hparams, *extra, output_root=None, check=True, timeout=300):
        output_root = str(output_root or tmp_path / "results")
        command = recipe_command(hparams, data_folder, output_root, *extra)
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
        if check and completed.returncode != 0:
            raise AssertionError(f"recipe failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
        return completed, output_root

    return run


def recipe_command(hparams, data_folder, output_root, *extra):
    """The command line of a tiny recipe run."""
    return [
        sys.executable,
        os.path.join(ROOT, "recipes", "SynthEmo", "train.py"),
        os.path.join(ROOT, "recipes", "SynthEmo", "hparams", hparams),
        "--data_folder",
        data_folder,
        "--output_root",
        output_root,
        "--n_train_speakers",
        str(TINY_CORPUS["n_train"]),
        "--n_valid_speakers",
        str(TINY_CORPUS["n_valid"]),
        "--n_eval_speakers",
        str(TINY_CORPUS["n_eval"]),
        "--n_sentences",
        str(TINY_CORPUS["n_sentences"]),
        "--channels",
        "32",
        "--speakers_per_batch",
        "4",
        *extra,
    ]
