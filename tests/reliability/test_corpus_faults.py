"""Corpus faults through the real training pipeline (a copy of the tiny corpus's train.csv and wav files).

One bad utterance never stops training: it is skipped, counted in ``train_log.txt``
(``skipped``) and named in ``log.txt``; training stops with a clear error only when
the skipped share passes ``max_skipped_share`` (default 1 %). A malformed manifest
(duplicate IDs) is refused before training, naming the file, line and ID.
"""

import csv
import os

import numpy as np
import pytest
import soundfile as sf
from reliability_helpers import experiment_dir, run_recipe


def _read(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _source(row, data_folder):
    return row["wav"].replace("$data_root", data_folder)


def corrupt_bytes(src, dst):
    rng = np.random.default_rng(0)
    dst.write_bytes(rng.integers(0, 256, 6000, dtype=np.uint8).tobytes())


def zero_length(src, dst):
    sf.write(dst, np.zeros(0, dtype="float32"), 16000)


def truncated_header(src, dst):
    dst.write_bytes(open(src, "rb").read()[:30])


def nan_samples(src, dst):
    data, rate = sf.read(src, dtype="float32")
    data[::997] = np.nan  # every crop contains some
    sf.write(dst, data, rate, subtype="FLOAT")


def wrong_rate(src, dst):
    data, _ = sf.read(src, dtype="float32")
    sf.write(dst, data[::2], 8000)


def stereo(src, dst):
    data, rate = sf.read(src, dtype="float32")
    sf.write(dst, np.stack([data, 0.5 * data], axis=1), rate)


def shorter_than_crop(src, dst):
    data, rate = sf.read(src, dtype="float32")
    sf.write(dst, data[: rate // 2], rate)  # 0.5 s, the crop is 2 s


def missing(src, dst):
    pass  # listed, never written


# name -> (maker, what must happen, issue text expected in log.txt or None)
FAULTS = {
    "corrupt wav bytes": (corrupt_bytes, "skipped", "Format not recognised"),
    "zero-length wav": (zero_length, "skipped", "zero-length audio"),
    "truncated header (30 bytes)": (truncated_header, "skipped", "cannot open"),
    "NaN samples": (nan_samples, "skipped", "non-finite samples"),
    "file listed but missing": (missing, "skipped", "file not found"),
    "wrong sample rate (8 kHz)": (wrong_rate, "resampled", None),
    "stereo": (stereo, "downmixed", None),
    "utterance shorter than the crop (0.5 s < 2 s)": (shorter_than_crop, "used", None),
}
ROWS = [5, 27, 48, 66, 88, 104, 9, 33]  # one row per fault, speakers 1-6 (the 8th keeps one utterance)


@pytest.fixture(scope="module")
def faulty_manifest(tiny_synthemo, tmp_path_factory):
    """train.csv with one fault per row of :data:`ROWS` and a speaker reduced to one utterance."""
    data_folder, manifests = tiny_synthemo
    folder = tmp_path_factory.mktemp("faulty")
    header, rows = _read(os.path.join(manifests, "train.csv"))
    victims = {}
    for (name, (maker, _, _)), index in zip(FAULTS.items(), ROWS):
        row = rows[index]
        dst = folder / f"{row['ID']}.wav"
        maker(_source(row, data_folder), dst)
        row["wav"] = str(dst)
        victims[name] = row["ID"]
    lonely = rows[-1]["spk_id"]
    first = next(r for r in rows if r["spk_id"] == lonely)
    rows = [r for r in rows if r["spk_id"] != lonely or r is first]
    path = _write(folder / "train.csv", header, rows)
    return path, victims, lonely, len(rows)


def _log(out):
    with open(os.path.join(experiment_dir(out), "log.txt")) as f:
        return f.read()


def _train_stats(out):
    with open(os.path.join(experiment_dir(out), "train_log.txt")) as f:
        line = f.readline()
    return dict(p.strip().rsplit(": ", 1) for p in line.split(" - ")[1].split(", "))


@pytest.mark.slow
def test_one_bad_utterance_with_the_default_limit(tiny_synthemo, tmp_path, scenario):
    row = scenario(
        "One corrupt wav in train.csv, default max_skipped_share (1 %)",
        "training completes; the skip is counted in train_log.txt ('skipped: 1') and named in log.txt",
        group="corpus faults",
    )
    data_folder, manifests = tiny_synthemo
    header, rows = _read(os.path.join(manifests, "train.csv"))
    corrupt_bytes(None, tmp_path / "bad.wav")
    rows[50]["wav"] = str(tmp_path / "bad.wav")
    manifest = _write(tmp_path / "train.csv", header, rows)
    out = str(tmp_path / "out")
    run_recipe(data_folder, out, "--number_of_epochs", 1, "--train_annotation", manifest)
    stats = _train_stats(out)
    assert stats["train skipped"] == "1"
    assert f"skipping utterance {rows[50]['ID']}" in _log(out)
    row.observed = f"completed; train_log: 'train skipped: {stats['train skipped']}'; log.txt names {rows[50]['ID']}"


@pytest.fixture(scope="module")
def faulty_run(faulty_manifest, tiny_synthemo, tmp_path_factory):
    """One epoch on the faulty manifest with max_skipped_share 5 %."""
    path, victims, lonely, n_rows = faulty_manifest
    out = str(tmp_path_factory.mktemp("faulty_run") / "out")
    run_recipe(tiny_synthemo[0], out, "--number_of_epochs", 1, "--train_annotation", path,
               "--max_skipped_share", 0.05)
    return out, _train_stats(out), _log(out)


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_corpus_fault_in_training(fault, faulty_manifest, faulty_run, scenario):
    _, victims, _, n_rows = faulty_manifest
    out, stats, log = faulty_run
    _, outcome, issue = FAULTS[fault]
    expected = {
        "skipped": "skipped, counted ('skipped' in train_log.txt), named in log.txt with the reason; training goes on",
        "resampled": "resampled on the fly, counted ('resampled' in train_log.txt)",
        "downmixed": "down-mixed on the fly, counted ('downmixed' in train_log.txt)",
        "used": "used as it is (padded in the batch), not skipped",
    }[outcome]
    row = scenario(fault, expected, group="corpus faults")
    utt = victims[fault]
    n_skipped = sum(1 for _, o, _ in FAULTS.values() if o == "skipped")
    assert stats["train skipped"] == str(n_skipped)
    line = next((x for x in log.splitlines() if f"skipping utterance {utt}:" in x), None)
    if outcome == "skipped":
        assert line is not None and issue in line
        reason = line.split(f"{utt}: ", 1)[1]
        row.observed = (
            f"skipped; train_log 'train skipped: {stats['train skipped']}' (all {n_skipped} skip faults, "
            f"{n_rows} rows); log.txt: '{utt}: {reason[:110]}'"
        )
    else:
        assert line is None
        if outcome == "used":
            row.observed = f"{utt} trained on, not in the skipped list; run completed"
        else:
            assert stats[f"train {outcome}"] == "1"
            row.observed = f"{outcome}; train_log 'train {outcome}: 1'; not skipped"


@pytest.mark.slow
def test_speaker_with_one_utterance(faulty_manifest, faulty_run, scenario):
    row = scenario(
        "A speaker with one utterance (K = 2 per speaker in a batch)",
        "sampled with replacement, logged (sampler warning) and counted ('speakers_with_replacement')",
        group="corpus faults",
    )
    _, _, lonely, _ = faulty_manifest
    out, stats, log = faulty_run
    assert stats["train speakers_with_replacement"] == "1"
    assert "fewer than K=2 utterances" in log
    row.observed = f"{lonely} kept with 1 utterance; train_log 'train speakers_with_replacement: 1'; run completed"


@pytest.mark.slow
def test_skipped_share_over_the_limit_stops_training(faulty_manifest, tiny_synthemo, tmp_path, scenario):
    row = scenario(
        "Same faulty train.csv, default max_skipped_share 1 %",
        "training stops with one error line giving the share, the limit and the first files",
        group="corpus faults",
    )
    path, victims, _, _ = faulty_manifest
    done = run_recipe(tiny_synthemo[0], str(tmp_path / "out"), "--number_of_epochs", 1, "--train_annotation", path,
                      check=False)
    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: "))
    assert "could not be read, more than max_skipped_share=1.0%" in line
    assert any(v in line for v in victims.values())
    row.observed = line.replace(str(tmp_path), "<tmp>")[:260] + " ..."


def test_duplicate_ids_are_refused(tiny_synthemo, tmp_path, scenario):
    row = scenario("Duplicate utterance IDs in train.csv", "refused before training: error naming file, line and ID",
                   group="corpus faults")
    data_folder, manifests = tiny_synthemo
    header, rows = _read(os.path.join(manifests, "train.csv"))
    rows[30]["ID"] = rows[10]["ID"]
    manifest = _write(tmp_path / "train.csv", header, rows)
    done = run_recipe(data_folder, str(tmp_path / "out"), "--train_annotation", manifest, check=False)
    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: "))
    assert f"train.csv line 32: duplicate ID '{rows[10]['ID']}' (first on line 12)" in line
    row.observed = line.replace(str(tmp_path), "<tmp>")
