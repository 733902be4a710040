"""Compare systems on a split: every metric with its interval, paired differences, verdicts.

Generic over recipes: a *system* is a name and a set of runs (its seeds), a run is
anything that wrote per-trial scores (:mod:`speechbrain_ext.trial_scores`): a
SynthEmo ablation row, a CN-Celeb system, an external anchor such as Resemblyzer.

Statistics (``methods.md``, "Evaluation conventions", Uncertainty):

- Speaker bootstrap: one set of draws per split (seeded), shared by every run and
  system, resamples the test speakers with replacement and keeps each trial of a
  drawn speaker with its multiplicity (:mod:`speechbrain_ext.bootstrap`).
- Two-level bootstrap over seeds: for a system with R >= 2 runs each draw also
  resamples R of its runs with replacement, and the system's value in that draw is the
  mean of the resampled runs' metrics under that speaker draw. The point estimate is
  the mean over runs of the full-list metric; the interval is the percentile interval
  of the draws (draws without a target or non-target trial are left out and counted).
- Paired difference (system - reference): the same speaker draws for both. When both
  systems have the same recorded seeds, the runs are paired by seed and the draw
  resamples seeds jointly (the mean of the resampled per-seed paired differences);
  otherwise the two systems' runs are resampled independently (paired over speakers
  only), and the report says so. Verdict: "better" when the whole interval is below 0
  (lower error), "worse" when above, otherwise "not resolved".
- Resolution: per condition, the one-trial steps of every metric
  (:func:`speechbrain_ext.bootstrap.one_trial_steps`) and the half-width of the
  paired-difference intervals.

Conditions whose trials and scores are identical in every run (SynthEmo's
``test_neutral`` is ``neutral_neutral``) are reported once, the other names listed as aliases.

``measure`` chooses what is compared: the scores (EER, minDCF), or the per-trial LLRs of a
calibration stored in the score files (``calibrated``, ``plain``: Cllr and actual DCF,
:mod:`speechbrain_ext.bootstrap_llr`), e.g. two calibration choices on the same runs.

Command line::

    python -m speechbrain_ext.compare --reference baseline \\
        baseline=runs/b1,runs/b2 supcon=runs/s1,runs/s2 --split eval ood --out report.md [--llr calibrated]
"""

import dataclasses
import hashlib
import os
import re

import numpy as np

from . import bootstrap
from .bootstrap_llr import SpeakerLLRs, llr_metric_keys
from .errors import SpeechBrainExtError
from .seeding import keyed_draw
from .trial_scores import MissingScoresError, TrialScores, load_trial_scores, scores_path

__all__ = ["SCORES", "ComparisonError", "SplitComparison", "find_scores", "load_run", "paired_difference", "summarise",
           "verdict"]


#: ``measure`` of a comparison of the scores (EER, minDCF); any other value names an LLR kind.
SCORES = "scores"


class ComparisonError(SpeechBrainExtError, ValueError):
    """Runs that cannot be compared as asked; the message names the system, run and condition.

    Example
    -------
    >>> isinstance(ComparisonError("system 'a' is given twice"), ValueError)
    True
    """


def verdict(low, high):
    """The verdict of a difference interval (system - reference; lower error is better).

    Example
    -------
    >>> verdict(-0.02, -0.001), verdict(0.001, 0.02), verdict(-0.01, 0.01), verdict(0.0, 0.0)
    ('better', 'worse', 'not resolved', 'not resolved')
    """
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    return "not resolved"


