"""The report of a suite (:mod:`speechbrain_ext.suite`): every number from the runs' own files.

:func:`collect` reads each run's ``report/metrics.json`` (:func:`speechbrain_ext.report.read_metrics`)
and ``train_log.jsonl`` (:func:`speechbrain_ext.epoch_log.read_epoch_log`); a finished run
without its log or score files is an error naming the run. :func:`write_report` writes
``<report>.md`` and ``<report>.json``:

- every EER and minDCF (p_target 0.01 and 0.05) of the headline conditions, eval and ood
  side by side, with its 95 % speaker-bootstrap interval over speakers and seeds, the
  paired differences against the reference row with their intervals and verdicts, and the
  smallest difference each trial set resolves: all from
  :class:`speechbrain_ext.compare.SplitComparison` / :func:`speechbrain_ext.compare_report.build_report`
  (the verdict words are compare's, from the interval only);
- the external anchor (the suite's ``anchor``) as one more system on the same trials;
- the suite's extra sections (:class:`Section`; built-in ones in :mod:`speechbrain_ext.suite_sections`);
- training cost per row (wall and CPU seconds of the runner's records; train, step and
  loader-wait seconds from the JSONL; a row that continues another: its own stage only);
- validation: the checkpoint evaluated is ``metrics.json``'s ``epoch`` (chosen by
  :mod:`speechbrain_ext.selection`, never re-derived here) and the per-epoch validation EER
  of every valid split from the JSONL;
- every condition of every split in full (:func:`speechbrain_ext.compare_report.render_markdown`).
"""

import dataclasses
import importlib.util
import math
import os

from speechbrain_ext import compare_report, epoch_log, report
from speechbrain_ext.bootstrap import metric_keys
from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write, atomic_write_json
from speechbrain_ext.suite import SuiteError
from speechbrain_ext.suite_records import times_whole_run

__all__ = ["ANCHOR_LABEL", "ReportContext", "RunResult", "Section", "collect", "mean_std", "resolve_sections",
           "terminal_summary", "write_report"]

FORMAT = "speechbrain_ext.suite_report/1"
P_TARGETS = (0.01, 0.05)
ANCHOR_LABEL = "Resemblyzer (external anchor)"


class Section:
    """A report section a suite adds (``sections:``); subclasses override :meth:`render` (and :meth:`after_runs`).

    Keyword arguments of the suite's ``{section: NAME, key: value}`` reach ``__init__``.

    Example
    -------
    >>> class Hello(Section):
    ...     def render(self, ctx):
    ...         return ["## Hello", ""]
    >>> Hello().render(None)
    ['## Hello', '']
    """

    def after_runs(self, suite, out=print):
        """Work after training (e.g. a probe of every run); not run with ``--report-only``."""

    def render(self, ctx):
        """The section's markdown lines (:class:`ReportContext` gives the runs and the comparison)."""
        return []

    def summary_lines(self, suite):
        """Lines a demo adds to its closing summary (:mod:`speechbrain_ext.suite_demo`); none by default."""
        return []


def resolve_sections(suite):
    """The suite's sections as :class:`Section` objects (built-in names or ``FILE.py:NAME``).

    Raises
    ------
    SuiteError
        Naming the suite file and the section that cannot be found or built.
    """
    from speechbrain_ext import suite_sections

    out = []
    for i, (spec, options) in enumerate(suite.sections):
        where = f"{suite.path}: sections[{i}] ({spec})"
        if ":" in spec:
            file, _, name = spec.partition(":")
            module_spec = importlib.util.spec_from_file_location(f"suite_section_{i}", file)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            factory = vars(module).get(name)
        else:
            factory = suite_sections.SECTIONS.get(spec)
            if factory is None:
                raise SuiteError(f"{where}: no built-in section of that name ({', '.join(suite_sections.SECTIONS)})")
        if not (isinstance(factory, type) and issubclass(factory, Section)):
            raise SuiteError(f"{where}: not a Section class (speechbrain_ext.suite_report.Section)")
        try:
            out.append(factory(**dict(options)))
        except TypeError as err:
            raise SuiteError(f"{where}: bad options {dict(options)}: {err}") from err
    return out


