"""Export of an experiment as a SpeechBrain model folder: layout, offline reload, replacement, bad input.

The experiment (conftest) is a small untrained one; the last test trains a tiny SynthEmo
experiment (tests/conftest.py fixtures) and compares the exported model with the training Brain.
"""

import csv
import getpass
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from publish_helpers import HPARAMS_DIR, ROOT, SPEAKERS, assert_no_machine_strings, build_experiment, write_wav

from speechbrain_ext.publish import PublishError, export_model
from speechbrain_ext.publish.cli import main
from speechbrain_ext.publish.onnx_export import reference_embeddings


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


def test_export_carries_no_machine_path_or_user(experiment, exported):
    exp = experiment[0]
    assert_no_machine_strings(exported[1], exp, os.path.dirname(os.path.dirname(os.path.dirname(exp))), ROOT)


def test_reexport_replaces_previous_export_but_not_other_folders(experiment, tmp_path):
    exp, _, _, worse = experiment
    out = tmp_path / "model"
    export_model(exp, out)
    first = json.load(open(out / "export.json"))["checkpoint"]
    result = export_model(exp, out, checkpoint=os.path.basename(worse))  # a previous export: replaced
    assert result["checkpoint"] != first and json.load(open(out / "export.json"))["checkpoint"] == result["checkpoint"]
    assert any("not with the exported" in w for w in result["warnings"])  # metrics are of another checkpoint
    assert "not with the exported" in (out / "README.md").read_text()
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temp or old folder left behind

    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(PublishError, match="not a previous export.*--overwrite"):
        export_model(exp, other)
    assert (other / "todo.txt").read_text() == "keep me"
    export_model(exp, other, overwrite=True)
    assert not (other / "todo.txt").exists() and (other / "hyperparams.yaml").exists()
    with pytest.raises(PublishError, match="must not be the experiment folder"):
        export_model(exp, os.path.join(exp, "model"))


def test_threshold_comes_from_the_validation_trials_when_the_run_recorded_them(experiment, tmp_path):
    """The shipped operating point is chosen on validation speakers; an older run's eval threshold is flagged."""
    exp = copy_experiment(experiment, tmp_path)
    path = exp / "report" / "metrics.json"
    metrics = json.load(open(path))
    old = export_model(exp, tmp_path / "old")
    assert old["threshold"] == pytest.approx(0.4321)
    assert any("chosen on evaluation trials" in w for w in old["warnings"])
    metrics["calibration"] = {"split": "valid", "condition": "all", "eer": 0.1, "eer_threshold": 0.55}
    path.write_text(json.dumps(metrics))
    new = export_model(exp, tmp_path / "new")
    assert new["threshold"] == pytest.approx(0.55) and new["threshold_condition"] == "valid/all"
    assert not any("evaluation trials" in w for w in new["warnings"])
    verification = json.load(open(tmp_path / "new" / "verification.json"))
    assert verification["threshold"] == pytest.approx(0.55) and "validation trials valid/all" in verification["source"]
    assert verification["eer"] == pytest.approx(0.1)
    assert "validation trials valid/all" in (tmp_path / "new" / "README.md").read_text()


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
    with pytest.raises(PublishError, match=rf"no checkpoint in {re.escape(str(dst))}"):
        export_model(dst, tmp_path / "out")
    assert main(["export", str(dst), str(tmp_path / "out")]) == 2
    with pytest.raises(PublishError, match="has no hyperparams.yaml"):
        export_model(dst / "save", tmp_path / "out")
    with pytest.raises(PublishError, match="checkpoint 'CKPT\\+nope' not found"):
        export_model(experiment[0], tmp_path / "out", checkpoint="CKPT+nope")
    assert not (tmp_path / "out").exists()


