"""data_prep.convert: VoxCeleb2's m4a tree to WAV/FLAC with PyAV, on real AAC-in-MP4 files made by PyAV."""

import errno
import json
import os
import sys

import pytest
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import replicas  # noqa: E402

from data_prep import convert  # noqa: E402
from data_prep.common import PreparationError  # noqa: E402
from data_prep.voxceleb import prepare_voxceleb  # noqa: E402

pytest.importorskip("av")

OPTS = {"use_vox2": True, "n_valid_speakers": 2}


def tree(tmp_path, seconds=(0.5, 1.3, 2.0, 0.7, 1.0)):
    root = str(tmp_path / "vox2")
    for utt, secs in zip(replicas.VOX2_FILES, seconds):
        replicas.write_m4a(os.path.join(root, f"{utt}.m4a"), seconds=secs)
    return root


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def test_converts_in_place_keeping_the_layout_and_checks_each_duration(tmp_path):
    root = tree(tmp_path)
    summary = convert.convert_tree(root, workers=1, progress=False)
    assert summary["converted"] == 5 and summary["failed"] == {} and summary["stopped"] is None
    for utt, secs in zip(replicas.VOX2_FILES, (0.5, 1.3, 2.0, 0.7, 1.0)):
        info = sf.info(os.path.join(root, f"{utt}.wav"))
        declared = convert.declared_seconds(os.path.join(root, f"{utt}.m4a"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == round(declared * 16000)  # exactly what the MP4 declares
        assert abs(info.frames - secs * 16000) <= convert.TOLERANCE_FRAMES  # PyAV's AAC keeps its priming
    assert json.load(open(os.path.join(root, convert.SUMMARY_FILE)))["converted"] == 5
    assert not [n for n in listing(root) if os.path.basename(n).startswith(".tmp")]


def test_parallel_workers_give_the_same_files_and_flac_to_another_tree(tmp_path):
    root = tree(tmp_path)
    serial = str(tmp_path / "serial")
    parallel = str(tmp_path / "parallel")
    assert convert.convert_tree(root, serial, "flac", workers=1, progress=False)["converted"] == 5
    assert convert.convert_tree(root, parallel, "flac", workers=2, progress=False)["converted"] == 5
    flacs = [f"{u}.flac" for u in replicas.VOX2_FILES]
    assert [n for n in listing(parallel) if n.endswith(".flac")] == sorted(flacs)
    for name in flacs:
        assert (sf.read(os.path.join(serial, name))[0] == sf.read(os.path.join(parallel, name))[0]).all()
    assert not [n for n in listing(root) if not n.endswith(".m4a")]  # the source tree is left as it was


def test_resumes_skipping_finished_files_and_redoing_short_ones(tmp_path):
    root = tree(tmp_path)
    convert.convert_tree(root, workers=1, progress=False)
    again = convert.convert_tree(root, workers=1, progress=False)
    assert again["converted"] == 0 and again["skipped_already_done"] == 5
    first, second = (os.path.join(root, f"{u}.wav") for u in replicas.VOX2_FILES[:2])
    os.remove(first)
    data, rate = sf.read(second, dtype="int16")
    sf.write(second, data[: len(data) // 2], rate, subtype="PCM_16")  # left short by another tool
    resumed = convert.convert_tree(root, workers=1, progress=False)
    assert resumed["converted"] == 2 and resumed["skipped_already_done"] == 3
    assert sf.info(second).frames == len(data)


def test_bad_files_are_named_and_counted_and_the_rest_converted(tmp_path, capsys):
    root = tree(tmp_path)
    video = os.path.join(root, "id00012", "21Uxsk56VDQ")
    whole = open(os.path.join(video, "00001.m4a"), "rb").read()
    with open(os.path.join(video, "00003.m4a"), "wb") as f:  # index at the end: lost by the truncation
        f.write(whole[: len(whole) // 2])
    replicas.write_m4a(os.path.join(video, "00004.m4a"), seconds=3.0, faststart=True)
    data = open(os.path.join(video, "00004.m4a"), "rb").read()
    with open(os.path.join(video, "00004.m4a"), "wb") as f:  # index first: opens, declares 3 s, holds less
        f.write(data[: len(data) // 2])
    replicas.write_m4a(os.path.join(video, "00005.m4a"), audio=False)
    replicas.write_text(os.path.join(video, "00006.m4a"), "version https://git-lfs.github.com/spec/v1\n")
    assert convert.main([root, "--workers", "2", "--no-progress"]) == convert.EXIT_FAILED
    summary = json.load(open(os.path.join(root, convert.SUMMARY_FILE)))
    assert summary["converted"] == 5
    failed = {kind: [line.split(": ")[0] for line in v["files"]] for kind, v in summary["failed"].items()}
    assert failed == {
        "decode_error": [os.path.join(video, "00004.m4a")],  # the decoder stops at the cut packet
        "no_audio_stream": [os.path.join(video, "00005.m4a")],
        "unreadable": sorted(os.path.join(video, n) for n in ("00003.m4a", "00006.m4a")),
    }
    printed = capsys.readouterr().out
    assert "failed (no_audio_stream): 1" in printed and os.path.join(video, "00005.m4a") in printed
    for name in ("00003", "00004", "00005", "00006"):
        assert not os.path.exists(os.path.join(video, f"{name}.wav"))


def test_a_full_disk_stops_and_keeps_every_finished_file(tmp_path, monkeypatch, capsys):
    root = tree(tmp_path)
    written = []
    real_write = convert.write_audio

    def filling_disk(path, samples, rate, fmt):
        if len(written) == 2:
            with open(path, "wb") as f:
                f.write(b"RIFF half")  # a partial temporary file, as a real ENOSPC leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real_write(path, samples, rate, fmt)

    monkeypatch.setattr(convert, "write_audio", filling_disk)
    assert convert.main([root, "--workers", "1", "--no-progress"]) == convert.EXIT_STOPPED
    printed = capsys.readouterr().out
    assert "stopped: the output disk is full" in printed and "run the same command" in printed
    wavs = [n for n in listing(root) if n.endswith(".wav")]
    assert len(wavs) == 2 and not [n for n in listing(root) if os.path.basename(n).startswith(".tmp")]
    kept = {n: open(os.path.join(root, n), "rb").read() for n in wavs}
    summary = json.load(open(os.path.join(root, convert.SUMMARY_FILE)))
    assert summary["not_started"] == 2 and summary["failed"]["disk_full"]["count"] == 1
    monkeypatch.setattr(convert, "write_audio", real_write)  # space freed: the same command goes on
    resumed = convert.convert_tree(root, workers=1, progress=False)
    assert resumed["converted"] == 3 and resumed["skipped_already_done"] == 2
    assert {n: open(os.path.join(root, n), "rb").read() for n in wavs} == kept


def test_prepare_voxceleb_names_the_command_that_then_converts(tmp_path):
    info = replicas.make_voxceleb(tmp_path / "corpus", vox2="aac", vox2_folder="vox2_dev/dev/aac")
    with pytest.raises(PreparationError) as err:
        prepare_voxceleb(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    command = next(line.strip() for line in str(err.value).splitlines() if "python -m data_prep.convert" in line)
    assert command == f"python -m data_prep.convert {info['vox2_folder']}"
    assert convert.main([command.split()[-1], "--no-progress"]) == 0
    summary = prepare_voxceleb(info["data_folder"], str(tmp_path / "prep"), **OPTS)
    assert summary["train"]["speakers"] + summary["valid"]["speakers"] == 6 and summary["skipped"] == {}


def test_without_pyav_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(convert.ConversionError, match="pip install av"):
        convert.convert_tree(str(tmp_path), progress=False)
    with pytest.raises(convert.ConversionError, match="no folder"):
        convert.convert_tree(str(tmp_path / "absent"), progress=False)


def test_a_file_shorter_than_it_declares_is_a_duration_mismatch(tmp_path, monkeypatch):
    path = str(tmp_path / "a.m4a")
    replicas.write_m4a(path, seconds=1.0)
    declared = convert.declared_seconds(path)
    samples, seconds = convert.decode(path)
    assert seconds == declared and samples.size == round(declared * 16000)
    real = convert._declared
    monkeypatch.setattr(convert, "_declared", lambda container: real(container) + 0.2)  # 200 ms more than held
    with pytest.raises(convert._Failure, match="decoded 1.0[0-9]* s of the 1.2[0-9]* s") as err:
        convert.decode(path)
    assert err.value.kind == "duration_mismatch"
    monkeypatch.setattr(convert, "_declared", lambda container: real(container) + 0.1)  # within two AAC frames
    samples, _ = convert.decode(path)  # short by less than the tolerance: accepted as decoded
    assert round(declared * 16000) <= samples.size < round((declared + 0.1) * 16000)
