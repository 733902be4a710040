"""A suite's finished runs scored on other trial lists, without training: ``python -m speechbrain_ext.suite_rescore``.

    python -m speechbrain_ext.suite_rescore <suite.yaml> --out <folder> --set key=value ... [--rows ...] [--seeds ...]

For every row x seed of the suite (each run in the suite's runs folder must have finished),
the checkpoint the run evaluated is exported (:func:`speechbrain_ext.publish.export_model`,
``<out>/models/<row>/seed<seed>``) and scored (:func:`speechbrain_ext.model_eval.evaluate_model`,
``<out>/scores/<row>/seed<seed>``) on the ``eval_splits`` of the recipe configuration that
the suite's settings, the row's overrides and ``--set`` give, e.g. another ``data_folder``:
another corpus, or SynthEmo with another voice space. The corpus is prepared once in
``<out>`` (the reference row's ``prepare_data``, as the suite runner does). Then the report
(``<out>/report.md``, or ``--report``): every row against the suite's reference, paired by
seed, on the suite's splits and conditions, with speaker-bootstrap intervals, and the suite's
anchor (Resemblyzer) scored on the same trials
(:mod:`speechbrain_ext.compare`).

What it answers: how systems trained on one corpus rank on another, e.g. SynthEmo's rows,
trained at the default emotion strength, on test speech with stronger emotions than any
training utterance (the mismatch that emotion-invariant training is for). A suite can also
do this itself after training, its report showing the result: the section
:class:`RescoreSection` (``{section: rescore, name: ..., settings: {...}}``). Interrupted, it
resumes: an export of the run's current checkpoint is kept, and so is a score folder whose
``rescore.json`` names the same model files and the same recipe options (another ``--set``
into the same ``--out`` scores again).
"""

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time

from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.compare_report import build_report, render_markdown, write_report
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write_json, tail
from speechbrain_ext.model_eval import evaluate_model, model_digest
from speechbrain_ext.splits import recipe_splits
from speechbrain_ext.suite import SuiteError, load_suite
from speechbrain_ext.suite_records import is_finished, source_checkpoint
from speechbrain_ext.suite_report import ANCHOR_LABEL, Section, terminal_summary
from speechbrain_ext.suite_runner import SCRATCH_FOLDER, parse_settings, prepare
from speechbrain_ext.suite_values import override_args

__all__ = ["RescoreSection", "main", "rescore_suite"]

logger = logging.getLogger(__name__)

#: Written in a score folder after its scoring: the model and the trial-list options it was scored with.
IDENTITY = "rescore.json"


def _recipe_args(suite, row, seed, out):
    """The recipe's command-line overrides of one run, with the manifests of ``out``.

    The output folder is the runner's scratch one (:data:`~speechbrain_ext.suite_runner.SCRATCH_FOLDER`):
    otherwise every row and seed would leave an empty ``<out>/<system>/seed<n>/save`` that looks like a run.
    """
    values = {k: v for k, v in suite.overrides(row, seed).items() if k != "output_folder"}
    return override_args({**values, "output_root": out, "output_folder": os.path.join(out, SCRATCH_FOLDER)})


def _export(run, model_dir):
    """The export of the checkpoint ``run`` evaluated (made again when the run was trained again since)."""
    from speechbrain_ext.publish import export_model

    checkpoint = source_checkpoint(run)
    info = os.path.join(model_dir, "export.json")
    if os.path.isfile(info):
        with open(info, encoding="utf-8") as f:
            if os.path.basename(str(json.load(f).get("checkpoint"))) == os.path.basename(str(checkpoint)):
                return
    os.makedirs(os.path.dirname(model_dir), exist_ok=True)
    export_model(run, model_dir, checkpoint=os.path.basename(str(checkpoint)))


def _identity(model_dir, recipe_args):
    """What a score folder was made from: the model's files and the recipe options that chose the trials."""
    return {"model_digest": model_digest(model_dir), "recipe_args": list(recipe_args)}


def _scored(folder, identity):
    """True when ``folder`` holds a complete scoring of this model on these trial lists."""
    path = os.path.join(folder, IDENTITY)
    if not os.path.isfile(os.path.join(folder, "metrics.json")) or not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return json.load(f) == identity


