"""A suite of experiments as data: rows (systems) x seeds through one recipe, with shared settings.

A suite file (YAML) names everything a comparison of systems needs; nothing in it is
specific to a corpus or a method::

    title: Contrastive training on SynthEmo       # report heading
    about: Rows of methods.md A.                  # a paragraph under it (optional)
    command: make ablation-contrastive            # how users run it, shown in the report (optional)
    recipe: ../train.py                           # the recipe script (relative to this file)
    runs: results/ablation/SynthEmo               # run folders (relative to the working directory)
    report: results/ablation_contrastive.md       # the report (same)
    seeds: [1986, 1987, 1988, 1989, 1990]
    jobs: 2                                       # runs trained at once
    threads: 1                                    # OMP_NUM_THREADS of each run
    settings: {data_folder: data/SynthEmo}        # recipe overrides applied to every run
    reference: ecapa_aam                          # the row every other one is compared with
    rows:
      - hparams: ../hparams/ecapa_aam.yaml        # system file (relative to this file)
        label: baseline (ECAPA + AAM)             # optional; default: the row name
      - hparams: ../hparams/ecapa_aam.yaml
        name: ecapa_aam_lr1e-3                    # optional; default: the file name without .yaml
        overrides: {lr: 0.001}                    # optional recipe overrides of this row
      - hparams: ../hparams/ecapa_aam_lm.yaml     # a second stage: continues the run of the same seed
        continues: ecapa_aam                      # of that row (its init_from; trained after it)
        compare_with: ecapa_aam                   # also compared with this row (its own base; optional)
    splits: [eval, ood]                           # evaluation splits reported side by side
    conditions: [all, neutral_emotional]          # headline trial conditions (the report has all)
    sections: [emotion_gap, em_probe.py:EmProbeSection]   # extra report sections (optional)
    anchor: resemblyzer                           # an external system on the same trials (optional)
    bootstrap: {draws: 1000, seed: 0}             # speaker-bootstrap draws of every interval
    prepare: true                                 # prepare the data once before the runs

Run ``(row, seed)`` trains in ``<runs>/<row name>/seed<seed>`` with
``python <recipe> <hparams> --seed <seed> --output_root <runs> --output_folder <folder>``
plus the settings and the row's overrides, so two suites with the same runs folder and
settings share the runs of a row they both have. A row that ``continues`` another gets
``--init_from <runs>/<that row>/seed<seed>`` (its system file must have the key
``init_from``, e.g. ``recipes/shared_hparams/large_margin.yaml``); the runner trains it
after that run. :func:`load_suite` checks the file
(unknown keys, missing files, override keys the system file does not have) and names
the suite file and key of anything wrong (:class:`SuiteError`). Running and reporting
are :mod:`speechbrain_ext.suite_runner` and :mod:`speechbrain_ext.suite_report`.
"""

import dataclasses
import difflib
import functools
import hashlib
import json
import os
import re
import sys

import ruamel.yaml

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.hparams import EVALUATION_KEYS, HparamsError, compose_hparams, merge_layer, yaml_tag
from speechbrain_ext.suite_values import override_args, parse_value, value_text  # noqa: F401 (their old home)

__all__ = [
    "RESERVED_KEYS", "Row", "Suite", "SuiteError", "config_digest", "config_digests", "load_suite", "parse_value",
    "parse_variant",
]

_KEYS = {
    "title": str, "about": str, "command": str, "recipe": str, "runs": str, "report": str, "seeds": list,
    "jobs": int, "threads": int, "settings": dict, "reference": str, "rows": list, "splits": list,
    "conditions": list, "sections": list, "anchor": (str, type(None)), "bootstrap": dict, "prepare": bool,
}
_REQUIRED = ("title", "recipe", "runs", "report", "seeds", "reference", "rows")
_ROW_KEYS = {"hparams": str, "name": str, "label": str, "overrides": dict, "continues": str, "compare_with": str}
_BOOTSTRAP_KEYS = {"draws": int, "seed": int}
#: Recipe keys the runner sets itself (from ``seeds`` and ``runs``).
RESERVED_KEYS = ("seed", "output_root", "output_folder")
ANCHORS = ("resemblyzer",)
_NAME = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.+=,@-]*")


