"""Benchmark of the scoring back-end (``speechbrain_ext.scoring``).

(a) EER + normalised minDCF on 1,000,000 random trials (1 % targets): wall time
    (best of 3) and peak memory, measured two ways: tracemalloc (numpy reports its
    buffers to it) around one call in this process, and the ru_maxrss growth of a
    fresh subprocess over the call (inputs already allocated when the baseline is read).
(b) Speed-up over ``speechbrain.utils.metric_stats.EER`` + ``minDCF`` on 37,720
    trials (VoxCeleb1-O size, half targets as in that list). SpeechBrain's EER runs
    in this process; its minDCF materialises thresholds x trials matrices (~18 GB
    here), so it runs in a subprocess under an address-space limit and a timeout.
    If it cannot finish, the speed-up is reported as a lower bound from EER alone.

Usage::

    .venv/bin/python bench/bench_scoring.py            # print the table
    .venv/bin/python bench/bench_scoring.py --write    # also update bench/README.md
"""

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from readme_sections import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain_ext.scoring import compute_eer, compute_min_dcf, evaluate_conditions  # noqa: E402

README = os.path.join(ROOT, "bench", "README.md")
SECTION = "## Scoring back-end"
TARGETS = {"time_1m_s": 1.0, "speedup": 500.0, "peak_mb": 200.0}


