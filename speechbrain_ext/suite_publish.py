"""Publish one system of a suite: the one its validation splits choose, exported as a model folder.

- :func:`choose`: every compared row's validation EERs (the checkpoint each run evaluated,
  ``metrics.json`` ``"valid"``; mean over the row's finished seeds) through the rule of
  :func:`speechbrain_ext.system_choice.choose_system`; the run exported for the chosen row
  is its seed with the lowest mean validation EER. Nothing here reads an evaluation split.
- :func:`export`: ``python -m speechbrain_ext.publish export <run> <model>`` in a subprocess
  (SpeechBrain's own output goes to a log file), skipped when the model folder already holds
  the export of that run's checkpoint (``<model>/published.json``).
- :class:`Publish`: the report section (``sections: [{section: ..., model: <folder>}]``)
  that states the rule, the validation EERs of every row, the system chosen and the model.
"""

import json
import os
import subprocess
import sys

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_json
from speechbrain_ext.suite_report import Section
from speechbrain_ext.system_choice import SystemChoiceError, choose_system, validation_eers

__all__ = ["PUBLISHED", "Publish", "PublishFailed", "choose", "export", "published_info", "shown", "verify_command"]

#: Written into the model folder after an export: which run and checkpoint it holds.
PUBLISHED = "published.json"
SPLITS = ("valid", "ood_valid")


class PublishFailed(SpeechBrainExtError, RuntimeError):
    """The export of the chosen run failed; the message names the run and the log.

    Example
    -------
    >>> isinstance(PublishFailed("export of runs/a failed; log: x.log"), RuntimeError)
    True
    """


def shown(path):
    """A path as the terminal and the report show it: relative to the working directory when inside it.

    Example
    -------
    >>> shown(os.path.join(os.getcwd(), "results", "demo")), shown("/elsewhere/x")
    ('results/demo', '/elsewhere/x')
    """
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _finished(suite, runs, row):
    return [r for s in suite.seeds if (r := runs[(row.name, s)]).metrics is not None]


def choose(suite, runs, splits=SPLITS, guard="ood_valid"):
    """The row to publish and the run folder to export.

    Arguments
    ---------
    suite : speechbrain_ext.suite.Suite
    runs : dict
        :func:`speechbrain_ext.suite_report.collect`'s ``{(row name, seed): RunResult}``.
    splits : sequence of str
        The validation splits of the rule.
    guard : str or None
        The split on which no published system may be worse than the reference row.

    Returns
    -------
    choice : speechbrain_ext.system_choice.SystemChoice
        Keyed by row label.
    validation : dict
        ``{row label: {split: EER %}}`` (mean over the row's finished seeds).
    folders : dict
        ``{row label: run folder}``: the seed of each row that would be exported.

    Raises
    ------
    SystemChoiceError
        The reference row has no finished run, or a run lacks a validation EER (named).
    """
    validation, folders = {}, {}
    for row in suite.compared:
        finished = _finished(suite, runs, row)
        if not finished:
            continue
        per_run = [(validation_eers(r.metrics, splits, name=f"run {row.name}/seed{r.seed} ({r.folder})"), r)
                   for r in finished]
        validation[row.label] = {s: sum(v[s] for v, _ in per_run) / len(per_run) for s in splits}
        folders[row.label] = min(per_run, key=lambda p: (sum(p[0].values()), p[1].seed))[1].folder
    reference = suite.row(suite.reference).label
    if reference not in validation:
        raise SystemChoiceError(f"{suite.path}: the reference row {suite.reference!r} has no finished run yet")
    return choose_system(validation, reference, guard), validation, folders


