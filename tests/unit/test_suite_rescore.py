"""suite_rescore's resumption: what it keeps and what it makes again (the end-to-end run is in
tests/recipes/test_ablation_suites.py)."""

import json
import os
import shlex
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from suite_fixtures import make_suite, write_system

import speechbrain_ext.publish
from speechbrain_ext import suite_rescore
from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.compare_report import build_report, write_report
from speechbrain_ext.suite import SuiteError, load_suite
from speechbrain_ext.suite_runner import parse_settings
from speechbrain_ext.trial_scores import TrialScores


def test_an_export_is_made_again_only_when_the_run_evaluated_another_checkpoint(tmp_path, monkeypatch):
    run, model = tmp_path / "run", tmp_path / "models" / "row" / "seed1"
    (run / "report").mkdir(parents=True)
    calls = []

    def evaluated(name):
        (run / "report" / "metrics.json").write_text(json.dumps({"checkpoint": f"save/{name}"}))

    def export_model(experiment_dir, out_dir, checkpoint=None):
        calls.append(checkpoint)
        os.makedirs(out_dir, exist_ok=True)
        (model / "export.json").write_text(json.dumps({"checkpoint": f"save/{checkpoint}"}))

    monkeypatch.setattr(speechbrain_ext.publish, "export_model", export_model)
    evaluated("CKPT+1")
    suite_rescore._export(str(run), str(model))
    suite_rescore._export(str(run), str(model))
    assert calls == ["CKPT+1"]  # kept
    evaluated("CKPT+2")  # the run was trained again since
    suite_rescore._export(str(run), str(model))
    assert calls == ["CKPT+1", "CKPT+2"]


def test_a_score_folder_is_kept_only_for_the_same_model_and_trial_options(tmp_path):
    model, scores = tmp_path / "model", tmp_path / "scores"
    model.mkdir()
    (model / "hyperparams.yaml").write_text("a: 1\n")
    (model / "embedding_model.ckpt").write_bytes(b"w")
    identity = suite_rescore._identity(str(model), ["--data_folder", "data/x"])
    assert not suite_rescore._scored(str(scores), identity)  # nothing there
    scores.mkdir()
    (scores / "metrics.json").write_text("{}")
    assert not suite_rescore._scored(str(scores), identity)  # an interrupted scoring: no identity written
    (scores / suite_rescore.IDENTITY).write_text(json.dumps(identity))
    assert suite_rescore._scored(str(scores), identity)
    assert not suite_rescore._scored(str(scores), suite_rescore._identity(str(model), ["--data_folder", "data/y"]))
    (model / "embedding_model.ckpt").write_bytes(b"other weights")
    assert not suite_rescore._scored(str(scores), suite_rescore._identity(str(model), ["--data_folder", "data/x"]))


# ---------------------------------------------------------------------------- RescoreSection
def _section(**kw):
    options = {"name": "strong", "title": "Stronger emotions", "about": "Harder trials.",
               "settings": {"data_folder": "{data_folder}_strong", "voice_space": {"expressiveness_mean": 2.4}}}
    return suite_rescore.RescoreSection(**{**options, **kw})


def _suite(tmp_path):
    path = make_suite(tmp_path, settings={"data_folder": "data/x", "snr_db": [5.0, 25.0]})
    for row in ("base", "good"):
        write_system(str(tmp_path / "systems"), row, data_folder="data", snr_db=[0.0, 1.0], voice_space=None)
    return load_suite(path)


def test_the_section_scores_every_row_and_seed_with_its_settings_over_the_suites(tmp_path):
    suite = _suite(tmp_path)
    command = _section(conditions=["all"]).command(suite)
    assert command[1:4] == ["-m", "speechbrain_ext.suite_rescore", suite.path]
    value = {flag: command[command.index(flag) + 1] for flag in ("--out", "--report", "--runs", "--draws")}
    assert value["--out"] == str(tmp_path / "strong") and value["--report"] == str(tmp_path / "strong" / "report.md")
    assert value["--runs"] == suite.runs and value["--draws"] == "200"
    rows = command[command.index("--rows") + 1:command.index("--seeds")]
    seeds = command[command.index("--seeds") + 1:command.index("--set")]
    settings = command[command.index("--set") + 1:command.index("--conditions")]
    assert rows == ["base", "good"] and seeds == ["1", "2"] and command[-1] == "all"
    # what the command line reads back: the suite's settings, the section's over them
    assert parse_settings(settings) == {"data_folder": "data/x_strong", "snr_db": [5.0, 25.0],
                                        "voice_space": {"expressiveness_mean": 2.4}}


