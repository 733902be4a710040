"""SynthEmo: a small emotional speaker corpus synthesised offline with eSpeak NG.

The corpus stands in for ESD-like data where no licensed corpus can be used
(tests, smoke runs, ablations). Everything is deterministic from a seed:

- speakers are eSpeak voices built from a few shipped base variants (``m1``...,
  ``f1``...) and an accent (``en-us`` / ``en``), each perturbed by per-speaker
  pitch, formant, breathiness, roughness, flutter, voicing and source-tilt settings
  whose spread is ``speaker_spread``; each speaker gets one eSpeak variant file
  per emotion (:mod:`data_prep.voices`);
- emotions are prosody / voice-quality presets (:data:`~data_prep.voices.EMOTION_PRESETS`)
  applied relative to the speaker's own settings, scaled by a per-speaker
  expressiveness, with per-utterance jitter;
- every speaker reads the same :data:`~data_prep.voices.SENTENCES` in every emotion
  (parallel text);
- each speaker has a recording channel (spectral tilt, band-pass) shared by its
  emotions, as when a speaker records every emotion in one studio set-up; each
  (speaker, emotion) session adds a small tilt change and its own gain, and every
  utterance gets light coloured noise (``snr_db``). Channel differences across a
  speaker's emotions are kept small on purpose, so that emotion, not channel, is
  the main mismatch of neutral-vs-emotional trials.

The engine is driven by :mod:`data_prep.espeak` (a private library copy per
corpus, a fresh library instance per utterance, so the output does not depend on
generation order or on the number of worker processes); the signal processing is
:mod:`data_prep.dsp`. This module lays the corpus out and writes its manifests.

Layout under ``data_folder`` (ESD-like)::

    S0001/Neutral/S0001_000001.wav ...   16 kHz mono PCM16; emotion k, sentence j
                                         is number k * n_sentences + j + 1
    noise/noise_0001_white.wav ...       coloured noise and babble of extra
                                         synthetic talkers (B001...) in no split
    rir/rir_0001.wav ...                 synthetic room impulse responses
    synthemo.json                        generation options (written first) and
                                         totals (written last)
    .espeak-data/                        private eSpeak data and library copy

:func:`prepare_synthemo` then writes the manifests and trial lists of
:mod:`data_prep.common` plus ``noise.csv`` / ``rir.csv`` for SpeechBrain's
``AddNoise`` / ``AddReverb``. Command line: ``python -m data_prep.synthemo``.
"""

import argparse
import contextlib
import csv
import glob
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from types import MappingProxyType

import numpy as np
import soundfile as sf

from data_prep import dsp, espeak
from data_prep.common import (
    PreparationError,
    data_root_path,
    emotion_trials,
    is_prepared,
    mark_prepared,
    prep_lock,
    write_manifest,
    write_trials,
)
from data_prep.dsp import SAMPLE_RATE
from data_prep.voices import (
    DEFAULT_SPEAKER_SPREAD,
    EMOTION_PRESETS,
    EMOTIONS,
    SENTENCES,
    STREAM_BABBLE,
    STREAM_NOISE,
    STREAM_RIR,
    STREAM_SESSION,
    STREAM_UTTERANCE,
    sample_speaker,
    utterance_prosody,
    variant_text,
)
from speechbrain_ext.files import TMP_PREFIX, atomic_write

logger = logging.getLogger(__name__)

__all__ = ["DATA_MARKER", "DEFAULT_SNR_DB", "FORMAT_VERSION", "generate_synthemo", "main", "prepare_synthemo",
           "speaker_name", "split_speakers", "utterance_number"]

FORMAT_VERSION = 1
DATA_MARKER = "synthemo.json"
DATA_LOCK = ".synthemo.lock"
DEFAULT_SNR_DB = (5.0, 25.0)
NOISE_KINDS = ("white", "pink", "brown", "babble")
NOISE_ALPHA = MappingProxyType({"white": 0.0, "pink": 1.0, "brown": 2.0})


