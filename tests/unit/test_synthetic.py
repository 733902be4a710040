"""SynthEmo (data_prep.synthemo, voices, sentences): the voice space, the five splits and their trials,
determinism, idempotence, the corpus marker, bad settings, augmentation CSVs and speaker distinctness."""

import csv
import filecmp
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from data_prep import synthemo, voices
from data_prep.common import PreparationError
from data_prep.sentences import SENTENCES
from data_prep.voices import HELD_OUT, SynthEmoSettingError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(
    n_train=2,
    n_valid=2,
    n_eval=2,
    n_ood_valid=2,
    n_ood=2,
    n_sentences=3,
    emotions=("neutral", "angry"),
    n_noise=4,
    n_rir=2,
    n_babble_speakers=3,
    progress=False,
    num_workers=1,
)
ONE = dict(n_train=1, n_valid=0, n_eval=0, n_ood_valid=0, n_ood=0, n_sentences=2, emotions=("neutral",),
           n_noise=0, n_rir=0, progress=False, num_workers=1)
SEED = 7
SPEAKERS = {"train": ["S0001", "S0002"], "valid": ["V0001", "V0002"], "eval": ["E0001", "E0002"],
            "ood_valid": ["OV0001", "OV0002"], "ood": ["O0001", "O0002"]}
N_IN = len(SENTENCES) - HELD_OUT["sentences"]


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
    result = synthemo.prepare_synthemo(data, save, seed=SEED, **TINY)
    return data, save, result


# ------------------------------------------------------------------ the voice space


def draw(n, stream=0, pool="in_generator", **kwargs):
    pool = voices.voice_pools()[pool]
    return [voices.sample_speaker(1234, stream, i, pool, **kwargs) for i in range(n)]


def test_voice_space_is_deterministic_and_independent_per_stream():
    a = draw(50)
    assert a == draw(50)
    assert draw(50, stream=1) != a
    other_seed = [voices.sample_speaker(1235, 0, i, voices.voice_pools()["in_generator"]) for i in range(50)]
    assert all(x != y for x, y in zip(a, other_seed))
    assert a[:10] == draw(10)  # a speaker does not depend on how many are drawn


def test_voice_space_ranges_and_breadth():
    speakers = draw(1000)
    pool = voices.voice_pools()["in_generator"]
    space = voices.VOICE_SPACE
    bases = [s["base"] for s in speakers]
    # every in-generator base has many speakers, so the base alone never identifies one
    assert set(bases) == set(pool["bases"]) and min(bases.count(b) for b in set(bases)) >= 5
    assert set(s["accent"] for s in speakers) == set(pool["accents"])
    females = sum(s["gender"] == "female" for s in speakers)
    assert 430 < females < 570
    for sex in ("male", "female"):
        group = [s for s in speakers if s["gender"] == sex]
        vtl = np.array([s["vtl"] for s in group])
        f0 = np.array([s["pitch"][0] for s in group])
        assert abs(np.median(vtl) / space[f"vtl_{sex}"] - 1) < 0.02
        assert abs(np.median(f0) / space[f"f0_{sex}_hz"] - 1) < 0.05
        assert np.all(np.abs(np.log(vtl / space[f"vtl_{sex}"])) <= 2.5 * space["vtl_sd"] + 1e-9)
        assert 0.05 < np.std(np.log(vtl)) < 0.08 and 0.12 < np.std(np.log(f0)) < 0.2
    f0 = {sex: [s["pitch"][0] for s in speakers if s["gender"] == sex] for sex in ("male", "female")}
    assert max(f0["male"]) > min(f0["female"])  # gender-dependent but overlapping
    for s in speakers:
        low, high = s["pitch"]
        assert 1.1 * low - 0.02 <= high <= 2.5 * low + 0.02
        assert 0 <= s["roughness"] <= 7 and 0 <= s["flutter"] <= 10 and s["intonation"] in (0, 1, 2, 3)
        assert 0.5 <= s["expressiveness"] <= 1.5 and s["breath"] <= space["breath_max"]
        assert len(s["formants"]) == 9 and all(min(f[1:4]) >= 0 for f in s["formants"])
        assert all(60 < f[1] < 220 and f[2] > 0 for f in s["formants"][1:4])  # vowel formants, in % of eSpeak's
    assert 0.25 < np.mean([s["breath"] > 0 for s in speakers]) < 0.45