def test_checkpoint_mismatching_hparams_names_first_key(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    text = (dst / "hyperparams.yaml").read_text()
    (dst / "hyperparams.yaml").write_text(text.replace("channels: 16", "channels: 24"))
    with pytest.raises(PublishError) as err:
        export_model(dst, tmp_path / "out")
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
    with pytest.raises(PublishError, match="classifier.*unexpected key 'extra.weight'"):
        export_model(dst2, tmp_path / "out")


class NotATensor:
    pass


def test_checkpoint_needing_pickle_is_refused(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    for ckpt in (dst / "save").glob("CKPT*"):
        state = torch.load(ckpt / "embedding_model.ckpt", weights_only=True)
        state["payload"] = NotATensor()
        torch.save(state, ckpt / "embedding_model.ckpt")
    with pytest.raises(PublishError, match="weights_only=True"):
        export_model(dst, tmp_path / "out")


# ------------------------------------------------------------------------------------------- bad metrics


def test_unreadable_or_foreign_metrics_are_named(experiment, tmp_path):
    dst = copy_experiment(experiment, tmp_path)
    metrics = dst / "report" / "metrics.json"
    metrics.write_text('{"conditions": {"all": ')
    with pytest.raises(PublishError, match=rf"{re.escape(str(metrics))}: not a readable metrics.json"):
        export_model(dst, tmp_path / "out")
    metrics.write_text('{"eer": 0.1}')
    with pytest.raises(PublishError, match=rf"{re.escape(str(metrics))}: no 'conditions'"):
        export_model(dst, tmp_path / "out")
    with pytest.raises(PublishError, match="metrics file not found: .*nothing.json"):
        export_model(dst, tmp_path / "out", metrics_path=str(tmp_path / "nothing.json"))
    metrics.write_text(json.dumps({"conditions": {"all": {"eer": 0.1}}}))
    with pytest.raises(PublishError, match="condition 'all' has no eer_threshold"):
        export_model(dst, tmp_path / "out")
    assert main(["export", str(dst), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


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
    assert main(["export", experiment, str(model_dir)]) == 0

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
    assert -1.0 <= score <= 1.0
    if (copy / "calibration.json").exists():  # the run calibrated its scores: a decision on the LLR at p = 0.01
        decided = float(re.search(r"^llr: (-?[\d.]+) \(natural log", completed.stdout, re.M).group(1))
        threshold = float(re.search(r"threshold: ([\d.]+) \(Bayes threshold of the LLR at prior 0.01\)",
                                    completed.stdout).group(1))
    else:
        decided = score
        threshold = float(re.search(r"threshold: (-?[\d.]+) \(verification.json\)", completed.stdout).group(1))
    assert ("decision: accept" in completed.stdout) == (decided >= threshold)


def test_global_feature_normalisation_is_exported_as_its_statistics(experiment, tmp_path):
    """``norm_type: global`` keeps running statistics: the checkpoint's file is loaded and copied as it is."""
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.processing.features import InputNormalization
    from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook

    dst = copy_experiment(experiment, tmp_path)
    text = (dst / "hyperparams.yaml").read_text()
    assert "norm_type: sentence" in text
    (dst / "hyperparams.yaml").write_text(text.replace("norm_type: sentence", "norm_type: global"))
    best = os.path.join(dst, "save", os.path.basename(experiment[2]))
    norm = InputNormalization(norm_type="global").train()
    for _ in range(3):  # running statistics of 80 filterbank channels
        norm(torch.randn(4, 50, 80) * 3 + 1, torch.ones(4))
    for ckpt in (dst / "save").glob("CKPT*"):
        get_default_hook(norm, DEFAULT_SAVE_HOOKS)(norm, ckpt / "normalizer.ckpt")
    out = tmp_path / "model"
    result = export_model(dst, out)
    assert result["checkpoint"] == "save/" + os.path.basename(best) and result["reload_max_abs_diff"] <= 1e-5
    assert (out / "mean_var_norm.ckpt").read_bytes() == open(os.path.join(best, "normalizer.ckpt"), "rb").read()
    with open(out / "hyperparams.yaml") as f:
        loadables = load_hyperpyyaml(f)["pretrainer"].loadables
    assert list(loadables) == ["mean_var_norm", "embedding_model", "classifier", "label_encoder"]


def test_a_speed_perturbed_run_exports_one_label_per_class(tmp_path):
    # speed_perturb: each speaker at 0.9 and 1.1 is a class of its own, so the classifier has 3 x 4
    # outputs; the published label encoder names every one of them.
    from speechbrain.inference.classifiers import EncoderClassifier

    exp, hp, _, _ = build_experiment(tmp_path / "sp", recipe=os.path.join(HPARAMS_DIR, "ecapa_aam_speedperturb.yaml"))
    assert hp["classifier"].weight.shape[0] == 3 * len(SPEAKERS)
    out = str(tmp_path / "model")
    export_model(exp, out)
    model = EncoderClassifier.from_hparams(source=out, savedir=str(tmp_path / "cls"))
    labels = model.hparams.label_encoder
    labels.expect_len(12)
    assert [labels.ind2lab[i] for i in (0, 3, 4, 11)] == ["S0001", "S0004", "S0001@speed0.9", "S0004@speed1.1"]
    wav = torch.from_numpy(sf.read(write_wav(tmp_path / "a.wav", 1.5, 0), dtype="float32")[0])[None]
    assert set(model.classify_batch(wav)[3]) <= set(labels.lab2ind)

    # speeds that do not match the classifier: named, nothing published
    path = os.path.join(exp, "hyperparams.yaml")
    text = open(path).read()
    open(path, "w").write(text.replace("speed_perturb_speeds: [1.0, 0.9, 1.1]", "speed_perturb_speeds: [1.0, 0.9]"))
    with pytest.raises(PublishError, match="4 speakers x 2 speeds \\(speed_perturb\\) but the classifier has "
                                           "out_neurons=12"):
        export_model(exp, str(tmp_path / "other"))
    assert not os.path.exists(tmp_path / "other")
    card = open(os.path.join(out, "README.md")).read()
    assert "speed perturbation, each perturbed speaker a class" in card and "1.0, 0.9, 1.1" in card
