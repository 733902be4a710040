"""SynthEmo (data_prep.synthemo): determinism, layout, manifests, idempotence,
augmentation CSVs and speaker distinctness on tiny corpora."""

import csv
import glob
import json
import os

import numpy as np
import pytest
import soundfile as sf

from data_prep import synthemo as synthetic
from data_prep.common import PreparationError
from data_prep.voices import SENTENCES

TINY = dict(
    n_train=2,
    n_valid=2,
    n_eval=2,
    n_sentences=3,
    emotions=("neutral", "angry"),
    n_noise=4,
    n_rir=2,
    n_babble_speakers=3,
    progress=False,
    num_workers=1,
)
SEED = 7


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def wav_bytes(folder):
    files = sorted(glob.glob(os.path.join(folder, "**", "*.wav"), recursive=True))
    return {os.path.relpath(p, folder): open(p, "rb").read() for p in files}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("synthemo_data"))
    save = str(tmp_path_factory.mktemp("synthemo_save"))
    result = synthetic.prepare_synthemo(data, save, seed=SEED, **TINY)
    return data, save, result


def test_layout_names_and_format(tiny):
    data, _, _ = tiny
    speakers = sorted(d for d in os.listdir(data) if d.startswith("S"))
    assert speakers == [f"S{i:04d}" for i in range(1, 7)]
    for spk in speakers:
        assert sorted(os.listdir(os.path.join(data, spk))) == ["Angry", "Neutral"]
        for k, emotion in enumerate(("Neutral", "Angry")):
            names = sorted(os.listdir(os.path.join(data, spk, emotion)))
            assert names == [f"{spk}_{k * 3 + j + 1:06d}.wav" for j in range(3)]
    for path in glob.glob(os.path.join(data, "S*", "*", "*.wav")):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 < info.duration < 8.0
    assert len(glob.glob(os.path.join(data, "noise", "*.wav"))) == 4
    assert len(glob.glob(os.path.join(data, "noise", "*babble.wav"))) == 1
    assert len(glob.glob(os.path.join(data, "rir", "*.wav"))) == 2
    assert not glob.glob(os.path.join(data, "**", ".tmp-*"), recursive=True)


def test_manifests_splits_and_parallel_text(tiny):
    data, save, _ = tiny
    splits = {}
    for split in ("train", "valid", "eval"):
        with open(os.path.join(save, f"{split}.csv")) as f:
            assert f.readline().strip() == "ID,duration,wav,spk_id,emotion,text"
        rows = read_csv(os.path.join(save, f"{split}.csv"))
        assert len(rows) == 2 * 2 * 3
        for row in rows:
            assert row["wav"].startswith("$data_root/")
            path = row["wav"].replace("$data_root", data)
            assert abs(sf.info(path).duration - float(row["duration"])) < 1e-3
            assert row["emotion"] in ("neutral", "angry") and row["ID"].startswith(row["spk_id"] + "_")
        splits[split] = rows
    speakers = {split: {r["spk_id"] for r in rows} for split, rows in splits.items()}
    assert speakers["train"].isdisjoint(speakers["valid"]) and speakers["train"].isdisjoint(speakers["eval"])
    assert speakers["valid"].isdisjoint(speakers["eval"])
    texts = {}
    for row in splits["train"] + splits["valid"] + splits["eval"]:
        texts.setdefault((row["spk_id"], row["emotion"]), set()).add(row["text"])
    assert len({frozenset(t) for t in texts.values()}) == 1
    assert next(iter(texts.values())) == set(SENTENCES[:3])


def test_trials_and_marker(tiny):
    _, save, result = tiny
    for split in ("valid", "eval"):
        ids = {r["ID"] for r in read_csv(os.path.join(save, f"{split}.csv"))}
        for condition in ("neutral_neutral", "neutral_emotional", "all"):
            path = os.path.join(save, "trials", split, f"{condition}.txt")
            lines = [line.split() for line in open(path)]
            assert lines and {label for label, _, _ in lines} == {"0", "1"}
            assert all(enrol in ids and test in ids for _, enrol, test in lines)
    info = json.load(open(os.path.join(save, "prepare.json")))
    assert sorted(info["outputs"]) == sorted(result["outputs"])


def test_determinism_and_worker_independence(tiny, tmp_path):
    data, _, _ = tiny
    reference = wav_bytes(data)
    options = {**TINY, "num_workers": 2}
    synthetic.generate_synthemo(str(tmp_path / "same"), seed=SEED, **options)
    assert wav_bytes(str(tmp_path / "same")) == reference
    small = dict(TINY, n_noise=0, n_rir=0)
    synthetic.generate_synthemo(str(tmp_path / "other"), seed=SEED + 1, **small)
    other = wav_bytes(str(tmp_path / "other"))
    assert other.keys() == {k for k in reference if k.startswith("S")}
    assert all(other[k] != reference[k] for k in other)


def test_idempotence(tiny):
    data, save, _ = tiny
    files = sorted(glob.glob(os.path.join(data, "**", "*.wav"), recursive=True))
    before = {p: os.stat(p).st_mtime_ns for p in files}
    marker = os.stat(os.path.join(save, "prepare.json")).st_mtime_ns
    summary = synthetic.generate_synthemo(data, seed=SEED, **TINY)
    assert summary["n_generated"] == 0 and summary["n_skipped"] == len(files)
    synthetic.prepare_synthemo(data, save, seed=SEED, **TINY)
    assert {p: os.stat(p).st_mtime_ns for p in files} == before
    assert os.stat(os.path.join(save, "prepare.json")).st_mtime_ns == marker


