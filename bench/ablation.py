"""Ablations on the embedded SynthEmo corpus: rows x seeds through the recipe, one report per suite.

Two suites share this runner (``--suite``); each is a list of rows
(``recipes/SynthEmo/hparams/<row>.yaml``), a reference row and a few extra report sections:

``contrastive`` (issue 3, methods.md A; Li, Mak & Meng 2023) -> ``results/ablation_contrastive.md``
    ``ecapa_aam``, ``ecapa_supcon``, ``ecapa_aam_supcon``, ``ecapa_aam_amsupcon``,
    ``ecapa_aam_amsupcon_caa``, ``ecapa_aam_amsupcon_caa_mgda`` (the paper's system); extra sections:
    MGDA's alpha and the class-aware-attention weight per row.
``emotion`` (issue 4, methods.md B; Tian, Hu & Xu 2025) -> ``results/ablation_emotion.md`` (+ 2 PNGs)
    ``ecapa_aam``, ``ecapa_aam_copypaste``, ``ecapa_aam_copypaste_cos``, ``ecapa_aam_copypaste_cos_em``
    (the paper's system), ``ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em`` (both papers' systems);
    extra sections: relative EER change on ``neutral_emotional`` next to the paper's own -19.29 %, the
    emotion-gap figure, the emotion shift, a 2-D PCA projection, and a valid-split probe of every run
    (``bench/em_probe.py``: validation EER with the highest-energy, random or lowest-energy frames
    hidden at test time).

Both reports hold the settings and the command above the tables, EER and minDCF mean ± std over
seeds (1986, 1987, 1988) per row and evaluation trial condition, whether the paper's row beats the
reference, training time per epoch with the data-loader wait share per step (issue 4's target:
<= 5 %), and valid-split diagnostics (validation EER per row and epoch, from each run's
``train_log.txt`` and ``metrics.json``): any "why" is argued there, never on the evaluation trials.

Every run is the recipe itself (``recipes/SynthEmo/train.py`` in a subprocess, one after the
other unless ``--jobs N``, ``OMP_NUM_THREADS=--threads``) on one corpus prepared first. Runs go to
``results/ablation/<settings>/<row>/seed<seed>``: the folder names every setting, so the two
suites at the same settings share their ``ecapa_aam`` runs, and a run whose
``report/metrics.json`` exists is skipped. The runner is therefore resumable: run it again (or in
the background with ``--background``) and it trains only what is missing, then rewrites the
report. An interrupted run resumes from its last checkpoint (the recipe's own resume). Two runner
processes on one runs folder (e.g. both suites started in the background) take turns: the second
waits for the first, then skips what it finished, so the cores are never split between them.

Row variants for the valid-split investigation: ``--variants ROW:key=value,key=value ...`` (also
accepted in ``--rows``) trains ``ROW`` with recipe overrides, e.g.
``ecapa_aam_amsupcon_caa_mgda:supcon_temperature=0.1`` or
``ecapa_aam_amsupcon_caa_mgda:speakers_per_batch=8,utterances_per_speaker=4`` (3 seeds, about 7 minutes
each at the defaults). A variant appears only in the valid-split diagnostics of the report, never in
the evaluation tables. ``--jobs 2`` trains two runs at once (each run's CPU time is still exact; wall
times are not comparable then, which matters only for the rows' time table).

Usage::

    .venv/bin/python bench/ablation.py --suite contrastive                 # make ablation-contrastive
    .venv/bin/python bench/ablation.py --suite emotion --background        # detached; log next to the runs
    .venv/bin/python bench/ablation.py --suite contrastive --dry-run       # print the commands only
    .venv/bin/python bench/ablation.py --suite contrastive --report-only   # report from finished runs only
    .venv/bin/python bench/ablation.py --suite contrastive --rows ecapa_aam ecapa_aam_amsupcon_caa_mgda \\
        --seeds 1986 --epochs 1 --n-train 8 --n-valid 3 --n-eval 4 --n-sentences 4 --channels 32 \\
        --speakers-per-batch 4 --runs-root /tmp/abl/runs --data-folder /tmp/abl/data \\
        --out /tmp/abl/ablation_contrastive.md                           # smoke
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = (1986, 1987, 1988)
#: One set of defaults for both suites, so that their baseline runs are literally the same
#: command (and folder). Chosen for the 60-minute budget on 2 cores (see each suite's budget note).
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
    "speaker_spread": 0.4,  # = recipes/SynthEmo/hparams/ecapa_aam.yaml and data_prep.synthetic's default
    "snr_db": (5.0, 25.0),
    "threads": 1,
}
FIXED_CONDITIONS = ("all", "same_emotion", "neutral_neutral", "neutral_emotional")
LOADER_WAIT_TARGET = 5.0  # %, issue 4
N_EMOTIONS = 5


# ---------------------------------------------------------------------------- rows and suites
@dataclasses.dataclass(frozen=True)
class Row:
    """One row of an ablation: an hparams file, optionally with recipe overrides (a variant).

    Example
    -------
    >>> r = parse_row("ecapa_aam_amsupcon:supcon_temperature=0.1,speakers_per_batch=8")
    >>> r.hparams, r.overrides, r.is_variant
    ('ecapa_aam_amsupcon', (('supcon_temperature', '0.1'), ('speakers_per_batch', '8')), True)
    >>> r.name
    'ecapa_aam_amsupcon@supcon_temperature=0.1,speakers_per_batch=8'
    >>> parse_row("ecapa_aam").name
    'ecapa_aam'
    """

    hparams: str
    overrides: tuple = ()

    @property
    def is_variant(self):
        """True when the row carries overrides."""
        return bool(self.overrides)

    @property
    def name(self):
        """The row's folder name (``<hparams>`` or ``<hparams>@k=v,k=v``)."""
        if not self.overrides:
            return self.hparams
        return self.hparams + "@" + ",".join(f"{k}={_safe(v)}" for k, v in self.overrides)


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(text))


def parse_row(spec):
    """A :class:`Row` from ``ROW`` or ``ROW:key=value[,key=value...]`` (see the module docstring).

    Example
    -------
    >>> parse_row("ecapa_aam:number_of_epochs=9").overrides
    (('number_of_epochs', '9'),)
    >>> parse_row("ecapa_aam:epochs")
    Traceback (most recent call last):
    ...
    ValueError: row 'ecapa_aam:epochs': overrides must be key=value[,key=value...]
    """
    hparams, _, rest = spec.partition(":")
    overrides = []
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", key) or not value:
            raise ValueError(f"row {spec!r}: overrides must be key=value[,key=value...]")
        overrides.append((key, value))
    return Row(hparams, tuple(overrides))


@dataclasses.dataclass(frozen=True)
class Suite:
    """What differs between the ablations: rows, reference, paper row, notes and extra sections."""

    name: str
    title: str
    about: str
    rows: tuple
    labels: dict
    reference: str
    paper_row: str
    verdict_conditions: tuple
    budget_note: str
    settings_note: object  # ctx -> str: suite-specific settings (ends with "; ")
    time_note: str
    sections: tuple = ()
    #: Sections after the valid-split diagnostics (also validation data only).
    valid_sections: tuple = ()
    #: ``args -> None``, run after training (not with --report-only): further valid-split diagnostics.
    post: object = None


