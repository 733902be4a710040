"""A suite run as a first-run demo: stages with progress and time left, a published model, a summary.

:func:`run_demo` runs a suite (:mod:`speechbrain_ext.suite`) whose report has a
:class:`~speechbrain_ext.suite_publish.Publish` section, in five stages, each announced by
one line with the estimated time left (:class:`Eta`):

1. data preparation (the reference row's ``prepare_data``, in a subprocess: its progress bars go to
   ``<runs>/logs/prepare.log``); a corpus folder of other settings is refused with the
   data preparation's message (the differing keys) and what to do;
2. training and evaluation of every system and the anchor (:func:`speechbrain_ext.suite_runner.train_suite`,
   ``jobs`` at a time), one line per finished job; a failed job prints its log's path and last lines;
   then the sections' own work after training (e.g. ``rescore``: every run scored on other trial lists);
3. the choice of the system to publish (validation splits only) and its export
   (:mod:`speechbrain_ext.suite_publish`);
4. the report (:func:`speechbrain_ext.suite_report.write_report`) and ``<out>/metrics.json``;
5. the summary: EER with 95 % intervals per system on the headline conditions, the paths of
   the report and the model, the ``verify`` example.

Resumable (finished runs are kept, an interrupted run resumes from its checkpoint), and a
demo whose inputs have not changed since it finished (:func:`state_digest`) only prints its
summary again. Python logging and warnings of the stages run here go to ``<out>/logs/demo.log``.
"""

import hashlib
import heapq
import json
import logging
import os
import re
import subprocess
import time

from speechbrain_ext.files import atomic_write_json, tail
from speechbrain_ext.suite import SuiteError, config_digest
from speechbrain_ext.suite_publish import PUBLISHED, Publish, choose, export, shown, verify_command
from speechbrain_ext.suite_runner import (
    format_duration,
    is_finished,
    prepare_command,
    read_records,
    scheduled_rows,
    train_suite,
)

__all__ = ["Eta", "makespan", "run_demo", "seed_eta", "state_digest"]

STATE = ".demo_state.json"
FORMAT = "speechbrain_ext.suite_demo/1"


def makespan(running, pending, jobs):
    """Seconds until every job is done: ``running`` (seconds left each) then ``pending`` in order, ``jobs`` at once.

    Example
    -------
    >>> makespan([100.0], [300.0, 300.0, 600.0], 2)  # slots: 0+300, 100+300, then 300+600
    900.0
    >>> makespan([], [], 2)
    0.0
    """
    slots = sorted(list(running)[:jobs] + [0.0] * max(0, jobs - len(running)))
    for seconds in list(running)[jobs:] + list(pending):
        heapq.heappush(slots, heapq.heappop(slots) + seconds)
    return float(max(slots, default=0.0))


class Eta:
    """Time left: first guesses per stage, scaled by what this machine measured so far.

    The first guesses (``priors``, seconds) are the stage times of ``make demo`` measured on
    this project's 2-core machine with SynthEmo's base settings (README, "Demo results"): the
    corpus 70 s, the Resemblyzer anchor 90 s, about 280 s per plain-AAM run on one core (a
    CopyPaste system, 2 inputs encoded per step, 1.6x that: :attr:`speechbrain_ext.suite.Row.cost_weight`),
    a section's work after training (the stronger-emotion rescoring) 240 s, export and report
    a few seconds. Every measured stage or run gives a ratio measured / guessed; a guess still
    ahead is scaled by the mean ratio of its own kind once one is measured, else it stays the
    prior (the corpus generation's or the anchor's speed says little about training's). A row with a
    measured run (in this runs folder, this or an earlier invocation) is expected to take that
    long again.

    Example
    -------
    >>> eta = Eta(jobs=2)
    >>> eta.guess("report")
    10.0
    >>> eta.observe("report", 20.0); eta.guess("report"), eta.guess("export")  # report 2x slower here
    (20.0, 10.0)
    >>> eta.observe("run", 660.0); eta.guess("run", weight=2.0)
    1320.0
    """

    PRIORS = {"corpus": 70.0, "corpus_ready": 10.0, "run": 280.0, "anchor": 90.0, "export": 10.0, "report": 10.0,
              "section": 240.0}

    def __init__(self, jobs, priors=None, sections=0):
        self.jobs, self.priors, self.measured = jobs, {**self.PRIORS, **(priors or {})}, {}
        self.ratios = {}  # kind -> measured / guessed ratios
        self.sections = sections  # sections with work after training (e.g. rescoring every run)

    def speed(self, kind):
        """Mean measured / guessed ratio of ``kind`` (1 before one is measured)."""
        ratios = self.ratios.get(kind, [])
        return sum(ratios) / len(ratios) if ratios else 1.0

    def guess(self, kind, weight=1.0):
        """The expected seconds of a stage or run kind (``weight`` x its prior x :meth:`speed`)."""
        return weight * self.priors[kind] * self.speed(kind)

    def observe(self, kind, seconds, weight=1.0, key=None):
        """Record a measured stage (``key``: a row name, expected to take as long again)."""
        self.ratios.setdefault(kind, []).append(seconds / (weight * self.priors[kind]))
        if key is not None:
            self.measured.setdefault(key, []).append(seconds)

    def job(self, key, kind, weight):
        """Expected seconds of a job: its row's mean measured time, else the scaled guess."""
        values = self.measured.get(key)
        return sum(values) / len(values) if values else self.guess(kind, weight)

    def after_training(self):
        """Expected seconds of the stages after training (the sections' work included)."""
        return self.sections * self.guess("section") + self.guess("export") + self.guess("report")