def test_half_written_file_is_not_complete(tmp_path):
    options = dict(
        n_train=1,
        n_valid=0,
        n_eval=0,
        n_sentences=2,
        emotions=("neutral",),
        n_noise=0,
        n_rir=0,
        progress=False,
        num_workers=1,
    )
    synthetic.generate_synthemo(str(tmp_path), **options)
    target = tmp_path / "S0001" / "Neutral" / "S0001_000002.wav"
    original = target.read_bytes()
    target.unlink()
    # what an interrupted write leaves: a hidden temporary (speechbrain_ext.files.atomic_path's name)
    stale = target.parent / f".tmp-12345-678-{target.name}"
    stale.write_bytes(original[: len(original) // 3])
    summary = synthetic.generate_synthemo(str(tmp_path), **options)
    assert summary["n_generated"] == 1
    assert target.read_bytes() == original
    assert not stale.exists()


def test_conflicting_options_refused_and_same_folder_prepare(tmp_path):
    options = dict(
        n_train=1,
        n_valid=1,
        n_eval=1,
        n_sentences=2,
        emotions=("neutral", "sad"),
        n_noise=0,
        n_rir=0,
        progress=False,
        num_workers=1,
    )
    out = synthetic.prepare_synthemo(str(tmp_path), str(tmp_path), **options)
    assert "trials/eval/neutral_emotional.txt" in out["outputs"]
    with pytest.raises(PreparationError):
        synthetic.generate_synthemo(str(tmp_path), **dict(options, speaker_spread=0.5))


def test_noise_and_rir_csv_load_in_speechbrain(tiny):
    torch = pytest.importorskip("torch")
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    _, save, _ = tiny
    for name, n in (("noise.csv", 4), ("rir.csv", 2)):
        with open(os.path.join(save, name)) as f:
            assert f.readline().strip() == "ID,duration,wav,wav_format,wav_opts"
        rows = read_csv(os.path.join(save, name))
        assert len(rows) == n and all(os.path.isabs(r["wav"]) and os.path.exists(r["wav"]) for r in rows)
    torch.manual_seed(0)
    clean = torch.randn(2, 16000) * 0.1
    noisy = AddNoise(csv_file=os.path.join(save, "noise.csv"), snr_low=5, snr_high=5)(clean, torch.ones(2))
    reverb = AddReverb(csv_file=os.path.join(save, "rir.csv"))(clean)
    for out in (noisy, reverb):
        assert out.shape == clean.shape and torch.isfinite(out).all() and not torch.allclose(out, clean)


def log_mel_stats(x, sr=16000, n_mels=40):
    """Mean and std of log-mel filterbank energies over the active frames."""

    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    edges = 700 * (10 ** (np.linspace(mel(20), mel(7600), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(512, 1 / sr)
    bank = np.stack(
        [
            np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
            for lo, c, hi in zip(edges, edges[1:], edges[2:])
        ]
    )
    idx = np.arange(400)[None] + 160 * np.arange(1 + (len(x) - 400) // 160)[:, None]
    logmel = np.log((np.abs(np.fft.rfft(x[idx] * np.hamming(400), 512)) ** 2) @ bank.T + 1e-10)
    energy = logmel.mean(axis=1)
    active = logmel[energy > energy.max() - 8]
    return np.concatenate([active.mean(axis=0), active.std(axis=0)])


def test_speakers_are_distinct_across_emotions(tmp_path):
    n_spk = 10
    synthetic.generate_synthemo(
        str(tmp_path),
        n_train=n_spk,
        n_valid=0,
        n_eval=0,
        n_sentences=4,
        emotions=("neutral", "sad"),
        snr_db=None,  # per-utterance noise swamps this crude embedding; identity is what is tested
        n_noise=0,
        n_rir=0,
        progress=False,
        num_workers=1,
    )
    files = sorted(glob.glob(str(tmp_path / "S*" / "*" / "*.wav")))
    feats = np.stack([log_mel_stats(sf.read(p)[0]) for p in files])
    spk = np.array([p.split(os.sep)[-3] for p in files])
    emo = np.array([p.split(os.sep)[-2] for p in files])
    feats = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-9)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    sim = feats @ feats.T
    np.fill_diagonal(sim, -np.inf)
    accuracy = np.mean(spk[sim.argmax(axis=1)] == spk)
    assert accuracy > 3 / n_spk, accuracy
    # Across emotions a speaker stays closer to itself than to other speakers,
    # both on average and with the emotion mismatch matched. (Against other
    # speakers in the *same* emotion it is about even for this crude embedding:
    # emotion moves fbank statistics about as much as identity does.)
    np.fill_diagonal(sim, np.nan)
    same_spk, same_emo = spk[:, None] == spk[None], emo[:, None] == emo[None]
    cross_same = np.nanmean(sim[same_spk & ~same_emo])
    assert cross_same > np.nanmean(sim[~same_spk]) + 0.1
    assert cross_same > np.nanmean(sim[~same_spk & ~same_emo]) + 0.1


def test_old_module_path_still_works_and_warns(tmp_path):
    import subprocess
    import sys

    import data_prep.synthetic as old

    with pytest.warns(DeprecationWarning, match="data_prep.synthemo"):
        assert old.prepare_synthemo is synthetic.prepare_synthemo
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(
        [sys.executable, "-m", "data_prep.synthetic", str(tmp_path), "--n-train", "1", "--n-valid", "0",
         "--n-eval", "0", "--n-sentences", "1", "--emotions", "neutral", "--n-noise", "0", "--n-rir", "0",
         "--no-progress", "--quiet"],
        capture_output=True, text=True, cwd=root, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "DeprecationWarning" in done.stderr and "data_prep.synthemo" in done.stderr
    assert os.path.exists(tmp_path / "S0001" / "Neutral" / "S0001_000001.wav")