def label(suite, row):
    """The row's label in the report (a variant adds its overrides).

    Example
    -------
    >>> label(SUITES["contrastive"], parse_row("ecapa_aam:lr=0.001"))
    'baseline (ECAPA + AAM) [lr=0.001]'
    """
    base = suite.labels.get(row.hparams, row.hparams)
    if not row.is_variant:
        return base
    return f"{base} [{', '.join(f'{k}={v}' for k, v in row.overrides)}]"


# ---------------------------------------------------------------------------- command line
def parse_args(argv=None):
    """Command-line options (see the module docstring).

    Example
    -------
    >>> a = parse_args(["--suite", "contrastive", "--seeds", "1", "--dry-run"])
    >>> [r.name for r in a.rows][-1], a.seeds, a.epochs == DEFAULTS["epochs"], os.path.basename(a.out)
    ('ecapa_aam_amsupcon_caa_mgda', [1], True, 'ablation_contrastive.md')
    >>> os.path.basename(a.runs_root), os.path.basename(a.data_folder)
    ('C64_crop2_e6_P16K2_spk40-10-20x10_sp0.4_snr5-25', 'SynthEmo_s10_sp0.4_snr5-25')
    >>> parse_args(["--suite", "emotion", "--jobs", "0"])  # argparse names the option on stderr
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", required=True, choices=sorted(SUITES))
    p.add_argument("--rows", nargs="+", default=None,
                   help="rows (hparams names, or ROW:key=value,... variants); default: the suite's rows")
    p.add_argument("--variants", nargs="+", default=[], metavar="ROW:key=value,...",
                   help="extra rows with recipe overrides, reported in the valid-split diagnostics only")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--channels", type=int, default=DEFAULTS["channels"], help="ECAPA-TDNN width C")
    p.add_argument("--crop", type=float, default=DEFAULTS["crop"], help="training crop, seconds")
    p.add_argument("--speakers-per-batch", type=int, default=DEFAULTS["speakers_per_batch"], help="P")
    p.add_argument("--utterances-per-speaker", type=int, default=DEFAULTS["utterances_per_speaker"],
                   help="K; a batch holds P x K ORIGINAL utterances (2 P K encoder inputs with CopyPaste)")
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"], help="training speakers")
    p.add_argument("--n-valid", type=int, default=DEFAULTS["n_valid"], help="validation speakers")
    p.add_argument("--n-eval", type=int, default=DEFAULTS["n_eval"], help="evaluation speakers")
    p.add_argument("--n-sentences", type=int, default=DEFAULTS["n_sentences"], help="sentences per emotion")
    p.add_argument("--speaker-spread", type=float, default=DEFAULTS["speaker_spread"])
    p.add_argument("--snr-db", type=float, nargs=2, default=list(DEFAULTS["snr_db"]), metavar=("LOW", "HIGH"))
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"],
                   help="OMP_NUM_THREADS of each run (1: robust on a shared machine)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once (default 1; more skews the wall times in the time table, e.g. "
                        "for variants, whose times are not reported)")
    p.add_argument("--extra", default="", help="further recipe overrides for every run, e.g. '--num_workers 2'")
    p.add_argument("--data-folder", default=None, help="default: data/SynthEmo_s<n>_sp<spread>_snr<lo>-<hi>")
    p.add_argument("--runs-root", default=None, help="default: results/ablation/<settings>")
    p.add_argument("--out", default=None, help="the report; default: results/ablation_<suite>.md")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from finished runs")
    p.add_argument("--background", action="store_true",
                   help="detach: run this command in the background, log to <runs-root>/ablation_<suite>.log")
    args = p.parse_args(argv)
    args.argv = argv
    suite = SUITES[args.suite]
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        args.rows = [parse_row(s) for s in [*(args.rows or suite.rows), *args.variants]]
    except ValueError as err:
        p.error(str(err))
    unknown = [r.hparams for r in args.rows if not os.path.isfile(hparams_path(r.hparams))]
    if unknown:
        p.error(f"no hparams file for row(s) {unknown} in recipes/SynthEmo/hparams")
    lo, hi = args.snr_db
    if args.data_folder is None:
        args.data_folder = os.path.join(
            ROOT, "data", f"SynthEmo_s{args.n_sentences}_sp{args.speaker_spread:g}_snr{lo:g}-{hi:g}")
    if args.runs_root is None:
        args.runs_root = os.path.join(ROOT, "results", "ablation", settings_tag(args))
    if args.out is None:
        args.out = os.path.join(ROOT, "results", f"ablation_{args.suite}.md")
    for key in ("data_folder", "runs_root", "out"):
        setattr(args, key, os.path.abspath(getattr(args, key)))
    return args


def settings_tag(args):
    """The folder name of a set of run settings (every setting that changes a run's result).

    Example
    -------
    >>> a = argparse.Namespace(channels=64, crop=2.0, epochs=6, speakers_per_batch=16, utterances_per_speaker=2,
    ...     n_train=40, n_valid=10, n_eval=20, n_sentences=10, speaker_spread=0.4, snr_db=[5.0, 25.0], extra="")
    >>> settings_tag(a)
    'C64_crop2_e6_P16K2_spk40-10-20x10_sp0.4_snr5-25'
    """
    lo, hi = args.snr_db
    tag = (f"C{args.channels}_crop{args.crop:g}_e{args.epochs}_P{args.speakers_per_batch}"
           f"K{args.utterances_per_speaker}_spk{args.n_train}-{args.n_valid}-{args.n_eval}x{args.n_sentences}"
           f"_sp{args.speaker_spread:g}_snr{lo:g}-{hi:g}")
    if args.extra.strip():
        tag += "_x" + hashlib.sha1(" ".join(shlex.split(args.extra)).encode()).hexdigest()[:8]
    return tag


def hparams_path(row):
    """The hparams file of a row.

    Example
    -------
    >>> os.path.basename(hparams_path("ecapa_aam"))
    'ecapa_aam.yaml'
    """
    return os.path.join(ROOT, "recipes", "SynthEmo", "hparams", f"{row}.yaml")


def prepare_command(args):
    """The data-preparation command (corpus + manifests shared by every run of ``runs_root``)."""
    return [
        sys.executable, "-m", "data_prep.synthemo", args.data_folder, os.path.join(args.runs_root, "manifests"),
        "--n-train", str(args.n_train), "--n-valid", str(args.n_valid), "--n-eval", str(args.n_eval),
        "--n-sentences", str(args.n_sentences), "--speaker-spread", f"{args.speaker_spread:g}",
        "--snr-db", *(f"{v:g}" for v in args.snr_db), "--no-progress", "--quiet",
    ]


def run_command(args, row, seed):
    """The recipe command of one (row, seed); a variant's overrides replace the common ones.

    Example
    -------
    >>> a = parse_args(["--suite", "contrastive", "--seeds", "7"])
    >>> cmd = run_command(a, parse_row("ecapa_aam:speakers_per_batch=8"), 7)
    >>> cmd[cmd.index("--seed") + 1], cmd[cmd.index("--speakers_per_batch") + 1], cmd[cmd.index("--snr_db") + 1]
    ('7', '8', '[5, 25]')
    >>> cmd.count("--speakers_per_batch"), cmd[cmd.index("--output_folder") + 1].endswith("=8/seed7")
    (1, True)
    """
    lo, hi = args.snr_db
    overrides = {
        "seed": seed,
        "data_folder": args.data_folder,
        "output_root": args.runs_root,
        "n_train_speakers": args.n_train,
        "n_valid_speakers": args.n_valid,
        "n_eval_speakers": args.n_eval,
        "n_sentences": args.n_sentences,
        "speaker_spread": f"{args.speaker_spread:g}",
        "snr_db": f"[{lo:g}, {hi:g}]",
        "number_of_epochs": args.epochs,
        "channels": args.channels,
        "crop_seconds": args.crop,
        "speakers_per_batch": args.speakers_per_batch,
        "utterances_per_speaker": args.utterances_per_speaker,
    }
    if row.is_variant:
        overrides.update(row.overrides)
        overrides["output_folder"] = run_folder(args, row, seed)
    cmd = [sys.executable, os.path.join(ROOT, "recipes", "SynthEmo", "train.py"), hparams_path(row.hparams)]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    return cmd + shlex.split(args.extra)


def run_folder(args, row, seed):
    """The output folder of one run (``<runs_root>/<row name>/seed<seed>``, the recipe's layout)."""
    return os.path.join(args.runs_root, row.name, f"seed{seed}")


def shown_command(args):
    """The command that trains (when needed) and writes this report, as a user types it.

    Example
    -------
    >>> shown_command(parse_args(["--suite", "emotion", "--report-only"]))
    '.venv/bin/python bench/ablation.py --suite emotion  (make ablation-emotion)'
    """
    argv = [a for a in args.argv if a not in ("--report-only", "--dry-run", "--background")]
    text = ".venv/bin/python bench/ablation.py " + shlex.join(argv)
    if argv == ["--suite", args.suite]:
        text += f"  (make ablation-{args.suite})"
    return text


# ---------------------------------------------------------------------------- running
@contextlib.contextmanager
def _locked(path, what=None):
    """An exclusive ``flock`` on ``path``, waiting (with a message when ``what`` is given) while another holds it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if what:
                print(f"[{time.strftime('%H:%M:%S')}] waiting: {what}", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_records(args):
    """The run records (``runs.json``: wall and CPU seconds, exit status, log) of ``runs_root``."""
    path = os.path.join(args.runs_root, "runs.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _update_records(args, key, record, only_if_absent=False):
    path = os.path.join(args.runs_root, "runs.json")
    with _locked(path + ".lock"):
        records = load_records(args)
        if only_if_absent and key in records:
            return
        records[key] = record
        with open(path + ".tmp", "w") as f:
            json.dump(records, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)


def _run(args, key, cmd, env):
    log = os.path.join(args.runs_root, "logs", key.replace("/", "-") + ".log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {key}: {shlex.join(cmd)}", flush=True)
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
        # wait4: this child's own CPU (and its waited-for workers'), exact also while other runs go on
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
    wall, cpu = time.time() - start, usage.ru_utime + usage.ru_stime
    print(f"[{time.strftime('%H:%M:%S')}] {key}: exit {rc} after {wall:.0f} s (log: {log})", flush=True)
    return {
        "returncode": rc, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "jobs": args.jobs,
        "load_average": round(os.getloadavg()[0], 2), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "log": os.path.relpath(log, ROOT) if log.startswith(ROOT + os.sep) else log,
    }


def metrics_path(args, row, seed):
    """The ``metrics.json`` a finished run leaves."""
    return os.path.join(run_folder(args, row, seed), "report", "metrics.json")


def execute(args):
    """Prepare the corpus, then train every (row, seed) without a ``metrics.json``, ``--jobs`` at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ROOT}
    jobs = [(row, seed) for row in args.rows for seed in args.seeds]
    if args.dry_run:
        print(f"OMP_NUM_THREADS={args.threads} " + shlex.join(prepare_command(args)))
        for row, seed in jobs:
            state = "done, skipped" if os.path.isfile(metrics_path(args, row, seed)) else "to run"
            print(f"# {row.name}/seed{seed}: {state}\nOMP_NUM_THREADS={args.threads} "
                  + shlex.join(run_command(args, row, seed)))
        return
    if all(os.path.isfile(metrics_path(args, r, s)) for r, s in jobs):
        print("every run is finished; writing the report", flush=True)
        return
    # One training process per runs folder at a time: a second suite started meanwhile (e.g. both in the
    # background) queues here instead of halving the cores, then skips the runs the first one finished.
    with _locked(os.path.join(args.runs_root, "train.lock"), "another ablation is training in this folder"):
        record = _run(args, "prepare", prepare_command(args), env)
        if record["returncode"] != 0:
            raise SystemExit(f"data preparation failed; see {record['log']}")
        _update_records(args, "prepare", record, only_if_absent=True)  # the first one did the work
        todo = []
        for row, seed in jobs:
            key = f"{row.name}/seed{seed}"
            if os.path.isfile(metrics_path(args, row, seed)):
                print(f"[{time.strftime('%H:%M:%S')}] {key}: finished before, skipped", flush=True)
            else:
                todo.append((key, row, seed))

        def one(item):
            key, row, seed = item
            record = _run(args, key, run_command(args, row, seed), env)
            _update_records(args, key, record)
            return key if record["returncode"] != 0 else None

        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            failed = [key for key in pool.map(one, todo) if key]
    if failed:
        print(f"failed runs (see their logs; run the same command again to resume): {', '.join(failed)}")


def background(args):
    """Start this command again, detached, logging to ``<runs_root>/ablation_<suite>.log``; returns its pid."""
    os.makedirs(args.runs_root, exist_ok=True)
    log = os.path.join(args.runs_root, f"ablation_{args.suite}.log")
    argv = [a for a in args.argv if a != "--background"]
    with open(log, "a") as f:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv], cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"started in the background: pid {proc.pid}, log {log}; report: {args.out}")
    return proc.pid


