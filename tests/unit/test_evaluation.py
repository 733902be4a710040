"""speechbrain_ext.evaluation runs on an encode function and a loader factory: no Brain needed."""

import json
import math
import os

import numpy as np
import pytest
import torch
from fake_corpus import encode, make_loader, write_split

from speechbrain_ext import compare, evaluation, extraction
from speechbrain_ext.calibration import Calibration
from speechbrain_ext.report import read_metrics
from speechbrain_ext.trial_scores import load_trial_scores, scores_path


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    splits = [write_split(str(root), name, seed=i) for i, name in enumerate(("eval", "ood", "valid"))]
    return str(root), splits


def run(corpus, out, encoder=encode, **options):
    root, (eval_split, ood_split, valid_split) = corpus
    options = {"cache_dir": os.path.join(out, "embeddings"), "checkpoint_path": "CKPT+1",
               "calibration_splits": [valid_split], "n_draws": 200, "title": "t",
               "extra": {"system": "fake", "seed": 3},
               **options}
    return evaluation.evaluate(encoder, make_loader, [eval_split, ood_split], root, os.path.join(out, "report"),
                               **options)


def test_two_splits_side_by_side_with_intervals_calibration_and_score_files(corpus, tmp_path):
    out = str(tmp_path / "run")
    metrics = run(corpus, out)
    assert list(metrics) == ["eval", "ood"]
    report_dir = os.path.join(out, "report")
    written = read_metrics(report_dir)
    assert list(written["splits"]) == ["eval", "ood"] and written["system"] == "fake"
    assert written["conditions"] == written["splits"]["eval"]["conditions"] == json.loads(json.dumps(metrics["eval"]))
    assert written["splits"]["eval"]["aliases"] == {"all": ["copy"]}
    for split in ("eval", "ood"):
        for cond, m in metrics[split].items():
            assert {"eer", "min_dcf", "min_dcf_p0.05", "eer_ci", "min_dcf_ci", "min_dcf_p0.05_ci"} <= set(m)
            for key, ci in (("eer", "eer_ci"), ("min_dcf", "min_dcf_ci"), ("min_dcf_p0.05", "min_dcf_p0.05_ci")):
                assert m[ci][0] <= m[ci][1] and m[ci][0] - 1e-12 <= m[key] <= m[ci][1] + 1e-12, (split, cond, key)
            for key in ("cllr", "min_cllr", "act_dcf@0.01", "act_dcf@0.05", "raw_cllr", "raw_act_dcf@0.01"):
                assert math.isfinite(m[key]), (split, cond, key)
            assert m["min_cllr"] <= m["cllr"] + 1e-12 and m["n_speakers"] == 5
    # side by side in report.md, the identical list once
    md = open(os.path.join(report_dir, "report.md")).read()
    assert "| condition | eval | ood |" in md and "| all (= copy) |" in md and "| copy |" not in md
    assert "## Calibration" in md and "### ood" in md
    # the calibration file is a Calibration description fitted on the valid split's trials
    with open(os.path.join(report_dir, "calibration.json")) as f:
        calibration = Calibration.from_dict(json.load(f))
    assert calibration.quality_names == ("log_dur_min", "log_dur_max", "norm_min", "norm_max")
    assert written["calibration"]["split"] == "valid" and calibration.n_target == written["calibration"]["n_target"]
    # the score files are what compare reads, and give back the same point estimates
    for split in ("eval", "ood"):
        scores = load_trial_scores(scores_path(report_dir, split))
        assert scores.meta["split"] == split and scores.seed == 3 and len(scores.speakers) == 5
        row = next(r for r in compare.summarise({"run": [out]}, split, n_draws=200) if r["condition"] == "all")
        assert row["metrics"]["eer"]["value"] == metrics[split]["all"]["eer"]
        assert [row["metrics"]["eer"]["low"], row["metrics"]["eer"]["high"]] == metrics[split]["all"]["eer_ci"]


