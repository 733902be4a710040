"""The AS-norm cohort as WeSpeaker builds it: per-speaker means of raw embeddings over all (or a seeded
sample across all) of a speaker's utterances, optional training-mean subtraction, top-N AS-norm."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ext import data as sx_data
from speechbrain_ext import evaluation, score_norm, scoring


def wespeaker_asnorm(train, train_spk, enrol, test, top_n, cal_mean):
    """WeSpeaker's scoring, written from its description (wespeaker/bin/score.py, score_norm.py,
    tools/vector_mean.py): embeddings minus the training mean, cosine, AS-norm over speaker means of raw
    embeddings with the biased std."""
    mean = train.mean(axis=0) if cal_mean else 0.0
    speakers = sorted(set(train_spk))
    cohort = np.stack([train[[s == k for s in train_spk]].mean(axis=0) for k in speakers]) - mean
    enrol, test = enrol - mean, test - mean

    def unit(x):
        return x / np.sqrt((x**2).sum(axis=1, keepdims=True))

    raw = (unit(enrol) * unit(test)).sum(axis=1)

    def stats(x):
        top = -np.sort(-(unit(x) @ unit(cohort).T), axis=1)[:, :top_n]
        return top.mean(axis=1), top.std(axis=1)

    (mu_e, sd_e), (mu_t, sd_t) = stats(enrol), stats(test)
    return 0.5 * ((raw - mu_e) / sd_e + (raw - mu_t) / sd_t)


@pytest.mark.parametrize("cal_mean", [False, True])
def test_scores_are_wespeakers_up_to_one_constant_factor(cal_mean):
    rng = np.random.default_rng(0)
    n_spk, per_spk, dim, top_n = 40, 6, 16, 20
    offset = rng.normal(size=dim) * 2.0  # a shared offset that mean subtraction removes
    centres = rng.normal(size=(n_spk, dim))
    train = np.repeat(centres, per_spk, axis=0) + 0.5 * rng.normal(size=(n_spk * per_spk, dim)) + offset
    train_spk = [f"spk{k:02d}" for k in range(n_spk) for _ in range(per_spk)]
    ids = [f"u{i}" for i in range(60)]
    emb = rng.normal(size=(60, dim)) + offset
    pairs = rng.integers(0, 60, size=(300, 2))
    trials = scoring.Trials(np.zeros(300, np.int8), [ids[i] for i, _ in pairs], [ids[j] for _, j in pairs])
    mean = score_norm.embedding_mean(train) if cal_mean else None
    _, means = score_norm.speaker_means(train, train_spk, mean)
    sides = emb if mean is None else score_norm.subtract_mean(emb, mean).numpy()
    ours = scoring.score_trials(ids, sides, trials, cohort=means, top_n=top_n)
    reference = wespeaker_asnorm(train, train_spk, emb[pairs[:, 0]], emb[pairs[:, 1]], top_n, cal_mean)
    np.testing.assert_allclose(ours, reference * np.sqrt((top_n - 1) / top_n), rtol=1e-5, atol=1e-6)
    labels = (rng.random(300) < 0.3).astype(np.int8)
    for metric in (scoring.compute_eer, scoring.compute_min_dcf):
        assert metric(ours[labels == 1], ours[labels == 0])[0] == pytest.approx(
            metric(reference[labels == 1], reference[labels == 0])[0], abs=1e-9)


def test_a_sample_is_drawn_across_the_speakers_utterances():
    # SynthEmo-like: each speaker's utterances sorted neutral first; the first 5 would all be neutral
    ids = [f"spk{s}/{emo}_{k}" for s in range(20) for emo in ("a_neutral", "b_angry", "c_sad") for k in range(5)]
    speakers = [u.split("/")[0] for u in ids]
    picked = score_norm.cohort_sample(ids, speakers, per_speaker=5, seed=1986)
    assert len(picked) == 100 and all(sum(u.startswith(f"spk{s}/") for u in picked) == 5 for s in range(20))
    assert sum("neutral" not in u for u in picked) > 50  # 2/3 expected
    assert picked != score_norm.cohort_sample(ids, speakers, per_speaker=5, seed=7)
    assert score_norm.cohort_sample(ids, speakers, "all") == ids
    assert score_norm.cohort_sample(ids[:3], speakers[:3], per_speaker=5) == ids[:3]
    for bad in (0, -1, "some", 2.5, True):
        with pytest.raises(ValueError, match="positive integer or 'all'"):
            score_norm.cohort_sample(ids, speakers, per_speaker=bad)


def _corpus(tmp_path, per_speaker=4):
    rows = ["ID,duration,wav,spk_id"]
    for s, amp in enumerate((0.1, 0.3, 0.7)):
        for k in range(per_speaker):
            name = f"s{s}_{k}"
            value = amp + 0.05 * k
            sf.write(tmp_path / f"{name}.wav", np.full(800 + 80 * k, value, "float32"), 16000)
            rows.append(f"{name},{(800 + 80 * k) / 16000},$data_root/{name}.wav,s{s}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    return str(tmp_path / "train.csv")


def _encode(wavs, lens):
    amp = wavs.sum(dim=1) / (lens * wavs.shape[1])
    return torch.stack([amp, 2 * amp + 1], dim=1)[:, None, :]


def _make_loader(dataset):
    examples = [dataset[i] for i in range(len(dataset))]
    return [sx_data.collate_skipping(examples[i : i + 3]) for i in range(0, len(examples), 3)]


def test_speaker_cohort_is_the_mean_of_all_raw_embeddings(tmp_path):
    manifest = _corpus(tmp_path)
    cohort, mean = evaluation.speaker_cohort(_encode, _make_loader, manifest, str(tmp_path), 16000,
                                             return_mean=True)
    amps = {s: [a + 0.05 * k for k in range(4)] for s, a in enumerate((0.1, 0.3, 0.7))}
    raw = {s: np.array([[a, 2 * a + 1] for a in v]) for s, v in amps.items()}
    expected = np.stack([raw[s].mean(axis=0) for s in range(3)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(cohort.numpy(), expected, atol=1e-4)  # 16-bit samples
    np.testing.assert_allclose(mean.numpy(), np.concatenate(list(raw.values())).mean(axis=0), atol=1e-4)
    centred = evaluation.speaker_cohort(_encode, _make_loader, manifest, str(tmp_path), 16000, "all",
                                        subtract_mean=True)
    shifted = np.stack([raw[s].mean(axis=0) for s in range(3)]) - mean.numpy()
    np.testing.assert_allclose(centred.numpy(), shifted / np.linalg.norm(shifted, axis=1, keepdims=True),
                               atol=1e-3)


def test_speaker_cohort_samples_across_utterances_and_caches(tmp_path):
    manifest = _corpus(tmp_path, per_speaker=6)
    seen = []

    def encode(wavs, lens):
        seen.extend(round(float(a), 3) for a in wavs.sum(dim=1) / (lens * wavs.shape[1]))
        return _encode(wavs, lens)

    cache = str(tmp_path / "cohort.pt")
    cohort = evaluation.speaker_cohort(encode, _make_loader, manifest, str(tmp_path), 16000, 2, seed=4,
                                       cache_path=cache)
    assert cohort.shape == (3, 2) and len(seen) == 6
    assert torch.load(cache, weights_only=True)["ids"]
    first_two = {round(a + 0.05 * k, 3) for a in (0.1, 0.3, 0.7) for k in range(2)}
    assert set(seen) != first_two  # not the first utterances of each speaker, for this seed
