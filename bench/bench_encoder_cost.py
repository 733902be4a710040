#!/usr/bin/env python3
"""Training-step cost of SynthEmo's encoders: ECAPA-TDNN, ResNet34 and CAM++ at several widths.

Sizes the ResNet34 and CAM++ system files of the SynthEmo recipe so that a comparison with
the ECAPA-TDNN baseline at equal training wall time gives each encoder the same number
of epochs. Each candidate is built from its SynthEmo system file (``resnet34_aam.yaml``,
``campp_aam.yaml``; widths overridden as listed), then one training step is timed: Fbank
→ sentence normalisation → encoder → AAM-softmax → backward → Adam, on a batch of the
recipe's shape (``speakers_per_batch x utterances_per_speaker`` crops of
``crop_seconds``), one thread. The encoders are timed interleaved in rotating order,
``--repeats`` rounds of ``--steps`` steps, after one warm-up round; the figure is the
median per-step CPU time (``time.process_time``: on a shared machine wall time measures
the neighbours too) and its ratio to the ECAPA-TDNN baseline's in the same process.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_encoder_cost.py            # print the table
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_encoder_cost.py --write    # also update bench/README.md
"""

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from readme_sections import show_and_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain_ext.hparams import load_hparams  # noqa: E402

SECTION = "## Encoder training-step cost (SynthEmo)"
HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
#: (label, system file, overrides): the baseline first, then the candidates.
CANDIDATES = (
    ("ECAPA-TDNN C=64 (ecapa_aam.yaml)", "ecapa_aam.yaml", {}),
    ("ResNet34 channels 16 (half the published width)", "resnet34_aam.yaml", {"resnet_channels": 16}),
    ("ResNet34 channels 8", "resnet34_aam.yaml", {"resnet_channels": 8}),
    ("ResNet34 channels 5", "resnet34_aam.yaml", {"resnet_channels": 5}),
    ("ResNet34 channels 4 (resnet34_aam.yaml)", "resnet34_aam.yaml", {"resnet_channels": 4}),
    ("CAM++ growth 16, init 64, head 16 (half the published widths)", "campp_aam.yaml",
     {"campp_growth_rate": 16, "campp_init_channels": 64, "campp_head_channels": 16}),
    ("CAM++ growth 8, init 32, head 8 (campp_aam.yaml)", "campp_aam.yaml",
     {"campp_growth_rate": 8, "campp_init_channels": 32, "campp_head_channels": 8}),
    ("CAM++ growth 8, init 32, head 8, blocks 6-12-8", "campp_aam.yaml",
     {"campp_growth_rate": 8, "campp_init_channels": 32, "campp_head_channels": 8,
      "campp_block_layers": [6, 12, 8]}),
    ("CAM++ growth 4, init 32, head 8, blocks 6-12-8", "campp_aam.yaml",
     {"campp_growth_rate": 4, "campp_init_channels": 32, "campp_head_channels": 8,
      "campp_block_layers": [6, 12, 8]}),
)


class Step:
    """One candidate's modules, optimiser and a fixed batch; ``()`` runs one training step."""

    def __init__(self, system, overrides, seed=0):
        hp, _ = load_hparams(os.path.join(HPARAMS, system), {"data_folder": "/none", **overrides})
        torch.manual_seed(seed)
        self.features, self.norm = hp["compute_features"], hp["mean_var_norm"]
        self.encoder, self.classifier, self.loss = hp["embedding_model"], hp["classifier"], hp["aam_loss"]
        params = list(self.encoder.parameters()) + list(self.classifier.parameters())
        self.n_params = sum(p.numel() for p in self.encoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=1e-3)
        n = hp["speakers_per_batch"] * hp["utterances_per_speaker"]
        self.wavs = 0.1 * torch.randn(n, int(hp["crop_seconds"] * hp["sample_rate"]))
        self.lens = torch.ones(n)
        self.labels = torch.randint(0, hp["n_speakers"], (n, 1))

    def __call__(self):
        feats = self.norm(self.features(self.wavs), self.lens)
        logits = self.classifier(self.encoder(feats, self.lens))
        loss = self.loss(logits, self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def time_steps(step, n):
    start = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - start) / n


def measure(steps, repeats, n_steps):
    """Median seconds per step of every candidate, interleaved in rotating order after a warm-up."""
    for step in steps:
        time_steps(step, 1)
    times = [[] for _ in steps]
    for r in range(repeats):
        order = [(r + i) % len(steps) for i in range(len(steps))]
        for i in order:
            times[i].append(time_steps(steps[i], n_steps))
    return [statistics.median(t) for t in times]


def table(rows, args):
    lines = [
        SECTION, "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python bench/bench_encoder_cost.py --repeats {args.repeats} "
        f"--steps {args.steps}{' --write' if args.write else ''}`; {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s). One training step (features, encoder, "
        "AAM-softmax, backward, Adam) on a batch of the SynthEmo recipe's shape; median CPU seconds per step over "
        "the rounds, encoders interleaved.", "",
        "| encoder | parameters | s / step | x ECAPA-TDNN |", "|:---|---:|---:|---:|",
    ]
    base = rows[0][2]
    for label, n_params, seconds in rows:
        lines.append(f"| {label} | {n_params / 1e6:.2f} M | {seconds:.3f} | {seconds / base:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the candidates")
    parser.add_argument("--steps", type=int, default=3, help="steps per candidate per round")
    parser.add_argument("--write", action="store_true", help="also write the section of bench/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    steps = [Step(system, overrides) for _, system, overrides in CANDIDATES]
    medians = measure(steps, args.repeats, args.steps)
    rows = [(label, step.n_params, m) for (label, _, _), step, m in zip(CANDIDATES, steps, medians)]
    show_and_write(SECTION, table(rows, args), args.write)


if __name__ == "__main__":
    main()