# ---------------------------------------------------------------------------- collecting
_LOG_ITEM = re.compile(r"\b(train|valid|test) ([A-Za-z_]\w*): ([-+]?(?:[0-9.]+(?:[eE][-+]?\d+)?|nan|inf))")


def read_train_log(path):
    """Per-epoch statistics of a SpeechBrain ``train_log.txt``: ``[{"epoch", "train", "valid"}, ...]``.

    A repeated epoch (a run resumed after its log line but before its checkpoint) keeps its last line.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "log.txt")
    >>> _ = open(p, "w").write(
    ...     "epoch: 1, lr: 2.00e-03 - train loss: 6.25, train alpha: 3.17e-01, train seconds: 23.00, "
    ...     "train step_seconds: 20.1, train loader_wait_seconds: 1.00e-01 - valid EER: 13.91, valid seconds: 3.70\\n"
    ...     "epoch: 2, lr: 1.00e-03 - train seconds: 1.90e+01 - valid EER: 9.5\\n")
    >>> log = read_train_log(p)
    >>> log[0]["train"]["alpha"], log[0]["train"]["loader_wait_seconds"], log[1]["epoch"], log[1]["valid"]["EER"]
    (0.317, 0.1, 2, 9.5)
    """
    if not os.path.isfile(path):
        return []
    epochs = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*epoch: (\d+)", line)
            if not m:
                continue
            entry = {"epoch": int(m.group(1)), "train": {}, "valid": {}, "test": {}}
            for stage, key, value in _LOG_ITEM.findall(line):
                entry[stage][key] = float(value)
            epochs[entry["epoch"]] = entry
    return [epochs[e] for e in sorted(epochs)]


