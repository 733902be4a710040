"""The model card of an export: Hub front matter, results, threshold, usage, configuration, citations."""

import json
import os

import pytest
import yaml

from speechbrain_ext.publish import read_threshold


def test_card_front_matter_threshold_and_citations(exported):
    _, out = exported
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "speechbrain" and front["license"] == "apache-2.0"
    assert {"speaker-verification", "speechbrain", "ECAPA-TDNN"} <= set(front["tags"])
    assert front["datasets"] == ["SynthEmo"]
    results = {(r["dataset"]["config"], m["type"]): m["value"]
               for r in front["model-index"][0]["results"] for m in r["metrics"]}
    assert results[("all", "eer")] == pytest.approx(12.5) and results[("neutral_emotional", "min_dcf")] == 0.75
    for needle in ("0.4321", "evaluation condition 'all'", "2210.16622", "2505.18498", "SpeechBrain", "verify_files",
                   "SpeakerRecognition.from_hparams", "AAM-softmax (margin 0.1, scale 30)", "ONNX max |diff|",
                   "ECAPA-TDNN (`speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN`): input_size=80, "
                   "channels=[16, 16, 16, 16, 48]", "| embedding | 192 dimensions", "## Calibration\n\nUncalibrated",
                   "Each utterance of a padded batch gets the embedding it gets alone"):
        assert needle in card, needle
    assert "## Requirements" not in card  # every model block is SpeechBrain's
    assert "--prior" not in card  # uncalibrated: verify decides at the threshold
    assert json.load(open(os.path.join(out, "verification.json")))["threshold"] == pytest.approx(0.4321)
    assert read_threshold(out) == pytest.approx(0.4321)
