"""Smoke of both SynthEmo ablation suites end to end on the tiny corpus (2 rows x 2 seeds, 1 epoch each).

The same path as `make ablation-contrastive` / `make ablation-emotion`: recipes/SynthEmo/ablation/run.py,
the package's suite runner, the recipe in subprocesses, the anchor, the report and its sections.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import ROOT, TINY_CORPUS

from speechbrain_ext.compare import load_run

RUN = os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "run.py")
ROWS = {"contrastive": ["ecapa_aam", "ecapa_aam_amsupcon_caa_mgda"],
        "emotion": ["ecapa_aam", "ecapa_aam_copypaste_cos_em"]}
VERDICT = re.compile(r"([-+]?\d+\.\d+) \[([-+]?\d+\.\d+), ([-+]?\d+\.\d+)\] \*\*([a-z ]+)\*\*")


def has_resemblyzer():
    try:
        importlib.metadata.version("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def tiny_settings(data_folder):
    return [f"data_folder={data_folder}", f"n_train_speakers={TINY_CORPUS['n_train']}",
            f"n_valid_speakers={TINY_CORPUS['n_valid']}", f"n_eval_speakers={TINY_CORPUS['n_eval']}",
            f"n_sentences={TINY_CORPUS['n_sentences']}", "channels=32", "speakers_per_batch=4",
            "number_of_epochs=1", "bootstrap_draws=100"]


def run_suite(name, data_folder, tmp_path):
    settings = tiny_settings(data_folder)
    command = [sys.executable, RUN, name, "--rows", *ROWS[name], "--seeds", "1986", "1987", "--jobs", "2",
               "--threads", "1", "--draws", "200", "--runs", str(tmp_path / "runs"),
               "--report", str(tmp_path / f"ablation_{name}.md"), "--set", *settings]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, (tmp_path / f"ablation_{name}.md").read_text()


def check_verdicts(text):
    cells = VERDICT.findall(text)
    assert cells, "no paired difference with an interval and a verdict"
    for _, low, high, word in cells:
        low, high = float(low), float(high)
        assert word == ("better" if high < 0 else "worse" if low > 0 else "not resolved")


def test_both_suites_run_end_to_end_share_the_baseline_and_resume(tiny_synthemo, tmp_path):
    data_folder, _ = tiny_synthemo
    out, text = run_suite("contrastive", data_folder, tmp_path)
    progress = [line for line in out.splitlines() if re.search(r"\] \d/\d ", line)]
    expected_jobs = 4 + has_resemblyzer()
    assert len(progress) == expected_jobs and "left for" in out and progress[-1].endswith("all done")
    assert re.search(r"\| AAM \+ AM-SupCon \+ CAA \+ MGDA \(paper A\) \| 2 \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", text)
    assert "| system | runs | `all` eval | `all` ood |" in text and "## Loss balancing" in text
    check_verdicts(text)
    if has_resemblyzer():
        assert "| Resemblyzer (external anchor) | 1 |" in text
    else:
        assert "anchor row skipped" in text

    out, text = run_suite("emotion", data_folder, tmp_path)
    records = json.load(open(tmp_path / "runs" / "suite_runs.json"))
    assert records["ecapa_aam/seed1986"]["finished"] < records["ecapa_aam_copypaste_cos_em/seed1986"]["finished"]
    assert len([line for line in out.splitlines() if re.search(r"\] \d/\d ", line)]) == 2  # the baseline is shared
    check_verdicts(text)
    for png in ("ablation_emotion_gap_eval.png", "ablation_emotion_gap_ood.png", "ablation_emotion_projection.png"):
        assert (tmp_path / png).stat().st_size > 0
    assert "## Emotion gap" in text and "| system | neutral | angry | fear | happy | sad |" in text
    probe = text.split("## Validation probe", 1)[1].split("\n## ", 1)[0]
    eer = r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]"
    row = re.search(rf"\| \+ CopyPaste \+ L_cos \+ EM \(paper B\) \| 2 \| {eer} \|.*", probe)
    assert row and len(re.findall(r"\*\*(?:higher|lower|not resolved)\*\*", row.group(0))) == 2  # paired verdicts

    report = tmp_path / "ablation_emotion.md"
    os.utime(report, (0, 0))
    out, again = run_suite("emotion", data_folder, tmp_path)
    assert "every run of" in out and not re.search(r"\] \d/\d ", out) and "test-time masking probe" not in out
    assert json.load(open(tmp_path / "runs" / "suite_runs.json")) == records
    assert report.stat().st_mtime > 0 and again.split("## Systems")[1] == text.split("## Systems")[1]

    # the finished runs exported and scored again (suite_rescore), here on their own trial lists: their own scores
    suite = os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "contrastive.yaml")
    rescore = [sys.executable, "-m", "speechbrain_ext.suite_rescore", suite, "--rows", *ROWS["contrastive"],
               "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rescored"), "--draws", "50",
               "--set", *tiny_settings(data_folder)]
    done = subprocess.run([*rescore, "--seeds", "1986", "1987"], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rescored = (tmp_path / "rescored" / "report.md").read_text()
    assert not [row for row in ROWS["contrastive"] if (tmp_path / "rescored" / row).exists()]  # no empty run folders
    assert "| AAM + AM-SupCon + CAA + MGDA (paper A) |" in rescored
    assert ("| Resemblyzer (external anchor) | 1 |" in rescored) == has_resemblyzer()
    for row in ROWS["contrastive"]:
        for seed in (1986, 1987):
            for split in ("eval", "ood"):
                mine = load_run(str(tmp_path / "rescored" / "scores" / row / f"seed{seed}"), split)
                theirs = load_run(str(tmp_path / "runs" / row / f"seed{seed}"), split)
                assert mine.seed == seed
                for condition, (scores, _, _) in theirs.conditions.items():
                    np.testing.assert_allclose(mine.conditions[condition][0], scores, atol=1e-6)
    # other trial lists into the same folder (here: fewer non-targets per target) are scored again, not reused
    done = subprocess.run([*rescore, "nontargets_per_target=5", "--seeds", "1986"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    fewer = load_run(str(tmp_path / "rescored" / "scores" / "ecapa_aam" / "seed1986"), "eval").conditions["all"]
    own = load_run(str(tmp_path / "runs" / "ecapa_aam" / "seed1986"), "eval").conditions["all"]
    assert (fewer[1] == 1).sum() == (own[1] == 1).sum() and (fewer[1] == 0).sum() < (own[1] == 0).sum()
    done = subprocess.run([*rescore, "--seeds", "1988"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 1 and "run ecapa_aam/seed1988 has not finished" in done.stderr


def test_suite_files_name_existing_systems_and_the_ablation_rows():
    from speechbrain_ext.suite import load_suite

    for name in ("contrastive", "emotion", "extensions", "augmentation", "batches"):
        path = os.path.join(ROOT, "recipes", "SynthEmo", "ablation", f"{name}.yaml")
        suite = load_suite(path)
        assert len(suite.seeds) >= 5 and suite.jobs == 2 and suite.threads == 1 and suite.reference == "ecapa_aam"
        assert all(os.path.isfile(r.hparams) for r in suite.rows) and suite.anchor == "resemblyzer"
        assert suite.splits == ("eval", "ood")
        # the recipe's own settings: no per-suite training override
        assert dict(suite.settings) == {"data_folder": "data/SynthEmo"}
        assert yaml.safe_load(open(path))["runs"] == "results/ablation/SynthEmo"
    emotion = load_suite(os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "emotion.yaml"))
    assert [r.name for r in emotion.rows] == [
        "ecapa_aam", "ecapa_aam_twocrop", "ecapa_aam_copypaste", "ecapa_aam_copypaste_cos",
        "ecapa_aam_copypaste_cos_em"]
    extensions = load_suite(os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "extensions.yaml"))
    assert [(r.name, r.continues, dict(r.overrides)) for r in extensions.rows] == [
        ("ecapa_aam", None, {}), ("ecapa_aam_lm", "ecapa_aam", {}), ("resnet34_aam", None, {"number_of_epochs": 3}),
        ("campp_aam", None, {"number_of_epochs": 2}),
        ("ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em", None, {})]
    augmentation = load_suite(os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "augmentation.yaml"))
    assert [r.name for r in augmentation.rows] == [
        "ecapa_aam", "ecapa_aam_dropaug", "ecapa_aam_amsupcon", "ecapa_aam_amsupcon_dropaug",
        "ecapa_aam_speedperturb", "ecapa_aam_amsupcon_speedperturb"]
    batches = load_suite(os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "batches.yaml"))
    assert [(r.name, r.compare_with) for r in batches.rows] == [
        ("ecapa_aam", None), ("ecapa_aam_amsupcon", None), ("ecapa_aam_amsupcon_accentbatches", "ecapa_aam_amsupcon")]
    from speechbrain_ext.suite_report import resolve_sections

    assert [type(s).__name__ for s in resolve_sections(emotion)] == ["EmotionGap", "CompositionSection", "Projection",
                                                                    "EmProbeSection"]


@pytest.mark.parametrize("target", ["ablation-contrastive", "ablation-emotion", "ablation-extensions",
                                    "ablation-augmentation", "ablation-batches"])
def test_make_targets_run_the_suites(target):
    done = subprocess.run(["make", "-n", target, "ARGS=--dry-run --jobs 1"], capture_output=True, text=True,
                          cwd=ROOT)
    name = target.split("-")[1]
    assert f"recipes/SynthEmo/ablation/run.py {name} --dry-run --jobs 1" in done.stdout

