"""Which trained system to publish: a rule on the validation splits only, never on eval or ood.

The rule (:func:`choose_system`), for systems trained on the same corpus:

1. Each system is represented by the validation EERs of the checkpoint it evaluated
   (``metrics.json`` ``"valid"``: one EER per validation split, :func:`validation_eers`).
2. Its score is the mean of those EERs over the validation splits (SynthEmo: in-generator
   ``valid`` and out-of-generator ``ood_valid``, equal weight).
3. A system whose EER on the guard split (``ood_valid``) is higher than the reference
   system's (the baseline's) is not eligible: a gain on in-generator speakers bought
   with a loss on held-out voices is the model learning the generator, not speaker
   identity. The reference is always eligible, so there is always a choice.
4. The eligible system with the lowest score wins; a tie goes to the reference, then
   to the system listed first.

Why the guard is against the reference and not against every other system: "X wins
in-generator but loses out-of-generator to Y" applied to every pair elects, whatever
the scores, the system with the lowest ``ood_valid`` EER (the in-generator split would
then never count), so the pairwise form is the ``ood_valid``-only rule in disguise.
Between two systems that both hold the baseline's ``ood_valid`` level, the mean decides.

Nothing here reads an evaluation split: the inputs are validation numbers only.

Applied to a suite's finished runs (each row's validation EERs averaged over its seeds)::

    python -m speechbrain_ext.system_choice recipes/SynthEmo/ablation/contrastive.yaml
"""

import argparse
import math
import os
import sys
from dataclasses import dataclass, field

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.report import read_metrics

__all__ = ["RULE", "SystemChoice", "SystemChoiceError", "choose_system", "main", "suite_choice", "validation_eers"]

#: The rule in one sentence, for reports.
RULE = (
    "lowest mean validation EER over {splits}; a system whose {guard} EER is higher than {reference}'s is "
    "not eligible (in-generator gains bought with out-of-generator losses); ties go to {reference}"
)


class SystemChoiceError(SpeechBrainExtError, ValueError):
    """The validation results cannot decide (a system or split is missing); the message names it.

    Example
    -------
    >>> isinstance(SystemChoiceError("system 'b': no validation EER of split 'ood_valid'"), ValueError)
    True
    """


@dataclass(frozen=True)
class SystemChoice:
    """The outcome of :func:`choose_system`.

    Attributes
    ----------
    system : str
        The system to publish.
    scores : dict
        ``{system: mean validation EER (%)}`` in the order given.
    excluded : dict
        ``{system: why it is not eligible}``.
    rule : str
        The rule, with the splits and the reference named.

    Example
    -------
    >>> c = SystemChoice("a", {"a": 3.0}, {}, "lowest mean")
    >>> c.system, c.ranking()
    ('a', ['a'])
    """

    system: str
    scores: dict
    excluded: dict = field(default_factory=dict)
    rule: str = ""

    def ranking(self):
        """Eligible systems, best first (the order :func:`choose_system` decided by).

        Example
        -------
        >>> SystemChoice("b", {"a": 3.0, "b": 2.0, "c": 1.0}, {"c": "worse"}).ranking()
        ['b', 'a']
        """
        order = list(self.scores)
        eligible = [s for s in order if s not in self.excluded]
        return sorted(eligible, key=lambda s: (self.scores[s], s != self.system, order.index(s)))


def validation_eers(metrics, splits=("valid", "ood_valid"), name="run"):
    """The validation EERs (%) of the checkpoint a run evaluated, ``{split: EER}``.

    Arguments
    ---------
    metrics : str or dict
        A run's ``metrics.json`` (path, report folder or loaded dict); its ``"valid"`` key
        holds ``{split: EER %}`` of the selected checkpoint (written by the recipe).
    splits : sequence of str
        The validation splits the rule uses; each must be present.
    name : str
        How errors name the run.

    Example
    -------
    >>> validation_eers({"valid": {"valid": 4.0, "ood_valid": 9.5}, "conditions": {}})
    {'valid': 4.0, 'ood_valid': 9.5}
    >>> validation_eers({"valid": {"valid": 4.0}}, name="b")
    Traceback (most recent call last):
    ...
    speechbrain_ext.system_choice.SystemChoiceError: b: no validation EER of split 'ood_valid' (has: valid); ...
    """
    if not isinstance(metrics, dict):
        name = str(metrics) if name == "run" else name
        metrics = read_metrics(metrics)
    per_split = metrics.get("valid") or {}
    if not isinstance(per_split, dict):
        raise SystemChoiceError(f"{name}: 'valid' is {per_split!r}, expected {{split: EER}}")
    out = {}
    for split in splits:
        value = per_split.get(split)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise SystemChoiceError(
                f"{name}: no validation EER of split {split!r} (has: {', '.join(per_split) or 'none'}); "
                "train it with that split in valid_splits"
            )
        out[split] = float(value)
    return out


