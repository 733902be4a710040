"""Resemblyzer as the external anchor: embeddings, scores on SynthEmo, cache, missing install."""

import importlib.metadata
import json
import os
import re
import sys

import numpy as np
import pytest
import torch

from speechbrain_ext import anchor, evaluation, report, trial_scores
from speechbrain_ext.splits import Split

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ("resemblyzer", "resemblyzer.audio", "resemblyzer.hparams", "resemblyzer.voice_encoder")


def _require_resemblyzer():
    """Skip only where the distribution is absent (make test installs it), never where it is broken."""
    try:
        return importlib.metadata.version("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"resemblyzer is not installed: {anchor.INSTALL_HINT}")


@pytest.fixture(scope="module")
def encoder():
    """A Resemblyzer encoder."""
    _require_resemblyzer()
    return anchor.ResemblyzerEncoder()


@pytest.fixture(scope="module")
def synthemo_embeddings(encoder, tiny_synthemo, tmp_path_factory):
    """Eval embeddings of the tiny SynthEmo corpus, computed once into a cache folder."""
    data_folder, manifests = tiny_synthemo
    cache_dir = str(tmp_path_factory.mktemp("anchor_cache"))
    manifest = os.path.join(manifests, "eval.csv")
    ids, embeddings, info = anchor.embed_manifest(manifest, data_folder, cache_dir=cache_dir, encoder=encoder)
    return manifest, cache_dir, ids, embeddings, info


def _wave(seconds, seed):
    return np.random.default_rng(seed).normal(0.0, 0.1, int(seconds * anchor.SAMPLE_RATE)).astype(np.float32)


def test_encode_shape_unit_norm_and_resemblyzer_own_path(encoder):
    wavs = torch.from_numpy(np.stack([_wave(2.0, 0), _wave(2.0, 1), _wave(2.0, 2)]))
    emb = encoder.encode(wavs, torch.tensor([1.0, 1.0, 0.6]))
    assert emb.shape == (3, 1, 256) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3, 1), atol=1e-5)
    assert torch.isfinite(emb).all() and (emb >= 0).all()  # GE2E embeddings leave a ReLU
    # The README's recipe: preprocess_wav then embed_utterance, on the unpadded signal.
    lib = encoder.lib
    expected = encoder.model.embed_utterance(lib.preprocess_wav(wavs[2, : int(0.6 * wavs.shape[1])].numpy()))
    assert np.allclose(emb[2, 0].numpy(), expected, atol=1e-6)
    # lens is honoured: the 60 % row differs from the whole signal.
    assert not torch.allclose(emb[2], encoder.encode(wavs[2:], torch.ones(1))[0], atol=1e-3)


def test_preprocessing_is_applied(encoder):
    speech = _wave(1.5, 3)
    with_pause = np.concatenate([speech[:12000], np.zeros(3 * anchor.SAMPLE_RATE, np.float32), speech[12000:]])
    assert len(encoder.prepare(with_pause)) < len(with_pause)  # the 3 s pause is cut
    raw = anchor.ResemblyzerEncoder(preprocess=False)
    assert len(raw.prepare(with_pause)) == len(with_pause)
    assert not np.allclose(raw.embed(with_pause), encoder.embed(with_pause), atol=1e-3)


def test_no_speech_and_silence_are_embedded_not_nan(encoder):
    t = np.arange(2 * anchor.SAMPLE_RATE) / anchor.SAMPLE_RATE
    hum = (0.1 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)  # the VAD finds no speech in it
    before = encoder.embedded_untrimmed
    assert len(encoder.lib.preprocess_wav(hum)) == 0
    assert np.isfinite(encoder.embed(hum)).all()
    assert encoder.embedded_untrimmed == before + 1
    assert np.isfinite(encoder.embed(np.zeros(anchor.SAMPLE_RATE, np.float32))).all()  # Resemblyzer alone: NaN


def test_deterministic_across_encoders(encoder):
    wavs = torch.from_numpy(np.stack([_wave(3.0, 4), _wave(3.0, 5)]))
    again = anchor.ResemblyzerEncoder()
    assert torch.equal(encoder.encode(wavs, torch.ones(2)), again.encode(wavs, torch.ones(2)))