def _anchor(suite, reference, out, n_draws, systems, out_print):
    """The suite's anchor scored on the same trial lists (``<out>/scores/<anchor>``), added to ``systems``."""
    from speechbrain_ext.anchor import evaluate_anchor, skip_reason

    folder = os.path.join(out, "scores", suite.anchor)
    recipe_args = _recipe_args(suite, reference, suite.seeds[0], out)
    identity = {"anchor": suite.anchor, "recipe_args": recipe_args}
    if not _scored(folder, identity):
        shutil.rmtree(folder, ignore_errors=True)
        eval_splits, data_folder = recipe_splits(reference.hparams, recipe_args)
        if not evaluate_anchor(eval_splits, data_folder, folder, n_draws=n_draws).get("skipped"):
            atomic_write_json(os.path.join(folder, IDENTITY), identity, indent=1)
    reason = skip_reason(folder)
    if reason:
        out_print(f"anchor row skipped: {reason}")
    else:
        systems[ANCHOR_LABEL] = [folder]


def rescore_suite(suite, out, n_draws=None, report=None, conditions=None, scored_on=None, out_print=print):
    """Export and score every run of ``suite`` on its (changed) evaluation splits; write the comparison.

    Arguments
    ---------
    suite : speechbrain_ext.suite.Suite
        The suite, with the settings that point at the trial lists to score (``--set``).
    out : str
        Folder of the prepared manifests, the exports, the scores and the report.
    n_draws : int or None
        Bootstrap draws (default: the suite's).
    report : str or None
        The report path (default: ``<out>/report.md``).
    conditions : list of str or None
        The report's conditions (default: the suite's).
    scored_on : str or None
        What the trial lists are, for the report's title (e.g. the ``--set`` values).

    Returns
    -------
    str
        The report path.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); s = os.path.join(d, "s.yaml"); h = os.path.join(d, "h.yaml")
    >>> _ = open(h, "w").write("seed: 1\\noutput_root: x\\noutput_folder: y\\n")
    >>> _ = open(s, "w").write("title: t\\nrecipe: h.yaml\\nruns: r\\nreport: r.md\\nseeds: [1]\\n"
    ...                        "reference: h\\nrows: [{hparams: h.yaml}]\\n")
    >>> rescore_suite(load_suite(s, runs=os.path.join(d, "runs")), os.path.join(d, "out"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechbrain_ext.suite.SuiteError: ...: run h/seed1 has not finished (no .../runs/h/seed1/report/metrics.json); ...
    """
    rows = [r for r in suite.rows if not r.variant]
    missing = [(row, seed) for row in rows for seed in suite.seeds if not is_finished(suite, row, seed)]
    if missing:
        row, seed = missing[0]
        raise SuiteError(
            f"{suite.path}: run {suite.run_key(row, seed)} has not finished (no "
            f"{os.path.join(suite.run_folder(row, seed), 'report', 'metrics.json')}); {len(missing)} run(s) "
            f"missing: train them first (python -m speechbrain_ext.suite {suite.path})")
    reference = suite.row(suite.reference)
    out_print(f"preparing the trial lists in {out}")
    prepare([reference.hparams, *_recipe_args(suite, reference, suite.seeds[0], out)])
    systems = {}
    for row in rows:
        for seed in suite.seeds:
            key = suite.run_key(row, seed)
            model_dir = os.path.join(out, "models", row.name, f"seed{seed}")
            scores = os.path.join(out, "scores", row.name, f"seed{seed}")
            _export(suite.run_folder(row, seed), model_dir)
            recipe_args = _recipe_args(suite, row, seed, out)
            identity = _identity(model_dir, recipe_args)
            if not _scored(scores, identity):
                shutil.rmtree(scores, ignore_errors=True)  # scored with other options: its embeddings too
                eval_splits, data_folder = recipe_splits(row.hparams, recipe_args)
                evaluate_model(model_dir, eval_splits, data_folder, scores, system=row.name, seed=seed,
                               n_draws=n_draws or suite.draws)
                atomic_write_json(os.path.join(scores, IDENTITY), identity, indent=1)
                out_print(f"scored {key}")
            systems.setdefault(row.label, []).append(scores)
    if suite.anchor:
        _anchor(suite, reference, out, n_draws or suite.draws, systems, out_print)
    comparisons = [SplitComparison(systems, split, n_draws=n_draws or suite.draws, seed=suite.bootstrap_seed,
                                   conditions=conditions or suite.conditions) for split in suite.splits]
    command = shlex.join(["python", "-m", "speechbrain_ext.suite_rescore", *sys.argv[1:]])
    path = report or os.path.join(out, "report.md")
    title = f"{suite.title}: the runs of {os.path.relpath(suite.runs)} scored on {scored_on or 'other trial lists'}"
    write_report(path, build_report(comparisons, reference.label, command), title=title)
    return path


