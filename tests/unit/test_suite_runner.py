"""speechbrain_ext.suite / suite_runner: suite files, bad input, skip, resume, lock, progress, stale runs."""

import json
import os
import re
import threading
import time

import pytest
import yaml
from suite_fixtures import make_suite, write_system

from speechbrain_ext import suite_report, suite_runner
from speechbrain_ext.suite import SuiteError, load_suite


def lines():
    out = []
    return out, out.append


def rewrite(path, **changes):
    spec = yaml.safe_load(open(path))
    spec.update(changes)
    open(path, "w").write(yaml.safe_dump(spec, sort_keys=False))


# ---------------------------------------------------------------------------- suite files and bad input


def test_suite_file_is_loaded_with_paths_and_commands(tmp_path):
    suite = load_suite(make_suite(tmp_path, settings={"quality": 3.0}))
    assert [r.name for r in suite.rows] == ["base", "good"] and suite.reference == "base"
    assert suite.runs == str(tmp_path / "runs") and suite.seeds == (1, 2) and suite.draws == 200
    cmd = suite.run_command(suite.rows[1], 2)
    assert cmd[2] == str(tmp_path / "systems" / "good.yaml")
    assert cmd[cmd.index("--quality") + 1] == "3.0" and cmd[cmd.index("--seed") + 1] == "2"
    assert cmd[cmd.index("--output_folder") + 1] == str(tmp_path / "runs" / "good" / "seed2")


@pytest.mark.parametrize("change, message", [
    ({"sedes": [1]}, r"suite\.yaml: unknown key 'sedes' \(did you mean 'seeds'\?\)"),
    ({"rows": [{"hparams": "systems/nope.yaml"}]}, r"suite\.yaml: rows\[0\]\.hparams: no such file: .*nope\.yaml"),
    ({"rows": [{"hparams": "systems/base.yaml", "overides": {}}]}, r"rows\[0\]: unknown key 'overides'"),
    ({"settings": {"qualty": 1}}, r"suite\.yaml: settings: .*base\.yaml has no key 'qualty' .*'quality'"),
    ({"rows": [{"hparams": "systems/base.yaml", "overrides": {"sleeep": 1}}]}, r"row 'base': overrides: .*'sleeep'"),
    ({"settings": {"seed": 3}}, r"settings: 'seed' is set by the runner"),
    ({"reference": "nobody"}, r"reference 'nobody' is not a row"),
    ({"seeds": [1, 1]}, r"seeds: \[1, 1\] repeats a seed"),
    ({"jobs": "two"}, r"key 'jobs' must be a int"),
    ({"rows": [{"hparams": "systems/base.yaml"}, {"hparams": "systems/base.yaml"}]}, r"'base' is used twice"),
    ({"sections": ["missing.py:Section"]}, r"sections\[0\]: no such file: .*missing\.py"),
    ({"anchor": "ecapa"}, r"anchor: 'ecapa' is not one of resemblyzer"),
])
def test_bad_suite_files_name_the_file_and_key(tmp_path, change, message):
    path = make_suite(tmp_path)
    rewrite(path, **change)
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


def test_bad_command_line_changes_are_named(tmp_path):
    path = make_suite(tmp_path)
    with pytest.raises(SuiteError, match=r"--rows: no row 'gdo'"):
        load_suite(path, rows=["gdo"])
    with pytest.raises(SuiteError, match=r"variant 'good:quality': expected ROW:key=value"):
        load_suite(path, variants=["good:quality"])
    with pytest.raises(SuiteError, match=r"variant 'bad:quality=1': no row 'bad'"):
        load_suite(path, variants=["bad:quality=1"])
    suite = load_suite(path, variants=["good:quality=9"], settings={"sleep": 0.1})
    assert suite.rows[-1].name == "good@quality=9" and suite.rows[-1].variant
    assert [r.name for r in suite.compared] == ["base", "good"] and dict(suite.settings)["sleep"] == 0.1
    assert suite_runner.main([str(tmp_path / "none.yaml"), "--dry-run"]) == 1


# ---------------------------------------------------------------------------- running


