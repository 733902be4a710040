#!/usr/bin/env python3
"""Training-step cost of ECAPA-TDNN with SpeechBrain's reflect padding and with the sliced one.

Every ``Brain`` of this package gives SpeechBrain's ``same`` / ``reflect`` convolutions
the padding of :func:`speechbrain_ext.compat.use_sliced_reflect_padding`: the same values
and gradients to the bit (``tests/unit/test_compat.py``), built from slices instead of
``F.pad(mode="reflect")``, whose CPU backward is slow and which copies the input even for
a kernel-1 convolution. Here one training step of the SynthEmo baseline
(``ecapa_aam.yaml``: Fbank, sentence normalisation, ECAPA-TDNN, AAM-softmax, backward,
Adam; the recipe's batch shape) is timed with each padding, at the recipe's C=64 and at
the widths given. The two copies start from the same weights and see the same batch;
they alternate in every round (which goes first alternates too), after a warm-up. The
figure is the median over rounds of the per-round ratio sliced / SpeechBrain of CPU
seconds per step (``time.process_time``: wall time on a shared machine measures the
neighbours too), with a 95 % interval from a bootstrap over rounds.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_padding.py             # print the table
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_padding.py --write     # also update bench/README.md
"""

import argparse
import copy
import os
import platform
import statistics
import sys

import numpy as np
import torch
from bench_encoder_cost import Step, time_steps
from readme_sections import show_and_write

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from speechbrain_ext.compat import use_sliced_reflect_padding  # noqa: E402

SECTION = "## Reflect padding in training (ECAPA-TDNN)"


def sliced_copy(step):
    """``step`` with its own copy of the modules and optimiser, the encoder given the sliced padding."""
    other = copy.deepcopy(step)
    use_sliced_reflect_padding(other.encoder)
    return other


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
        f"Command: `OMP_NUM_THREADS={torch.get_num_threads()} .venv/bin/python bench/bench_padding.py --channels "
        f"{' '.join(map(str, args.channels))} --repeats {args.repeats} --steps {args.steps}"
        f"{' --write' if args.write else ''}`; {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f} at the "
        "start. One training step of `ecapa_aam.yaml` (features, ECAPA-TDNN, AAM-softmax, backward, Adam) on the "
        "recipe's batch shape; CPU seconds per step, median over rounds; the ratio is the median of the per-round "
        "ratios with its 95 % bootstrap interval over rounds.", "",
        "| encoder | SpeechBrain padding s / step | sliced s / step | sliced / SpeechBrain [95 % CI] |",
        "|:---|---:|---:|---:|",
    ]
    for channels in args.channels:
        step = Step("ecapa_aam.yaml", {"channels": channels})
        times = rounds((step, sliced_copy(step)), args.repeats, args.steps)
        ratio, low, high = ratio_interval(times)
        lines.append(
            f"| ECAPA-TDNN C={channels} | {statistics.median(times[:, 0]):.3f} | "
            f"{statistics.median(times[:, 1]):.3f} | {ratio:.2f} [{low:.2f}, {high:.2f}] |"
        )
    lines += ["", "Outputs and gradients are the same to the bit (`tests/unit/test_compat.py`), so training with "
              "either padding gives the same checkpoints; only the time differs."]
    show_and_write(SECTION, "\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