class RescoreSection(Section):
    """A suite's finished runs scored on other trial lists after training, shown in its report.

    After training, :func:`rescore_suite` scores every run (and the anchor) on the trial
    lists that ``settings`` give, in ``<report folder>/<name>/`` (its full comparison in
    ``report.md`` there); the section shows that comparison (every system with 95 %
    intervals, paired differences against the reference, what the trial sets resolve).

    Arguments
    ---------
    name : str
        Folder of the scores, beside the report.
    title : str
        The section's heading.
    settings : dict
        Recipe overrides that choose the trial lists (e.g. another ``data_folder``), over the suite's.
        In a string, ``{key}`` is the suite's setting ``key`` (``"{data_folder}_expr2.4"``: a corpus
        beside the suite's, wherever a command line puts that).
    about : str
        A sentence on what the trial lists are.
    conditions : list of str or None
        Conditions shown (default: the suite's).

    Example
    -------
    >>> s = RescoreSection("expr2.4", "Stronger emotions", {"data_folder": "{data_folder}_2", "n": 3})
    >>> s.resolved({"data_folder": "data/x", "seed": 1})
    {'data_folder': 'data/x_2', 'n': 3}
    >>> s.resolved({})
    Traceback (most recent call last):
    ...
    speechbrain_ext.suite.SuiteError: section rescore expr2.4: settings.data_folder names '{data_folder}', ...
    >>> RescoreSection("a/b", "t", {"k": 1})
    Traceback (most recent call last):
    ...
    speechbrain_ext.suite.SuiteError: section rescore: name 'a/b' must be a plain folder name
    """

    def __init__(self, name, title, settings, about="", conditions=None):
        if not isinstance(name, str) or not name or os.path.basename(name) != name or name in (".", ".."):
            raise SuiteError(f"section rescore: name {name!r} must be a plain folder name")
        if not isinstance(settings, dict) or not settings:
            raise SuiteError(f"section rescore {name}: settings must be a non-empty mapping of recipe overrides")
        self.name, self.title, self.settings, self.about = name, title, dict(settings), about
        self.conditions = list(conditions) if conditions else None

    def resolved(self, suite_settings):
        """The section's settings with ``{key}`` in strings replaced by the suite's settings."""
        out = {}
        for key, value in self.settings.items():
            try:
                out[key] = value.format(**suite_settings) if isinstance(value, str) else value
            except (KeyError, IndexError) as err:
                raise SuiteError(f"section rescore {self.name}: settings.{key} names '{{{err.args[0]}}}', which is "
                                 "not a setting of the suite") from None
        return out

    def folder(self, suite):
        """Where the scores and the full comparison go."""
        return os.path.join(os.path.dirname(suite.report), self.name)

    def after_runs(self, suite, out=print):
        """Score the finished runs (kept when already scored with the same model and trial lists).

        The scoring runs as ``python -m speechbrain_ext.suite_rescore`` in a subprocess, its output
        (data preparation, progress bars) in ``<folder>/rescore.log``.
        """
        folder = self.folder(suite)
        log = os.path.join(folder, "rescore.log")
        out(f"[{time.strftime('%H:%M:%S')}] {self.title}: every run and the anchor scored on the trial lists of "
            f"{self._scored_on(suite)}, prepared when missing (log {log})")
        os.makedirs(folder, exist_ok=True)
        with open(log, "w") as f:
            done = subprocess.run(self.command(suite), stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, "OMP_NUM_THREADS": str(suite.jobs * suite.threads)})
        if done.returncode:
            raise SuiteError(f"section rescore {self.name} failed (exit status {done.returncode}); log: {log}\n"
                             f"{tail(log)}")

    def command(self, suite):
        """The ``suite_rescore`` command of this section (every setting, row and seed of ``suite`` spelled out)."""
        settings = {**dict(suite.settings), **self.resolved(dict(suite.settings))}
        folder = self.folder(suite)
        return [sys.executable, "-m", "speechbrain_ext.suite_rescore", suite.path, "--out", folder,
                "--report", os.path.join(folder, "report.md"), "--runs", suite.runs, "--draws", str(suite.draws),
                "--rows", *(r.name for r in suite.rows if not r.variant), "--seeds", *map(str, suite.seeds),
                "--set", *(f"{k}={json.dumps(v)}" for k, v in settings.items()),
                *(["--conditions", *self.conditions] if self.conditions else [])]

    def _scored_on(self, suite, code=""):
        return ", ".join(f"{code}{k}={v}{code}" for k, v in self.resolved(dict(suite.settings)).items())

    def _comparison(self, suite):
        """The comparison this section's command wrote; None when there is none or another command wrote it."""
        path = os.path.join(self.folder(suite), "report.json")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            comparison = json.load(f)
        # Another suite, row, seed or setting since (e.g. --report-only after a change): not these runs' scores.
        expected = shlex.join(["python", "-m", "speechbrain_ext.suite_rescore", *self.command(suite)[3:]])
        return comparison if comparison.get("command") == expected else None

    def summary_lines(self, suite):
        """The terminal's lines: EER [95 % CI] of every system on the headline conditions of these trials."""
        comparison = self._comparison(suite)
        if comparison is None:
            return []
        conditions = [c for c in (self.conditions or suite.conditions) if c != "neutral_neutral"][:2]
        data = {"comparison": comparison, "conditions": conditions, "splits": list(comparison["splits"])}
        return [f"{self.title}:", *terminal_summary(data, conditions)]

    def render(self, ctx):
        """The comparison of the rescored runs, its headings one level down."""
        lines = [f"## {self.title}", ""]
        comparison = self._comparison(ctx.suite)
        if comparison is None:
            return lines + ["Not scored with this suite's runs and settings yet (it runs after training; not with "
                            "`--report-only`).", ""]
        where = os.path.relpath(os.path.join(self.folder(ctx.suite), "report.md"), os.path.dirname(ctx.suite.report))
        lines += [" ".join(filter(None, [self.about, "The same runs, untouched, scored on the trial lists of "
                                         f"{self._scored_on(ctx.suite, '`')} (this comparison alone: `{where}`)."])),
                  ""]
        body = render_markdown(comparison).splitlines()[2:]  # without its own title
        return lines + [("#" + line) if line.startswith("##") else line for line in body] + [""]