def test_speaker_spread_scales_the_continuous_widths_only():
    narrow, wide = draw(300, speaker_spread=0.0), draw(300, speaker_spread=1.0)
    assert [(s["base"], s["accent"], s["gender"]) for s in narrow] == [(s["base"], s["accent"], s["gender"])
                                                                       for s in wide]
    assert {s["vtl"] for s in narrow if s["gender"] == "male"} == {1.0}
    assert len({s["rate"] for s in narrow}) == 1 and len({s["rate"] for s in wide}) > 290
    same = [s for s in narrow if (s["base"], s["gender"]) == (narrow[0]["base"], narrow[0]["gender"])]
    assert len({json.dumps(s["formants"]) for s in same}) == 1


def test_variant_and_prosody_follow_the_speaker():
    spk = draw(1)[0]
    text = voices.variant_text(spk, "neutral")
    assert f"pitch {round(spk['pitch'][0])} {round(spk['pitch'][1])}" in text
    assert ("klatt" in text) == bool(spk["klatt"])
    klatt = next(s for s in draw(300) if s["klatt"])
    assert f"klatt {klatt['klatt']}" in voices.variant_text(klatt)
    rng = np.random.default_rng
    angry, sad = (voices.utterance_prosody(spk, e, rng(0)) for e in ("angry", "sad"))
    assert angry["volume"] > sad["volume"] and angry["rate"] > sad["rate"]


def test_held_out_material_is_disjoint_from_the_generator():
    pools = voices.voice_pools()
    gen, ood_valid, ood = pools["in_generator"], pools["ood_valid"], pools["ood"]
    assert not set(gen["bases"]) & (set(ood_valid["bases"]) | set(ood["bases"]))
    assert not set(ood_valid["bases"]) & set(ood["bases"])
    assert not set(gen["accents"]) & set(ood["accents"]) and ood["accents"] == ood_valid["accents"]
    assert not set(gen["sentences"]) & set(ood["sentences"])
    assert len(gen["sentences"]) + len(ood["sentences"]) == len(SENTENCES) == 200
    # no held-out base has a near copy left in the generator (checked, and true of the defaults)
    for name in ood_valid["bases"] + ood["bases"]:
        assert not any(voices.near_copies(name, other) for other in gen["bases"])
    assert len(voices.admitted_bases()) == 72 and not set(voices.EXCLUDED_BASES) & set(voices.admitted_bases())
    # babble talkers draw from the in-generator pool
    assert all(s["base"] in gen["bases"] for s in draw(20, stream=5))


def test_sentence_pool():
    assert len(set(SENTENCES)) == len(SENTENCES)
    for text in SENTENCES:
        assert "," not in text and '"' not in text and not any(c.isdigit() for c in text)
        assert text[-1] in ".?!" and 5 <= len(text.split()) <= 14