def published_info(model):
    """``published.json`` of a model folder (None when absent or unreadable).

    Example
    -------
    >>> published_info("/nonexistent") is None
    True
    """
    try:
        with open(os.path.join(model, PUBLISHED), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _checkpoint_of(run):
    with open(os.path.join(run, "report", "metrics.json"), encoding="utf-8") as f:
        return json.load(f).get("checkpoint")


def export(run, model, log, system, label):
    """Export ``run`` to ``model`` unless it already holds that run's checkpoint; returns ``published.json``.

    Arguments
    ---------
    run : str
        The chosen run folder.
    model : str
        The model folder (replaced by the export, atomically).
    log : str
        Where the export command's output goes.
    system, label : str
        The system name (``hparams`` ``system``) and the row label, recorded in ``published.json``.

    Raises
    ------
    PublishFailed
        The export command failed (the message names the log).
    """
    wanted = {"run": os.path.abspath(run), "checkpoint": _checkpoint_of(run), "system": system, "label": label}
    current = published_info(model)
    if current and all(current.get(k) == v for k, v in wanted.items()) and os.path.isfile(
            os.path.join(model, "hyperparams.yaml")):
        return current
    command = [sys.executable, "-m", "speechbrain_ext.publish", "export", run, model]
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log, "w") as f:
        f.write("# " + " ".join(command) + "\n")
        f.flush()
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode:
        raise PublishFailed(f"export of {run} to {model} failed (exit {done.returncode}); log: {log}")
    atomic_write_json(os.path.join(model, PUBLISHED), wanted, indent=1)
    return wanted


def verify_command(model, prior=0.01):
    """The ``python -m speechbrain_ext.verify`` example for a model folder.

    Example
    -------
    >>> verify_command("results/demo/model")
    'python -m speechbrain_ext.verify a.wav b.wav --model results/demo/model --prior 0.01'
    """
    return f"python -m speechbrain_ext.verify a.wav b.wav --model {model} --prior {prior:g}"


class Publish(Section):
    """Report section: the rule, every row's validation EERs, the system chosen and its model folder.

    Arguments
    ---------
    model : str
        The model folder, relative to the report's folder (``model``: next to the report).
    guard : str or None
        As :func:`choose`.
    prior : float
        The prior of the ``verify`` example.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> Publish(model="model").folder(SimpleNamespace(report="/r/demo/report.md"))
    '/r/demo/model'
    """

    def __init__(self, model="model", guard="ood_valid", prior=0.01):
        self.model, self.guard, self.prior = model, guard, prior

    def folder(self, suite):
        """The model folder's absolute path."""
        return os.path.normpath(os.path.join(os.path.dirname(suite.report), self.model))

    def render(self, ctx):
        """The section's lines (the choice is recomputed from the runs: the same function as the export)."""
        lines = ["## The published model", ""]
        try:
            choice, validation, folders = choose(ctx.suite, ctx.runs, guard=self.guard)
        except SystemChoiceError as err:
            return lines + [f"No choice yet: {err}.", ""]
        model = shown(self.folder(ctx.suite))
        lines += [f"`{model}` holds the system chosen on the validation splits only (eval and ood are "
                  f"never read for it). Rule (`speechbrain_ext.system_choice`): {choice.rule}.", "",
                  "| system | " + " | ".join(f"`{s}` EER (%)" for s in SPLITS) + " | mean | eligible |",
                  "|:---|" + "---:|" * (len(SPLITS) + 1) + ":---|"]
        for label, eers in validation.items():
            mark = "**published**" if label == choice.system else choice.excluded.get(label, "yes")
            lines.append(f"| {label} | " + " | ".join(f"{eers[s]:.2f}" for s in SPLITS)
                         + f" | {choice.scores[label]:.2f} | {mark} |")
        info = published_info(model)
        if info and info.get("label") == choice.system:
            lines += ["", f"Exported: `{choice.system}` (system `{info['system']}`), run "
                      f"`{shown(info['run'])}`, checkpoint `{info['checkpoint']}`; the model card "
                      f"(`{model}/README.md`) and `verification.json` are that run's.", "",
                      f"Try it: `{verify_command(model, self.prior)}`"]
        else:
            lines += ["", f"Not exported yet: `{choice.system}` (run `{shown(folders[choice.system])}`)."]
        return lines + [""]