def _now():
    return time.strftime("%H:%M:%S")


def _left(seconds):
    return f"about {format_duration(seconds)} left in total"


def _indent(text):
    return "\n".join("    | " + line for line in text.splitlines())


# ---------------------------------------------------------------------------- state
def _stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _package_digest(root=None):
    """A digest of the ``.py`` files under ``root`` (this package): a demo finished by other code reports again."""
    root = root or os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def state_digest(suite, model):
    """A digest of everything the demo's outputs depend on (None when a run is not finished).

    The suite (file, settings, seeds, rows and their composed system files), every run's
    ``metrics.json``, the anchor's, the exported model's ``published.json``, and the source of
    this package (which writes the report and the export).
    """
    parts = {"suite": _stat(suite.path), "settings": suite.settings, "seeds": suite.seeds, "draws": suite.draws,
             "code": _package_digest(),
             "rows": [(r.name, r.label, config_digest(r.hparams), r.overrides) for r in suite.rows], "runs": {}}
    for row in suite.rows:
        for seed in suite.seeds:
            if not is_finished(suite, row, seed):
                return None
            parts["runs"][suite.run_key(row, seed)] = _stat(os.path.join(suite.run_folder(row, seed), "report",
                                                                          "metrics.json"))
    if suite.anchor:
        parts["anchor"] = _stat(os.path.join(suite.anchor_folder, "metrics.json"))
    parts["model"] = _stat(os.path.join(model, PUBLISHED))
    parts["report"] = _stat(suite.report)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _anchor_may_change(suite):
    """A skipped anchor row is scored again once Resemblyzer can be imported."""
    if not suite.anchor:
        return False
    from speechbrain_ext import anchor

    return anchor.skip_reason(suite.anchor_folder) is not None and anchor.anchor_skip_reason() is None


def finished_summary(suite, model):
    """The stored summary lines when nothing changed since the demo finished, else None."""
    path = os.path.join(os.path.dirname(suite.report), STATE)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if state.get("digest") != state_digest(suite, model) or _anchor_may_change(suite):
        return None
    return state.get("summary")


# ---------------------------------------------------------------------------- stages
def _error_line(log):
    found = [line for line in tail(log, 200).splitlines() if re.match(r"^[\w.]*(Error|Exception): ", line)]
    return found[-1].split(": ", 1)[1] if found else None


