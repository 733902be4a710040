"""Suite rows that continue another row's run (``continues:``): overrides, order, failure, identity, report."""

import json
import os
import shutil
import threading

import pytest
import yaml
from suite_fixtures import make_suite, write_system

from speechbrain_ext import suite_report, suite_runner
from speechbrain_ext.suite import SuiteError, load_suite

STAGE = {"good": "base"}


def lines():
    out = []
    return out, out.append


def train(suite, timeout=120):
    """train_suite in a thread; a run still going after ``timeout`` is a deadlock."""
    out, result = [], {}
    thread = threading.Thread(target=lambda: result.update(failed=suite_runner.train_suite(suite, out.append)))
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the runner did not finish: " + "\n".join(out)
    return result["failed"], out


def metrics(suite, row, seed):
    return json.load(open(os.path.join(suite.runs, row, f"seed{seed}", "report", "metrics.json")))


def test_a_continuing_row_gets_the_source_run_of_the_same_seed(tmp_path):
    suite = load_suite(make_suite(tmp_path, continues=STAGE))
    good = suite.row("good")
    assert good.continues == "base" and suite.row("base").continues is None
    for seed in suite.seeds:
        assert suite.overrides(good, seed)["init_from"] == str(tmp_path / "runs" / "base" / f"seed{seed}")
        assert "init_from" not in suite.overrides(suite.row("base"), seed)
    assert [r.name for r in suite_runner.scheduled_rows(suite)] == ["base", "good"]
    variant = load_suite(make_suite(tmp_path, continues=STAGE), variants=["good:quality=3"]).rows[-1]
    assert variant.continues == "base"


