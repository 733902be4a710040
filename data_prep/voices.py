"""SynthEmo's voice space: what a speaker is, how it is drawn, how it sounds in each emotion.

A SynthEmo speaker is a point in a voice space, drawn by :func:`sample_speaker`
from the corpus seed, its split and its index (a pure function: nothing depends on
generation order). Categorical coordinates pick what eSpeak NG offers; continuous
coordinates make every speaker unique, so that the base variant alone never
identifies a speaker. ``s`` is ``speaker_spread``, the knob of speaker difficulty:
it scales every continuous width below (0 leaves only the categorical coordinates
and the gender means; the recipe's value was tuned on the validation splits,
recipes/SynthEmo/README.md); ``expressiveness_mean`` is the knob of emotion
difficulty. Every width is a key of :data:`VOICE_SPACE` and can be
overridden (``voice_space={"vtl_sd": 0.05}``); an unknown key is an error.

=================  ===========================================  =====================================
coordinate         eSpeak NG setting                            distribution (``VOICE_SPACE`` keys)
=================  ===========================================  =====================================
gender             ``gender`` (also picks the medians below)    female with probability ``female_share``
base variant       ``voices/!v/<base>``: formant pattern,       uniform over the split's bases
                   heights, widths, tone envelope, synthesiser  (:func:`admitted_bases` minus
                   (harmonic, Klatt sources, speechPlayer),     :data:`HELD_OUT` for in-generator
                   stress rhythm                                splits)
accent             ``lang/gmw/<accent>``                        uniform over the split's accents
vocal-tract        formant 1-8 frequencies x one factor; the    log-normal, median ``vtl_male`` /
length             base's own F1-F3 level is divided out        ``vtl_female``, sd ``vtl_sd`` s,
                   (the base gives the shape only)              clipped at +-2.5 sd
formant detail     F1-F5 frequency                              log-normal factor, sd ``formant_sd`` s
                   F0-F8 height, width                          log-normal factors, sd
                                                                ``formant_height_sd`` s, ``formant_width_sd`` s
F0 register        ``pitch`` low end (Hz)                       log-normal, median ``f0_male_hz`` /
                                                                ``f0_female_hz``, sd ``f0_sd`` s
F0 range           ``pitch`` high end = low end x ratio         log-normal ratio, median ``f0_range``,
                                                                sd ``f0_range_sd`` s, clipped to [1.1, 2.5]
speaking rate      ``espeakRATE`` (words per minute)            log-normal, median ``rate_wpm``,
                                                                sd ``rate_sd`` s
breathiness        ``breath`` (aspiration noise in F1-F7)       breathy with probability
                                                                ``breathy_share``, level uniform in
                                                                [0, ``breath_max`` s]
roughness          ``roughness`` (0-7)                          normal, mean ``roughness``,
                                                                sd ``roughness_sd`` s, clipped
flutter            ``flutter`` (F0 jitter/tremor, 0-10)         normal, mean ``flutter``,
                                                                sd ``flutter_sd`` s, clipped
voicing            ``voicing`` (voiced vs noise energy)         the base's x log-normal, sd ``voicing_sd`` s
consonants         ``consonants`` (unvoiced, voiced)            the base's x log-normal, sd ``consonants_sd`` s
spectral tilt      ``tone`` envelope, log-gain per tone point   normal, sd ``tilt_sd`` s
intonation         ``intonation`` (0: the accent's tunes;       shares ``intonation_shares``
                   1-3: eSpeak's clause-tune groups)
expressiveness     scales every emotion preset (an exponent of  ``expressiveness_mean`` x (1 + sd z), sd
                   its factors, a multiplier of its offsets)    ``expressiveness_sd``, the bracket clipped
                                                                to [0.5, 1.5] (not scaled by s)
=================  ===========================================  =====================================

Each speaker also has a recording channel and a sentence draw (:mod:`data_prep.synthemo`).

**Bases.** The wheel ships 104 variants (``voices/!v``); :data:`EXCLUDED_BASES`
lists the 32 that are not speech-like enough, each with its reason (whispered,
robotic effects, novelty, a broken vowel-formant table), leaving 72. A base
contributes its formant pattern (normalised), tone envelope, synthesiser and
stress rhythm; its pitch, echo, breath, flutter, roughness and gender are replaced
by the speaker's draw (echo is a room effect, SynthEmo's rooms are its channel and RIRs).

**Held out.** :data:`HELD_OUT` names the bases of the two out-of-generator splits
(``ood_valid``, ``ood``; disjoint), the held-out accents (both) and how many
sentences at the end of :data:`~data_prep.sentences.SENTENCES` are held out (both).
No train, valid or eval speaker (nor a babble talker) uses any of them.
:func:`check_held_out` refuses an empty, overlapping or unknown entry and a held-out
base that is a near copy (same synthesiser, formant table within a few percent) of
a base left in the generator.

**Emotions** stay prosody / voice-quality presets (:data:`EMOTION_PRESETS`)
relative to the speaker's own settings, scaled by its expressiveness: the
voice-quality part goes into the variant file (:func:`variant_text`), the prosodic
part into eSpeak's parameters (:func:`utterance_prosody`).
"""

