"""Security: weights_only loading everywhere, no hub token in any output, no machine paths in exports."""

import ast
import getpass
import glob
import os
import re
import socket
import subprocess
import sys
import uuid

import pytest
import torch
from reliability_helpers import ROOT, child_env, experiment_dir, run_recipe

from speechbrain_ext.checkpoints import SafeCheckpointer
from speechbrain_ext.data import AudioIssueCounter
from speechbrain_ext.resume import AugmentState, EpochProgress, EpochStats, RNGState

PRODUCT = ["speechbrain_ext", "data_prep", "recipes", "bench"]


def torch_load_calls():
    """``(file:line, has weights_only=True)`` for every ``torch.load(...)`` call in the project's code."""
    calls = []
    for top in PRODUCT:
        for path in sorted(glob.glob(os.path.join(ROOT, top, "**", "*.py"), recursive=True)):
            tree = ast.parse(open(path, encoding="utf-8").read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
                    safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                               for k in node.keywords)
                    calls.append((f"{os.path.relpath(path, ROOT)}:{node.lineno}", safe))
    return calls


def test_every_torch_load_uses_weights_only(scenario):
    row = scenario(
        "Audit: every torch.load in speechbrain_ext/, data_prep/, recipes/, bench/",
        "weights_only=True explicitly (RNG state stored as tensors/lists so it qualifies)",
    )
    calls = torch_load_calls()
    unsafe = [where for where, safe in calls if not safe]
    assert calls and not unsafe, unsafe
    row.observed = f"{len(calls)} calls, all weights_only=True: " + ", ".join(w for w, _ in calls)


def test_checkpoints_are_written_and_restored_with_weights_only(tmp_path, monkeypatch, scenario):
    row = scenario(
        "Checkpoint recovery (SafeCheckpointer: modules, optimizer, RNG, augmentation, epoch progress)",
        "every paramfile loads with torch.load(weights_only=True); recovery never calls torch.load otherwise",
    )
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    brain = type("B", (), {"epoch_stats": EpochStats(), "audio_issues": AudioIssueCounter()})()
    objects = {"model": model, "optimizer": optimizer, "rng_state": RNGState(),
               "augment_state": AugmentState(torch.nn.Identity()), "epoch_progress": EpochProgress(brain)}
    saved = SafeCheckpointer(tmp_path, objects).save_checkpoint(end_of_epoch=False)
    zipped = []
    for path in sorted(saved.paramfiles.values()):
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                torch.load(path, weights_only=True)
                zipped.append(path.name)
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    SafeCheckpointer(tmp_path, objects).recover_if_possible()
    assert sorted(zipped) == ["model.ckpt", "optimizer.ckpt", "rng_state.ckpt"]
    assert seen and all(w is True for w in seen), seen
    row.observed = f"{', '.join(zipped)} load with weights_only=True; recovery made {len(seen)} torch.load calls, " \
        "all weights_only=True (JSON for the others)"


@pytest.mark.slow
def test_real_checkpoint_loads_with_weights_only(baseline, scenario):
    row = scenario("Every file of a real training checkpoint", "torch files load with weights_only=True")
    save = os.path.join(experiment_dir(baseline[0]), "save")
    loaded = []
    for path in sorted(glob.glob(os.path.join(save, "CKPT+*", "*.ckpt"))):
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                torch.load(path, weights_only=True)
                loaded.append(os.path.basename(path))
    assert "rng_state.ckpt" in loaded and "optimizer.ckpt" in loaded
    row.observed = "loaded with weights_only=True: " + ", ".join(loaded)


def _files_containing(folder, needle):
    hits = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(path)
    return hits


@pytest.mark.slow
def test_hub_token_never_reaches_outputs_and_exports_carry_no_machine_paths(corpus, tmp_path, scenario):
    token = "hf_" + uuid.uuid4().hex + "Xq9"
    rows = [
        scenario("HF_TOKEN set to a unique fake value during training, export and push --dry-run",
                 "the token appears in no output file, log, card or checkpoint, nor on stdout/stderr"),
        scenario("Exported model card and hyperparams (hub export)",
                 "no absolute path, home folder, user name or host name of the training machine"),
    ]
    env = child_env(HF_TOKEN=token, HUGGING_FACE_HUB_TOKEN=token)
    out = str(tmp_path / "out")
    done = run_recipe(corpus, out, "--number_of_epochs", 1, env=env)
    model = str(tmp_path / "model")
    export = subprocess.run([sys.executable, "-m", "speechbrain_ext.hub", "export", experiment_dir(out), model],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert export.returncode == 0, export.stdout + export.stderr
    push = subprocess.run([sys.executable, "-m", "speechbrain_ext.hub", "push", model, "--repo-id", "someone/tiny",
                           "--dry-run"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert push.returncode == 0, push.stdout + push.stderr
    streams = done.output + export.stdout + export.stderr + push.stdout + push.stderr
    assert token not in streams
    hits = _files_containing(str(tmp_path), token.encode())
    assert hits == []
    n_files = sum(len(names) for _, _, names in os.walk(tmp_path))
    rows[0].observed = f"token absent from {n_files} files (training output, checkpoints, logs, export, card) " \
        "and from every stdout/stderr"

    identity = {str(tmp_path), os.path.realpath(str(tmp_path)), ROOT, os.path.expanduser("~"), socket.gethostname()}
    texts = {}
    for name in sorted(os.listdir(model)):
        path = os.path.join(model, name)
        if name.endswith((".yaml", ".md", ".json", ".txt")):
            texts[name] = open(path, encoding="utf-8").read()
    leaks = [(n, s) for n, t in texts.items() for s in identity if s and len(s) > 1 and s in t]
    user = getpass.getuser()
    leaks += [(n, user) for n, t in texts.items() if re.search(rf"(?<![\w$]){re.escape(user)}(?!\w)", t)]
    absolute = re.compile(r"(?<![\w.])/(?:tmp|home|root|work|Users)/\S*")
    abs_paths = [(n, m) for n, t in texts.items() for m in absolute.findall(t)]
    assert not leaks and not abs_paths, (leaks, abs_paths)
    rows[1].observed = f"checked {', '.join(sorted(texts))}: no absolute path, home, user or host name"


def test_readme_warns_that_hparams_files_execute_code(scenario):
    row = scenario("README security note", "states that HyperPyYAML files can execute arbitrary code")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"\*\*Security note:\*\*[^\n]*\n[^\n]*", text)
    assert match and "execute arbitrary" in match.group(0)
    row.observed = " ".join(match.group(0).split())
