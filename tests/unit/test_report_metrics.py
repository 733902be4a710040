"""``report.read_metrics``: the one reader of metrics.json; every bad file is named."""

import json
import re

import pytest

from speechbrain_ext import emotion_report
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.report import MetricsError, read_metrics, split_conditions, write_report
from speechbrain_ext.scoring import evaluate_conditions


def test_reads_what_write_report_writes_by_file_or_folder(tmp_path):
    data = {"all": ([0.9, 0.8, 0.1, 0.85], [1, 1, 0, 0])}
    ood = {"all": ([0.9, 0.2, 0.1, 0.85], [1, 1, 0, 0])}
    metrics, ood_metrics = evaluate_conditions(data), evaluate_conditions(ood)
    paths = write_report(tmp_path, {"eval": metrics, "ood": ood_metrics}, {"eval": data, "ood": ood}, "demo",
                         extra={"checkpoint": "CKPT+1", "valid_EER": 3.5})
    for source in (paths["metrics"], tmp_path, str(tmp_path)):
        got = read_metrics(source)
        assert got["conditions"] == json.loads(json.dumps(metrics)) and got["checkpoint"] == "CKPT+1"
        assert split_conditions(got) == got["conditions"] == split_conditions(got, "eval")
        assert split_conditions(got, "ood") == json.loads(json.dumps(ood_metrics))
    assert emotion_report.load_metrics(paths["metrics"]) == read_metrics(tmp_path)
    with pytest.raises(MetricsError, match="no split 'valid' in these metrics \\(splits: eval, ood\\)"):
        split_conditions(read_metrics(tmp_path), "valid")


@pytest.mark.parametrize("text, message", [
    (None, "no such file"),
    ('{"conditions": {"all": ', "not a readable metrics.json"),
    ("[1, 2]", "no 'conditions'"),
    ('{"valid_EER": 3.0}', "no 'conditions'"),
    ('{"conditions": {}}', "no 'conditions'"),
    ('{"conditions": [1]}', "no 'conditions'"),
    ('{"conditions": {"all": {}}, "splits": {"ood": {"aliases": {}}}}', "split 'ood' has no 'conditions' mapping"),
    ('{"conditions": {"all": {}}, "splits": [1]}', "split '<splits>' has no 'conditions' mapping"),
])
def test_bad_metrics_file_is_named(tmp_path, text, message):
    path = tmp_path / "metrics.json"
    if text is not None:
        path.write_text(text)
    for source in (path, tmp_path):
        with pytest.raises(MetricsError, match=f"{re.escape(str(path))}: {message}") as err:
            read_metrics(source)
        assert isinstance(err.value, SpeechBrainExtError)
    with pytest.raises(MetricsError, match=re.escape(str(path))):
        emotion_report.load_metrics(str(path))