# --------------------------------------------------------------------------- naming


def speaker_name(index):
    """Name of the ``index``-th (0-based) corpus speaker.

    Example
    -------
    >>> speaker_name(0), speaker_name(89)
    ('S0001', 'S0090')
    """
    return f"S{index + 1:04d}"


def utterance_number(emotion_index, sentence_index, n_sentences):
    """ESD-style utterance number: numbering continues across emotions.

    Example
    -------
    >>> utterance_number(0, 0, 20), utterance_number(2, 4, 20)
    (1, 45)
    """
    return emotion_index * n_sentences + sentence_index + 1


def split_speakers(n_train=60, n_valid=10, n_eval=20):
    """Disjoint speaker lists of the three splits (consecutive speaker indices).

    Example
    -------
    >>> splits = split_speakers(2, 1, 1)
    >>> splits
    {'train': ['S0001', 'S0002'], 'valid': ['S0003'], 'eval': ['S0004']}
    """
    names = [speaker_name(i) for i in range(n_train + n_valid + n_eval)]
    return {
        "train": names[:n_train],
        "valid": names[n_train:n_train + n_valid],
        "eval": names[n_train + n_valid:],
    }


# ------------------------------------------------------------------------ rendering


def _synth_16k(engine, task, response=None):
    raw = engine.synth(task["text"], task["accent"], task["variant"], task["prosody"], task["espeak_seed"])
    x = dsp.speech_bounds(raw.astype(np.float64) / 32768.0, task["margins"][0], task["margins"][1],
                          espeak.ESPEAK_SAMPLE_RATE)
    return dsp.resample(x, espeak.ESPEAK_SAMPLE_RATE, SAMPLE_RATE, response)


def _render_utterance(engine, task):
    ch = task["channel"]
    response = None
    if ch is not None:
        def response(freqs):
            return dsp.channel_response(freqs, ch["tilt"], ch["highpass"], ch["lowpass"])
    y = _synth_16k(engine, task, response)
    if task["snr"] is not None:
        noise = dsp.coloured_noise(len(y), task["noise_alpha"], np.random.default_rng(task["noise_seed"]))
        y = y + noise * math.sqrt(dsp.active_power(y) / 10 ** (task["snr"] / 10))
    if ch is not None:
        y = y * 10 ** (ch["gain_db"] / 20)
    peak = np.max(np.abs(y)) if len(y) else 0.0
    if peak > 0.98:
        y = y * (0.98 / peak)
    return y


def _render_babble(engine, task):
    n = int(task["duration"] * SAMPLE_RATE)
    mix = np.zeros(n)
    for talker in task["talkers"]:
        track = np.zeros(0)
        for utt in talker["utterances"]:
            y = _synth_16k(engine, utt)
            track = np.concatenate([track, y / math.sqrt(dsp.active_power(y) + 1e-12)])
            if len(track) >= n + talker["offset"]:
                break
        # A talker shorter than the file starts over (np.resize repeats cyclically).
        track = np.resize(track, n + talker["offset"])[talker["offset"]:]
        mix += track * 10 ** (talker["gain_db"] / 20)
    return mix


def _run_task(task):
    """Worker entry point: render one file and return (path, n_samples)."""
    engine = espeak.engine(task["espeak_root"]) if task["kind"] in ("utterance", "babble") else None
    if task["kind"] == "utterance":
        y = _render_utterance(engine, task)
    elif task["kind"] == "babble":
        y = dsp.normalise_noise(_render_babble(engine, task))
    elif task["kind"] == "noise":
        rng = np.random.default_rng(task["noise_seed"])
        y = dsp.normalise_noise(dsp.coloured_noise(int(task["duration"] * SAMPLE_RATE), task["alpha"], rng))
    else:
        y = dsp.synthetic_rir(np.random.default_rng(task["rir_seed"]), task["rt60"])
    # RIR tails decay to -60 dB and below: 24 bits keep them above the quantisation floor.
    dsp.write_wav(task["path"], y, "PCM_24" if task["kind"] == "rir" else "PCM_16")
    return task["path"], len(y)


