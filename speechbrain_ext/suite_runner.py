"""Run a suite (:mod:`speechbrain_ext.suite`): every (row, seed) through its recipe, then the report.

``python -m speechbrain_ext.suite SUITE.yaml [--jobs N] [--seeds ...] [--rows ...] [--variants ...]``

- Each run is the recipe in a subprocess (``OMP_NUM_THREADS=threads``), ``jobs`` at a
  time; its output goes to ``<runs>/logs/<row>-seed<seed>.log`` and its wall and CPU
  seconds (``os.wait4``: the run and its DataLoader workers) to ``<runs>/suite_runs.json``.
- Resumable: a run whose ``report/metrics.json`` exists is skipped; any other run is
  started again and the recipe resumes it from its last checkpoint. A finished run is
  reused only when it was trained with the same overrides and system file (recorded in
  ``<run>/suite_run.json``); otherwise the runner stops and names the run.
- A row that ``continues`` another starts after that row's run of the same seed has
  finished; when that run fails, it is not started and is recorded as failed.
- One runner per runs folder: an exclusive lock (``<runs>/.suite.lock``); a second one
  prints whom it waits for, waits, then skips what the first finished.
- Before the runs, the data are prepared once (the reference row's ``prepare_data``,
  as the recipe would), so no run's time includes it; the external anchor
  (``OMP_NUM_THREADS=1``) is one more job of the pool.
- One progress line per finished run with the estimated time left
  (:func:`estimate_left`): each remaining run is expected to take the mean wall time
  of the finished runs of its row (in this folder, this or an earlier invocation),
  else the mean of every finished run (not the anchor's); the sum, less the time the running
  ones have already spent, is divided by ``jobs``.
- Then the report sections' after-run steps and the report
  (:func:`speechbrain_ext.suite_report.write_report`); ``--report-only`` does only the
  report, ``--dry-run`` prints the commands.
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import os
import shlex
import subprocess
import sys
import threading
import time

from speechbrain_ext import epoch_log
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_json
from speechbrain_ext.suite import SuiteError, load_suite
from speechbrain_ext.suite_records import (  # noqa: F401 (RECORDS, RUN_RECORD: their old home)
    RECORDS,
    RUN_RECORD,
    check_finished,
    is_finished,
    read_records,
    run_identity,
    times_whole_run,
    update_record,
)
from speechbrain_ext.suite_values import override_args, parse_value

__all__ = [
    "RECORDS", "RUN_RECORD", "check_finished", "estimate_left", "format_duration", "is_finished", "main",
    "parse_settings", "prepare", "run_suite", "suite_lock", "train_suite",
]

LOCK = ".suite.lock"


def _now():
    return time.strftime("%H:%M:%S")


def format_duration(seconds):
    """Seconds as ``42 s``, ``12.5 min`` or ``2.1 h``.

    Example
    -------
    >>> format_duration(42), format_duration(750), format_duration(7560)
    ('42 s', '12.5 min', '2.1 h')
    """
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_left(pending, running, durations, jobs, now):
    """Estimated wall seconds until every run is finished (None before any run has finished).

    Arguments
    ---------
    pending : list of str
        Row name of every run not started yet.
    running : list of (str, float)
        ``(row name, start time)`` of every run in progress.
    durations : dict
        ``{row name: [wall seconds of its finished runs]}``.
    jobs : int
        Runs at a time.
    now : float
        The current time (as the start times).

    Example
    -------
    >>> d = {"a": [100.0, 120.0], "b": [300.0]}
    >>> estimate_left(["a", "b", "c"], [], d, 1, 0.0)  # 110 + 300 + (100+120+300)/3
    583.3333333333334
    >>> estimate_left(["a"], [("b", 0.0)], d, 2, 250.0)  # (110 + (300 - 250)) / 2
    80.0
    >>> estimate_left(["a"], [], {}, 1, 0.0) is None
    True
    """
    finished = [d for values in durations.values() for d in values]
    if not finished:
        return None
    overall = sum(finished) / len(finished)

    def expected(row):
        values = durations.get(row)
        return sum(values) / len(values) if values else overall

    work = sum(expected(row) for row in pending)
    work += sum(max(0.0, expected(row) - (now - start)) for row, start in running)
    return work / jobs


# ---------------------------------------------------------------------------- the lock
@contextlib.contextmanager
def suite_lock(runs, what, out=print):
    """Hold ``<runs>/.suite.lock``; while another runner holds it, print whom we wait for and wait.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with suite_lock(d, "suite x"):
    ...     open(os.path.join(d, LOCK)).read().split()[2:4]
    ['suite', 'x']
    """
    os.makedirs(runs, exist_ok=True)
    with open(os.path.join(runs, LOCK), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            out(f"[{_now()}] waiting: the runs folder {runs} is in use by {holder}")
            fcntl.flock(f, fcntl.LOCK_EX)
            out(f"[{_now()}] the runs folder is free; going on")
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} {what} since {_now()}\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- one job
def _log_path(runs, key):
    return os.path.join(runs, "logs", key.replace("/", "-") + ".log")


def _execute(runs, key, command, env):
    """Run one command with its output in its log; the record of what it took."""
    log = _log_path(runs, key)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    start = time.time()
    with open(log, "w") as f:
        f.write(f"# {shlex.join(command)}\n")
        f.flush()
        proc = subprocess.Popen(command, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # wait4: this child's own CPU time and that of the processes it waited for (DataLoader workers)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "returncode": os.waitstatus_to_exitcode(status), "wall_seconds": round(time.time() - start, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average": round(os.getloadavg()[0], 2), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "log": log,
    }


def _env(threads):
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


#: The ``output_folder`` of a recipe loaded only to prepare its data or read its splits: loading makes the
#: checkpointer's folder, and no run folder should appear for it.
SCRATCH_FOLDER = ".prepare"


def prepare_command(suite):
    """The data preparation of the suite: the reference row's ``prepare_data`` with the suite's settings."""
    row = suite.row(suite.reference) if suite.reference in [r.name for r in suite.rows] else suite.rows[0]
    overrides = suite.overrides(row, suite.seeds[0])
    overrides["output_folder"] = os.path.join(suite.runs, SCRATCH_FOLDER)
    return [sys.executable, "-c", "from speechbrain_ext.suite_runner import prepare; prepare()", row.hparams,
            *override_args(overrides)]


def anchor_command(suite):
    """The anchor's scoring on the suite's evaluation splits (:mod:`speechbrain_ext.anchor`)."""
    hparams_and_overrides = prepare_command(suite)[3:]
    return [sys.executable, "-m", "speechbrain_ext.anchor", suite.anchor_folder, "--draws", str(suite.draws),
            *hparams_and_overrides]


def prepare(argv=None):
    """Entry point of :func:`prepare_command`: load the hparams, call their ``prepare_data``."""
    from speechbrain_ext.hparams import load_hparams
    from speechbrain_ext.recipe import parse_arguments

    hparams_file, _, overrides = parse_arguments(sys.argv[1:] if argv is None else argv)
    hparams, _ = load_hparams(hparams_file, overrides)
    hparams["prepare_data"]()


def _anchor_done(suite):
    from speechbrain_ext.anchor import skip_reason

    path = os.path.join(suite.anchor_folder, "metrics.json")
    return os.path.isfile(path) and skip_reason(suite.anchor_folder) is None


@dataclasses.dataclass(frozen=True)
class _Job:
    key: str
    row: str  # the row name (the anchor's name for the anchor): which measured times estimate it
    command: list
    threads: int
    seed: int = None
    source: str = None  # the run key this run continues, when that run is a job of this invocation too
    evaluate: bool = False  # a finished run evaluated again (its evaluation settings changed), not trained


def _stage(suite, row):
    """0 for a row that continues none; else one more than the row it continues (when that is in the suite)."""
    names = {r.name: r for r in suite.rows}
    return 1 + _stage(suite, names[row.continues]) if row.continues in names else int(bool(row.continues))


def scheduled_rows(suite):
    """The rows in the order their runs start: sources before the rows that continue them, then the costliest
    first (:attr:`Row.cost_weight`), else as listed.

    Starting the long jobs first keeps the pool's last job short, so the runs end together. A
    continuing run waits for its source; the pool takes jobs in order, so that source is then
    already running or done and the wait always ends (with one job at a time too).
    """
    return sorted(suite.rows, key=lambda row: (_stage(suite, row), -row.cost_weight))


def _check_sources(suite):
    """A continuing run whose source is unfinished and not a run of this invocation (``--rows``) is an error."""
    names = {r.name for r in suite.rows}
    for row in suite.rows:
        for seed in suite.seeds:
            if row.continues and row.continues not in names and not is_finished(suite, row, seed) \
                    and not os.path.isfile(os.path.join(suite.source(row, seed)[1], "report", "metrics.json")):
                raise SuiteError(
                    f"{suite.path}: run {suite.run_key(row, seed)} continues run {suite.source(row, seed)[0]}, "
                    f"which is not finished and not among the rows to run (--rows): add {row.continues} to --rows")


def _jobs(suite):
    """What is left to do, the anchor first, then :func:`scheduled_rows` (finished runs are checked, then skipped)."""
    _check_sources(suite)
    jobs = []
    if suite.anchor and not _anchor_done(suite):
        jobs.append(_Job(suite.anchor, suite.anchor, anchor_command(suite), 1))
    for row in scheduled_rows(suite):
        for seed in suite.seeds:
            if is_finished(suite, row, seed):
                if check_finished(suite, row, seed):
                    jobs.append(_Job(suite.run_key(row, seed), row.name, suite.run_command(row, seed), suite.threads,
                                     seed, evaluate=True))
            else:
                jobs.append(_Job(suite.run_key(row, seed), row.name, suite.run_command(row, seed), suite.threads, seed,
                                 row.continues and suite.source(row, seed)[0]))
    keys = {job.key for job in jobs}
    return [dataclasses.replace(job, source=job.source if job.source in keys else None) for job in jobs]


def _durations(records):
    out = {}
    for record in records.values():
        if record.get("returncode") == 0 and "row" in record and times_whole_run(record):
            out.setdefault(record["row"], []).append(record["wall_seconds"])
    return out


class _Progress:
    """The pool's bookkeeping: what runs, what is done, one line per finished job."""

    def __init__(self, suite, jobs, out):
        self.suite, self.out, self.total = suite, out, len(jobs)
        self.pending = {job.key: job.row for job in jobs}
        self.running, self.done, self.failed = {}, 0, []
        # the anchor's time says nothing about a training run's: only the rows' times estimate
        rows = {row.name for row in suite.rows}
        self.durations = {row: d for row, d in _durations(read_records(suite.runs)).items() if row in rows}
        self.lock = threading.Lock()

    def start(self, key):
        with self.lock:
            self.running[key] = (self.pending.pop(key), time.time())

    def finish(self, key, record, training=True):
        with self.lock:
            row, _ = self.running.pop(key)
            self.done += 1
            if record["returncode"] == 0:
                if row != self.suite.anchor and training and times_whole_run(record):
                    self.durations.setdefault(row, []).append(record["wall_seconds"])
                state = f"in {format_duration(record['wall_seconds'])} (CPU {format_duration(record['cpu_seconds'])})"
            else:
                self.failed.append(key)
                state = "FAILED (" + (record.get("error") or f"exit {record['returncode']}; log {record['log']}") + ")"
            left = estimate_left(list(self.pending.values()), list(self.running.values()), self.durations,
                                 self.suite.jobs, time.time())
            eta = "" if left is None else (
                f"; about {format_duration(left)} left for {len(self.pending) + len(self.running)} job(s) "
                "(each at the mean time of its row's finished runs, else of all runs, over the jobs)")
            if not self.pending and not self.running:
                eta = "; all done"
            self.out(f"[{_now()}] {self.done}/{self.total} {key}: {state}{eta}")


