"""SynthEmo: an emotional multi-speaker corpus synthesised offline with eSpeak NG (format 2).

The corpus stands in for ESD-like data where no licensed corpus can be used
(tests, smoke runs, ablations, the demo). Everything is deterministic from a seed.

- **Speakers** are points of a documented voice space (:mod:`data_prep.voices`):
  one of 72 eSpeak NG base variants and one of 8 English accents, plus per-speaker
  vocal-tract length, formant detail, F0 register and range, speaking rate, voice
  quality and intonation style. Many speakers share a base: the continuous
  coordinates, not the base, identify a speaker.
- **Splits** (disjoint speakers): ``train``, ``valid`` and ``eval`` draw from the
  in-generator pool; ``ood_valid`` and ``ood`` each from their own held-out bases,
  with held-out accents and sentences that no in-generator speaker (nor a babble
  talker) uses (:data:`~data_prep.voices.HELD_OUT`). ``ood_valid`` is for choosing
  checkpoints and settings, ``ood`` is reported only.
- **Text**: each speaker reads ``n_sentences`` sentences of its pool
  (:mod:`data_prep.sentences`) in every emotion (parallel text).
- **Emotions** are prosody / voice-quality presets relative to the speaker's own
  settings, scaled by its expressiveness, with per-utterance jitter.
- **Channel**: each speaker has a recording channel (spectral tilt, band-pass)
  shared by its emotions, as when a speaker records every emotion in one studio
  set-up; each (speaker, emotion) session adds a small tilt change and its own gain,
  and every utterance gets light coloured noise (``snr_db``). Channel differences
  across a speaker's emotions are kept small on purpose, so that emotion, not
  channel, is the main mismatch of neutral-vs-emotional trials.

The engine is driven by :mod:`data_prep.espeak` (a private library copy per
corpus, a fresh library instance per utterance, so the output does not depend on
generation order or on the number of worker processes); the signal processing is
:mod:`data_prep.dsp`, the folder's marker :mod:`data_prep.synthemo_marker`. This module lays
the corpus out and writes its manifests.

Options (:data:`GENERATION_DEFAULTS`; every one is a keyword of
:func:`generate_synthemo` and :func:`prepare_synthemo`):

========================  =====================================================================
``n_train`` ...           speakers per split: ``n_train``, ``n_valid``, ``n_eval``,
                          ``n_ood_valid`` (None: ``n_valid``), ``n_ood`` (None: ``n_eval``)
``n_sentences``           sentences per speaker, each read in every emotion
``emotions``              keys of :data:`~data_prep.voices.EMOTION_PRESETS`; their order fixes
                          the utterance numbers
``seed``                  seed of everything
``speaker_spread``        scale of every continuous voice-space width (the difficulty knob)
``voice_space``           overrides of :data:`~data_prep.voices.VOICE_SPACE` widths
``held_out``              overrides of :data:`~data_prep.voices.HELD_OUT`
``snr_db``                range of the per-utterance noise SNR; None for no noise
``channel``, ``tilt_db``, recording channel on/off; per-speaker tilt in ``[-tilt_db, tilt_db]``
``highpass_hz``,          dB/octave and band-pass edges drawn from the two ranges; per session
``lowpass_hz``,           a tilt change in ``[-session_tilt_db, session_tilt_db]`` and a gain
``session_tilt_db``       in [-6, 0] dB
``n_noise``, ``n_rir``    sizes of the noise set (white, pink, brown, babble in turn) and RIR set
``n_babble_speakers``     in-generator talkers in no split that make up the babble noise
========================  =====================================================================

Layout under ``data_folder`` (ESD-like)::

    S0001/Neutral/S0001_000001.wav ...   train speakers S, valid V, eval E, ood_valid OV,
                                         ood O; 16 kHz mono PCM16; emotion k, sentence j
                                         of the speaker is number k * n_sentences + j + 1
    noise/noise_0001_white.wav ...       coloured noise and babble
    rir/rir_0001.wav ...                 synthetic room impulse responses
    synthemo.json                        generation options (written first) and totals (last)
    .espeak-data/                        private eSpeak data and library copy

A folder generated with other content settings (another format version, voice
space, held-out set, text, noise or channel settings) is refused with the
differing keys, or cleared and regenerated with ``regenerate=True``; speaker and
file counts may change freely (they only add or drop files).

:func:`prepare_synthemo` then writes the manifests and trial lists of
:mod:`data_prep.common` plus ``noise.csv`` / ``rir.csv`` for SpeechBrain's
``AddNoise`` / ``AddReverb``. Command line: ``python -m data_prep.synthemo``.
"""