# --------------------------------------------------------------------------- plans


def _generation_options(n_train, n_valid, n_eval, n_sentences, emotions, seed, speaker_spread, snr_db,
                        n_noise, n_rir, channel, tilt_db, highpass_hz, lowpass_hz, n_babble_speakers,
                        session_tilt_db):
    emotions = tuple(str(e).lower() for e in emotions)
    unknown = [e for e in emotions if e not in EMOTION_PRESETS]
    if unknown:
        raise ValueError(f"unknown emotions {unknown}; known: {sorted(EMOTION_PRESETS)}")
    if len(set(emotions)) != len(emotions) or not emotions:
        raise ValueError(f"emotions must be distinct and non-empty, got {emotions}")
    if not 1 <= n_sentences <= len(SENTENCES):
        raise ValueError(f"n_sentences must be within 1..{len(SENTENCES)}, got {n_sentences}")
    if min(n_train, n_valid, n_eval) < 0 or n_train + n_valid + n_eval == 0:
        raise ValueError("speaker counts must be >= 0 and not all 0")
    if int(seed) < 0:
        raise ValueError("seed must be >= 0")
    return {
        "n_train": int(n_train), "n_valid": int(n_valid), "n_eval": int(n_eval),
        "n_sentences": int(n_sentences), "emotions": list(emotions), "seed": int(seed),
        "speaker_spread": float(speaker_spread),
        "snr_db": None if snr_db is None else [float(snr_db[0]), float(snr_db[1])],
        "n_noise": int(n_noise), "n_rir": int(n_rir), "channel": bool(channel), "tilt_db": float(tilt_db),
        "session_tilt_db": float(session_tilt_db),
        "highpass_hz": [float(v) for v in highpass_hz], "lowpass_hz": [float(v) for v in lowpass_hz],
        "n_babble_speakers": int(n_babble_speakers),
    }


def _content_options(options):
    """Options that change the bytes of a file existing under both settings.

    Speaker and file counts only add or drop files, so they may change.
    """
    skip = ("n_train", "n_valid", "n_eval", "n_noise", "n_rir")
    return {"format": FORMAT_VERSION, **{k: v for k, v in options.items() if k not in skip}}


def _utterance_task(options, root, voice, emotion, sent_index, channel, rng_key):
    rng = np.random.default_rng(rng_key)
    prosody = utterance_prosody(voice, emotion, rng)
    snr = options["snr_db"]
    return {
        "kind": "utterance",
        "espeak_root": root,
        "text": SENTENCES[sent_index],
        "accent": voice["accent"],
        "variant": variant_text(voice, emotion),
        "prosody": prosody,
        "espeak_seed": int(rng.integers(1, 2 ** 31 - 1)),
        "margins": [float(rng.uniform(0.05, 0.25)), float(rng.uniform(0.1, 0.3))],
        "snr": None if snr is None else float(rng.uniform(*snr)),
        "noise_alpha": float(rng.uniform(0.0, 2.0)),
        "noise_seed": int(rng.integers(0, 2 ** 63 - 1)),
        "channel": channel,
    }


def _session_channel(options, speaker_index, emo_index):
    """The speaker's channel with the small changes of one (speaker, emotion) session."""
    if not options["channel"]:
        return None
    rng = np.random.default_rng([options["seed"], STREAM_SESSION, speaker_index])
    tilt = rng.uniform(-options["tilt_db"], options["tilt_db"])
    highpass = rng.uniform(*options["highpass_hz"])
    lowpass = min(rng.uniform(*options["lowpass_hz"]), 0.99 * SAMPLE_RATE / 2)
    rng = np.random.default_rng([options["seed"], STREAM_SESSION, speaker_index, emo_index])
    return {
        "tilt": float(tilt + rng.uniform(-options["session_tilt_db"], options["session_tilt_db"])),
        "highpass": float(highpass),
        "lowpass": float(lowpass),
        "gain_db": float(rng.uniform(-6.0, 0.0)),
    }


