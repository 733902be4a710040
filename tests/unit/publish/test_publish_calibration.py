"""An exported model carries its run's calibration; ``verify`` prints the LLR and decides at a prior.

The experiment (conftest) gets a ``report/calibration.json`` as the evaluation writes it
(``Calibration.to_dict()``, quality measures ``duration_norm``) and calibration metrics in
its ``metrics.json``; the LLR ``verify`` prints is recomputed here from the two files.
"""

import json
import math
import os
import re
import shutil

import pytest
import soundfile as sf
import torch
from publish_helpers import write_wav

from speechbrain_ext.calibration import Calibration
from speechbrain_ext.publish import PublishError, export_model
from speechbrain_ext.quality import measure_names
from speechbrain_ext.verify import main as verify_main

QUALITY = measure_names("duration_norm")  # log_dur_min, log_dur_max, norm_min, norm_max
CALIBRATION = Calibration(slope=8.0, offset=-3.0, quality_names=QUALITY, quality_coefs=(0.5, -0.2, 0.01, -0.02),
                          p_target=0.5, n_target=120, n_nontarget=480, score_kind="cosine")
CAL_METRICS = {"cllr": 0.42, "min_cllr": 0.35, "act_dcf@0.01": 0.61, "act_dcf@0.05": 0.5, "raw_cllr": 0.93}


def add_calibration(exp, calibration):
    """Write ``calibration`` where the evaluation writes it and the calibration metrics into ``metrics.json``."""
    report = os.path.join(exp, "report")
    with open(os.path.join(report, "calibration.json"), "w") as f:
        json.dump(calibration.to_dict(), f)
    with open(os.path.join(report, "metrics.json")) as f:
        metrics = json.load(f)
    metrics["conditions"]["all"].update(CAL_METRICS)
    metrics["calibration"] = {"split": "valid", "condition": "all", "quality": list(calibration.quality_names),
                              "p_target": calibration.p_target, "n_target": calibration.n_target,
                              "n_nontarget": calibration.n_nontarget, "file": "calibration.json",
                              "eer": 0.1, "eer_threshold": 0.5}
    with open(os.path.join(report, "metrics.json"), "w") as f:
        json.dump(metrics, f)


def calibrated_copy(experiment, root, calibration=CALIBRATION):
    exp = root / "exp"
    shutil.copytree(experiment[0], exp)
    add_calibration(exp, calibration)
    return exp


@pytest.fixture(scope="module")
def calibrated(experiment, tmp_path_factory):
    """``(export_model's result, model folder, experiment copy)`` of the experiment with a calibration."""
    root = tmp_path_factory.mktemp("calibrated")
    exp = calibrated_copy(experiment, root)
    out = root / "model"
    return export_model(exp, out), str(out), exp


def test_export_carries_the_calibration_and_its_card_documents_it(calibrated):
    result, out, exp = calibrated
    assert result["calibration"] == os.path.join(exp, "report", "calibration.json")
    with open(os.path.join(out, "calibration.json")) as f:
        assert Calibration.from_dict(json.load(f)) == CALIBRATION
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    for needle in ("## Calibration", "120 target and 480 non-target trials of the validation speakers (split "
                   "`valid`, list `all`)", "effective prior 0.5", "| `log_dur_min` | 0.5000 |",
                   "| a (score) | 8.0000 |", "| all | 0.420 | 0.350 | 0.610 | 0.500 | 0.930 |",
                   "actual DCF (p=0.01)", "--prior 0.01", "LLR >= 4.595"):
        assert needle in card, needle
    assert "Uncalibrated" not in card and not result["warnings"]
    summary = json.load(open(os.path.join(out, "export.json")))["calibration"]
    assert summary["file"] == "calibration.json" and summary["verify"] == "applies it"
    assert summary["quality_names"] == list(QUALITY) and summary["n_target"] == 120


