"""Other-engine voices: a held-out check of voices that no eSpeak NG template made.

SynthEmo is an eSpeak NG corpus; a model can learn the generator instead of speaker identity.
This set is the opposite test: 15 voices of two other synthesis engines, Flite and Festival,
each built from the recordings of one human speaker (CMU ARCTIC, CSTR, UPC, Czech, Finnish,
Italian and Russian diphone, unit-selection and HTS voices), each reading the same 10
Harvard sentences (IEEE 1969; none of them is a SynthEmo sentence). Nothing here is ever
used for training or for choosing anything: SynthEmo must stay an eSpeak NG corpus, and a
model trained on these voices would void the check.

Speakers are the humans, not the voice packages: a person behind two voices (Flite's and
Festival's ``slt`` and ``kal``, Festival's three ``NSK`` voices) appears once
(:data:`VOICES`). The voices come at their own rates (8 to 44.1 kHz): the scorer resamples.

Layout written under ``data_folder``::

    wav/<speaker>_<sentence>.wav            (the engine's own sample rate, mono)
    wav/<speaker>_<sentence>.txt            (the engine, voice and text that made it)
    other.csv                               (ID, duration, wav, spk_id, engine, text)
    trials/other/all.txt                    (<label> <enrol> <test>: every pair of utterances
                                             with different sentences; label 1 = same speaker)

The engines are Debian packages (``apt-get install flite festival`` and the voices'
``festvox-*`` packages, :func:`missing_packages` names them); neither the tests nor CI need
them. Score an exported model and Resemblyzer on it with
``bash recipes/SynthEmo/ablation/other_engines.sh <model>...``.

Example
-------
>>> len(VOICES), len({v.speaker for v in VOICES}), len(SENTENCES)
(15, 15, 10)
"""

import argparse
import collections
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

import soundfile as sf

from data_prep.common import PreparationError, data_root_path, write_manifest, write_trials
from speechbrain_ext.files import atomic_write

__all__ = ["SENTENCES", "VOICES", "Voice", "all_pairs_trials", "missing_packages", "prepare_other_engines",
           "synthesize"]

SPLIT = "other"

# Harvard sentences, list 1 (IEEE Recommended Practice for Speech Quality Measurements, 1969).
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)


class Voice(NamedTuple):
    """One voice: the engine, its name for the voice, the human speaker behind it, its Debian package.

    Example
    -------
    >>> VOICES[0]
    Voice(engine='flite', name='awb', speaker='awb', package='flite')
    """

    engine: str
    name: str
    speaker: str
    package: str


VOICES = (
    Voice("flite", "awb", "awb", "flite"),
    Voice("flite", "rms", "rms", "flite"),
    Voice("flite", "slt", "slt", "flite"),
    Voice("flite", "kal16", "kal", "flite"),
    Voice("festival", "ked_diphone", "ked", "festvox-kdlpc16k"),
    Voice("festival", "upc_ca_ona_hts", "ona", "festvox-ca-ona-hts"),
    Voice("festival", "czech_dita", "dita", "festvox-czech-dita"),
    Voice("festival", "czech_krb", "krb", "festvox-czech-krb"),
    Voice("festival", "czech_machac", "machac", "festvox-czech-machac"),
    Voice("festival", "czech_ph", "ph", "festvox-czech-ph"),
    Voice("festival", "hy_fi_mv_diphone", "mv", "festvox-suopuhe-mv"),
    Voice("festival", "suo_fi_lj_diphone", "lj", "festvox-suopuhe-lj"),
    Voice("festival", "lp_diphone", "lp", "festvox-italp16k"),
    Voice("festival", "pc_diphone", "pc", "festvox-itapc16k"),
    Voice("festival", "msu_ru_nsh_clunits", "nsh", "festvox-ru"),
)

FESTIVAL_VOICES = "/usr/share/festival/voices"


def _festival_voice_installed(name):
    root = FESTIVAL_VOICES
    return os.path.isdir(root) and any(os.path.isdir(os.path.join(root, lang, name)) for lang in os.listdir(root))


def _flite_voices():
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    return set(out.split(":", 1)[-1].split())


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def missing_packages(voices=VOICES):
    """The Debian packages that the voices need and this machine lacks (sorted; empty when all are there).

    Flite falls back to its default voice and Festival prints an error yet exits 0 when a voice is
    missing, so a voice is looked up before it is used, never inferred from a written file.

    Example
    -------
    >>> isinstance(missing_packages(), list)
    True
    """
    missing = set()
    flite = shutil.which("flite") and _flite_voices()
    for voice in voices:
        if voice.engine == "flite":
            if not flite or voice.name not in flite:
                missing.add(voice.package)
        elif voice.engine == "festival":
            if not shutil.which("text2wave"):
                missing.add("festival")
            if not _festival_voice_installed(voice.name):
                missing.add(voice.package)
        else:
            raise PreparationError(f"voice {voice.name!r}: unknown engine {voice.engine!r} (flite or festival)")
    return sorted(missing)


def synthesize(voice, text, path):
    """Write ``text`` read by ``voice`` to the WAV file ``path`` (atomically: a partial file is never left).

    Raises
    ------
    PreparationError
        The engine is not installed, failed or wrote no audio; the message names the voice and
        the engine's output.

    Example
    -------
    >>> import tempfile
    >>> synthesize(Voice("festival", "no_such_voice", "x", "x"), "Hi.", os.path.join(tempfile.mkdtemp(), "a.wav"))
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: festival voice 'no_such_voice'...
    """
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=os.path.dirname(path) or ".")
    os.close(fd)
    txt = tmp[:-4] + ".txt"
    try:
        with open(txt, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        command = (["flite", "-voice", voice.name, "-f", txt, "-o", tmp] if voice.engine == "flite"
                   else ["text2wave", "-eval", f"(voice_{voice.name})", txt, "-o", tmp])
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise PreparationError(f"{voice.engine} voice {voice.name!r}: {command[0]} is not installed "
                                   f"(apt-get install {voice.package})") from None
        if result.returncode or "ERROR" in result.stderr or os.path.getsize(tmp) <= 44:
            raise PreparationError(f"{voice.engine} voice {voice.name!r} wrote no audio for {text!r}: "
                                   f"{(result.stderr or result.stdout).strip()[-300:]}")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, txt):
            if os.path.exists(leftover):
                os.remove(leftover)