class SuiteError(SpeechBrainExtError, ValueError):
    """A suite file, a run of it or a command-line change to it is wrong; the message names the file and key.

    Example
    -------
    >>> str(SuiteError("contrastive.yaml: unknown key 'sedes' (did you mean 'seeds'?)"))
    "contrastive.yaml: unknown key 'sedes' (did you mean 'seeds'?)"
    """


@dataclasses.dataclass(frozen=True)
class Row:
    """One system of a suite: a system file, optionally with recipe overrides.

    Attributes
    ----------
    name : str
        Folder name of its runs and key of the report.
    hparams : str
        Absolute path of the system file.
    label : str
        Its name in the report.
    overrides : tuple
        ``((key, value), ...)`` recipe overrides of this row (values as YAML gives them).
    variant : bool
        Trained for the validation diagnostics only (``--variants``): not in the evaluation tables.
    continues : str or None
        The row whose run of the same seed this row's run continues (its ``init_from``).
    compare_with : str or None
        A row this one is also compared with in the report (e.g. the system it adds one thing to),
        besides the suite's reference.

    Example
    -------
    >>> Row("ecapa_aam", "/r/ecapa_aam.yaml", "baseline").overrides
    ()
    """

    name: str
    hparams: str
    label: str
    overrides: tuple = ()
    variant: bool = False
    continues: str = None
    compare_with: str = None

    @functools.cached_property
    def cost_weight(self):
        """A run's expected cost relative to the baseline's: 1.6 for a system that encodes two inputs per step.

        Twice the encoder passes, but validation, evaluation and start-up do not double: measured
        1.6x (CopyPaste rows 7.6-8.0 min against the baseline's 4.8 in one seed of the emotion suite,
        7.5 against 4.7 in ``make demo``; README.md). Composed once per row (the runner and the
        time-left estimate ask for it at every job).
        """
        node = ruamel.yaml.YAML().load(compose_hparams(self.hparams)) or {}
        return 1.6 if node.get("copypaste") is not None else 1.0


@dataclasses.dataclass(frozen=True)
class Suite:
    """A loaded suite file (:func:`load_suite`); paths are absolute.

    Example
    -------
    >>> s = Suite("/s/x.yaml", "x", "T", "", "", "/r/train.py", "/runs", "/x.md", (1,), 1, 1, (),
    ...           "a", (Row("a", "/r/a.yaml", "A"),))
    >>> s.run_folder(s.rows[0], 1), s.run_key(s.rows[0], 1)
    ('/runs/a/seed1', 'a/seed1')
    """

    path: str
    name: str
    title: str
    about: str
    command: str
    recipe: str
    runs: str
    report: str
    seeds: tuple
    jobs: int
    threads: int
    settings: tuple
    reference: str
    rows: tuple
    splits: tuple = ("eval",)
    conditions: tuple = ("all",)
    sections: tuple = ()
    anchor: str = None
    draws: int = 1000
    bootstrap_seed: int = 0
    prepare: bool = True
    left_out: tuple = ()  # names of the suite file's rows that --rows left out

    def row(self, name):
        """The row called ``name`` (a :class:`SuiteError` naming the suite file otherwise)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise SuiteError(f"{self.path}: no row {name!r} (rows: {', '.join(r.name for r in self.rows)})")

    @property
    def compared(self):
        """The rows of the evaluation tables (every row that is not a variant), suite order."""
        return tuple(r for r in self.rows if not r.variant)

    def run_folder(self, row, seed):
        """``<runs>/<row name>/seed<seed>``."""
        return os.path.join(self.runs, row.name, f"seed{seed}")

    def run_key(self, row, seed):
        """``<row name>/seed<seed>``: how progress lines and records name a run."""
        return f"{row.name}/seed{seed}"

    def source(self, row, seed):
        """``(run key, run folder)`` of the run that run ``(row, seed)`` continues; None if it continues none."""
        return (f"{row.continues}/seed{seed}", os.path.join(self.runs, row.continues, f"seed{seed}")) \
            if row.continues else None

    def overrides(self, row, seed):
        """The recipe overrides of one run: settings, then the row's, then seed and folders."""
        values = dict(self.settings)
        values.update(row.overrides)
        if row.continues:
            values["init_from"] = self.source(row, seed)[1]
        values.update(seed=seed, output_root=self.runs, output_folder=self.run_folder(row, seed))
        return values

    def run_command(self, row, seed):
        """The recipe command of one run (a list for :mod:`subprocess`).

        Example
        -------
        >>> s = Suite("/s/x.yaml", "x", "T", "", "", "/r/train.py", "/runs", "/x.md", (7,), 1, 1,
        ...           (("snr_db", [5, 25]),), "a", (Row("a", "/r/a.yaml", "A", (("lr", 0.1),)),))
        >>> s.run_command(s.rows[0], 7)[2:]
        ['/r/a.yaml', '--snr_db', '[5, 25]', '--lr', '0.1', '--seed', '7', '--output_root', '/runs', \
'--output_folder', '/runs/a/seed7']
        """
        return [sys.executable, self.recipe, row.hparams, *override_args(self.overrides(row, seed))]

    @property
    def anchor_folder(self):
        """Run folder of the external anchor (``<runs>/<anchor>``): its ``metrics.json`` and ``scores/``."""
        return os.path.join(self.runs, self.anchor) if self.anchor else None


