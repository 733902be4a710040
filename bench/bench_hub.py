"""Hub export and inference: embedding real-time factor (PyTorch vs ONNX Runtime) and export round trip.

Measures, on the CPU, with an exported model (``python -m speechbrain_ext.publish export --onnx``):

- real-time factor (processing time / audio duration) of waveform → embedding for 3 s
  utterances at batch 1 and batch 32: SpeechBrain's ``EncoderClassifier.encode_batch``
  (PyTorch, the exported folder loaded with ``from_hparams``), the same modules through
  ``speechbrain_ext.batching.embed_batch`` (PyTorch, padding-invariant: the computation the
  exported graphs implement), the TorchScript file and the ONNX file under ONNX Runtime, with
  the same number of threads;
- on a padded batch (3 s, 2 s, 1.3 s), the largest difference of the ONNX graph from each
  utterance embedded alone, and of SpeechBrain's ``encode_batch`` from the same;
- the export + reload round trip as a user runs it: ``python -m speechbrain_ext.publish export``
  (with and without ``--onnx``) then ``SpeakerRecognition.from_hparams`` + one embedding in a
  fresh process, wall time including Python start-up and imports (target <= 30 s).

The model: ``--experiment DIR`` if given, else the demo's baseline run
(``results/demo/runs/ecapa_aam/seed1986``, written by ``make demo``) if it exists, else an UNTRAINED
experiment at the demo width (C=256), built from ``recipes/SynthEmo/hparams/ecapa_aam.yaml`` and saved
with the recipe's Checkpointer
(speed does not depend on the weights; its card's metrics are placeholders and it is deleted
afterwards). The section says which one was used.

Usage::

    .venv/bin/python bench/bench_hub.py            # print the markdown
    .venv/bin/python bench/bench_hub.py --write    # also put it in bench/README.md
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from readme_sections import show_and_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SECTION = "## Hub export and inference"
README = os.path.join(ROOT, "bench", "README.md")
RECIPE = os.path.join(ROOT, "recipes", "SynthEmo", "hparams", "ecapa_aam.yaml")
DEMO_EXPERIMENT = os.path.join(ROOT, "results", "demo", "runs", "ecapa_aam", "seed1986")
RATE = 16000


def untrained_experiment(root, channels):
    """An experiment folder from the recipe YAML, untrained, with a placeholder metrics.json."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    from speechbrain_ext.hparams import load_hparams

    speakers = [f"S{i:04d}" for i in range(1, 21)]
    overrides = {"output_root": root, "data_folder": os.path.join(root, "data"), "channels": channels,
                 "n_train_speakers": len(speakers)}
    hp, composed = load_hparams(RECIPE, overrides)
    exp = hp["output_folder"]
    os.makedirs(os.path.join(exp, "report"), exist_ok=True)
    with open(os.path.join(exp, "hyperparams.yaml"), "w") as f:
        f.write(composed)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(speakers)
    encoder.save(os.path.join(hp["save_folder"], "label_encoder.txt"))
    ckpt = hp["checkpointer"].save_checkpoint(meta={"EER": 50.0, "epoch": 0})
    placeholder = {"eer": 0.5, "eer_threshold": 0.5, "min_dcf": 1.0, "min_dcf_threshold": 0.5,
                   "min_dcf_p_target": 0.01, "n_target": 1, "n_nontarget": 1}
    with open(os.path.join(exp, "report", "metrics.json"), "w") as f:
        json.dump({"conditions": {"all": placeholder}, "checkpoint": os.path.relpath(ckpt.path, exp),
                   "system": "untrained (bench placeholder)"}, f)
    return exp


