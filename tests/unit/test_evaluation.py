"""speechbrain_ext.evaluation runs on an encode function and a loader factory: no Brain needed."""

import json
import os

import numpy as np
import soundfile as sf
import torch

from speechbrain_ext import data as sx_data
from speechbrain_ext import evaluation

SPEAKERS = {"s1": 0.2, "s2": 0.6}  # amplitude of each speaker's constant "voice"


def _corpus(tmp_path):
    rows = ["ID,duration,wav,spk_id"]
    for spk, amp in SPEAKERS.items():
        for k in range(3):
            name = f"{spk}_{k}"
            sf.write(tmp_path / f"{name}.wav", np.full(800 + 160 * k, amp, dtype="float32"), 16000)
            rows.append(f"{name},{(800 + 160 * k) / 16000},$data_root/{name}.wav,{spk}")
    manifest = tmp_path / "eval.csv"
    manifest.write_text("\n".join(rows) + "\n")
    trials = tmp_path / "trials"
    trials.mkdir()
    (trials / "all.txt").write_text("1 s1_0 s1_1\n1 s2_0 s2_1\n0 s1_0 s2_1\n0 s2_0 s1_2\n")
    return str(manifest), str(trials)


def _encode(wavs, lens):
    """A 2-D "embedding" from the mean amplitude: speakers separate by angle."""
    amp = wavs.sum(dim=1) / (lens * wavs.shape[1])
    return torch.stack([amp, 1 - amp], dim=1)[:, None, :]


def _make_loader(dataset):
    examples = [dataset[i] for i in range(len(dataset))]
    return [sx_data.collate_skipping(examples[i : i + 2]) for i in range(0, len(examples), 2)]


def test_evaluate_scores_writes_the_report_and_reuses_the_cache(tmp_path):
    manifest, trials = _corpus(tmp_path)
    cache, out = str(tmp_path / "emb" / "eval.pt"), str(tmp_path / "report")
    metrics = evaluation.evaluate(_encode, _make_loader, manifest, str(tmp_path), trials, out,
                                  cache_path=cache, title="t", extra={"system": "fake"})
    assert metrics["all"]["eer"] == 0.0 and metrics["all"]["n_target"] == 2
    written = json.load(open(os.path.join(out, "metrics.json")))
    assert written["conditions"]["all"]["eer"] == 0.0 and written["system"] == "fake"
    cached = torch.load(cache, weights_only=True)
    assert sorted(cached["ids"]) == [f"{s}_{k}" for s in SPEAKERS for k in range(3)]

    def no_encoding(wavs, lens):
        raise AssertionError("the cached embeddings should have been used")

    again = evaluation.evaluate(no_encoding, _make_loader, manifest, str(tmp_path), trials, out, cache_path=cache)
    assert again == metrics


def test_evaluate_with_a_cohort_as_normalises(tmp_path):
    manifest, trials = _corpus(tmp_path)
    raw = evaluation.evaluate(_encode, _make_loader, manifest, str(tmp_path), trials, str(tmp_path / "a"))
    normed = evaluation.evaluate(_encode, _make_loader, manifest, str(tmp_path), trials, str(tmp_path / "b"),
                                 cohort_manifest=manifest, cohort_per_speaker=2, top_n=2)
    cohort = evaluation.speaker_cohort(_encode, _make_loader, manifest, str(tmp_path), 16000, max_per_speaker=2)
    assert cohort.shape == (2, 2) and torch.allclose(cohort.norm(dim=1), torch.ones(2))
    ids, emb = evaluation.extract_embeddings(_encode, _make_loader, evaluation.utterance_dataset(
        manifest, str(tmp_path), 16000))
    _, scores = evaluation.score_trial_dir(ids, emb, trials, cohort=cohort, top_n=2, return_scores=True)
    expected = evaluation.scoring.evaluate_conditions(scores)
    assert normed == expected and normed["all"]["eer_threshold"] != raw["all"]["eer_threshold"]