def test_the_cache_is_reused_and_the_metrics_repeat(corpus, tmp_path):
    out = str(tmp_path / "run")
    metrics = run(corpus, out)
    assert sorted(os.listdir(os.path.join(out, "embeddings")))[0].startswith("eval-")
    cached = torch.load(next(os.path.join(out, "embeddings", n) for n in os.listdir(os.path.join(out, "embeddings"))
                             if n.startswith("eval-")), weights_only=True)
    assert len(cached["ids"]) == 20

    def no_encoding(wavs, lens):
        raise AssertionError("the cached embeddings should have been used")

    assert run(corpus, out, encoder=no_encoding) == metrics


def test_quality_measures_change_the_calibration_not_the_raw_metrics(corpus, tmp_path):
    plain = run(corpus, str(tmp_path / "a"), calibration_quality="none")
    qmf = run(corpus, str(tmp_path / "b"))
    for key in ("eer", "min_dcf", "eer_ci", "raw_cllr"):
        assert plain["eval"]["all"][key] == qmf["eval"]["all"][key]
    assert plain["eval"]["all"]["cllr"] != qmf["eval"]["all"]["cllr"]
    # without quality measures the LLRs are an increasing affine map of the scores: same order
    assert plain["eval"]["all"]["llr_eer"] == plain["eval"]["all"]["eer"]
    assert plain["eval"]["all"]["min_cllr"] == pytest.approx(plain["eval"]["all"]["raw_min_cllr"])


def test_a_quality_calibration_reports_the_plain_one_beside_and_saves_both_llrs(corpus, tmp_path):
    plain = run(corpus, str(tmp_path / "a"), calibration_quality="none")
    qmf = run(corpus, str(tmp_path / "b"))
    for split in ("eval", "ood"):
        for cond, m in qmf[split].items():
            # the plain contrast is the score-only calibration on the same trials: the "none" run's
            assert m["plain_cllr"] == pytest.approx(plain[split][cond]["cllr"], rel=1e-9), (split, cond)
            for p in ("0.01", "0.05"):
                assert m[f"plain_act_dcf@{p}"] == pytest.approx(plain[split][cond][f"act_dcf@{p}"]), (split, cond)
            assert not any(k.startswith("plain_") for k in plain[split][cond])
    md = open(tmp_path / "b" / "report" / "report.md").read()
    assert "| Cllr (plain) | min Cllr |" in md and "actDCF(0.01) (plain)" in md
    assert "Cllr (plain)" not in open(tmp_path / "a" / "report" / "report.md").read()
    # calibration.json stays the configured (quality) calibration
    with open(tmp_path / "b" / "report" / "calibration.json") as f:
        assert Calibration.from_dict(json.load(f)).quality_names
    # the score files hold the per-trial LLRs: both kinds with quality measures, one without
    with_quality = load_trial_scores(scores_path(str(tmp_path / "b" / "report"), "eval"))
    without = load_trial_scores(scores_path(str(tmp_path / "a" / "report"), "eval"))
    assert with_quality.llr_kinds == ("calibrated", "plain") and without.llr_kinds == ("calibrated",)
    np.testing.assert_allclose(with_quality.llr("plain", "all"), without.llr("calibrated", "all"), rtol=1e-9)
    assert not np.allclose(with_quality.llr("calibrated", "all"), with_quality.llr("plain", "all"))
    from speechbrain_ext.calibration_metrics import cllr
    labels = with_quality.conditions["all"][1]
    assert cllr(with_quality.llr("calibrated", "all"), labels) == pytest.approx(qmf["eval"]["all"]["cllr"])


def test_without_a_calibration_split_there_is_no_calibration(corpus, tmp_path):
    metrics = run(corpus, str(tmp_path / "run"), calibration_splits=())
    assert "cllr" not in metrics["eval"]["all"] and "eer_ci" in metrics["eval"]["all"]
    assert not os.path.exists(tmp_path / "run" / "report" / "calibration.json")