@pytest.mark.parametrize(
    "check, setting, message",
    [
        ("check_held_out", {"ood_bases": []}, "held_out.ood_bases must be a non-empty list"),
        ("check_held_out", {"ood_bases": ["Andrea"]}, "ood_valid_bases and ood_bases overlap: ['Andrea']"),
        ("check_held_out", {"ood_bases": ["Hugoo"]}, "ood_bases: 'Hugoo' is not an eSpeak NG variant"),
        ("check_held_out", {"ood_bases": ["whisper"]}, "ood_bases: 'whisper' is excluded from"),
        ("check_held_out", {"ood_bases": ["Hugo"]}, "ood_bases: 'Hugo' is a near copy of in-generator base"),
        ("check_held_out", {"ood_bases": ["m1", "m1"]}, "held_out.ood_bases names ['m1'] twice"),
        ("check_held_out", {"accents": ["en-GB-scotlnd"]}, "accents: 'en-GB-scotlnd' is not an English accent"),
        ("check_held_out", {"accents": list(voices.ACCENTS)}, "held_out.accents holds every accent"),
        ("check_held_out", {"sentences": 0}, "held_out.sentences must be an integer in 1..199"),
        ("check_held_out", {"ood_base": ["m1"]}, "held_out: unknown key 'ood_base' (did you mean 'ood_bases'?)"),
        ("check_voice_space", {"vtl_sdd": 0.1}, "voice_space: unknown parameter 'vtl_sdd' (did you mean 'vtl_sd'?)"),
        ("check_voice_space", {"f0_sd": -0.1}, "voice_space: f0_sd must be >= 0"),
        ("check_voice_space", {"female_share": 1.5}, "voice_space: female_share must be in [0, 1]"),
        ("check_voice_space", {"rate_sd": True}, "voice_space: rate_sd must be a number"),
        ("check_voice_space", {"intonation_shares": [1, 1, 0, 0]}, "voice_space: intonation_shares must be 4 shares"),
    ],
)
def test_bad_held_out_sets_and_voice_space_are_named(check, setting, message):
    with pytest.raises(SynthEmoSettingError) as err:
        getattr(voices, check)(setting)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"speaker_sprad": 0.5}, "unknown SynthEmo option 'speaker_sprad' (did you mean 'speaker_spread'?)"),
        ({"n_sentences": 51}, "n_sentences must be within 1..50"),
        ({"n_train": -1}, "n_train must be an integer >= 0"),
        ({"speaker_spread": "wide"}, "speaker_spread must be a number >= 0"),
        ({"emotions": ("neutral", "bored")}, "emotions: unknown ['bored']"),
        ({"voice_space": {"vtl": 1}}, "voice_space: unknown parameter 'vtl'"),
        ({"held_out": {"ood_bases": []}}, "held_out.ood_bases must be a non-empty list"),
        ({"nontargets_per_target": 0}, "nontargets_per_target must be an integer >= 1"),
    ],
)
def test_bad_corpus_options_are_named_before_anything_is_written(tmp_path, options, message):
    with pytest.raises(SynthEmoSettingError) as err:
        synthemo.prepare_synthemo(str(tmp_path / "data"), str(tmp_path / "save"), **options)
    assert message in str(err.value)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- the tiny corpus


def test_layout_names_and_format(tiny):
    data, _, _ = tiny
    folders = sorted(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)) and d[0] != ".")
    assert folders == sorted(sum(SPEAKERS.values(), []) + ["noise", "rir"])
    for spk in sum(SPEAKERS.values(), []):
        assert sorted(os.listdir(os.path.join(data, spk))) == ["Angry", "Neutral"]
        for k, emotion in enumerate(("Neutral", "Angry")):
            names = sorted(os.listdir(os.path.join(data, spk, emotion)))
            assert names == [f"{spk}_{k * 3 + j + 1:06d}.wav" for j in range(3)]
    for path in glob.glob(os.path.join(data, "*", "*", "*.wav")):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 < info.duration < 8.0
    assert len(glob.glob(os.path.join(data, "noise", "*.wav"))) == 4
    assert len(glob.glob(os.path.join(data, "noise", "*babble.wav"))) == 1
    assert len(glob.glob(os.path.join(data, "rir", "*.wav"))) == 2
    assert not glob.glob(os.path.join(data, "**", ".tmp-*"), recursive=True)


def test_manifests_splits_and_parallel_text(tiny):
    data, save, _ = tiny
    pools = voices.voice_pools()
    speakers = {row["spk_id"]: row for row in read_csv(os.path.join(save, "speakers.csv"))}
    for split, names in SPEAKERS.items():
        with open(os.path.join(save, f"{split}.csv")) as f:
            assert f.readline().strip() == "ID,duration,wav,spk_id,emotion,text"
        rows = read_csv(os.path.join(save, f"{split}.csv"))
        assert sorted({r["spk_id"] for r in rows}) == names and len(rows) == 2 * 2 * 3
        pool = pools["in_generator" if split in ("train", "valid", "eval") else split]
        allowed = {SENTENCES[j] for j in pool["sentences"]}
        texts = {}
        for row in rows:
            assert row["wav"].startswith("$data_root/")
            assert abs(sf.info(row["wav"].replace("$data_root", data)).duration - float(row["duration"])) < 1e-3
            assert row["emotion"] in ("neutral", "angry") and row["ID"].startswith(row["spk_id"] + "_")
            assert row["text"] in allowed
            texts.setdefault(row["spk_id"], {}).setdefault(row["emotion"], set()).add(row["text"])
        for by_emotion in texts.values():  # parallel text: every emotion reads the speaker's sentences
            assert len({frozenset(t) for t in by_emotion.values()}) == 1 and len(by_emotion["neutral"]) == 3
        for name in names:
            assert speakers[name]["split"] == split and speakers[name]["base"] in pool["bases"]
            assert speakers[name]["accent"] in pool["accents"]


