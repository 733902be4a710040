"""Benchmark AM-SupCon (+ class-aware attention) against pytorch-metric-learning's SupConLoss.

Forward + backward time on CPU (float32, D=192, best of several repeats, 2 torch threads)
and the peak memory allocated by tensors during one forward + backward (torch profiler
memory timeline), for batch sizes N = 256, 1024, 4096. Labels are P speakers x K
utterances (K=2 by default), as produced by the speaker-balanced sampler.

Usage::

    python bench/bench_contrastive_loss.py            # print the markdown table
    python bench/bench_contrastive_loss.py --write    # also update bench/README.md

``--write`` replaces (or appends) only the "## Contrastive loss" section of
``bench/README.md``; other sections are left untouched.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from readme_sections import write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention  # noqa: E402

SECTION = "## Contrastive loss"
README = Path(__file__).resolve().parent / "README.md"


def _make_inputs(n, dim, n_classes, k, seed=0):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, dim, generator=gen)
    labels = torch.arange(n) // k % n_classes
    cos = torch.nn.functional.normalize(torch.randn(n, n_classes, generator=gen), dim=1)
    return emb, labels, cos


def _methods(args):
    from pytorch_metric_learning.losses import SupConLoss

    pml = SupConLoss(temperature=args.temperature)
    amsc = AngularMarginSupConLoss(margin=args.margin, temperature=args.temperature)
    caa = ClassAwareAttention(scale=args.scale)

    def run_pml(emb, labels, cos):
        pml(emb, labels).backward()

    def run_amsc(emb, labels, cos):
        amsc(emb, labels).backward()

    def run_amsc_caa(emb, labels, cos):
        amsc(emb, labels, caa(cos, labels)).backward()

    return {"pml": run_pml, "amsc": run_amsc, "amsc_caa": run_amsc_caa}


def _time_interleaved(methods, emb, labels, cos, repeats):
    """Best wall time of each method; methods alternate within every repeat so that
    all of them see the same background load on a shared machine."""
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeats):
        for name, fn in methods.items():
            x = emb.clone().requires_grad_(True)
            start = time.perf_counter()
            fn(x, labels, cos)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _peak_memory(fn, emb, labels, cos):
    """Peak bytes held by CPU tensors during one call, above what existed before it."""
    from torch.profiler import ProfilerActivity, profile

    x = emb.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                     with_stack=True) as prof:
            fn(x, labels, cos)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "timeline.json")
            prof.export_memory_timeline(path, device="cpu")
            with open(path, encoding="utf-8") as fi:
                _, sizes = json.load(fi)
    totals = [sum(row) for row in sizes]
    return max(totals) - totals[0] if totals else float("nan")


def run(args):
    torch.set_num_threads(args.threads)
    methods = _methods(args)
    rows = []
    for n in args.sizes:
        emb, labels, cos = _make_inputs(n, args.dim, args.classes, args.k)
        repeats = max(3, args.repeats // 4) if n >= 4096 else args.repeats
        for fn in methods.values():  # warm-up
            fn(emb.clone().requires_grad_(True), labels, cos)
        times = _time_interleaved(methods, emb, labels, cos, repeats)
        mems = {name: _peak_memory(fn, emb, labels, cos) for name, fn in methods.items()}
        rows.append((n, times, mems))
        print(f"N={n}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items()), file=sys.stderr)
    return rows


def table(rows, args):
    mib = 2.0**20
    lines = [
        "| N | pml SupConLoss (ms) | AM-SupCon (ms) | ratio | AM-SupCon + CAA (ms) | ratio "
        "| peak MiB pml | peak MiB AM-SupCon | peak MiB AM-SupCon + CAA |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, t, m in rows:
        lines.append(
            f"| {n} | {t['pml'] * 1e3:.2f} | {t['amsc'] * 1e3:.2f} | {t['amsc'] / t['pml']:.2f} "
            f"| {t['amsc_caa'] * 1e3:.2f} | {t['amsc_caa'] / t['pml']:.2f} "
            f"| {m['pml'] / mib:.1f} | {m['amsc'] / mib:.1f} | {m['amsc_caa'] / mib:.1f} |"
        )
    return "\n".join(lines)


def section(rows, args):
    from importlib.metadata import version

    return "\n".join([
        SECTION,
        "",
        "Forward + backward of `speechbrain_ext.losses.AngularMarginSupConLoss` (margin "
        f"{args.margin}, temperature {args.temperature}), alone and with `ClassAwareAttention` "
        f"(scale {args.scale}, C={args.classes} classes; the weights are part of the timed call), "
        f"against pytorch-metric-learning {version('pytorch-metric-learning')} `SupConLoss` (same "
        "temperature; no margin, no attention). CPU, float32, "
        f"D={args.dim}, K={args.k} utterances per label, torch {torch.__version__} with "
        f"{args.threads} threads, best of {args.repeats} repeats ({max(3, args.repeats // 4)} at "
        f"N>=4096; the three methods alternate within each repeat); ratio = ours / pml (lower is better). "
        "Peak memory: largest total of CPU tensors "
        "alive during one forward + backward above the inputs (torch profiler memory timeline). "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, shared "
        f"with other jobs (1-min load average {args.load[0]:.1f} before, {args.load[1]:.1f} after the run), "
        "so timings are indicative.",
        "",
        "Command: `" + " ".join([".venv/bin/python bench/bench_contrastive_loss.py"] + args.argv) + "`",
        "",
        table(rows, args),
        "",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--classes", type=int, default=1211, help="classifier classes for CAA")
    parser.add_argument("--k", type=int, default=2, help="samples per label")
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--write", action="store_true", help="update the section in bench/README.md")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = list(argv)
    load_before = os.getloadavg()[0]
    rows = run(args)
    args.load = (load_before, os.getloadavg()[0])
    text = section(rows, args)
    print(text)
    if args.write:
        write_section(SECTION, text, README)
        print(f"wrote {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
