"""Training data pipeline throughput: utterances per second per CPU core, read -> crop -> augment -> features.

What is measured, in one process with one thread (``torch.set_num_threads(1)``), so
every figure is per CPU core:

1. **read + crop** of FLAC (and WAV) files as a loader worker does it:
   :class:`speechbrain_ext.data.AudioReader` with ``crop_seconds`` (the crop read
   from disk: one open, ``seek``, read of the crop's frames) against whole-file
   decoding followed by the same crop in memory (``soundfile.read`` of the file,
   what a reader without start/stop does). Files: 20 s (the issue's target case,
   3 s crops) and CN-Celeb-like lengths after the recipe's 5 s combination
   (``5 + Exponential(4 s)``, clipped to 40 s: our choice; 2 s crops as the CN-Celeb
   recipe). Signal: noise shaped by a random 2-pole resonance and a 4 Hz syllable
   envelope, 16 kHz 16-bit (FLAC compresses it about as much as speech). Files
   were just written, so they are in the page cache: this times decoding, not the
   disk (from a cold disk the seek also reads only the crop's part of the file).
2. **augmentation** as the recipe configures it (``paper_scale.yaml``): SpeechBrain's
   ``Augmenter`` with ``AddNoise`` (0-15 dB SNR, MUSAN-like 5 s FLAC segments made
   by ``data_prep.noise.prepare_noise``) or ``AddReverb`` (0.5 s RIRs), one of the two
   on 60 % of the batches, on CPU, the augmenters' own noise loaders in-process.
3. **features** as the recipe computes them: ``Fbank(n_mels=80)`` then
   ``InputNormalization(norm_type="sentence", std_norm=False)``, on CPU.

In the recipe only (1) runs in the DataLoader workers; (2) and (3) run in the
training step on the GPU (their noise and RIR files are read by the augmenters'
own loaders, ``noise_workers``), so (1) sets how many loader workers a GPU needs.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_pipeline.py [--files 60] [--batches 4] [--write]

``--write`` replaces the "## Training data pipeline" section of bench/README.md.
"""

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from readme_sections import write_section  # noqa: E402

SECTION = "## Training data pipeline"
RATE = 16000
BATCH = 256  # paper_scale.yaml: 128 speakers x 2 utterances