def main(argv=None):
    """Command-line entry point; returns the exit status (1 with one ``error:`` line on bad input).

    Example
    -------
    >>> main(["/nonexistent/suite.yaml", "--out", "/tmp/x"])  # prints "error: suite file not found: ..."
    1
    """
    p = argparse.ArgumentParser(prog="python -m speechbrain_ext.suite_rescore", description=__doc__.split("\n")[0])
    p.add_argument("suite", help="the suite file (YAML)")
    p.add_argument("--out", required=True, help="folder of the manifests, exports, scores and report")
    p.add_argument("--set", nargs="+", default=[], metavar="key=value", dest="settings",
                   help="settings of the trial lists to score (recipe overrides), e.g. data_folder=...")
    p.add_argument("--rows", nargs="+", help="only these rows (names)")
    p.add_argument("--seeds", type=int, nargs="+", help="replace the suite's seeds")
    p.add_argument("--runs", help="replace the runs folder")
    p.add_argument("--report", help="the report path (default: <out>/report.md)")
    p.add_argument("--draws", type=int, help="bootstrap draws of the report's intervals")
    p.add_argument("--conditions", nargs="+", help="the report's conditions (default: the suite's)")
    args = p.parse_args(argv)
    try:
        suite = load_suite(args.suite, seeds=args.seeds, rows=args.rows, settings=parse_settings(args.settings),
                           runs=args.runs)
        path = rescore_suite(suite, args.out, n_draws=args.draws, report=args.report, conditions=args.conditions,
                             scored_on="the trial lists of " + ", ".join(args.settings) if args.settings else None)
    except SpeechBrainExtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