def test_runs_everything_once_then_skips_finished_runs(tmp_path):
    suite = load_suite(make_suite(tmp_path, prepare=True))
    out, say = lines()
    assert suite_runner.train_suite(suite, say) == []
    assert os.path.isdir(tmp_path / "runs" / "prepared")  # the reference row's prepare_data ran
    for row in suite.rows:
        for seed in suite.seeds:
            assert suite_runner.is_finished(suite, row, seed)
    records = suite_runner.read_records(suite.runs)
    assert sorted(records) == ["base/seed1", "base/seed2", "good/seed1", "good/seed2", "prepare"]
    assert all(r["returncode"] == 0 and r["cpu_seconds"] >= 0 and r["row"] in ("base", "good")
               for k, r in records.items() if k != "prepare")
    progress = [line for line in out if re.search(r"\] \d/4 ", line)]
    assert len(progress) == 4 and progress[-1].endswith("all done")
    assert any("left for" in line for line in progress)
    # a second runner finds everything finished and starts nothing
    out2, say2 = lines()
    assert suite_runner.train_suite(suite, say2) == []
    assert suite_runner.read_records(suite.runs) == records
    assert any("every run of" in line for line in out2)


def test_a_failed_run_is_started_again_and_resumes(tmp_path):
    path = make_suite(tmp_path)
    write_system(str(tmp_path / "systems"), "good", crash_once=1)
    suite = load_suite(path)
    out, say = lines()
    assert sorted(suite_runner.train_suite(suite, say)) == ["good/seed1", "good/seed2"]
    assert any("FAILED (exit 3" in line for line in out)
    before = suite_runner.read_records(suite.runs)
    assert suite_runner.train_suite(suite, say) == []
    after = suite_runner.read_records(suite.runs)
    for seed in (1, 2):
        assert os.path.isfile(tmp_path / "runs" / "good" / f"seed{seed}" / "resumed")
        assert after[f"base/seed{seed}"] == before[f"base/seed{seed}"]  # finished runs were not touched
        assert after[f"good/seed{seed}"]["returncode"] == 0
        # the crashed job had logged epoch 1: the record of the resumed job times only the rest
        assert (before[f"base/seed{seed}"]["epochs_before"], after[f"good/seed{seed}"]["epochs_before"]) == (0, 1)
    # the report's times leave the resumed runs out and name them
    text = open(suite_report.write_report(suite, suite_report.resolve_sections(suite))["report"]).read()
    base_wall = sum(after[f"base/seed{seed}"]["wall_seconds"] for seed in (1, 2)) / 60
    assert f"**Measured.** 2 run(s): {base_wall:.1f} min of run wall time in total" in text
    assert ("Not in these times: 2 run(s) resumed from a checkpoint of an interrupted job, whose records time only "
            "the rest: good/seed1 (after epoch 1), good/seed2 (after epoch 1).") in text
    cost = text.split("## Training cost", 1)[1]
    assert re.search(r"\| system good \| n/a \| n/a \| 3 \|", cost)  # no whole run timed
    # a report of resumed runs only still says that its runs were not timed whole
    spec = yaml.safe_load(open(path))
    spec.update(reference="good", rows=spec["rows"][1:], report=str(tmp_path / "only_resumed.md"))
    (tmp_path / "only_resumed.yaml").write_text(yaml.safe_dump(spec))
    only_resumed = load_suite(str(tmp_path / "only_resumed.yaml"))
    text = open(suite_report.write_report(only_resumed, suite_report.resolve_sections(only_resumed))["report"]).read()
    assert ("**Measured.** No run timed whole: 2 run(s) resumed from a checkpoint of an interrupted job, whose "
            "records time only the rest: good/seed1 (after epoch 1), good/seed2 (after epoch 1).") in text


def test_a_finished_run_of_another_configuration_is_refused(tmp_path):
    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    suite_runner.train_suite(load_suite(path), lambda line: None)
    write_system(str(tmp_path / "systems"), "base", quality=7.0)
    with pytest.raises(SuiteError, match=r"run base/seed1 .* another configuration \(its system file .*base\.yaml"):
        suite_runner.train_suite(load_suite(path), lambda line: None)
    write_system(str(tmp_path / "systems"), "base")
    with pytest.raises(SuiteError, match=r"run base/seed1 .*the overrides differ: sleep"):
        suite_runner.train_suite(load_suite(path, settings={"sleep": 0.01}), lambda line: None)
    suite_runner.train_suite(load_suite(path), lambda line: None)  # as trained: reused


