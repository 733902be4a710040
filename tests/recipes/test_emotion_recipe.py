"""The paper's emotion-invariant system (CopyPaste + cosine loss + EM) end to end on a tiny SynthEmo."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEM = "ecapa_aam_copypaste_cos_em"


def test_paper_row_trains_one_epoch_and_reports_emotion_conditions(run_synthemo_recipe, tmp_path):
    # "=" in a path survives the command line (SpeechBrain's own parser would turn it into a space)
    completed, out = run_synthemo_recipe(
        f"{SYSTEM}.yaml", "--number_of_epochs", "1", "--crop_seconds", "1.0", output_root=tmp_path / "em_ratio=0.2"
    )
    assert out.endswith("em_ratio=0.2")
    exp = os.path.join(out, SYSTEM, "seed1986")
    with open(os.path.join(exp, "report", "metrics.json")) as f:
        metrics = json.load(f)
    conditions = metrics["conditions"]
    emotions = {"happy", "sad", "angry", "fear"}
    assert {"all", "same_emotion", "neutral_neutral", "neutral_emotional"} <= set(conditions)
    assert {f"test_{e}" for e in emotions} <= set(conditions)
    for cond in conditions.values():
        assert 0.0 <= cond["eer"] <= 1.0 and cond["n_target"] > 0
    assert metrics["system"] == SYSTEM
    with open(os.path.join(exp, "train_log.txt")) as f:
        log = f.read()
    # Every term of L = AAM(e) + AAM(e') + lambda * L_cos, the partner tally and the masked share are logged.
    keys = ("train aam:", "train aam_parallel:", "train parallel_cos:", "em_masked_share", "partners_other_emotion")
    for key in keys:
        assert key in log, key
    embeddings = os.listdir(os.path.join(exp, "embeddings"))
    assert any(name.startswith("eval-") and name.endswith(".pt") for name in embeddings)

    # The valid-split probe of the emotion ablation: unmasked, it reproduces the selected checkpoint's
    # validation EER; every selection hides the same number of frames; the result is cached.
    spec = importlib.util.spec_from_file_location(
        "em_probe", os.path.join(ROOT, "recipes", "SynthEmo", "ablation", "em_probe.py"))
    em_probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(em_probe)
    probe = em_probe.probe_run(exp, ratios=(0.2,))
    assert round(100 * probe["results"]["none"]["all"]["eer"], 4) == metrics["valid_EER"]
    assert set(probe["results"]) == {"none", "highest@0.2", "random@0.2", "lowest@0.2"}
    # the masks reach the (padding-invariant) inference embeddings: every masking moves the scores
    unmasked = probe["results"]["none"]["all"]["eer_threshold"]
    for name in ("highest@0.2", "random@0.2", "lowest@0.2"):
        assert probe["results"][name]["all"]["eer_threshold"] != unmasked, name
    assert em_probe.probe_run(exp, ratios=(0.2,))["seconds"] == probe["seconds"]