@dataclasses.dataclass
class RunResult:
    """One run as its files left it: ``metrics`` is None until it finished."""

    row: object
    seed: int
    folder: str
    metrics: dict = None
    epochs: list = dataclasses.field(default_factory=list)
    record: dict = dataclasses.field(default_factory=dict)


def collect(suite):
    """``{(row name, seed): RunResult}`` of every run of the suite (finished or not).

    Raises
    ------
    SuiteError
        A finished run (``report/metrics.json``) without ``train_log.jsonl``, whose
        ``metrics.json`` or log is damaged, trained with another configuration or evaluated
        with other evaluation settings (:func:`speechbrain_ext.suite_runner.check_finished`):
        the message names the run.
    """
    from speechbrain_ext.suite_runner import check_finished, read_records

    records = read_records(suite.runs) if os.path.isdir(suite.runs) else {}
    out = {}
    for row in suite.rows:
        for seed in suite.seeds:
            folder = suite.run_folder(row, seed)
            result = RunResult(row, seed, folder, record=records.get(suite.run_key(row, seed), {}))
            if os.path.isfile(os.path.join(folder, "report", report.METRICS_FILE)):
                if check_finished(suite, row, seed):  # never report a run of another configuration
                    raise SuiteError(
                        f"{suite.path}: run {suite.run_key(row, seed)} was evaluated with other evaluation "
                        "settings than its system file's now: run the suite (not --report-only) to evaluate it again")
                log = epoch_log.log_path(os.path.join(folder, "train_log.txt"))
                try:
                    result.metrics = report.read_metrics(os.path.join(folder, "report"))
                    if not os.path.isfile(log):
                        raise SuiteError(f"no {os.path.basename(log)} (the per-epoch training log)")
                    result.epochs = epoch_log.read_epoch_log(log)
                except SpeechBrainExtError as err:
                    raise SuiteError(f"{suite.path}: run {suite.run_key(row, seed)} ({folder}): {err}") from err
            out[(row.name, seed)] = result
    return out


def mean_std(values):
    """``(mean, sample std)`` of the values that are not None (std 0 for one, ``(nan, nan)`` for none).

    Example
    -------
    >>> mean_std([1.0, 2.0, 3.0, None])
    (2.0, 1.0)
    """
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt(mean, std=None, digits=2):
    """``mean ± std`` (``n/a`` for nan).

    Example
    -------
    >>> fmt(1.234, 0.5), fmt(math.nan), fmt(2.0, digits=0)
    ('1.23 ± 0.50', 'n/a', '2')
    """
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None or math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _num(key, value, signed=False):
    if value is None:
        return "n/a"
    scale, digits = (100.0, 2) if key == "eer" else (1.0, 3)
    text = f"{scale * value:{'+' if signed else ''}.{digits}f}"
    return text[1:] if signed and float(text) == 0 else text


def interval_cell(key, value, low, high, verdict=None, signed=False):
    """``value [low, high]`` (EER in %, minDCF as is), then the verdict in bold.

    Example
    -------
    >>> interval_cell("eer", -0.0052, -0.009, -0.001, "better", signed=True)
    '-0.52 [-0.90, -0.10] **better**'
    """
    text = f"{_num(key, value, signed)} [{_num(key, low, signed)}, {_num(key, high, signed)}]"
    return f"{text} **{verdict}**" if verdict else text


def _label(key):
    return "EER (%)" if key == "eer" else f"minDCF({key[len('min_dcf_p'):]})"


