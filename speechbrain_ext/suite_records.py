"""What a suite's runs leave for the runner (:mod:`speechbrain_ext.suite_runner`) and the report.

- ``<runs>/suite_runs.json``: ``{run key: record}`` of every job (exit status, wall and CPU
  seconds, log; ``epochs_before``: the epochs a training job found already logged, which the
  recipe resumed after), written by the runner after each job (:func:`read_records`,
  :func:`update_record`). A resumed run's record times only its last part (:func:`times_whole_run`).
- ``<run>/suite_run.json``: what the run was trained and evaluated with (:func:`run_identity`:
  the digests of the system file's training values and of its evaluation values
  (:data:`~speechbrain_ext.hparams.EVALUATION_KEYS`), the overrides; for a row that
  ``continues`` another, that row's name and the checkpoint its run had selected).
  :func:`check_finished` refuses to reuse a finished run whose training configuration changed
  since, or whose source run was trained again after it, and says when only its evaluation
  settings changed: the runner then evaluates it again (minutes) instead of training it again.
  The digests are of the effective configuration (the system file with the run's overrides
  merged), so a setting moved from a suite's overrides into the system file is the same run.
  Older records (one ``config`` digest of every value, or digests of the system file alone) are
  upgraded in place when they describe the current system file and overrides.
"""

import json
import os
import threading

from speechbrain_ext.files import atomic_write_json
from speechbrain_ext.suite import SuiteError, config_digests

__all__ = ["EFFECTIVE", "RECORDS", "RUN_RECORD", "check_finished", "is_finished", "read_records", "run_identity",
           "source_checkpoint", "times_whole_run", "update_record"]

RECORDS = "suite_runs.json"
RUN_RECORD = "suite_run.json"
#: ``suite_run.json``'s ``digests``: of the effective configuration (system file and overrides merged).
EFFECTIVE = "effective"
_records_lock = threading.Lock()


def read_records(runs):
    """``{run key: record}`` of ``<runs>/suite_runs.json`` (empty when there is none)."""
    path = os.path.join(runs, RECORDS)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:
        raise SuiteError(f"{path}: not readable JSON ({err}); move it away to start the records again") from err


def times_whole_run(record):
    """False when the record's job resumed a run after epochs of an earlier, interrupted job (its times are a part).

    Example
    -------
    >>> times_whole_run({"wall_seconds": 860.0, "epochs_before": 0}), times_whole_run({"epochs_before": 4})
    (True, False)
    """
    return not record.get("epochs_before")


def update_record(runs, key, record):
    """Set ``key``'s record in ``<runs>/suite_runs.json`` (atomically; threads of one runner take turns)."""
    with _records_lock:
        records = read_records(runs)
        records[key] = record
        atomic_write_json(os.path.join(runs, RECORDS), records, indent=1, sort_keys=True)


def source_checkpoint(folder):
    """The checkpoint a finished run evaluated (its ``report/metrics.json``'s ``checkpoint``); None before.

    A run trained again selects a checkpoint of another name (the names carry their time).

    Example
    -------
    >>> source_checkpoint("/nonexistent/run") is None
    True
    """
    path = os.path.join(folder, "report", "metrics.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("checkpoint")


def run_identity(suite, row, seed):
    """What a finished run must have been trained (``config``) and evaluated (``evaluation``) with to be reused.

    A continuing row's ``init_from`` is recorded as the row it continues (so a moved runs
    folder changes nothing) and the checkpoint that source run had then.
    """
    dropped = ("output_root", "output_folder", *(("init_from",) if row.continues else ()))
    overrides = {k: v for k, v in suite.overrides(row, seed).items() if k not in dropped}
    digests = config_digests(row.hparams, overrides)
    identity = {"hparams": os.path.relpath(row.hparams), "config": digests["training"],
                "evaluation": digests["evaluation"], "overrides": overrides, "digests": EFFECTIVE}
    if row.continues:
        identity.update(continues=row.continues, source_checkpoint=source_checkpoint(suite.source(row, seed)[1]))
    return identity


def is_finished(suite, row, seed):
    """True when the run wrote its ``report/metrics.json``."""
    return os.path.isfile(os.path.join(suite.run_folder(row, seed), "report", "metrics.json"))


def _difference(recorded, current):
    """Why a run recorded as ``recorded`` is not the run ``current`` asks for (None when it is).

    The digests are of the effective configuration (system file and overrides together), so
    the same values spelled in the file or on the command line are the same run.
    """
    if recorded.get("config") != current["config"]:
        keys = sorted(k for k in {**recorded.get("overrides", {}), **current["overrides"]}
                      if recorded.get("overrides", {}).get(k) != current["overrides"].get(k))
        if keys:
            return f"the overrides differ: {', '.join(keys)}"
        return f"its system file {current['hparams']} (or a base of it) has changed since"
    if recorded.get("continues") != current.get("continues"):
        return f"it continued {recorded.get('continues') or 'no run'}, not {current.get('continues') or 'no run'}"
    return None


def _upgraded(path, recorded, row, current):
    """An older record in today's form, when it describes the current system file and overrides.

    Records of one digest of every value, and records whose digests were of the system file
    alone (before :data:`EFFECTIVE`), are rewritten with the effective digests when their
    digest is the file's current one and their overrides are the current ones.
    """
    if recorded.get("digests") == EFFECTIVE or recorded.get("overrides") != current["overrides"]:
        return recorded
    file_only = config_digests(row.hparams)
    if recorded.get("config") not in (file_only["training"], file_only["all"]) or (
            "evaluation" in recorded and recorded["config"] != file_only["training"]):
        return recorded
    upgraded = {**recorded, "config": current["config"], "evaluation": current["evaluation"], "digests": EFFECTIVE}
    if "evaluation" in recorded and recorded["evaluation"] != file_only["evaluation"]:
        upgraded["evaluation"] = recorded["evaluation"]  # evaluated with other settings then: evaluate again
    atomic_write_json(path, upgraded, indent=1, default=str)
    return upgraded


def check_finished(suite, row, seed):
    """Refuse to reuse a finished run trained with other overrides or another system file (names the run).

    For a row that continues another: also refuse when the source run (same seed) has
    finished since with another checkpoint (trained again after this run started from it).
    A run without a ``suite_run.json`` (trained by hand) is reused as it is.

    Returns
    -------
    bool
        True when only the evaluation settings of its system file changed since: the run
        must be evaluated again (its training is reused).
    """
    path = os.path.join(suite.run_folder(row, seed), RUN_RECORD)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        recorded = json.load(f)
    current = json.loads(json.dumps(run_identity(suite, row, seed), default=str))
    recorded = _upgraded(path, recorded, row, current)
    what = _difference(recorded, current)
    if what is None and recorded.get("overrides") != current["overrides"]:
        # the same values, now spelled in the system file: keep the record's overrides current
        recorded = {**recorded, "overrides": current["overrides"]}
        atomic_write_json(path, recorded, indent=1, default=str)
    key = suite.run_key(row, seed)
    if what is not None:
        raise SuiteError(
            f"{suite.path}: run {key} in {suite.runs} was trained with another configuration "
            f"({what}); move that run folder away to train it again, or use another runs folder (--runs)")
    now = current.get("source_checkpoint")
    if row.continues and now is not None and recorded.get("source_checkpoint") != now:
        source = suite.source(row, seed)[0]
        raise SuiteError(
            f"{suite.path}: run {key} in {suite.runs} continued run {source}, which was trained again since "
            f"(checkpoint {recorded.get('source_checkpoint')} then, {now} now); move {key} away to train it "
            f"again from the new {source}")
    return recorded.get("evaluation") != current["evaluation"]