def train_suite(suite, out=print):
    """Prepare the data, train every missing run, score the anchor; returns the keys of failed jobs."""
    if not _jobs(suite):
        out(f"[{_now()}] every run of {os.path.relpath(suite.path)} is finished")
        return []
    with suite_lock(suite.runs, f"suite {suite.name}", out):
        jobs = _jobs(suite)  # again: another runner may have finished some while we waited
        if jobs and suite.prepare:
            out(f"[{_now()}] preparing the data (the reference row's prepare_data)")
            record = _execute(suite.runs, "prepare", prepare_command(suite), _env(suite.threads))
            update_record(suite.runs, "prepare", record)
            if record["returncode"] != 0:
                raise SuiteError(f"{suite.path}: data preparation failed (exit {record['returncode']}); "
                                 f"see {record['log']}")
            out(f"[{_now()}] data ready after {format_duration(record['wall_seconds'])}")
        progress = _Progress(suite, jobs, out)
        out(f"[{_now()}] {len(jobs)} job(s) to run, {suite.jobs} at a time, OMP_NUM_THREADS={suite.threads} "
            f"(the anchor: 1); logs in {os.path.join(suite.runs, 'logs')}")

        done = {job.key: threading.Event() for job in jobs}
        succeeded = set()

        def one(job):
            try:
                if job.source is not None:
                    done[job.source].wait()
                if job.source is not None and job.source not in succeeded:
                    progress.start(job.key)
                    record = {"returncode": None, "wall_seconds": 0.0, "cpu_seconds": 0.0, "row": job.row,
                              "error": f"not started: the run it continues, {job.source}, failed", "log": None,
                              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
                    update_record(suite.runs, job.key, record)
                    progress.finish(job.key, record)
                    return
                run(job)
            finally:
                done[job.key].set()

        def run(job):
            identity, resumed = None, {}
            if job.seed is not None:
                row = suite.row(job.row)
                folder = suite.run_folder(row, job.seed)
                path = os.path.join(folder, RUN_RECORD)
                identity = (path, run_identity(suite, row, job.seed))
                if not job.evaluate:  # before training: a run that dies half-way is trained with these settings
                    atomic_write_json(*identity, indent=1, default=str)
                    # the recipe resumes after these: this record then times only the rest of the run
                    log = epoch_log.log_path(os.path.join(folder, "train_log.txt"))
                    resumed = {"epochs_before": len(epoch_log.read_epoch_log(log, strict=False))}
            progress.start(job.key)
            log_key = job.key + ("-evaluation" if job.evaluate else "")
            result = {**_execute(suite.runs, log_key, job.command, _env(job.threads)), "row": job.row,
                      "jobs": suite.jobs, "threads": job.threads, **resumed}
            # a re-evaluation keeps the training's record (its times are the run's cost) and adds its own
            record = {**read_records(suite.runs).get(job.key, {}), "evaluated": result} if job.evaluate else result
            update_record(suite.runs, job.key, record)
            if result["returncode"] == 0:
                if job.evaluate:  # after: a failed re-evaluation is tried again next time
                    atomic_write_json(*identity, indent=1, default=str)
                succeeded.add(job.key)
            progress.finish(job.key, result, training=not job.evaluate)

        with concurrent.futures.ThreadPoolExecutor(max_workers=suite.jobs) as pool:
            for future in [pool.submit(one, job) for job in jobs]:
                future.result()
    if progress.failed:
        out(f"failed: {', '.join(progress.failed)} (see their logs; the same command resumes them)")
    return progress.failed


def dry_run(suite, out=print):
    """Print what :func:`train_suite` would run, with the state of every run."""
    env = f"OMP_NUM_THREADS={suite.threads} "
    if suite.prepare:
        out("# data preparation\n" + env + shlex.join(prepare_command(suite)))
    if suite.anchor:
        state = "done" if _anchor_done(suite) else "to run"
        out(f"# {suite.anchor} (external anchor): {state}\nOMP_NUM_THREADS=1 " + shlex.join(anchor_command(suite)))
    for row in suite.rows:
        for seed in suite.seeds:
            state = "to run"
            if is_finished(suite, row, seed):
                try:
                    state = ("finished; its evaluation settings changed: to evaluate again"
                             if check_finished(suite, row, seed) else "finished, skipped")
                except SuiteError as err:
                    state = f"finished, refused: {err}"
            if row.continues and state == "to run":
                state += f" after {suite.source(row, seed)[0]} (init_from {suite.source(row, seed)[1]})"
            out(f"# {suite.run_key(row, seed)}: {state}\n" + env + shlex.join(suite.run_command(row, seed)))


def run_suite(suite, *, dry_run_only=False, report_only=False, out=print, command=None):
    """Train what is missing (unless ``report_only``), run the sections' steps, write the report.

    ``command`` is shown in the report when it differs from the suite's own ``command``.

    Returns
    -------
    int
        0, or 1 when a job failed (the report is written from the finished runs anyway).
    """
    from speechbrain_ext import suite_report

    sections = suite_report.resolve_sections(suite)
    if dry_run_only:
        dry_run(suite, out)
        return 0
    failed = []
    if not report_only:
        failed = train_suite(suite, out)
        for section in sections:
            section.after_runs(suite, out)
    paths = suite_report.write_report(suite, sections, command)
    for line in suite_report.terminal_summary(paths["data"]):
        out(line)
    out(f"report: {paths['report']}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------- command line
def _arguments(argv):
    p = argparse.ArgumentParser(prog="python -m speechbrain_ext.suite", description=__doc__.split("\n")[0])
    p.add_argument("suite", help="the suite file (YAML)")
    p.add_argument("--jobs", type=int, help="runs trained at once (default: the suite's)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of each run (default: the suite's)")
    p.add_argument("--seeds", type=int, nargs="+", help="replace the suite's seeds")
    p.add_argument("--rows", nargs="+", help="only these rows (names)")
    p.add_argument("--variants", nargs="+", default=[], metavar="ROW:key=value,...",
                   help="extra rows with overrides, for the validation diagnostics only")
    p.add_argument("--set", nargs="+", default=[], metavar="key=value", dest="settings",
                   help="further settings for every run (recipe overrides)")
    p.add_argument("--runs", help="replace the runs folder")
    p.add_argument("--report", help="replace the report path")
    p.add_argument("--draws", type=int, help="bootstrap draws of the report's intervals")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--report-only", action="store_true", help="only write the report from the finished runs")
    p.add_argument("--background", action="store_true", help="detach; log to <runs>/suite_<name>.log")
    return p.parse_args(argv)


def parse_settings(items):
    """``--set key=value ...`` as ``{key: value}``, each value read as YAML reads it.

    Example
    -------
    >>> parse_settings(["data_folder=data/x", "voice_space={expressiveness_mean: 2.4}"])
    {'data_folder': 'data/x', 'voice_space': {'expressiveness_mean': 2.4}}
    """
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SuiteError(f"--set {item!r}: expected key=value")
        out[key] = parse_value(value)
    return out


def background(suite, argv, out=print):
    """Start the same command detached (``argv`` without ``--background``); returns the child's pid."""
    os.makedirs(suite.runs, exist_ok=True)
    log = os.path.join(suite.runs, f"suite_{suite.name}.log")
    with open(log, "a") as f:
        proc = subprocess.Popen([sys.executable, "-m", "speechbrain_ext.suite_runner", *argv], stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    out(f"started in the background: pid {proc.pid}; log {log}; report {suite.report}")
    return proc.pid


def main(argv=None):
    """Command-line entry point; returns the exit status (1 with one ``error:`` line on bad input).

    Example
    -------
    >>> main(["/nonexistent/suite.yaml", "--dry-run"])  # prints "error: suite file not found: ..." to stderr
    1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _arguments(argv)
    try:
        suite = load_suite(args.suite, seeds=args.seeds, rows=args.rows, variants=args.variants,
                           settings=parse_settings(args.settings), runs=args.runs, report=args.report, jobs=args.jobs,
                           threads=args.threads, draws=args.draws)
        if args.background and not (args.dry_run or args.report_only):
            rest = [a for a in argv if a != "--background"]
            rest[rest.index(args.suite)] = suite.path
            background(suite, rest)
            return 0
        options = [a for a in argv if a not in (args.suite, "--report-only", "--dry-run", "--background")]
        command = shlex.join(["python", "-m", "speechbrain_ext.suite", os.path.relpath(suite.path), *options])
        return run_suite(suite, dry_run_only=args.dry_run, report_only=args.report_only,
                         command=command if options else None)
    except SpeechBrainExtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
