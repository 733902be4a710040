"""recipes/SynthEmo/ablation/em_probe.py: what it refuses, the shift measure on hand-computed values, its cache."""

import json
import os

import numpy as np
import pytest
import torch
from recipe_scripts import load_script

em_probe = load_script("recipes", "SynthEmo", "ablation", "em_probe.py")


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        em_probe.probe_run(str(tmp_path))


def test_relative_shift_is_shift_over_separation():
    # s1 neutral [1, 0], s1 sad [0, 1] -> shift 1 - cos = 1; s2 neutral [-1, 0] -> separation 2
    labels = {"a": ("s1", "neutral"), "b": ("s1", "sad"), "c": ("s2", "neutral")}
    out = em_probe.relative_emotion_shift(["a", "b", "c"], torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
                                          labels)
    assert out == pytest.approx({"shift": 1.0, "separation": 2.0, "ratio": 0.5})


def test_one_speaker_has_no_separation():
    out = em_probe.relative_emotion_shift(["a"], torch.ones(1, 2), {"a": ("s1", "neutral")})
    assert out["separation"] != out["separation"]  # nan, not a division by zero


def test_a_cached_probe_is_reused_only_for_its_settings_and_checkpoint(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "metrics.json").write_text(json.dumps({"conditions": {"all": {"eer": 0.1}},
                                                                  "checkpoint": "save/CKPT+2"}))
    settings = em_probe.probe_settings([0.2])
    cached = {"settings": settings, "checkpoint": "CKPT+2", "results": {}}
    (tmp_path / "report" / "em_probe.json").write_text(json.dumps(cached))
    assert em_probe.cached_probe(str(tmp_path), settings) == cached
    assert em_probe.probe_run(str(tmp_path), [0.2]) == cached  # no brain loaded: nothing else is in the folder
    assert em_probe.cached_probe(str(tmp_path), em_probe.probe_settings([0.1])) is None
    (tmp_path / "report" / "metrics.json").write_text(json.dumps({"conditions": {"all": {"eer": 0.1}},
                                                                  "checkpoint": "save/CKPT+3"}))
    assert em_probe.cached_probe(str(tmp_path), settings) is None


def _fake_probe(run, seed, separations):
    """Per-trial score files of a probed run: 20 speakers, 1 target + 9 non-targets each, per mask."""
    from speechbrain_ext.trial_scores import save_trial_scores

    rng = np.random.default_rng(seed)
    labels = np.tile(np.array([1] + [0] * 9, np.int8), 20)
    speakers = np.repeat([f"S{i}" for i in range(20)], 10)
    for mask, separation in separations.items():
        scores = rng.normal(size=labels.size) + separation * labels
        save_trial_scores(em_probe.scores_file(str(run), mask), {"all": (scores, labels)}, {"all": speakers},
                          meta={"seed": seed, "split": "valid", "mask": mask})


def test_mask_differences_pair_masks_over_speakers_and_seeds(tmp_path):
    runs = []
    for seed in (1, 2, 3):
        _fake_probe(tmp_path / f"seed{seed}", seed, {"none": 6.0, "highest@0.2": 0.0, "random@0.2": 6.0,
                                                     "lowest@0.2": 6.0})
        runs.append(str(tmp_path / f"seed{seed}"))
    masks = ["none", "highest@0.2", "random@0.2", "lowest@0.2"]
    pairs = [("highest@0.2", "random@0.2"), ("lowest@0.2", "random@0.2")]
    summary, diffs = em_probe.mask_differences(runs, "valid", masks, pairs, n_draws=200)
    assert summary["none"]["value"] == 0.0 and summary["highest@0.2"]["value"] > 0.3  # separated vs chance
    high = diffs[("highest@0.2", "random@0.2")]
    assert high["verdict"] == "worse" and high["low"] > 0.2  # hiding these frames raises the EER
    assert diffs[("lowest@0.2", "random@0.2")] == {**diffs[("lowest@0.2", "random@0.2")], "difference": 0.0,
                                                   "verdict": "not resolved"}
    os.remove(em_probe.scores_file(runs[0], "none"))
    with pytest.raises(FileNotFoundError, match=r"seed1/report/em_probe/none\.npz"):  # named, not skipped
        em_probe.mask_differences(runs, "valid", masks, pairs, n_draws=200)