def timeit(fn, repeats, warmup=1):
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_subprocess(command, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", PYTHONPATH=ROOT)
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    return elapsed


RELOAD = """
import sys, torch
torch.set_num_threads(int(sys.argv[3]))
from speechbrain.inference.speaker import SpeakerRecognition
model = SpeakerRecognition.from_hparams(source=sys.argv[1], savedir=sys.argv[2], run_opts={"device": "cpu"})
print(model.encode_batch(torch.randn(1, 48000)).shape)
"""


def round_trip(experiment, work, threads):
    """Wall times (s) of the export CLI (plain and --onnx) and of a fresh-process reload + embedding."""
    py = sys.executable
    out_plain, out_onnx = os.path.join(work, "rt_plain"), os.path.join(work, "rt_onnx")
    export_plain = timed_subprocess([py, "-m", "speechbrain_ext.publish", "export", experiment, out_plain], threads)
    export_onnx = timed_subprocess([py, "-m", "speechbrain_ext.publish", "export", experiment, out_onnx, "--onnx"],
                                   threads)
    reload = timed_subprocess([py, "-c", RELOAD, out_plain, os.path.join(work, "rt_saved"), str(threads)], threads)
    return {"export": export_plain, "export_onnx": export_onnx, "reload": reload}, out_onnx


BACKENDS = ("PyTorch (SpeechBrain encode_batch)", "PyTorch (speechbrain_ext embed_batch, padding-invariant)",
            "TorchScript", "ONNX Runtime")


def padded_gaps(model, session, seconds=(3.0, 2.0, 1.3)):
    """Max |difference| from each utterance alone, on one padded batch: ``(ONNX, SpeechBrain encode_batch)``."""
    from speechbrain_ext.batching import embed_batch

    gen = torch.Generator().manual_seed(1)
    sizes = [int(s * RATE) for s in seconds]
    wavs = torch.zeros(len(sizes), max(sizes))
    for i, n in enumerate(sizes):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=gen)
    lens = torch.tensor(sizes, dtype=torch.float32) / max(sizes)
    mods = model.mods
    alone = torch.cat([embed_batch(mods.compute_features, mods.mean_var_norm, mods.embedding_model,
                                   wavs[i : i + 1, :n], torch.ones(1))[:, 0] for i, n in enumerate(sizes)])
    onnx = session.run(None, {"wavs": wavs.numpy(), "wav_lens": lens.numpy()})[0]
    with torch.no_grad():
        naive = model.encode_batch(wavs, lens)[:, 0]
    return float(np.abs(onnx - alone.numpy()).max()), float((naive - alone).abs().max())


