"""The validation rule applied to a suite's finished runs (``python -m speechbrain_ext.system_choice``)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite_fixtures import make_suite  # noqa: E402

from speechbrain_ext.suite import load_suite  # noqa: E402
from speechbrain_ext.system_choice import SystemChoiceError, main, suite_choice  # noqa: E402

#: row -> {seed: (valid EER, ood_valid EER)} of its fabricated finished runs
RUNS = {
    "base": {1: (3.0, 5.0), 2: (3.2, 5.2)},
    "good": {1: (2.0, 4.0), 2: (2.4, 4.6)},          # mean 3.25: the choice
    "same": {1: (1.0, 6.0)},                          # best mean, but worse than base out of generator
}


def write_runs(suite_path, runs=RUNS):
    suite = load_suite(suite_path)
    for row in suite.rows:
        for seed, (valid, ood_valid) in runs.get(row.name, {}).items():
            report = os.path.join(suite.run_folder(row, seed), "report")
            os.makedirs(report)
            with open(os.path.join(report, "metrics.json"), "w") as f:
                json.dump({"conditions": {"all": {"eer": 0.1}}, "valid": {"valid": valid, "ood_valid": ood_valid}}, f)
    return suite


def test_rows_are_averaged_over_their_finished_seeds_and_the_guard_applies(tmp_path):
    suite = write_runs(make_suite(tmp_path, rows=("base", "good", "same")))
    choice, means, seeds = suite_choice(suite)
    assert choice.system == "good" and seeds == {"base": [1, 2], "good": [1, 2], "same": [1]}
    assert means["good"] == {"valid": 2.2, "ood_valid": 4.3} and choice.scores["good"] == 3.25
    assert "ood_valid EER 6.00 % is higher than base's 5.10 %" in choice.excluded["same"]


def test_cli_prints_the_table_and_names_rows_without_runs(tmp_path, capsys):
    path = make_suite(tmp_path, rows=("base", "good", "same"))
    write_runs(path, {k: v for k, v in RUNS.items() if k != "same"})
    assert main([path]) == 0
    out = capsys.readouterr().out
    assert "| good | 1, 2 | 2.200 | 4.300 | 3.250 | **chosen** |" in out
    assert "rows without a finished run (left out): same" in out and "chosen: good" in out


def test_reference_without_runs_is_named(tmp_path, capsys):
    path = make_suite(tmp_path, rows=("base", "good"))
    write_runs(path, {"good": RUNS["good"]})
    try:
        suite_choice(load_suite(path))
    except SystemChoiceError as err:
        assert "reference row 'base' has no finished run" in str(err)
    else:
        raise AssertionError("no error")
    assert main([path]) == 1 and "error:" in capsys.readouterr().err


def test_run_without_validation_eers_is_named(tmp_path):
    path = make_suite(tmp_path, rows=("base", "good"))
    suite = write_runs(path)
    with open(os.path.join(suite.run_folder(suite.row("good"), 2), "report", "metrics.json"), "w") as f:
        json.dump({"conditions": {"all": {"eer": 0.1}}}, f)
    try:
        suite_choice(suite)
    except SystemChoiceError as err:
        assert "good/seed2" in str(err)
    else:
        raise AssertionError("no error")