def make_scores(n, target_rate, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    n_pos = max(1, round(n * target_rate))
    # Cosine-like scores; the distributions only need to overlap.
    pos = rng.normal(0.6, 0.15, n_pos).astype(dtype)
    neg = rng.normal(0.05, 0.1, n - n_pos).astype(dtype)
    return pos, neg


def ours(pos, neg):
    compute_eer(pos, neg)
    compute_min_dcf(pos, neg, p_target=0.01)


def ours_shared(pos, neg):
    scores = np.concatenate([pos, neg])
    labels = np.zeros(scores.size, np.int8)
    labels[: pos.size] = 1
    evaluate_conditions({"all": (scores, labels)}, p_targets=(0.01,))


def sklearn_roc(pos, neg):
    """EER + minDCF(0.01) from ``sklearn.metrics.roc_curve``: the usual way, for scale.

    roc_curve sorts once too, so this is the fair reference for "how fast can it be";
    SpeechBrain's functions are the reference for what the recipes replaced.
    """
    from sklearn.metrics import roc_curve

    scores = np.concatenate([pos, neg])
    labels = np.zeros(scores.size, np.int8)
    labels[: pos.size] = 1
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    k = np.argmin(np.abs(fnr - fpr))
    eer = (fnr[k] + fpr[k]) / 2
    p = 0.01
    dcf = np.min(p * fnr + (1 - p) * fpr) / min(p, 1 - p)
    return eer, dcf


def best_of(fn, repeats, *args):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def tracemalloc_peak_mb(fn, *args):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


_RSS_CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_scoring import make_scores, ours

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

pos, neg = make_scores({n}, {rate})
ours(pos[:1000], neg[:1000])  # warm up lazy imports and allocator pools
try:
    # Reset the RSS high-water mark to the current RSS (Linux >= 4.0), so the import-time
    # peak of torch cannot hide the call's own peak.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    how = "VmHWM after clear_refs"
    before = status_kb("VmRSS")
except OSError:
    how = "ru_maxrss"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ours(pos, neg)
after = status_kb("VmHWM") if how != "ru_maxrss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"delta_kb": after - before, "how": how}}))
"""


def rss_delta_mb(n, rate):
    code = _RSS_CHILD.format(root=ROOT, bench=os.path.dirname(os.path.abspath(__file__)), n=n, rate=rate)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["delta_kb"] / 1024, res["how"]  # both in KiB on Linux


_SB_MINDCF_CHILD = """
import json, resource, sys, time
limit = int({mem_bytes})
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np, torch
from speechbrain.utils.metric_stats import minDCF
data = np.load({path!r})
pos, neg = torch.from_numpy(data["pos"]), torch.from_numpy(data["neg"])
t0 = time.perf_counter()
try:
    value, _ = minDCF(pos, neg, p_target=0.01)
    print(json.dumps({{"ok": True, "seconds": time.perf_counter() - t0, "value": value}}))
except (MemoryError, RuntimeError) as err:
    print(json.dumps({{"ok": False, "seconds": time.perf_counter() - t0, "error": str(err)[:200]}}))
"""


def sb_min_dcf_subprocess(pos, neg, mem_gb, timeout_s):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scores.npz")
        np.savez(path, pos=pos, neg=neg)
        code = _SB_MINDCF_CHILD.format(mem_bytes=int(mem_gb * 2**30), path=path)
        try:
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "seconds": float(timeout_s), "error": f"timeout after {timeout_s} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"ok": False, "seconds": float("nan"), "error": (out.stderr or "no output").strip()[-200:]}
    return json.loads(lines[-1])


def sb_min_dcf_scaling(args):
    """SpeechBrain's minDCF on smaller lists that fit the limit, for a quadratic extrapolation."""
    out = []
    for n in (args.sb_trials // 6, args.sb_trials // 3):
        pos, neg = make_scores(n, 0.5, seed=2, dtype=np.float32)
        r = sb_min_dcf_subprocess(pos, neg, args.sb_mem_gb, args.sb_timeout)
        if not r["ok"]:
            break
        out.append((n, r["seconds"]))
    return out


def run(args):
    import torch
    from speechbrain.utils.metric_stats import EER as sb_eer

    res = {}
    # (a) 1M trials
    pos, neg = make_scores(args.trials, args.target_rate)
    ours(pos[:1000], neg[:1000])
    res["t_1m"] = best_of(ours, args.repeats, pos, neg)
    res["t_1m_shared"] = best_of(ours_shared, args.repeats, pos, neg)
    res["t_1m_f32_torch"] = best_of(
        ours, args.repeats, torch.from_numpy(pos.astype(np.float32)), torch.from_numpy(neg.astype(np.float32))
    )
    res["t_1m_sklearn"] = best_of(sklearn_roc, args.repeats, pos, neg)
    res["peak_tracemalloc"] = tracemalloc_peak_mb(ours, pos, neg)
    res["peak_rss"], res["peak_rss_how"] = rss_delta_mb(args.trials, args.target_rate)
    del pos, neg

    # (b) VoxCeleb1-O size against SpeechBrain, float32 tensors as SpeechBrain receives them
    pos, neg = make_scores(args.sb_trials, 0.5, seed=1, dtype=np.float32)
    res["t_ours_vox"] = best_of(ours, args.repeats, pos, neg)
    res["t_sklearn_vox"] = best_of(sklearn_roc, args.repeats, pos, neg)
    eer_ours, _ = compute_eer(pos, neg)
    res["eer_sklearn"] = sklearn_roc(pos, neg)[0]
    pos_t, neg_t = torch.from_numpy(pos), torch.from_numpy(neg)
    t0 = time.perf_counter()
    eer_sb, _ = sb_eer(pos_t, neg_t)
    res["t_sb_eer"] = time.perf_counter() - t0
    res["eer_ours"], res["eer_sb"] = eer_ours, eer_sb
    if args.skip_sb_min_dcf:
        res["sb_dcf"] = {"ok": False, "seconds": float("nan"), "error": "skipped (--skip-sb-min-dcf)"}
    else:
        res["sb_dcf"] = sb_min_dcf_subprocess(pos, neg, args.sb_mem_gb, args.sb_timeout)
        if not res["sb_dcf"]["ok"]:
            res["sb_dcf_small"] = sb_min_dcf_scaling(args)
    return res


def _short_error(err):
    m = re.search(r"tried to allocate (\d+) bytes", err)
    return f"out of memory allocating {int(m.group(1)) / 1e9:.1f} GB at once" if m else err


def render(res, args, command):
    sb = res["sb_dcf"]
    if sb["ok"]:
        t_sb = res["t_sb_eer"] + sb["seconds"]
        speed = f"{t_sb / res['t_ours_vox']:,.0f}x"
        sb_dcf_cell = f"{sb['seconds']:.1f} s"
        sb_total = f"{t_sb:.1f} s"
    else:
        t_sb = res["t_sb_eer"]
        speed = f">= {t_sb / res['t_ours_vox']:,.0f}x (lower bound: SpeechBrain EER alone)"
        sb_dcf_cell = (
            f"did not finish: {_short_error(sb['error'])} (limit {args.sb_mem_gb:g} GiB address space, "
        )
        sb_dcf_cell += f"{args.sb_timeout} s)"
        sb_total = f"> {t_sb:.1f} s"
        small = res.get("sb_dcf_small") or []
        if small:
            n_s, t_s = small[-1]
            est = t_s * (args.sb_trials / n_s) ** 2
            measured = ", ".join(f"{t:.2f} s at {n:,}" for n, t in small)
            extrapolation = (
                f"SpeechBrain's minDCF fits the limit on smaller lists only ({measured} trials); its work "
                f"and memory grow with thresholds x trials, i.e. quadratically, which extrapolates to about "
                f"{est:.0f} s for {args.sb_trials:,} trials and an estimated speed-up of about "
                f"{(t_sb + est) / res['t_ours_vox']:,.0f}x. This is an estimate, not a measurement; the "
                "table reports only the measured lower bound."
            )

    def ok(value, target, lower_is_better=True):
        good = value <= target if lower_is_better else value >= target
        return "met" if good else "MISSED"

    if sb["ok"] or not res.get("sb_dcf_small"):
        extrapolation = ""
    speed_value = t_sb / res["t_ours_vox"]
    peak = max(res["peak_tracemalloc"], res["peak_rss"])
    lines = [
        SECTION,
        "",
        "`speechbrain_ext.scoring`: EER + normalised minDCF from one sort (O(n log n)), against",
        "`speechbrain.utils.metric_stats.EER` + `minDCF` (what SpeechBrain's recipes use) and against",
        "`sklearn.metrics.roc_curve` (one sort too: the fair measure of how fast this can be). Command:",
        "",
        f"    {command}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), Python "
        f"{platform.python_version()}, numpy {np.__version__}. Random normal scores; times are the best "
        f"of {args.repeats} runs unless noted.",
        "",
        "| measurement | value | target |",
        "|:---|---:|:---|",
        f"| (a) EER + minDCF, {args.trials:,} trials (1 % targets), float64 numpy, "
        f"two calls | {res['t_1m'] * 1e3:.0f} ms | <= 1 s: {ok(res['t_1m'], TARGETS['time_1m_s'])} |",
        f"| (a) same through `evaluate_conditions` (one shared sort) | {res['t_1m_shared'] * 1e3:.0f} ms | |",
        f"| (a) same, float32 torch input (converted to float64) | {res['t_1m_f32_torch'] * 1e3:.0f} ms | |",
        f"| (a) `sklearn.metrics.roc_curve` + EER/minDCF from its curve, same trials | "
        f"{res['t_1m_sklearn'] * 1e3:.0f} ms | |",
        f"| (a) peak memory, tracemalloc (numpy buffers during the two calls, inputs excluded) | "
        f"{res['peak_tracemalloc']:.0f} MiB | <= 200 MB: {ok(peak, TARGETS['peak_mb'])} |",
        f"| (a) peak memory, RSS growth of a fresh subprocess over the two calls ({res['peak_rss_how']}) | "
        f"{res['peak_rss']:.0f} MiB | |",
        f"| (b) ours, EER + minDCF, {args.sb_trials:,} trials (50 % targets, float32) | "
        f"{res['t_ours_vox'] * 1e3:.1f} ms | |",
        f"| (b) `sklearn.metrics.roc_curve` + EER/minDCF, same trials | {res['t_sklearn_vox'] * 1e3:.1f} ms | |",
        f"| (b) SpeechBrain `EER`, same trials, same process (one run) | {res['t_sb_eer']:.1f} s | |",
        f"| (b) SpeechBrain `minDCF`, same trials, subprocess | {sb_dcf_cell} | |",
        f"| (b) SpeechBrain EER + minDCF | {sb_total} | |",
        f"| (b) speed-up | {speed} | >= 500x: {ok(speed_value, TARGETS['speedup'], False)} |",
        "",
        f"EER agreement on (b): ours {100 * res['eer_ours']:.4f} %, SpeechBrain "
        f"{100 * res['eer_sb']:.4f} %, scikit-learn {100 * res['eer_sklearn']:.4f} % (SpeechBrain also tries "
        "mid-point thresholds and counts "
        "score == threshold as a rejection, so the two can differ slightly).",
        "",
    ]
    if extrapolation:
        lines += [extrapolation, ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--target-rate", type=float, default=0.01)
    parser.add_argument("--sb-trials", type=int, default=37_720)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sb-mem-gb", type=float, default=6.0, help="address-space limit of the minDCF child (GiB)"
    )
    parser.add_argument("--sb-timeout", type=int, default=300, help="seconds allowed to SpeechBrain's minDCF")
    parser.add_argument("--skip-sb-min-dcf", action="store_true")
    parser.add_argument("--write", action="store_true", help=f"replace the '{SECTION}' section of {README}")
    args = parser.parse_args(argv)
    argv_used = argv if argv is not None else sys.argv[1:]
    command = shlex.join([".venv/bin/python", "bench/bench_scoring.py", *argv_used])
    section = render(run(args), args, command.strip())
    print(section)
    if args.write:
        write_section(SECTION, section, README)
        print(f"updated {README}")


if __name__ == "__main__":
    main()
