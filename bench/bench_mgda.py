"""MGDA-UB step overhead: the same training step with MGDABalancer vs FixedWeights.

Same encoder (ECAPA-TDNN), batch (P x K utterances of 2 s), losses (AAM-softmax and
AM-SupCon with class-aware attention); only the balancer differs. The two variants
alternate within each repeat so machine load affects both alike; the figure is the
ratio of medians. Target (issue 3): overhead <= 5 %.

    .venv/bin/python bench/bench_mgda.py [--channels 256] [--repeats 8] [--write]
"""

import argparse
import os
import platform
import statistics
import sys
import time

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from readme_sections import write_section  # noqa: E402

from speechbrain_ext.balancing import FixedWeights, MGDABalancer  # noqa: E402
from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention  # noqa: E402


def build(channels, n_classes):
    torch.manual_seed(0)
    encoder = ECAPA_TDNN(80, channels=[channels] * 4 + [3 * channels], lin_neurons=192)
    classifier = Classifier(192, out_neurons=n_classes)
    params = list(encoder.parameters()) + list(classifier.parameters())
    return encoder, classifier, torch.optim.Adam(params, lr=1e-3)


def step(encoder, classifier, optimizer, feats, labels, balancer, aam, supcon, caa):
    emb = encoder(feats)
    logits = classifier(emb)
    losses = {
        "aam": aam(logits, labels[:, None]),
        "contrastive": supcon(emb, labels, negative_weights=caa(logits, labels)),
    }
    loss, _ = balancer(losses, emb)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--speakers", type=int, default=16)
    parser.add_argument("--per-speaker", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="update bench/README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    n = args.speakers * args.per_speaker
    labels = torch.arange(args.speakers).repeat_interleave(args.per_speaker)
    feats = Fbank(n_mels=80)(torch.randn(n, int(16000 * args.seconds)) * 0.1)
    aam = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    supcon, caa = AngularMarginSupConLoss(margin=0.2), ClassAwareAttention(scale=30)
    balancers = {"fixed": FixedWeights({"aam": 1.0, "contrastive": 1.0}), "mgda": MGDABalancer()}
    models = {name: build(args.channels, args.speakers) for name in balancers}
    times = {name: [] for name in balancers}
    for name in balancers:  # warm-up
        step(*models[name], feats, labels, balancers[name], aam, supcon, caa)
    for _ in range(args.repeats):
        for name, balancer in balancers.items():
            start = time.perf_counter()
            step(*models[name], feats, labels, balancer, aam, supcon, caa)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    overhead = med["mgda"] / med["fixed"] - 1
    verdict = "met" if overhead <= 0.05 else "NOT met"
    table = "\n".join(
        [
            "| balancer | median step (s) | min step (s) |",
            "|---|---:|---:|",
            *(f"| {n} | {med[n]:.3f} | {min(times[n]):.3f} |" for n in balancers),
            "",
            f"MGDA-UB overhead: **{100 * overhead:+.1f} %** of the fixed-weight step (target <= 5 %: {verdict}).",
        ]
    )
    section = (
        f"Command: `.venv/bin/python bench/bench_mgda.py --channels {args.channels} --repeats {args.repeats}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores visible (shared), torch {torch.__version__}, "
        f"{args.threads} threads. ECAPA-TDNN C={args.channels}, batch {args.speakers} x {args.per_speaker} "
        f"utterances of {args.seconds:g} s, AAM-softmax + AM-SupCon + CAA; variants alternate within each of "
        f"{args.repeats} repeats.\n\n{table}\n\n"
        "MGDA takes the two loss gradients with respect to the batch of embeddings (two `autograd.grad` calls "
        "through the classifier and the loss only), never a second backward through the encoder."
    )
    print(section)
    if args.write:
        write_section("## MGDA-UB step overhead", section)


if __name__ == "__main__":
    main()
