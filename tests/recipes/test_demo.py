"""`make demo` (recipes/SynthEmo/demo.py) end to end on the tiny corpus: 2 systems, 2 tiny epochs.

One demo run is shared by the module (it is the expensive part); the tests after the first
read what it left, run it again, or change one input. The last test removes the anchor's
results: keep it last.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from speechbrain_ext.compare import load_run
from speechbrain_ext.epoch_log import read_epoch_log
from speechbrain_ext.suite import load_suite
from speechbrain_ext.system_choice import choose_system, validation_eers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# tests/conftest.py by path: "conftest" is not a unique module name in tests/
_SPEC = importlib.util.spec_from_file_location("tests_conftest", os.path.join(ROOT, "tests", "conftest.py"))
_CONFTEST = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_CONFTEST)
TINY_CORPUS = _CONFTEST.TINY_CORPUS
DEMO = os.path.join(ROOT, "recipes", "SynthEmo", "demo.py")
SUITE = os.path.join(ROOT, "recipes", "SynthEmo", "demo.yaml")
ROWS = ("ecapa_aam", "ecapa_aam_amsupcon_caa_mgda")
PAPER_A = "paper A (AM-SupCon + CAA + MGDA)"


def settings(data_folder, epochs=2):
    return {"data_folder": data_folder, "n_train_speakers": TINY_CORPUS["n_train"],
            "n_valid_speakers": TINY_CORPUS["n_valid"], "n_eval_speakers": TINY_CORPUS["n_eval"],
            "n_sentences": TINY_CORPUS["n_sentences"], "channels": 32, "speakers_per_batch": 4,
            "number_of_epochs": epochs}


def run_demo(out, data_folder, env=None, timeout=600):
    args = [sys.executable, DEMO, "--out", str(out), "--rows", *ROWS, "--draws", "100",
            "--set", *(f"{k}={v}" for k, v in settings(data_folder).items())]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **(env or {})})


def half_trained(out, data_folder):
    """Paper A's run as an interrupted demo leaves it: epoch 1 of 2 trained and checkpointed, nothing evaluated."""
    suite = load_suite(SUITE, rows=list(ROWS), settings=settings(data_folder),
                       runs=os.path.join(out, "runs"), report=os.path.join(out, "report.md"))
    row = suite.row(ROWS[1])
    command = suite.run_command(row, suite.seeds[0])
    command[command.index("--number_of_epochs") + 1] = "1"
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    folder = suite.run_folder(row, suite.seeds[0])
    shutil.rmtree(os.path.join(folder, "report"))
    return folder, read_epoch_log(os.path.join(folder, "train_log.jsonl"))