def _plan_utterances(data_folder, options, root, splits):
    """(task, row) of every corpus utterance."""
    split_of = {spk: split for split, spks in splits.items() for spk in spks}
    n_sent = options["n_sentences"]
    utterances = []
    for index, spk in enumerate(sorted(split_of)):
        voice = sample_speaker(options["seed"], index, options["speaker_spread"])
        for k, emotion in enumerate(options["emotions"]):
            channel = _session_channel(options, index, k)
            for j in range(n_sent):
                utt_id = f"{spk}_{utterance_number(k, j, n_sent):06d}"
                path = os.path.join(data_folder, spk, emotion.capitalize(), utt_id + ".wav")
                key = [options["seed"], STREAM_UTTERANCE, index, k, j]
                task = _utterance_task(options, root, voice, emotion, j, channel, key)
                task["path"] = path
                row = {"ID": utt_id, "spk_id": spk, "emotion": emotion, "text": SENTENCES[j], "path": path,
                       "split": split_of[spk]}
                utterances.append((task, row))
    return utterances


def _babble_talkers(options, root, rng, talkers, noise_index):
    """The talkers of one babble file: a few extra speakers reading a few sentences each."""
    chosen = rng.choice(len(talkers), size=min(len(talkers), int(rng.integers(3, 7))), replace=False)
    out = []
    for t in chosen:
        sentences = rng.permutation(len(SENTENCES))[:4]
        emotion = str(rng.choice(sorted(EMOTION_PRESETS)))
        utts = [_utterance_task(options, root, talkers[int(t)], emotion, int(j), None,
                                [options["seed"], STREAM_BABBLE, 1 << 20, noise_index, int(t), int(j)])
                for j in sentences]
        out.append({"utterances": utts, "offset": int(rng.integers(0, SAMPLE_RATE)),
                    "gain_db": float(rng.uniform(-4.0, 4.0))})
    return out


def _plan_noises(data_folder, options, root):
    """(task, row) of every noise file: white, pink, brown and babble in turn."""
    talkers = [sample_speaker(options["seed"], i, options["speaker_spread"], babble=True)
               for i in range(options["n_babble_speakers"])]
    noises = []
    for i in range(options["n_noise"]):
        kind = NOISE_KINDS[i % len(NOISE_KINDS)]
        if kind == "babble" and not talkers:
            kind = "white"
        rng = np.random.default_rng([options["seed"], STREAM_NOISE, i])
        noise_id = f"noise_{i + 1:04d}_{kind}"
        task = {"path": os.path.join(data_folder, "noise", noise_id + ".wav"),
                "duration": float(rng.uniform(6.0, 10.0)), "espeak_root": root}
        if kind == "babble":
            task.update(kind="babble", talkers=_babble_talkers(options, root, rng, talkers, i))
        else:
            task.update(kind="noise", alpha=NOISE_ALPHA[kind], noise_seed=int(rng.integers(0, 2 ** 63 - 1)))
        noises.append((task, {"ID": noise_id, "path": task["path"]}))
    return noises


def _plan_rirs(data_folder, options):
    """(task, row) of every room impulse response."""
    rirs = []
    for i in range(options["n_rir"]):
        rng = np.random.default_rng([options["seed"], STREAM_RIR, i])
        rir_id = f"rir_{i + 1:04d}"
        task = {"kind": "rir", "path": os.path.join(data_folder, "rir", rir_id + ".wav"),
                "rt60": float(rng.uniform(0.2, 0.8)), "rir_seed": int(rng.integers(0, 2 ** 63 - 1))}
        rirs.append((task, {"ID": rir_id, "path": task["path"]}))
    return rirs


