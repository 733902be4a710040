"""A fake corpus for the evaluation stage: wav files whose first samples ARE the embedding.

Each utterance's embedding is its speaker's direction plus utterance noise (so trials
overlap and a calibration is well posed), written as the first ``DIM`` samples of a
wav whose length varies (durations for the quality measures). :func:`encode` reads it
back, scaled by a ``gain`` that tests use to tell checkpoints apart.
"""

import os

import numpy as np
import soundfile as sf

from speechbrain_ext import data as sx_data
from speechbrain_ext.splits import Split

DIM = 8
RATE = 16000


def write_split(root, name, n_speakers=5, n_utts=4, seed=0):
    """Write ``<name>.csv``, its wavs and ``trials/<name>/all.txt`` (+ ``same.txt``, ``copy.txt``); a Split."""
    rng = np.random.default_rng(seed)
    rows = ["ID,duration,wav,spk_id"]
    utts = {}
    for s in range(n_speakers):
        spk = f"{name}{s}"
        direction = rng.normal(size=DIM)
        for k in range(n_utts):
            utt = f"{spk}_{k}"
            emb = direction + rng.normal(scale=0.9, size=DIM)
            n = 800 + 160 * int(rng.integers(0, 20))
            wav = np.zeros(n, dtype="float32")
            wav[:DIM] = emb / 10
            sf.write(os.path.join(root, f"{utt}.wav"), wav, RATE, subtype="FLOAT")
            rows.append(f"{utt},{n / RATE},$data_root/{utt}.wav,{spk}")
            utts.setdefault(spk, []).append(utt)
    manifest = os.path.join(root, f"{name}.csv")
    with open(manifest, "w") as f:
        f.write("\n".join(rows) + "\n")
    lines = []
    speakers = sorted(utts)
    for spk in speakers:
        for test in utts[spk][1:]:
            lines.append(f"1 {utts[spk][0]} {test}")
            for other in speakers:
                if other != spk:
                    lines.append(f"0 {utts[other][0]} {test}")
    trials = os.path.join(root, "trials", name)
    os.makedirs(trials, exist_ok=True)
    for cond, chosen in (("all", lines), ("same", lines[::2] + [lines[1]]), ("copy", lines)):
        with open(os.path.join(trials, f"{cond}.txt"), "w") as f:
            f.write("\n".join(chosen) + "\n")
    return Split(name, manifest, trials)


def encode(wavs, lens, gain=1.0):
    """The embedding stored in the first samples."""
    return (gain * 10 * wavs[:, :DIM])[:, None, :]


def make_loader(dataset):
    examples = [dataset[i] for i in range(len(dataset))]
    return [sx_data.collate_skipping(examples[i : i + 3]) for i in range(0, len(examples), 3)]


def gained(gain):
    """``encode`` with a gain (norms change, cosine scores do not)."""
    return lambda wavs, lens: encode(wavs, lens, gain)
