"""recipes/SynthEmo/ablation/difficulty.py: its command, what it refuses, what it reuses, the failure it names."""

import json
import os
import subprocess

import pytest
from recipe_scripts import load_script

difficulty = load_script("recipes", "SynthEmo", "ablation", "difficulty.py")


def _metrics(eer):
    return {"splits": {s: {"conditions": {c: {"eer": eer} for c in difficulty.CONDITIONS}}
                       for s in difficulty.SPLITS}}


def test_the_command_scores_the_validation_splits_only_on_the_corpus_of_that_strength(tmp_path):
    out, cmd = difficulty.command(1.7, 1986, "data", str(tmp_path))
    args = dict(zip(cmd[3::2], cmd[4::2]))
    assert args["--data_folder"] == os.path.join("data", "SynthEmo_expr1.7")
    assert json.loads(args["--voice_space"]) == {"expressiveness_mean": 1.7}
    scored = json.loads(args["--eval_splits"])
    assert scored["eval"] is None and scored["ood"] is None and set(scored) == {"eval", "ood", "valid", "ood_valid"}
    assert scored["valid"]["trials"] == os.path.join(out, "manifests", "trials", "valid").replace(os.sep, "/")


@pytest.mark.parametrize("argv, message", [
    (["1.0", "1.0"], "expressiveness_mean values must be distinct and > 0"),
    (["0", "1.5"], "expressiveness_mean values must be distinct and > 0"),
    (["-1"], "expressiveness_mean values must be distinct and > 0"),
    (["1.7", "--seeds", "1", "1"], "seeds must be distinct"),
])
def test_repeated_or_non_positive_strengths_and_repeated_seeds_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        difficulty.main(argv)
    assert message in capsys.readouterr().err


def test_a_finished_run_is_reused_and_a_failed_one_names_its_log(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    done = runs / "expr1.7" / "ecapa_aam" / "seed1986" / "report"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps(_metrics(0.04)))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 3))
    report = tmp_path / "table.md"
    difficulty.main(["1.7", "--runs", str(runs), "--report", str(report)])
    assert calls == [] and "| 1.7 | 1 | 4.00 | 4.00 | 4.00 | 4.00 | 4.00 | 4.00 | 1.00, 1.00 |" in report.read_text()
    with pytest.raises(RuntimeError, match=r"expressiveness_mean 2\.4, seed 1987: the recipe failed \(exit 3\); "
                                           r"see .*expr2\.4/log_seed1987\.txt"):
        difficulty.main(["2.4", "--seeds", "1987", "--runs", str(runs), "--report", str(report)])
    assert len(calls) == 1 and calls[0][calls[0].index("--seed") + 1] == "1987"
