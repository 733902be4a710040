"""``python -m speechbrain_ext.verify``: score two recordings with an exported model; bad inputs named."""

import json
import re

import numpy as np
from publish_helpers import write_wav

from speechbrain_ext.verify import main as verify_main


def test_verify_cli_scores_and_names_bad_inputs(exported, tmp_path, capsys):
    _, out = exported
    a, b = write_wav(tmp_path / "a.wav", 1.5, 1), write_wav(tmp_path / "b.wav", 1.0, 2)
    assert verify_main([a, b, "--model", out]) == 0
    printed = capsys.readouterr().out
    score = float(re.search(r"score: (-?[\d.]+)", printed).group(1))
    assert np.isfinite(score) and "threshold: 0.4321 (verification.json)" in printed
    assert ("decision: accept" in printed) == (score >= 0.4321)
    assert verify_main([a, b, "--model", out, "--threshold", "-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accept"] is True

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert verify_main([a, str(bad), "--model", out]) == 2
    assert f"cannot read wav '{bad}'" in capsys.readouterr().err
    assert verify_main([a, str(tmp_path / "missing.wav"), "--model", out]) == 2
    assert "missing.wav': no such file" in capsys.readouterr().err
    assert verify_main([a, b, "--model", str(tmp_path)]) == 2
    assert f"model folder {tmp_path} has no hyperparams.yaml" in capsys.readouterr().err