def _plan(data_folder, options, root):
    """Every file of the corpus as (task, row) pairs; pure function of the options."""
    splits = split_speakers(options["n_train"], options["n_valid"], options["n_eval"])
    utterances = _plan_utterances(data_folder, options, root, splits)
    return utterances, _plan_noises(data_folder, options, root), _plan_rirs(data_folder, options), splits


# ------------------------------------------------------------------------ generation


def _check_marker(data_folder, content):
    marker = os.path.join(data_folder, DATA_MARKER)
    try:
        with open(marker) as f:
            info = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        info = None
    if info is not None and info.get("content_options") != content:
        raise PreparationError(
            f"{data_folder} holds a SynthEmo corpus generated with other options "
            f"({info.get('content_options')}); generate {content} into another data_folder or delete it"
        )
    return info


def _write_marker(data_folder, content, options, totals=None):
    # Not atomic_write_json: the marker's bytes stay those of earlier versions (no final newline).
    with atomic_write(os.path.join(data_folder, DATA_MARKER)) as f:
        json.dump({"content_options": content, "options": options, "complete": totals is not None,
                   "totals": totals}, f, indent=2, sort_keys=True)


def _remove_stale_temporaries(data_folder):
    """Temporary files of an interrupted generation: the data lock is held, so nobody is writing them."""
    for path in glob.glob(os.path.join(glob.escape(data_folder), "**", TMP_PREFIX + "*.wav"), recursive=True):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _run_tasks(todo, num_workers, progress):
    """Render every task; return {path: n_samples}. The output does not depend on ``num_workers``."""
    from tqdm import tqdm

    lengths = {}
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1)
    with tqdm(total=len(todo), desc="SynthEmo", unit="file", disable=not progress) as bar:
        if num_workers <= 1 or len(todo) < 8:
            for task in todo:
                path, n = _run_task(task)
                lengths[path] = n
                bar.update()
        else:
            # spawn: workers must not inherit a parent's eSpeak or OpenMP state.
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(num_workers) as pool:
                for path, n in pool.imap_unordered(_run_task, todo, chunksize=8):
                    lengths[path] = n
                    bar.update()
    return lengths


def _with_duration(rows, lengths):
    out = []
    for row in rows:
        n = lengths.get(row["path"])
        if n is None:
            n = sf.info(row["path"]).frames
        out.append({**row, "duration": n / SAMPLE_RATE})
    return out


def _generate(data_folder, options, num_workers, progress):
    """Generate what is missing; return (summary, utterance rows, noise rows, rir rows)."""
    start = time.time()
    data_folder = os.path.abspath(data_folder)
    content = _content_options(options)
    with prep_lock(data_folder, lock_file=DATA_LOCK):
        _check_marker(data_folder, content)
        _write_marker(data_folder, content, options)
        _remove_stale_temporaries(data_folder)
        root = espeak.prepare_espeak_root(os.path.join(data_folder, ".espeak-data"))
        utterances, noises, rirs, splits = _plan(data_folder, options, root)
        everything = utterances + noises + rirs
        for task, _ in everything:
            os.makedirs(os.path.dirname(task["path"]), exist_ok=True)
        todo = [task for task, _ in everything if not os.path.exists(task["path"])]
        lengths = _run_tasks(todo, num_workers, progress)
        espeak.clear_variants(root)
        espeak.engine.cache_clear()
        utt_rows = _with_duration([row for _, row in utterances], lengths)
        noise_rows = _with_duration([row for _, row in noises], lengths)
        rir_rows = _with_duration([row for _, row in rirs], lengths)
        totals = {
            "n_utterances": len(utt_rows),
            "hours": round(sum(r["duration"] for r in utt_rows) / 3600, 4),
            "n_noise": len(noise_rows),
            "n_rir": len(rir_rows),
        }
        _write_marker(data_folder, content, options, totals)
    summary = {
        "data_folder": data_folder,
        "speakers": {split: len(spks) for split, spks in splits.items()},
        "emotions": list(options["emotions"]),
        "n_sentences": options["n_sentences"],
        **totals,
        "n_generated": len(todo),
        "n_skipped": len(everything) - len(todo),
        "seconds": round(time.time() - start, 2),
    }
    return summary, utt_rows, noise_rows, rir_rows