def test_the_sections_settings_are_checked(tmp_path):
    with pytest.raises(SuiteError, match="name 'a/b' must be a plain folder name"):
        _section(name="a/b")
    with pytest.raises(SuiteError, match="settings must be a non-empty mapping"):
        _section(settings={})
    suite = load_suite(make_suite(tmp_path))  # no data_folder setting to build on
    with pytest.raises(SuiteError, match=r"settings.data_folder names '\{data_folder\}'"):
        _section().command(suite)


def test_a_failed_scoring_names_its_log(tmp_path, monkeypatch):
    suite = _suite(tmp_path)
    section = _section()
    monkeypatch.setattr(section, "command", lambda s: [sys.executable, "-c", "print('no corpus here'); raise "
                                                       "SystemExit(3)"])
    lines = []
    with pytest.raises(SuiteError, match=r"(?s)section rescore strong failed \(exit status 3\); log: .*rescore.log"
                                         r"\nno corpus here"):
        section.after_runs(suite, out=lines.append)
    assert "Stronger emotions" in lines[0]


def _scores(seed, quality):
    rng = np.random.default_rng(seed)
    labels = np.array([1, 0, 0, 0] * 20, np.int8)
    scores = rng.normal(size=labels.size) + quality * labels
    speakers = np.repeat(np.arange(20), 4).astype(np.int32)
    return TrialScores("r", tuple(f"s{i}" for i in range(20)),
                       {"all": (scores, labels, speakers), "neutral_emotional": (scores, labels, speakers)})


def test_the_section_shows_the_rescored_comparison_in_the_report_and_the_summary(tmp_path):
    suite = _suite(tmp_path)
    section = _section()
    ctx = SimpleNamespace(suite=suite)
    assert "Not scored with this suite's runs and settings yet" in "\n".join(section.render(ctx))
    assert section.summary_lines(suite) == []
    comparison = SplitComparison({"system base": [_scores(0, 1.0)], "system good": [_scores(1, 3.0)]}, n_draws=50)
    os.makedirs(section.folder(suite))
    command = shlex.join(["python", "-m", "speechbrain_ext.suite_rescore", *section.command(suite)[3:]])
    write_report(os.path.join(section.folder(suite), "report.md"), build_report([comparison], "system base", command))
    # scored with other settings: never shown as this section's
    other = _section(settings={"data_folder": "{data_folder}_other"})
    assert "Not scored with this suite's runs and settings yet" in "\n".join(other.render(ctx))
    assert other.summary_lines(suite) == []
    text = "\n".join(section.render(ctx))
    assert text.startswith("## Stronger emotions\n\nHarder trials. The same runs, untouched, scored on the trial "
                           "lists of `data_folder=data/x_strong`")
    assert "### Split `eval`" in text and "#### Paired differences vs system base" in text
    assert "\n# " not in text and "\n## Split" not in text  # its headings sit under the section's
    summary = section.summary_lines(suite)
    assert summary[0] == "Stronger emotions:" and summary[1].startswith("EER % [95 % CI]")
    assert any(line.startswith("system good") for line in summary)


def test_loading_a_rows_recipe_leaves_no_run_folder_in_out(tmp_path):
    # Loading hyperparameters makes the checkpointer's folder: it must be the scratch one, not <out>/<system>/seed<n>.
    from speechbrain_ext.hparams import load_hparams
    from speechbrain_ext.recipe import parse_arguments

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    suite = load_suite(os.path.join(root, "recipes", "SynthEmo", "ablation", "contrastive.yaml"))
    row = suite.row(suite.reference)
    args = suite_rescore._recipe_args(suite, row, suite.seeds[0], str(tmp_path))
    load_hparams(row.hparams, parse_arguments([row.hparams, *args])[2])
    assert os.listdir(tmp_path) == [".prepare"]