def choose_system(validation, reference, guard="ood_valid"):
    """Apply the rule of the module docstring to validation EERs.

    Arguments
    ---------
    validation : dict
        ``{system: {validation split: EER %}}``, every system with the same splits, in
        the order ties fall back to.
    reference : str
        The baseline: always eligible; the guard compares with it.
    guard : str or None
        The out-of-generator validation split (``None``: no guard, the mean alone decides).

    Returns
    -------
    SystemChoice

    Example
    -------
    >>> v = {"base": {"valid": 6.0, "ood_valid": 12.0},
    ...      "in_gen": {"valid": 2.0, "ood_valid": 13.0},   # best mean, but worse than base on ood_valid
    ...      "both": {"valid": 5.0, "ood_valid": 11.0}}
    >>> c = choose_system(v, "base")
    >>> c.system, c.scores["in_gen"], sorted(c.excluded)
    ('both', 7.5, ['in_gen'])
    >>> choose_system(v, "base", guard=None).system
    'in_gen'
    """
    if reference not in validation:
        raise SystemChoiceError(f"reference {reference!r} is not one of the systems {list(validation)}")
    splits = list(validation[reference])
    if not splits or (guard is not None and guard not in splits):
        raise SystemChoiceError(f"reference {reference!r}: validation splits {splits} lack the guard {guard!r}")
    for system, eers in validation.items():
        if sorted(eers) != sorted(splits):
            raise SystemChoiceError(f"system {system!r}: validation splits {list(eers)}, expected {splits}")
    scores = {s: sum(eers[k] for k in splits) / len(splits) for s, eers in validation.items()}
    excluded = {}
    if guard is not None:
        limit = validation[reference][guard]
        for system, eers in validation.items():
            if system != reference and eers[guard] > limit:
                excluded[system] = (f"{guard} EER {eers[guard]:.2f} % is higher than {reference}'s "
                                    f"{limit:.2f} %")
    order = list(validation)
    eligible = [s for s in order if s not in excluded]
    best = min(eligible, key=lambda s: (scores[s], s != reference, order.index(s)))
    rule = RULE.format(splits=" and ".join(splits), guard=guard, reference=reference)
    if guard is None:
        rule = rule.split(";")[0] + f"; ties go to {reference}"
    return SystemChoice(best, scores, excluded, rule)


def suite_choice(suite, splits=("valid", "ood_valid"), guard="ood_valid"):
    """The rule on a suite's finished runs: each row's validation EERs averaged over its seeds.

    Arguments
    ---------
    suite : speechbrain_ext.suite.Suite
        Its compared rows, in suite order (ties fall back to that order).
    splits, guard
        As in :func:`validation_eers` and :func:`choose_system`.

    Returns
    -------
    choice : SystemChoice
        Over the rows with at least one finished run.
    means : dict
        ``{row: {split: mean EER %}}``.
    seeds : dict
        ``{row: [seeds averaged]}``.
    """
    means, seeds = {}, {}
    for row in suite.compared:
        found = [s for s in suite.seeds
                 if os.path.isfile(os.path.join(suite.run_folder(row, s), "report", "metrics.json"))]
        if not found:
            continue
        eers = [validation_eers(os.path.join(suite.run_folder(row, s), "report"), splits, suite.run_key(row, s))
                for s in found]
        means[row.name] = {k: sum(e[k] for e in eers) / len(eers) for k in splits}
        seeds[row.name] = found
    if suite.reference not in means:
        raise SystemChoiceError(f"{suite.path}: the reference row {suite.reference!r} has no finished run in "
                                f"{suite.runs}")
    return choose_system(means, suite.reference, guard), means, seeds


def main(argv=None):
    """``python -m speechbrain_ext.system_choice SUITE.yaml [--runs DIR]``: print the rule's choice.

    Example
    -------
    >>> main(["/nonexistent/suite.yaml"])  # prints "error: suite file not found: ..." to stderr
    1
    """
    from speechbrain_ext.suite import load_suite

    parser = argparse.ArgumentParser(prog="python -m speechbrain_ext.system_choice",
                                     description="The validation rule's choice among a suite's rows.")
    parser.add_argument("suite", help="the suite file (YAML)")
    parser.add_argument("--runs", help="replace the suite's runs folder")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        suite = load_suite(args.suite, runs=args.runs)
        choice, means, seeds = suite_choice(suite)
    except SpeechBrainExtError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    splits = list(means[suite.reference])
    print("| row | seeds | " + " | ".join(f"{k} EER %" for k in splits) + " | mean | |")
    print("|:---|:---|" + "---:|" * (len(splits) + 1) + ":---|")
    for row, eers in means.items():
        note = choice.excluded.get(row, "**chosen**" if row == choice.system else "")
        cells = " | ".join(f"{eers[k]:.3f}" for k in splits)
        print(f"| {row} | {', '.join(map(str, seeds[row]))} | {cells} | {choice.scores[row]:.3f} | {note} |")
    missing = [row.name for row in suite.compared if row.name not in means]
    if missing:
        print(f"\nrows without a finished run (left out): {', '.join(missing)}")
    print(f"\nchosen: {choice.system}\nrule: {choice.rule} (means over each row's seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