import argparse
import csv
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
from types import MappingProxyType

import numpy as np
import soundfile as sf

from data_prep import dsp, espeak
from data_prep.common import (
    data_root_path,
    emotion_trials,
    is_prepared,
    mark_prepared,
    prep_lock,
    write_manifest,
    write_trials,
)
from data_prep.dsp import SAMPLE_RATE
from data_prep.sentences import SENTENCES
from data_prep.synthemo_marker import DATA_MARKER, check_marker, read_marker, remove_stale_temporaries, write_marker
from data_prep.voices import (
    DEFAULT_SPEAKER_SPREAD,
    EMOTION_PRESETS,
    EMOTIONS,
    STREAM_BABBLE,
    STREAM_NOISE,
    STREAM_RIR,
    STREAM_SESSION,
    STREAM_TEXT,
    STREAM_UTTERANCE,
    SynthEmoSettingError,
    check_held_out,
    check_voice_space,
    sample_speaker,
    utterance_prosody,
    variant_text,
    voice_pools,
)
from speechbrain_ext.files import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["DATA_MARKER", "DEFAULT_SNR_DB", "EVALUATION_SPLITS", "FORMAT_VERSION", "GENERATION_DEFAULTS", "SPLITS",
           "generate_synthemo", "main", "prepare_synthemo", "speaker_name", "split_speakers", "utterance_number"]

FORMAT_VERSION = 2
DATA_LOCK = ".synthemo.lock"
DEFAULT_SNR_DB = (5.0, 25.0)
NOISE_KINDS = ("white", "pink", "brown", "babble")
NOISE_ALPHA = MappingProxyType({"white": 0.0, "pink": 1.0, "brown": 2.0})
SPLITS = ("train", "valid", "eval", "ood_valid", "ood")
EVALUATION_SPLITS = SPLITS[1:]
_PREFIX = MappingProxyType({"train": "S", "valid": "V", "eval": "E", "ood_valid": "OV", "ood": "O"})
_POOL = MappingProxyType({"train": "in_generator", "valid": "in_generator", "eval": "in_generator",
                          "ood_valid": "ood_valid", "ood": "ood"})
# Each split and the babble talkers draw their speakers from their own random stream.
_STREAM = MappingProxyType({"train": 0, "valid": 1, "eval": 2, "ood_valid": 3, "ood": 4, "babble": 5})
_SPEAKER_FOLDER = re.compile(r"(S|V|E|OV|O)[0-9]{4,}")
_COUNTS = ("n_train", "n_valid", "n_eval", "n_ood_valid", "n_ood", "n_noise", "n_rir")

GENERATION_DEFAULTS = MappingProxyType({
    "n_train": 1000, "n_valid": 100, "n_eval": 200, "n_ood_valid": None, "n_ood": None,
    "n_sentences": 2, "emotions": EMOTIONS, "seed": 1234,
    "speaker_spread": DEFAULT_SPEAKER_SPREAD, "voice_space": None, "held_out": None,
    "snr_db": DEFAULT_SNR_DB, "n_noise": 24, "n_rir": 40,
    "channel": True, "tilt_db": 2.0, "highpass_hz": (50.0, 250.0), "lowpass_hz": (4500.0, 7800.0),
    "session_tilt_db": 0.5, "n_babble_speakers": 8,
})


# --------------------------------------------------------------------------- naming


def speaker_name(split, index):
    """Name of the ``index``-th (0-based) speaker of ``split``.

    Example
    -------
    >>> speaker_name("train", 0), speaker_name("eval", 89), speaker_name("ood_valid", 2)
    ('S0001', 'E0090', 'OV0003')
    """
    return f"{_PREFIX[split]}{index + 1:04d}"


def utterance_number(emotion_index, sentence_index, n_sentences):
    """ESD-style utterance number: numbering continues across emotions.

    Example
    -------
    >>> utterance_number(0, 0, 20), utterance_number(2, 4, 20)
    (1, 45)
    """
    return emotion_index * n_sentences + sentence_index + 1