@dataclasses.dataclass
class ReportContext:
    """What a section needs: the suite, its runs, the comparison (``build_report``'s dict) and the figure paths."""

    suite: object
    runs: dict
    comparison: dict
    figure_dir: str
    stem: str
    anchor_note: str = ""

    def finished(self, row):
        """The finished runs of a row, seed order."""
        return [r for s in self.suite.seeds if (r := self.runs[(row.name, s)]).metrics is not None]

    @property
    def rows(self):
        """The compared rows with at least one finished run."""
        return [r for r in self.suite.compared if self.finished(r)]

    def log_values(self, row, stage, key, last_only=False):
        """A statistic of the JSONL (``stage``: ``train``, or a valid split) of every epoch (or the last) and run."""
        values = []
        for run in self.finished(row):
            for epoch in run.epochs[-1:] if last_only else run.epochs:
                section = epoch.get("train", {}) if stage == "train" else epoch.get("valid", {}).get(stage, {})
                if section.get(key) is not None:
                    values.append(section[key])
        return values

    def summary(self, split, condition, system):
        """The comparison's summary row of ``system`` on ``condition`` (or a condition it is an alias of)."""
        data = self.comparison["splits"].get(split, {})
        for row in data.get("summary", []):
            if row["system"] == system and (row["condition"] == condition or condition in row["aliases"]):
                return row
        return None

    def difference(self, split, condition, system, base=None):
        """The paired difference of ``system`` vs the reference (or vs its ``compare_with`` row ``base``)."""
        data = self.comparison["splits"].get(split, {})
        kept = next((c for c, a in data.get("aliases", {}).items() if condition in a), condition)
        for row in data.get("differences" if base is None else "own_base", []):
            if row["system"] == system and row["condition"] == kept and base in (None, row["reference"]):
                return row
        return None


# ---------------------------------------------------------------------------- comparison
def _anchor(suite):
    """``(folder or None, note)``: the anchor's run folder when it was scored, else why not."""
    from speechbrain_ext.anchor import skip_reason

    if not suite.anchor:
        return None, ""
    folder = suite.anchor_folder
    reason = skip_reason(folder)
    if reason:
        return None, f"anchor row skipped: {reason}"
    if not os.path.isfile(os.path.join(folder, report.METRICS_FILE)):
        return None, f"anchor row missing: {folder} has no metrics.json yet (the runner scores it with the runs)"
    return folder, f"{ANCHOR_LABEL}: `{os.path.relpath(folder)}`"


def compare(suite, runs, command=None):
    """``build_report``'s dict of every split of the suite, plus the anchor's note."""
    ctx = ReportContext(suite, runs, {}, "", "")
    systems = {row.label: [r.folder for r in ctx.finished(row)] for row in ctx.rows}
    anchor_folder, note = _anchor(suite)
    if anchor_folder:
        systems[ANCHOR_LABEL] = [anchor_folder]
    if not systems:
        return {"splits": {}, "settings": {"reference": None}}, note
    reference = suite.row(suite.reference).label if suite.row(suite.reference).label in systems else None
    comparisons = []
    for split in suite.splits:
        try:
            comparisons.append(SplitComparison(systems, split, n_draws=suite.draws, seed=suite.bootstrap_seed,
                                               p_targets=P_TARGETS))
        except SpeechBrainExtError as err:
            raise SuiteError(f"{suite.path}: split {split!r}: {err}") from err
    report = compare_report.build_report(comparisons, reference, command)
    chosen = {row.name for row in suite.rows}  # --rows may leave a row's base out: then no such pair
    pairs = [(row.label, suite.row(row.compare_with).label) for row in ctx.rows if row.compare_with in chosen]
    for cmp in comparisons:  # each row against its own base (compare_with), where both have finished runs
        report["splits"][cmp.split]["own_base"] = [d for system, base in pairs if {system, base} <= set(systems)
                                                   for d in cmp.difference(system, base)]
    return report, note


