"""Ablation of emotion-invariant training (methods.md B) on SynthEmo: rows x seeds, then one report.

Rows (``recipes/SynthEmo/hparams/<row>.yaml``), each trained with seeds 1986, 1987, 1988:

    ecapa_aam                    baseline (unchanged)
    ecapa_aam_copypaste          + CopyPaste parallel data, AAM on x and x'
    ecapa_aam_copypaste_cos      + parallel cosine loss (lambda = 1)
    ecapa_aam_copypaste_cos_em   + emotion-aware masking (the paper's system)

Every run is the recipe itself (``recipes/SynthEmo/train.py``, a subprocess, one after
the other), on one corpus prepared first. The report ``results/ablation_emotion.md``
holds the settings, EER / minDCF mean ± std per row and trial condition, the relative
EER change on neutral-enrolment / emotional-test trials next to the paper's own
number, training time per epoch, the emotion-gap figure and a 2-D projection of the
evaluation embeddings (baseline vs the paper's system).

Budget: the defaults (C=64, 2 s crops, 6 epochs, SynthEmo 40/10/20 speakers x 5 emotions
x 10 sentences, one OpenMP thread) fit the whole ablation (12 runs) in about 41 minutes of
CPU on 2 cores, within the 60-minute budget; see ``BUDGET_NOTE`` (printed in the report)
for the measurement.

Usage::

    .venv/bin/python bench/ablation_emotion.py                    # full ablation (~41 min on 2 idle cores)
    .venv/bin/python bench/ablation_emotion.py --dry-run          # print the commands only
    .venv/bin/python bench/ablation_emotion.py --report-only      # rebuild the report from finished runs
    .venv/bin/python bench/ablation_emotion.py --rows ecapa_aam ecapa_aam_copypaste_cos_em --seeds 1986 \\
        --epochs 1 --n-train 8 --n-valid 3 --n-eval 4 --n-sentences 4 --channels 32 --speakers-per-batch 4  # smoke
"""

import argparse
import json
import math
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from speechbrain_ext import emotion_report  # noqa: E402

ROWS = ("ecapa_aam", "ecapa_aam_copypaste", "ecapa_aam_copypaste_cos", "ecapa_aam_copypaste_cos_em")
LABELS = {
    "ecapa_aam": "baseline (ECAPA + AAM)",
    "ecapa_aam_copypaste": "+ CopyPaste (AAM on x, x')",
    "ecapa_aam_copypaste_cos": "+ CopyPaste + L_cos",
    "ecapa_aam_copypaste_cos_em": "+ CopyPaste + L_cos + EM (paper)",
    # Optional (--rows): both papers' systems together (our composition; ~2x a contrastive step).
    "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em": "AM-SupCon + CAA + MGDA + CopyPaste + L_cos + EM",
}
BASELINE = "ecapa_aam"
PAPER_ROW = "ecapa_aam_copypaste_cos_em"
PAPER_RELATIVE_EER = -19.29  # Tian, Hu & Xu 2025: on THEIR emotional test set, their full system vs their baseline
SEEDS = (1986, 1987, 1988)
FOCUS = "neutral_emotional"
FIXED_CONDITIONS = ("all", "same_emotion", "neutral_neutral", "neutral_emotional")
# Chosen for the 60-minute budget on 2 cores (see BUDGET_NOTE).
DEFAULTS = {
    "epochs": 6,
    "channels": 64,
    "crop": 2.0,
    "speakers_per_batch": 16,
    "utterances_per_speaker": 2,
    "n_train": 40,
    "n_valid": 10,
    "n_eval": 20,
    "n_sentences": 10,
    "threads": 1,
}
BUDGET_NOTE = (
    "Chosen from one- and two-epoch recipe runs of the baseline and the paper's row at these settings "
    "(2026-11-22, x86_64, 2 shared cores, OMP_NUM_THREADS=1). CPU seconds of a run (its DataLoader worker "
    "included) bound its wall time on an otherwise idle machine: baseline about 6 s fixed + 22 s per epoch, a "
    "CopyPaste row about 13 s + 34 s per epoch, corpus generation about 55 s once. 3 seeds x (baseline + 3 "
    "CopyPaste rows) x 6 epochs: about 3 x (141 + 3 x 217) + 55 = 2430 s, i.e. about 41 minutes, leaving about "
    "1.5 x headroom within 60 minutes. While other jobs kept the load average at 4-6, wall times were about 2 x "
    "the CPU times, and 2 OpenMP threads were several times SLOWER than 1 (spinning threads waiting for a "
    "core), hence OMP_NUM_THREADS=1."
)


