"""bench/em_probe.py: what it refuses, and the shift measure on hand-computed values."""

import importlib.util
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("em_probe", os.path.join(ROOT, "bench", "em_probe.py"))
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
