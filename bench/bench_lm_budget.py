#!/usr/bin/env python3
"""Wall time of SynthEmo's large-margin fine-tuning stage against its main training (issue 14: <= 20 %).

Runs the real recipe on a SynthEmo corpus with the default proportions of training
to validation speakers (10:1, default 1,000:100) but fewer speakers: one source run of
``ecapa_aam.yaml`` (1 epoch), then, interleaved, ``--repeats`` pairs of one more main
epoch and the whole fine-tuning stage (``ecapa_aam_lm.yaml``, its 1 epoch) from that
source. Each epoch's training and validation seconds come from ``train_log.txt``
(startup and the final evaluation are not training and are left out). Both stages visit
every training utterance once per epoch in the same P x K batches, so the ratio does
not depend on the number of speakers:

    ratio = stage seconds / (main epochs x seconds of one main epoch)

with the main epochs of ``ecapa_aam.yaml`` (6). The median over the pairs is reported,
with the range; ``--write`` replaces this script's section of bench/README.md.

    .venv/bin/python bench/bench_lm_budget.py --write
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from readme_sections import write_section  # noqa: E402

HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
HEADER = "## Large-margin fine-tuning budget (SynthEmo)"


def composed_value(name, key):
    import ruamel.yaml

    from speechbrain_ext.hparams import compose_hparams

    return ruamel.yaml.YAML().load(compose_hparams(os.path.join(HPARAMS, name)))[key]


def run(args, hparams, system, *extra):
    """Run the recipe; returns the per-epoch ``(train seconds, valid seconds)`` of its train_log."""
    command = [sys.executable, os.path.join(ROOT, "recipes", "SynthEmo", "train.py"), os.path.join(HPARAMS, hparams),
               "--data_folder", os.path.join(args.work, "data"), "--output_root", os.path.join(args.work, "runs"),
               "--n_train_speakers", str(args.train_speakers), "--n_valid_speakers", str(args.train_speakers // 10),
               "--n_eval_speakers", "10", "--n_ood_valid_speakers", "10", "--n_ood_speakers", "10",
               "--system", system, "--num_workers", "0", "--noprogressbar", *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    log = os.path.join(args.work, "runs", system, "seed1986", "train_log.txt")
    epochs = []
    with open(log) as f:
        for line in f:
            if line.startswith("epoch"):
                fields = dict(p.strip().rsplit(": ", 1) for c in line.split(" - ") for p in c.split(", "))
                epochs.append((float(fields["train seconds"]), float(fields["valid seconds"])))
    return epochs


def measure(args):
    main_epochs = composed_value("ecapa_aam.yaml", "number_of_epochs")
    main_crop = composed_value("ecapa_aam.yaml", "crop_seconds")
    lm_epochs = composed_value("ecapa_aam_lm.yaml", "number_of_epochs")
    lm_crop = composed_value("ecapa_aam_lm.yaml", "crop_seconds")
    run(args, "ecapa_aam.yaml", "source", "--number_of_epochs", "1")
    source = os.path.join(args.work, "runs", "source", "seed1986")
    pairs = []
    for k in range(args.repeats):
        (main,) = run(args, "ecapa_aam.yaml", f"main{k}", "--number_of_epochs", "1")
        stage = run(args, "ecapa_aam_lm.yaml", f"lm{k}", "--init_from", source)
        pairs.append((main, stage))
        print(f"pair {k}: main epoch {main}, stage {stage}", flush=True)
    total = [sum(map(sum, stage)) / (main_epochs * sum(main)) for main, stage in pairs]
    train = [sum(s[0] for s in stage) / (main_epochs * main[0]) for main, stage in pairs]
    return {"main_epochs": main_epochs, "main_crop": main_crop, "lm_epochs": lm_epochs, "lm_crop": lm_crop,
            "pairs": pairs, "total": total, "train": train,
            "nominal": lm_epochs * lm_crop / (main_epochs * main_crop)}


def report(args, r):
    def pct(values):
        return f"{100 * statistics.median(values):.1f} % (range {100 * min(values):.1f}-{100 * max(values):.1f} %)"

    rows = "\n".join(
        f"| {k + 1} | {main[0]:.1f} + {main[1]:.1f} | {' ; '.join(f'{t:.1f} + {v:.1f}' for t, v in stage)} "
        f"| {100 * r['total'][k]:.1f} % |"
        for k, (main, stage) in enumerate(r["pairs"])
    )
    return f"""{HEADER}

Command: `.venv/bin/python bench/bench_lm_budget.py --write --repeats {args.repeats} --train-speakers \
{args.train_speakers} --threads {args.threads}`

SynthEmo with {args.train_speakers} training and {args.train_speakers // 10} validation speakers (the default \
10:1 proportion), default model and batches, `OMP_NUM_THREADS={args.threads}`, shared 2-core CPU. Main stage \
(`ecapa_aam.yaml`): {r['main_epochs']} epochs of {r['main_crop']} s crops; fine-tuning stage (`ecapa_aam_lm.yaml`, \
from a 1-epoch source run): {r['lm_epochs']} epoch of {r['lm_crop']} s crops. Training audio ratio (epochs x \
crop): {100 * r['nominal']:.1f} %. Seconds from `train_log.txt` (training + validation of each epoch; startup and \
the final evaluation excluded), one main epoch and the whole stage run back to back in each pair:

| pair | one main epoch: train + valid (s) | stage: train + valid (s) | stage / ({r['main_epochs']} main epochs) |
|---:|---:|---:|---:|
{rows}

Stage / main training, wall time: **{pct(r['total'])}**; training steps alone: {pct(r['train'])} \
(target <= 20 %).
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--train-speakers", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="replace this script's section of bench/README.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        args.work = args.work or tmp
        text = report(args, measure(args))
    print(text)
    if args.write:
        write_section(HEADER, text)


if __name__ == "__main__":
    main()