def split_speakers(n_train=1000, n_valid=100, n_eval=200, n_ood_valid=0, n_ood=0):
    """Disjoint speaker lists of the five splits.

    Example
    -------
    >>> split_speakers(2, 1, 1, 1, 0)
    {'train': ['S0001', 'S0002'], 'valid': ['V0001'], 'eval': ['E0001'], 'ood_valid': ['OV0001'], 'ood': []}
    """
    counts = dict(zip(SPLITS, (n_train, n_valid, n_eval, n_ood_valid, n_ood)))
    return {split: [speaker_name(split, i) for i in range(n)] for split, n in counts.items()}


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


# ------------------------------------------------------------------------- options


def _closest(name, known):
    import difflib

    match = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_option_names(options, caller):
    for key in options:
        if key not in GENERATION_DEFAULTS:
            raise SynthEmoSettingError(f"{caller}: unknown SynthEmo option {key!r}{_closest(key, GENERATION_DEFAULTS)}")


def _count(options, key):
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SynthEmoSettingError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _check_text_and_noise(o, pools):
    emotions = tuple(str(e).lower() for e in o["emotions"])
    unknown = [e for e in emotions if e not in EMOTION_PRESETS]
    if unknown:
        raise SynthEmoSettingError(f"emotions: unknown {unknown}; known: {sorted(EMOTION_PRESETS)}")
    if len(set(emotions)) != len(emotions) or not emotions:
        raise SynthEmoSettingError(f"emotions must be distinct and non-empty, got {emotions}")
    smallest = min(len(pool["sentences"]) for pool in pools.values())
    if isinstance(o["n_sentences"], bool) or not isinstance(o["n_sentences"], int) \
            or not 1 <= o["n_sentences"] <= smallest:
        raise SynthEmoSettingError(f"n_sentences must be within 1..{smallest} (the smallest sentence pool), "
                                   f"got {o['n_sentences']!r}")
    snr = o["snr_db"]
    if snr is not None and (len(snr) != 2 or float(snr[0]) > float(snr[1])):
        raise SynthEmoSettingError(f"snr_db must be [low, high] with low <= high, or None; got {snr!r}")
    return list(emotions)


def _generation_options(options):
    """Every option, checked, with defaults and as JSON would give it back (lists, not tuples)."""
    o = {**GENERATION_DEFAULTS, **options}
    o["n_ood_valid"] = o["n_valid"] if o["n_ood_valid"] is None else o["n_ood_valid"]
    o["n_ood"] = o["n_eval"] if o["n_ood"] is None else o["n_ood"]
    counts = {key: _count(o, key) for key in _COUNTS + ("n_babble_speakers",)}
    if sum(counts[k] for k in _COUNTS[:5]) == 0:
        raise SynthEmoSettingError("speaker counts are all 0")
    if isinstance(o["seed"], bool) or not isinstance(o["seed"], int) or o["seed"] < 0:
        raise SynthEmoSettingError(f"seed must be an integer >= 0, got {o['seed']!r}")
    spread = o["speaker_spread"]
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 <= spread < math.inf:
        raise SynthEmoSettingError(f"speaker_spread must be a number >= 0, got {spread!r}")
    held_out = check_held_out(o["held_out"])
    emotions = _check_text_and_noise(o, voice_pools(held_out))
    checked = {
        **counts, "n_sentences": o["n_sentences"], "emotions": emotions, "seed": o["seed"],
        "speaker_spread": float(spread), "voice_space": check_voice_space(o["voice_space"]), "held_out": held_out,
        "snr_db": None if o["snr_db"] is None else [float(v) for v in o["snr_db"]],
        "channel": bool(o["channel"]), "tilt_db": float(o["tilt_db"]), "session_tilt_db": float(o["session_tilt_db"]),
        "highpass_hz": [float(v) for v in o["highpass_hz"]], "lowpass_hz": [float(v) for v in o["lowpass_hz"]],
    }
    return json.loads(json.dumps(checked))


def _content_options(options):
    """Options that change the bytes of a file existing under both settings.

    Speaker and file counts only add or drop files, so they may change.
    """
    return {"format": FORMAT_VERSION, **{k: v for k, v in options.items() if k not in _COUNTS}}


