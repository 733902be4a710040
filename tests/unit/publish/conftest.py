"""Fixtures of the publishing tests: one small untrained experiment and its export (with ONNX) per session.

The experiment is built from the real SynthEmo recipe YAML (encoder width 16) and saved
with the recipe's own Checkpointer, without training: everything here runs in seconds.
"""

import contextlib
import socket

import pytest
import torch
from publish_helpers import build_experiment

from speechbrain_ext.publish import export_model


@contextlib.contextmanager
def single_thread():
    """One intra-op thread: on a shared 2-core machine, spinning OpenMP threads slow these small models ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket connection is a test failure: nothing here may reach the Hub."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def experiment(tmp_path_factory):
    """``(experiment folder, its hparams with the best checkpoint loaded, best path, worse path)``."""
    with single_thread():
        return build_experiment(tmp_path_factory.mktemp("hubexp"))


@pytest.fixture(scope="session")
def exported(experiment, tmp_path_factory):
    """``(export_model's result, model folder)`` of the experiment, with ``onnx=True``."""
    exp = experiment[0]
    out = tmp_path_factory.mktemp("hubout") / "model"
    with single_thread():
        return export_model(exp, str(out), onnx=True), str(out)