import difflib
import functools
import math
import os
from types import MappingProxyType

import numpy as np

from data_prep.espeak import wheel_data_path
from data_prep.sentences import SENTENCES
from speechbrain_ext.errors import SpeechBrainExtError

__all__ = ["ACCENTS", "DEFAULT_SPEAKER_SPREAD", "EMOTIONS", "EMOTION_PRESETS", "EXCLUDED_BASES", "HELD_OUT",
           "VOICE_SPACE", "SynthEmoSettingError", "admitted_bases", "base_voice", "check_held_out",
           "check_voice_space", "emotion_settings", "near_copies", "sample_speaker", "utterance_prosody",
           "variant_text", "voice_pools"]

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear")
# Difficulty, tuned on the validation splits (recipes/SynthEmo/README.md, "Difficulty").
DEFAULT_SPEAKER_SPREAD = 1.0


class SynthEmoSettingError(SpeechBrainExtError, ValueError):
    """A SynthEmo setting (voice space, held-out set, corpus option) is unknown or invalid; the message names it.

    Example
    -------
    >>> isinstance(SynthEmoSettingError("voice_space: unknown parameter 'vtl_sdd'"), ValueError)
    True
    """


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

# The English accents of the wheel (lang/gmw; en-Shaw is a spelling, not an accent).
ACCENTS = ("en", "en-US", "en-US-nyc", "en-GB-x-rp", "en-GB-scotland", "en-GB-x-gbclan", "en-GB-x-gbcwmd",
           "en-029")

_WHISPERED = "whispered: no voicing (identity without F0 is another task)"
_ROBOT = "robotic effect: echo of 500 % or more, roughness 50+ or a monotone pitch"
_VOWELS = "broken vowel formants: F1-F3 outside 65-145 % of eSpeak's or +-25 % of each other"
EXCLUDED_BASES = MappingProxyType({
    "whisper": _WHISPERED, "whisperf": _WHISPERED, "caleb": _WHISPERED,
    **{name: _ROBOT for name in ("Demonic", "UniRobot", "anikaRobot", "RicishayMax", "RicishayMax2",
                                 "RicishayMax3", "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5",
                                 "robosoft6", "robosoft7", "robosoft8")},
    "announcer": "novelty: public-address announcer (37 Hz pitch floor, echo)",
    "Tweaky": "novelty: F3 at 200 %",
    "fast": "a speed-test setting with no voice parameter (the default voice)",
    "zac": "a child's voice (formants +45 %, F0 240-390 Hz), outside the adult vocal tracts drawn here",
    **{name: _VOWELS for name in ("Andy", "AnxiousAndy", "Jacky", "Lee", "boris", "kaukovalta", "travis",
                                  "Michael", "gustave", "marcelo", "Marco")},
})

# The out-of-generator material (issue 11): whole families of bases (members that
# differ only in what the speaker draw replaces are one family), two accents and
# the last 50 sentences. Both splits mix harmonic and Klatt / speechPlayer bases
# and male- and female-designed formant tables.
HELD_OUT = MappingProxyType({
    "ood_valid_bases": ("Andrea", "aunty", "f3", "f4", "Gene", "Gene2", "iven", "iven2", "iven3", "iven4",
                        "Mario", "norbert", "klatt2", "benjamin"),
    "ood_bases": ("Annie", "belinda", "ed", "m7", "Nguyen", "paul", "quincy", "rob", "robert", "Storm", "klatt3",
                  "Reed"),
    "accents": ("en-GB-scotland", "en-029"),
    "sentences": 50,
})

