"""recipes/SynthEmo/ablation/em_probe.py: what it refuses, the shift measure on hand-computed values, its cache."""

import importlib.util
import json
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "em_probe", os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "em_probe.py"))
em_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(em_probe)


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