# ---------------------------------------------------------------------------- the markdown
def _headline(ctx):
    suite, keys = ctx.suite, metric_keys(P_TARGETS)
    splits = [s for s in suite.splits if s in ctx.comparison["splits"]]
    systems = [*(r.label for r in ctx.rows), *([ANCHOR_LABEL] if ctx.anchor_note.startswith(ANCHOR_LABEL) else [])]
    reference = ctx.comparison["settings"]["reference"]
    lines = []
    for key in keys:
        columns = [(c, s) for c in suite.conditions for s in splits]
        header = " | ".join(f"`{c}` {s}" for c, s in columns)
        lines += [f"## {_label(key)} [95 % CI]", "", f"| system | runs | {header} |",
                  "|:---|---:|" + "---:|" * len(columns)]
        for system in systems:
            cells, n_runs = [], "–"
            for c, s in columns:
                row = ctx.summary(s, c, system)
                n_runs = row["n_runs"] if row else n_runs
                m = row["metrics"][key] if row else None
                cells.append(interval_cell(key, m["value"], m["low"], m["high"]) if m else "n/a")
            lines.append(f"| {system} | {n_runs} | " + " | ".join(cells) + " |")
        lines.append("")
        if reference:
            lines += [f"Paired difference vs {reference} (points of EER, minDCF as is) and verdict:", "",
                      f"| system | pairing | {header} |", "|:---|:---|" + "---:|" * len(columns)]
            for system in [s for s in systems if s != reference]:
                pairing, cells = _difference_cells(ctx, columns, key, system)
                lines.append(f"| {system} | {pairing} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def _difference_cells(ctx, columns, key, system, base=None):
    """``(pairing, cells)``: ``system``'s paired differences on metric ``key`` in each ``(condition, split)``."""
    cells, pairing = [], "–"
    for c, s in columns:
        d = ctx.difference(s, c, system, base)
        if d is None:
            cells.append("n/a")
            continue
        pairing = "paired by seed" if d["paired_seeds"] else f"unpaired ({d['n_runs'][0]} vs {d['n_runs'][1]} runs)"
        m = d["metrics"][key]
        cells.append(interval_cell(key, m["difference"], m["low"], m["high"], m["verdict"], signed=True))
    return pairing, cells


def _own_base(ctx):
    """Rows with ``compare_with``: their paired differences against that row, every headline metric."""
    splits = [s for s in ctx.suite.splits if ctx.comparison["splits"].get(s, {}).get("own_base")]
    if not splits:
        return []
    columns = [(c, s) for c in ctx.suite.conditions for s in splits]
    header = " | ".join(f"`{c}` {s}" for c, s in columns)
    lines = ["## Against its own base", "",
             "Rows that add one thing to another row (`compare_with` in the suite file), paired with that row as "
             "above (same speaker draws, runs paired by seed).", ""]
    for key in metric_keys(P_TARGETS):
        lines += [f"{_label(key)}, system − its base:", "", f"| system | base | pairing | {header} |",
                  "|:---|:---|:---|" + "---:|" * len(columns)]
        pairs = dict.fromkeys((d["system"], d["reference"]) for s in splits for d in ctx.comparison["splits"][s]
                              ["own_base"])
        for system, base in pairs:
            pairing, cells = _difference_cells(ctx, columns, key, system, base)
            lines.append(f"| {system} | {base} | {pairing} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _resolution(ctx):
    lines = ["## What the trial sets can resolve", "",
             "Per split and headline condition: the one-trial steps (one miss / one false alarm) and the median "
             "half-width of the paired-difference intervals; a difference smaller than the larger of the two is "
             "not resolvable on these trials.", "",
             "| split | condition | targets | non-targets | speakers | EER step (points) | half-width ΔEER (points) "
             "| half-width ΔminDCF(0.01) | half-width ΔminDCF(0.05) |",
             "|:---|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for split, data in ctx.comparison["splits"].items():
        for r in data["resolution"]:
            names = {r["condition"], *data["aliases"].get(r["condition"], [])}
            if not names & set(ctx.suite.conditions):
                continue
            widths = [_num(k, r["half_width"][k]) for k in metric_keys(P_TARGETS)]
            step = " / ".join(_num("eer", s) for s in r["steps"]["eer"])
            lines.append(f"| {split} | `{r['condition']}` | {r['n_target']:,} | {r['n_nontarget']:,} "
                         f"| {r['n_speakers']} | {step} | " + " | ".join(widths) + " |")
    return lines + [""]


def _systems(ctx):
    suite = ctx.suite
    lines = ["## Systems", "", "| system | system file | overrides | finished seeds | evaluated epoch per seed "
             "(metrics.json) |", "|:---|:---|:---|:---|:---|"]
    for row in suite.rows:
        runs = ctx.finished(row)
        stage = [f"continues the `{row.continues}` run of the same seed"] if row.continues else []
        overrides = ", ".join([*stage, *(f"`{k}={v}`" for k, v in row.overrides)]) or "—"
        epochs = ", ".join(f"{r.seed}: {r.metrics.get('epoch', 'n/a')}" for r in runs) or "—"
        label = f"{row.label} (variant: validation only)" if row.variant else row.label
        lines.append(f"| {label} | `{os.path.relpath(row.hparams)}` | {overrides} "
                     f"| {', '.join(str(r.seed) for r in runs) or 'none'} | {epochs} |")
    return lines + [""]


def _training_seconds(run):
    """A run's training-stage and validation seconds summed over its epochs (``train_log.jsonl``)."""
    return sum((e.get("train", {}).get("seconds") or 0) + (e.get("valid_seconds") or 0) for e in run.epochs)


def _relative_cost(ctx, rows):
    """``({row name: its runs' mean training seconds / the reference row's}, the reference's mean seconds)``.

    Empty (and None) when the reference row has no timed run.
    """
    reference = mean_std([_training_seconds(r) for r in ctx.finished(ctx.suite.row(ctx.suite.reference))])[0]
    if math.isnan(reference) or not reference:
        return {}, None
    timed = {row.name: [t for r in ctx.finished(row) if (t := _training_seconds(r))] for row in rows}
    return {name: mean_std(values)[0] / reference for name, values in timed.items() if values}, reference


def _cost(ctx):
    lines = ["## Training cost", "",
             "Per run, mean ± std over its seeds: wall and CPU time of the whole run (training, validation, "
             "evaluation; CPU = user + system of the run and its DataLoader workers, from the runner's records); "
             "per epoch from `train_log.jsonl`: the training stage's wall time, the time inside training steps, "
             "and the loader-wait share = wait / (wait + step) summed over every epoch and seed.", "",
             "| system | wall min / run | CPU min / run | epochs | train s / epoch | step s / epoch "
             "| loader wait share | valid s / epoch | relative cost |", "|:---|" + "---:|" * 8]
    rows = [*ctx.rows, *(r for r in ctx.suite.rows if r.variant and ctx.finished(r))]
    relative, reference_seconds = _relative_cost(ctx, rows)
    for row in rows:
        runs = ctx.finished(row)
        whole = [r.record for r in runs if times_whole_run(r.record)]
        walls, cpus = [r.get("wall_seconds") for r in whole], [r.get("cpu_seconds") for r in whole]
        steps, waits = ctx.log_values(row, "train", "step_seconds"), ctx.log_values(row, "train", "loader_wait_seconds")
        share = f"{100 * sum(waits) / (sum(waits) + sum(steps)):.1f} %" if steps and sum(steps) + sum(waits) else "n/a"
        valid = [e.get("valid_seconds") for r in runs for e in r.epochs]
        wall, cpu = (fmt(*(v / 60 for v in mean_std(values)), 1) for values in (walls, cpus))
        lines.append(
            f"| {row.label} | {wall} | {cpu} | {fmt(mean_std([len(r.epochs) for r in runs])[0], digits=0)} "
            f"| {fmt(*mean_std(ctx.log_values(row, 'train', 'seconds')), 1)} | {fmt(*mean_std(steps), 1)} | {share} "
            f"| {fmt(*mean_std(valid), 1)} | {f'{relative[row.name]:.2f}' if row.name in relative else 'n/a'} |")
    if relative:
        units = sum(len(ctx.finished(row)) * relative[row.name] for row in rows if row.name in relative)
        label = ctx.suite.row(ctx.suite.reference).label
        lines += ["", f"Relative cost: a run's training and validation seconds (`train_log.jsonl`) over the mean of "
                  f"{label}'s runs. A ratio carries to another machine where minutes do not (when the runs were "
                  f"timed under like load). The finished runs cost {units:.1f} {label} runs; {ctx.suite.jobs} at "
                  f"a time, about {units / ctx.suite.jobs:.1f} of them in wall time (one here: "
                  f"{reference_seconds / 60:.1f} min of training and validation), plus start-up, evaluation and "
                  "the sections' own work."]
    for row in (r for r in ctx.rows if r.continues):
        lines += ["", f"{row.label}: times of its fine-tuning stage only; it continues {row.continues} (add its)."]
    jobs = sorted({r.record.get("jobs") for k, r in ctx.runs.items() if r.record.get("jobs")})
    if jobs and max(jobs) > 1:
        lines += ["", f"Runs were trained {max(jobs)} at a time (`jobs`): their wall times include waiting for a core."]
    return lines + [""]


def _validation(ctx):
    rows = [*ctx.rows, *(r for r in ctx.suite.rows if r.variant and ctx.finished(r))]
    lines = ["## Validation (checkpoint selection)", "",
             "The checkpoint evaluated is the one the recipe selected (`metrics.json`'s `epoch`: lowest selection "
             "EER, ties to the later epoch, `speechbrain_ext.selection`); its selection EER is `valid_EER`.", "",
             "| system | evaluated epoch per seed | selection EER (%) of it | evaluated = last epoch |",
             "|:---|:---|---:|---:|"]
    for row in rows:
        runs = ctx.finished(row)
        last = sum(r.metrics.get("epoch") == (r.epochs[-1]["epoch"] if r.epochs else None) for r in runs)
        lines.append(f"| {row.label} | {', '.join(str(r.metrics.get('epoch', 'n/a')) for r in runs)} "
                     f"| {fmt(*mean_std([r.metrics.get('valid_EER') for r in runs]))} | {last} of {len(runs)} |")
    n_epochs = max((len(r.epochs) for row in rows for r in ctx.finished(row)), default=0)
    names = list(dict.fromkeys(name for row in rows for r in ctx.finished(row) for e in r.epochs
                               for name in e.get("valid", {})))
    for name in names:
        lines += ["", f"Validation EER (%) on `{name}` per epoch, mean over seeds (`train_log.jsonl`):", "",
                  "| system | " + " | ".join(f"ep {e}" for e in range(1, n_epochs + 1)) + " |",
                  "|:---|" + "---:|" * n_epochs]
        for row in rows:
            per_epoch = {}
            for r in ctx.finished(row):
                for e in r.epochs:
                    per_epoch.setdefault(e["epoch"], []).append(e.get("valid", {}).get(name, {}).get("EER"))
            cells = [fmt(mean_std(per_epoch.get(e, []))[0]) for e in range(1, n_epochs + 1)]
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    if any(r.variant for r in rows):
        lines += ["", "Variants (rows with `--variants` overrides) are trained to look into a cause on the validation "
                  "speakers only; their evaluation results are deliberately not reported."]
    return lines + [""]


def _header(ctx, command):
    suite = ctx.suite
    lines = [f"# {suite.title}", ""]
    if suite.about:
        lines += [suite.about.strip(), ""]
    shown = suite.command or f"python -m speechbrain_ext.suite {os.path.relpath(suite.path)}"
    lines += [f"**Command.** `{shown}`" + (f" (this report: `{command}`)" if command and command != shown else "")
              + f"; suite file `{os.path.relpath(suite.path)}`, runs in `{os.path.relpath(suite.runs)}`: finished "
              "runs are skipped, so the same command resumes an interrupted suite and rebuilds this report.", ""]
    settings = ", ".join(f"`{k}={v}`" for k, v in suite.settings) or "none (the recipe's own settings)"
    lines += [f"**Settings.** Recipe `{os.path.relpath(suite.recipe)}`; seeds {', '.join(map(str, suite.seeds))}; "
              f"overrides of every run: {settings}; {suite.jobs} run(s) at a time, "
              f"`OMP_NUM_THREADS={suite.threads}`."
              + (f" **Rows of the suite file not run for this report** (`--rows`): {', '.join(suite.left_out)}."
                 if suite.left_out else ""), ""]
    timed = [r for r in ctx.runs.values() if r.metrics is not None and r.record.get("returncode") == 0]
    records = [r.record for r in timed if times_whole_run(r.record)]
    resumed = [f"{r.row.name}/seed{r.seed} (after epoch {r.record['epochs_before']})" for r in timed
               if not times_whole_run(r.record)]
    measured = []
    if records:
        wall, cpu = sum(r["wall_seconds"] for r in records), sum(r["cpu_seconds"] for r in records)
        loads = [r.get("load_average") for r in records]
        measured.append(f"{len(records)} run(s): {wall / 60:.1f} min of run wall time in total "
                        f"({cpu / 60:.1f} min CPU), load average when each ended {fmt(*mean_std(loads), 1)}.")
    if resumed:
        measured.append(f"{'Not in these times' if records else 'No run timed whole'}: {len(resumed)} run(s) "
                        f"resumed from a checkpoint of an interrupted job, whose records time only the rest: "
                        f"{', '.join(resumed)}.")
    if measured:
        lines += ["**Measured.** " + " ".join(measured), ""]
    missing = [k for k, r in ctx.runs.items() if r.metrics is None]
    if missing:
        lines += ["**Missing runs** (not finished): " + ", ".join(f"{n}/seed{s}" for n, s in missing) + ".", ""]
    if ctx.anchor_note:
        lines += [f"**Anchor.** {ctx.anchor_note}", ""]
    if ctx.comparison.get("format"):
        paragraphs = compare_report.render_markdown(ctx.comparison).split("\n\n")
        lines += [next(p for p in paragraphs if p.startswith("Every value")), ""]
    return lines


def _full(ctx):
    if not ctx.comparison.get("format"):
        return []
    text = compare_report.render_markdown(ctx.comparison, "Every condition of every split")
    return ["#" + line if line.startswith("#") else line for line in text.splitlines()] + [""]


def write_report(suite, sections=(), command=None):
    """Write ``suite.report`` (markdown), its ``.json`` and figures; returns ``{"report", "json", "data"}``."""
    runs = collect(suite)
    comparison, note = compare(suite, runs, command)
    stem, _ = os.path.splitext(suite.report)
    ctx = ReportContext(suite, runs, comparison, os.path.dirname(suite.report), os.path.basename(stem), note)
    lines = _header(ctx, command) + _systems(ctx)
    if ctx.comparison.get("format"):
        lines += _headline(ctx) + _own_base(ctx) + _resolution(ctx)
    for section in sections:
        lines += section.render(ctx)
    lines += _cost(ctx) + _validation(ctx) + _full(ctx)
    os.makedirs(ctx.figure_dir, exist_ok=True)
    with atomic_write(suite.report) as f:
        f.write("\n".join(lines).rstrip() + "\n")
    data = {"format": FORMAT, "suite": suite.path, "title": suite.title, "conditions": list(suite.conditions),
            "splits": list(suite.splits), "anchor": note, "comparison": comparison,
            "runs": {f"{n}/seed{s}": {"folder": r.folder, "finished": r.metrics is not None,
                                      "epoch": (r.metrics or {}).get("epoch"), "record": r.record}
                     for (n, s), r in runs.items()}}
    atomic_write_json(stem + ".json", data, allow_nan=False)
    return {"report": suite.report, "json": stem + ".json", "data": data}


def terminal_summary(data, conditions=None):
    """A few lines for the terminal: EER [95 % CI] of every system on the first headline conditions.

    Example
    -------
    >>> terminal_summary({"comparison": {"splits": {}}, "conditions": ["all"], "splits": ["eval"], "anchor": ""})
    ['no finished run to summarise']
    """
    conditions = list(conditions or data["conditions"][:2])
    columns = [(c, s) for c in conditions for s in data["splits"] if s in data["comparison"]["splits"]]
    if not columns:
        return ["no finished run to summarise"]
    table = {}
    for c, s in columns:
        for row in data["comparison"]["splits"][s]["summary"]:
            if row["condition"] == c or c in row["aliases"]:
                m = row["metrics"]["eer"]
                table.setdefault(row["system"], {})[(c, s)] = interval_cell("eer", m["value"], m["low"], m["high"])
    width = max(len("EER % [95 % CI]"), *(len(n) for n in table))
    lines = [f"{'EER % [95 % CI]':<{width}}  " + "  ".join(f"{c} {s}".ljust(22) for c, s in columns)]
    for name, cells in table.items():
        lines.append(f"{name:<{width}}  " + "  ".join(cells.get(k, "n/a").ljust(22) for k in columns))
    return lines + ([data["anchor"]] if data.get("anchor", "").startswith("anchor row") else [])
