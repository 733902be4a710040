#!/usr/bin/env python3
"""Training with the same numbers, less CPU: the sliced reflect padding and the windowed noise.

Every ``Brain`` of this package gives SpeechBrain's modules two faster paths that compute
the same numbers to the bit (``tests/unit/test_compat.py``):

- :func:`speechbrain_ext.compat.use_sliced_reflect_padding`: ``same`` / ``reflect``
  convolutions padded from slices instead of ``F.pad(mode="reflect")``, whose CPU backward is
  slow and which copies the input even for a kernel-1 convolution. Timed on one training step
  of the SynthEmo baseline (``ecapa_aam.yaml``: Fbank, sentence normalisation, ECAPA-TDNN,
  AAM-softmax, backward, Adam; the recipe's batch shape) at the recipe's C=64 and the widths
  given; both copies start from the same weights and see the same batch.
- :func:`speechbrain_ext.compat.use_windowed_noise`: ``AddNoise`` cuts each noise's window
  without first padding every loaded noise file to the longest one. Timed on the recipe's
  noise (``add_noise`` of ``ecapa_aam.yaml``, SynthEmo's noise files of 6.5-7.7 s, generated
  here) added to a batch of the recipe's shape.

In every round the two versions alternate (which goes first alternates too), after a
warm-up. The figure is the median over rounds of the per-round ratio new / SpeechBrain of
CPU seconds (``time.process_time``: wall time on a shared machine measures the neighbours
too), with a 95 % interval from a bootstrap over rounds.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_fast_paths.py             # print the tables
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_fast_paths.py --write     # also update bench/README.md
"""

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile

import numpy as np
import torch
from bench_encoder_cost import HPARAMS, Step, time_steps
from readme_sections import show_and_write

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_prep.noise import white_noise_list  # noqa: E402
from speechbrain_ext.compat import use_sliced_reflect_padding, use_windowed_noise  # noqa: E402
from speechbrain_ext.hparams import load_hparams  # noqa: E402

SECTION = "## Same numbers, less CPU: padding and noise windows"


def sliced_copy(step):
    """``step`` with its own copy of the modules and optimiser, the encoder given the sliced padding."""
    other = copy.deepcopy(step)
    use_sliced_reflect_padding(other.encoder)
    return other


class NoiseStep:
    """``add_noise`` of ``ecapa_aam.yaml`` on a batch of the recipe's shape; ``()`` adds noise once."""

    def __init__(self, folder, seconds=(6.5, 6.9, 7.1, 7.4, 7.7) * 5):
        if not os.path.isfile(os.path.join(folder, "noise.csv")):
            white_noise_list(folder, seconds)
        hp, _ = load_hparams(os.path.join(HPARAMS, "ecapa_aam.yaml"),
                             {"data_folder": "/none", "manifest_folder": folder})
        self.noise = hp["add_noise"]
        n = hp["speakers_per_batch"] * hp["utterances_per_speaker"]
        self.wavs = 0.1 * torch.randn(n, int(hp["crop_seconds"] * hp["sample_rate"]))
        self.lens = torch.ones(n)

    def __call__(self):
        self.noise(self.wavs, self.lens)


def windowed(step):
    """``step`` with its noise loaded through the windowed path; returns it."""
    use_windowed_noise(step.noise)
    return step


def rounds(pair, repeats, n_steps):
    """CPU seconds per step of both steps of ``pair`` in every round, the order alternating."""
    for step in pair:
        time_steps(step, 1)
    times = np.zeros((repeats, 2))
    for r in range(repeats):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            times[r, i] = time_steps(pair[i], n_steps)
    return times


def ratio_interval(times, draws=2000, seed=0):
    """Median per-round ratio (column 1 / column 0) and its 95 % bootstrap interval over rounds."""
    ratios = times[:, 1] / times[:, 0]
    idx = np.random.default_rng(seed).integers(0, ratios.size, size=(draws, ratios.size))
    low, high = np.percentile(np.median(ratios[idx], axis=1), [2.5, 97.5])
    return float(np.median(ratios)), float(low), float(high)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 256], help="ECAPA-TDNN widths C")
    parser.add_argument("--repeats", type=int, default=20, help="rounds")
    parser.add_argument("--steps", type=int, default=2, help="steps of each padding per round")
    parser.add_argument("--write", action="store_true", help="also write the section of bench/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lines = [
        SECTION, "",
        f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} .venv/bin/python bench/bench_fast_paths.py --channels "
        f"{' '.join(map(str, args.channels))} --repeats {args.repeats} --steps {args.steps}"
        f"{' --write' if args.write else ''}`; {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f} at the "
        "start. CPU seconds of one training step of `ecapa_aam.yaml` (features, ECAPA-TDNN, AAM-softmax, backward, "
        "Adam) and of one `add_noise` call, on the recipe's batch shape, median over rounds; the ratio is the "
        "median of the per-round ratios with its 95 % bootstrap interval over rounds.", "",
        "| what is timed | SpeechBrain s | same numbers, new path s | new / SpeechBrain [95 % CI] |",
        "|:---|---:|---:|---:|",
    ]
    pairs = []
    for channels in args.channels:
        step = Step("ecapa_aam.yaml", {"channels": channels})
        pairs.append((f"training step, ECAPA-TDNN C={channels}, sliced padding", step, sliced_copy(step)))
    with tempfile.TemporaryDirectory() as folder:
        pairs.append(("`add_noise` on the recipe's batch (32 x 1 s), windowed noise read once", NoiseStep(folder),
                      windowed(NoiseStep(folder))))
        for label, old, new in pairs:
            times = rounds((old, new), args.repeats, args.steps)
            ratio, low, high = ratio_interval(times)
            lines.append(f"| {label} | {statistics.median(times[:, 0]):.4f} | {statistics.median(times[:, 1]):.4f} | "
                         f"{ratio:.2f} [{low:.2f}, {high:.2f}] |")
    lines += ["", "Outputs, gradients and noise are the same to the bit (`tests/unit/test_compat.py`), so training "
              "takes the same checkpoints either way; only the time differs."]
    show_and_write(SECTION, "\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