VOICE_SPACE = MappingProxyType({
    "female_share": 0.5,
    "vtl_male": 1.0, "vtl_female": 1.16, "vtl_sd": 0.07,
    "formant_sd": 0.04, "formant_height_sd": 0.12, "formant_width_sd": 0.15,
    "f0_male_hz": 85.0, "f0_female_hz": 155.0, "f0_sd": 0.16,
    "f0_range": 1.45, "f0_range_sd": 0.12,
    "rate_wpm": 165.0, "rate_sd": 0.10,
    "breathy_share": 0.35, "breath_max": 4.0,
    "roughness": 2.0, "roughness_sd": 1.5,
    "flutter": 2.5, "flutter_sd": 1.5,
    "voicing_sd": 0.12, "consonants_sd": 0.15,
    "tilt_sd": 0.15,
    "intonation_shares": (0.55, 0.15, 0.15, 0.15),
    "expressiveness_mean": 1.0, "expressiveness_sd": 0.25,
})
# A key added to VOICE_SPACE defaults to the value that reproduces the corpora generated before it
# existed (``expressiveness_mean`` 1.0 is v2's), so their markers stay valid (data_prep.synthemo).
_SHARES = ("female_share", "breathy_share")

# eSpeak's defaults where a variant is silent (voices.c VoiceReset), in the variant file's
# percent units; formant 0's width is written before eSpeak's own x1.05.
_DEFAULT_HEIGHTS = tuple(h * 2 / 2.56 for h in (130, 128, 120, 116, 100, 100, 128, 128, 128))
_DEFAULT_WIDTHS = tuple(w * 2 / 2.56 for w in (140, 128, 128, 160, 171, 171, 128, 128, 128))
# eSpeak's default harmonic "tone" envelope (voices.c tone_points), tilted per speaker.
TONE_POINTS = ((600, 170), (1200, 135), (2000, 110), (3000, 110))
# Output level of eSpeak's synthesisers at the same volume differs up to 4x (RMS of one
# sentence: harmonic 0.092, Klatt sources 1-5: 0.031, 0.034, 0.086, 0.119, 0.131,
# speechPlayer 0.097); this factor brings each to about the harmonic one's, with the Klatt
# sources' own saturation kept rare (< 1 % of the samples of an angry utterance).
_SOURCE_VOLUME = MappingProxyType({0: 1.0, 1: 2.2, 2: 1.6, 3: 0.85, 4: 0.7, 5: 0.6, 6: 0.95})
_RHYTHM_KEYS = ("stressLength", "stressAdd", "stressAmp")

# Independent random streams: (seed, stream, ...) keys make every quantity depend
# only on what it describes, never on generation order or worker count.
STREAM_SPEAKER, STREAM_UTTERANCE, STREAM_SESSION, STREAM_NOISE, STREAM_RIR, STREAM_BABBLE, STREAM_TEXT = range(1, 8)


# ------------------------------------------------------------------------- bases


def _ints(values):
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            break
    return out


