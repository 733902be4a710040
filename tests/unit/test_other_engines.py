"""The other-engine check's preparation (data_prep/other_engines.py), with a fake synthesizer and fake engines."""

import os
import stat
import subprocess

import numpy as np
import pytest
import soundfile as sf

from data_prep import other_engines as oe
from data_prep.common import PreparationError


def _tone(calls):
    def synthesize(voice, text, path):
        calls.append((voice.name, text))
        rate = 8000 if voice.engine == "flite" else 22050
        sf.write(path, np.sin(np.arange(rate) * 0.01 * (1 + len(calls))), rate)
    return synthesize


def _lines(path):
    with open(path) as f:
        return f.read().splitlines()


def test_manifest_and_trials_pair_every_two_sentences_and_label_by_speaker(tmp_path):
    calls = []
    counts = oe.prepare_other_engines(str(tmp_path), oe.VOICES[:4], oe.SENTENCES[:3], synthesize=_tone(calls))
    # 4 speakers x 3 sentences; targets: 4 x C(3, 2); non-targets: C(4, 2) speaker pairs x (3 x 3 - 3)
    assert counts == {"utterances": 12, "speakers": 4, "targets": 12, "nontargets": 36}
    manifest = _lines(tmp_path / "other.csv")
    assert manifest[0] == "ID,duration,wav,spk_id,engine,text"
    assert manifest[1].startswith("awb_00,1.000,$data_root/wav/awb_00.wav,awb,flite,")
    trials = [line.split() for line in _lines(tmp_path / "trials" / "other" / "all.txt")]
    text = {row.split(",")[0]: row.split(",", 5)[5] for row in manifest[1:]}
    assert all(text[a] != text[b] for _, a, b in trials)
    assert all(int(label) == (a.split("_")[0] == b.split("_")[0]) for label, a, b in trials)


def test_a_second_run_keeps_the_audio_and_an_unreadable_file_is_named(tmp_path):
    calls = []
    oe.prepare_other_engines(str(tmp_path), oe.VOICES[:2], oe.SENTENCES[:2], synthesize=_tone(calls))
    assert len(calls) == 4
    oe.prepare_other_engines(str(tmp_path), oe.VOICES[:2], oe.SENTENCES[:2], synthesize=_tone(calls))
    assert len(calls) == 4
    changed = (oe.SENTENCES[0], "Another text.")  # sentence 01 changes: only its files are made again
    oe.prepare_other_engines(str(tmp_path), oe.VOICES[:2], changed, synthesize=_tone(calls))
    assert calls[4:] == [("awb", "Another text."), ("rms", "Another text.")]
    (tmp_path / "wav" / "rms_01.wav").write_bytes(b"not audio")
    with pytest.raises(PreparationError, match=r"rms_01\.wav: unreadable"):
        oe.prepare_other_engines(str(tmp_path), oe.VOICES[:2], changed, synthesize=_tone(calls))


def test_one_person_behind_two_voices_is_one_speaker(tmp_path):
    voices = (oe.Voice("flite", "slt", "slt", "flite"), oe.Voice("festival", "cmu_us_slt_arctic_hts", "slt", "x"),
              oe.Voice("flite", "awb", "awb", "flite"))
    counts = oe.prepare_other_engines(str(tmp_path), voices, oe.SENTENCES[:2], synthesize=_tone([]))
    assert counts["speakers"] == 2
    trials = _lines(tmp_path / "trials" / "other" / "all.txt")
    assert "1 slt_slt_00 slt_cmu_us_slt_arctic_hts_01" in trials


@pytest.mark.parametrize("voices, sentences, message", [
    (oe.VOICES[:2], oe.SENTENCES[:1], "at least 2 distinct sentences"),
    (oe.VOICES[:2], (oe.SENTENCES[0], oe.SENTENCES[0]), "at least 2 distinct sentences"),
    ((oe.VOICES[0],), oe.SENTENCES[:2], "voices of at least 2 speakers"),
    ((oe.VOICES[0], oe.VOICES[1], oe.VOICES[0]), oe.SENTENCES[:2], "listed twice: \\['awb'\\]"),
])
def test_bad_voice_and_sentence_lists_are_refused(tmp_path, voices, sentences, message):
    with pytest.raises(PreparationError, match=message):
        oe.prepare_other_engines(str(tmp_path), voices, sentences, synthesize=_tone([]))


def _fake_engine(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_engine_that_writes_no_audio_is_an_error_naming_the_voice_and_leaves_no_file(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Festival's text2wave prints a SIOD error and exits 0 for a voice it lacks
    _fake_engine(bin_dir, "text2wave", 'echo "SIOD ERROR: unbound variable : voice_x" >&2; exit 0')
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "a.wav"
    with pytest.raises(PreparationError, match="festival voice 'x' wrote no audio .*SIOD ERROR"):
        oe.synthesize(oe.Voice("festival", "x", "x", "festvox-x"), "Hello.", str(out))
    assert os.listdir(tmp_path) == ["bin"]


def test_missing_engines_and_voices_are_named_as_packages(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # flite falls back to its default voice for an unknown one: the voice list decides
    _fake_engine(bin_dir, "flite", 'echo "Voices available: kal awb"')
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(oe, "FESTIVAL_VOICES", str(tmp_path / "voices"))
    (tmp_path / "voices" / "czech").mkdir(parents=True)
    (tmp_path / "voices" / "czech" / "czech_dita").mkdir()
    voices = (oe.Voice("flite", "awb", "awb", "flite"), oe.Voice("flite", "rms", "rms", "flite"),
              oe.Voice("festival", "czech_dita", "dita", "festvox-czech-dita"),
              oe.Voice("festival", "czech_ph", "ph", "festvox-czech-ph"))
    assert oe.missing_packages(voices) == ["festival", "festvox-czech-ph", "flite"]
    with pytest.raises(PreparationError, match="voice 'v': unknown engine 'say'"):
        oe.missing_packages((oe.Voice("say", "v", "v", "p"),))
    assert oe.main([str(tmp_path / "out")]) == 2


SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "SynthEmo", "ablation", "other_engines.sh")


@pytest.mark.parametrize("args, message", [
    ([], "usage:"),
    (["/some/model"], "not NAME=MODEL_DIR"),
    (["baseline=/nonexistent/model"], "/nonexistent/model has no hyperparams.yaml"),
])
def test_script_refuses_bad_arguments_before_preparing_anything(tmp_path, args, message):
    env = {**os.environ, "OTHER_ENGINES_DATA": str(tmp_path / "data")}
    result = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "data").exists()