def stage_data(suite, eta, out):
    """Stage 1: the reference row's data preparation, in a subprocess with its output in a log."""
    log = os.path.join(suite.runs, "logs", "prepare.log")
    ready = os.path.isfile(os.path.join(suite.runs, "manifests", "prepare.json"))
    kind = "corpus_ready" if ready else "corpus"
    rest = eta.guess(kind) + training_left(suite, eta, {}, {}) + eta.after_training()
    out(f"[{_now()}] demo 1/5 data: {'checking' if ready else 'preparing (generating if missing)'} the corpus and "
        "its trial lists "
        f"(log {shown(log)}); {_left(rest)}")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    start = time.time()
    with open(log, "w") as f:
        done = subprocess.run(prepare_command(suite), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": str(max(suite.threads, suite.jobs))})
    if done.returncode:
        message = _error_line(log) or f"exit status {done.returncode}"
        advice = ""
        if "generated with other settings" in message:
            advice = ("\nThe demo needs the corpus of its own settings. Delete that folder and run the demo again "
                      "(it is generated again), or keep it and give the demo another one: make demo "
                      "ARGS='--set data_folder=data/SynthEmo_demo'")
        raise SuiteError(f"data preparation failed: {message}{advice}\nlog: {log}\n{_indent(tail(log))}")
    seconds = time.time() - start
    eta.observe(kind, seconds)
    out(f"[{_now()}] demo 1/5 data: ready in {format_duration(seconds)}")


def _pending_jobs(suite):
    """The jobs the runner will run, in its order: ``[(key, row name, kind, weight)]``."""
    from speechbrain_ext import anchor

    jobs = []
    if suite.anchor and not (os.path.isfile(os.path.join(suite.anchor_folder, "metrics.json"))
                             and anchor.skip_reason(suite.anchor_folder) is None):
        jobs.append((suite.anchor, suite.anchor, "anchor", 1.0))
    for row in scheduled_rows(suite):
        for seed in suite.seeds:
            if not is_finished(suite, row, seed):
                jobs.append((suite.run_key(row, seed), row.name, "run", row.cost_weight))
    return jobs


def training_left(suite, eta, running, pending):
    """Expected seconds until the training stage ends (``pending``: job -> (row, kind, weight))."""
    if not running and not pending:
        pending = {key: (row, kind, weight) for key, row, kind, weight in _pending_jobs(suite)}
    now = time.time()
    left = [max(0.0, eta.job(row, kind, weight) - (now - start)) for row, kind, weight, start in running.values()]
    return makespan(left, [eta.job(row, kind, weight) for row, kind, weight in pending.values()], suite.jobs)


class _Training:
    """Stage 2's progress: the runner's pool replayed (FIFO, ``jobs`` at a time) from its records."""

    def __init__(self, suite, eta, out):
        self.suite, self.eta, self.print = suite, eta, out
        jobs = _pending_jobs(suite)
        self.total, self.done, self.failed = len(jobs), 0, []
        self.labels = {suite.anchor: "Resemblyzer (external anchor)"} if suite.anchor else {}
        for row in suite.rows:
            for seed in suite.seeds:
                seed_note = f", seed {seed}" if len(suite.seeds) > 1 else ""
                self.labels[suite.run_key(row, seed)] = f"{row.label}{seed_note}"
        self.pending = {key: (row, kind, weight) for key, row, kind, weight in jobs}
        self.running = {}
        self.seen = self._identities()
        for _ in range(min(suite.jobs, len(self.pending))):
            self._start_next()

    def _identities(self):
        return {k: (r.get("finished"), r.get("wall_seconds")) for k, r in read_records(self.suite.runs).items()}

    def _start_next(self):
        if self.pending:
            key = next(iter(self.pending))
            self.running[key] = (*self.pending.pop(key), time.time())

    def left(self):
        return training_left(self.suite, self.eta, self.running, self.pending) if (
            self.running or self.pending) else 0.0

    def out(self, line):
        """The runner's ``out``: a finished job becomes our line; any other line is passed on, indented."""
        records = read_records(self.suite.runs)
        new = [k for k, r in records.items() if self.seen.get(k) != (r.get("finished"), r.get("wall_seconds"))
               and (k in self.running or k in self.pending)]
        self.seen = {k: (r.get("finished"), r.get("wall_seconds")) for k, r in records.items()}
        if not new:
            self.print("    " + line)
            return
        for key in new:
            self._finished(key, records[key])

    def _finished(self, key, record):
        row, kind, weight, _ = self.running.pop(key, None) or (*self.pending.pop(key), 0.0)
        self._start_next()
        self.done += 1
        head = f"[{_now()}] demo 2/5 training {self.done}/{self.total} {self.labels.get(key, key)}"
        if record.get("returncode") != 0:
            self.failed.append(key)
            self.print(f"{head}: FAILED (exit {record.get('returncode')}); log {record.get('log')}:\n"
                       + _indent(tail(record.get("log", ""))))
            return
        self.eta.observe(kind, record["wall_seconds"], weight, key=row)
        what = "trained, eval and ood extracted and scored"
        if kind == "anchor":
            from speechbrain_ext.anchor import skip_reason

            reason = skip_reason(self.suite.anchor_folder)
            what = f"row skipped ({reason}); the demo goes on without it" if reason else "scored eval and ood"
        self.print(f"{head}: {what} in {format_duration(record['wall_seconds'])} "
                   f"(CPU {format_duration(record['cpu_seconds'])}); "
                   f"{_left(self.left() + self.eta.after_training())}")


def seed_eta(suite, eta):
    """Let the runs this runs folder already finished (an earlier invocation) inform the time left."""
    weights = {row.name: row.cost_weight for row in suite.rows}
    for record in read_records(suite.runs).values() if os.path.isdir(suite.runs) else ():
        row = record.get("row")
        if record.get("returncode") == 0 and (row in weights or row == suite.anchor):
            kind, weight = ("anchor", 1.0) if row == suite.anchor else ("run", weights[row])
            eta.observe(kind, record["wall_seconds"], weight, key=row)


def stage_training(suite, eta, out):
    """Stage 2: every missing run and the anchor (the suite runner); returns the keys of failed jobs."""
    progress = _Training(suite, eta, out)
    jobs = {**progress.pending, **{k: v[:3] for k, v in progress.running.items()}}
    n_runs = sum(1 for _, kind, _ in jobs.values() if kind == "run")
    anchor = " and the Resemblyzer anchor" if suite.anchor in jobs else ""
    if jobs:
        out(f"[{_now()}] demo 2/5 training: {n_runs} system run(s){anchor}, {suite.jobs} at a time with "
            f"{suite.threads} thread(s) each; logs in {shown(os.path.join(suite.runs, 'logs'))}; "
            f"{_left(progress.left() + eta.after_training())}"
            + ("" if eta.ratios else " (a first guess until a job finishes)"))
    else:
        out(f"[{_now()}] demo 2/5 training: every system (and the anchor) is finished already; kept")
    failed = train_suite(suite, out=progress.out)
    return failed or progress.failed


def stage_publish(suite, eta, out, section):
    """Stage 3: choose the system on the validation splits, export its run; returns the choice and export info."""
    from speechbrain_ext import suite_report

    runs = suite_report.collect(suite)
    choice, validation, folders = choose(suite, runs, guard=section.guard)
    label, model = choice.system, section.folder(suite)
    eers = ", ".join(f"{split} {value:.2f} %" for split, value in validation[label].items())
    excluded = f"; not eligible: {', '.join(choice.excluded)}" if choice.excluded else ""
    out(f"[{_now()}] demo 3/5 publish: {label} has the lowest mean validation EER ({eers}){excluded}; exporting it "
        f"to {shown(model)}; {_left(eta.after_training())}")
    start = time.time()
    run = folders[label]
    system = next(r.metrics.get("system") for r in runs.values() if r.folder == run)
    info = export(run, model, os.path.join(suite.runs, "logs", "export.log"), system or label, label)
    eta.observe("export", time.time() - start)
    return choice, validation, info


def _systems_info(suite, data, validation):
    """Per compared row: system file, runs, validation EERs and the runner's cost records."""
    out = {}
    for row in suite.compared:
        keys = [suite.run_key(row, seed) for seed in suite.seeds]
        out[row.label] = {
            "row": row.name, "hparams": shown(row.hparams),
            "runs": [data["runs"][k]["folder"] for k in keys if k in data["runs"]],
            "validation_eer": validation.get(row.label),
            "cost": {k: {n: data["runs"][k]["record"].get(n) for n in ("wall_seconds", "cpu_seconds", "jobs",
                                                                       "threads", "load_average")}
                     for k in keys if k in data["runs"]},
        }
    return out


def stage_report(suite, eta, out, sections, published, command):
    """Stage 4: the suite report and ``<out>/metrics.json``; returns the report's data."""
    from speechbrain_ext import suite_report

    out(f"[{_now()}] demo 4/5 report: every system with 95 % intervals, paired differences against "
        f"{suite.row(suite.reference).label}, figures; {_left(eta.guess('report'))}")
    start = time.time()
    paths = suite_report.write_report(suite, sections, command=command)
    choice, validation, info = published
    data = paths["data"]
    metrics = {
        "format": FORMAT, "suite": suite.path, "report": suite.report, "command": command,
        "systems": _systems_info(suite, data, validation),
        "published": {**info, "rule": choice.rule, "mean_validation_eer": choice.scores,
                      "not_eligible": choice.excluded},
        "anchor": data["anchor"], "splits": data["splits"], "conditions": data["conditions"],
        "comparison": data["comparison"],
    }
    atomic_write_json(os.path.join(os.path.dirname(suite.report), "metrics.json"), metrics, indent=1,
                      allow_nan=False)
    eta.observe("report", time.time() - start)
    return data


def summary_lines(suite, data, model, published, prior=0.01):
    """The closing lines: EER [95 % CI] per system (all and neutral->emotional, eval and ood), paths, verify."""
    from speechbrain_ext.suite_report import terminal_summary

    conditions = [c for c in ("all", "neutral_emotional") if c in data["conditions"]] or data["conditions"][:2]
    choice, _, info = published
    out_dir = os.path.dirname(suite.report)
    return ["", *terminal_summary(data, conditions), "",
            f"published: {choice.system} (system {info['system']}): lowest mean EER on the validation splits "
            "among the systems no worse than the baseline out of generator (report: \"The published model\")",
            f"report:    {shown(suite.report)}",
            f"metrics:   {shown(os.path.join(out_dir, 'metrics.json'))}",
            f"model:     {shown(model)} ({choice.system}; its model card and verification.json are that run's)",
            f"try it:    {verify_command(shown(model), prior)}"]


class _LogToFile:
    """Python logging and warnings of the stages run here go to a file, not the terminal."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        root = logging.getLogger()
        self.saved = (root.handlers[:], root.level)
        self.handler = logging.FileHandler(self.path)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.handlers[:] = [self.handler]
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        root.handlers[:], level = self.saved
        root.setLevel(level)
        logging.captureWarnings(False)
        self.handler.close()


def _publish_section(sections, suite):
    found = [s for s in sections if isinstance(s, Publish)]
    if not found:
        raise SuiteError(f"{suite.path}: sections: the demo needs a Publish section (speechbrain_ext.suite_publish)")
    return found[0]


def run_demo(suite, out=print, command=None):
    """Run the demo (see the module notes); returns the exit status (0, 1 when a job failed, 130 interrupted)."""
    from speechbrain_ext import suite_report

    sections = suite_report.resolve_sections(suite)
    section = _publish_section(sections, suite)
    model = section.folder(suite)
    summary = finished_summary(suite, model)
    if summary is not None:
        out(f"The demo in {shown(os.path.dirname(suite.report))} is finished and nothing it depends on "
            "has changed: its summary again (delete that folder to start over).")
        for line in summary:
            out(line)
        return 0
    started = time.time()
    try:
        with _LogToFile(os.path.join(os.path.dirname(suite.report), "logs", "demo.log")):
            working = [extra for extra in sections if type(extra).after_runs is not suite_report.Section.after_runs]
            eta = Eta(suite.jobs, sections=len(working))
            seed_eta(suite, eta)
            stage_data(suite, eta, out)
            failed = stage_training(suite, eta, out)
            if failed:
                out(f"failed: {', '.join(failed)} (their logs are above); fix the cause and run the same command "
                    "again: finished systems are kept and an interrupted one resumes from its last checkpoint")
                return 1
            for extra in working:  # the sections' own work after training (e.g. rescoring every run)
                start = time.time()
                extra.after_runs(suite, lambda line: out("    " + line))
                eta.observe("section", time.time() - start)
                eta.sections -= 1
            published = stage_publish(suite, eta, out, section)
            data = stage_report(suite, eta, out, sections, published, command)
    except KeyboardInterrupt:
        out(f"\ninterrupted: run the same command again to resume (finished systems are kept, an interrupted one "
            f"resumes from its last checkpoint; logs in {shown(os.path.join(suite.runs, 'logs'))})")
        return 130
    summary = summary_lines(suite, data, model, published, section.prior)
    for extra in sections:
        lines = extra.summary_lines(suite)
        summary += ["", *lines] if lines else []
    atomic_write_json(os.path.join(os.path.dirname(suite.report), STATE),
                      {"digest": state_digest(suite, model), "summary": summary}, indent=1)
    out(f"[{_now()}] demo 5/5 done in {format_duration(time.time() - started)}")
    for line in summary:
        out(line)
    return 0