def test_trials_of_every_evaluation_split(tiny):
    _, save, result = tiny
    for split in synthemo.EVALUATION_SPLITS:
        ids = {r["ID"] for r in read_csv(os.path.join(save, f"{split}.csv"))}
        folder = os.path.join(save, "trials", split)
        assert sorted(os.listdir(folder)) == ["all.txt", "neutral_emotional.txt", "neutral_neutral.txt",
                                              "same_emotion.txt", "test_angry.txt"]
        lines = [line.split() for line in open(os.path.join(folder, "all.txt"))]
        assert {label for label, _, _ in lines} == {"0", "1"}
        assert all(enrol in ids and test in ids for _, enrol, test in lines)
        targets = sum(label == "1" for label, _, _ in lines)
        assert len(lines) == targets * (1 + 20)  # nontargets_per_target
    assert not os.path.exists(os.path.join(save, "trials", "train"))
    info = json.load(open(os.path.join(save, "prepare.json")))
    assert sorted(info["outputs"]) == sorted(result["outputs"])


def test_no_duplicate_condition_in_the_shared_tiny_corpus(tiny_synthemo):
    _, manifests = tiny_synthemo
    for split in synthemo.EVALUATION_SPLITS:
        folder = os.path.join(manifests, "trials", split)
        names = sorted(os.listdir(folder))
        assert "test_neutral.txt" not in names and "test_happy.txt" in names
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not filecmp.cmp(os.path.join(folder, a), os.path.join(folder, b), shallow=False), (a, b)


def test_determinism_and_worker_independence(tiny, tmp_path):
    data, _, _ = tiny
    reference = wav_bytes(data)
    synthemo.generate_synthemo(str(tmp_path / "same"), seed=SEED, **{**TINY, "num_workers": 2})
    assert wav_bytes(str(tmp_path / "same")) == reference
    synthemo.generate_synthemo(str(tmp_path / "other"), seed=SEED + 1, **dict(TINY, n_noise=0, n_rir=0))
    other = wav_bytes(str(tmp_path / "other"))
    assert other.keys() == {k for k in reference if not k.startswith(("noise", "rir"))}
    assert all(other[k] != reference[k] for k in other)


def test_idempotence(tiny):
    data, save, _ = tiny
    files = sorted(glob.glob(os.path.join(data, "**", "*.wav"), recursive=True))
    before = {p: os.stat(p).st_mtime_ns for p in files}
    marker = os.stat(os.path.join(save, "prepare.json")).st_mtime_ns
    summary = synthemo.generate_synthemo(data, seed=SEED, **TINY)
    assert summary["n_generated"] == 0 and summary["n_skipped"] == len(files)
    synthemo.prepare_synthemo(data, save, seed=SEED, **TINY)
    assert {p: os.stat(p).st_mtime_ns for p in files} == before
    assert os.stat(os.path.join(save, "prepare.json")).st_mtime_ns == marker