def test_dry_run_names_every_run_and_its_state(tmp_path):
    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    suite = load_suite(path)
    out, say = lines()
    suite_runner.dry_run(suite, say)
    assert "# base/seed1: to run" in out[0] and "OMP_NUM_THREADS=1 " in out[0]
    suite_runner.train_suite(suite, lambda line: None)
    out, say = lines()
    suite_runner.dry_run(suite, say)
    assert "# base/seed1: finished, skipped" in out[0]


def test_a_second_runner_waits_for_the_first(tmp_path):
    runs = str(tmp_path / "runs")
    held, released = threading.Event(), threading.Event()

    def first():
        with suite_runner.suite_lock(runs, "suite first", lambda line: None):
            held.set()
            released.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    out, say = lines()
    timer = threading.Timer(0.5, released.set)
    timer.start()
    start = time.time()
    with suite_runner.suite_lock(runs, "suite second", say):
        waited = time.time() - start
    thread.join()
    assert waited >= 0.4
    assert re.search(r"waiting: the runs folder .* is in use by pid \d+ suite first since", out[0])
    assert "going on" in out[1]


def test_time_left_uses_the_row_mean_else_every_run():
    durations = {"a": [60.0, 80.0]}
    # a: 70 s each; b: no finished run -> the mean of all, 70 s; one a running for 30 s -> 40 s left
    assert suite_runner.estimate_left(["a", "b"], [("a", 100.0)], durations, 1, 130.0) == pytest.approx(180.0)
    assert suite_runner.estimate_left(["a", "b"], [("a", 100.0)], durations, 2, 130.0) == pytest.approx(90.0)
    # a run past its expected time counts 0, never negative
    assert suite_runner.estimate_left([], [("a", 0.0)], durations, 1, 500.0) == 0.0
    assert suite_runner.estimate_left(["a"], [], {}, 1, 0.0) is None


def test_records_survive_as_json(tmp_path):
    suite = load_suite(make_suite(tmp_path, rows=("base",), seeds=(1,)))
    suite_runner.train_suite(suite, lambda line: None)
    record = json.load(open(os.path.join(suite.runs, "base", "seed1", suite_runner.RUN_RECORD)))
    assert record["overrides"] == {"seed": 1} and len(record["config"]) == 16
    (tmp_path / "runs" / suite_runner.RECORDS).write_text("{not json")
    with pytest.raises(SuiteError, match=r"suite_runs\.json: not readable JSON"):
        suite_runner.read_records(suite.runs)


def test_a_new_null_key_is_no_change_and_the_report_refuses_a_stale_run(tmp_path):
    from speechbrain_ext import suite_report

    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    suite_runner.train_suite(load_suite(path), lambda line: None)
    with open(tmp_path / "systems" / "base.yaml", "a") as f:
        f.write("new_switch: null\n")
    assert suite_runner.train_suite(load_suite(path), lambda line: None) == []  # reused
    write_system(str(tmp_path / "systems"), "base", quality=5.0)
    with pytest.raises(SuiteError, match=r"run base/seed1 .* another configuration"):
        suite_report.write_report(load_suite(path))