def find_scores(run, split):
    """The score file of ``split`` for a run given as a file or folder.

    A folder is looked up as a report folder (``<run>/scores/<split>.npz``), then as an
    experiment folder (``<run>/report/scores/<split>.npz``); a ``.npz`` path is used as is.

    Example
    -------
    >>> import tempfile; d = tempfile.mkdtemp()
    >>> find_scores(d, "eval")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    speechbrain_ext.trial_scores.MissingScoresError: run ...: no per-trial scores of split 'eval' (looked for ...
    """
    run = os.fspath(run)
    if run.endswith(".npz"):
        return run
    if not os.path.isdir(run):
        raise MissingScoresError(f"run {run}: no such folder or score file")
    candidates = [scores_path(run, split), scores_path(os.path.join(run, "report"), split)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise MissingScoresError(
        f"run {run}: no per-trial scores of split {split!r} (looked for {', '.join(candidates)}); "
        "the evaluation stage writes them with speechbrain_ext.trial_scores.save_trial_scores"
    )


def _seed_from_hyperparams(run):
    path = os.path.join(run, "hyperparams.yaml")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            found = re.fullmatch(r"seed:\s*(-?\d+)\s*", line.rstrip("\n"))
            if found:
                return int(found.group(1))
    return None


def load_run(run, split="eval"):
    """A run's :class:`~speechbrain_ext.trial_scores.TrialScores` of ``split``.

    ``run`` is a :class:`TrialScores` (returned as is), a score file or a run folder
    (:func:`find_scores`). The seed comes from the file's ``meta``, else from a
    ``seed:`` line of the folder's ``hyperparams.yaml``.

    Example
    -------
    >>> ts = TrialScores("mem", ("A",), {}, {"seed": 3})
    >>> load_run(ts) is ts
    True
    """
    if isinstance(run, TrialScores):
        return run
    scores = load_trial_scores(find_scores(run, split))
    if scores.seed is None and os.path.isdir(os.fspath(run)):
        seed = _seed_from_hyperparams(os.fspath(run))
        if seed is not None:
            scores = dataclasses.replace(scores, meta={**scores.meta, "seed": seed})
    return scores


def _digest(arrays):
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class SplitComparison:
    """Every system of one split, bootstrapped once; summaries and paired differences from it.

    Arguments
    ---------
    systems : dict
        ``{system name: [run, ...]}``: runs as folders, score files or TrialScores (one per seed).
    split : str
        The split whose score files are read (``eval``, ``ood``...).
    n_draws : int
        Bootstrap draws (methods.md: at least 1,000).
    seed : int
        Seed of the draws; the same seed gives the same report.
    p_targets : sequence of float
        Priors of the minDCF values.
    level : float
        Interval coverage.
    conditions : sequence of str or None
        Restrict to these conditions (default: all).
    measure : str
        :data:`SCORES` (EER and minDCF of the scores), or an LLR kind of the score files
        (``calibrated``, ``plain``): Cllr and actual DCF of those LLRs; every run must hold them.

    Example
    -------
    >>> rng = np.random.default_rng(0); spk = np.repeat(np.arange(20), 10).astype(np.int32)
    >>> lab = np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20).astype(np.int8)
    >>> run = lambda shift, s: TrialScores(f"run{s}", tuple(f"S{i}" for i in range(20)),
    ...     {"all": (rng.normal(size=200) + shift * lab, lab, spk)}, {"seed": s})
    >>> cmp = SplitComparison({"base": [run(1, 1), run(1, 2)], "good": [run(4, 1), run(4, 2)]}, n_draws=200)
    >>> [(r["system"], r["n_runs"]) for r in cmp.summary()]
    [('base', 2), ('good', 2)]
    >>> d = cmp.difference("good", "base")[0]
    >>> d["paired_seeds"], d["metrics"]["eer"]["verdict"]
    (True, 'better')
    """

    def __init__(self, systems, split="eval", n_draws=1000, seed=0, p_targets=(0.01, 0.05), level=0.95,
                 conditions=None, measure=SCORES):
        if not systems:
            raise ComparisonError("no system to compare")
        self.split, self.n_draws, self.seed, self.level = split, int(n_draws), int(seed), float(level)
        self.p_targets, self.measure = tuple(p_targets), measure
        self.keys = (bootstrap.metric_keys if measure == SCORES else llr_metric_keys)(self.p_targets)
        self.systems = {name: self._load_system(name, runs, conditions) for name, runs in systems.items()}
        self.speakers = self._common_speakers()
        self.conditions, self.aliases = self._merged_conditions()
        self.counts = bootstrap.speaker_draws(
            len(self.speakers), self.n_draws, keyed_draw(self.seed, "speakers", split)
        )
        self._cache = {}

    def _load_system(self, name, runs, conditions):
        runs = [load_run(r, self.split) for r in runs]
        if not runs:
            raise ComparisonError(f"system {name!r}: no run")
        paths = [r.path for r in runs]
        for i, p in enumerate(paths):
            if p in paths[:i]:
                raise ComparisonError(f"system {name!r}: run {p} is given twice")
        if conditions is not None:
            runs = [self._restrict(name, r, conditions) for r in runs]
        for run in runs:
            if self.measure != SCORES and self.measure not in run.llr_kinds:
                raise ComparisonError(f"system {name!r}: run {run.path} holds no {self.measure!r} LLRs "
                                      f"(has: {', '.join(run.llr_kinds) or 'none'}; re-evaluate it to add them)")
        seeds = [r.seed for r in runs]
        for i, s in enumerate(seeds):
            if s is not None and s in seeds[:i]:
                raise ComparisonError(f"system {name!r}: seed {s} in runs {paths[seeds.index(s)]} and {paths[i]}")
        first = runs[0]
        for run in runs[1:]:
            if sorted(run.conditions) != sorted(first.conditions):
                raise ComparisonError(
                    f"system {name!r}: run {run.path} has conditions {list(run.conditions)}, "
                    f"run {first.path} has {list(first.conditions)}"
                )
            for cond in first.conditions:
                self.check_same_trials(first, run, cond, f"system {name!r}")
        # Sorted by seed so that two systems with the same seeds pair run i with run i.
        return sorted(runs, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, r.path))

    @staticmethod
    def _restrict(name, run, conditions):
        missing = [c for c in conditions if c not in run.conditions]
        if missing:
            raise ComparisonError(f"system {name!r}: run {run.path} has no condition {missing[0]!r}")
        return dataclasses.replace(run, conditions={c: run.conditions[c] for c in conditions},
                                   llrs={k: {c: v[c] for c in conditions} for k, v in run.llrs.items()})

    @staticmethod
    def check_same_trials(a, b, condition, context="runs"):
        """Raise unless runs ``a`` and ``b`` scored ``condition`` on the same trial list.

        Same length, labels and test speakers (by name), trial by trial.

        Example
        -------
        >>> lab, spk = np.array([1, 0], np.int8), np.array([0, 0], np.int32)
        >>> a = TrialScores("a", ("S",), {"all": (np.array([.9, .1]), lab, spk)})
        >>> b = TrialScores("b", ("S",), {"all": (np.array([.8, .2]), lab[::-1].copy(), spk)})
        >>> try:
        ...     SplitComparison.check_same_trials(a, b, "all")
        ... except ComparisonError as err:
        ...     print(err)
        runs: a and b scored condition 'all' on different trial lists (labels differ at 2 of 2 trials)
        """
        _, la, sa = a.conditions[condition]
        _, lb, sb = b.conditions[condition]
        what = None
        if la.shape != lb.shape:
            what = f"{la.size} vs {lb.size} trials"
        elif not np.array_equal(la, lb):
            what = f"labels differ at {int(np.count_nonzero(la != lb))} of {la.size} trials"
        elif not (np.array_equal(sa, sb) if a.speakers == b.speakers
                  else np.array_equal(np.asarray(a.speakers)[sa], np.asarray(b.speakers)[sb])):
            what = "test speakers differ"
        if what:
            raise ComparisonError(
                f"{context}: {a.path} and {b.path} scored condition {condition!r} on different trial lists ({what})"
            )

    def _common_speakers(self):
        runs = [r for s in self.systems.values() for r in s]
        for run in runs[1:]:
            if run.speakers != runs[0].speakers:
                raise ComparisonError(
                    f"split {self.split!r}: {run.path} and {runs[0].path} have different test speakers "
                    f"({len(run.speakers)} and {len(runs[0].speakers)}); a comparison draws the same speakers for all"
                )
        return runs[0].speakers

    def _merged_conditions(self):
        order = []
        for runs in self.systems.values():
            order += [c for c in runs[0].conditions if c not in order]
        signature = {
            c: tuple(_digest(r.conditions[c]) if c in r.conditions else None for s in self.systems.values() for r in s)
            for c in order
        }
        kept, aliases = [], {}
        for c in order:
            same = next((k for k in kept if signature[k] == signature[c]), None)
            if same is None:
                kept.append(c)
            else:
                aliases.setdefault(same, []).append(c)
        return kept, aliases

    def replicates(self, system, condition, values=None, tag="scores"):
        """Per-run metrics of ``system`` on ``condition``: full list and every draw.

        Arguments
        ---------
        system, condition : str
            Which runs and trial list.
        values : callable or None
            ``values(run, condition, counts) -> {key: float64 [len(counts)]}``: another metric
            of each run (e.g. Cllr of its LLRs) under per-speaker counts; None: EER and
            minDCF of the scores.
        tag : str
            Names what ``values`` computes (the cache key).

        Returns
        -------
        point : dict
            ``{key: float64 [R]}``, the metrics of each run on the whole list.
        draws : dict
            ``{key: float64 [R, n_draws]}``; NaN for draws without a target or non-target.

        Example
        -------
        >>> lab = np.array([1, 0, 1, 0], np.int8); spk = np.array([0, 0, 1, 1], np.int32)
        >>> ts = TrialScores("r", ("A", "B"), {"all": (np.array([.9, .1, .8, .2]), lab, spk)})
        >>> point, draws = SplitComparison({"s": [ts]}, n_draws=5).replicates("s", "all")
        >>> point["eer"].tolist(), draws["eer"].shape
        ([0.0], (1, 5))
        """
        key = (system, condition, tag)
        if key not in self._cache:
            counts = np.vstack([np.ones((1, len(self.speakers)), self.counts.dtype), self.counts])
            per_run = [(values or self._score_metrics)(run, condition, counts) for run in self.systems[system]]
            point = {k: np.array([m[k][0] for m in per_run]) for k in per_run[0]}
            draws = {k: np.stack([m[k][1:] for m in per_run]) for k in per_run[0]}
            self._cache[key] = (point, draws)
        return self._cache[key]

    def _score_metrics(self, run, condition, counts):
        scores, labels, spk = run.conditions[condition]
        name = f"{run.path}: condition {condition!r}"
        if self.measure == SCORES:
            trials = bootstrap.SpeakerTrials(scores, labels, spk, len(self.speakers), name)
        else:
            trials = SpeakerLLRs(run.llr(self.measure, condition), labels, spk, len(self.speakers),
                                 f"{name}: {self.measure} LLRs")
        return trials.metrics(counts, self.p_targets)

    def system_interval(self, system, draws):
        """Two-level interval of per-run draws ``[R, n_draws]`` of ``system`` (seeds resampled as in :meth:`summary`).

        Runs' values under the same speaker draw, e.g. a within-run difference of two of
        their metrics, get the system's interval over speakers and seeds.
        """
        return self._interval(self.resampled_means(system, draws))

    def estimate(self, system, point, draws):
        """``{"value", "low", "high"}``: mean of per-run ``point`` ``[R]``, interval of ``draws`` ``[R, n_draws]``.

        Example
        -------
        >>> lab = np.array([1, 0, 1, 0], np.int8); spk = np.array([0, 0, 1, 1], np.int32)
        >>> ts = TrialScores("r", ("A", "B"), {"all": (np.array([.9, .1, .8, .2]), lab, spk)})
        >>> cmp = SplitComparison({"s": [ts]}, n_draws=5)
        >>> cmp.estimate("s", *(v["eer"] for v in cmp.replicates("s", "all")))["value"]
        0.0
        """
        low, high = self.system_interval(system, draws)
        return {"value": float(np.mean(point)), "low": low, "high": high}

    def resampled_means(self, system, draws, paired_with=None):
        """``[n_draws]``: per draw, the mean over ``system``'s resampled runs of per-run draws ``[R, n_draws]``.

        The runs drawn are those of :meth:`system_interval` (the same for every metric of the
        system), so two quantities of the same runs, e.g. on two splits, can be combined draw by draw.
        With ``paired_with`` (another system with the same seeds), the runs drawn are those
        :meth:`difference` draws for the pair, the same seeds for both systems.
        """
        return self._resampled_mean(np.asarray(draws), self._seed_picks(system, paired_with))

    def _seed_picks(self, system, paired_with=None):
        """The runs of ``system`` drawn in each draw: shared with ``paired_with`` when the two pair by seed."""
        n_runs = len(self.systems[system])
        if paired_with is not None and self.paired_seeds(system, paired_with):
            return self._seed_draws(n_runs, "paired")
        return self._seed_draws(n_runs, "system", system)

    def _seed_draws(self, n_runs, *key):
        """``[n_draws, n_runs]`` indices of the runs drawn in each draw (all runs once when R = 1)."""
        if n_runs == 1:
            return np.zeros((self.n_draws, 1), dtype=np.int64)
        rng = np.random.default_rng(keyed_draw(self.seed, "seeds", self.split, n_runs, *key))
        return rng.integers(0, n_runs, size=(self.n_draws, n_runs))

    def _resampled_mean(self, values, picks):
        return values[picks, np.arange(self.n_draws)[:, None]].mean(axis=1)

    def _interval(self, values):
        return bootstrap.percentile_interval(values, self.level)

    def summary(self):
        """One row per condition and system: point estimate and interval of every metric.

        Returns
        -------
        list of dict
            ``{"split", "condition", "aliases", "system", "n_runs", "seeds", "n_target",
            "n_nontarget", "undefined_draws", "metrics": {key: {"value", "low", "high",
            "per_run"}}}`` (fractions).
        """
        rows = []
        for cond in self.conditions:
            for name, runs in self.systems.items():
                if cond not in runs[0].conditions:
                    continue
                point, draws = self.replicates(name, cond)
                metrics = {}
                # A draw without targets or non-targets has no value for any metric.
                undefined = int(np.count_nonzero(np.isnan(draws[self.keys[0]][0])))
                for k in self.keys:
                    low, high = self.system_interval(name, draws[k])
                    metrics[k] = {"value": float(point[k].mean()), "low": low, "high": high,
                                  "per_run": point[k].tolist()}
                labels = runs[0].conditions[cond][1]
                rows.append({
                    "split": self.split, "condition": cond, "aliases": self.aliases.get(cond, []),
                    "system": name, "n_runs": len(runs), "seeds": [r.seed for r in runs],
                    "n_target": int(np.count_nonzero(labels == 1)), "n_nontarget": int(np.count_nonzero(labels == 0)),
                    "undefined_draws": undefined, "metrics": metrics,
                })
        return rows

    def paired_seeds(self, system, reference):
        """Whether both systems recorded the same seeds, so that their runs pair by seed."""
        seeds = [tuple(r.seed for r in self.systems[n]) for n in (system, reference)]
        return None not in seeds[0] and None not in seeds[1] and seeds[0] == seeds[1]

    def difference(self, system, reference):
        """Paired differences ``system - reference`` on every condition both have.

        Returns
        -------
        list of dict
            ``{"split", "condition", "system", "reference", "n_runs": [system's, reference's],
            "paired_seeds", "metrics": {key: {"difference", "low", "high", "half_width", "verdict"}}}``.
        """
        for name in (system, reference):
            if name not in self.systems:
                raise ComparisonError(f"no system {name!r} in split {self.split!r} (have {list(self.systems)})")
        paired = self.paired_seeds(system, reference)
        n_sys, n_ref = len(self.systems[system]), len(self.systems[reference])
        picks_sys, picks_ref = self._seed_picks(system, reference), self._seed_picks(reference, system)
        rows = []
        for cond in self.conditions:
            if cond not in self.systems[system][0].conditions or cond not in self.systems[reference][0].conditions:
                continue
            self.check_same_trials(self.systems[system][0], self.systems[reference][0], cond,
                                   f"systems {system!r} and {reference!r}")
            (p_sys, d_sys), (p_ref, d_ref) = self.replicates(system, cond), self.replicates(reference, cond)
            metrics = {}
            for k in self.keys:
                values = (self._resampled_mean(np.asarray(d_sys[k]), picks_sys)
                          - self._resampled_mean(np.asarray(d_ref[k]), picks_ref))
                low, high = self._interval(values)
                metrics[k] = {"difference": float(p_sys[k].mean() - p_ref[k].mean()), "low": low, "high": high,
                              "half_width": (high - low) / 2, "verdict": verdict(low, high)}
            rows.append({"split": self.split, "condition": cond, "system": system, "reference": reference,
                         "n_runs": [n_sys, n_ref], "paired_seeds": paired, "metrics": metrics})
        return rows

    def resolution(self, differences=()):
        """Per condition: what one trial moves and the half-width of the difference intervals.

        Arguments
        ---------
        differences : list of dict
            Rows of :meth:`difference`; their median half-width per metric is reported.

        Returns
        -------
        list of dict
            ``{"condition", "n_target", "n_nontarget", "n_speakers", "steps": {key: (miss, fa)},
            "half_width": {key: float or None}}``; ``steps`` of the scores' metrics only (an LLR
            metric moves by what each trial's LLR is, not by a fixed step).
        """
        rows = []
        for cond in self.conditions:
            run = next(r[0] for r in self.systems.values() if cond in r[0].conditions)
            _, labels, spk = run.conditions[cond]
            n_tgt = int(np.count_nonzero(labels == 1))
            widths = {k: [d["metrics"][k]["half_width"] for d in differences if d["condition"] == cond]
                      for k in self.keys}
            rows.append({
                "condition": cond, "n_target": n_tgt, "n_nontarget": int(labels.size - n_tgt),
                "n_speakers": int(np.unique(spk).size),
                "steps": (bootstrap.one_trial_steps(n_tgt, labels.size - n_tgt, self.p_targets)
                          if self.measure == SCORES else {}),
                "half_width": {k: float(np.nanmedian(w)) if w else None for k, w in widths.items()},
            })
        return rows