# --------------------------------------------------------------------------- plans


def _utterance_task(options, root, voice, emotion, text, channel, rng_key):
    rng = np.random.default_rng(rng_key)
    prosody = utterance_prosody(voice, emotion, rng)
    snr = options["snr_db"]
    return {
        "kind": "utterance",
        "espeak_root": root,
        "text": text,
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


def _session_channel(options, stream, index, emo_index):
    """The speaker's channel with the small changes of one (speaker, emotion) session."""
    if not options["channel"]:
        return None
    rng = np.random.default_rng([options["seed"], STREAM_SESSION, stream, index])
    tilt = rng.uniform(-options["tilt_db"], options["tilt_db"])
    highpass = rng.uniform(*options["highpass_hz"])
    lowpass = min(rng.uniform(*options["lowpass_hz"]), 0.99 * SAMPLE_RATE / 2)
    rng = np.random.default_rng([options["seed"], STREAM_SESSION, stream, index, emo_index])
    return {
        "tilt": float(tilt + rng.uniform(-options["session_tilt_db"], options["session_tilt_db"])),
        "highpass": float(highpass),
        "lowpass": float(lowpass),
        "gain_db": float(rng.uniform(-6.0, 0.0)),
    }


def speaker_sentences(seed, stream, index, pool, n_sentences):
    """Indices into :data:`~data_prep.sentences.SENTENCES` of the sentences one speaker reads.

    Example
    -------
    >>> speaker_sentences(1234, 0, 0, range(150), 2) == speaker_sentences(1234, 0, 0, range(150), 2)
    True
    >>> all(150 <= j < 200 for j in speaker_sentences(1234, 4, 7, range(150, 200), 3))
    True
    """
    pool = list(pool)
    order = np.random.default_rng([seed, STREAM_TEXT, stream, index]).permutation(len(pool))
    return [pool[int(i)] for i in order[:n_sentences]]


def _plan_speaker(data_folder, options, root, split, index, pool):
    """(task, row) of every utterance of one speaker."""
    stream, n_sent, seed = _STREAM[split], options["n_sentences"], options["seed"]
    spk = speaker_name(split, index)
    voice = sample_speaker(seed, stream, index, pool, options["speaker_spread"], options["voice_space"])
    sentences = speaker_sentences(seed, stream, index, pool["sentences"], n_sent)
    out = []
    for k, emotion in enumerate(options["emotions"]):
        channel = _session_channel(options, stream, index, k)
        for j, sentence in enumerate(sentences):
            utt_id = f"{spk}_{utterance_number(k, j, n_sent):06d}"
            path = os.path.join(data_folder, spk, emotion.capitalize(), utt_id + ".wav")
            key = [seed, STREAM_UTTERANCE, stream, index, k, j]
            task = _utterance_task(options, root, voice, emotion, SENTENCES[sentence], channel, key)
            task["path"] = path
            row = {"ID": utt_id, "spk_id": spk, "emotion": emotion, "text": SENTENCES[sentence], "path": path,
                   "split": split, "voice": voice}
            out.append((task, row))
    return out


def _plan_utterances(data_folder, options, root, splits):
    """(task, row) of every corpus utterance."""
    pools = voice_pools(options["held_out"])
    utterances = []
    for split, speakers in splits.items():
        for index in range(len(speakers)):
            utterances += _plan_speaker(data_folder, options, root, split, index, pools[_POOL[split]])
    return utterances


def _babble_talkers(options, root, rng, talkers, pool, noise_index):
    """The talkers of one babble file: a few in-generator speakers reading a few sentences each."""
    chosen = rng.choice(len(talkers), size=min(len(talkers), int(rng.integers(3, 7))), replace=False)
    out = []
    for t in chosen:
        sentences = [pool["sentences"][int(i)] for i in rng.permutation(len(pool["sentences"]))[:4]]
        emotion = str(rng.choice(sorted(EMOTION_PRESETS)))
        utts = [_utterance_task(options, root, talkers[int(t)], emotion, SENTENCES[j], None,
                                [options["seed"], STREAM_BABBLE, 1 << 20, noise_index, int(t), int(j)])
                for j in sentences]
        out.append({"utterances": utts, "offset": int(rng.integers(0, SAMPLE_RATE)),
                    "gain_db": float(rng.uniform(-4.0, 4.0))})
    return out


def _plan_noises(data_folder, options, root):
    """(task, row) of every noise file: white, pink, brown and babble in turn."""
    pool = voice_pools(options["held_out"])["in_generator"]
    talkers = [sample_speaker(options["seed"], _STREAM["babble"], i, pool, options["speaker_spread"],
                              options["voice_space"])
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
            task.update(kind="babble", talkers=_babble_talkers(options, root, rng, talkers, pool, i))
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
    splits = split_speakers(*(options[k] for k in _COUNTS[:5]))
    utterances = _plan_utterances(data_folder, options, root, splits)
    return utterances, _plan_noises(data_folder, options, root), _plan_rirs(data_folder, options), splits


# ------------------------------------------------------------------------ generation


def _clear_corpus(data_folder):
    """Remove what a SynthEmo generation wrote in ``data_folder`` (speaker folders, noise, rir, eSpeak copy, marker)."""
    for name in os.listdir(data_folder):
        path = os.path.join(data_folder, name)
        if os.path.isdir(path) and (_SPEAKER_FOLDER.fullmatch(name) or name in ("noise", "rir", ".espeak-data")):
            shutil.rmtree(path)
    os.remove(os.path.join(data_folder, DATA_MARKER))


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


def _render_missing(data_folder, options, num_workers, progress):
    """Plan the corpus, render the files that do not exist; return the plan and the new files' lengths."""
    root = espeak.prepare_espeak_root(os.path.join(data_folder, ".espeak-data"))
    utterances, noises, rirs, splits = _plan(data_folder, options, root)
    everything = utterances + noises + rirs
    for folder in sorted({os.path.dirname(task["path"]) for task, _ in everything}):
        os.makedirs(folder, exist_ok=True)
    todo = [task for task, _ in everything if not os.path.exists(task["path"])]
    lengths = _run_tasks(todo, num_workers, progress)
    espeak.clear_variants(root)
    espeak.engine.cache_clear()
    return (utterances, noises, rirs, splits), lengths, len(todo)


def _generate(data_folder, options, num_workers, progress, regenerate=False):
    """Generate what is missing; return (summary, utterance rows, noise rows, rir rows)."""
    start = time.time()
    data_folder = os.path.abspath(data_folder)
    content = _content_options(options)
    with prep_lock(data_folder, lock_file=DATA_LOCK):
        if check_marker(data_folder, content, regenerate):
            logger.warning("%s: clearing a SynthEmo corpus of other settings to regenerate it", data_folder)
            _clear_corpus(data_folder)
        write_marker(data_folder, content, options)
        remove_stale_temporaries(data_folder)
        (utterances, noises, rirs, splits), lengths, n_new = _render_missing(data_folder, options, num_workers,
                                                                            progress)
        utt_rows = _with_duration([row for _, row in utterances], lengths)
        noise_rows = _with_duration([row for _, row in noises], lengths)
        rir_rows = _with_duration([row for _, row in rirs], lengths)
        totals = {
            "n_utterances": len(utt_rows),
            "hours": round(sum(r["duration"] for r in utt_rows) / 3600, 4),
            "n_noise": len(noise_rows),
            "n_rir": len(rir_rows),
        }
        write_marker(data_folder, content, options, totals)
    summary = {
        "data_folder": data_folder,
        "speakers": {split: len(spks) for split, spks in splits.items()},
        "emotions": list(options["emotions"]),
        "n_sentences": options["n_sentences"],
        **totals,
        "n_generated": n_new,
        "n_skipped": len(utterances) + len(noises) + len(rirs) - n_new,
        "seconds": round(time.time() - start, 2),
    }
    return summary, utt_rows, noise_rows, rir_rows


# ----------------------------------------------------------------------- public API


def generate_synthemo(data_folder, progress=True, num_workers=None, regenerate=False, **options):
    """Generate the SynthEmo audio under ``data_folder`` (idempotent, resumable).

    Files that exist are complete (each is written under a temporary name and
    renamed) and are skipped; a second call with the same options writes nothing,
    an interrupted one resumes. A folder generated with options that change file
    contents is refused with the differing keys, unless ``regenerate``.

    Arguments
    ---------
    data_folder : str
        Corpus root.
    progress : bool
        Show a tqdm progress bar.
    num_workers : int or None
        Worker processes (default: up to 2); the output does not depend on it.
    regenerate : bool
        Clear a corpus of other settings in ``data_folder`` and generate this one.
    **options
        The corpus options of the module docstring (:data:`GENERATION_DEFAULTS`);
        an unknown name is an error that names it.

    Returns
    -------
    dict
        Speakers per split, utterance count, hours of speech, files generated
        and skipped by this call, seconds taken.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> tiny = dict(n_train=1, n_valid=0, n_eval=0, n_ood_valid=0, n_ood=0, n_sentences=1, emotions=("neutral",),
    ...             n_noise=0, n_rir=0, progress=False, num_workers=1)
    >>> s = generate_synthemo(d, **tiny)
    >>> s["n_utterances"], s["n_generated"], os.path.exists(os.path.join(d, "S0001", "Neutral", "S0001_000001.wav"))
    (1, 1, True)
    >>> generate_synthemo(d, **tiny)["n_generated"]
    0
    >>> try:
    ...     generate_synthemo(d, speaker_sprad=0.5)
    ... except ValueError as err:
    ...     print(err)
    generate_synthemo: unknown SynthEmo option 'speaker_sprad' (did you mean 'speaker_spread'?)
    """
    _check_option_names(options, "generate_synthemo")
    summary, _, _, _ = _generate(data_folder, _generation_options(options), num_workers, progress, regenerate)
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


def _corpus_complete(data_folder, options):
    info = read_marker(data_folder)
    return info is not None and bool(info.get("complete")) and info.get("options") == options


SPEAKER_COLUMNS = ("spk_id", "split", "gender", "base", "klatt", "accent", "vtl", "f0_low_hz", "f0_high_hz",
                   "rate_wpm", "breath", "roughness", "flutter", "tilt", "intonation", "expressiveness")


def _write_speakers(path, utt_rows):
    """``speakers.csv``: each speaker's main voice-space coordinates (for analysis; no recipe reads it)."""
    voices = {}
    for row in utt_rows:
        voices.setdefault(row["spk_id"], (row["split"], row["voice"]))
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SPEAKER_COLUMNS)
        for spk, (split, v) in voices.items():
            writer.writerow([spk, split, v["gender"], v["base"], v["klatt"], v["accent"], v["vtl"], *v["pitch"],
                             v["rate"], v["breath"], v["roughness"], v["flutter"], v["tilt"], v["intonation"],
                             v["expressiveness"]])


def _write_outputs(save_folder, data_folder, utt_rows, noise_rows, rir_rows, seed, nontargets_per_target):
    """Manifests, trial lists, speakers.csv and augmentation CSVs; return their paths relative to ``save_folder``."""
    outputs = []
    by_split = {split: [] for split in SPLITS}
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
    _write_speakers(os.path.join(save_folder, "speakers.csv"), utt_rows)
    _write_augment_csv(os.path.join(save_folder, "noise.csv"), noise_rows)
    _write_augment_csv(os.path.join(save_folder, "rir.csv"), rir_rows)
    return outputs + ["speakers.csv", "noise.csv", "rir.csv"]


def prepare_synthemo(data_folder, save_folder, seed=1234, nontargets_per_target=20, regenerate=False, progress=True,
                     num_workers=None, **options):
    """Generate SynthEmo if needed, then write manifests, trials, noise.csv and rir.csv.

    Outputs in ``save_folder`` (see :mod:`data_prep.common`): ``train.csv``,
    ``valid.csv``, ``eval.csv``, ``ood_valid.csv``, ``ood.csv`` with extra columns
    ``emotion, text`` and wav paths as ``$data_root/...``;
    ``trials/{valid,eval,ood_valid,ood}/<condition>.txt`` for every condition of
    :func:`data_prep.common.emotion_trials`; ``noise.csv`` and ``rir.csv``
    (absolute wav paths); ``speakers.csv`` (each speaker's split, gender, base,
    accent and main continuous coordinates); ``prepare.json`` last. Idempotent and
    safe to run concurrently on the same folders.

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
    regenerate, progress, num_workers
        As in :func:`generate_synthemo`.
    **options
        The corpus options of :func:`generate_synthemo`.

    Returns
    -------
    dict
        The options hash input and the written outputs (relative paths).

    Example
    -------
    >>> import tempfile
    >>> d, s = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> out = prepare_synthemo(d, s, n_train=2, n_valid=2, n_eval=2, n_sentences=2, emotions=("neutral", "sad"),
    ...                        n_noise=1, n_rir=1, progress=False, num_workers=1)
    >>> sorted(p for p in out["outputs"] if not p.startswith("trials"))
    ['eval.csv', 'noise.csv', 'ood.csv', 'ood_valid.csv', 'rir.csv', 'speakers.csv', 'train.csv', 'valid.csv']
    >>> "trials/ood/neutral_emotional.txt" in out["outputs"]
    True
    """
    _check_option_names(options, "prepare_synthemo")
    if isinstance(nontargets_per_target, bool) or not isinstance(nontargets_per_target, int) \
            or nontargets_per_target < 1:
        raise SynthEmoSettingError(f"nontargets_per_target must be an integer >= 1, got {nontargets_per_target!r}")
    options = _generation_options({**options, "seed": seed})
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
        _, utt_rows, noise_rows, rir_rows = _generate(data_folder, options, num_workers, progress, regenerate)
        outputs = _write_outputs(save_folder, data_folder, utt_rows, noise_rows, rir_rows, seed,
                                 nontargets_per_target)
        mark_prepared(save_folder, prep_options, outputs)
    return {"options": prep_options, "outputs": outputs}


# ------------------------------------------------------------------------ command line


def _parser(prog):
    d = GENERATION_DEFAULTS
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("data_folder")
    parser.add_argument("save_folder", nargs="?")
    for key in ("n_train", "n_valid", "n_eval", "n_ood_valid", "n_ood", "n_sentences", "n_noise", "n_rir",
                "n_babble_speakers"):
        parser.add_argument("--" + key.replace("_", "-"), type=int, default=d[key])
    parser.add_argument("--emotions", default=",".join(EMOTIONS), help="comma-separated")
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--speaker-spread", type=float, default=d["speaker_spread"])
    parser.add_argument("--voice-space", type=json.loads, default=None, help='JSON, e.g. \'{"vtl_sd": 0.05}\'')
    parser.add_argument("--held-out", type=json.loads, default=None, help="JSON overrides of voices.HELD_OUT")
    parser.add_argument("--snr-db", type=float, nargs=2, default=d["snr_db"], metavar=("LOW", "HIGH"))
    parser.add_argument("--no-noise", action="store_true", help="no per-utterance channel noise")
    parser.add_argument("--no-channel", action="store_true", help="no recording-channel filter")
    parser.add_argument("--tilt-db", type=float, default=d["tilt_db"], help="per-speaker tilt range, dB/octave")
    parser.add_argument("--session-tilt-db", type=float, default=d["session_tilt_db"], help="session tilt, dB/oct")
    parser.add_argument("--nontargets-per-target", type=int, default=20, help="with a save folder")
    parser.add_argument("--regenerate", action="store_true", help="clear a corpus of other settings first")
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
    options = {key: getattr(args, key) for key in ("n_train", "n_valid", "n_eval", "n_ood_valid", "n_ood",
                                                    "n_sentences", "n_noise", "n_rir", "n_babble_speakers",
                                                    "speaker_spread", "voice_space", "held_out", "tilt_db",
                                                    "session_tilt_db")}
    options.update(emotions=tuple(e for e in args.emotions.split(",") if e), channel=not args.no_channel,
                   snr_db=None if args.no_noise else tuple(args.snr_db))
    run = dict(progress=not args.no_progress, num_workers=args.num_workers, regenerate=args.regenerate)
    if args.save_folder:
        result = prepare_synthemo(args.data_folder, args.save_folder, seed=args.seed,
                                  nontargets_per_target=args.nontargets_per_target, **run, **options)
        summary = {"save_folder": os.path.abspath(args.save_folder), "outputs": len(result["outputs"])}
    else:
        summary = generate_synthemo(args.data_folder, seed=args.seed, **run, **options)
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