@functools.cache
def base_voice(name):
    """The settings of a shipped eSpeak variant ``voices/!v/<name>`` that SynthEmo uses.

    Returns
    -------
    dict
        ``formants`` (9 x [freq %, height %, width %, freq add Hz], eSpeak's defaults
        where the file is silent), ``tone`` (pairs Hz, height), ``klatt`` (0:
        harmonic; 1-5 Klatt glottal sources; 6 speechPlayer), ``voicing``,
        ``consonants``, ``breathw``, the rhythm lines and ``pitch``/``echo`` (informative).

    Example
    -------
    >>> b = base_voice("f1")
    >>> b["formants"][1], b["klatt"], base_voice("klatt3")["klatt"]
    ((120, 80, 180, 0), 0, 3)
    >>> base_voice("nobody")
    Traceback (most recent call last):
    ...
    data_prep.voices.SynthEmoSettingError: 'nobody' is not an eSpeak NG variant of the wheel (voices/!v)
    """
    path = wheel_data_path("voices", "!v", name)
    if not os.path.isfile(path):
        raise SynthEmoSettingError(f"{name!r} is not an eSpeak NG variant of the wheel (voices/!v)")
    formants = [[100, _DEFAULT_HEIGHTS[k], _DEFAULT_WIDTHS[k], 0] for k in range(9)]
    lines = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split("//")[0].split()
            if not parts or parts[0].startswith("#"):
                continue
            values = _ints(parts[1:])
            if parts[0] == "formant" and len(values) >= 2 and 0 <= values[0] <= 8:
                # voices.c VoiceFormant: what a formant line leaves out is 100 %, 100 %, 0 Hz
                formants[values[0]] = (values[1:5] + [100, 100, 0][len(values) - 2:])[:4]
            else:
                lines[parts[0]] = values
    consonants = lines.get("consonants", [90, 100]) + [100]
    return MappingProxyType({
        "name": name,
        "formants": tuple(tuple(round(v) for v in f) for f in formants),
        "tone": tuple(zip(lines["tone"][:10:2], lines["tone"][1:10:2], strict=False)) if "tone" in lines else None,
        "klatt": lines.get("klatt", [0])[0] if lines.get("klatt") else 0,
        "voicing": lines.get("voicing", [100])[0] if lines.get("voicing") else 100,
        "consonants": tuple(consonants[:2]),
        "breathw": tuple(lines["breathw"]) if lines.get("breathw") else None,
        "rhythm": tuple((k, tuple(lines[k])) for k in _RHYTHM_KEYS if lines.get(k)),
        "pitch": tuple(lines.get("pitch", ())),
        "echo": tuple(lines.get("echo", ())),
    })


@functools.cache
def admitted_bases():
    """Every shipped variant not in :data:`EXCLUDED_BASES`, sorted case-insensitively.

    Example
    -------
    >>> names = admitted_bases()
    >>> len(names), "m1" in names, "whisper" in names
    (72, True, False)
    """
    names = os.listdir(wheel_data_path("voices", "!v"))
    return tuple(sorted((n for n in names if n not in EXCLUDED_BASES), key=str.lower))


def near_copies(a, b):
    """True when bases ``a`` and ``b`` differ by less than the speaker draw moves them.

    Same synthesiser and, for the formants that shape vowels and timbre (F1-F5),
    frequencies within 5 % and heights and widths within 15 % of each other: what is
    left is replaced or swamped by the speaker draw.

    Example
    -------
    >>> near_copies("Diogo", "Hugo"), near_copies("m1", "f1")
    (True, False)
    """
    va, vb = base_voice(a), base_voice(b)
    if va["klatt"] != vb["klatt"]:
        return False
    for fa, fb in zip(va["formants"][1:6], vb["formants"][1:6]):
        for x, y, tol in zip(fa[:3], fb[:3], (0.05, 0.15, 0.15)):
            if abs(x - y) > tol * max(abs(x), abs(y), 1):
                return False
    return True


# ----------------------------------------------------------------- validation


def _closest(name, known):
    match = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_voice_space(overrides=None):
    """:data:`VOICE_SPACE` with ``overrides`` applied, validated.

    Raises
    ------
    SynthEmoSettingError
        An unknown key (with the closest known one) or a value out of range, named.

    Example
    -------
    >>> check_voice_space({"vtl_sd": 0.05})["vtl_sd"]
    0.05
    >>> check_voice_space({"vtl_sdd": 0.05})
    Traceback (most recent call last):
    ...
    data_prep.voices.SynthEmoSettingError: voice_space: unknown parameter 'vtl_sdd' (did you mean 'vtl_sd'?)
    """
    overrides = dict(overrides or {})
    space = dict(VOICE_SPACE)
    for key, value in overrides.items():
        if key not in VOICE_SPACE:
            raise SynthEmoSettingError(f"voice_space: unknown parameter {key!r}{_closest(key, VOICE_SPACE)}")
        if key == "intonation_shares":
            shares = [float(v) for v in value]
            if len(shares) != len(VOICE_SPACE[key]) or min(shares) < 0 or not math.isclose(sum(shares), 1.0):
                raise SynthEmoSettingError(f"voice_space: {key} must be {len(VOICE_SPACE[key])} shares >= 0 "
                                      f"summing to 1, got {value!r}")
            space[key] = tuple(shares)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SynthEmoSettingError(f"voice_space: {key} must be a number, got {value!r}")
        if value < 0 or (key in _SHARES and value > 1):
            raise SynthEmoSettingError(f"voice_space: {key} must be {'in [0, 1]' if key in _SHARES else '>= 0'}, "
                                  f"got {value!r}")
        space[key] = float(value)
    return space