def collect(args):
    """Metrics, train log and run record of every (row, seed): ``{(row name, seed): entry}``."""
    from speechbrain_ext.report import read_metrics  # torch: imported only when a report is written

    records = load_records(args)
    results = {}
    for row in args.rows:
        for seed in args.seeds:
            folder = run_folder(args, row, seed)
            path = metrics_path(args, row, seed)
            metrics = read_metrics(path) if os.path.isfile(path) else None
            results[(row.name, seed)] = {
                "folder": folder, "metrics": metrics,
                "log": read_train_log(os.path.join(folder, "train_log.txt")),
                "record": records.get(f"{row.name}/seed{seed}", {}),
            }
    return results


# ---------------------------------------------------------------------------- statistics
def mean_std(values):
    """``(mean, sample std)`` of the finite values; std 0 for one value, ``(nan, nan)`` for none.

    Example
    -------
    >>> mean_std([1.0, 2.0, 3.0, None, float("nan")])
    (2.0, 1.0)
    """
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fmt(mean, std=None, digits=2):
    """``mean ± std`` (``n/a`` for nan; the mean alone without std).

    Example
    -------
    >>> fmt(12.345, 0.5), fmt(float("nan"), 0.0), fmt(3.14159, digits=3)
    ('12.35 ± 0.50', 'n/a', '3.142')
    """
    if mean is None or math.isnan(mean):
        return "n/a"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


class Context:
    """What a report section needs: the options, the suite, the collected runs and helpers."""

    def __init__(self, args, suite, results):
        self.args, self.suite, self.results = args, suite, results
        self.seeds = list(args.seeds)
        finished = [r for r in args.rows if any(results[(r.name, s)]["metrics"] for s in self.seeds)]
        self.rows = [r for r in finished if not r.is_variant]
        self.variants = [r for r in args.rows if r.is_variant]
        self.reference = next((r for r in self.rows if r.hparams == suite.reference), None)
        self.paper = next((r for r in self.rows if r.hparams == suite.paper_row), None)
        self.figure_dir = os.path.dirname(args.out)
        self.stem = os.path.splitext(os.path.basename(args.out))[0]

    def entry(self, row, seed):
        """The collected entry of one run."""
        return self.results[(row.name, seed)]

    def metric(self, row, condition, key="eer", scale=100.0, seeds=None):
        """Per-seed values of an evaluation metric (finished runs only)."""
        out = []
        for seed in self.seeds if seeds is None else seeds:
            m = self.entry(row, seed)["metrics"]
            if m and condition in m["conditions"]:
                out.append(scale * m["conditions"][condition][key])
        return out

    def paired(self, row, condition):
        """``{seed: value}`` of an evaluation EER (%), for differences paired by seed."""
        return {s: v[0] for s in self.seeds if (v := self.metric(row, condition, seeds=[s]))}

    def log_values(self, row, stage, key, last_only=False):
        """A logged statistic of every epoch (or the last one) of every seed."""
        out = []
        for seed in self.seeds:
            log = self.entry(row, seed)["log"]
            for e in log[-1:] if last_only else log:
                if key in e[stage]:
                    out.append(e[stage][key])
        return out

    def label(self, row):
        """The row's label."""
        return label(self.suite, row)

    def conditions(self):
        """The evaluation trial conditions present, fixed ones first, then ``test_<emotion>``."""
        names = set()
        for row in self.rows:
            for seed in self.seeds:
                m = self.entry(row, seed)["metrics"]
                if m:
                    names |= set(m["conditions"])
        emotions = sorted(n for n in names if n.startswith("test_"))
        return [c for c in FIXED_CONDITIONS if c in names] + emotions