# ----------------------------------------------------------------------- public API


def generate_synthemo(
    data_folder,
    n_train=60,
    n_valid=10,
    n_eval=20,
    n_sentences=20,
    emotions=EMOTIONS,
    seed=1234,
    speaker_spread=DEFAULT_SPEAKER_SPREAD,
    snr_db=DEFAULT_SNR_DB,
    n_noise=24,
    n_rir=40,
    progress=True,
    num_workers=None,
    channel=True,
    tilt_db=2.0,
    highpass_hz=(50.0, 250.0),
    lowpass_hz=(4500.0, 7800.0),
    n_babble_speakers=8,
    session_tilt_db=0.5,
):
    """Generate the SynthEmo audio under ``data_folder`` (idempotent).

    Files that exist are complete (each is written under a temporary name and
    renamed) and are skipped; a second call with the same options writes nothing.
    A folder generated with options that change file contents is refused.

    Arguments
    ---------
    data_folder : str
        Corpus root.
    n_train, n_valid, n_eval : int
        Speakers per split (disjoint; ``S0001``... in that order).
    n_sentences : int
        Sentences per emotion (the first ``n_sentences`` of :data:`~data_prep.voices.SENTENCES`).
    emotions : sequence of str
        Keys of :data:`~data_prep.voices.EMOTION_PRESETS`; their order fixes the utterance numbers.
    seed : int
        Seed of everything.
    speaker_spread : float
        Difficulty knob: scale of the per-speaker voice deviations (smaller is harder;
        the default was tuned on the valid speakers, see recipes/SynthEmo/README.md).
    snr_db : (float, float) or None
        Range of the per-utterance channel-noise SNR; None for no noise.
    n_noise, n_rir : int
        Sizes of the noise set (white, pink, brown, babble in turn) and of the RIR set.
    progress, num_workers : bool, int or None
        tqdm progress bar; worker processes (default: up to 2; the output does not depend on it).
    channel, tilt_db, highpass_hz, lowpass_hz, session_tilt_db
        Recording channel on or off; per-speaker tilt in ``[-tilt_db, tilt_db]`` dB/octave
        and band-pass edges drawn from the two ranges; per (speaker, emotion) session a
        tilt change in ``[-session_tilt_db, session_tilt_db]`` and a gain in [-6, 0] dB.
    n_babble_speakers : int
        Extra talkers (in no split) that make up the babble noise.

    Returns
    -------
    dict
        Speakers per split, utterance count, hours of speech, files generated
        and skipped by this call, seconds taken.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> s = generate_synthemo(d, n_train=1, n_valid=0, n_eval=0, n_sentences=1, emotions=("neutral",),
    ...                       n_noise=0, n_rir=0, progress=False, num_workers=1)
    >>> wav = os.path.join(d, "S0001", "Neutral", "S0001_000001.wav")
    >>> s["n_utterances"], s["n_generated"], os.path.exists(wav)
    (1, 1, True)
    >>> generate_synthemo(d, n_train=1, n_valid=0, n_eval=0, n_sentences=1, emotions=("neutral",),
    ...                   n_noise=0, n_rir=0, progress=False, num_workers=1)["n_generated"]
    0
    """
    options = _generation_options(n_train, n_valid, n_eval, n_sentences, emotions, seed, speaker_spread,
                                  snr_db, n_noise, n_rir, channel, tilt_db, highpass_hz, lowpass_hz,
                                  n_babble_speakers, session_tilt_db)
    summary, _, _, _ = _generate(data_folder, options, num_workers, progress)
    return summary


