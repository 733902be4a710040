"""SynthEmo: a small emotional speaker corpus synthesised offline with eSpeak NG.

The corpus stands in for ESD-like data where no licensed corpus can be used
(tests, smoke runs, ablations). Everything is deterministic from a seed:

- speakers are eSpeak voices built from a few shipped base variants (``m1``...,
  ``f1``...) and an accent (``en-us`` / ``en``), each perturbed by per-speaker
  pitch, formant, breathiness, roughness, flutter, voicing and source-tilt settings
  whose spread is ``speaker_spread``; each speaker gets one eSpeak variant file
  per emotion;
- emotions are prosody / voice-quality presets (:data:`EMOTION_PRESETS`) applied
  relative to the speaker's own settings, scaled by a per-speaker expressiveness,
  with per-utterance jitter;
- every speaker reads the same :data:`SENTENCES` in every emotion (parallel text);
- each speaker has a recording channel (spectral tilt, band-pass) shared by its
  emotions, as when a speaker records every emotion in one studio set-up; each
  (speaker, emotion) session adds a small tilt change and its own gain, and every
  utterance gets light coloured noise (``snr_db``). Channel differences across a
  speaker's emotions are kept small on purpose, so that emotion, not channel, is
  the main mismatch of neutral-vs-emotional trials.

eSpeak NG is the engine shipped in the ``espeakng_loader`` wheel, driven through
ctypes in synchronous mode. It keeps synthesis state in C statics (pitch flutter
phase, gain control, breath noise generator) that ``espeak_Terminate`` does not
reset, so every utterance is synthesised by a freshly loaded private copy of the
library (``dlopen`` / ``dlclose``, about 3 ms): the output then depends only on the
utterance's own parameters, not on what the process synthesised before or on
how the work was split between worker processes.

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
``AddNoise`` / ``AddReverb``.
"""

import argparse
import contextlib
import csv
import ctypes
import fcntl
import functools
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import time
from types import MappingProxyType

import numpy as np
import soundfile as sf

