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


class RemoteEntryNotFoundError(Exception):
    """Named as huggingface_hub's error for a file the repo does not have."""


def test_hub_repo_without_a_calibration_is_uncalibrated_but_a_failed_download_is_an_error(tmp_path, capsys,
                                                                                           monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError
    from speechbrain.utils import fetching

    a, b = write_wav(tmp_path / "a.wav", 1.0, 1), write_wav(tmp_path / "b.wav", 1.0, 2)

    def absent(filename, **kwargs):
        raise RemoteEntryNotFoundError(f"404: {filename}")

    monkeypatch.setattr(fetching, "fetch", absent)
    assert verify_main([a, b, "--model", "me/sv-model", "--prior", "0.5"]) == 2
    assert "--prior needs a calibrated model, but model me/sv-model has no calibration.json" in capsys.readouterr().err

    def offline(filename, **kwargs):
        raise LocalEntryNotFoundError("not in the cache and HF_HUB_OFFLINE is set")

    monkeypatch.setattr(fetching, "fetch", offline)
    assert verify_main([a, b, "--model", "me/sv-model"]) == 2
    assert "cannot fetch calibration.json of me/sv-model from the Hugging Face Hub" in capsys.readouterr().err