def test_synthemo_trials_same_speaker_scores_higher(synthemo_embeddings, tiny_synthemo):
    manifest, _, ids, embeddings, info = synthemo_embeddings
    _, manifests = tiny_synthemo
    trials_dir = os.path.join(manifests, "trials", "eval")
    n_rows = sum(1 for _ in open(manifest)) - 1
    assert len(ids) == n_rows == info["utterances"] and embeddings.shape == (n_rows, 256)
    assert info["skipped_unreadable"] == 0
    metrics, scores = evaluation.score_trial_dir(ids, embeddings, trials_dir, return_scores=True)
    for name, path in evaluation.trial_lists(trials_dir).items():
        lines = [line for line in open(path) if line.strip()]
        assert len(scores[name][0]) == len(lines)
        assert metrics[name]["n_target"] == sum(line.startswith("1") for line in lines)
    s, labels = scores["all"]
    labels = np.asarray(labels).astype(bool)
    assert s[labels].mean() > s[~labels].mean() + 0.05, (s[labels].mean(), s[~labels].mean())
    assert metrics["all"]["eer"] < 0.5


def _splits(manifests):
    return [Split(name, os.path.join(manifests, f"{name}.csv"), os.path.join(manifests, "trials", name))
            for name in ("eval", "ood")]