def expected_llr(out, wav_a, wav_b, tmp_path):
    """The LLR recomputed from the files: cosine of the alone embeddings, durations, norms before L2."""
    from speechbrain.inference.speaker import SpeakerRecognition

    model = SpeakerRecognition.from_hparams(source=out, savedir=str(tmp_path / "sv"))
    embeddings, seconds = [], []
    for path in (wav_a, wav_b):
        audio, rate = sf.read(path, dtype="float32")
        seconds.append(len(audio) / rate)
        with torch.no_grad():
            embeddings.append(model.encode_batch(torch.from_numpy(audio)[None], normalize=False)[0, 0])
    score = float(torch.nn.functional.cosine_similarity(*embeddings, dim=0))
    norms = [float(e.norm()) for e in embeddings]
    measures = {"log_dur_min": math.log(min(seconds)), "log_dur_max": math.log(max(seconds)),
                "norm_min": min(norms), "norm_max": max(norms)}
    c = CALIBRATION
    return score, c.slope * score + c.offset + sum(k * measures[n] for n, k in zip(c.quality_names, c.quality_coefs))


def run_json(capsys, *argv):
    assert verify_main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_verify_prints_the_llr_and_the_decision_flips_with_the_prior(calibrated, tmp_path, capsys):
    _, out, _ = calibrated
    a, b = write_wav(tmp_path / "a.wav", 1.5, 1), write_wav(tmp_path / "b.wav", 1.0, 2)
    score, llr = expected_llr(out, a, b, tmp_path)

    got = run_json(capsys, a, b, "--model", out)  # the default prior, 0.01
    assert got["score"] == pytest.approx(score, abs=1e-5) and got["llr"] == pytest.approx(llr, abs=1e-4)
    assert got["decided_on"] == "llr" and got["prior"] == 0.01
    assert got["threshold"] == pytest.approx(math.log(99)) and got["accept"] == (llr >= math.log(99))
    assert got["quality"]["log_dur_min"] == pytest.approx(0.0) and got["quality"]["log_dur_max"] == pytest.approx(
        math.log(1.5))

    # The Bayes threshold -log(p / (1 - p)) one nat below, then above, the LLR: accept, then reject.
    prior_accept, prior_reject = 1 / (1 + math.exp(llr - 1)), 1 / (1 + math.exp(llr + 1))
    accepted = run_json(capsys, a, b, "--model", out, "--prior", repr(prior_accept))
    rejected = run_json(capsys, a, b, "--model", out, "--prior", repr(prior_reject))
    assert accepted["accept"] is True and rejected["accept"] is False
    assert accepted["threshold"] == pytest.approx(llr - 1) and rejected["threshold"] == pytest.approx(llr + 1)

    assert verify_main([a, b, "--model", out, "--prior", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^llr: -?\d+\.\d{4} \(natural log, calibration\.json; log_dur_min=0\.000, log_dur_max=0\.405, "
                     r"norm_min=", printed, re.M), printed
    assert "threshold: 0.0000 (Bayes threshold of the LLR at prior 0.5)" in printed
    assert ("decision: accept" in printed) == (llr >= 0)

    by_score = run_json(capsys, a, b, "--model", out, "--threshold", "-1")  # on the cosine, the LLR still shown
    assert by_score["decided_on"] == "score" and by_score["accept"] is True
    assert by_score["llr"] == pytest.approx(llr, abs=1e-4)


def rewrite_calibration(out, tmp_path, **changes):
    """A copy of the export whose calibration.json has ``changes``."""
    copy = tmp_path / f"model-{len(os.listdir(tmp_path))}"
    shutil.copytree(out, copy)
    data = {**CALIBRATION.to_dict(), **changes}
    (copy / "calibration.json").write_text(json.dumps(data))
    return str(copy)


def test_verify_refuses_a_calibration_it_cannot_apply(calibrated, exported, tmp_path, capsys):
    _, out, _ = calibrated
    a, b = write_wav(tmp_path / "a.wav", 1.2, 3), write_wav(tmp_path / "b.wav", 0.9, 4)
    cases = {
        "missing measure": ({"quality_names": ["log_dur_min", "cohort_mean_max"], "quality_coefs": [0.5, 0.3]},
                            "quality measure 'cohort_mean_max', which needs per-utterance 'cohort_mean'"),
        "AS-norm scores": ({"score_kind": "as-norm top-300"},
                           "fitted on 'as-norm top-300' scores, which verify cannot reproduce"),
        "unknown measure": ({"quality_names": ["snr_min"], "quality_coefs": [0.1]}, "quality measure 'snr_min'"),
    }
    for case, (changes, message) in cases.items():
        model = rewrite_calibration(out, tmp_path, **changes)
        assert verify_main([a, b, "--model", model]) == 2, case
        err = capsys.readouterr().err
        assert f"{model}/calibration.json cannot be applied: it was" in err and message in err, (case, err)
        assert "pass --threshold" in err
    # On the cosine score the same model still decides; no LLR then.
    got = run_json(capsys, a, b, "--model", model, "--threshold", "0.3")
    assert got["llr"] is None and got["decided_on"] == "score"

    broken = rewrite_calibration(out, tmp_path)
    (tmp_path / os.path.basename(broken) / "calibration.json").write_text('{"slope": ')
    assert verify_main([a, b, "--model", broken]) == 2
    assert f"{broken}/calibration.json: not a readable calibration.json" in capsys.readouterr().err

    uncalibrated = exported[1]
    assert verify_main([a, b, "--model", uncalibrated, "--prior", "0.01"]) == 2
    assert f"--prior needs a calibrated model, but model {uncalibrated} has no calibration.json" in \
        capsys.readouterr().err
    assert verify_main([a, b, "--model", out, "--prior", "1.5"]) == 2
    assert "--prior must be a probability strictly between 0 and 1, got 1.5" in capsys.readouterr().err


def test_export_of_a_calibration_verify_cannot_apply_warns_and_the_card_says_so(experiment, tmp_path):
    asnorm = Calibration(slope=5.0, offset=-1.0, n_target=10, n_nontarget=30, score_kind="as-norm top-300")
    result = export_model(calibrated_copy(experiment, tmp_path, asnorm), tmp_path / "model")
    assert (tmp_path / "model" / "calibration.json").exists()
    assert any("verify cannot apply it: it was fitted on 'as-norm top-300' scores" in w for w in result["warnings"])
    card = (tmp_path / "model" / "README.md").read_text()
    assert "> `python -m speechbrain_ext.verify` cannot apply this calibration" in card
    assert "--prior" not in card.split("## Usage")[1]


def test_calibration_of_another_checkpoint_is_not_carried(experiment, tmp_path):
    exp = calibrated_copy(experiment, tmp_path)
    worse = os.path.basename(experiment[3])  # the metrics and the calibration are of the best checkpoint
    result = export_model(exp, tmp_path / "model", checkpoint=worse)
    assert result["calibration"] is None and not (tmp_path / "model" / "calibration.json").exists()
    assert any("calibration was fitted on the scores of checkpoint" in w for w in result["warnings"])
    assert "Uncalibrated: the run's calibration was fitted on the scores of checkpoint" in \
        (tmp_path / "model" / "README.md").read_text()


def test_unreadable_calibration_is_named_and_nothing_is_written(experiment, tmp_path):
    exp = calibrated_copy(experiment, tmp_path)
    path = exp / "report" / "calibration.json"
    path.write_text(json.dumps({**CALIBRATION.to_dict(), "slope": "steep"}))
    with pytest.raises(PublishError, match=rf"{re.escape(str(path))}: not a calibration: .*wrong type"):
        export_model(exp, tmp_path / "model")
    with pytest.raises(PublishError, match="calibration file not found: .*nothing.json"):
        export_model(exp, tmp_path / "model", calibration_path=str(tmp_path / "nothing.json"))
    assert not (tmp_path / "model").exists()