@pytest.fixture(scope="module")
def demo(tiny_synthemo, tmp_path_factory):
    data_folder, _ = tiny_synthemo
    out = tmp_path_factory.mktemp("demo") / "results"
    interrupted, before = half_trained(str(out), data_folder)
    done = run_demo(out, data_folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(done.stdout)
    return {"out": str(out), "data": data_folder, "stdout": done.stdout, "interrupted": interrupted,
            "before": before}


def test_demo_trains_reports_and_publishes_the_validation_best_system(demo):
    out, stdout = demo["out"], demo["stdout"]
    for stage in ("demo 1/5 data", "demo 2/5 training", "demo 3/5 publish", "demo 4/5 report", "demo 5/5 done"):
        assert stage in stdout
    assert stdout.count("left in total") >= 6  # every stage line and every finished job
    # SpeechBrain's own output and the runs' progress bars stay in the logs
    assert "speechbrain.core" not in stdout and "it/s]" not in stdout
    assert os.path.getsize(os.path.join(out, "runs", "logs", f"{ROWS[0]}-seed1986.log")) > 0
    report = open(os.path.join(out, "report.md")).read()
    for heading in ("## EER (%) [95 % CI]", "Paired difference vs baseline (ECAPA + AAM)", "## DET curves",
                    "## Emotion gap", "## The published model", "## Training cost", "Resemblyzer (external anchor)",
                    "## `ood` at `eval`'s mix of impostors"):
        assert heading in report
    # the tiny corpus may lack a kind of impostor pair: then the section says so instead of a table
    assert "| system | runs | `eval` | `ood` | `ood` matched |" in report or "Not computed: " in report
    for figure in ("report_det.png", "report_gap_eval.png", "report_gap_ood.png"):
        assert os.path.getsize(os.path.join(out, figure)) > 1000
    # the rule, recomputed here from the validation EERs of each run only
    runs = {label: os.path.join(out, "runs", name, "seed1986", "report")
            for label, name in (("baseline (ECAPA + AAM)", ROWS[0]), (PAPER_A, ROWS[1]))}
    expected = choose_system({k: validation_eers(v) for k, v in runs.items()}, "baseline (ECAPA + AAM)").system
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["published"]["label"] == expected
    assert set(metrics["systems"]) == set(runs) and metrics["comparison"]["splits"].keys() == {"eval", "ood"}
    chosen = json.load(open(os.path.join(runs[expected], "metrics.json")))
    model = os.path.join(out, "model")
    assert f"`{chosen['system']}`" in open(os.path.join(model, "README.md")).read()
    verification = json.load(open(os.path.join(model, "verification.json")))
    # the operating point is chosen on the validation (calibration) trials, never on eval
    assert verification["threshold"] == pytest.approx(chosen["calibration"]["eer_threshold"])
    assert verification["condition"] == f"{chosen['calibration']['split']}/{chosen['calibration']['condition']}"
    assert json.load(open(os.path.join(model, "published.json")))["label"] == expected
    # the summary: a row per system and the anchor, the paths, the verify example naming the model
    tail = stdout[stdout.index("demo 5/5 done"):]
    for line in ("baseline (ECAPA + AAM)", PAPER_A, "Resemblyzer (external anchor)",
                 f"published: {expected}", "report:", "metrics:", "python -m speechbrain_ext.verify a.wav b.wav "
                 f"--model {model} --prior 0.01"):
        assert line in tail
    assert "neutral_emotional ood" in tail and "[" in tail


def test_the_demo_scores_its_runs_on_stronger_emotions_beside_its_corpus(demo):
    """The rescore section of demo.yaml: the same runs on the corpus generated at expressiveness 2.4."""
    out, data = demo["out"], demo["data"]
    strong = json.load(open(os.path.join(out, "expr2.4", "report.json")))
    assert set(strong["splits"]) == {"eval", "ood"}
    systems = set(strong["splits"]["eval"]["systems"])
    assert {"baseline (ECAPA + AAM)", PAPER_A, "Resemblyzer (external anchor)"} <= systems
    # generated beside the demo's corpus (wherever --set put it), never into the repository's data/
    prepared = json.load(open(os.path.join(out, "expr2.4", "manifests", "prepare.json")))["options"]
    assert prepared["data_folder"] == os.path.abspath(data + "_expr2.4_eval")
    assert prepared["voice_space"]["expressiveness_mean"] == 2.4
    assert prepared["n_train"] == 0  # no training speaker generated
    # the same speakers as the demo's own eval split, other recordings
    ids = {line.split(",")[0] for line in open(os.path.join(out, "runs", "manifests", "eval.csv"))}
    assert ids == {line.split(",")[0] for line in open(os.path.join(out, "expr2.4", "manifests", "eval.csv"))}
    report = open(os.path.join(out, "report.md")).read()
    assert "## Stronger emotions than any training utterance" in report and "#### Paired differences vs" in report
    tail = demo["stdout"][demo["stdout"].index("demo 5/5 done"):]
    assert "Stronger emotions than any training utterance" in tail


def test_the_published_model_scored_by_model_eval_gives_its_runs_own_scores(demo, tmp_path):
    """What a held-out check does with the demo model: score it on a recipe's trials (here the demo's own)."""
    out = demo["out"]
    run = json.load(open(os.path.join(out, "model", "published.json")))["run"]
    hparams = json.load(open(os.path.join(run, "suite_run.json")))["hparams"]
    args = [f"--{k}={v}" for k, v in settings(demo["data"]).items()] + [f"--output_root={out}/runs"]
    command = [sys.executable, "-m", "speechbrain_ext.model_eval", str(tmp_path / "scored"), hparams,
               "--model", os.path.join(out, "model"), "--draws", "100", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for split in ("eval", "ood"):
        mine, theirs = load_run(str(tmp_path / "scored"), split), load_run(run, split)
        assert mine.seed == theirs.seed == 1986
        for condition, (scores, labels, _) in theirs.conditions.items():
            np.testing.assert_allclose(mine.conditions[condition][0], scores, atol=1e-6)
            assert (mine.conditions[condition][1] == labels).all()


def test_half_trained_system_is_resumed_not_retrained(demo):
    epochs = read_epoch_log(os.path.join(demo["interrupted"], "train_log.jsonl"))
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == demo["before"][0]  # epoch 1 as the interrupted run logged it: not trained again
    assert os.path.isfile(os.path.join(demo["interrupted"], "report", "metrics.json"))


def test_a_finished_demo_only_prints_its_summary_again(demo):
    report = os.path.join(demo["out"], "report.md")
    mtime = os.stat(report).st_mtime_ns
    again = run_demo(demo["out"], demo["data"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "is finished and nothing it depends on has changed" in again.stdout
    assert "demo 2/5" not in again.stdout and "demo 1/5" not in again.stdout
    summary = demo["stdout"][demo["stdout"].index("EER % [95 % CI]"):]
    assert summary.strip() in again.stdout
    assert os.stat(report).st_mtime_ns == mtime


def test_a_corpus_of_other_settings_is_refused_with_the_keys_and_what_to_do(demo, tmp_path):
    other = tmp_path / "old_corpus"
    other.mkdir()
    marker = json.load(open(os.path.join(demo["data"], "synthemo.json")))
    marker["content_options"]["format"] = 1
    (other / "synthemo.json").write_text(json.dumps(marker))
    done = run_demo(tmp_path / "results", str(other))
    assert done.returncode == 1
    assert "holds a SynthEmo corpus generated with other settings (format: 1 ->" in done.stderr
    assert "Delete that folder and run the demo again" in done.stderr and "--set data_folder=" in done.stderr
    assert "prepare.log" in done.stderr
    assert not (tmp_path / "results" / "runs" / ROWS[0]).exists()  # nothing trained


def test_without_resemblyzer_the_demo_finishes_and_says_why_the_anchor_row_is_missing(demo, tmp_path):
    # A `resemblyzer` that cannot be imported, first on the path of the demo and its subprocesses.
    shim = tmp_path / "shim" / "resemblyzer"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'resemblyzer'\", "
                                      "name='resemblyzer')\n")
    shutil.rmtree(os.path.join(demo["out"], "runs", "resemblyzer"))
    pythonpath = os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])
    done = run_demo(demo["out"], demo["data"], env={"PYTHONPATH": pythonpath})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Resemblyzer (external anchor): row skipped (resemblyzer is not installed" in done.stdout
    assert "anchor row skipped: resemblyzer is not installed" in done.stdout[done.stdout.index("demo 5/5"):]
    report = open(os.path.join(demo["out"], "report.md")).read()
    assert "anchor row skipped: resemblyzer is not installed" in report
    assert "demo 3/5 publish" in done.stdout and "try it:" in done.stdout