def _write_augment_csv(path, rows):
    """Write a CSV in the format SpeechBrain's AddNoise / AddReverb read.

    Paths are absolute: those classes expand ``$data_root`` only when the recipe
    passes ``replacements``, and fail without it.
    """
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for row in rows:
            writer.writerow([row["ID"], f"{row['duration']:.3f}", os.path.abspath(row["path"]), "wav", ""])


def _generation_defaults():
    import inspect

    params = inspect.signature(generate_synthemo).parameters
    return {k: v.default for k, v in params.items() if k not in ("data_folder", "progress", "num_workers")}


def _corpus_complete(data_folder, options):
    try:
        with open(os.path.join(data_folder, DATA_MARKER)) as f:
            info = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool(info.get("complete")) and info.get("options") == options


def _write_outputs(save_folder, data_folder, utt_rows, noise_rows, rir_rows, seed, nontargets_per_target):
    """Manifests, trial lists and augmentation CSVs; return their paths relative to ``save_folder``."""
    outputs = []
    by_split = {"train": [], "valid": [], "eval": []}
    for row in utt_rows:
        by_split[row["split"]].append({
            "ID": row["ID"], "duration": row["duration"], "wav": data_root_path(row["path"], data_folder),
            "spk_id": row["spk_id"], "emotion": row["emotion"], "text": row["text"],
        })
    for split, rows in by_split.items():
        write_manifest(os.path.join(save_folder, f"{split}.csv"), rows, extra_columns=("emotion", "text"))
        outputs.append(f"{split}.csv")
        if split == "train" or not rows:
            continue
        conditions = emotion_trials(rows, seed=seed, nontargets_per_target=nontargets_per_target)
        for condition, trials in sorted(conditions.items()):
            rel = os.path.join("trials", split, f"{condition}.txt")
            write_trials(os.path.join(save_folder, rel), trials)
            outputs.append(rel)
    _write_augment_csv(os.path.join(save_folder, "noise.csv"), noise_rows)
    _write_augment_csv(os.path.join(save_folder, "rir.csv"), rir_rows)
    return outputs + ["noise.csv", "rir.csv"]


def prepare_synthemo(data_folder, save_folder, seed=1234, nontargets_per_target=3, **generation_options):
    """Generate SynthEmo if needed, then write manifests, trials, noise.csv and rir.csv.

    Outputs in ``save_folder`` (see :mod:`data_prep.common`): ``train.csv``,
    ``valid.csv``, ``eval.csv`` with extra columns ``emotion, text`` and wav paths
    as ``$data_root/...``; ``trials/{valid,eval}/<condition>.txt`` for every
    condition of :func:`data_prep.common.emotion_trials`; ``noise.csv`` and
    ``rir.csv`` (absolute wav paths); ``prepare.json`` last.
    Idempotent and safe to run concurrently on the same folders.

    Arguments
    ---------
    data_folder : str
        Corpus root (generated here when missing).
    save_folder : str
        Where the manifests go.
    seed : int
        Seed of the corpus and of the trial pairing.
    nontargets_per_target : int
        Non-target trials per target trial.
    **generation_options
        Further arguments of :func:`generate_synthemo`.

    Returns
    -------
    dict
        The options hash input and the written outputs (relative paths).

    Example
    -------
    >>> import tempfile
    >>> d, s = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> out = prepare_synthemo(d, s, n_train=2, n_valid=2, n_eval=2, n_sentences=2,
    ...                        emotions=("neutral", "sad"), n_noise=1, n_rir=1, progress=False, num_workers=1)
    >>> sorted(p for p in out["outputs"] if not p.startswith("trials"))
    ['eval.csv', 'noise.csv', 'rir.csv', 'train.csv', 'valid.csv']
    >>> "trials/eval/neutral_emotional.txt" in out["outputs"]
    True
    """
    progress = generation_options.pop("progress", True)
    num_workers = generation_options.pop("num_workers", None)
    defaults = _generation_defaults()
    unknown = sorted(set(generation_options) - set(defaults))
    if unknown:
        raise TypeError(f"prepare_synthemo() got unknown generation options {unknown}")
    options = _generation_options(**{**defaults, **generation_options, "seed": seed})
    data_folder = os.path.abspath(data_folder)
    prep_options = {"corpus": "synthemo", "data_folder": data_folder,
                    "nontargets_per_target": nontargets_per_target, **options}
    with prep_lock(save_folder):
        # The corpus must still be there and be the one the manifests describe.
        if is_prepared(save_folder, prep_options) and _corpus_complete(data_folder, options):
            with open(os.path.join(save_folder, "prepare.json")) as f:
                outputs = json.load(f)["outputs"]
            logger.info("SynthEmo already prepared in %s", save_folder)
            return {"options": prep_options, "outputs": outputs}
        _, utt_rows, noise_rows, rir_rows = _generate(data_folder, options, num_workers, progress)
        outputs = _write_outputs(save_folder, data_folder, utt_rows, noise_rows, rir_rows, seed,
                                 nontargets_per_target)
        mark_prepared(save_folder, prep_options, outputs)
    return {"options": prep_options, "outputs": outputs}