def test_interrupted_generation_resumes(tmp_path):
    synthemo.generate_synthemo(str(tmp_path), **ONE)
    target = tmp_path / "S0001" / "Neutral" / "S0001_000002.wav"
    original = target.read_bytes()
    target.unlink()
    # what an interrupted write leaves: a hidden temporary (speechbrain_ext.files.atomic_path's name)
    stale = target.parent / f".tmp-12345-678-{target.name}"
    stale.write_bytes(original[: len(original) // 3])
    summary = synthemo.generate_synthemo(str(tmp_path), **ONE)
    assert summary["n_generated"] == 1
    assert target.read_bytes() == original
    assert not stale.exists()


def test_other_settings_are_refused_with_the_differing_keys_or_regenerated(tmp_path):
    synthemo.generate_synthemo(str(tmp_path), **ONE)
    reference = wav_bytes(str(tmp_path))
    with pytest.raises(PreparationError) as err:
        synthemo.generate_synthemo(str(tmp_path), **ONE, voice_space={"vtl_sd": 0.05}, speaker_spread=0.5)
    assert "voice_space.vtl_sd: 0.07 -> 0.05" in str(err.value) and "speaker_spread: 1.0 -> 0.5" in str(err.value)
    assert "n_train" not in str(err.value)  # counts may change
    summary = synthemo.generate_synthemo(str(tmp_path), **ONE, speaker_spread=0.5, regenerate=True)
    assert summary["n_generated"] == 2 and wav_bytes(str(tmp_path)).keys() == reference.keys()
    assert wav_bytes(str(tmp_path)) != reference


def test_a_marker_written_before_a_voice_space_key_existed_stays_valid(tmp_path):
    synthemo.generate_synthemo(str(tmp_path), **ONE)
    reference = wav_bytes(str(tmp_path))
    marker = json.load(open(tmp_path / synthemo.DATA_MARKER))
    del marker["content_options"]["voice_space"]["expressiveness_mean"]  # as SynthEmo v2 wrote it
    (tmp_path / synthemo.DATA_MARKER).write_text(json.dumps(marker))
    assert synthemo.generate_synthemo(str(tmp_path), **ONE)["n_generated"] == 0
    assert wav_bytes(str(tmp_path)) == reference
    with pytest.raises(PreparationError, match=r"voice_space\.expressiveness_mean: 1\.0 -> 1\.8"):
        synthemo.generate_synthemo(str(tmp_path), **ONE, voice_space={"expressiveness_mean": 1.8})


def test_expressiveness_mean_scales_every_speakers_emotions():
    space = voices.check_voice_space({"expressiveness_mean": 2.0})
    default, strong = draw(50), draw(50, voice_space=space)
    for a, b in zip(default, strong):
        assert b["expressiveness"] == pytest.approx(2 * a["expressiveness"], abs=2e-3)
        assert {k: v for k, v in a.items() if k != "expressiveness"} == {
            k: v for k, v in b.items() if k != "expressiveness"}
        sad_a, sad_b = voices.emotion_settings(a, "sad"), voices.emotion_settings(b, "sad")
        # expressiveness is stored to 3 decimals, hence the tolerance
        assert sad_b["rate"] == pytest.approx(sad_a["rate"] ** 2, rel=2e-3)
        assert sad_b["breath"] == pytest.approx(2 * sad_a["breath"], rel=2e-3)


def test_a_corpus_of_the_first_format_is_refused_then_regenerated(tmp_path):
    old = tmp_path / "S0090" / "Neutral"
    old.mkdir(parents=True)
    (old / "S0090_000001.wav").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    v1 = {"format": 1, "n_sentences": 20, "speaker_spread": 0.4, "emotions": ["neutral"]}
    (tmp_path / synthemo.DATA_MARKER).write_text(json.dumps({"content_options": v1, "complete": True}))
    with pytest.raises(PreparationError, match=r"format: 1 -> 2.*n_sentences: 20 -> 2"):
        synthemo.prepare_synthemo(str(tmp_path), str(tmp_path / "save"), **ONE)
    synthemo.prepare_synthemo(str(tmp_path), str(tmp_path / "save"), **ONE, regenerate=True)
    assert not (tmp_path / "S0090").exists() and (tmp_path / "notes.txt").read_text() == "mine"
    assert json.load(open(tmp_path / synthemo.DATA_MARKER))["content_options"]["format"] == 2


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
    synthemo.generate_synthemo(
        str(tmp_path),
        **dict(ONE, n_train=n_spk, n_sentences=4, emotions=("neutral", "sad")),
        snr_db=None,  # per-utterance noise swamps this crude embedding; identity is what is tested
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
    # both on average and with the emotion mismatch matched.
    np.fill_diagonal(sim, np.nan)
    same_spk, same_emo = spk[:, None] == spk[None], emo[:, None] == emo[None]
    cross_same = np.nanmean(sim[same_spk & ~same_emo])
    assert cross_same > np.nanmean(sim[~same_spk]) + 0.1
    assert cross_same > np.nanmean(sim[~same_spk & ~same_emo]) + 0.1


# ---------------------------------------------------------------- old names, command line


def test_old_module_path_still_works_and_warns(tmp_path):
    import data_prep.synthetic as old

    with pytest.warns(DeprecationWarning, match="data_prep.synthemo"):
        assert old.prepare_synthemo is synthemo.prepare_synthemo
    done = subprocess.run(
        [sys.executable, "-m", "data_prep.synthetic", str(tmp_path), "--n-train", "1", "--n-valid", "0",
         "--n-eval", "0", "--n-sentences", "1", "--emotions", "neutral", "--n-noise", "0", "--n-rir", "0",
         "--no-progress", "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "DeprecationWarning" in done.stderr and "data_prep.synthemo" in done.stderr
    assert os.path.exists(tmp_path / "S0001" / "Neutral" / "S0001_000001.wav")