def test_changed_evaluation_settings_evaluate_a_finished_run_again_without_training_it(tmp_path):
    from speechbrain_ext import suite_report

    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    suite_runner.train_suite(load_suite(path), lambda line: None)
    trained = suite_runner.read_records(str(tmp_path / "runs"))["base/seed1"]
    run = tmp_path / "runs" / "base" / "seed1"
    checkpoint = json.load(open(run / "report" / "metrics.json"))["checkpoint"]
    write_system(str(tmp_path / "systems"), "base", score_norm="as-norm")  # an evaluation key only
    with pytest.raises(SuiteError, match=r"run base/seed1 was evaluated with other evaluation settings"):
        suite_report.write_report(load_suite(path))  # never a report of stale scores
    out, say = lines()
    suite_runner.dry_run(load_suite(path), say)
    assert any("base/seed1: finished; its evaluation settings changed: to evaluate again" in line for line in out)
    assert suite_runner.train_suite(load_suite(path), say) == []
    metrics = json.load(open(run / "report" / "metrics.json"))
    assert metrics["score_norm"] == "as-norm" and metrics["checkpoint"] == checkpoint  # evaluated, not trained
    record = suite_runner.read_records(str(tmp_path / "runs"))["base/seed1"]
    assert {k: record[k] for k in trained} == trained  # the training's cost is kept
    assert record["evaluated"]["returncode"] == 0 and record["evaluated"]["log"].endswith("base-seed1-evaluation.log")
    out2, say2 = lines()
    assert suite_runner.train_suite(load_suite(path), say2) == [] and any("every run of" in x for x in out2)
    suite_report.write_report(load_suite(path))
    write_system(str(tmp_path / "systems"), "base", score_norm="as-norm", quality=5.0)  # training: refused
    with pytest.raises(SuiteError, match=r"run base/seed1 .* another configuration"):
        suite_runner.train_suite(load_suite(path), lambda line: None)


def test_a_record_of_one_digest_is_upgraded_when_it_is_the_current_file(tmp_path):
    from speechbrain_ext.suite import config_digest, config_digests

    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    suite_runner.train_suite(load_suite(path), lambda line: None)
    record_path = tmp_path / "runs" / "base" / "seed1" / suite_runner.RUN_RECORD
    split = json.load(open(record_path))
    hparams = str(tmp_path / "systems" / "base.yaml")
    old = {k: v for k, v in split.items() if k not in ("evaluation", "digests")}
    record_path.write_text(json.dumps({**old, "config": config_digest(hparams)}))  # as written before the split
    assert suite_runner.train_suite(load_suite(path), lambda line: None) == []  # reused, nothing to do
    assert json.load(open(record_path)) == split
    # digests of the system file alone (before they were of the effective configuration): upgraded too
    file_only = config_digests(hparams)
    record_path.write_text(json.dumps({**old, "config": file_only["training"], "evaluation": file_only["evaluation"]}))
    assert suite_runner.train_suite(load_suite(path), lambda line: None) == []
    assert json.load(open(record_path)) == split
    record_path.write_text(json.dumps({**old, "config": "0123456789abcdef"}))  # another file: refused as before
    with pytest.raises(SuiteError, match=r"run base/seed1 .* another configuration"):
        suite_runner.train_suite(load_suite(path), lambda line: None)


def test_a_setting_moved_from_the_suite_into_the_system_file_is_the_same_run(tmp_path):
    """Adopting a suite's override as the system file's default retrains nothing; another value does."""
    path = make_suite(tmp_path, rows=("base",), seeds=(1,), settings={"quality": 3.0})
    suite_runner.train_suite(load_suite(path), lambda line: None)
    system = tmp_path / "systems" / "base.yaml"
    system.write_text(system.read_text().replace("quality: 2.0", "quality: 3.0"))
    spec = yaml.safe_load(open(path))
    spec["settings"] = {}
    open(path, "w").write(yaml.safe_dump(spec))
    assert suite_runner.train_suite(load_suite(path), lambda line: None) == []  # the same effective configuration
    system.write_text(system.read_text().replace("quality: 3.0", "quality: 2.5"))
    with pytest.raises(SuiteError, match=r"run base/seed1 .* another configuration \(its system file"):
        suite_runner.train_suite(load_suite(path), lambda line: None)
    spec["settings"] = {"quality": 3.0}
    open(path, "w").write(yaml.safe_dump(spec))
    assert suite_runner.train_suite(load_suite(path), lambda line: None) == []  # 2.5 in the file, 3.0 on top


@pytest.mark.parametrize(("target", "message"), [("bse", "compare_with: no row 'bse' (did you mean 'base'?)"),
                                                 ("good", "compare_with: the row itself")])
def test_a_compare_with_that_names_no_other_row_is_named(tmp_path, target, message):
    path = make_suite(tmp_path, rows=("base", "good"))
    spec = yaml.safe_load(open(path))
    spec["rows"][1]["compare_with"] = target
    with open(path, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    with pytest.raises(SuiteError, match=re.escape(f"rows[1] (good): {message}")):
        load_suite(path)
