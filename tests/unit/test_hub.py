"""Hub export, push (mocked Hub), verify CLI and ONNX/TorchScript parity on a small untrained experiment.

The experiment is built from the real SynthEmo recipe YAML (encoder width 16) and saved
with the recipe's own Checkpointer, without training: everything here runs in seconds.
The last test trains a tiny SynthEmo experiment (conftest fixtures) and compares the
exported model with the training Brain.
"""

import contextlib
import csv
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from speechbrain_ext import hub
from speechbrain_ext.export import onnx_session, reference_embeddings
from speechbrain_ext.hparams import load_hparams
from speechbrain_ext.verify import main as verify_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam.yaml")
SPEAKERS = ["S0001", "S0002", "S0003", "S0004"]
METRICS = {
    "all": {"eer": 0.125, "eer_threshold": 0.4321, "min_dcf": 0.5, "min_dcf_threshold": 0.6, "min_dcf_p_target": 0.01,
            "n_target": 20, "n_nontarget": 60},
    "neutral_emotional": {"eer": 0.25, "eer_threshold": 0.3, "min_dcf": 0.75, "min_dcf_threshold": 0.7,
                          "min_dcf_p_target": 0.01, "n_target": 8, "n_nontarget": 24},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, spinning OpenMP threads slow these small models ~10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket connection is a test failure: nothing here may reach the Hub."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def build_experiment(root, channels=16):
    """An experiment folder as the recipe writes it, with two checkpoints (the EARLIER one best)."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    torch.manual_seed(0)
    overrides = {"output_root": str(root), "data_folder": str(root / "data"), "channels": channels,
                 "n_train_speakers": len(SPEAKERS)}
    hp, composed = load_hparams(RECIPE, overrides)
    exp = hp["output_folder"]
    os.makedirs(os.path.join(exp, "report"), exist_ok=True)
    with open(os.path.join(exp, "hyperparams.yaml"), "w") as f:
        f.write(f"# composed from {RECIPE}\n{composed}")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(SPEAKERS)
    encoder.save(os.path.join(hp["save_folder"], "label_encoder.txt"))
    with torch.no_grad():  # non-trivial batch-norm statistics
        for module in hp["embedding_model"].modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    best = hp["checkpointer"].save_checkpoint(meta={"EER": 10.0, "epoch": 1})
    with torch.no_grad():
        for p in hp["embedding_model"].parameters():
            p.add_(0.1 * torch.randn_like(p))
    worse = hp["checkpointer"].save_checkpoint(meta={"EER": 30.0, "epoch": 2})
    command = (f"python {ROOT}/recipes/SynthEmo/train.py {RECIPE} --data_folder {root}/data "
               f"--output_root {root} --channels {channels}")
    metrics = {"conditions": METRICS, "checkpoint": os.path.relpath(best.path, exp), "valid_EER": 10.0,
               "epoch": 1, "system": "ecapa_aam", "seed": 1986, "command": command}
    with open(os.path.join(exp, "report", "metrics.json"), "w") as f:
        json.dump(metrics, f)
    hp["checkpointer"].recover_if_possible(min_key="EER")  # the training-time modules, best checkpoint
    for key in ("embedding_model", "classifier"):
        hp[key].eval()
    return exp, hp, best.path, worse.path


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return build_experiment(tmp_path_factory.mktemp("hubexp"))


@pytest.fixture(scope="module")
def exported(experiment, tmp_path_factory):
    exp = experiment[0]
    out = tmp_path_factory.mktemp("hubout") / "model"
    return hub.export_model(exp, str(out), onnx=True), str(out)


def write_wav(path, seconds, seed, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wav = 0.3 * np.sin(2 * np.pi * (110 + 30 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, wav.astype(np.float32), rate)
    return str(path)


def user_names():
    names = {os.environ.get("USER", ""), os.environ.get("LOGNAME", "")}
    with contextlib.suppress(Exception):
        names.add(getpass.getuser())
    with contextlib.suppress(OSError):
        names.add(os.getlogin())
    return {n for n in names if len(n) >= 3}


def assert_no_machine_strings(folder, *paths):
    for name in ("hyperparams.yaml", "README.md", "verification.json", "export.json"):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        for path in paths:
            assert str(path) not in text, f"{name} contains {path}"
        assert os.path.expanduser("~") not in text
        for user in user_names():
            assert not re.search(rf"(?<![\w-]){re.escape(user)}(?![\w-])", text), f"{name} names user {user}"


# ------------------------------------------------------------------------------------------- export


def test_export_layout_and_offline_roundtrip(experiment, exported, tmp_path, monkeypatch):
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain.inference.speaker import SpeakerRecognition

    exp, hp, best, _ = experiment
    result, out = exported
    assert result["checkpoint"] == "save/" + os.path.basename(best)  # lowest EER, not the latest
    assert result["threshold"] == pytest.approx(0.4321) and result["threshold_condition"] == "all"
    names = set(os.listdir(out))
    assert {"hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt", "label_encoder.txt", "label_encoder.ckpt",
            "verification.json", "export.json", "README.md", "embedding.onnx", "embedding.torchscript.pt"} <= names
    assert not any(n.startswith(".") for n in os.listdir(os.path.dirname(out)))  # no temp folder left behind
    text = open(os.path.join(out, "hyperparams.yaml")).read()
    assert "paths:" not in text and "channels: [16, 16, 16, 16, 48]" in text
    # Checkpoints hold plain tensors: weights_only loads them.
    state = torch.load(os.path.join(out, "embedding_model.ckpt"), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    # Copied anywhere, loaded offline from a different working directory.
    copy = tmp_path / "elsewhere" / "my-model"
    shutil.copytree(out, copy)
    monkeypatch.chdir(tmp_path)
    wavs = [write_wav(tmp_path / f"{i}.wav", s, i) for i, s in enumerate((1.3, 2.1))]
    model = SpeakerRecognition.from_hparams(source=str(copy), savedir=str(tmp_path / "sv"))
    audio = [torch.from_numpy(sf.read(path, dtype="float32")[0]) for path in wavs]
    signal = torch.zeros(2, max(a.numel() for a in audio))
    for i, wav in enumerate(audio):
        signal[i, : wav.numel()] = wav
    lens = torch.tensor([a.numel() / signal.shape[1] for a in audio])
    got = model.encode_batch(signal, lens)[:, 0]
    want = reference_embeddings(hp["compute_features"], hp["mean_var_norm"], hp["embedding_model"], signal, lens)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
    score, _ = model.verify_files(wavs[0], wavs[1])
    assert torch.isfinite(score).all()
    classifier = EncoderClassifier.from_hparams(source=str(copy), savedir=str(tmp_path / "cls"))
    classifier.hparams.label_encoder.expect_len(len(SPEAKERS))
    assert set(classifier.classify_batch(signal, lens)[3]) <= set(SPEAKERS)


def test_card_front_matter_threshold_and_citations(exported):
    _, out = exported
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "speechbrain" and front["license"] == "apache-2.0"
    assert {"speaker-verification", "speechbrain", "ECAPA-TDNN"} <= set(front["tags"])
    assert front["datasets"] == ["SynthEmo"]
    results = {(r["dataset"]["config"], m["type"]): m["value"]
               for r in front["model-index"][0]["results"] for m in r["metrics"]}
    assert results[("all", "eer")] == pytest.approx(12.5) and results[("neutral_emotional", "min_dcf")] == 0.75
    for needle in ("0.4321", "`all` condition", "2210.16622", "2505.18498", "SpeechBrain", "verify_files",
                   "SpeakerRecognition.from_hparams", "width C=16", "AAM-softmax (margin 0.2, scale 30)",
                   "ONNX max |diff|"):
        assert needle in card, needle
    assert json.load(open(os.path.join(out, "verification.json")))["threshold"] == pytest.approx(0.4321)
    assert hub.read_threshold(out) == pytest.approx(0.4321)


def test_export_carries_no_machine_path_or_user(experiment, exported):
    exp = experiment[0]
    assert_no_machine_strings(exported[1], exp, os.path.dirname(os.path.dirname(os.path.dirname(exp))), ROOT)


def test_onnx_and_torchscript_match_pytorch_on_new_lengths(experiment, exported):
    """Parity on lengths and batch sizes the export never saw (tolerance 1e-4 absolute)."""
    _, hp, _, _ = experiment
    result, out = exported
    assert result["onnx"]["onnx"]["max_abs_diff"] <= 1e-4
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export; it still loads
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(os.path.join(out, "embedding.torchscript.pt"))
    session = onnx_session(os.path.join(out, "embedding.onnx"), threads=1)
    gen = torch.Generator().manual_seed(3)
    for sizes in ((12345,), (8000, 20011, 16000), (4000, 3999)):
        longest = max(sizes)
        wavs = torch.zeros(len(sizes), longest)
        for i, n in enumerate(sizes):
            wavs[i, :n] = 0.1 * torch.randn(n, generator=gen)
        lens = torch.tensor(sizes, dtype=torch.float32) / longest
        want = reference_embeddings(hp["compute_features"], hp["mean_var_norm"], hp["embedding_model"], wavs, lens)
        got_onnx = session.run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})[0]
        with torch.no_grad():
            got_ts = scripted(wavs, lens)
        assert got_onnx.shape == tuple(want.shape)
        assert np.abs(got_onnx - want.numpy()).max() <= 1e-4
        assert (got_ts - want).abs().max() <= 1e-4


def test_reexport_replaces_previous_export_but_not_other_folders(experiment, tmp_path):
    exp, _, _, worse = experiment
    out = tmp_path / "model"
    hub.export_model(exp, out)
    first = json.load(open(out / "export.json"))["checkpoint"]
    result = hub.export_model(exp, out, checkpoint=os.path.basename(worse))  # a previous export: replaced
    assert result["checkpoint"] != first and json.load(open(out / "export.json"))["checkpoint"] == result["checkpoint"]
    assert any("not with the exported" in w for w in result["warnings"])  # metrics are of another checkpoint
    assert "not with the exported" in (out / "README.md").read_text()
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temp or old folder left behind

    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(hub.HubError, match="not a previous export.*--overwrite"):
        hub.export_model(exp, other)
    assert (other / "todo.txt").read_text() == "keep me"
    hub.export_model(exp, other, overwrite=True)
    assert not (other / "todo.txt").exists() and (other / "hyperparams.yaml").exists()
    with pytest.raises(hub.HubError, match="must not be the experiment folder"):
        hub.export_model(exp, os.path.join(exp, "model"))


# ------------------------------------------------------------------------------------------- bad input


def copy_experiment(experiment, tmp_path):
    exp = experiment[0]
    dst = tmp_path / "exp"
    shutil.copytree(exp, dst)
    return dst


def test_experiment_without_checkpoint_is_named(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    for ckpt in (dst / "save").glob("CKPT*"):
        shutil.rmtree(ckpt)
    with pytest.raises(hub.HubError, match=rf"no checkpoint in {re.escape(str(dst))}"):
        hub.export_model(dst, tmp_path / "out")
    assert hub.main(["export", str(dst), str(tmp_path / "out")]) == 2
    with pytest.raises(hub.HubError, match="has no hyperparams.yaml"):
        hub.export_model(dst / "save", tmp_path / "out")
    with pytest.raises(hub.HubError, match="checkpoint 'CKPT\\+nope' not found"):
        hub.export_model(experiment[0], tmp_path / "out", checkpoint="CKPT+nope")
    assert not (tmp_path / "out").exists()


def test_checkpoint_mismatching_hparams_names_first_key(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    text = (dst / "hyperparams.yaml").read_text()
    (dst / "hyperparams.yaml").write_text(text.replace("channels: 16", "channels: 24"))
    with pytest.raises(hub.HubError) as err:
        hub.export_model(dst, tmp_path / "out")
    message = str(err.value)
    assert "does not match the hparams' embedding_model" in message
    assert "'blocks.0.conv.conv.weight' has shape [16, 80, 5] in the checkpoint but [24, 80, 5]" in message
    assert not (tmp_path / "out").exists()

    dst2 = tmp_path / "exp2"
    shutil.copytree(experiment[0], dst2)
    for ckpt in (dst2 / "save").glob("CKPT*"):
        state = torch.load(ckpt / "classifier.ckpt", weights_only=True)
        state["extra.weight"] = torch.zeros(2)
        torch.save(state, ckpt / "classifier.ckpt")
    with pytest.raises(hub.HubError, match="classifier.*unexpected key 'extra.weight'"):
        hub.export_model(dst2, tmp_path / "out")


class NotATensor:
    pass


def test_checkpoint_needing_pickle_is_refused(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    for ckpt in (dst / "save").glob("CKPT*"):
        state = torch.load(ckpt / "embedding_model.ckpt", weights_only=True)
        state["payload"] = NotATensor()
        torch.save(state, ckpt / "embedding_model.ckpt")
    with pytest.raises(hub.HubError, match="weights_only=True"):
        hub.export_model(dst, tmp_path / "out")


# ------------------------------------------------------------------------------------------- verify


def test_verify_cli_scores_and_names_bad_inputs(exported, tmp_path, capsys):
    _, out = exported
    a, b = write_wav(tmp_path / "a.wav", 1.5, 1), write_wav(tmp_path / "b.wav", 1.0, 2)
    assert verify_main([a, b, "--model", out]) == 0
    printed = capsys.readouterr().out
    score = float(re.search(r"score: (-?[\d.]+)", printed).group(1))
    assert np.isfinite(score) and "threshold: 0.4321 (verification.json)" in printed
    assert ("decision: accept" in printed) == (score >= 0.4321)
    assert verify_main([a, b, "--model", out, "--threshold", "-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accept"] is True

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert verify_main([a, str(bad), "--model", out]) == 2
    assert f"cannot read wav '{bad}'" in capsys.readouterr().err
    assert verify_main([a, str(tmp_path / "missing.wav"), "--model", out]) == 2
    assert "missing.wav': no such file" in capsys.readouterr().err
    assert verify_main([a, b, "--model", str(tmp_path)]) == 2
    assert f"model folder {tmp_path} has no hyperparams.yaml" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- push (mocked)


class FakeHub:
    """Records HfApi calls; ``remote`` is the repo's file list (None: the repo does not exist)."""

    def __init__(self, monkeypatch, remote=None, fail=None):
        from huggingface_hub import HfApi

        self.calls, self.remote, self.fail = [], remote, fail
        for name in ("list_repo_files", "create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        fake = self

        def method(api, *args, **kwargs):
            fake.calls.append((name, args, kwargs))
            if fake.fail is not None:
                raise fake.fail
            if name == "list_repo_files":
                if fake.remote is None:
                    raise _not_found()
                return list(fake.remote)
            if name == "upload_folder":
                return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/1"})()
            return None

        return method

    def names(self):
        return [c[0] for c in self.calls]


def _response(status):
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/api/models/me/model"))


def _not_found():
    from huggingface_hub.errors import RepositoryNotFoundError

    return RepositoryNotFoundError("404 repository not found", response=_response(404))


TOKEN = "hf_SECRET_test_token_123"


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return TOKEN


def test_push_dry_run_lists_files_and_card_without_network_or_token(exported, monkeypatch, capsys):
    import huggingface_hub

    _, out = exported
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: pytest.fail("dry run must not read the token"))
    assert hub.main(["push", out, "--repo-id", "me/ecapa-synthemo", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would upload" in printed and "me/ecapa-synthemo" in printed
    assert re.search(r"embedding_model\.ckpt\s+[\d,]+ B", printed)
    assert "library_name: speechbrain" in printed  # the card


def test_push_creates_repo_and_uploads_with_stored_token(exported, token, monkeypatch, capsys):
    _, out = exported
    fake = FakeHub(monkeypatch, remote=None)
    assert hub.main(["push", out, "--repo-id", "me/model", "--private"]) == 0
    assert fake.names() == ["list_repo_files", "create_repo", "upload_folder"]
    create = fake.calls[1]
    assert create[1] == ("me/model",) and create[2]["private"] is True
    upload = fake.calls[2][2]
    assert upload["repo_id"] == "me/model" and upload["folder_path"] == out and upload["delete_patterns"] is None
    printed = capsys.readouterr()
    assert "created and uploaded" in printed.out
    assert TOKEN not in printed.out + printed.err  # never printed


def test_push_updates_own_repo_and_refuses_other_content(exported, token, monkeypatch, capsys):
    _, out = exported
    fake = FakeHub(monkeypatch, remote=[".gitattributes", "hyperparams.yaml", "README.md"])
    result = hub.push_model(out, "me/model", revision="v1")
    assert fake.names() == ["list_repo_files", "upload_folder"] and result["deleted"] == []
    assert fake.calls[1][2]["revision"] == "v1"

    fake = FakeHub(monkeypatch, remote=[".gitattributes", "pytorch_model.bin", "config.json"])
    other = r"already holds other content \(config.json, pytorch_model.bin\).*--overwrite"
    with pytest.raises(hub.HubError, match=other):
        hub.push_model(out, "me/model")
    assert "upload_folder" not in fake.names()
    result = hub.push_model(out, "me/model", overwrite=True)
    assert fake.calls[-1][2]["delete_patterns"] == ["config.json", "pytorch_model.bin"]
    assert result["deleted"] == ["config.json", "pytorch_model.bin"]


def test_push_errors_missing_token_no_network_rejected_token(exported, token, monkeypatch, capsys):
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    _, out = exported
    FakeHub(monkeypatch, fail=httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(hub.HubError, match="cannot reach the Hugging Face Hub.*nothing was uploaded"):
        hub.push_model(out, "me/model")
    FakeHub(monkeypatch, fail=HfHubHTTPError("401 Unauthorized", response=_response(401)))
    assert hub.main(["push", out, "--repo-id", "me/model"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "hf auth login" in err and TOKEN not in err

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    fake = FakeHub(monkeypatch)
    with pytest.raises(hub.HubError, match="no Hugging Face token.*hf auth login.*HF_TOKEN"):
        hub.push_model(out, "me/model")
    assert fake.calls == []
    with pytest.raises(hub.HubError, match="has no hyperparams.yaml"):
        hub.push_model(os.path.dirname(out), "me/model", dry_run=True)
    with pytest.raises(hub.HubError, match="user/name"):
        hub.push_model(out, "not a repo id", dry_run=True)


# ------------------------------------------------------------------------------------------- a trained experiment
# (here rather than in tests/recipes/: pytest's default import mode needs unique test-file basenames)


def eval_wavs(output_root, data_folder, n=2):
    """The first utterance of the first ``n`` evaluation speakers."""
    paths, speakers = [], set()
    with open(os.path.join(output_root, "manifests", "eval.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["spk_id"] not in speakers:
                speakers.add(row["spk_id"])
                paths.append(row["wav"].replace("$data_root", data_folder))
            if len(paths) == n:
                return paths
    raise AssertionError("not enough evaluation speakers")


def training_brain(experiment):
    """The recipe's Brain on the experiment's own hparams, with its best checkpoint (as the evaluation uses it)."""
    from hyperpyyaml import load_hyperpyyaml

    with open(os.path.join(experiment, "hyperparams.yaml")) as f:
        hp = load_hyperpyyaml(f)
    brain = hp["brain_class"](modules=hp["modules"], hparams=hp, checkpointer=hp["checkpointer"],
                              run_opts={"device": "cpu"})
    assert brain.checkpointer.recover_if_possible(min_key="EER") is not None
    brain.modules.eval()
    return brain


def test_trained_recipe_model_exports_reloads_offline_and_verifies(
    run_synthemo_recipe, tiny_synthemo, tmp_path, monkeypatch
):
    from speechbrain.inference.speaker import SpeakerRecognition

    # One OpenMP thread: on the shared 2-core machine this trains ~2x faster than two contending threads.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "1")
    experiment = os.path.join(out, "ecapa_aam", "seed1986")
    model_dir = tmp_path / "export" / "model"
    assert hub.main(["export", experiment, str(model_dir)]) == 0

    # No path or user name of the training run in what would be published.
    for name in ("hyperparams.yaml", "README.md", "verification.json", "export.json"):
        text = (model_dir / name).read_text(encoding="utf-8")
        for path in (str(tmp_path), tiny_synthemo[0], ROOT, os.path.expanduser("~")):
            assert path not in text, f"{name} contains {path}"
        for user in {os.environ.get("USER", ""), os.environ.get("LOGNAME", ""), getpass.getuser()} - {""}:
            assert not re.search(rf"(?<![\w-]){re.escape(user)}(?![\w-])", text), f"{name} names {user}"

    # The folder copied elsewhere loads offline and gives the training Brain's embeddings.
    copy = tmp_path / "copied" / "ecapa"
    shutil.copytree(model_dir, copy)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    wavs = eval_wavs(out, tiny_synthemo[0])
    audio = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in wavs]
    batch = torch.zeros(len(audio), max(a.numel() for a in audio))
    for i, a in enumerate(audio):
        batch[i, : a.numel()] = a
    lens = torch.tensor([a.numel() / batch.shape[1] for a in audio])
    with torch.no_grad():
        want = training_brain(experiment).encode(batch, lens)
    model = SpeakerRecognition.from_hparams(source=str(copy), savedir=str(tmp_path / "pretrained"))
    got = model.encode_batch(batch, lens)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-5

    # The verify CLI, as a user runs it, offline, on the copied folder.
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=ROOT)
    completed = subprocess.run(
        [sys.executable, "-m", "speechbrain_ext.verify", wavs[0], wavs[1], "--model", str(copy)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    score = float(re.search(r"score: (-?[\d.]+)", completed.stdout).group(1))
    threshold = float(re.search(r"threshold: (-?[\d.]+) \(verification.json\)", completed.stdout).group(1))
    assert -1.0 <= score <= 1.0
    assert ("decision: accept" in completed.stdout) == (score >= threshold)