def all_pairs_trials(rows):
    """Every pair of utterances with different texts: ``(label, enrol_id, test_id)``, 1 = same speaker.

    Example
    -------
    >>> rows = [{"ID": "a_00", "spk_id": "a", "text": "x"}, {"ID": "a_01", "spk_id": "a", "text": "y"},
    ...         {"ID": "b_00", "spk_id": "b", "text": "x"}, {"ID": "b_01", "spk_id": "b", "text": "y"}]
    >>> all_pairs_trials(rows)
    [(1, 'a_00', 'a_01'), (0, 'a_00', 'b_01'), (0, 'a_01', 'b_00'), (1, 'b_00', 'b_01')]
    """
    return [(int(a["spk_id"] == b["spk_id"]), a["ID"], b["ID"])
            for a, b in itertools.combinations(rows, 2) if a["text"] != b["text"]]


def prepare_other_engines(data_folder, voices=VOICES, sentences=SENTENCES, synthesize=synthesize):
    """Synthesize the set (a file made by the same voice and text is kept) and write its manifest and trials.

    Arguments
    ---------
    data_folder : str
        Where ``wav/``, ``other.csv`` and ``trials/other/all.txt`` go.
    voices : sequence of Voice
        The voices; two voices of one ``speaker`` are one speaker.
    sentences : sequence of str
        What each voice reads (at least 2, distinct).
    synthesize : callable
        ``synthesize(voice, text, path)``; the engines by default.

    Returns
    -------
    dict
        ``{"utterances": int, "speakers": int, "targets": int, "nontargets": int}``.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> def tone(voice, text, path):
    ...     sf.write(path, np.sin(np.arange(8000) * (0.05 + len(voice.name) / 100)), 16000)
    >>> folder = tempfile.mkdtemp()
    >>> prepare_other_engines(folder, VOICES[:3], SENTENCES[:3], synthesize=tone)
    {'utterances': 9, 'speakers': 3, 'targets': 9, 'nontargets': 18}
    >>> prepare_other_engines(folder, VOICES[:1], SENTENCES[:1])
    Traceback (most recent call last):
    ...
    data_prep.common.PreparationError: need at least 2 distinct sentences, got 1
    """
    if len(set(sentences)) < 2 or len(set(sentences)) != len(sentences):
        raise PreparationError(f"need at least 2 distinct sentences, got {len(sentences)}")
    if len({v.speaker for v in voices}) < 2:
        raise PreparationError(f"need voices of at least 2 speakers, got {sorted({v.speaker for v in voices})}")
    names = [v.name for v in voices]
    if len(set(names)) != len(names):
        raise PreparationError(f"a voice is listed twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    wav_dir = os.path.join(data_folder, "wav")
    os.makedirs(wav_dir, exist_ok=True)
    voices_of = collections.Counter(v.speaker for v in voices)
    rows = []
    for voice, (i, text) in itertools.product(voices, enumerate(sentences)):
        prefix = f"{voice.speaker}_{voice.name}" if voices_of[voice.speaker] > 1 else voice.speaker
        uid = f"{prefix}_{i:02d}"
        path = os.path.join(wav_dir, uid + ".wav")
        # what made the file, beside it: another voice or text under the same ID is synthesized again
        made_by = os.path.join(wav_dir, uid + ".txt")
        source = f"{voice.engine} {voice.name}\n{text}\n"
        if not (os.path.exists(path) and _read(made_by) == source):
            synthesize(voice, text, path)
            with atomic_write(made_by, encoding="utf-8") as f:
                f.write(source)
        try:
            info = sf.info(path)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise PreparationError(f"{path}: unreadable ({err}); delete it to synthesize it again") from err
        rows.append({"ID": uid, "duration": info.frames / info.samplerate, "wav": data_root_path(path, data_folder),
                     "spk_id": voice.speaker, "engine": voice.engine, "text": text})
    trials = all_pairs_trials(rows)
    write_manifest(os.path.join(data_folder, f"{SPLIT}.csv"), rows, extra_columns=("engine", "text"))
    os.makedirs(os.path.join(data_folder, "trials", SPLIT), exist_ok=True)
    write_trials(os.path.join(data_folder, "trials", SPLIT, "all.txt"), trials)
    targets = sum(label for label, _, _ in trials)
    return {"utterances": len(rows), "speakers": len({v.speaker for v in voices}), "targets": targets,
            "nontargets": len(trials) - targets}


def main(argv=None):
    """Command line: ``python -m data_prep.other_engines <data_folder>``; exit status 0, or 2 with a message."""
    parser = argparse.ArgumentParser(prog="python -m data_prep.other_engines", description=__doc__.split("\n")[0])
    parser.add_argument("data_folder")
    args = parser.parse_args(argv)
    missing = missing_packages()
    if missing:
        print(f"error: missing Debian packages: {' '.join(missing)} (apt-get install {' '.join(missing)})",
              file=sys.stderr)
        return 2
    try:
        counts = prepare_other_engines(args.data_folder)
    except PreparationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.data_folder}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