def parse_variant(spec, rows):
    """A validation-only row ``ROW:key=value[,key=value...]`` built on the suite row ``ROW``.

    Example
    -------
    >>> base = Row("ecapa_aam", "/r/ecapa_aam.yaml", "baseline")
    >>> v = parse_variant("ecapa_aam:lr=0.001,crop_seconds=3", [base])
    >>> v.name, v.label, v.overrides, v.variant
    ('ecapa_aam@lr=0.001,crop_seconds=3', 'baseline [lr=0.001, crop_seconds=3]', (('lr', 0.001), \
('crop_seconds', 3)), True)
    >>> parse_variant("ecapa_aam:lr", [base])
    Traceback (most recent call last):
    ...
    speechbrain_ext.suite.SuiteError: variant 'ecapa_aam:lr': expected ROW:key=value[,key=value...]
    """
    name, _, rest = spec.partition(":")
    pairs = [item.partition("=") for item in rest.split(",") if item]
    if not pairs or any(not eq or not re.fullmatch(r"[A-Za-z_]\w*", k) or not v for k, eq, v in pairs):
        raise SuiteError(f"variant {spec!r}: expected ROW:key=value[,key=value...]")
    base = next((r for r in rows if r.name == name), None)
    if base is None:
        raise SuiteError(f"variant {spec!r}: no row {name!r} in the suite (rows: {', '.join(r.name for r in rows)})")
    overrides = tuple((k, parse_value(v)) for k, _, v in pairs)
    tag = ",".join(f"{k}={v}" for k, _, v in pairs)
    return Row(f"{base.name}@{tag}", base.hparams, f"{base.label} [{tag.replace(',', ', ')}]",
               base.overrides + overrides, variant=True, continues=base.continues)


def _plain(node):
    """A round-trip YAML node as plain JSON-able values, tags kept, comments dropped."""
    tag = yaml_tag(node)
    if isinstance(node, dict):
        value = {str(k): _plain(v) for k, v in node.items()}
    elif isinstance(node, list):
        value = [_plain(v) for v in node]
    elif tag is not None:
        value = str(node.value)
    else:
        value = node
    return {tag: value} if tag is not None else value