# ------------------------------------------------------------------------ command line


def _parser(prog):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("data_folder")
    parser.add_argument("save_folder", nargs="?")
    parser.add_argument("--n-train", type=int, default=60)
    parser.add_argument("--n-valid", type=int, default=10)
    parser.add_argument("--n-eval", type=int, default=20)
    parser.add_argument("--n-sentences", type=int, default=20)
    parser.add_argument("--emotions", default=",".join(EMOTIONS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--speaker-spread", type=float, default=DEFAULT_SPEAKER_SPREAD)
    parser.add_argument("--snr-db", type=float, nargs=2, default=DEFAULT_SNR_DB, metavar=("LOW", "HIGH"))
    parser.add_argument("--no-noise", action="store_true", help="no per-utterance channel noise")
    parser.add_argument("--no-channel", action="store_true", help="no recording-channel filter")
    parser.add_argument("--tilt-db", type=float, default=2.0, help="per-speaker tilt range, dB/octave")
    parser.add_argument("--session-tilt-db", type=float, default=0.5, help="session tilt change, dB/oct")
    parser.add_argument("--n-noise", type=int, default=24)
    parser.add_argument("--n-rir", type=int, default=40)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    return parser


def main(argv=None, prog="python -m data_prep.synthemo"):
    """Command line: ``python -m data_prep.synthemo <data_folder> [<save_folder>] [options]``.

    Without a save folder only the audio is generated.

    Example
    -------
    >>> import tempfile
    >>> main([tempfile.mkdtemp(), "--n-train", "1", "--n-valid", "0", "--n-eval", "0", "--n-sentences", "1",
    ...       "--emotions", "neutral", "--n-noise", "0", "--n-rir", "0", "--no-progress", "--quiet"])
    0
    """
    args = _parser(prog).parse_args(argv)
    kwargs = dict(
        n_train=args.n_train, n_valid=args.n_valid, n_eval=args.n_eval, n_sentences=args.n_sentences,
        emotions=tuple(e for e in args.emotions.split(",") if e), speaker_spread=args.speaker_spread,
        snr_db=None if args.no_noise else tuple(args.snr_db), n_noise=args.n_noise, n_rir=args.n_rir,
        channel=not args.no_channel, tilt_db=args.tilt_db, session_tilt_db=args.session_tilt_db,
        progress=not args.no_progress, num_workers=args.num_workers,
    )
    if args.save_folder:
        result = prepare_synthemo(args.data_folder, args.save_folder, seed=args.seed, **kwargs)
        summary = {"save_folder": os.path.abspath(args.save_folder), "outputs": len(result["outputs"])}
    else:
        summary = generate_synthemo(args.data_folder, seed=args.seed, **kwargs)
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
