"""Mixed precision: how far float16/bfloat16 results are from float32, per loss and per Brain.

The quantities that ``tests/unit/test_mixed_precision.py`` bounds, measured over several
seeds with the tests' own helpers (same batches, same steps), and written as a table:

- each custom module on float16 and bfloat16 inputs (the losses also under CPU autocast);
- one training step of every Brain with SpeechBrain's ``precision: bf16`` against ``fp32``
  from the same weights and batch, on a tiny SynthEmo corpus generated in a temporary folder.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_mixed_precision.py [--seeds 5] [--write]
"""

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TESTS, "unit"))
from readme_sections import write_section  # noqa: E402
from test_mixed_precision import (  # noqa: E402
    BRAIN_ROWS,
    UNIT_ROUNDOFF,
    cosine_logits,
    grad_cosine,
    loss_and_grad,
    masking_batch,
    mgda_step,
    speaker_batch,
    training_step,
)

from data_prep.synthemo import prepare_synthemo  # noqa: E402
from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention, ParallelCosineLoss  # noqa: E402
from speechbrain_ext.masking import EnergyEmotionMask  # noqa: E402

HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def tiny_corpus_options():
    """``TINY_CORPUS`` of tests/conftest.py, loaded by path (the name ``conftest`` is not unique)."""
    spec = importlib.util.spec_from_file_location("synthemo_tests_conftest", os.path.join(TESTS, "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TINY_CORPUS


def rel(value, ref):
    value, ref = float(torch.as_tensor(value).detach()), float(torch.as_tensor(ref).detach())
    return abs(value - ref) / abs(ref)


def am_supcon(seed, dtype):
    emb, labels, w = speaker_batch(seed)
    logits = cosine_logits(emb, w)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.07)
    ref, ref_grad = loss_and_grad(loss_fn, emb, labels, ClassAwareAttention()(logits, labels))
    loss, grad = loss_and_grad(loss_fn, emb.to(dtype), labels, ClassAwareAttention()(logits.to(dtype), labels))
    x = emb.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        auto = loss_fn(x, labels, ClassAwareAttention()(logits, labels))
        (auto_grad,) = torch.autograd.grad(auto, x)
    exact = torch.equal(auto, ref) and torch.equal(auto_grad, ref_grad)
    return {"loss rel. error": rel(loss, ref), "gradient cosine": grad_cosine(grad, ref_grad), "autocast exact": exact}


def caa(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(16).repeat_interleave(4)
    cos = torch.rand(64, 16, generator=gen) * 0.9 - 0.3
    attention = ClassAwareAttention(scale=30.0)
    weights, ref = attention(cos.to(dtype), labels), attention(cos, labels)
    neg = ref > 0
    bound = 4 * attention.scale * UNIT_ROUNDOFF[dtype]
    return {"max abs. error of log w": float((weights[neg].log() - ref[neg].log()).abs().max()), "bound 4 s u": bound}


def parallel_cos(seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(64, 1, 192, generator=gen)
    b = a + 0.8 * torch.randn(64, 1, 192, generator=gen)
    ref, ref_grad = loss_and_grad(ParallelCosineLoss(), a, b)
    loss, grad = loss_and_grad(ParallelCosineLoss(), a.to(dtype), b.to(dtype))
    return {"loss rel. error": rel(loss, ref), "gradient cosine": grad_cosine(grad, ref_grad)}


def mgda(seed, dtype):
    _, ref, ref_alpha, ref_grad = mgda_step(seed)
    _, total, alpha, grad = mgda_step(seed, dtype)
    return {
        "abs. error of alpha": abs(alpha - ref_alpha),
        "total loss rel. error": rel(total, ref),
        "encoder gradient cosine": grad_cosine(grad, ref_grad),
    }


def emotion_mask(seed, dtype):
    feats, wavs, lens = masking_batch(seed)
    em = EnergyEmotionMask(mask_ratio=0.2)
    energy, ref = em.frame_energy(wavs.to(dtype), lens), em.frame_energy(wavs, lens)
    valid = ref > 0
    same = torch.equal(em(feats.to(dtype), wavs.to(dtype), lens)[1], em(feats, wavs, lens)[1])
    return {"energy max rel. error": float(((energy - ref).abs()[valid] / ref[valid]).max()), "same frames": same}


def worst(rows):
    """Worst value over seeds: max of errors, min of cosines, all() of flags."""
    out = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if isinstance(values[0], bool):
            out[key] = "yes" if all(values) else "NO"
        elif "cosine" in key:
            out[key] = f"{min(values):.6f}"
        else:
            out[key] = f"{max(values):.2e}"
    return out


def module_table(seeds):
    checks = [
        ("AngularMarginSupConLoss (tau 0.07, m 0.2, CAA weights; 64 x 192)", am_supcon),
        ("ClassAwareAttention (s 30; 64 x 16 logits)", caa),
        ("ParallelCosineLoss (64 x 192)", parallel_cos),
        ("MGDABalancer under autocast (linear encoder, CE + AM-SupCon)", mgda),
        ("EnergyEmotionMask (4 x 1 s, rho 0.2)", emotion_mask),
    ]
    lines = ["| module | measure | float16 | bfloat16 |", "|:---|:---|---:|---:|"]
    for name, check in checks:
        results = {label: worst([check(seed, dtype) for seed in range(seeds)]) for label, dtype in HALF.items()}
        for key in results["float16"]:
            lines.append(f"| {name} | {key} | {results['float16'][key]} | {results['bfloat16'][key]} |")
            name = ""
    return "\n".join(lines)


def brain_table():
    lines = [
        "| Brain (SynthEmo row) | loss fp32 | loss bf16 | rel. error | gradient cosine: fc | first conv | "
        "all parameters | updates finite |",
        "|:---|---:|---:|---:|---:|---:|---:|:---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = (str(tmp / "data"), str(tmp / "manifests"))
        prepare_synthemo(*corpus, seed=1234, progress=False, **tiny_corpus_options())
        for brain, row in BRAIN_ROWS.items():
            ref = training_step(tmp / brain / "fp32", corpus, row, "fp32")
            half = training_step(tmp / brain / "bf16", corpus, row, "bf16", initial_state=ref.state)
            fc, first = "embedding_model.fc.conv.weight", "embedding_model.blocks.0.conv.conv.weight"
            every = list(ref.grads)
            flat_ref = torch.cat([ref.grads[n].flatten() for n in every])
            flat_half = torch.cat([half.grads[n].flatten() for n in every])
            finite = all(torch.isfinite(u).all() for u in half.updates.values())
            lines.append(
                f"| {brain} (`{row}`) | {float(ref.loss):.4f} | {float(half.loss):.4f} | "
                f"{rel(half.loss, ref.loss):.2e} | {grad_cosine(half.grads[fc], ref.grads[fc]):.5f} | "
                f"{grad_cosine(half.grads[first], ref.grads[first]):.4f} | "
                f"{grad_cosine(flat_half, flat_ref):.4f} | {'yes' if finite else 'NO'} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update bench/README.md")
    args = parser.parse_args(argv)
    section = (
        f"Command: `OMP_NUM_THREADS=2 .venv/bin/python bench/bench_mixed_precision.py --seeds {args.seeds} --write`\n\n"
        f"Machine: {platform.machine()}, CPU only, torch {torch.__version__}. Every module computes in float32 "
        "inside (`speechbrain_ext.precision`); the errors below all come from rounding the inputs to "
        "float16/bfloat16, worst over seeds 0.."
        f"{args.seeds - 1} (largest error, smallest cosine). Bounds asserted by "
        "`tests/unit/test_mixed_precision.py`: loss rel. error <= 1e-3, gradient cosine >= 0.999, "
        "|delta alpha| <= 1e-2, CAA |delta log w| <= 4 s u, frame-energy rel. error <= u "
        "(u = 2^-9 bfloat16, 2^-11 float16); 'autocast exact': under `torch.autocast('cpu', dtype)` the loss "
        "and its gradient are bitwise the float32 ones.\n\n"
        f"{module_table(args.seeds)}\n\n"
        "One `fit_batch` of every Brain built with SpeechBrain's `precision: bf16` (autocast on the CPU) "
        "against `fp32`, same initial weights and batch (tiny SynthEmo, ECAPA C=16, 2 speakers x 2 "
        "utterances of 0.5 s; CopyPaste doubles the batch). Bounds asserted: loss rel. error <= 1e-2, "
        "gradient cosine of the embedding layer (`fc`, which every loss term reaches) >= 0.99. The "
        "all-parameter cosine is lower: the first convolution's weight gradient holds most of the norm and "
        "agrees less (column 'first conv'), in the baseline (SpeechBrain's ECAPA and AAM, none of this "
        "project's losses) as in the other Brains.\n\n"
        f"{brain_table()}"
    )
    print(section)
    if args.write:
        write_section("## Mixed precision", section)


if __name__ == "__main__":
    main()
