"""Scoring faults through ``speechbrain_ext.evaluation``: clear errors naming the trial file, line and id."""

import csv
import os

import numpy as np
import pytest
import torch
from reliability_helpers import copy_experiment, experiment_dir, read_metrics, run_recipe

from speechbrain_ext import evaluation
from speechbrain_ext.scoring import MissingEmbeddingError

IDS = ["a1", "a2", "b1", "b2"]


def trial_dir(tmp_path, text):
    folder = tmp_path / "trials"
    folder.mkdir()
    (folder / "all.txt").write_text(text)
    return str(folder)


def embeddings():
    return torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])


def test_trial_id_without_embedding(tmp_path, scenario):
    row = scenario("Trial names an utterance without an embedding", "error naming the trial file, line and id")
    folder = trial_dir(tmp_path, "1 a1 a2\n0 a1 b1\n1 b1 zz9\n")
    with pytest.raises(MissingEmbeddingError) as err:
        evaluation.score_trial_dir(IDS, embeddings(), folder)
    assert str(err.value).endswith("all.txt:3: test id 'zz9' has no embedding")
    row.observed = str(err.value).replace(str(tmp_path), "<tmp>")


def test_empty_trial_list(tmp_path, scenario):
    row = scenario("Empty trial list", "error naming the file")
    folder = trial_dir(tmp_path, "\n")
    with pytest.raises(ValueError, match="the trial list is empty") as err:
        evaluation.score_trial_dir(IDS, embeddings(), folder)
    row.observed = str(err.value).replace(str(tmp_path), "<tmp>")


def test_all_scores_equal(tmp_path, scenario):
    row = scenario("All scores equal (every embedding identical)", "no crash; EER 0.5 (chance), minDCF 1.0")
    folder = trial_dir(tmp_path, "1 a1 a2\n0 a1 b1\n1 b1 b2\n0 a2 b2\n")
    result = evaluation.score_trial_dir(IDS, torch.ones(4, 2), folder)["all"]
    assert result["eer"] == 0.5 and result["min_dcf"] == pytest.approx(1.0)
    row.observed = f"EER {result['eer']}, minDCF {result['min_dcf']:.3f}"


def test_non_finite_embedding(tmp_path, scenario):
    row = scenario("Non-finite (NaN) embedding", "error naming the utterance")
    folder = trial_dir(tmp_path, "1 a1 a2\n0 a1 b1\n")
    emb = embeddings()
    emb[2, 0] = float("nan")
    with pytest.raises(ValueError, match="b1") as err:
        evaluation.score_trial_dir(IDS, emb, folder)
    row.observed = str(err.value)
    assert np.isnan(emb.numpy()).any()


@pytest.mark.slow
def test_unreadable_eval_file_end_to_end(baseline, corpus, tmp_path, scenario):
    row = scenario(
        "Evaluation: an eval wav is unreadable (real run), so its trials have no embedding",
        "the run ends with one error line naming the trial file, line and id; checkpoints kept",
    )
    out = copy_experiment(baseline[0], str(tmp_path / "out"))
    manifest = os.path.join(out, "manifests", "eval.csv")
    with open(manifest, newline="") as f:
        rows = list(csv.reader(f))
    victim = rows[5][0]
    rows[5][2] = str(tmp_path / "gone.wav")
    broken = str(tmp_path / "eval.csv")
    with open(broken, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    done = run_recipe(corpus, out, "--number_of_epochs", 2, "--eval_splits", f"{{eval: {{annotation: {broken}}}}}",
                      check=False)
    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if x.startswith("error: "))
    assert f"'{victim}'" in line and "has no embedding" in line and "all.txt:" in line
    assert "checkpoints are kept" in line
    assert os.listdir(os.path.join(experiment_dir(out), "save"))
    assert read_metrics(out)  # the earlier report is still there
    row.observed = line.replace(str(tmp_path), "<tmp>").replace(out, "<out>")[:300]
