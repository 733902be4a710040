"""Large-margin fine-tuning end to end on the tiny SynthEmo corpus: 1 epoch of a system, then 1 epoch of its LM stage.

The tiny corpus has 20 training steps per epoch, so the SynthEmo stage's ramp
(``lm_ramp_epochs: 0.5``) lasts 10 steps: the AAM margin is 0.1 + 0.04 t at step t,
0.5 from step 10 on.
"""

import glob
import hashlib
import os

import pytest
import torch

STEPS = 20
RAMP = [0.1 + 0.4 * min(t, 10) / 10 for t in range(1, STEPS + 1)]


def experiment(out, system):
    return os.path.join(out, system, "seed1986")


def epoch_stats(out, system):
    """The key: value pairs of the train_log lines."""
    with open(os.path.join(experiment(out, system), "train_log.txt")) as f:
        lines = [line for line in f if line.startswith("epoch")]
    stats = []
    for line in lines:
        pairs = [p.strip() for chunk in line.split(" - ") for p in chunk.split(", ")]
        stats.append(dict(p.rsplit(": ", 1) for p in pairs))
    return stats


def snapshot(folder):
    """``{relative path: sha256}`` of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def classifier_drift(source, stage):
    """Relative distance between the classifier weights of the source's and the stage's checkpoints."""
    a, b = (torch.load(glob.glob(os.path.join(exp, "save", "CKPT+*", "classifier.ckpt"))[0],
                       weights_only=True)["weight"] for exp in (source, stage))
    return float((a - b).norm() / a.norm())


def check_stage(out, source_system, stage_system, before):
    source, stage = experiment(out, source_system), experiment(out, stage_system)
    assert snapshot(source) == before  # the source run is only read
    (stats,) = epoch_stats(out, stage_system)
    assert float(stats["train aam_margin_min"]) == pytest.approx(RAMP[0], abs=1e-3)
    assert float(stats["train aam_margin_max"]) == pytest.approx(0.5, abs=1e-3)
    assert float(stats["train aam_margin"]) == pytest.approx(sum(RAMP) / STEPS, abs=1e-3)
    assert float(stats["lr"]) == pytest.approx(4e-4)
    assert os.path.isfile(os.path.join(stage, "report", "metrics.json"))
    # it continued the source's classifier (a fresh one would be ~100 % away)
    assert classifier_drift(source, stage) < 0.2
    return stats


def test_aam_and_copypaste_stages_continue_the_baseline(run_synthemo_recipe):
    _, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "1")
    source = experiment(out, "ecapa_aam")
    before = snapshot(source)
    run_synthemo_recipe("ecapa_aam_lm.yaml", "--init_from", source, output_root=out)
    check_stage(out, "ecapa_aam", "ecapa_aam_lm", before)
    # the CopyPaste row's stage (same encoder and speakers, so the baseline is a valid source too):
    # AAM(e) and AAM(e') share the ramped margin
    run_synthemo_recipe("ecapa_aam_copypaste_cos_em_lm.yaml", "--init_from", source, output_root=out)
    stats = check_stage(out, "ecapa_aam", "ecapa_aam_copypaste_cos_em_lm", before)
    assert "train aam_parallel" in stats and "train parallel_cos" in stats


def test_paper_a_stage_ramps_the_aam_margin_and_holds_the_contrastive_one(run_synthemo_recipe):
    system = "ecapa_aam_amsupcon_caa_mgda"
    _, out = run_synthemo_recipe(f"{system}.yaml", "--number_of_epochs", "1")
    before = snapshot(experiment(out, system))
    run_synthemo_recipe(f"{system}_lm.yaml", "--init_from", experiment(out, system), output_root=out)
    stats = check_stage(out, system, f"{system}_lm", before)
    assert float(stats["train contrastive_margin_min"]) == float(stats["train contrastive_margin_max"]) == 0.2
    assert "train alpha" in stats  # MGDA still balances the two losses


def test_bad_sources_stop_before_training(run_synthemo_recipe, tmp_path):
    _, out = run_synthemo_recipe("ecapa_aam.yaml", "--number_of_epochs", "1", "--emb_dim", "128")
    source = experiment(out, "ecapa_aam")
    os.makedirs(tmp_path / "empty")
    cases = {  # the stage builds 192-d embeddings unless told otherwise
        "arch": (["--init_from", source], ["embedding_model.ckpt does not fit the embedding_model",
                                           "fc.conv.weight: (128, 192, 1) in the file vs (192, 192, 1) here"]),
        "missing": (["--init_from", str(tmp_path / "nowhere")], ["init_from: folder not found"]),
        "empty": (["--init_from", str(tmp_path / "empty")], ["init_from: the source folder", "is empty"]),
        "no_source": ([], ["'init_from' is a !PLACEHOLDER"]),
        "into_source": (["--init_from", source, "--output_folder", source, "--emb_dim", "128"], ["overlap"]),
    }
    before = snapshot(source)
    for name, (args, expected) in cases.items():
        completed, _ = run_synthemo_recipe("ecapa_aam_lm.yaml", "--system", f"lm_{name}", *args, output_root=out,
                                           check=False)
        output = completed.stdout + completed.stderr
        assert completed.returncode == 1, (name, output[-2000:])
        assert all(text in output for text in expected), (name, output[-2000:])
        # stopped while the hparams were read: no file written (the Checkpointer may have made its empty folder)
        assert not [f for _, _, files in os.walk(experiment(out, f"lm_{name}")) for f in files], name
    assert snapshot(source) == before
