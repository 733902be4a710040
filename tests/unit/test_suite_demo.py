"""speechbrain_ext.suite_demo / suite_publish on fabricated suites (the fake recipe): failures, choice, time left."""

import os

import pytest
from suite_fixtures import make_suite, write_system

from speechbrain_ext.suite import SuiteError, load_suite
from speechbrain_ext.suite_demo import Eta, makespan, run_demo
from speechbrain_ext.suite_publish import Publish, choose
from speechbrain_ext.suite_report import ReportContext, RunResult
from speechbrain_ext.system_choice import SystemChoiceError


def demo_suite(tmp_path, **top):
    (tmp_path / "sections.py").write_text("from speechbrain_ext.suite_publish import Publish  # noqa: F401\n")
    return make_suite(tmp_path, seeds=(1,), sections=[{"section": "sections.py:Publish", "model": "model"}], **top)


def test_a_failed_run_prints_its_log_tail_and_the_demo_stops_before_publishing(tmp_path):
    path = demo_suite(tmp_path)
    write_system(str(tmp_path / "systems"), "good", crash_once=1)
    out = []
    assert run_demo(load_suite(path), out=out.append) == 1
    text = "\n".join(out)
    assert "demo 1/5 data" in text and "demo 2/5 training" in text
    failed = next(line for line in out if "FAILED (exit 3)" in line)
    assert "system good" in failed and os.path.join("logs", "good-seed1.log") in failed
    assert "    | crashed after epoch 1" in failed  # the log's last lines, indented
    assert "run the same command again" in out[-1]
    assert "demo 3/5" not in text and not (tmp_path / "model").exists()


def test_a_suite_without_a_publish_section_is_refused(tmp_path):
    with pytest.raises(SuiteError, match="the demo needs a Publish section"):
        run_demo(load_suite(make_suite(tmp_path, seeds=(1,))), out=lambda line: None)


def fabricated_runs(suite, valid):
    """``{(row, seed): RunResult}`` whose metrics carry only the validation EERs given per row and seed."""
    runs = {}
    for row in suite.rows:
        for seed in suite.seeds:
            eers = valid.get((row.name, seed))
            metrics = None if eers is None else {"conditions": {"all": {"eer": 0.5}}, "valid": dict(eers)}
            runs[(row.name, seed)] = RunResult(row, seed, suite.run_folder(row, seed), metrics)
    return runs


def test_choice_uses_the_mean_over_seeds_and_exports_the_best_seed(tmp_path):
    suite = load_suite(make_suite(tmp_path, seeds=(1, 2)))
    runs = fabricated_runs(suite, {
        ("base", 1): {"valid": 10.0, "ood_valid": 20.0}, ("base", 2): {"valid": 12.0, "ood_valid": 22.0},
        ("good", 1): {"valid": 8.0, "ood_valid": 19.0}, ("good", 2): {"valid": 6.0, "ood_valid": 17.0},
    })
    choice, validation, folders = choose(suite, runs)
    assert choice.system == "system good"
    assert validation["system good"] == {"valid": 7.0, "ood_valid": 18.0}
    assert folders["system good"] == suite.run_folder(suite.row("good"), 2)
    lines = Publish(model="model").render(ReportContext(suite, runs, {}, str(tmp_path), "report"))
    text = "\n".join(lines)
    assert "| system good | 7.00 | 18.00 | 12.50 | **published** |" in text
    assert "Not exported yet: `system good`" in text


def test_a_row_that_wins_valid_but_loses_ood_valid_is_not_published(tmp_path):
    suite = load_suite(make_suite(tmp_path, seeds=(1,)))
    runs = fabricated_runs(suite, {("base", 1): {"valid": 10.0, "ood_valid": 20.0},
                                   ("good", 1): {"valid": 2.0, "ood_valid": 21.0}})
    choice, _, _ = choose(suite, runs)
    assert choice.system == "system base" and list(choice.excluded) == ["system good"]
    text = "\n".join(Publish().render(ReportContext(suite, runs, {}, str(tmp_path), "report")))
    assert "ood_valid EER 21.00 % is higher than system base's 20.00 %" in text


def test_no_choice_without_a_finished_reference_or_validation_eers(tmp_path):
    suite = load_suite(make_suite(tmp_path, seeds=(1,)))
    with pytest.raises(SystemChoiceError, match="the reference row 'base' has no finished run"):
        choose(suite, fabricated_runs(suite, {("good", 1): {"valid": 1.0, "ood_valid": 1.0}}))
    with pytest.raises(SystemChoiceError, match=r"run good/seed1 \(.*\): no validation EER of split 'ood_valid'"):
        choose(suite, fabricated_runs(suite, {("base", 1): {"valid": 1.0, "ood_valid": 1.0},
                                              ("good", 1): {"valid": 1.0}}))


def test_time_left_follows_the_pool_and_what_was_measured():
    eta = Eta(jobs=2, priors={"run": 100.0})
    # two plain systems and a CopyPaste one (2x), two at a time: 100 | 100, then 200 on the first free slot
    assert makespan([], [eta.job("a", "run", 1.0), eta.job("b", "run", 1.0), eta.job("c", "run", 2.0)], 2) == 300.0
    eta.observe("run", 150.0, 1.0, key="a")  # this machine: 1.5x the first guess
    assert eta.job("a", "run", 1.0) == 150.0 and eta.job("c", "run", 2.0) == 300.0
    assert eta.guess("report") == Eta.PRIORS["report"]  # another kind keeps its prior: runs say little of it


def test_the_package_digest_follows_the_source_files_only(tmp_path):
    from speechbrain_ext.suite_demo import _package_digest

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    first = _package_digest(str(tmp_path))
    (tmp_path / "notes.txt").write_text("not code")
    (tmp_path / "sub" / "b.cpython-311.pyc").write_bytes(b"\0")
    assert _package_digest(str(tmp_path)) == first
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert _package_digest(str(tmp_path)) != first
    assert len(_package_digest()) == 16  # this package's own