# ---------------------------------------------------------------------------- the report
def write_report(args, results):
    """Write the suite's markdown report (and its figures); returns the text."""
    suite = SUITES[args.suite]
    ctx = Context(args, suite, results)
    lines = [f"# {suite.title}", "", f"{suite.about} Generated by `bench/ablation.py --suite {suite.name}`.", ""]
    lines += _settings_lines(ctx)
    missing = [f"{r.name}/seed{s}" for r in args.rows for s in ctx.seeds if not results[(r.name, s)]["metrics"]]
    if missing:
        lines += [f"**Missing runs** (failed, running or not run yet): {', '.join(missing)}.", ""]
    conditions = ctx.conditions()
    for title, key, scale, digits in (("EER (%)", "eer", 100.0, 2), ("minDCF (p=0.01)", "min_dcf", 1.0, 3)):
        lines += [f"## {title} on the evaluation trials, mean ± std over seeds", ""]
        if not ctx.rows:
            lines += ["No finished run.", ""]
            continue
        lines.append("| system | " + " | ".join(conditions) + " |")
        lines.append("|:---|" + "---:|" * len(conditions))
        for row in ctx.rows:
            cells = [fmt(*mean_std(ctx.metric(row, c, key, scale)), digits) for c in conditions]
            lines.append(f"| {ctx.label(row)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _verdict_section(ctx)
    for section in suite.sections:
        lines += section(ctx)
    lines += _time_section(ctx)
    lines += _valid_section(ctx)
    for section in suite.valid_sections:
        lines += section(ctx)
    text = "\n".join(lines).rstrip() + "\n"
    os.makedirs(ctx.figure_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    return text


def _is_default(args):
    values = {k: getattr(args, k) for k in DEFAULTS}
    values["snr_db"] = tuple(values["snr_db"])
    return values == DEFAULTS and not args.extra.strip()


def _settings_lines(ctx):
    a = ctx.args
    lo, hi = a.snr_db
    n_train_utts = a.n_train * N_EMOTIONS * a.n_sentences
    base_yaml = hparams_path("ecapa_aam")
    lr, lr_final = _yaml_scalar(base_yaml, "lr"), _yaml_scalar(base_yaml, "lr_final")
    settings = (
        f"**Settings.** ECAPA-TDNN width C={a.channels} (channels [C, C, C, C, 3C], 192-d embeddings), "
        f"training crop {a.crop:g} s, {a.epochs} epoch(s) (Adam, learning rate {lr} decaying linearly to "
        f"{lr_final}), "
        f"batches of P={a.speakers_per_batch} speakers x K={a.utterances_per_speaker} utterances, "
        f"seeds {', '.join(map(str, ctx.seeds))}; SynthEmo {a.n_train} training / {a.n_valid} validation / "
        f"{a.n_eval} evaluation speakers x {N_EMOTIONS} emotions x {a.n_sentences} sentences "
        f"({n_train_utts} training utterances), speaker spread {a.speaker_spread:g}, SNR {lo:g}-{hi:g} dB; "
        f"{ctx.suite.settings_note(ctx)}"
        f"OMP_NUM_THREADS={a.threads} per run on {platform.machine()} with {os.cpu_count()} visible core(s). "
        "Checkpoint by validation EER (`all` trials of the validation speakers); cosine scoring, no score "
        "normalisation."
        + (f" Extra recipe overrides: `{a.extra}`." if a.extra.strip() else "")
    )
    lines = [settings, "", f"**Command.** `{shown_command(a)}` (runs in `{_rel(a.runs_root)}`; finished runs "
             "are skipped, so the same command resumes an interrupted ablation and rebuilds this report).", ""]
    lines += [f"**Budget.** {ctx.suite.budget_note}" if _is_default(a)
              else "**Budget.** Non-default settings: the budget estimate does not apply.", ""]
    records = [ctx.entry(r, s)["record"] for r in ctx.rows for s in ctx.seeds]
    walls = [r["wall_seconds"] for r in records if r.get("returncode") == 0]
    cpus = [r["cpu_seconds"] for r in records if r.get("returncode") == 0]
    if walls:
        prep = load_records(a).get("prepare", {})
        prep_text = f" plus {prep['wall_seconds']:.0f} s of corpus preparation" if prep else ""
        lines.append(
            f"Measured: the {len(walls)} run(s) of this report took {sum(walls) / 60:.1f} min wall clock "
            f"({sum(cpus) / 60:.1f} min CPU){prep_text}, load average when each ended "
            f"{fmt(*mean_std([r.get('load_average') for r in records if r.get('returncode') == 0]), 1)}"
            + (" (some trained alongside other runs: `--jobs` > 1)." if any(r.get("jobs", 1) > 1 for r in records)
               else ".")
        )
        variant_records = [ctx.entry(r, s)["record"] for r in ctx.variants for s in ctx.seeds]
        done = [r for r in variant_records if r.get("returncode") == 0]
        if done:
            cpu_min = sum(r["cpu_seconds"] for r in done) / 60
            lines.append(
                f"The {len(done)} variant run(s) (valid-split diagnostics only) took {cpu_min:.1f} "
                f"min CPU (trained up to {max(r.get('jobs', 1) for r in done)} at a time)."
            )
    return lines + [""]


def _rel(path):
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def _verdict_section(ctx):
    ref, paper = ctx.reference, ctx.paper
    if ref is None or paper is None:
        return []
    lines = ["## Does the paper's system beat the baseline here?", ""]
    for condition in ctx.suite.verdict_conditions:
        base, sys_ = ctx.paired(ref, condition), ctx.paired(paper, condition)
        seeds = [s for s in ctx.seeds if s in base and s in sys_]
        if not seeds:
            continue
        diffs = [sys_[s] - base[s] for s in seeds]
        lower = sum(d < 0 for d in diffs)
        d_mean, d_std = mean_std(diffs)
        if d_mean < 0 and lower == len(seeds):
            verdict = "**yes**: lower EER than the baseline in every seed" + (
                " (a single seed: no spread to judge by)" if len(seeds) == 1 else "")
        elif d_mean < 0:
            verdict = (f"**not clearly**: lower mean EER, but lower in only {lower} of {len(seeds)} seeds "
                       "(within the seed spread)")
        else:
            verdict = f"**no**: its EER is not lower than the baseline's (lower in {lower} of {len(seeds)} seeds)"
        lines.append(
            f"- `{condition}` evaluation trials: {ctx.label(paper)} {fmt(*mean_std(list(sys_.values())))} % vs "
            f"{ctx.label(ref)} {fmt(*mean_std(list(base.values())))} % EER; per-seed difference "
            f"{fmt(d_mean, d_std)} points — {verdict}."
        )
    lines += [
        "",
        "Measured on this small synthetic corpus with short training: only the sign and size relative to the "
        "seed spread mean anything. The causes are examined on the validation speakers only (valid-split "
        "diagnostics below); nothing here was tuned on the evaluation trials.",
        "",
    ]
    return lines


def _time_section(ctx):
    lines = [
        "## Training time and data-loader wait",
        "",
        "| system | train s / epoch | vs baseline | step s / epoch | loader wait s / epoch | loader wait share "
        f"(target <= {LOADER_WAIT_TARGET:g} %) | wall s / run | CPU s / run |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    per_row = {r.name: mean_std(ctx.log_values(r, "train", "seconds")) for r in ctx.rows}
    base = per_row.get(ctx.reference.name, (float("nan"),))[0] if ctx.reference else float("nan")
    for row in ctx.rows:
        mean, std = per_row[row.name]
        ratio = f"{mean / base:.2f} x" if base and not math.isnan(base) and not math.isnan(mean) else "—"
        steps, waits = ctx.log_values(row, "train", "step_seconds"), ctx.log_values(row, "train", "loader_wait_seconds")
        share = "n/a"
        if steps and waits and sum(steps) + sum(waits) > 0:
            pct = 100 * sum(waits) / (sum(waits) + sum(steps))
            share = f"{pct:.1f} % ({'met' if pct <= LOADER_WAIT_TARGET else 'not met'})"
        records = [ctx.entry(row, s)["record"] for s in ctx.seeds]
        lines.append(
            f"| {ctx.label(row)} | {fmt(mean, std, 1)} | {ratio} | {fmt(*mean_std(steps), 1)} "
            f"| {fmt(*mean_std(waits), 1)} | {share} | {fmt(*mean_std([r.get('wall_seconds') for r in records]), 0)} "
            f"| {fmt(*mean_std([r.get('cpu_seconds') for r in records]), 0)} |"
        )
    lines += [
        "",
        "Per epoch, mean ± std over epochs and seeds: `train s` is the training stage's wall time; `step s` the "
        "time inside the training steps; `loader wait s` the time between the end of one step and the start of the "
        "next (the step waiting for its batch; the first batch of an epoch is not counted). Loader wait share = "
        "wait / (wait + step), summed over every epoch and seed. Wall and CPU seconds are per run (train + "
        "validation + evaluation; CPU = user + system of the run and its DataLoader worker). Wall-clock on a "
        "possibly shared machine; CPU seconds depend less on other load.",
    ]
    if ctx.suite.time_note:
        lines += ["", ctx.suite.time_note]
    return lines + [""]


def _valid_section(ctx):
    rows = ctx.rows + [r for r in ctx.variants if any(ctx.entry(r, s)["log"] for s in ctx.seeds)]
    lines = ["## Valid-split diagnostics", ""]
    if not rows:
        return lines + ["No finished run.", ""]
    lines += [
        f"Validation speakers only ({ctx.args.n_valid} speakers, `all` trials): the split that selects the "
        "checkpoint and the only one used to look into why a row does or does not help. Selected = the checkpoint "
        "kept (lowest validation EER; `valid_EER` of metrics.json); last = the final epoch.",
        "",
        "| system | selected valid EER (%) | vs baseline, paired by seed (points) | selected epoch "
        "| best epoch = last epoch | last-epoch valid EER (%) | last-epoch valid minDCF |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    base = _selected_valid(ctx, ctx.reference) if ctx.reference else {}
    for row in rows:
        epochs, at_end, n = [], 0, 0
        for seed in ctx.seeds:
            entry = ctx.entry(row, seed)
            valid = [(e["valid"]["EER"], e["epoch"]) for e in entry["log"] if "EER" in e["valid"]]
            if entry["metrics"] and "epoch" in entry["metrics"]:
                epochs.append(entry["metrics"]["epoch"])
            elif valid:
                epochs.append(min(valid)[1])
            if valid:
                n += 1
                at_end += min(valid)[1] == valid[-1][1]
        own = _selected_valid(ctx, row)
        diffs = [own[s] - base[s] for s in own if s in base]
        delta = "—" if row is ctx.reference or not diffs else (
            f"{fmt(*mean_std(diffs))} (lower in {sum(d < 0 for d in diffs)} of {len(diffs)})")
        lines.append(
            f"| {ctx.label(row)} | {fmt(*mean_std(list(own.values())))} | {delta} "
            f"| {', '.join(str(e) for e in epochs) or 'n/a'} "
            f"| {at_end} of {n} seeds | {fmt(*mean_std(ctx.log_values(row, 'valid', 'EER', last_only=True)))} "
            f"| {fmt(*mean_std(ctx.log_values(row, 'valid', 'minDCF', last_only=True)), digits=3)} |"
        )
    n_epochs = max((len(ctx.entry(r, s)["log"]) for r in rows for s in ctx.seeds), default=0)
    if n_epochs:
        lines += [
            "",
            "Validation EER (%) per epoch, mean over seeds (still falling at the last epoch = undertrained):",
            "",
            "| system | " + " | ".join(f"ep {e}" for e in range(1, n_epochs + 1)) + " |",
            "|:---|" + "---:|" * n_epochs,
        ]
        for row in rows:
            cells = []
            for epoch in range(1, n_epochs + 1):
                values = [e["valid"].get("EER") for s in ctx.seeds for e in ctx.entry(row, s)["log"]
                          if e["epoch"] == epoch]
                cells.append(fmt(mean_std(values)[0]))
            lines.append(f"| {ctx.label(row)} | " + " | ".join(cells) + " |")
    if ctx.variants:
        lines += [
            "",
            "Rows in brackets are variants (recipe overrides) trained to look into a cause; their evaluation "
            "results are deliberately not reported, so that no setting is chosen on the evaluation trials.",
        ]
    return lines + [""]


def _selected_valid(ctx, row):
    """``{seed: validation EER (%) of the selected checkpoint}`` (metrics.json, else the train log's best)."""
    out = {}
    for seed in ctx.seeds:
        entry = ctx.entry(row, seed)
        valid = [e["valid"]["EER"] for e in entry["log"] if "EER" in e["valid"]]
        if entry["metrics"] and "valid_EER" in entry["metrics"]:
            out[seed] = entry["metrics"]["valid_EER"]
        elif valid:
            out[seed] = min(valid)
    return out


# ---------------------------------------------------------------------------- suite sections
def _yaml_scalar(path, key):
    """A top-level plain scalar of a YAML file, as text (``None`` when absent).

    Example
    -------
    >>> _yaml_scalar(os.path.join(ROOT, "recipes", "shared_hparams", "contrastive.yaml"), "supcon_temperature")
    '0.07'
    """
    try:
        with open(path) as f:
            m = re.search(rf"^{re.escape(key)}:\s*([^\s#]+)", f.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


def _contrastive_settings(ctx):
    a = ctx.args
    shared = os.path.join(ROOT, "recipes", "shared_hparams", "contrastive.yaml")
    tau, margin = _yaml_scalar(shared, "supcon_temperature"), _yaml_scalar(shared, "supcon_margin")
    p, k = a.speakers_per_batch, a.utterances_per_speaker
    return (
        f"contrastive term on the N={p * k} embeddings of each batch: every anchor has K-1={k - 1} positive(s) and "
        f"(P-1)K={(p - 1) * k} negatives; temperature τ={tau}, angular margin m={margin} on the positives "
        "(m=0 in the SupCon rows; `recipes/shared_hparams/contrastive.yaml`), loss weights AAM 1 + contrastive 1 "
        "(SupCon alone: AAM 0) except under MGDA; "
    )


def _balancer_section(ctx):
    lines = [
        "## Loss balancing and class-aware attention (training log)",
        "",
        "| system | MGDA α, mean | α, range over steps | α, last epoch | CAA weight on negatives, std "
        "| anchors with a positive | last-epoch AAM loss | last-epoch contrastive loss |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ctx.rows:
        alpha = ctx.log_values(row, "train", "alpha")
        lows, highs = ctx.log_values(row, "train", "alpha_min"), ctx.log_values(row, "train", "alpha_max")
        span = f"{min(lows):.3f} – {max(highs):.3f}" if lows and highs else "—"
        caa = ctx.log_values(row, "train", "caa_weight_std")
        pos = ctx.log_values(row, "train", "anchors_with_positives")
        lines.append(
            f"| {ctx.label(row)} | {fmt(*mean_std(alpha), 3) if alpha else '— (fixed weights)'} | {span} "
            f"| {fmt(*mean_std(ctx.log_values(row, 'train', 'alpha', last_only=True)), 3) if alpha else '—'} "
            f"| {fmt(*mean_std(caa), 3) if caa else '—'} | {fmt(*mean_std(pos), 3) if pos else '—'} "
            f"| {fmt(*mean_std(ctx.log_values(row, 'train', 'aam', last_only=True)))} "
            f"| {fmt(*mean_std(ctx.log_values(row, 'train', 'contrastive', last_only=True)))} |"
        )
    lines += [
        "",
        "α multiplies the AAM-softmax loss and 1 − α the contrastive term (MGDA-UB, min-norm combination of the "
        "two gradients with respect to the batch embeddings); α near 0 means the contrastive gradient dominates "
        "the update, near 1 the AAM one. Fixed-weight rows add both losses with weight 1. The CAA column is the "
        "standard deviation of the attention weights on negative pairs within a step; with `normalize: True` (the "
        "recipes' setting) each anchor's weights average 1, so 0 would mean CAA changes nothing. "
        "Means over epochs (each the mean over its "
        "steps) and seeds; losses are the last epoch's means, mean ± std over seeds.",
        "",
    ]
    return lines


def _relative_section(ctx):
    focus = "neutral_emotional"
    lines = [
        f"## Relative EER change vs the baseline, `{focus}` trials (neutral enrolment, emotional test)",
        "",
        "Relative change of the seed-mean EER, and the mean ± std of the per-seed (paired by seed) changes.",
        "",
        "| system | EER (%) | relative change of the mean | per-seed change | paper's reported change |",
        "|:---|---:|---:|---:|---:|",
    ]
    base = ctx.paired(ctx.reference, focus) if ctx.reference else {}
    base_mean = mean_std(list(base.values()))[0]
    for row in ctx.rows:
        vals = ctx.paired(row, focus)
        mean, std = mean_std(list(vals.values()))
        if row is ctx.reference or math.isnan(base_mean) or base_mean == 0:
            rel, paired = "—", "—"
        else:
            rel = f"{100 * (mean - base_mean) / base_mean:+.2f} %"
            changes = [100 * (vals[s] - base[s]) / base[s] for s in vals if s in base and base[s] > 0]
            paired = fmt(*mean_std(changes)) + " %" if changes else "n/a"
        paper = f"{PAPER_RELATIVE_EER:+.2f} % (paper, its own data)" if row is ctx.paper else ""
        lines.append(f"| {ctx.label(row)} | {fmt(mean, std)} | {rel} | {paired} | {paper} |")
    lines += [
        "",
        f"The paper's {PAPER_RELATIVE_EER:+.2f} % is Tian, Hu & Xu (2025)'s reported relative EER reduction of their "
        "full system over their baseline on their emotional test set (VoxCeleb pre-training, emotional "
        "fine-tuning); it is quoted for orientation only and was not measured here.",
        "",
    ]
    return lines


PROBE_SELECTIONS = ("highest", "random", "lowest")
NOTES_DIR = os.path.join(ROOT, "bench", "ablation_notes")


def _variant_section(ctx):
    """Each variant against its own row and against the baseline trained with the same overrides."""
    variants = [v for v in ctx.variants if _selected_valid(ctx, v)]
    if not variants:
        return []
    lines = [
        "## Variants against their row (valid split)",
        "",
        "Selected validation EER (%), `all` trials; differences in points, mean ± std of the per-seed "
        "differences. The matched baseline is the baseline trained with the same overrides when that variant "
        "exists (e.g. the same crop), else the baseline.",
        "",
        "| variant | valid EER (%) | vs its row | vs matched baseline |",
        "|:---|---:|---:|---:|",
    ]
    by_name = {r.name: r for r in [*ctx.rows, *ctx.variants]}
    for variant in variants:
        own = _selected_valid(ctx, variant)
        row = by_name.get(variant.hparams)
        matched = by_name.get(dataclasses.replace(variant, hparams=ctx.suite.reference).name)
        if matched is None or not _selected_valid(ctx, matched):
            matched = ctx.reference
        cells = []
        for other in (row, matched):
            ref = _selected_valid(ctx, other) if other is not None and other is not variant else {}
            diffs = [own[s] - ref[s] for s in own if s in ref]
            cells.append(f"{fmt(*mean_std(diffs))} (lower in {sum(d < 0 for d in diffs)} of {len(diffs)})"
                         if diffs else "—")
        matched_label = "" if matched in (ctx.reference, variant) else f" ({ctx.label(matched)})"
        lines.append(f"| {ctx.label(variant)} | {fmt(*mean_std(list(own.values())))} | {cells[0]} "
                     f"| {cells[1]}{matched_label} |")
    return lines + [""]


def _notes_section(ctx):
    """``bench/ablation_notes/<suite>.md`` verbatim: the reading of the tables, written by hand."""
    path = os.path.join(NOTES_DIR, f"{ctx.suite.name}.md")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        text = f.read().strip()
    return ["## Findings", "", f"Written by hand from the tables of this report (`{_rel(path)}`; rerunning "
            "the ablation regenerates every table, not this text).", "", text, ""]


def _probe_runs(args):
    """``bench/em_probe.py`` over every finished run (cached per run), ``--jobs`` processes at a time."""
    folders = [run_folder(args, r, seed) for r in args.rows for seed in args.seeds
               if os.path.isfile(metrics_path(args, r, seed))]
    if not folders:
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ROOT}
    chunks = [folders[i::args.jobs] for i in range(args.jobs) if folders[i::args.jobs]]
    print(f"[{time.strftime('%H:%M:%S')}] test-time masking probe of {len(folders)} run(s) (valid split)", flush=True)

    def one(chunk):
        cmd = [sys.executable, os.path.join(ROOT, "bench", "em_probe.py"), *chunk, "--threads", str(args.threads)]
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        for proc in pool.map(one, chunks):
            if proc.returncode != 0:
                print(f"probe failed:\n{proc.stderr[-2000:]}", flush=True)


def _probe_results(ctx, row):
    """``{seed: em_probe.json}`` of a row's runs that have been probed."""
    out = {}
    for seed in ctx.seeds:
        path = os.path.join(ctx.entry(row, seed)["folder"], "report", "em_probe.json")
        if os.path.isfile(path):
            with open(path) as f:
                out[seed] = json.load(f)
    return out


def _probe_section(ctx):
    probed = {r.name: _probe_results(ctx, r) for r in [*ctx.rows, *ctx.variants]}
    rows = [r for r in [*ctx.rows, *ctx.variants] if probed[r.name]]
    lines = ["## Valid-split probe: which frames carry the speaker?", ""]
    if not rows:
        return lines + ["No probed run (`bench/em_probe.py` runs after training; not with `--report-only`).", ""]
    names = sorted({k for res in probed.values() for seed in res.values() for k in seed["results"] if k != "none"},
                   key=lambda k: (float(k.split("@")[1]), PROBE_SELECTIONS.index(k.split("@")[0])))
    lines += [
        "Each selected checkpoint embeds the VALIDATION utterances with a share rho of its frames hidden at test "
        "time by the same `EnergyEmotionMask` as training (mean fill after normalisation): the `highest`-energy "
        "frames (what EM hides in training), as many `random` frames, or the `lowest`-energy ones. Validation EER "
        "(%), `all` trials, mean ± std over seeds (`bench/em_probe.py`, run by this command after training):",
        "",
        "| system | no mask | " + " | ".join(f"{k.split('@')[0]} {k.split('@')[1]}" for k in names)
        + " | emotion shift | speaker separation | shift / separation |",
        "|:---|---:|" + "---:|" * len(names) + "---:|---:|---:|",
    ]
    for row in rows:
        res = [p["results"] for p in probed[row.name].values()]
        cells = [fmt(*mean_std([100 * r[k]["all"]["eer"] for r in res if k in r])) for k in ["none", *names]]
        for key in ("shift", "separation", "ratio"):
            values = [(p.get("emotion_shift") or {}).get(key) for p in probed[row.name].values()]
            cells.append(fmt(*mean_std(values), digits=3))
        lines.append(f"| {ctx.label(row)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Read across a row: `highest` far above `random` at the same rho means the highest-energy frames carry more "
        "than their share of the speaker information; for a row trained with EM, `no mask` above `highest` at its "
        "training rho means its input at test time (nothing hidden) differs from what it was trained on. The last "
        "three columns (no mask, validation speakers): emotion shift (mean 1 - cos between a speaker's emotional "
        "and neutral centroids), speaker separation (mean 1 - cos between two speakers' neutral centroids) and "
        "their ratio: lower is more emotion-invariant RELATIVE to how far apart speakers are.",
        "",
    ]
    return lines


def _figures_section(ctx):
    from speechbrain_ext import emotion_report  # matplotlib + torch: imported only for this suite

    lines = ["## Emotion gap", ""]
    systems = {ctx.label(r): [ctx.entry(r, s)["metrics"] for s in ctx.seeds if ctx.entry(r, s)["metrics"]]
               for r in ctx.rows}
    systems = {k: v for k, v in systems.items() if v}
    if not systems:
        return lines + ["No finished run.", ""]
    gap_png = os.path.join(ctx.figure_dir, f"{ctx.stem}_gap.png")
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
    for name, t in table.items():
        lines.append(f"| {name} | " + " | ".join(fmt(*t[e][:2]) if e in t else "n/a" for e in emotions) + " |")
    lines.append("")
    manifest = os.path.join(ctx.args.runs_root, "manifests", "eval.csv")
    labels = emotion_report.read_labels(manifest) if os.path.isfile(manifest) else None
    if labels is not None:
        lines += [
            "Emotion shift (mean over speakers and emotions of 1 − cos between a speaker's emotional and neutral "
            "embedding centroids on the evaluation set; lower is more emotion-invariant), mean ± std over seeds:",
            "",
            "| system | emotion shift |",
            "|:---|---:|",
        ]
        for row in ctx.rows:
            shifts = []
            for s in ctx.seeds:
                if ctx.entry(row, s)["metrics"]:
                    try:
                        ids, emb = emotion_report.load_eval_embeddings(ctx.entry(row, s)["folder"])
                    except FileNotFoundError:
                        continue
                    shifts.append(emotion_report.emotion_shift(ids, emb, labels))
            lines.append(f"| {ctx.label(row)} | {fmt(*mean_std(shifts), 4)} |")
        lines.append("")
    pair = [r for r in (ctx.reference, ctx.paper) if r is not None]
    if len(pair) < 2:
        pair = ctx.rows[:1] + ctx.rows[-1:] if len(ctx.rows) > 1 else ctx.rows
    seed = next((s for s in ctx.seeds if all(ctx.entry(r, s)["metrics"] for r in pair)), None)
    if labels is not None and seed is not None:
        proj_png = os.path.join(ctx.figure_dir, f"{ctx.stem}_projection.png")
        folders = {f"{ctx.label(r)}, seed {seed}": ctx.entry(r, seed)["folder"] for r in dict.fromkeys(pair)}
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


# ---------------------------------------------------------------------------- the suites
PAPER_RELATIVE_EER = -19.29  # Tian, Hu & Xu 2025: on THEIR emotional test set, their full system vs their baseline
BASELINE_LABEL = "baseline (ECAPA + AAM)"
_EMOTION_BUDGET = (
    "Chosen from one- and two-epoch recipe runs of the baseline and the paper's row at these settings "
    "(2026-11-22, x86_64, 2 shared cores, OMP_NUM_THREADS=1; on a corpus generated with the earlier difficulty "
    "defaults, speaker spread 1.0 and SNR 20-40 dB: same utterance count, so about the same cost). CPU seconds "
    "of a run (its DataLoader worker included) bound its wall time on an otherwise idle machine: baseline about "
    "6 s fixed + 22 s per epoch, a CopyPaste row about 13 s + 34 s per epoch, corpus generation about 55 s once. "
    "3 seeds x (baseline + 3 CopyPaste rows) x 6 epochs: about 3 x (141 + 3 x 217) + 55 = 2430 s, i.e. about "
    "41 minutes; the row with both papers' systems (added afterwards) measured about 200 s a run, so the five "
    "rows come to about 51 minutes, within 60 (less when the baseline runs already exist from the contrastive "
    "suite). While other jobs kept the load average at 4-6, wall times were about 2 x the CPU times, and 2 "
    "OpenMP threads were several times SLOWER than 1 (spinning threads waiting for a core), hence "
    "OMP_NUM_THREADS=1."
)
_CONTRASTIVE_BUDGET = (
    "Estimated, not measured at these exact settings (the measured totals follow once the runs exist): "
    "the same corpus, width, crop and epochs as the emotion ablation, whose baseline was measured at "
    "about 6 s + 22 s CPU per epoch (x86_64, 2 shared cores, OMP_NUM_THREADS=1). A contrastive row adds to the "
    "baseline step only the loss on P x K = 32 embeddings (AM-SupCon + CAA: about 2 ms forward + backward even "
    "at N=256, bench/README.md) and, for MGDA, two gradients with respect to the embeddings (no second encoder "
    "pass; -3.6 % to +5 % of a step in bench/README.md), so every row costs about a baseline run, ~140 s. "
    "6 rows x 3 seeds x ~140 s + 55 s of corpus generation ~ 2600 s, about 43 minutes; about 36 minutes when "
    "the baseline runs already exist from the emotion suite (same folders). This leaves about 1.4 x headroom "
    "within 60 minutes on idle cores; under a load average of 4-6 wall times were about 2 x CPU. Same settings "
    "as the emotion suite on purpose: the shared `ecapa_aam` runs are literally the same command and folder."
)

SUITES = {
    "contrastive": Suite(
        name="contrastive",
        title="Contrastive training with AM-SupCon, class-aware attention and MGDA: ablation on SynthEmo",
        about=("Rows of methods.md A (Li, Mak & Meng, ICASSP 2023), recipe files in `recipes/SynthEmo/hparams/`, "
               "contrastive part in `recipes/shared_hparams/contrastive.yaml` and `caa_mgda.yaml`."),
        rows=("ecapa_aam", "ecapa_supcon", "ecapa_aam_supcon", "ecapa_aam_amsupcon", "ecapa_aam_amsupcon_caa",
              "ecapa_aam_amsupcon_caa_mgda"),
        labels={
            "ecapa_aam": BASELINE_LABEL,
            "ecapa_supcon": "SupCon alone (no AAM)",
            "ecapa_aam_supcon": "AAM + SupCon",
            "ecapa_aam_amsupcon": "AAM + AM-SupCon",
            "ecapa_aam_amsupcon_caa": "AAM + AM-SupCon + CAA",
            "ecapa_aam_amsupcon_caa_mgda": "AAM + AM-SupCon + CAA + MGDA (paper)",
        },
        reference="ecapa_aam",
        paper_row="ecapa_aam_amsupcon_caa_mgda",
        verdict_conditions=("all", "same_emotion", "neutral_emotional"),
        budget_note=_CONTRASTIVE_BUDGET,
        settings_note=lambda ctx: _contrastive_settings(ctx),
        time_note=("A contrastive step encodes the same P x K inputs as the baseline; the contrastive loss on "
                   "P x K embeddings and MGDA's two embedding gradients are small next to the encoder."),
        sections=(_balancer_section,),
    ),
    "emotion": Suite(
        name="emotion",
        title="Emotion-invariant training: ablation on SynthEmo",
        about="Rows of methods.md B (Tian, Hu & Xu, 2025), recipe files in `recipes/SynthEmo/hparams/`.",
        rows=("ecapa_aam", "ecapa_aam_copypaste", "ecapa_aam_copypaste_cos", "ecapa_aam_copypaste_cos_em",
              "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em"),
        labels={
            "ecapa_aam": BASELINE_LABEL,
            "ecapa_aam_copypaste": "+ CopyPaste (AAM on x, x')",
            "ecapa_aam_copypaste_cos": "+ CopyPaste + L_cos",
            "ecapa_aam_copypaste_cos_em": "+ CopyPaste + L_cos + EM (paper)",
            # Both papers' systems together (our composition, not either paper's).
            "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em": "AM-SupCon + CAA + MGDA + CopyPaste + L_cos + EM",
        },
        reference="ecapa_aam",
        paper_row="ecapa_aam_copypaste_cos_em",
        verdict_conditions=("all", "neutral_emotional"),
        budget_note=_EMOTION_BUDGET,
        settings_note=lambda ctx: "with CopyPaste the encoder sees 2 P K inputs per batch (x and x'); ",
        time_note=("With CopyPaste each step encodes 2 x P x K inputs (x and x'), twice the baseline's; the "
                   "`vs baseline` column is what that costs per epoch here."),
        sections=(_relative_section, _figures_section),
        valid_sections=(_variant_section, _probe_section, _notes_section),
        post=_probe_runs,
    ),
}


def main(argv=None):
    """Run (or print) the ablation, then write the report."""
    args = parse_args(argv)
    if args.background and not (args.dry_run or args.report_only):
        background(args)
        return 0
    if not args.report_only:
        execute(args)
        if args.dry_run:
            return 0
        if SUITES[args.suite].post is not None:
            SUITES[args.suite].post(args)
    text = write_report(args, collect(args))
    print(text)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