def config_digests(hparams_file, overrides=None):
    """Digests of a system file's composed values (its bases included; comments, layout and null keys ignored).

    With ``overrides`` (the command line's ``{key: value}``, merged as the recipe merges them:
    plain mappings key by key), the digests are of the *effective* configuration: a value set in
    the file or on the command line gives the same digest, so moving a setting from a suite's
    overrides into the system file (adopting it as the default) changes nothing.

    Returns
    -------
    dict
        ``{"all": every value, "training": the values that are not
        :data:`~speechbrain_ext.hparams.EVALUATION_KEYS`, "evaluation": only those}``, each a
        16-hex-digit digest; the file is composed once.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "s.yaml")
    >>> _ = open(p, "w").write("lr: 0.1\\nscore_norm: none\\nspace: null\\n")
    >>> a = config_digests(p); _ = open(p, "w").write("lr: 0.1\\nscore_norm: as-norm\\nspace: null\\n")
    >>> b = config_digests(p)
    >>> a["training"] == b["training"], a["evaluation"] == b["evaluation"], a["all"] == b["all"]
    (True, False, False)
    >>> c = config_digests(p, {"space": {"x": 2}})  # the same value moved into the file: the same digests
    >>> _ = open(p, "w").write("lr: 0.1\\nscore_norm: as-norm\\nspace: {x: 2}\\n")
    >>> c == config_digests(p), c == b
    (True, False)
    """
    node = ruamel.yaml.YAML().load(compose_hparams(hparams_file)) or {}
    if overrides:
        merge_layer(node, json.loads(json.dumps(dict(overrides), default=str)))
    # a key set to null switches nothing on: adding one (as the recipe's own check allows) is no change
    values = {k: v for k, v in _plain(node).items() if v is not None}
    parts = {"all": values, "training": {k: v for k, v in values.items() if k not in EVALUATION_KEYS},
             "evaluation": {k: v for k, v in values.items() if k in EVALUATION_KEYS}}
    return {name: hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:16]
            for name, part in parts.items()}


def config_digest(hparams_file):
    """The digest of every composed value of a system file (:func:`config_digests`' ``all``).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "s.yaml")
    >>> _ = open(p, "w").write("lr: 0.1  # a comment\\nopt: !new:torch.optim.Adam\\n  lr: !ref <lr>\\n")
    >>> a = config_digest(p); _ = open(p, "w").write("lr: 0.1\\nopt: !new:torch.optim.Adam\\n  lr: !ref <lr>\\n")
    >>> a == config_digest(p), len(a)
    (True, 16)
    >>> _ = open(p, "a").write("new_switch: null\\n"); a == config_digest(p)
    True
    """
    return config_digests(hparams_file)["all"]