from data_prep.common import (
    PreparationError,
    atomic_write,
    data_root_path,
    emotion_trials,
    is_prepared,
    mark_prepared,
    prep_lock,
    write_manifest,
    write_trials,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_SAMPLE_RATE = 22050
FORMAT_VERSION = 1
DATA_MARKER = "synthemo.json"

# Parallel text: every speaker reads all of these in every emotion (no commas, so
# the CSV text column never needs quoting).
SENTENCES = (
    "The old lighthouse keeper painted the front door bright green.",
    "Please remember to water the plants before you leave tomorrow.",
    "We walked along the river until the sun went down.",
    "My brother found a small gray kitten under the porch.",
    "The train to the coast leaves at seven every morning.",
    "She kept every letter her grandmother ever wrote to her.",
    "Nobody expected the concert to sell out in one hour.",
    "The bakery on the corner closes early on Sundays.",
    "He forgot his umbrella and got soaked on the way home.",
    "They are planning a long trip across the northern mountains.",
    "The children built a tall snowman in the empty park.",
    "I have never seen so many stars in the night sky.",
    "Our neighbors are moving to a quiet village by the sea.",
    "The meeting was moved to Thursday afternoon at four.",
    "A strong wind knocked over the fence behind the garage.",
    "You should taste the soup before adding more salt.",
    "The library will be closed for repairs until next month.",
    "Somebody left a bicycle leaning against the school gate.",
    "The doctor said that I need to rest for a whole week.",
    "We finally finished painting the kitchen late last night.",
    "The little boat drifted slowly toward the rocky shore.",
    "Her phone rang three times during the quiet lecture.",
    "The museum has a new exhibition about ancient maps.",
    "I think the package will arrive early next Tuesday.",
    "The farmer sold fresh eggs and honey at the market.",
    "He practiced the piano every evening for ten years.",
    "The light in the hallway keeps flickering at night.",
    "Everyone laughed when the dog stole the birthday cake.",
    "The bus was late again because of the heavy snow.",
    "We should leave now if we want to catch the ferry.",
)

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear")
# Difficulty, tuned on the valid speakers so that the baseline's EER is measurable
# rather than ~0 (recipes/SynthEmo/README.md, "Difficulty").
DEFAULT_SPEAKER_SPREAD = 0.4
DEFAULT_SNR_DB = (5.0, 25.0)


def _preset(rate=1.0, pitch=1.0, pitch_range=1.0, volume=1.0, breath=0.0, flutter=0.0, roughness=0.0,
            voicing=1.0, tilt=0.0, formant=1.0):
    return MappingProxyType(dict(rate=rate, pitch=pitch, pitch_range=pitch_range, volume=volume,
                                 breath=breath, flutter=flutter, roughness=roughness, voicing=voicing,
                                 tilt=tilt, formant=formant))


# Multiplicative factors (rate, pitch, pitch_range, volume, voicing, formant) and
# additive offsets (breath, flutter, roughness in eSpeak variant units; tilt in log
# units per tone point), all relative to the speaker's own neutral settings. The
# directions follow the usual acoustic correlates: high-arousal emotions are faster,
# higher, louder and tenser; sad is slow, low, narrow and breathy; fear is high,
# fast, breathy and trembling (flutter).
EMOTION_PRESETS = MappingProxyType({
    "neutral": _preset(),
    "happy": _preset(rate=1.08, pitch=1.15, pitch_range=1.5, volume=1.1, flutter=1, tilt=0.1, formant=1.03),
    "sad": _preset(rate=0.82, pitch=0.9, pitch_range=0.5, volume=0.7, breath=2.0, voicing=0.9, tilt=-0.15,
                   formant=0.98),
    "angry": _preset(rate=1.1, pitch=1.08, pitch_range=1.35, volume=1.4, roughness=2, voicing=1.15, tilt=0.2,
                     formant=1.02),
    "fear": _preset(rate=1.2, pitch=1.2, pitch_range=0.8, volume=0.85, breath=3.0, flutter=4, voicing=0.9,
                    tilt=-0.05, formant=1.01),
    "surprise": _preset(rate=1.0, pitch=1.22, pitch_range=1.8, volume=1.1, breath=0.5, flutter=1, tilt=0.1,
                        formant=1.02),
})

# Base voices: a few shipped eSpeak variants (their pitch and formant tables) and
# two accents; speakers differ from their base by sampled parameters only.
MALE_TEMPLATES = ("m1", "m2", "m3", "m4", "m6", "m7")
FEMALE_TEMPLATES = ("f1", "f2", "f3", "f4", "f5")
ACCENTS = ("en-us", "en")
# eSpeak's default harmonic "tone" envelope (voices.c tone_points), tilted per speaker.
TONE_POINTS = ((600, 170), (1200, 135), (2000, 110), (3000, 110))
NOISE_KINDS = ("white", "pink", "brown", "babble")
NOISE_ALPHA = MappingProxyType({"white": 0.0, "pink": 1.0, "brown": 2.0})

# Independent random streams: (seed, stream, ...) keys make every quantity depend
# only on what it describes, never on generation order or worker count.
_STREAM_SPEAKER, _STREAM_UTTERANCE, _STREAM_SESSION, _STREAM_NOISE, _STREAM_RIR, _STREAM_BABBLE = range(1, 7)

# espeak-ng API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_ESPEAK_DATA_FILES = ("phondata", "phondata-manifest", "phonindex", "phontab", "intonations", "en_dict")
_ESPEAK_ROOT_VERSION = "1"
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


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


# ---------------------------------------------------------------- voice parameters


@functools.cache
def _template(name):
    """Pitch and formant table of a shipped eSpeak variant file."""
    import espeakng_loader

    path = os.path.join(espeakng_loader.get_data_path(), "voices", "!v", name)
    pitch, formants = (82, 118), {k: (100, 100, 100, 0) for k in range(9)}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split("//")[0].split()
            if len(parts) >= 3 and parts[0] == "pitch":
                pitch = (int(parts[1]), int(parts[2]))
            elif len(parts) >= 3 and parts[0] == "formant":
                values = [int(v) for v in parts[1:6]] + [100, 100, 0][len(parts) - 3:]
                formants[values[0]] = tuple(values[1:5])
    return pitch, tuple(formants[k] for k in range(9))


def sample_speaker(seed, index, speaker_spread=1.0, babble=False):
    """Sample the voice of one speaker (pure function of its arguments).

    Arguments
    ---------
    seed : int
        Corpus seed.
    index : int
        0-based speaker index (``S0001`` is 0), or babble talker index.
    speaker_spread : float
        Scale of every per-speaker deviation from the base voice; 0 gives
        speakers that differ only by base voice, accent and gender.
    babble : bool
        Draw from the babble talkers' stream (talkers that are in no split).

    Returns
    -------
    dict
        JSON-serialisable voice description.

    Example
    -------
    >>> a = sample_speaker(1234, 0)
    >>> a == sample_speaker(1234, 0), a == sample_speaker(1234, 1)
    (True, False)
    >>> sorted(a)[:4]
    ['accent', 'breath', 'consonants', 'expressiveness']
    """
    s = float(speaker_spread)
    rng = np.random.default_rng([seed, _STREAM_BABBLE if babble else _STREAM_SPEAKER, index])
    female = bool(rng.random() < 0.5)
    templates = FEMALE_TEMPLATES if female else MALE_TEMPLATES
    template = templates[int(rng.integers(len(templates)))]
    accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
    (p1, p2), base_formants = _template(template)
    # Draw a fixed number of values in a fixed order so that every parameter is
    # reproducible whatever branch a speaker takes.
    z = rng.standard_normal(40)
    u = rng.random(8)
    pitch_base = p1 * math.exp(0.12 * s * z[0])
    pitch_top = pitch_base * (p2 / p1) * math.exp(0.10 * s * z[1])
    vocal_tract = math.exp(0.05 * s * z[2])
    formants = []
    for k, (freq, height, width, add) in enumerate(base_formants):
        scale = vocal_tract if 1 <= k <= 5 else 1.0
        formants.append((
            k,
            freq * scale * math.exp(0.03 * s * z[3 + k]),
            height * math.exp(0.12 * s * z[12 + k]),
            width * math.exp(0.15 * s * z[21 + k]),
            add,
        ))
    breathy = u[0] < 0.35
    return {
        "gender": "female" if female else "male",
        "template": template,
        "accent": accent,
        "pitch": [round(pitch_base, 2), round(max(pitch_top, pitch_base * 1.05), 2)],
        "formants": [[k, round(f, 3), round(h, 3), round(w, 3), a] for k, f, h, w, a in formants],
        "breath": round(3.0 * s * u[1], 3) if breathy else 0.0,
        "flutter": round(float(np.clip(2.5 + 1.5 * s * z[30], 0, 10)), 3),
        "roughness": round(float(np.clip(2.0 + 1.2 * s * z[31], 0, 7)), 3),
        "voicing": round(100 * math.exp(0.10 * s * z[32]), 3),
        "consonants": [round(100 * math.exp(0.15 * s * z[33]), 3),
                       round(100 * math.exp(0.15 * s * z[34]), 3)],
        "tilt": round(0.15 * s * z[35], 4),
        "rate": round(165 * math.exp(0.08 * s * z[36]), 3),
        "expressiveness": round(float(np.clip(1.0 + 0.25 * z[37], 0.5, 1.5)), 3),
    }


def _emotion_settings(speaker, emotion):
    """The emotion preset scaled by the speaker's expressiveness."""
    preset, e = EMOTION_PRESETS[emotion], speaker["expressiveness"]
    out = {}
    for key, value in preset.items():
        if key in ("breath", "flutter", "roughness", "tilt"):
            out[key] = e * value
        else:
            out[key] = math.exp(e * math.log(value))
    return out


def variant_text(speaker, emotion="neutral"):
    """The eSpeak variant file (``voices/!v/<name>``) of a speaker in an emotion.

    The voice-quality part of the emotion (breathiness, roughness, tremor,
    voicing, source tilt, slight formant shift) lives here; the prosodic part
    (rate, pitch, range, volume) goes through ``espeak_SetParameter``.

    Example
    -------
    >>> text = variant_text(sample_speaker(1234, 0), "sad")
    >>> text.splitlines()[0], sum(line.startswith("formant ") for line in text.splitlines())
    ('language variant', 9)
    """
    emo = _emotion_settings(speaker, emotion)
    p1, p2 = speaker["pitch"]
    lines = ["language variant", "name synthemo", f"gender {speaker['gender']}",
             f"pitch {round(p1)} {round(p2)}"]
    for k, f, h, w, add in speaker["formants"]:
        shift = emo["formant"] if 1 <= k <= 5 else 1.0
        lines.append(f"formant {k} {round(f * shift)} {round(h)} {round(w)} {add}")
    breath = speaker["breath"] + emo["breath"]
    if breath >= 0.5:
        weights = (0.0, 1.0, 1.3, 1.3, 1.3, 1.3, 1.3, 1.0)
        lines.append("breath " + " ".join(str(round(breath * w)) for w in weights))
    lines.append(f"flutter {round(speaker['flutter'] + emo['flutter'])}")
    lines.append(f"roughness {min(7, round(speaker['roughness'] + emo['roughness']))}")
    lines.append(f"voicing {round(speaker['voicing'] * emo['voicing'])}")
    c1, c2 = speaker["consonants"]
    lines.append(f"consonants {round(c1)} {round(c2)}")
    tilt = speaker["tilt"] + emo["tilt"]
    points = [f"{freq} {int(np.clip(round(height * math.exp(tilt * i)), 1, 255))}"
              for i, (freq, height) in enumerate(TONE_POINTS)]
    lines.append("tone " + " ".join(points))
    return "\n".join(lines) + "\n"


def utterance_prosody(speaker, emotion, rng):
    """``espeak_SetParameter`` values (rate, pitch, range, volume) with jitter.

    eSpeak's pitch parameter scales the voice's base pitch by ``2**((p-50)/50)``
    and the range parameter scales its range by ``r/50``, so the emotion acts
    relative to the speaker's own pitch.

    Example
    -------
    >>> spk = sample_speaker(1234, 0)
    >>> neutral = utterance_prosody(spk, "neutral", np.random.default_rng(0))
    >>> sad = utterance_prosody(spk, "sad", np.random.default_rng(0))
    >>> sad["rate"] < neutral["rate"], sad["pitch"] < neutral["pitch"]
    (True, True)
    """
    emo = _emotion_settings(speaker, emotion)
    j = rng.standard_normal(4)
    rate = speaker["rate"] * emo["rate"] * math.exp(0.04 * j[0])
    pitch = 50 + 50 * math.log2(emo["pitch"]) + 2.0 * j[1]
    pitch_range = 50 * emo["pitch_range"] * math.exp(0.08 * j[2])
    volume = 100 * emo["volume"] * math.exp(0.05 * j[3])
    return {
        "rate": int(np.clip(round(rate), 80, 450)),
        "pitch": int(np.clip(round(pitch), 0, 100)),
        "range": int(np.clip(round(pitch_range), 0, 100)),
        "volume": int(np.clip(round(volume), 10, 200)),
    }


# ---------------------------------------------------------------- signal processing


def _smooth_at_least(n):
    """Smallest 2^a 3^b 5^c 7^d >= n (fast FFT sizes)."""
    best = 1 << max(0, math.ceil(math.log2(max(n, 1))))
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                p2 = p3
                while p2 < n:
                    p2 *= 2
                best = min(best, p2)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def resample(signal, orig_sr, new_sr, response=None):
    """Band-limited FFT resampling, optionally through a zero-phase filter.

    One FFT pair does both the rate change and the channel filter. The signal is
    zero-padded to a length whose FFT is fast; speech padded with silence at both
    ends makes the circular wrap-around harmless.

    Arguments
    ---------
    signal : numpy.ndarray
        1-D signal.
    orig_sr, new_sr : int
        Sampling rates.
    response : callable or None
        ``response(freqs_hz) -> gain`` applied in the frequency domain.

    Returns
    -------
    numpy.ndarray
        ``round(len(signal) * new_sr / orig_sr)`` float64 samples.

    Example
    -------
    >>> t = np.arange(22050) / 22050
    >>> y = resample(np.sin(2 * np.pi * 1000 * t), 22050, 16000)
    >>> len(y), int(np.argmax(np.abs(np.fft.rfft(y))))
    (16000, 1000)
    """
    signal = np.asarray(signal, dtype=np.float64)
    g = math.gcd(orig_sr, new_sr)
    up, down = new_sr // g, orig_sr // g
    m = _smooth_at_least(math.ceil(len(signal) / down) + 1)
    n_in, n_out = m * down, m * up
    spectrum = np.fft.rfft(signal, n_in)
    out = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    k = min(len(spectrum), len(out))
    out[:k] = spectrum[:k]
    freqs = np.arange(len(out)) * (new_sr / n_out)
    nyquist = min(orig_sr, new_sr) / 2
    # A raised-cosine roll-off over the last 6 % below the new Nyquist avoids
    # the ringing of a brick-wall cut.
    edge = np.clip((freqs - 0.94 * nyquist) / (0.06 * nyquist), 0.0, 1.0)
    out *= 0.5 * (1 + np.cos(np.pi * edge))
    if response is not None:
        out *= response(freqs)
    y = np.fft.irfft(out, n_out) * (up / down)
    return y[: round(len(signal) * up / down)]


def channel_response(freqs, tilt_db_per_octave=0.0, highpass_hz=None, lowpass_hz=None):
    """Magnitude response of a recording channel: tilt and Butterworth band-pass.

    Example
    -------
    >>> h = channel_response(np.array([0.0, 1000.0, 7900.0]), 0.0, 100.0, 4000.0)
    >>> float(h[0]), round(float(h[1]), 2), bool(h[2] < 0.1)
    (0.0, 1.0, True)
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    gain = 10 ** (tilt_db_per_octave * np.log2(np.maximum(freqs, 50.0) / 1000.0) / 20)
    if highpass_hz:
        with np.errstate(divide="ignore"):
            gain = gain / np.sqrt(1 + (highpass_hz / np.maximum(freqs, 1e-9)) ** 4)
        gain[freqs == 0] = 0.0
    if lowpass_hz:
        gain = gain / np.sqrt(1 + (freqs / lowpass_hz) ** 8)
    return gain


def coloured_noise(n_samples, alpha, rng):
    """Gaussian noise with a ``1/f**alpha`` power spectrum (0 white, 1 pink, 2 brown), unit RMS.

    Example
    -------
    >>> x = coloured_noise(16000, 1.0, np.random.default_rng(0))
    >>> x.shape, round(float(np.sqrt(np.mean(x ** 2))), 3)
    ((16000,), 1.0)
    """
    n_fft = _smooth_at_least(n_samples)
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    shape = (np.maximum(freqs, 20.0) / 1000.0) ** (-alpha / 2)
    shape[0] = 0.0
    spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
    x = np.fft.irfft(spectrum, n_fft)[:n_samples]
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def active_power(x, sr=SAMPLE_RATE, floor_db=40.0):
    """Mean power of the frames within ``floor_db`` of the loudest 20 ms frame.

    Example
    -------
    >>> x = np.concatenate([np.zeros(8000), np.ones(8000)])
    >>> round(float(active_power(x)), 3)
    1.0
    """
    hop = int(0.02 * sr)
    n = len(x) // hop
    if n == 0:
        return float(np.mean(x ** 2)) if len(x) else 0.0
    frames = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    keep = frames >= frames.max() * 10 ** (-floor_db / 10)
    return float(frames[keep].mean())


def synthetic_rir(rng, rt60, sr=SAMPLE_RATE):
    """A room impulse response: direct path first, sparse early reflections, then
    exponentially decaying, slightly low-passed noise reaching -60 dB at ``rt60``.

    Example
    -------
    >>> h = synthetic_rir(np.random.default_rng(0), 0.5)
    >>> int(np.argmax(np.abs(h))), float(h[0]), len(h) > 0.5 * 16000
    (0, 1.0, True)
    """
    n = int((1.1 * rt60 + 0.02) * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    # Absorption grows with frequency: a one-pole low-pass dulls the tail.
    tail = _one_pole(tail, rng.uniform(0.0, 0.6))
    start = int(rng.uniform(0.002, 0.006) * sr)
    tail[:start] = 0.0
    drr_db = rng.uniform(0.0, 10.0)
    tail *= math.sqrt(10 ** (-drr_db / 10) / (np.sum(tail ** 2) + 1e-12))
    for _ in range(int(rng.integers(3, 9))):
        pos = int(rng.uniform(0.002, 0.04) * sr)
        tail[pos] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6) * math.exp(-pos / sr / 0.03)
    h = np.clip(tail, -0.9, 0.9)
    h[0] = 1.0
    return h.astype(np.float32)


def _one_pole(x, a):
    """y[n] = (1 - a) x[n] + a y[n-1], computed in blocks through an FFT convolution."""
    if a <= 0:
        return x
    length = min(len(x), int(math.ceil(math.log(1e-6) / math.log(a))) + 1)
    kernel = (1 - a) * a ** np.arange(length)
    n_fft = _smooth_at_least(len(x) + length)
    return np.fft.irfft(np.fft.rfft(x, n_fft) * np.fft.rfft(kernel, n_fft), n_fft)[: len(x)]


def _write_wav(path, samples, subtype="PCM_16"):
    """Write ``path`` through a temporary name in the same folder and ``os.replace``.

    A crash leaves at most a ``.tmp-`` file, which never counts as complete and is
    overwritten by the next attempt. Integer samples are rounded here, not by
    libsndfile, and float WAV is avoided: its PEAK chunk carries a timestamp,
    which would break byte-identical regeneration.
    """
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    bits = {"PCM_16": 16, "PCM_24": 24}[subtype]
    scale = 2 ** (bits - 1)
    data = np.round(np.clip(samples, -1.0, (scale - 1) / scale) * scale).astype(np.int32)
    # libsndfile keeps the top bits of int32 samples.
    data = data.astype(np.int16) if bits == 16 else data << (32 - bits)
    sf.write(tmp, data, SAMPLE_RATE, subtype=subtype, format="WAV")
    os.replace(tmp, path)


# ------------------------------------------------------------------------- eSpeak


def _prepare_espeak_root(root):
    """Private copy of the English eSpeak data and of the library under ``root``.

    Only the voices of this run live in ``voices/!v`` (eSpeak's voice list holds
    350 entries and is filled from ``voices/`` first). The library copy has its
    own inode, so ``dlopen`` gives this module an instance nobody else in the
    process shares, and ``dlclose`` really unloads it.
    """
    import espeakng_loader

    stamp = os.path.join(root, "VERSION")
    with contextlib.suppress(FileNotFoundError):
        with open(stamp) as f:
            if f.read().strip() == _ESPEAK_ROOT_VERSION:
                return root
    src = espeakng_loader.get_data_path()
    data = os.path.join(root, "espeak-ng-data")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(data, "voices", "!v"))
    os.makedirs(os.path.join(data, "lang", "gmw"))
    for name in _ESPEAK_DATA_FILES:
        shutil.copy2(os.path.join(src, name), os.path.join(data, name))
    for name in os.listdir(os.path.join(src, "lang", "gmw")):
        if name.startswith("en"):
            shutil.copy2(os.path.join(src, "lang", "gmw", name), os.path.join(data, "lang", "gmw", name))
    shutil.copy2(espeakng_loader.get_library_path(), os.path.join(root, "libespeak-ng.so"))
    with atomic_write(stamp) as f:
        f.write(_ESPEAK_ROOT_VERSION + "\n")
    return root


class _Espeak:
    """libespeak-ng through ctypes; a fresh library instance per utterance."""

    def __init__(self, root):
        self.root = root
        self.lib_path = os.path.join(root, "libespeak-ng.so")
        self.variant_name = f"sx{os.getpid()}"
        self.variant_path = os.path.join(root, "espeak-ng-data", "voices", "!v", self.variant_name)
        self._variant = None
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._checked_unload = False

    def _collect(self, wav, n_samples, events):
        if n_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def _load(self):
        try:
            return ctypes.CDLL(self.lib_path, mode=ctypes.RTLD_LOCAL)
        except OSError:
            # A data folder on a noexec mount cannot host the library copy.
            import espeakng_loader

            logger.warning("cannot load %s; using the shared eSpeak library", self.lib_path)
            self.lib_path = espeakng_loader.get_library_path()
            return ctypes.CDLL(self.lib_path, mode=ctypes.RTLD_LOCAL)

    def synth(self, text, accent, variant, prosody, seed):
        """int16 samples at 22050 Hz."""
        import _ctypes

        if variant != self._variant or not os.path.exists(self.variant_path):
            with open(self.variant_path, "w") as f:
                f.write(variant)
            self._variant = variant
        lib = self._load()
        initialised = False
        try:
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.root.encode(),
                                         _INITIALIZE_DONT_EXIT)
            if rate != ESPEAK_SAMPLE_RATE:
                raise RuntimeError(f"espeak_Initialize({self.root}) returned {rate}")
            initialised = True
            lib.espeak_SetSynthCallback(self._callback)
            voice = f"{accent}+{self.variant_name}"
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise RuntimeError(f"eSpeak has no voice {voice!r}")
            for param, key in ((_ESPEAK_RATE, "rate"), (_ESPEAK_PITCH, "pitch"), (_ESPEAK_RANGE, "range"),
                               (_ESPEAK_VOLUME, "volume")):
                lib.espeak_SetParameter(param, int(prosody[key]), 0)
            # Breath noise comes from eSpeak's own generator, seeded per utterance.
            lib.espeak_ng_SetRandSeed(int(seed))
            self._chunks = []
            data = text.encode("utf-8")
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
        finally:
            if initialised:
                lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
        if not self._checked_unload:
            self._check_unloaded()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def _check_unloaded(self):
        self._checked_unload = True
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as f:
                if self.lib_path in f.read():
                    logger.warning("libespeak-ng stays loaded after dlclose: SynthEmo output may depend on "
                                   "generation order and will not be bit-reproducible")


@functools.lru_cache(maxsize=4)
def _engine(root):
    return _Espeak(root)


# ------------------------------------------------------------------------ rendering


def _speech_bounds(x, margin_start, margin_end, sr):
    """Replace eSpeak's fixed leading/trailing silence by the given margins (seconds).

    Silence length then gives no cue to the synthesiser settings.
    """
    if len(x) == 0:
        return x
    level = np.abs(x)
    idx = np.nonzero(level > level.max() * 10 ** (-50 / 20))[0]
    start, end = idx[0] - int(margin_start * sr), idx[-1] + 1 + int(margin_end * sr)
    return np.concatenate([np.zeros(max(0, -start)), x[max(0, start):min(len(x), end)],
                           np.zeros(max(0, end - len(x)))])


def _synth_16k(engine, task, response=None):
    raw = engine.synth(task["text"], task["accent"], task["variant"], task["prosody"], task["espeak_seed"])
    x = _speech_bounds(raw.astype(np.float64) / 32768.0, task["margins"][0], task["margins"][1],
                       ESPEAK_SAMPLE_RATE)
    return resample(x, ESPEAK_SAMPLE_RATE, SAMPLE_RATE, response)


def _render_utterance(engine, task):
    ch = task["channel"]
    response = None
    if ch is not None:
        def response(freqs):
            return channel_response(freqs, ch["tilt"], ch["highpass"], ch["lowpass"])
    y = _synth_16k(engine, task, response)
    if task["snr"] is not None:
        noise = coloured_noise(len(y), task["noise_alpha"], np.random.default_rng(task["noise_seed"]))
        y = y + noise * math.sqrt(active_power(y) / 10 ** (task["snr"] / 10))
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
            track = np.concatenate([track, y / math.sqrt(active_power(y) + 1e-12)])
            if len(track) >= n + talker["offset"]:
                break
        # A talker shorter than the file starts over (np.resize repeats cyclically).
        track = np.resize(track, n + talker["offset"])[talker["offset"]:]
        mix += track * 10 ** (talker["gain_db"] / 20)
    return mix


def _normalise_noise(x):
    x = x * (10 ** (-26 / 20) / (math.sqrt(np.mean(x ** 2)) + 1e-12))
    peak = np.max(np.abs(x))
    return x * (0.98 / peak) if peak > 0.98 else x


def _run_task(task):
    """Worker entry point: render one file and return (path, n_samples)."""
    engine = _engine(task["espeak_root"]) if task["kind"] in ("utterance", "babble") else None
    if task["kind"] == "utterance":
        y = _render_utterance(engine, task)
    elif task["kind"] == "babble":
        y = _normalise_noise(_render_babble(engine, task))
    elif task["kind"] == "noise":
        rng = np.random.default_rng(task["noise_seed"])
        y = _normalise_noise(coloured_noise(int(task["duration"] * SAMPLE_RATE), task["alpha"], rng))
    else:
        y = synthetic_rir(np.random.default_rng(task["rir_seed"]), task["rt60"])
    # RIR tails decay to -60 dB and below: 24 bits keep them above the quantisation floor.
    _write_wav(task["path"], y, "PCM_24" if task["kind"] == "rir" else "PCM_16")
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
    rng = np.random.default_rng([options["seed"], _STREAM_SESSION, speaker_index])
    tilt = rng.uniform(-options["tilt_db"], options["tilt_db"])
    highpass = rng.uniform(*options["highpass_hz"])
    lowpass = min(rng.uniform(*options["lowpass_hz"]), 0.99 * SAMPLE_RATE / 2)
    rng = np.random.default_rng([options["seed"], _STREAM_SESSION, speaker_index, emo_index])
    return {
        "tilt": float(tilt + rng.uniform(-options["session_tilt_db"], options["session_tilt_db"])),
        "highpass": float(highpass),
        "lowpass": float(lowpass),
        "gain_db": float(rng.uniform(-6.0, 0.0)),
    }


def _plan(data_folder, options, root):
    """Every file of the corpus as (task, row) pairs; pure function of the options."""
    splits = split_speakers(options["n_train"], options["n_valid"], options["n_eval"])
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
                key = [options["seed"], _STREAM_UTTERANCE, index, k, j]
                task = _utterance_task(options, root, voice, emotion, j, channel, key)
                task["path"] = path
                row = {"ID": utt_id, "spk_id": spk, "emotion": emotion, "text": SENTENCES[j], "path": path,
                       "split": split_of[spk]}
                utterances.append((task, row))
    noises = []
    talkers = [sample_speaker(options["seed"], i, options["speaker_spread"], babble=True)
               for i in range(options["n_babble_speakers"])]
    for i in range(options["n_noise"]):
        kind = NOISE_KINDS[i % len(NOISE_KINDS)]
        if kind == "babble" and not talkers:
            kind = "white"
        rng = np.random.default_rng([options["seed"], _STREAM_NOISE, i])
        noise_id = f"noise_{i + 1:04d}_{kind}"
        task = {"path": os.path.join(data_folder, "noise", noise_id + ".wav"),
                "duration": float(rng.uniform(6.0, 10.0)), "espeak_root": root}
        if kind == "babble":
            chosen = rng.choice(len(talkers), size=min(len(talkers), int(rng.integers(3, 7))), replace=False)
            task["kind"] = "babble"
            task["talkers"] = []
            for t in chosen:
                sentences = rng.permutation(len(SENTENCES))[:4]
                emotion = str(rng.choice(sorted(EMOTION_PRESETS)))
                utts = [_utterance_task(options, root, talkers[int(t)], emotion, int(j), None,
                                        [options["seed"], _STREAM_BABBLE, 1 << 20, i, int(t), int(j)])
                        for j in sentences]
                task["talkers"].append({"utterances": utts, "offset": int(rng.integers(0, SAMPLE_RATE)),
                                        "gain_db": float(rng.uniform(-4.0, 4.0))})
        else:
            task.update(kind="noise", alpha=NOISE_ALPHA[kind], noise_seed=int(rng.integers(0, 2 ** 63 - 1)))
        noises.append((task, {"ID": noise_id, "path": task["path"]}))
    rirs = []
    for i in range(options["n_rir"]):
        rng = np.random.default_rng([options["seed"], _STREAM_RIR, i])
        rir_id = f"rir_{i + 1:04d}"
        task = {"kind": "rir", "path": os.path.join(data_folder, "rir", rir_id + ".wav"),
                "rt60": float(rng.uniform(0.2, 0.8)), "rir_seed": int(rng.integers(0, 2 ** 63 - 1))}
        rirs.append((task, {"ID": rir_id, "path": task["path"]}))
    return utterances, noises, rirs, splits


@contextlib.contextmanager
def _data_lock(data_folder):
    """Exclusive lock on a corpus folder.

    The lock file differs from ``prep_lock``'s, so a save folder equal to the
    data folder does not deadlock on itself.
    """
    os.makedirs(data_folder, exist_ok=True)
    with open(os.path.join(data_folder, ".synthemo.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
    with atomic_write(os.path.join(data_folder, DATA_MARKER)) as f:
        json.dump({"content_options": content, "options": options, "complete": totals is not None,
                   "totals": totals}, f, indent=2, sort_keys=True)


def _generate(data_folder, options, num_workers, progress):
    """Generate what is missing; return (summary, utterance rows, noise rows, rir rows)."""
    from tqdm import tqdm

    start = time.time()
    data_folder = os.path.abspath(data_folder)
    content = _content_options(options)
    with _data_lock(data_folder):
        _check_marker(data_folder, content)
        _write_marker(data_folder, content, options)
        root = _prepare_espeak_root(os.path.join(data_folder, ".espeak-data"))
        utterances, noises, rirs, splits = _plan(data_folder, options, root)
        everything = utterances + noises + rirs
        for task, _ in everything:
            os.makedirs(os.path.dirname(task["path"]), exist_ok=True)
        todo = [task for task, _ in everything if not os.path.exists(task["path"])]
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
        for name in os.listdir(os.path.join(root, "espeak-ng-data", "voices", "!v")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(root, "espeak-ng-data", "voices", "!v", name))
        _engine.cache_clear()

        def with_duration(rows):
            out = []
            for row in rows:
                n = lengths.get(row["path"])
                if n is None:
                    n = sf.info(row["path"]).frames
                out.append({**row, "duration": n / SAMPLE_RATE})
            return out

        utt_rows = with_duration([row for _, row in utterances])
        noise_rows = with_duration([row for _, row in noises])
        rir_rows = with_duration([row for _, row in rirs])
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
        Sentences per emotion (the first ``n_sentences`` of :data:`SENTENCES`).
    emotions : sequence of str
        Keys of :data:`EMOTION_PRESETS`; their order fixes the utterance numbers.
    seed : int
        Seed of everything.
    speaker_spread : float
        Difficulty knob: scale of the per-speaker voice deviations (pitch,
        formants, voice quality, rate). Smaller is harder. The default was tuned on
        the valid speakers so the baseline's EER is measurable (see recipes/SynthEmo/README.md).
    snr_db : (float, float) or None
        Range of the per-utterance channel-noise SNR; None for no noise.
    n_noise, n_rir : int
        Sizes of the noise set (white, pink, brown, babble in turn) and of the
        room-impulse-response set.
    progress : bool
        Show a tqdm progress bar.
    num_workers : int or None
        Worker processes (default: up to 2); the output does not depend on it.
    channel : bool
        Apply a recording channel: per speaker tilt and band-pass, per
        (speaker, emotion) session a tilt change and a gain in [-6, 0] dB.
    tilt_db : float
        Per-speaker spectral tilt drawn from ``[-tilt_db, tilt_db]`` dB/octave.
    highpass_hz, lowpass_hz : (float, float)
        Ranges of the per-speaker band-pass edges.
    n_babble_speakers : int
        Extra talkers (in no split) that make up the babble noise.
    session_tilt_db : float
        Per-session tilt change drawn from ``[-session_tilt_db, session_tilt_db]``
        dB/octave (channel mismatch between a speaker's emotions).

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


def prepare_synthemo(data_folder, save_folder, seed=1234, nontargets_per_target=3, **generation_options):
    """Generate SynthEmo if needed, then write manifests, trials, noise.csv and rir.csv.

    Outputs in ``save_folder`` (see :mod:`data_prep.common`): ``train.csv``,
    ``valid.csv``, ``eval.csv`` with extra columns ``emotion, text`` and wav paths
    as ``$data_root/...``; ``trials/{valid,eval}/<condition>.txt`` for every
    condition of :func:`data_prep.common.emotion_trials` (``neutral_neutral``,
    ``neutral_emotional``, ``all``, ``same_emotion``, ``test_<emotion>``);
    ``noise.csv`` and ``rir.csv`` (absolute wav paths); ``prepare.json`` last.
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
        outputs += ["noise.csv", "rir.csv"]
        mark_prepared(save_folder, prep_options, outputs)
    return {"options": prep_options, "outputs": outputs}


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


def main(argv=None):
    """Command line: ``python -m data_prep.synthetic <data_folder> [<save_folder>] [options]``.

    Without a save folder only the audio is generated.

    Example
    -------
    >>> import tempfile
    >>> main([tempfile.mkdtemp(), "--n-train", "1", "--n-valid", "0", "--n-eval", "0", "--n-sentences", "1",
    ...       "--emotions", "neutral", "--n-noise", "0", "--n-rir", "0", "--no-progress", "--quiet"])
    0
    """
    parser = argparse.ArgumentParser(prog="python -m data_prep.synthetic", description=__doc__.split("\n")[0])
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
    args = parser.parse_args(argv)
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