def _check_names(key, names, known, what):
    if isinstance(names, str) or not names:
        raise SynthEmoSettingError(f"held_out.{key} must be a non-empty list of {what}, got {names!r}")
    names = [str(n) for n in names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SynthEmoSettingError(f"held_out.{key} names {duplicated} twice")
    for name in names:
        if name in EXCLUDED_BASES and what == "bases":
            raise SynthEmoSettingError(f"held_out.{key}: {name!r} is excluded from the voice space "
                                  f"({EXCLUDED_BASES[name]})")
        if name not in known:
            where = "an eSpeak NG variant of the wheel (voices/!v)" if what == "bases" else \
                f"an English accent of the wheel ({', '.join(ACCENTS)})"
            raise SynthEmoSettingError(f"held_out.{key}: {name!r} is not {where}{_closest(name, known)}")
    return tuple(names)


def _check_no_near_copies(held, in_generator):
    pairs = [(b, "ood_valid_bases", o, "in-generator base") for b in held["ood_valid_bases"] for o in in_generator]
    pairs += [(b, "ood_bases", o, "in-generator base") for b in held["ood_bases"] for o in in_generator]
    pairs += [(b, "ood_bases", o, "ood_valid base") for b in held["ood_bases"] for o in held["ood_valid_bases"]]
    for name, key, other, what in pairs:
        if near_copies(name, other):
            raise SynthEmoSettingError(f"held_out.{key}: {name!r} is a near copy of {what} {other!r} (same "
                                       "synthesiser, formant table within 5 %): hold out its whole family or neither")


def check_held_out(held_out=None):
    """:data:`HELD_OUT` with the entries of ``held_out`` replaced, validated.

    Raises
    ------
    SynthEmoSettingError
        An unknown key, an empty or overlapping list, a base that is not in the wheel
        or is excluded, an unknown accent, a held-out base with a near copy left in the
        generator or in the other split, or a sentence count that leaves no pool.

    Example
    -------
    >>> check_held_out()["accents"]
    ('en-GB-scotland', 'en-029')
    >>> check_held_out({"ood_bases": ["Andrea"]})
    Traceback (most recent call last):
    ...
    data_prep.voices.SynthEmoSettingError: held_out: ood_valid_bases and ood_bases overlap: ['Andrea']
    """
    held = dict(HELD_OUT)
    for key, value in dict(held_out or {}).items():
        if key not in HELD_OUT:
            raise SynthEmoSettingError(f"held_out: unknown key {key!r}{_closest(key, HELD_OUT)}")
        held[key] = value
    bases = os.listdir(wheel_data_path("voices", "!v"))
    for key in ("ood_valid_bases", "ood_bases"):
        held[key] = _check_names(key, held[key], bases, "bases")
    held["accents"] = _check_names("accents", held["accents"], ACCENTS, "accents")
    overlap = sorted(set(held["ood_valid_bases"]) & set(held["ood_bases"]))
    if overlap:
        raise SynthEmoSettingError(f"held_out: ood_valid_bases and ood_bases overlap: {overlap}")
    if len(held["accents"]) >= len(ACCENTS):
        raise SynthEmoSettingError("held_out.accents holds every accent: none is left for train, valid and eval")
    n = held["sentences"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < len(SENTENCES):
        raise SynthEmoSettingError(f"held_out.sentences must be an integer in 1..{len(SENTENCES) - 1} "
                              f"(the last ones of the pool), got {n!r}")
    in_generator = [b for b in admitted_bases() if b not in held["ood_valid_bases"] + held["ood_bases"]]
    if not in_generator:
        raise SynthEmoSettingError("held_out: every admitted base is held out: none is left for train, valid and eval")
    _check_no_near_copies(held, in_generator)
    return held


def voice_pools(held_out=None):
    """Bases, accents and sentence indices of the in-generator and the two held-out pools.

    Example
    -------
    >>> pools = voice_pools()
    >>> sorted(pools), len(pools["in_generator"]["sentences"]), pools["ood"]["sentences"][0]
    (['in_generator', 'ood', 'ood_valid'], 150, 150)
    >>> set(pools["ood"]["bases"]) & set(pools["in_generator"]["bases"])
    set()
    """
    held = check_held_out(held_out)
    n_in = len(SENTENCES) - held["sentences"]
    held_bases = set(held["ood_valid_bases"] + held["ood_bases"])
    in_generator = {
        "bases": tuple(b for b in admitted_bases() if b not in held_bases),
        "accents": tuple(a for a in ACCENTS if a not in held["accents"]),
        "sentences": tuple(range(n_in)),
    }
    held_text = tuple(range(n_in, len(SENTENCES)))
    return {
        "in_generator": in_generator,
        "ood_valid": {"bases": held["ood_valid_bases"], "accents": held["accents"], "sentences": held_text},
        "ood": {"bases": held["ood_bases"], "accents": held["accents"], "sentences": held_text},
    }


# ---------------------------------------------------------------------- speakers


def _formants(base, vtl, z, space, s):
    """Formant table: the base's pattern (its F1-F3 level divided out) x the speaker's vocal tract."""
    freqs = [f[0] for f in base["formants"]]
    level = math.exp(sum(math.log(max(f, 1)) for f in freqs[1:4]) / 3) / 100
    out = []
    for k, (freq, height, width, add) in enumerate(base["formants"]):
        if k >= 1:
            freq = freq / level * vtl * (math.exp(space["formant_sd"] * s * z[k]) if k <= 5 else 1.0)
        out.append([k, round(freq, 3), round(height * math.exp(space["formant_height_sd"] * s * z[9 + k]), 3),
                    round(width * math.exp(space["formant_width_sd"] * s * z[18 + k]), 3), add])
    return out


def _clipped_lognormal(median, sd, z, low=-2.5, high=2.5):
    return median * math.exp(sd * float(np.clip(z, low, high)))


def sample_speaker(seed, stream, index, pool, speaker_spread=DEFAULT_SPEAKER_SPREAD, voice_space=None):
    """Draw one speaker of the voice space (pure function of its arguments).

    Arguments
    ---------
    seed : int
        Corpus seed.
    stream : int
        The split's stream (each split and the babble talkers draw independently).
    index : int
        0-based speaker index within its stream.
    pool : dict
        ``bases`` and ``accents`` to draw from (:func:`voice_pools`).
    speaker_spread : float
        ``s``: scale of every continuous width (module docstring).
    voice_space : dict or None
        :data:`VOICE_SPACE` (validated by :func:`check_voice_space`); None for the defaults.

    Returns
    -------
    dict
        JSON-serialisable voice description.

    Example
    -------
    >>> pool = voice_pools()["in_generator"]
    >>> a = sample_speaker(1234, 0, 0, pool)
    >>> a == sample_speaker(1234, 0, 0, pool), a == sample_speaker(1234, 0, 1, pool)
    (True, False)
    >>> a["base"] in pool["bases"] and a["accent"] in pool["accents"]
    True
    """
    space = VOICE_SPACE if voice_space is None else voice_space
    s = float(speaker_spread)
    rng = np.random.default_rng([seed, STREAM_SPEAKER, stream, index])
    female = bool(rng.random() < space["female_share"])
    base_name = pool["bases"][int(rng.integers(len(pool["bases"])))]
    accent = pool["accents"][int(rng.integers(len(pool["accents"])))]
    # A fixed number of draws in a fixed order: every coordinate is reproducible
    # whatever branch a speaker takes.
    z = rng.standard_normal(48)
    u = rng.random(8)
    base = base_voice(base_name)
    sex = "female" if female else "male"
    vtl = _clipped_lognormal(space[f"vtl_{sex}"], space["vtl_sd"] * s, z[30])
    f0 = space[f"f0_{sex}_hz"] * math.exp(space["f0_sd"] * s * z[31])
    ratio = float(np.clip(space["f0_range"] * math.exp(space["f0_range_sd"] * s * z[32]), 1.1, 2.5))
    breathy = u[0] < space["breathy_share"]
    intonation = int(np.searchsorted(np.cumsum(space["intonation_shares"]), u[2], side="right"))
    return {
        "gender": sex,
        "base": base_name,
        "accent": accent,
        "klatt": base["klatt"],
        "vtl": round(vtl, 4),
        "pitch": [round(f0, 2), round(f0 * ratio, 2)],
        "formants": _formants(base, vtl, z, space, s),
        "tone": [list(p) for p in (base["tone"] or TONE_POINTS)],
        "breath": round(space["breath_max"] * s * u[1], 3) if breathy else 0.0,
        "breathw": list(base["breathw"]) if base["breathw"] else None,
        "rhythm": [[k, list(v)] for k, v in base["rhythm"]],
        "intonation": min(intonation, len(space["intonation_shares"]) - 1),
        "flutter": round(float(np.clip(space["flutter"] + space["flutter_sd"] * s * z[33], 0, 10)), 3),
        "roughness": round(float(np.clip(space["roughness"] + space["roughness_sd"] * s * z[34], 0, 7)), 3),
        "voicing": round(float(np.clip(base["voicing"], 30, 200)) * math.exp(space["voicing_sd"] * s * z[35]), 3),
        "consonants": [round(c * math.exp(space["consonants_sd"] * s * z[36 + i]), 3)
                       for i, c in enumerate(base["consonants"])],
        "tilt": round(space["tilt_sd"] * s * z[38], 4),
        "rate": round(space["rate_wpm"] * math.exp(space["rate_sd"] * s * z[39]), 3),
        "expressiveness": round(space["expressiveness_mean"]
                                * float(np.clip(1.0 + space["expressiveness_sd"] * z[40], 0.5, 1.5)), 3),
    }


# ------------------------------------------------------------ speaker x emotion


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
    >>> spk = sample_speaker(1234, 0, 0, voice_pools()["in_generator"])
    >>> text = variant_text(spk, "sad")
    >>> text.splitlines()[0], sum(line.startswith("formant ") for line in text.splitlines())
    ('language variant', 9)
    """
    emo = emotion_settings(speaker, emotion)
    p1, p2 = speaker["pitch"]
    lines = ["language variant", "name synthemo", f"gender {speaker['gender']}", f"pitch {round(p1)} {round(p2)}"]
    for k, f, h, w, add in speaker["formants"]:
        shift = emo["formant"] if 1 <= k <= 5 else 1.0
        lines.append(f"formant {k} {round(f * shift)} {round(h)} {round(w)} {add}")
    if speaker["klatt"]:
        lines.append(f"klatt {speaker['klatt']}")
    if speaker["breathw"]:
        lines.append("breathw " + " ".join(str(v) for v in speaker["breathw"]))
    lines += [f"{key} " + " ".join(str(v) for v in values) for key, values in speaker["rhythm"]]
    if speaker["intonation"]:
        lines.append(f"intonation {speaker['intonation']}")
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
              for i, (freq, height) in enumerate(speaker["tone"])]
    lines.append("tone " + " ".join(points))
    return "\n".join(lines) + "\n"


def utterance_prosody(speaker, emotion, rng):
    """``espeak_SetParameter`` values (rate, pitch, range, volume) with jitter.

    eSpeak's pitch parameter scales the voice's base pitch by ``2**((p-50)/50)``
    and the range parameter scales its range by ``r/50``, so the emotion acts
    relative to the speaker's own pitch. The volume includes the synthesiser's
    level factor (the sources differ up to 4x at the same setting).

    Example
    -------
    >>> spk = sample_speaker(1234, 0, 0, voice_pools()["in_generator"])
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
    volume = 100 * _SOURCE_VOLUME[speaker["klatt"]] * emo["volume"] * math.exp(0.05 * j[3])
    return {
        "rate": int(np.clip(round(rate), 80, 450)),
        "pitch": int(np.clip(round(pitch), 0, 100)),
        "range": int(np.clip(round(pitch_range), 0, 100)),
        "volume": int(np.clip(round(volume), 10, 250)),
    }