# ---------------------------------------------------------------------------- loading
def _suggest(key, known):
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def _check_keys(mapping, known, where):
    for key, value in mapping.items():
        if key not in known:
            raise SuiteError(f"{where}: unknown key {key!r}{_suggest(str(key), known)}")
        expected = known[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            kinds = expected if isinstance(expected, tuple) else (expected,)
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise SuiteError(f"{where}: key {key!r} must be a {names}, got {value!r}")


def _read(path):
    if not os.path.isfile(path):
        raise SuiteError(f"suite file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = ruamel.yaml.YAML(typ="safe", pure=True).load(f)
    except ruamel.yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: the top level must be a mapping of the suite keys")
    _check_keys(data, _KEYS, path)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise SuiteError(f"{path}: missing key {missing[0]!r}")
    return data


def _file(suite_path, value, key):
    path = os.path.normpath(os.path.join(os.path.dirname(suite_path), value))
    if not os.path.isfile(path):
        raise SuiteError(f"{suite_path}: {key}: no such file: {path}")
    return path


def _check_overrides(suite_path, row, values, where):
    """Every override key must exist in the row's composed system file (a typo is an error)."""
    try:
        known = set(ruamel.yaml.YAML().load(compose_hparams(row.hparams)) or {})
    except HparamsError as err:
        raise SuiteError(f"{suite_path}: row {row.name!r}: {err}") from err
    missing = [k for k in RESERVED_KEYS if k not in known]
    if missing:
        raise SuiteError(f"{suite_path}: row {row.name!r}: {row.hparams} has no key {missing[0]!r} "
                         "(the runner sets seed, output_root and output_folder)")
    if row.continues and "init_from" not in known:
        raise SuiteError(f"{suite_path}: row {row.name!r}: continues {row.continues!r}, but its system file "
                         f"{row.hparams} has no key 'init_from' (a stage that continues a run has one)")
    for key in values:
        if row.continues and key == "init_from":
            raise SuiteError(f"{suite_path}: {where}: 'init_from' of row {row.name!r} is set by its "
                             f"'continues: {row.continues}'")
        if key in RESERVED_KEYS:
            raise SuiteError(f"{suite_path}: {where}: {key!r} is set by the runner (from seeds and runs)")
        if key not in known:
            raise SuiteError(f"{suite_path}: {where}: {row.hparams} has no key {key!r}{_suggest(key, known)}")


def _rows(path, data):
    rows = []
    for i, spec in enumerate(data["rows"]):
        where = f"rows[{i}]"
        if not isinstance(spec, dict):
            raise SuiteError(f"{path}: {where}: expected a mapping with 'hparams', got {spec!r}")
        _check_keys(spec, _ROW_KEYS, f"{path}: {where}")
        if "hparams" not in spec:
            raise SuiteError(f"{path}: {where}: missing key 'hparams'")
        hparams = _file(path, spec["hparams"], f"{where}.hparams")
        name = spec.get("name") or os.path.splitext(os.path.basename(hparams))[0]
        if not _NAME.fullmatch(name):
            raise SuiteError(f"{path}: {where}: name {name!r} is not a folder name (letters, digits, _.+-=,@)")
        if name in [r.name for r in rows]:
            raise SuiteError(f"{path}: {where}: row name {name!r} is used twice (give one a 'name')")
        rows.append(Row(name, hparams, spec.get("label", name), tuple(spec.get("overrides", {}).items()),
                        continues=spec.get("continues"), compare_with=spec.get("compare_with")))
    if not rows:
        raise SuiteError(f"{path}: rows: no row")
    _check_continues(path, rows)
    names = [r.name for r in rows]
    for i, row in enumerate(rows):
        if row.compare_with is not None and (row.compare_with not in names or row.compare_with == row.name):
            what = "the row itself" if row.compare_with == row.name else \
                f"no row {row.compare_with!r}{_suggest(row.compare_with, names)}"
            raise SuiteError(f"{path}: rows[{i}] ({row.name}): compare_with: {what}")
    return rows


def _check_continues(path, rows):
    """Every ``continues`` names another row, and following them never comes back to a row."""
    by_name = {r.name: r for r in rows}
    for i, row in enumerate(rows):
        if row.continues is not None and row.continues not in by_name:
            raise SuiteError(f"{path}: rows[{i}] ({row.name}): continues: no row {row.continues!r}"
                             f"{_suggest(row.continues, by_name)}")
        chain, current = [row.name], row
        while current.continues is not None:
            if current.continues in chain:
                what = "itself" if chain == [row.name] else "a cycle: " + " -> ".join([*chain, current.continues])
                raise SuiteError(f"{path}: rows[{i}] ({row.name}): continues: the row continues {what}")
            chain.append(current.continues)
            current = by_name[current.continues]


def _sections(path, specs):
    out = []
    for i, spec in enumerate(specs):
        options = {}
        if isinstance(spec, dict):
            if "section" not in spec:
                raise SuiteError(f"{path}: sections[{i}]: a mapping needs the key 'section'")
            options = {k: v for k, v in spec.items() if k != "section"}
            spec = spec["section"]
        if not isinstance(spec, str) or not spec:
            raise SuiteError(f"{path}: sections[{i}]: expected a name or FILE.py:NAME, got {spec!r}")
        file, sep, attr = spec.partition(":")
        if sep:
            if not attr.isidentifier():
                raise SuiteError(f"{path}: sections[{i}]: {attr!r} is not a Python name")
            spec = f"{_file(path, file, f'sections[{i}]')}:{attr}"
        out.append((spec, tuple(options.items())))
    return tuple(out)


def _seeds(path, seeds):
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SuiteError(f"{path}: seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"{path}: seeds: {seeds!r} repeats a seed")
    return tuple(seeds)


def load_suite(path, *, seeds=None, rows=None, variants=(), settings=None, runs=None, report=None, jobs=None,
               threads=None, draws=None):
    """Read and check a suite file; keyword arguments change it (the command line's options).

    Arguments
    ---------
    path : str
        The suite file.
    seeds : list of int or None
        Replace ``seeds``.
    rows : list of str or None
        Keep only these rows (by name, suite order kept).
    variants : list of str
        Extra validation-only rows (:func:`parse_variant`).
    settings : dict or None
        Further settings, over the file's (typed values; the command line reads them with :func:`parse_value`).
    runs, report : str or None
        Replace the runs folder or the report path.
    jobs, threads, draws : int or None
        Replace ``jobs``, ``threads`` or the bootstrap draws.

    Returns
    -------
    Suite

    Raises
    ------
    SuiteError
        Naming the suite file and the key (or row) at fault.
    """
    path = os.path.abspath(path)
    data = _read(path)
    all_rows = _rows(path, data)
    reference = data["reference"]
    if reference not in [r.name for r in all_rows]:
        raise SuiteError(f"{path}: reference {reference!r} is not a row ({', '.join(r.name for r in all_rows)})")
    chosen = all_rows
    if rows is not None:
        unknown = [n for n in rows if n not in [r.name for r in all_rows]]
        if unknown:
            raise SuiteError(f"{path}: --rows: no row {unknown[0]!r} ({', '.join(r.name for r in all_rows)})")
        chosen = [r for r in all_rows if r.name in rows]
    chosen = chosen + [parse_variant(v, all_rows) for v in variants]
    merged = {**data.get("settings", {}), **(settings or {})}
    for row in chosen:
        _check_overrides(path, row, merged, "settings")
        _check_overrides(path, row, dict(row.overrides), f"row {row.name!r}: overrides")
    bootstrap = data.get("bootstrap", {})
    _check_keys(bootstrap, _BOOTSTRAP_KEYS, f"{path}: bootstrap")
    anchor = data.get("anchor")
    if anchor is not None and anchor not in ANCHORS:
        raise SuiteError(f"{path}: anchor: {anchor!r} is not one of {', '.join(ANCHORS)}")
    values = {"jobs": data.get("jobs", 1) if jobs is None else jobs,
              "threads": data.get("threads", 1) if threads is None else threads,
              "draws": bootstrap.get("draws", 1000) if draws is None else draws}
    for key, value in values.items():
        if value < 1:
            raise SuiteError(f"{path}: {key} must be at least 1, got {value}")
    cwd = os.getcwd()
    return Suite(
        path=path, name=os.path.splitext(os.path.basename(path))[0], title=data["title"],
        about=data.get("about", ""), command=data.get("command", ""),
        recipe=_file(path, data["recipe"], "recipe"), runs=os.path.join(cwd, runs or data["runs"]),
        report=os.path.join(cwd, report or data["report"]),
        seeds=_seeds(path, data["seeds"] if seeds is None else list(seeds)), jobs=values["jobs"],
        threads=values["threads"], settings=tuple(merged.items()), reference=reference, rows=tuple(chosen),
        splits=tuple(data.get("splits", ["eval"])), conditions=tuple(data.get("conditions", ["all"])),
        sections=_sections(path, data.get("sections", [])), anchor=anchor, draws=values["draws"],
        bootstrap_seed=bootstrap.get("seed", 0), prepare=data.get("prepare", True),
        left_out=tuple(r.name for r in all_rows if r not in chosen),
    )


if __name__ == "__main__":
    from speechbrain_ext.suite_runner import main

    raise SystemExit(main())