def test_evaluate_anchor_goes_through_the_evaluation_stage(synthemo_embeddings, tiny_synthemo, tmp_path,
                                                          monkeypatch):
    manifest, cache_dir, ids, embeddings, _ = synthemo_embeddings
    data_folder, manifests = tiny_synthemo
    real_evaluate, seen = evaluation.evaluate, {}

    def spy(encode, make_loader, eval_splits, *args, **kwargs):
        seen.update(encode=encode, splits=[s.name for s in eval_splits])
        return real_evaluate(encode, make_loader, eval_splits, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    out_dir = tmp_path / "out"
    out = anchor.evaluate_anchor(_splits(manifests), data_folder, str(out_dir), cache_dir=cache_dir, n_draws=50)
    assert seen["splits"] == ["eval", "ood"] and seen["encode"].__func__ is anchor.ResemblyzerEncoder.encode
    written = report.read_metrics(str(out_dir))
    assert written["system"] == "Resemblyzer" and written["resemblyzer_version"] == "0.1.4"
    assert set(written["splits"]) == {"eval", "ood"}
    assert written["conditions"] == written["splits"]["eval"]["conditions"]
    trials_dir = os.path.join(manifests, "trials", "eval")
    expected = evaluation.score_trial_dir(ids, embeddings, trials_dir)
    assert written["conditions"]["all"]["eer"] == pytest.approx(expected["all"]["eer"])  # the cached eval embeddings
    low, high = written["conditions"]["all"]["eer_ci"]  # a speaker-bootstrap interval, as for our systems
    assert low <= written["conditions"]["all"]["eer"] <= high
    for split in ("eval", "ood"):
        scores = trial_scores.load_trial_scores(trial_scores.scores_path(str(out_dir), split))
        assert scores.meta["system"] == "Resemblyzer" and scores.seed is None
        assert set(scores.conditions) >= {"all", "neutral_emotional"}
        n_rows = sum(1 for _ in open(os.path.join(manifests, f"{split}.csv"))) - 1
        assert written["embedded"][split]["utterances"] == n_rows
    assert anchor.status_line(out).startswith("anchor (Resemblyzer): EER ")
    assert anchor.skip_reason(str(out_dir)) is None


def test_cache_reused_and_invalidated_by_manifest(synthemo_embeddings, tiny_synthemo, tmp_path, monkeypatch, caplog):
    manifest, cache_dir, ids, embeddings, _ = synthemo_embeddings
    data_folder, _ = tiny_synthemo
    enc = anchor.ResemblyzerEncoder()
    calls = []
    real_embed = anchor.ResemblyzerEncoder.embed
    monkeypatch.setattr(enc, "embed", lambda wav: calls.append(1) or real_embed(enc, wav))
    ids2, emb2, _ = anchor.embed_manifest(manifest, data_folder, cache_dir=cache_dir, encoder=enc)
    assert calls == [] and ids2 == ids and torch.equal(emb2, embeddings)

    lines = open(manifest).read().splitlines(keepends=True)
    smaller = tmp_path / "eval.csv"
    smaller.write_text("".join(lines[:4]))  # header + 3 utterances
    ids3, emb3, info3 = anchor.embed_manifest(str(smaller), data_folder, cache_dir=cache_dir, encoder=enc)
    assert len(calls) == 3 and len(ids3) == 3 and info3["utterances"] == 3 and info3["audio_seconds"] > 0
    assert torch.allclose(emb3, embeddings[[ids.index(u) for u in ids3]], atol=1e-6)
    assert len([n for n in os.listdir(cache_dir) if n.startswith("eval-")]) == 2

    cache = anchor.cache_path(cache_dir, "eval", str(smaller), data_folder, enc.version, enc.preprocess)
    with open(cache, "wb") as f:
        f.write(b"not a torch file")
    ids4, _, _ = anchor.embed_manifest(str(smaller), data_folder, cache_dir=cache_dir, encoder=enc)
    assert ids4 == ids3 and len(calls) == 6
    assert "cannot read the anchor cache" in caplog.text
    assert not [n for n in os.listdir(cache_dir) if n.startswith(".tmp-")]


def test_missing_resemblyzer_skips_the_anchor_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # what the import system does for a missing package
    with pytest.raises(anchor.AnchorUnavailable, match=r"resemblyzer is not installed \(install with: .*--no-deps"):
        anchor.load_resemblyzer()
    reason = anchor.anchor_skip_reason()
    assert reason.startswith("resemblyzer is not installed") and anchor.REQUIREMENT in reason
    out_dir = tmp_path / "anchor"
    status = anchor.main([str(out_dir), os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam.yaml")])
    printed = capsys.readouterr().out
    assert status == 0
    assert f"anchor row skipped: {reason}" in printed
    assert json.load(open(out_dir / "metrics.json")) == {"conditions": {}, "system": "Resemblyzer", "skipped": reason}
    assert f"anchor row skipped: {reason}" in (out_dir / "report.md").read_text()
    assert anchor.skip_reason(str(out_dir)) == reason
    payload = anchor.evaluate_anchor(_splits(str(tmp_path)), str(tmp_path), str(tmp_path / "api"))
    assert payload["skipped"] == reason


def test_command_line_scores_a_recipe_configuration(tiny_synthemo, tmp_path, capsys):
    _require_resemblyzer()
    data_folder, manifests = tiny_synthemo
    out_dir = tmp_path / "anchor"
    hparams = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam.yaml")
    status = anchor.main([str(out_dir), hparams, "--draws", "20", "--data_folder", data_folder,
                          "--manifest_folder", manifests, "--output_folder", str(tmp_path / "unused")])
    assert status == 0, capsys.readouterr().err
    assert sorted(os.listdir(out_dir / "scores")) == ["eval.npz", "ood.npz"]
    assert "ood:" in capsys.readouterr().out


def test_missing_webrtcvad_names_the_module(monkeypatch):
    _require_resemblyzer()
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "webrtcvad", None)
    reason = anchor.anchor_skip_reason()
    assert reason is not None and "resemblyzer cannot be imported" in reason and "webrtcvad" in reason


def test_installed_resemblyzer_imports():
    """Where the distribution is installed, the anchor must run."""
    version = _require_resemblyzer()
    assert anchor.anchor_skip_reason() is None
    assert f"resemblyzer=={version}" == anchor.REQUIREMENT


def test_makefile_installs_the_pinned_resemblyzer():
    makefile = open(os.path.join(ROOT, "Makefile")).read()
    rule = re.search(r"^\$\(STAMP\):.*?(?=^\S)", makefile, re.S | re.M).group(0)
    assert re.search(rf"pip install --quiet (--no-cache-dir )?--no-deps {re.escape(anchor.REQUIREMENT)}", rule)
    assert "anchor]" in rule
    setup = open(os.path.join(ROOT, "setup.cfg")).read()
    extra = re.search(r"^anchor =\n((?:    .*\n)+)", setup, re.M).group(1)
    assert "webrtcvad-wheels" in extra and "librosa" in extra