def test_continuing_rows_are_scheduled_after_every_other_row(tmp_path):
    path = make_suite(tmp_path, rows=("good", "base", "same"), continues={"good": "base"})
    write_system(str(tmp_path / "systems"), "same", copypaste=1)  # costlier: first of the others
    assert [r.name for r in suite_runner.scheduled_rows(load_suite(path))] == ["same", "base", "good"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_continuing_run_starts_after_its_source_without_deadlock(tmp_path, jobs):
    # the fake recipe exits 4 when init_from is not a finished run: every run passing is the order
    path = make_suite(tmp_path, seeds=(1, 2, 3), continues=STAGE, jobs=jobs)
    write_system(str(tmp_path / "systems"), "base", sleep=0.3, init_from=None)
    suite = load_suite(path)
    failed, out = train(suite)
    assert failed == [] and any(line.endswith("all done") for line in out)
    for seed in suite.seeds:
        assert metrics(suite, "good", seed)["init_from"] == os.path.join(suite.runs, "base", f"seed{seed}")
        assert metrics(suite, "base", seed)["init_from"] is None
    records = suite_runner.read_records(suite.runs)
    assert all(records[f"good/seed{s}"]["returncode"] == 0 for s in suite.seeds)


def test_a_failed_source_leaves_its_continuing_run_unstarted_and_failed(tmp_path):
    path = make_suite(tmp_path, continues=STAGE)
    write_system(str(tmp_path / "systems"), "base", crash_once=1)
    suite = load_suite(path)
    failed, out = train(suite)
    assert sorted(failed) == ["base/seed1", "base/seed2", "good/seed1", "good/seed2"]
    assert any("good/seed1: FAILED (not started: the run it continues, base/seed1, failed)" in line for line in out)
    record = suite_runner.read_records(suite.runs)["good/seed2"]
    assert record["returncode"] is None and "base/seed2" in record["error"]
    assert not os.path.exists(tmp_path / "runs" / "good") and not os.path.exists(tmp_path / "runs" / "logs" /
                                                                                    "good-seed1.log")
    failed, _ = train(suite)  # the sources resume, then their stages run
    assert failed == [] and metrics(suite, "good", 1)["init_from"].endswith(os.path.join("base", "seed1"))


def test_a_source_left_out_by_rows_must_be_finished(tmp_path):
    path = make_suite(tmp_path, continues=STAGE)
    with pytest.raises(SuiteError, match=r"run good/seed1 continues run base/seed1, which is not finished and not "
                                         r"among the rows to run \(--rows\): add base to --rows"):
        suite_runner.train_suite(load_suite(path, rows=["good"]), lambda line: None)
    assert not os.path.exists(tmp_path / "runs" / "logs")  # nothing ran
    assert train(load_suite(path, rows=["base"]))[0] == []
    assert train(load_suite(path, rows=["good"]))[0] == []  # its sources are finished now


def test_the_identity_names_the_source_row_and_sees_a_retrained_source(tmp_path):
    path = make_suite(tmp_path, continues=STAGE)
    suite = load_suite(path)
    train(suite)
    record = json.load(open(os.path.join(suite.runs, "good", "seed1", suite_runner.RUN_RECORD)))
    assert record["continues"] == "base" and "init_from" not in record["overrides"]
    assert record["source_checkpoint"] == metrics(suite, "base", 1)["checkpoint"]
    # a moved runs folder is the same runs: nothing to train again
    shutil.move(suite.runs, tmp_path / "moved")
    _, out = train(load_suite(path, runs=str(tmp_path / "moved")))
    assert any("every run of" in line for line in out)
    shutil.move(tmp_path / "moved", suite.runs)
    # the source trained again after its stage: the stage is refused, naming both runs
    shutil.rmtree(os.path.join(suite.runs, "base", "seed1"))
    assert train(load_suite(path, rows=["base"]))[0] == []
    with pytest.raises(SuiteError, match=r"run good/seed1 .* continued run base/seed1, which was trained again "
                                         r"since \(checkpoint save/CKPT\+\d+ then, save/CKPT\+\d+ now\)"):
        suite_runner.train_suite(suite, lambda line: None)
    with pytest.raises(SuiteError, match=r"run good/seed1 .*continued run base/seed1"):
        suite_report.write_report(suite)
    # the same row no longer continuing: another configuration
    spec = yaml.safe_load(open(path))
    del spec["rows"][1]["continues"]
    open(path, "w").write(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SuiteError, match=r"run good/seed1 .*another configuration \(it continued base, not no run"):
        suite_runner.check_finished(load_suite(path), load_suite(path).row("good"), 1)


@pytest.mark.parametrize("change, message", [
    ({1: {"continues": "bsae"}}, r"suite\.yaml: rows\[1\] \(good\): continues: no row 'bsae' \(did you mean 'base'"),
    ({1: {"continues": "good"}}, r"rows\[1\] \(good\): continues: the row continues itself"),
    ({0: {"continues": "good"}}, r"rows\[0\] \(base\): continues: the row continues a cycle: base -> good -> base"),
    ({1: {"overrides": {"init_from": "x"}}}, r"row 'good': overrides: 'init_from' of row 'good' is set by its "
                                             r"'continues: base'"),
    ({1: {"continues": 3}}, r"rows\[1\]: key 'continues' must be a str"),
])
def test_bad_continues_name_the_key_and_row(tmp_path, change, message):
    path = make_suite(tmp_path, continues={"good": "base", "base": None})
    spec = yaml.safe_load(open(path))
    spec["rows"][0].pop("continues")
    for i, values in change.items():
        spec["rows"][i].update(values)
    open(path, "w").write(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


def test_a_continuing_row_needs_init_from_in_its_system_file(tmp_path):
    path = make_suite(tmp_path, continues=STAGE)
    write_system(str(tmp_path / "systems"), "good")  # no init_from
    with pytest.raises(SuiteError, match=r"suite\.yaml: row 'good': continues 'base', but its system file "
                                         r".*good\.yaml has no key 'init_from'"):
        load_suite(path)
    with pytest.raises(SuiteError, match=r"settings: 'init_from' of row 'good' is set by its 'continues: base'"):
        write_system(str(tmp_path / "systems"), "good", init_from=None)
        load_suite(path, rows=["good"], settings={"init_from": "elsewhere"})


def test_dry_run_and_report_show_the_stage(tmp_path):
    suite = load_suite(make_suite(tmp_path, continues=STAGE))
    out, say = lines()
    suite_runner.dry_run(suite, say)
    stage = next(line for line in out if line.startswith("# good/seed2"))
    assert f"to run after base/seed2 (init_from {os.path.join(suite.runs, 'base', 'seed2')})" in stage
    assert "--init_from " + os.path.join(suite.runs, "base", "seed2") in stage
    train(suite)
    text = open(suite_report.write_report(suite)["report"]).read()
    assert "| system good | `" in text and "continues the `base` run of the same seed" in text
    cost = text.split("## Training cost", 1)[1].split("\n## ", 1)[0]
    assert "system good: times of its fine-tuning stage only; it continues base (add its)." in cost
