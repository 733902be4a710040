"""SynthEmo's voice design: the parallel text, the emotions and the voice of each speaker.

A speaker is one of a few shipped eSpeak base variants (:data:`MALE_TEMPLATES`,
:data:`FEMALE_TEMPLATES`: their pitch and formant tables) read with an accent
(:data:`ACCENTS`), perturbed by per-speaker pitch, formant, breathiness,
roughness, flutter, voicing and source-tilt settings whose spread is
``speaker_spread`` (:func:`sample_speaker`). Emotions are prosody / voice-quality
presets (:data:`EMOTION_PRESETS`) applied relative to the speaker's own settings
and scaled by a per-speaker expressiveness: the voice-quality part goes into the
variant file (:func:`variant_text`), the prosodic part into eSpeak's parameters
(:func:`utterance_prosody`). Every speaker reads :data:`SENTENCES` in every
emotion (parallel text).
"""

import functools
import math
from types import MappingProxyType

import numpy as np

from data_prep.espeak import wheel_data_path

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

# Independent random streams: (seed, stream, ...) keys make every quantity depend
# only on what it describes, never on generation order or worker count.
STREAM_SPEAKER, STREAM_UTTERANCE, STREAM_SESSION, STREAM_NOISE, STREAM_RIR, STREAM_BABBLE = range(1, 7)


@functools.cache
def _template(name):
    """Pitch and formant table of a shipped eSpeak variant file."""
    path = wheel_data_path("voices", "!v", name)
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
    rng = np.random.default_rng([seed, STREAM_BABBLE if babble else STREAM_SPEAKER, index])
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


def emotion_settings(speaker, emotion):
    """The emotion preset scaled by the speaker's expressiveness.

    Example
    -------
    >>> emotion_settings({"expressiveness": 1.0}, "sad")["rate"]
    0.82
    """
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
    emo = emotion_settings(speaker, emotion)
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
    emo = emotion_settings(speaker, emotion)
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