def rtf(model_dir, threads, repeats, seconds=3.0):
    """Real-time factors ``{(backend, batch): rtf}``, the parity of ONNX vs PyTorch, the padded-batch gaps."""
    from speechbrain.inference.classifiers import EncoderClassifier

    from speechbrain_ext.batching import embed_batch
    from speechbrain_ext.publish.onnx_export import onnx_session

    torch.set_num_threads(threads)
    model = EncoderClassifier.from_hparams(source=model_dir, savedir=None, run_opts={"device": "cpu"})
    mods = model.mods
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(os.path.join(model_dir, "embedding.torchscript.pt"))
    session = onnx_session(os.path.join(model_dir, "embedding.onnx"), threads=threads)
    gen = torch.Generator().manual_seed(0)
    results, max_diff = {}, 0.0
    for batch in (1, 32):
        wavs = 0.1 * torch.randn(batch, int(seconds * RATE), generator=gen)
        lens = torch.ones(batch)
        feed = {"wavs": wavs.numpy(), "wav_lens": lens.numpy()}
        runs = repeats if batch == 1 else max(2, repeats // 3)

        def pytorch(wavs=wavs, lens=lens):
            with torch.no_grad():
                return model.encode_batch(wavs, lens)[:, 0]

        def invariant(wavs=wavs, lens=lens):
            return embed_batch(mods.compute_features, mods.mean_var_norm, mods.embedding_model, wavs, lens)[:, 0]

        def torchscript(wavs=wavs, lens=lens):
            with torch.no_grad():
                return scripted(wavs, lens)

        def onnx(feed=feed):
            return session.run(None, feed)[0]

        for name, fn in zip(BACKENDS, (pytorch, invariant, torchscript, onnx)):
            results[(name, batch)] = timeit(fn, runs) / (batch * seconds)
        max_diff = max(max_diff, float(np.abs(onnx() - pytorch().numpy()).max()))
    return results, max_diff, padded_gaps(model, session)


def describe_encoder(model_dir):
    """``(name, sizes, parameters)`` of the exported encoder (export.json, hyperparams.yaml, the checkpoint)."""
    import ruamel.yaml

    from speechbrain_ext.publish.experiment import plain

    with open(os.path.join(model_dir, "export.json")) as f:
        name = json.load(f)["encoder"]
    with open(os.path.join(model_dir, "hyperparams.yaml")) as f:
        block = plain(ruamel.yaml.YAML().load(f)["embedding_model"])
    sizes = ", ".join(f"{k}={v}" for k, v in block.items() if k != "input_size" and not isinstance(v, dict))
    n_params = sum(v.numel() for v in torch.load(os.path.join(model_dir, "embedding_model.ckpt"),
                                                 weights_only=True).values() if v.is_floating_point())
    return name, sizes, n_params


def run(args):
    """Run the benchmark; return the markdown body."""
    import speechbrain

    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="bench_hub-")
    try:
        if args.experiment:
            experiment, origin = os.path.abspath(args.experiment), "the experiment given with --experiment"
        elif os.path.isdir(DEMO_EXPERIMENT):
            experiment = DEMO_EXPERIMENT
            origin = "the demo's baseline run (`results/demo/runs/ecapa_aam/seed1986`, `make demo`)"
        else:
            experiment = untrained_experiment(work, args.channels)
            origin = (f"an **untrained** ECAPA-TDNN at the demo width C={args.channels}, built from "
                      "`recipes/SynthEmo/hparams/ecapa_aam.yaml` (no demo model exists here; speed does not "
                      "depend on the weights)")
        times, model_dir = round_trip(experiment, work, args.threads)
        encoder, sizes, n_params = describe_encoder(model_dir)
        factors, max_diff, (onnx_gap, naive_gap) = rtf(model_dir, args.threads, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "Command: `.venv/bin/python bench/bench_hub.py --write"
        + (f" --threads {args.threads}" if args.threads != 1 else "")
        + (f" --repeats {args.repeats}" if args.repeats != 10 else "")
        + (f" --experiment {os.path.relpath(args.experiment, ROOT)}" if args.experiment else "") + "`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), Python "
        f"{platform.python_version()}, torch {torch.__version__}, SpeechBrain {speechbrain.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}; {args.threads} thread(s) for torch and ONNX Runtime; "
        f"1-min load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after (other jobs share "
        "the cores: with a load above the core count every time here is inflated).",
        "",
        f"Model: {origin}; encoder {encoder} ({sizes}), {n_params / 1e6:.2f} M parameters, exported with "
        "`python -m speechbrain_ext.publish export --onnx` (padding-invariant ONNX and TorchScript graphs).",
        "",
        "Real-time factor of waveform → embedding, 3 s utterances at 16 kHz (processing time / audio "
        "duration; lower is faster; median of runs after one warm-up):",
        "",
        "| backend | RTF, batch 1 | RTF, batch 32 |",
        "|:---|---:|---:|",
    ]
    for name in BACKENDS:
        lines.append(f"| {name} | {factors[(name, 1)]:.4f} | {factors[(name, 32)]:.4f} |")
    onnx1, onnx32 = factors[("ONNX Runtime", 1)], factors[("ONNX Runtime", 32)]
    lines += [
        "",
        "ONNX Runtime vs PyTorch (> 1: ONNX faster): vs the same padding-invariant computation "
        f"(`embed_batch`) {factors[(BACKENDS[1], 1)] / onnx1:.2f}x at batch 1, "
        f"{factors[(BACKENDS[1], 32)] / onnx32:.2f}x at batch 32; vs SpeechBrain's `encode_batch` "
        f"{factors[(BACKENDS[0], 1)] / onnx1:.2f}x and {factors[(BACKENDS[0], 32)] / onnx32:.2f}x. Largest "
        f"embedding difference ONNX vs `encode_batch` on these equal-length inputs {max_diff:.1e} (parity "
        "tolerance 1e-4).",
        "",
        "Padded batch of 3 s, 2 s and 1.3 s utterances, largest |difference| from each utterance embedded "
        f"alone: ONNX graph {onnx_gap:.1e}, SpeechBrain's `encode_batch` {naive_gap:.1e}.",
        "",
        "Export + reload round trip, wall time of fresh processes as a user runs them (Python start-up and "
        "imports included, single runs):",
        "",
        "| step | time (s) | target |",
        "|:---|---:|:---|",
        f"| `python -m speechbrain_ext.publish export` | {times['export']:.1f} | |",
        f"| `... export --onnx` (+ TorchScript, parity check) | {times['export_onnx']:.1f} | |",
        f"| reload: `SpeakerRecognition.from_hparams` + one embedding | {times['reload']:.1f} | |",
        f"| round trip, export + reload | {times['export'] + times['reload']:.1f} | <= 30 s: "
        f"{'met' if times['export'] + times['reload'] <= 30 else 'NOT met'} |",
        f"| round trip with `--onnx` | {times['export_onnx'] + times['reload']:.1f} | <= 30 s: "
        f"{'met' if times['export_onnx'] + times['reload'] <= 30 else 'NOT met'} |",
        "",
        "The export itself loads the checkpoint strictly, reloads the written folder with "
        "`EncoderClassifier.from_hparams` and compares embeddings; `--onnx` adds the ONNX and TorchScript "
        "exports and their parity check. On a shared CPU, times vary with the other processes' load.",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", help="experiment folder to export (default: demo, else untrained C=256)")
    parser.add_argument("--channels", type=int, default=256, help="width of the untrained model (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads (default 1)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1 (batch 32: a third)")
    parser.add_argument("--write", action="store_true", help=f"write the section '{SECTION}' in {README}")
    args = parser.parse_args(argv)
    body = run(args)
    show_and_write(SECTION, body, args.write, README)


if __name__ == "__main__":
    main()