def test_two_calibration_splits_are_pooled(corpus, tmp_path):
    """The fit on valid + ood equals the fit on their trials written as one list; its threshold is theirs."""
    _, (_, ood_split, valid_split) = corpus
    out = tmp_path / "pooled"
    run(corpus, str(out), calibration_splits=[valid_split, ood_split])
    written = read_metrics(out / "report")["calibration"]
    assert (written["split"], written["condition"]) == ("valid+ood", "all")
    # the same trials as one list of one split: both lists' lines, the ood ids' manifest appended
    both = tmp_path / "both"
    os.makedirs(both / "trials")
    lines = [line for split in (valid_split, ood_split) for line in open(os.path.join(split.trials, "all.txt"))]
    (both / "trials" / "all.txt").write_text("".join(lines))
    manifest = open(valid_split.annotation).read().splitlines()
    manifest += open(ood_split.annotation).read().splitlines()[1:]
    (both / "both.csv").write_text("\n".join(manifest) + "\n")
    one = type(valid_split)("both", str(both / "both.csv"), str(both / "trials"))
    alone = tmp_path / "alone"
    run(corpus, str(alone), calibration_splits=[one])
    with open(out / "report" / "calibration.json") as f1, open(alone / "report" / "calibration.json") as f2:
        pooled, reference = json.load(f1), json.load(f2)
    assert pooled["n_target"] == reference["n_target"] and pooled["n_nontarget"] == reference["n_nontarget"]
    np.testing.assert_allclose([pooled["slope"], pooled["offset"], *pooled["quality_coefs"]],
                               [reference["slope"], reference["offset"], *reference["quality_coefs"]], rtol=1e-9)
    assert written["eer_threshold"] == pytest.approx(read_metrics(alone / "report")["calibration"]["eer_threshold"])


def test_evaluate_with_a_cohort_as_normalises(corpus, tmp_path):
    root, (eval_split, _, valid_split) = corpus
    raw = run(corpus, str(tmp_path / "a"))
    normed = run(corpus, str(tmp_path / "b"), cohort_manifest=valid_split.annotation, score_norm_kind="as-norm",
                 cohort_per_speaker=2, top_n=3,
                 calibration_quality="qmf")
    cohort = evaluation.speaker_cohort(encode, make_loader, valid_split.annotation, root, 16000, max_per_speaker=2)
    assert cohort.shape == (5, 8) and torch.allclose(cohort.norm(dim=1), torch.ones(5, dtype=cohort.dtype))
    ids, emb = extraction.extract_embeddings(encode, make_loader, extraction.utterance_dataset(
        eval_split.annotation, root, 16000))
    _, scores = evaluation.score_trial_dir(ids, emb, eval_split.trials, cohort=cohort, top_n=3, return_scores=True)
    expected = evaluation.scoring.evaluate_conditions(scores)
    for cond, m in expected.items():
        assert {k: normed["eval"][cond][k] for k in m} == m
    assert normed["eval"]["all"]["eer_threshold"] != raw["eval"]["all"]["eer_threshold"]
    with open(tmp_path / "b" / "report" / "calibration.json") as f:
        described = json.load(f)
    assert described["score_kind"] == "as-norm top-3" and "cohort_mean_max" in described["quality_names"]
    assert np.isfinite(normed["ood"]["all"]["cllr"])


def test_a_calibration_that_cannot_be_fitted_is_skipped_and_named(corpus, tmp_path):
    root, (eval_split, ood_split, valid_split) = corpus
    few = os.path.join(root, "trials", "few")
    os.makedirs(few)
    with open(os.path.join(valid_split.trials, "all.txt")) as f:
        lines = f.read().splitlines()
    with open(os.path.join(few, "all.txt"), "w") as f:
        f.write("\n".join(lines[:10]) + "\n")  # 10 trials: a calibration needs at least 20
    tiny = type(valid_split)("valid", valid_split.annotation, few)
    metrics = run(corpus, str(tmp_path / "run"), calibration_splits=[tiny])
    assert "cllr" not in metrics["eval"]["all"] and metrics["ood"]["all"]["eer_ci"]
    written = read_metrics(tmp_path / "run" / "report")
    assert written["calibration"] == {"split": "valid", "error": "only 10 calibration trials: at least 20 are needed"}
    assert "Not fitted on `valid`: only 10 calibration trials" in open(tmp_path / "run" / "report" / "report.md").read()
    assert not os.path.exists(tmp_path / "run" / "report" / "calibration.json")