def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> a = parse_args(["--rows", "ecapa_aam", "--seeds", "1", "--dry-run"])
    >>> a.rows, a.seeds, a.dry_run, a.epochs == DEFAULTS["epochs"]
    (['ecapa_aam'], [1], True, True)
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", nargs="+", default=list(ROWS), help="hparams files (without .yaml)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--channels", type=int, default=DEFAULTS["channels"], help="ECAPA-TDNN width C")
    p.add_argument("--crop", type=float, default=DEFAULTS["crop"], help="training crop, seconds")
    p.add_argument("--speakers-per-batch", type=int, default=DEFAULTS["speakers_per_batch"], help="P")
    p.add_argument(
        "--utterances-per-speaker", type=int, default=DEFAULTS["utterances_per_speaker"],
        help="K; a batch holds P x K ORIGINAL utterances (2 P K encoder inputs with CopyPaste)",
    )
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"], help="training speakers")
    p.add_argument("--n-valid", type=int, default=DEFAULTS["n_valid"], help="validation speakers")
    p.add_argument("--n-eval", type=int, default=DEFAULTS["n_eval"], help="evaluation speakers")
    p.add_argument("--n-sentences", type=int, default=DEFAULTS["n_sentences"], help="sentences per emotion")
    p.add_argument(
        "--threads", type=int, default=DEFAULTS["threads"],
        help="OMP_NUM_THREADS of each run (1: robust on a shared machine; 2 is faster only on an idle one)",
    )
    p.add_argument("--data-folder", default=None, help="default: data/SynthEmo_s<n_sentences>")
    p.add_argument("--output-root", default=os.path.join(ROOT, "results", "ablation_emotion"))
    p.add_argument("--report", default=os.path.join(ROOT, "results", "ablation_emotion.md"))
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from finished runs")
    p.add_argument("--extra", default="", help="further recipe overrides, e.g. '--num_workers 2'")
    args = p.parse_args(argv)
    unknown = [r for r in args.rows if not os.path.isfile(hparams_path(r))]
    if unknown:
        p.error(f"no hparams file for row(s) {unknown} in recipes/SynthEmo/hparams")
    if args.data_folder is None:
        args.data_folder = os.path.join(ROOT, "data", f"SynthEmo_s{args.n_sentences}")
    args.data_folder = os.path.abspath(args.data_folder)
    args.output_root = os.path.abspath(args.output_root)
    return args


def hparams_path(row):
    """The hparams file of a row.

    Example
    -------
    >>> os.path.basename(hparams_path("ecapa_aam"))
    'ecapa_aam.yaml'
    """
    return os.path.join(ROOT, "recipes", "SynthEmo", "hparams", f"{row}.yaml")


def prepare_command(args):
    """The data-preparation command (corpus + manifests shared by every run)."""
    return [
        sys.executable, "-m", "data_prep.synthetic", args.data_folder, os.path.join(args.output_root, "manifests"),
        "--n-train", str(args.n_train), "--n-valid", str(args.n_valid), "--n-eval", str(args.n_eval),
        "--n-sentences", str(args.n_sentences), "--no-progress", "--quiet",
    ]


def run_command(args, row, seed):
    """The recipe command of one (row, seed).

    Example
    -------
    >>> cmd = run_command(parse_args(["--seeds", "7"]), "ecapa_aam", 7)
    >>> cmd[cmd.index("--seed") + 1], cmd[cmd.index("--number_of_epochs") + 1] == str(DEFAULTS["epochs"])
    ('7', True)
    """
    return [
        sys.executable, os.path.join(ROOT, "recipes", "SynthEmo", "train.py"), hparams_path(row),
        "--seed", str(seed),
        "--data_folder", args.data_folder,
        "--output_root", args.output_root,
        "--n_train_speakers", str(args.n_train),
        "--n_valid_speakers", str(args.n_valid),
        "--n_eval_speakers", str(args.n_eval),
        "--n_sentences", str(args.n_sentences),
        "--number_of_epochs", str(args.epochs),
        "--channels", str(args.channels),
        "--crop_seconds", str(args.crop),
        "--speakers_per_batch", str(args.speakers_per_batch),
        "--utterances_per_speaker", str(args.utterances_per_speaker),
        *shlex.split(args.extra),
    ]


def run_folder(args, row, seed):
    """The recipe's output folder of one run (``<output_root>/<system>/seed<seed>``)."""
    return os.path.join(args.output_root, row, f"seed{seed}")