def speechlike(seconds, seed):
    """Seeded noise through a random resonance with a 4 Hz envelope, int16 (FLAC compresses it like speech).

    Example
    -------
    >>> x = speechlike(0.5, 0)
    >>> x.dtype, x.shape, bool(np.abs(x).max() < 32767)
    (dtype('int16'), (8000,), True)
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = rng.standard_normal(n)
    radius, freq = 0.97, rng.uniform(300, 2500)
    y = lfilter([1.0], [1.0, -2 * radius * math.cos(2 * math.pi * freq / RATE), radius**2], x)
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 4.0 * np.arange(n) / RATE + rng.uniform(0, 6.28))
    y *= envelope
    return (y / np.abs(y).max() * 0.3 * 32767).astype(np.int16)


def write_files(folder, lengths, fmt):
    """Write one file per length; return the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    base = speechlike(max(lengths), 0)
    for k, secs in enumerate(lengths):
        path = os.path.join(folder, f"u{k:04d}.{fmt}")
        start = (k * 7919) % max(1, base.size - int(secs * RATE))
        sf.write(path, base[start : start + int(secs * RATE)], RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def rate(function, items, repeats=3):
    """Best items per CPU second of ``function(item)`` over ``items`` (this process's CPU time, one thread:
    what one core does, whatever else runs on a shared machine).

    Example
    -------
    >>> rate(sum, [[1, 2]] * 1000) > 1000
    True
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - start)
    return len(items) / max(best, 1e-9)


def read_rates(paths, crop_seconds):
    """``(seek, whole, before)`` utterances/s of read + crop: :class:`AudioReader`, whole-file decoding,
    and the reader before issue 13 (``sf.info`` then ``sf.read(start, stop)``: two opens); all give the same crop."""
    from speechbrain_ext.data import AudioReader

    reader = AudioReader(RATE, crop_seconds=crop_seconds, seed=1986)

    def seek(path):
        return reader(path, path)[0]

    def whole(path):
        data = sf.read(path, dtype="float32")[0]
        start, stop = reader.span(data.shape[0], RATE, path)
        return data[start:stop]

    def before(path):
        start, stop = reader.span(sf.info(path).frames, RATE, path)
        return sf.read(path, start=start, stop=stop, dtype="float32")[0]

    for path in paths[:5]:
        assert np.array_equal(seek(path).numpy(), whole(path)), path
        assert np.array_equal(before(path), whole(path)), path
    return rate(seek, paths), rate(whole, paths), rate(before, paths)


def loader_rate(paths, crop_seconds, folder, batch=64):
    """Utterances/s of the recipe's loader path in-process: manifest -> ``DynamicItemDataset`` -> crop read,
    speaker label -> ``collate_skipping`` batches (what each DataLoader worker does, without the IPC)."""
    import torch

    from speechbrain_ext import data

    manifest = os.path.join(folder, "train.csv")
    with open(manifest, "w") as f:
        f.write("ID,duration,wav,spk_id\n")
        for k, path in enumerate(paths):
            f.write(f"u{k:04d},{sf.info(path).duration:.3f},{path},spk{k % 8}\n")
    dataset = data.load_dataset(manifest, folder)
    data.add_audio(dataset, data.AudioReader(RATE, crop_seconds=crop_seconds, seed=1986))
    encoder = torch.nn.Module()  # placeholder owner of the label encoder
    encoder.labels = data.speaker_label_encoder(dataset, os.path.join(folder, "labels.txt"))
    data.add_speaker_label(dataset, encoder.labels)
    dataset.set_output_keys(["id", "sig", "audio_issue", "spk_id_encoded"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0,
                                         collate_fn=data.collate_skipping)

    def one_pass(_):
        for _batch in loader:
            pass

    return rate(one_pass, [None]) * len(dataset)


def noise_csvs(folder):
    """MUSAN-like noise and RIRS-like folders made into the recipe's CSVs by ``data_prep.noise``."""
    from data_prep.noise import prepare_noise

    raw = os.path.join(folder, "raw")
    for sub in ("noise", "music", "speech"):
        for k in range(4):
            path = os.path.join(raw, "musan", sub, "set", f"{sub}{k}.wav")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sf.write(path, speechlike(20.0, 100 + k), RATE, subtype="PCM_16")
    rng = np.random.default_rng(5)
    for k in range(8):
        path = os.path.join(raw, "RIRS_NOISES", "simulated_rirs", "smallroom", f"rir{k}.wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        t = np.arange(int(0.5 * RATE)) / RATE
        sf.write(path, (rng.standard_normal(t.size) * np.exp(-t / 0.08) * 0.5).astype("float32"), RATE)
    out = os.path.join(folder, "augment")
    prepare_noise(raw, raw, out, max_noise_seconds=5.0)
    return os.path.join(out, "noise.csv"), os.path.join(out, "rir.csv")


def augment_and_features_rates(paths, crop_seconds, batch, batches, folder):
    """Utterances/s of (read + crop) + augmentation and of that + features, per batch of ``batch``."""
    import torch
    from speechbrain.augment.augmenter import Augmenter
    from speechbrain.augment.time_domain import AddNoise, AddReverb
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    from speechbrain_ext.data import AudioReader

    noise_csv, rir_csv = noise_csvs(folder)
    augment = Augmenter(concat_original=False, shuffle_augmentations=True, min_augmentations=1,
                        max_augmentations=1, augment_prob=0.6,
                        augmentations=[AddNoise(csv_file=noise_csv, snr_low=0, snr_high=15),
                                       AddReverb(csv_file=rir_csv)])
    fbank, norm = Fbank(n_mels=80), InputNormalization(norm_type="sentence", std_norm=False)
    reader = AudioReader(RATE, crop_seconds=crop_seconds, seed=1986)
    groups = [(b, [paths[(b * batch + i) % len(paths)] for i in range(batch)]) for b in range(batches)]

    def step(numbered, features):
        b, group = numbered
        torch.manual_seed(b)  # the same augmentation draws in every pass and in both rows
        wavs = torch.stack([reader(p, f"{p}|{i}")[0] for i, p in enumerate(group)])
        lens = torch.ones(len(group))
        wavs, lens = augment(wavs, lens)
        if features:
            norm(fbank(wavs), lens)

    with torch.no_grad():
        return (rate(lambda g: step(g, False), groups, repeats=2) * batch,
                rate(lambda g: step(g, True), groups, repeats=2) * batch)


def run(n_files, batches):
    """Every measured rate, by name."""
    import torch

    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="bench_pipeline_")
    try:
        results = {}
        long_flac = write_files(os.path.join(work, "flac20"), [20.0] * n_files, "flac")
        long_wav = write_files(os.path.join(work, "wav20"), [20.0] * n_files, "wav")
        lengths = np.minimum(5.0 + np.random.default_rng(1).exponential(4.0, n_files), 40.0)
        cnceleb = write_files(os.path.join(work, "cnceleb"), list(lengths), "flac")
        vox_lengths = np.minimum(4.0 + np.random.default_rng(2).exponential(3.8, n_files), 20.0)
        voxceleb = write_files(os.path.join(work, "voxceleb"), list(vox_lengths), "wav")
        results["flac20_3s"] = read_rates(long_flac, 3.0)
        results["wav20_3s"] = read_rates(long_wav, 3.0)
        results["cnceleb_2s"] = read_rates(cnceleb, 2.0)
        results["voxceleb_3s"] = read_rates(voxceleb, 3.0)
        results["cnceleb_loader"] = loader_rate(cnceleb, 2.0, os.path.join(work, "cnceleb"))
        results["voxceleb_loader"] = loader_rate(voxceleb, 3.0, os.path.join(work, "voxceleb"))
        results["cnceleb_2s_aug"] = augment_and_features_rates(cnceleb, 2.0, 32, batches, work)
        results["mean_length"] = float(lengths.mean())
        results["vox_mean_length"] = float(vox_lengths.mean())
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def workers_needed(per_worker, step_seconds, batch=BATCH):
    """Loader workers that deliver ``batch`` utterances every ``step_seconds`` at ``per_worker`` utt/s each.

    Example
    -------
    >>> workers_needed(500.0, 0.3)
    2
    """
    return max(1, math.ceil(batch / step_seconds / per_worker))


def render(results, command):
    """The README section."""
    import speechbrain
    import torch

    f20, w20, cn, vox = (results[k] for k in ("flac20_3s", "wav20_3s", "cnceleb_2s", "voxceleb_3s"))
    aug, feats = results["cnceleb_2s_aug"]
    cn_loader, vox_loader = results["cnceleb_loader"], results["voxceleb_loader"]
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared with other jobs), "
        f"Python {platform.python_version()}, torch {torch.__version__} (1 thread), "
        f"SpeechBrain {speechbrain.__version__}, libsndfile {sf.__libsndfile_version__}. Rates are per CPU "
        "second of the benchmark process (`time.process_time`, one thread), so other jobs on the machine do not "
        "lower them; files in the page cache (decoding is timed, not the disk); best of 3 passes (augmentation "
        "rows: best of 2).",
        "",
        "| stage (per CPU core) | utterances/s | vs whole-file decoding |",
        "|:---|---:|---:|",
        f"| read + 3 s crop, 20 s FLAC, whole file decoded | {f20[1]:.0f} | 1x |",
        f"| read + 3 s crop, 20 s FLAC, crop read from disk (`AudioReader`) | {f20[0]:.0f} | "
        f"**{f20[0] / f20[1]:.1f}x** (target >= 3x: {'met' if f20[0] / f20[1] >= 3 else 'NOT met'}) |",
        f"| read + 3 s crop, 20 s FLAC, `sf.info` + `sf.read(start, stop)` (the reader before: two opens) "
        f"| {f20[2]:.0f} | {f20[2] / f20[1]:.1f}x |",
        f"| read + 3 s crop, 20 s WAV, whole file decoded | {w20[1]:.0f} | 1x |",
        f"| read + 3 s crop, 20 s WAV, crop read from disk | {w20[0]:.0f} | {w20[0] / w20[1]:.1f}x |",
        f"| read + 2 s crop, CN-Celeb-like FLAC (mean {results['mean_length']:.1f} s), whole file | {cn[1]:.0f} | 1x |",
        f"| read + 2 s crop, CN-Celeb-like FLAC, crop read from disk | {cn[0]:.0f} | {cn[0] / cn[1]:.1f}x |",
        f"| read + 3 s crop, VoxCeleb-like WAV (mean {results['vox_mean_length']:.1f} s), whole file | {vox[1]:.0f} "
        "| 1x |",
        f"| read + 3 s crop, VoxCeleb-like WAV, crop read from disk | {vox[0]:.0f} | {vox[0] / vox[1]:.1f}x |",
        f"| loader path, CN-Celeb-like (manifest dataset, crop read, label, `collate_skipping`, batches of 64) "
        f"| {cn_loader:.0f} | |",
        f"| loader path, VoxCeleb-like | {vox_loader:.0f} | |",
        f"| CN-Celeb-like crop read + augmentation (AddNoise / AddReverb on 60 % of batches), CPU, batches of 32 "
        f"| {aug:.0f} | |",
        f"| + Fbank 80 + sentence mean norm, CPU | {feats:.0f} | |",
        "",
        "Loader workers one GPU needs at the recipe's batch of 256 crops: only the loader path runs in the "
        "DataLoader workers (augmentation and features run on the GPU in the training step; the augmenters read "
        "their noise and RIR files in their own `noise_workers` processes), so workers = ceil(256 / step time / "
        "loader-path rate per worker), from the loader-path rows above (worker-to-trainer transfer not included):",
        "",
        "| recipe | GPU step time (assumed) | utterances/s the GPU takes | loader workers needed |",
        "|:---|---:|---:|---:|",
    ]
    for recipe, per_worker, steps in (("CNCeleb (2 s crops, FLAC)", cn_loader, (0.15, 0.3, 0.6)),
                                      ("VoxCeleb (3 s crops, WAV)", vox_loader, (0.225, 0.45, 0.9))):
        for step in steps:
            lines.append(f"| {recipe} | {step} s | {BATCH / step:.0f} | {workers_needed(per_worker, step)} |")
    lines += [
        "",
        "The step times are assumptions, not measurements (no GPU here): 0.3-0.6 s (CN-Celeb, 2 s crops) and "
        "0.45-0.9 s (VoxCeleb, 3 s crops) are the estimates of recipes/CNCeleb/README.md and "
        "recipes/VoxCeleb/README.md for ECAPA-TDNN C=1024 on 256 crops on one A100/H100-class GPU; the first "
        "rows halve them (a GPU twice as fast, or mixed precision). A CPU-only run (augmentation and features "
        f"on the CPU too) makes about {feats:.0f} utterances/s per core.",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Run the benchmark; print (and with ``--write`` store) the README section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.files, args.batches)
    command = "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_pipeline.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = render(results, command.strip())
    print(text)
    if args.write:
        write_section(SECTION, text, os.path.join(ROOT, "bench", "README.md"))


if __name__ == "__main__":
    main()