def summarise(systems, split="eval", **options):
    """Point estimates and intervals of every system on ``split`` (see :class:`SplitComparison`).

    Example
    -------
    >>> lab = np.array([1, 0] * 4, np.int8); spk = np.repeat(np.arange(4), 2).astype(np.int32)
    >>> ts = TrialScores("r", tuple("ABCD"), {"all": (np.array([.9, .1] * 4), lab, spk)})
    >>> m = summarise({"perfect": [ts]}, n_draws=50)[0]["metrics"]["eer"]
    >>> m["value"], m["low"], m["high"]
    (0.0, 0.0, 0.0)
    """
    return SplitComparison(systems, split, **options).summary()


def paired_difference(system, reference, split="eval", names=("system", "reference"), **options):
    """Paired differences ``system - reference`` (each a list of runs) on ``split``.

    Example
    -------
    >>> lab = np.array([1, 0] * 4, np.int8); spk = np.repeat(np.arange(4), 2).astype(np.int32)
    >>> ts = TrialScores("r", tuple("ABCD"), {"all": (np.array([.9, .1, .2, .3] * 2), lab, spk)})
    >>> d = paired_difference([ts], [ts], n_draws=50)[0]["metrics"]["eer"]
    >>> d["difference"], d["low"], d["high"], d["verdict"]
    (0.0, 0.0, 0.0, 'not resolved')
    """
    if names[0] == names[1]:
        raise ComparisonError(f"the system and the reference need two names, got {names}")
    comparison = SplitComparison({names[0]: system, names[1]: reference}, split, **options)
    return comparison.difference(*names)


if __name__ == "__main__":
    from speechbrain_ext.compare_report import main

    raise SystemExit(main())
