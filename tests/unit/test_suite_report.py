"""speechbrain_ext.suite_report on fabricated runs with known answers (fake recipe, tests/unit/fake_recipe.py)."""

import dataclasses
import json
import os
import re
import shutil

import pytest
import yaml
from suite_fixtures import SYSTEMS, make_suite, write_system

from speechbrain_ext import anchor, suite_report, suite_runner, trial_scores
from speechbrain_ext.suite import SuiteError, load_suite

SYSTEMS_HERE = {
    # 5.0 s of training per epoch against the others' 2.0: 3 x (5.0 + 0.5) / 3 x (2.0 + 0.5) = 2.2x the reference's cost
    "worse": {"quality": 0.5, "valid_eers": [40.0, 35.0, 36.0], "evaluated_epoch": 2, "train_seconds": 5.0},
    # the log's lowest EER is epoch 2, the recipe evaluated epoch 1: the report must say 1
    "odd": {"quality": 2.0, "valid_eers": [30.0, 20.0, 25.0], "evaluated_epoch": 1},
}


def fabricate_anchor(suite, tmp_path):
    """An anchor folder as speechbrain_ext.anchor leaves it: metrics.json and scores without a seed."""
    source = os.path.join(suite.runs, "base", "seed1", "report")
    folder = suite.anchor_folder
    os.makedirs(os.path.join(folder, "scores"))
    metrics = json.load(open(os.path.join(source, "metrics.json")))
    json.dump({**metrics, "system": "Resemblyzer", "seed": None}, open(os.path.join(folder, "metrics.json"), "w"))
    for split in ("eval", "ood"):
        ts = trial_scores.load_trial_scores(trial_scores.scores_path(source, split))
        shifted = {c: (s - 0.7 * lab, lab) for c, (s, lab, _) in ts.conditions.items()}  # a worse system
        speakers = {c: [ts.speakers[i] for i in spk] for c, (_, _, spk) in ts.conditions.items()}
        trial_scores.save_trial_scores(trial_scores.scores_path(folder, split), shifted, speakers,
                                       {"system": "Resemblyzer", "split": split})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Five fake systems x 2 seeds trained once, and a fabricated anchor."""
    tmp_path = tmp_path_factory.mktemp("suite")
    path = make_suite(tmp_path, rows=("base", "good", "same", "worse", "odd"), anchor="resemblyzer")
    for name, values in SYSTEMS_HERE.items():
        write_system(str(tmp_path / "systems"), name, **values)
    suite = load_suite(path)
    assert suite_runner.train_suite(dataclasses.replace(suite, anchor=None), lambda line: None) == []
    fabricate_anchor(suite, tmp_path)
    return tmp_path, path


def build(tmp_path, path):
    suite = load_suite(path)
    paths = suite_report.write_report(suite, suite_report.resolve_sections(suite))
    return suite, open(paths["report"]).read(), paths["data"]


def section(text, title):
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def table_rows(text):
    return {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}


def test_headline_tables_have_intervals_and_paired_verdicts(trained):
    tmp_path, path = trained
    _, text, data = build(tmp_path, path)
    eer = section(text, "EER (%) [95 % CI]")
    rows = table_rows(eer.split("Paired difference")[0])
    assert set(rows) >= {"system base", "system good", "Resemblyzer (external anchor)"}
    assert re.search(r"\| system good \| 2 \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|", rows["system good"])
    diffs = table_rows(eer.split("Paired difference")[1])
    assert "**better**" in diffs["system good"] and "paired by seed" in diffs["system good"]
    assert diffs["system same"].count("0.00 [0.00, 0.00] **not resolved**") == 4  # identical scores
    assert "**worse**" in diffs["system worse"]
    assert "unpaired (1 vs 2 runs)" in diffs["Resemblyzer (external anchor)"]
    assert data["comparison"]["settings"]["reference"] == "system base"
    # eval and ood side by side
    assert "| system | runs | `all` eval | `all` ood | `neutral_emotional` eval | `neutral_emotional` ood |" in eer


def test_every_verdict_word_follows_from_its_interval(trained):
    tmp_path, path = trained
    _, text, _ = build(tmp_path, path)
    cells = re.findall(r"([-+]?\d+\.\d+) \[([-+]?\d+\.\d+), ([-+]?\d+\.\d+)\] \*\*([a-z ]+)\*\*", text)
    assert len(cells) > 30
    for _, low, high, word in cells:
        low, high = float(low), float(high)
        assert word == ("better" if high < 0 else "worse" if low > 0 else "not resolved"), (low, high, word)


def test_the_evaluated_epoch_is_metrics_json_not_the_log_minimum(trained):
    tmp_path, path = trained
    _, text, data = build(tmp_path, path)
    rows = table_rows(section(text, "Validation (checkpoint selection)").split("Validation EER (%) on")[0])
    assert rows["system odd"].startswith("| system odd | 1, 1 | 30.00 ± 0.00 | 0 of 2 |")
    assert rows["system good"].startswith("| system good | 3, 3 | 15.00 ± 0.00 | 2 of 2 |")
    assert "| system odd | `" in text and "| 1: 1, 2: 1 |" in table_rows(section(text, "Systems"))["system odd"]
    assert data["runs"]["odd/seed1"]["epoch"] == 1


def test_per_epoch_validation_comes_from_the_jsonl(trained):
    tmp_path, path = trained
    _, text, _ = build(tmp_path, path)
    validation = section(text, "Validation (checkpoint selection)")
    valid = table_rows(validation.split("on `valid` per epoch")[1].split("on `ood_valid`")[0])
    assert valid["system base"] == "| system base | 30.00 | 20.00 | 25.00 |"
    ood = table_rows(validation.split("on `ood_valid` per epoch")[1])
    assert ood["system base"] == "| system base | 40.00 | 30.00 | 35.00 |"
    cost = table_rows(section(text, "Training cost"))
    # 3 epochs of 2.0 s, steps 1.5 s, waits 0.5 s -> 25 % of (wait + step)
    assert "| 3 | 2.0 ± 0.0 | 1.5 ± 0.0 | 25.0 % | 0.5 ± 0.0 | 1.00 |" in cost["system base"]
    assert cost["system worse"].endswith("| 5.0 ± 0.0 | 1.5 ± 0.0 | 25.0 % | 0.5 ± 0.0 | 2.20 |")
    # 2 seeds of 4 rows at 1.0 and of one at 2.2: 12.4 reference runs, 2 at a time 6.2; one is 7.5 s
    assert ("The finished runs cost 12.4 system base runs; 2 at a time, about 6.2 of them in wall time "
            "(one here: 0.1 min") in section(text, "Training cost")


def test_resolution_and_full_tables(trained):
    tmp_path, path = trained
    _, text, _ = build(tmp_path, path)
    resolution = section(text, "What the trial sets can resolve")
    assert "| eval | `all` | 20 | 180 | 20 | 2.50 / 0.28 |" in resolution
    assert "## Every condition of every split" in text and "### Split `ood` (20 test speakers)" in text
    assert "`neutral_neutral` is also `test_neutral`" in text


def test_a_skipped_or_missing_anchor_is_said(trained, tmp_path):
    base, path = trained
    suite = load_suite(path, runs=str(base / "runs"), report=str(tmp_path / "r.md"))
    shutil.rmtree(suite.anchor_folder, ignore_errors=True)
    paths = suite_report.write_report(suite)
    assert "anchor row missing" in open(paths["report"]).read()
    anchor._write_skipped(suite.anchor_folder, "x", "resemblyzer is not installed")
    text = open(suite_report.write_report(suite)["report"]).read()
    assert "**Anchor.** anchor row skipped: resemblyzer is not installed" in text
    assert "Resemblyzer (external anchor)" not in section(text, "EER (%) [95 % CI]")
    shutil.rmtree(suite.anchor_folder)


def test_runs_with_missing_files_are_named(tmp_path):
    path = make_suite(tmp_path, rows=("base", "good"), seeds=(1,))
    suite = load_suite(path)
    suite_runner.train_suite(suite, lambda line: None)
    log = os.path.join(suite.runs, "good", "seed1", "train_log.jsonl")
    os.rename(log, log + ".away")
    with pytest.raises(SuiteError, match=r"suite\.yaml: run good/seed1 \(.*\): no train_log\.jsonl"):
        suite_report.write_report(suite)
    os.rename(log + ".away", log)
    os.remove(os.path.join(suite.runs, "good", "seed1", "report", "scores", "ood.npz"))
    with pytest.raises(SuiteError, match=r"split 'ood': run .*good/seed1: no per-trial scores of split 'ood'"):
        suite_report.write_report(suite)


def test_sections_are_resolved_and_rendered(tmp_path):
    (tmp_path / "extra.py").write_text(
        "from speechbrain_ext.suite_report import Section\n"
        "class Count(Section):\n"
        "    def __init__(self, word='runs'):\n        self.word = word\n"
        "    def render(self, ctx):\n        return ['## Count', '', f'{len(ctx.rows)} {self.word}', '']\n"
        "class NotASection:\n    pass\n")
    path = make_suite(tmp_path, rows=("base",), seeds=(1,), sections=[{"section": "extra.py:Count", "word": "rows"},
                                                                      "balancer", "emotion_gap"])
    suite = load_suite(path)
    suite_runner.train_suite(suite, lambda line: None)
    text = open(suite_report.write_report(suite, suite_report.resolve_sections(suite))["report"]).read()
    assert "## Count\n\n1 rows" in text
    assert "| system base | 0.500 ± 0.250 | — | 0.750 ± 0.000 |" in section(text, "Loss balancing")  # 0.25, .5, .75
    gap = section(text, "Emotion gap")
    assert os.path.isfile(tmp_path / "report_gap_eval.png") and "| system | neutral | sad |" in gap
    for bad, message in (("extra.py:NotASection", "not a Section class"), ("nope", "no built-in section"),
                         ({"section": "extra.py:Count", "colour": 1}, "bad options")):
        suite = load_suite(make_suite(tmp_path, rows=("base",), seeds=(1,), sections=[bad]))
        with pytest.raises(SuiteError, match=rf"sections\[0\].*{message}"):
            suite_report.resolve_sections(suite)


def test_second_invocation_only_rebuilds_the_report(tmp_path):
    path = make_suite(tmp_path, rows=("base",), seeds=(1,))
    out = []
    assert suite_runner.run_suite(load_suite(path), out=out.append) == 0
    records = suite_runner.read_records(load_suite(path).runs)
    first = len(out)
    assert suite_runner.run_suite(load_suite(path), out=out.append) == 0
    assert suite_runner.read_records(load_suite(path).runs) == records
    second = out[first:]
    assert not any(re.search(r"\] \d+/\d+ ", line) for line in second)
    assert second[-1].startswith("report: ") and any("EER % [95 % CI]" in line for line in second)


def test_systems_of_the_fixture_are_known():
    assert set(SYSTEMS) == {"base", "good", "same"}


def test_a_report_of_some_rows_names_the_rows_left_out(trained, tmp_path):
    root, path = trained
    suite = load_suite(path, rows=["base", "good"], report=str(tmp_path / "some.md"))
    assert suite.left_out == ("same", "worse", "odd")
    text = open(suite_report.write_report(suite, suite_report.resolve_sections(suite))["report"]).read()
    assert "**Rows of the suite file not run for this report** (`--rows`): same, worse, odd." in text
    _, full, _ = build(root, path)
    assert "not run for this report" not in full


def test_rows_compared_with_their_own_base(trained, tmp_path):
    root, path = trained
    spec = yaml.safe_load(open(path))
    for row in spec["rows"]:
        base = {"same": "base", "worse": "good"}.get(os.path.splitext(os.path.basename(row["hparams"]))[0])
        if base:
            row["compare_with"] = base
    spec["report"] = str(tmp_path / "own.md")
    own = os.path.join(os.path.dirname(path), "own_base.yaml")
    with open(own, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    suite, text, data = build(root, own)
    assert [r.compare_with for r in suite.rows] == [None, None, "base", "good", None]
    rows = table_rows(section(text, "Against its own base").split("minDCF(0.01)")[0])
    assert set(rows) == {"system", "system same", "system worse"}
    assert "| system base | paired by seed |" in rows["system same"]
    assert rows["system same"].count("0.00 [0.00, 0.00] **not resolved**") == 4  # the base's scores
    assert "| system good | paired by seed |" in rows["system worse"] and "**worse**" in rows["system worse"]
    own_eval = [d for d in data["comparison"]["splits"]["eval"]["own_base"] if d["condition"] == "all"]
    assert [(d["system"], d["reference"]) for d in own_eval] == [("system same", "system base"),
                                                                ("system worse", "system good")]
    # the reference's table is the suite's as before
    _, plain, _ = build(root, path)
    assert section(plain, "EER (%) [95 % CI]") == section(text, "EER (%) [95 % CI]")
    assert "Against its own base" not in plain
    # --rows leaving a row's base out: that pair is left out, the rest of the report as usual
    some = load_suite(own, rows=["base", "same", "worse"], report=str(tmp_path / "some.md"))
    text = open(suite_report.write_report(some, suite_report.resolve_sections(some))["report"]).read()
    assert set(table_rows(section(text, "Against its own base").split("minDCF(0.01)")[0])) == {
        "system", "system same"}