def train_seconds(log_path):
    """Training seconds of each epoch in a SpeechBrain ``train_log.txt`` (``train seconds: ...``).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "log.txt")
    >>> _ = open(p, "w").write("epoch: 1, lr: 1 - train loss: 2, train seconds: 20.00 - valid EER: 3, "
    ...                        "valid seconds: 1.0\\nepoch: 2, lr: 1 - train seconds: 1.90e+01 - valid EER: 3\\n")
    >>> train_seconds(p)
    [20.0, 19.0]
    """
    if not os.path.isfile(log_path):
        return []
    out = []
    with open(log_path) as f:
        for line in f:
            m = re.search(r"train seconds: ([0-9.eE+-]+)", line)
            if m:
                out.append(float(m.group(1)))
    return out


def mean_std(values):
    """``(mean, sample std)`` of a list; std 0 for one value, ``(nan, nan)`` for none.

    Example
    -------
    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fmt(mean, std, digits=2):
    """``mean ± std`` (``n/a`` for nan).

    Example
    -------
    >>> fmt(12.345, 0.5), fmt(float("nan"), 0.0)
    ('12.35 ± 0.50', 'n/a')
    """
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def execute(args):
    """Prepare the corpus and train every (row, seed) in turn; returns the run records."""
    runs_file = os.path.join(args.output_root, "runs.json")
    records = {}
    if os.path.isfile(runs_file):
        with open(runs_file) as f:
            records = json.load(f)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ROOT}
    commands = [("prepare", prepare_command(args))]
    commands += [(f"{row}/seed{seed}", run_command(args, row, seed)) for row in args.rows for seed in args.seeds]
    if args.dry_run:
        for _, cmd in commands:
            print(f"OMP_NUM_THREADS={args.threads} " + shlex.join(cmd))
        return records
    os.makedirs(os.path.join(args.output_root, "logs"), exist_ok=True)
    for key, cmd in commands:
        log = os.path.join(args.output_root, "logs", key.replace("/", "-") + ".log")
        print(f"[{time.strftime('%H:%M:%S')}] {key}: {shlex.join(cmd)}", flush=True)
        start, cpu_start = time.time(), _children_cpu()
        with open(log, "w") as f:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
        wall, cpu = time.time() - start, _children_cpu() - cpu_start
        print(f"[{time.strftime('%H:%M:%S')}] {key}: exit {rc} after {wall:.0f} s (log: {log})", flush=True)
        if key == "prepare":
            if rc != 0:
                raise SystemExit(f"data preparation failed; see {log}")
            continue
        records[key] = {
            "returncode": rc,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "load_average": os.getloadavg()[0],
            "log": os.path.relpath(log, ROOT) if log.startswith(ROOT + os.sep) else log,
        }
        with open(runs_file, "w") as f:
            json.dump(records, f, indent=2)
    return records


def _children_cpu():
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def collect(args, records):
    """Metrics, per-epoch training times and wall times of every (row, seed) that finished."""
    results = {}
    for row in args.rows:
        for seed in args.seeds:
            folder = run_folder(args, row, seed)
            path = os.path.join(folder, "report", "metrics.json")
            rec = records.get(f"{row}/seed{seed}", {})
            entry = {"folder": folder, "metrics": None, "epochs": train_seconds(os.path.join(folder, "train_log.txt"))}
            entry.update(
                wall_seconds=rec.get("wall_seconds"), cpu_seconds=rec.get("cpu_seconds"),
                returncode=rec.get("returncode"),
            )
            if os.path.isfile(path):
                entry["metrics"] = emotion_report.load_metrics(path)
            results[(row, seed)] = entry
    return results


def _conditions(results):
    names = set()
    for entry in results.values():
        if entry["metrics"]:
            names |= set(entry["metrics"]["conditions"])
    emotions = sorted(n for n in names if n.startswith("test_") and n != "test_neutral")
    return [c for c in FIXED_CONDITIONS if c in names] + emotions


def _metric(results, row, seeds, condition, key, scale):
    values = []
    for seed in seeds:
        m = results[(row, seed)]["metrics"]
        if m and condition in m["conditions"]:
            values.append(scale * m["conditions"][condition][key])
    return values


def write_report(args, results, path):
    """Write the markdown report and its two figures; returns the report text."""
    rows = [r for r in args.rows if any(results[(r, s)]["metrics"] for s in args.seeds)]
    conditions = _conditions(results)
    figure_dir = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    n_utts = 5 * args.n_sentences
    lines = [
        "# Emotion-invariant training: ablation on SynthEmo",
        "",
        "Generated by `bench/ablation_emotion.py` (methods.md B; recipe rows in `recipes/SynthEmo/hparams/`).",
        "",
        f"**Settings.** ECAPA-TDNN width C={args.channels} (channels [C, C, C, C, 3C], 192-d embeddings), "
        f"training crop {args.crop:g} s, {args.epochs} epoch(s), batches of P={args.speakers_per_batch} speakers "
        f"x K={args.utterances_per_speaker} ORIGINAL utterances (2 P K encoder inputs with CopyPaste), "
        f"seeds {', '.join(map(str, args.seeds))}; "
        f"SynthEmo {args.n_train} training / {args.n_valid} validation / {args.n_eval} evaluation speakers x "
        f"5 emotions x {args.n_sentences} sentences ({args.n_train * n_utts} training utterances); "
        f"OMP_NUM_THREADS={args.threads} on {platform.machine()} with {os.cpu_count()} visible core(s). "
        "Checkpoint by validation EER; cosine scoring, no score normalisation.",
        "",
        f"**Budget.** {BUDGET_NOTE}" if _is_default(args) else "**Budget.** Non-default settings (see above).",
        "",
    ]
    missing = [f"{r}/seed{s}" for r in args.rows for s in args.seeds if not results[(r, s)]["metrics"]]
    if missing:
        lines += [f"**Missing runs** (failed or not run): {', '.join(missing)}.", ""]
    for title, key, scale, digits in (("EER (%)", "eer", 100.0, 2), ("minDCF (p=0.01)", "min_dcf", 1.0, 3)):
        lines += [f"## {title}, mean ± std over seeds", ""]
        lines.append("| system | " + " | ".join(conditions) + " |")
        lines.append("|:---|" + "---:|" * len(conditions))
        for row in rows:
            cells = [fmt(*mean_std(_metric(results, row, args.seeds, c, key, scale)), digits) for c in conditions]
            lines.append(f"| {LABELS.get(row, row)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _relative_section(args, results, rows)
    lines += _time_section(args, results, rows)
    lines += _figures_section(args, results, rows, figure_dir, stem)
    text = "\n".join(lines).rstrip() + "\n"
    os.makedirs(figure_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return text


def _is_default(args):
    return all(getattr(args, k) == v for k, v in DEFAULTS.items())


def _relative_section(args, results, rows):
    lines = [
        f"## Relative EER change vs the baseline, `{FOCUS}` trials (neutral enrolment, emotional test)",
        "",
        "Relative change of the seed-mean EER, and the mean ± std of the per-seed (paired by seed) changes.",
        "",
        "| system | EER (%) | relative change of the mean | per-seed change | paper's reported change |",
        "|:---|---:|---:|---:|---:|",
    ]
    base = {s: _metric(results, BASELINE, [s], FOCUS, "eer", 100.0) for s in args.seeds} if BASELINE in rows else {}
    base_mean = mean_std([v for vals in base.values() for v in vals])[0] if base else float("nan")
    for row in rows:
        vals = {s: _metric(results, row, [s], FOCUS, "eer", 100.0) for s in args.seeds}
        mean, std = mean_std([v for vs in vals.values() for v in vs])
        if row == BASELINE or math.isnan(base_mean) or base_mean == 0:
            rel, paired = "—", "—"
        else:
            rel = f"{100 * (mean - base_mean) / base_mean:+.2f} %"
            changes = [
                100 * (vals[s][0] - base[s][0]) / base[s][0]
                for s in args.seeds
                if vals.get(s) and base.get(s) and base[s][0] > 0
            ]
            paired = fmt(*mean_std(changes)) + " %" if changes else "n/a"
        paper = f"{PAPER_RELATIVE_EER:+.2f} % (paper, its own data)" if row == PAPER_ROW else ""
        lines.append(f"| {LABELS.get(row, row)} | {fmt(mean, std)} | {rel} | {paired} | {paper} |")
    lines += [
        "",
        f"The paper's {PAPER_RELATIVE_EER:+.2f} % is Tian, Hu & Xu (2025)'s reported relative EER reduction of their "
        "full system over their baseline on their emotional test set (VoxCeleb pre-training, emotional "
        "fine-tuning); it is quoted for orientation only and was not measured here. SynthEmo is a small "
        "synthetic corpus and these runs are short, so only the direction and size relative to the seed spread "
        "are meaningful.",
        "",
    ]
    return lines


def _time_section(args, results, rows):
    lines = [
        "## Training time",
        "",
        "| system | train seconds / epoch | vs baseline | wall seconds / run (train + valid + eval) "
        "| CPU seconds / run |",
        "|:---|---:|---:|---:|---:|",
    ]
    per_row = {}
    for row in rows:
        epochs = [t for s in args.seeds for t in results[(row, s)]["epochs"]]
        per_row[row] = mean_std(epochs)
    base = per_row.get(BASELINE, (float("nan"), 0.0))[0]
    for row in rows:
        mean, std = per_row[row]
        ratio = f"{mean / base:.2f} x" if base and not math.isnan(base) and not math.isnan(mean) else "—"
        walls = [results[(row, s)]["wall_seconds"] for s in args.seeds]
        cpus = [results[(row, s)]["cpu_seconds"] for s in args.seeds]
        lines.append(
            f"| {LABELS.get(row, row)} | {fmt(mean, std, 1)} | {ratio} | {fmt(*mean_std(walls), 0)} "
            f"| {fmt(*mean_std(cpus), 0)} |"
        )
    lines += [
        "",
        "With CopyPaste each step encodes 2 x P x K inputs (x and x'), so an epoch costs about twice a "
        "baseline epoch. Seconds are wall-clock on a possibly shared machine; CPU seconds (user + system of the "
        "run and its DataLoader worker) depend less on other load.",
        "",
    ]
    return lines


def _figures_section(args, results, rows, figure_dir, stem):
    lines = ["## Emotion gap", ""]
    systems = {
        LABELS.get(r, r): [results[(r, s)]["metrics"] for s in args.seeds if results[(r, s)]["metrics"]] for r in rows
    }
    systems = {k: v for k, v in systems.items() if v}
    if not systems:
        return lines + ["No finished run.", ""]
    gap_png = os.path.join(figure_dir, f"{stem}_gap.png")
    table = emotion_report.plot_emotion_gap(systems, gap_png)
    emotions = emotion_report.emotion_order({e for t in table.values() for e in t})
    lines += [
        f"![EER per test emotion]({os.path.basename(gap_png)})",
        "",
        "EER (%) per test emotion (trials `test_<emotion>`: neutral enrolment), mean ± std over seeds:",
        "",
        "| system | " + " | ".join(emotions) + " |",
        "|:---|" + "---:|" * len(emotions),
    ]
    for label, t in table.items():
        lines.append(f"| {label} | " + " | ".join(fmt(*t[e][:2]) if e in t else "n/a" for e in emotions) + " |")
    lines.append("")
    manifest = os.path.join(args.output_root, "manifests", "eval.csv")
    labels = emotion_report.read_labels(manifest) if os.path.isfile(manifest) else None
    if labels is not None:
        lines += [
            "Emotion shift (mean over speakers and emotions of 1 − cos between a speaker's emotional and neutral "
            "embedding centroids on the evaluation set; lower is more emotion-invariant), mean ± std over seeds:",
            "",
            "| system | emotion shift |",
            "|:---|---:|",
        ]
        for row in rows:
            shifts = []
            for s in args.seeds:
                if results[(row, s)]["metrics"]:
                    try:
                        ids, emb = emotion_report.load_eval_embeddings(results[(row, s)]["folder"])
                    except FileNotFoundError:
                        continue
                    shifts.append(emotion_report.emotion_shift(ids, emb, labels))
            lines.append(f"| {LABELS.get(row, row)} | {fmt(*mean_std(shifts), 4)} |")
        lines.append("")
    pair = [r for r in (BASELINE, PAPER_ROW) if r in rows]
    if len(pair) < 2:
        pair = rows[:1] + rows[-1:] if len(rows) > 1 else rows
    seed = next((s for s in args.seeds if all(results[(r, s)]["metrics"] for r in pair)), None)
    if labels is not None and seed is not None:
        proj_png = os.path.join(figure_dir, f"{stem}_projection.png")
        folders = {f"{LABELS.get(r, r)}, seed {seed}": results[(r, seed)]["folder"] for r in dict.fromkeys(pair)}
        emotion_report.plot_projection(folders, manifest, proj_png)
        lines += [
            "## Embeddings before / after",
            "",
            f"![2-D PCA of the evaluation embeddings]({os.path.basename(proj_png)})",
            "",
            "2-D PCA (exact SVD) of the L2-normalised evaluation embeddings; colour: speaker, marker: emotion.",
            "",
        ]
    return lines


def main(argv=None):
    """Run (or print) the ablation, then write the report."""
    args = parse_args(argv)
    records = {}
    if not args.report_only:
        records = execute(args)
        if args.dry_run:
            return 0
    else:
        runs_file = os.path.join(args.output_root, "runs.json")
        if os.path.isfile(runs_file):
            with open(runs_file) as f:
                records = json.load(f)
    results = collect(args, records)
    text = write_report(args, results, args.report)
    print(text)
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
