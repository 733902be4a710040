"""The old publishing paths keep working with a DeprecationWarning that names the new one."""

import importlib
import os
import runpy
import subprocess
import sys

import pytest
from publish_helpers import ROOT

from speechbrain_ext import publish
from speechbrain_ext.publish import onnx_export, verify


@pytest.mark.parametrize("old, name, new", [
    ("speechbrain_ext.hub", "HubError", publish.PublishError),
    ("speechbrain_ext.hub", "export_model", publish.export_model),
    ("speechbrain_ext.hub", "push_model", publish.push_model),
    ("speechbrain_ext.hub", "read_threshold", publish.read_threshold),
    ("speechbrain_ext.export", "onnx_session", onnx_export.onnx_session),
    ("speechbrain_ext.export", "reference_embeddings", onnx_export.reference_embeddings),
    ("speechbrain_ext.verify", "verify_files", verify.verify_files),
])
def test_old_import_paths_resolve_with_a_deprecation_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated: use speechbrain_ext\.publish\."):
        assert getattr(module, name) is new
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_verify_entry_point_is_not_deprecated(recwarn):
    from speechbrain_ext.verify import main

    assert main is verify.main
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_hub_command_still_runs_and_says_where_it_moved(exported, tmp_path, capsys, monkeypatch):
    from speechbrain_ext import hub

    with pytest.warns(DeprecationWarning, match="use python -m speechbrain_ext.publish"):
        assert hub.main(["export", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    assert "error: experiment folder not found" in capsys.readouterr().err

    # As a user runs it: the warning is shown (python shows DeprecationWarnings raised in __main__).
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=ROOT)
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-m", "speechbrain_ext.hub", "push", exported[1], "--repo-id", "me/m",
                           "--dry-run"], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DeprecationWarning" in done.stderr and "python -m speechbrain_ext.publish" in done.stderr
    assert "would upload" in done.stdout and "library_name: speechbrain" in done.stdout


def test_publish_module_runs_as_a_command(exported, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["speechbrain_ext.publish", "push", exported[1], "--repo-id", "me/m",
                                      "--dry-run"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("speechbrain_ext.publish", run_name="__main__")
    assert done.value.code == 0
    assert "would upload" in capsys.readouterr().out
