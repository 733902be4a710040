"""suite_rescore's resumption: what it keeps and what it makes again (the end-to-end run is in
tests/recipes/test_ablation_suites.py)."""

import json
import os

import speechbrain_ext.publish
from speechbrain_ext import suite_rescore


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
