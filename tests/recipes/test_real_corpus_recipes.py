"""The CN-Celeb, VoxCeleb and EmoSpeech recipes end to end on miniature replicas of the corpora.

Each run is the command a user types (``recipes/<Corpus>/train.py <hparams> ...``) with
the paper-scale YAML; only the data (tests/replicas.py, 0.2 s noise files), the
encoder width (``--channels 32``), one epoch and small P x K batches differ.
Augmentation reads a tiny generated MUSAN / RIRS_NOISES tree.
"""

import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import replicas  # noqa: E402

TINY = ["--channels", "32", "--number_of_epochs", "1", "--num_workers", "0", "--noise_workers", "0"]
CNC_SPEAKERS = 11  # 5 + 8 extra CN-Celeb1 dev speakers (id00003 is listed but absent) - 2 valid
VOX_SPEAKERS = 8  # id10003 + 3 + 6 extra VoxCeleb2 speakers - 2 valid (Vox1-E/H take id10001, id10002)


def run_recipe(corpus, hparams, *args, cwd, check=True):
    """Run ``recipes/<corpus>/train.py <hparams> <args>``; returns (completed process, seconds)."""
    command = [
        sys.executable,
        os.path.join(ROOT, "recipes", corpus, "train.py"),
        os.path.join(ROOT, "recipes", corpus, "hparams", hparams),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.time()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=str(cwd), env=env)
    seconds = time.time() - start
    if check and completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-5000:]
        raise AssertionError(f"recipe failed ({completed.returncode}):\n{output}")
    return completed, seconds


def read_metrics(output_root, system, seed=1986):
    with open(os.path.join(output_root, system, f"seed{seed}", "report", "metrics.json")) as f:
        return json.load(f)


def checkpoint_tensors(experiment, name):
    """The state dict ``name`` of the (only) checkpoint of an experiment folder."""
    import glob

    import torch

    (ckpt,) = glob.glob(os.path.join(experiment, "save", "CKPT+*"))
    return torch.load(os.path.join(ckpt, f"{name}.ckpt"), map_location="cpu", weights_only=True)


def check_conditions(metrics, expected):
    conditions = metrics["conditions"]
    assert set(expected) <= set(conditions), sorted(conditions)
    for name in expected:
        cond = conditions[name]
        assert 0.0 <= cond["eer"] <= 1.0 and cond["min_dcf"] >= 0.0, name
        assert cond["n_target"] > 0 and cond["n_nontarget"] > 0, name


@pytest.fixture(scope="module")
def augment_folders(tmp_path_factory):
    """A tiny MUSAN (noise, music, speech) and RIRS_NOISES (simulated_rirs) tree: ``(musan, rirs)``."""
    root = tmp_path_factory.mktemp("augment")
    for subset in ("noise", "music", "speech"):
        replicas.write_audio(root / "musan" / subset / "src" / f"{subset}-0000.wav", seconds=1.0)
    replicas.write_audio(root / "musan" / "music" / "src" / "music-0001.wav", seconds=7.0)  # cut into 2 segments
    replicas.write_audio(root / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001" / "r1.wav", seconds=0.3)
    return str(root / "musan"), str(root / "RIRS_NOISES")


def augment_args(augment_folders):
    musan, rirs = augment_folders
    return ["--musan_folder", musan, "--rir_folder", rirs, "--augment_prob", "1.0"]  # every batch augmented


@pytest.fixture(scope="module")
def cnceleb_replica(tmp_path_factory):
    return replicas.make_cnceleb(tmp_path_factory.mktemp("cnceleb"), extra_speakers=8)["data_folder"]


@pytest.fixture(scope="module")
def cnceleb_paper_a(cnceleb_replica, augment_folders, tmp_path_factory):
    """The paper-A row on the CN-Celeb replica: (completed, seconds, output_root)."""
    out = tmp_path_factory.mktemp("cnc_out")
    completed, seconds = run_recipe(
        "CNCeleb",
        "ecapa_aam_amsupcon_caa_mgda.yaml",
        "--data_folder", cnceleb_replica,
        "--output_root", str(out),
        "--n_speakers", str(CNC_SPEAKERS),
        "--n_valid_speakers", "2",
        "--speakers_per_batch", "4",
        *TINY,
        *augment_args(augment_folders),
        cwd=out,
    )
    return completed, seconds, str(out)


def test_cnceleb_paper_a_row_reports_both_protocols(cnceleb_paper_a):
    completed, seconds, out = cnceleb_paper_a
    metrics = read_metrics(out, "ecapa_aam_amsupcon_caa_mgda")
    # one split per protocol, none scored twice (the union `eval` of paper_scale.yaml is dropped)
    assert list(metrics["splits"]) == ["cnc_eval_avg", "cnc_eval_concat"]
    for split in metrics["splits"]:
        check_conditions(metrics["splits"][split], [split])
    assert metrics["conditions"] == metrics["splits"]["cnc_eval_avg"]["conditions"]
    assert metrics["system"] == "ecapa_aam_amsupcon_caa_mgda"
    exp = os.path.join(out, "ecapa_aam_amsupcon_caa_mgda", "seed1986")
    with open(os.path.join(exp, "train_log.txt")) as f:
        log = f.read()
    for key in ("train aam:", "train contrastive:", "train alpha:", "caa_weight"):
        assert key in log, key
    noise = os.path.join(out, "augment", "noise.csv")
    with open(noise) as f:
        assert len(f.readlines()) == 1 + 5  # noise, speech, two music files (one of them cut into two)
    assert os.path.isfile(os.path.join(out, "augment", "rir.csv"))


def test_an_export_scored_by_model_eval_gives_the_runs_own_scores_on_both_protocols(cnceleb_paper_a,
                                                                                     cnceleb_replica, augment_folders,
                                                                                     tmp_path):
    """The way a held-out check scores a published model, on the CN-Celeb layout (multi-utterance enrolment)."""
    from speechbrain_ext.compare import load_run
    from speechbrain_ext.publish import export_model

    _, _, out = cnceleb_paper_a
    run = os.path.join(out, "ecapa_aam_amsupcon_caa_mgda", "seed1986")
    export_model(run, str(tmp_path / "model"))
    recipe_args = ["--data_folder", cnceleb_replica, "--output_root", out, "--n_speakers", str(CNC_SPEAKERS),
                   "--n_valid_speakers", "2", *TINY, *augment_args(augment_folders)]
    command = [sys.executable, "-m", "speechbrain_ext.model_eval", str(tmp_path / "scored"),
               os.path.join(ROOT, "recipes", "CNCeleb", "hparams", "ecapa_aam_amsupcon_caa_mgda.yaml"),
               "--model", str(tmp_path / "model"), "--draws", "50", *recipe_args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=str(tmp_path),
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    for split in ("cnc_eval_avg", "cnc_eval_concat"):
        mine, theirs = load_run(str(tmp_path / "scored"), split), load_run(run, split)
        assert mine.seed == theirs.seed == 1986 and mine.conditions.keys() == theirs.conditions.keys()
        for condition, (scores, labels, _) in theirs.conditions.items():
            assert (mine.conditions[condition][1] == labels).all()
            assert abs(mine.conditions[condition][0] - scores).max() < 1e-5


def test_voxceleb_baseline_reports_vox1_o_e_h(augment_folders, tmp_path):
    data = replicas.make_voxceleb(tmp_path / "vox", extra_vox2_speakers=6)["data_folder"]
    out = tmp_path / "out"
    _, seconds = run_recipe(
        "VoxCeleb",
        "ecapa_aam.yaml",
        "--data_folder", data,
        "--output_root", str(out),
        "--trial_lists", "[vox1_o, vox1_e, vox1_h]",
        "--n_speakers", str(VOX_SPEAKERS),
        "--n_valid_speakers", "2",
        "--speakers_per_batch", "4",
        *TINY,
        *augment_args(augment_folders),
        cwd=tmp_path,
    )
    check_conditions(read_metrics(str(out), "ecapa_aam"), ["vox1_o", "vox1_e", "vox1_h"])


def test_emospeech_paper_b_row_fine_tunes_the_cnceleb_encoder(cnceleb_paper_a, tmp_path):
    _, _, cnc_out = cnceleb_paper_a
    pretrained = os.path.join(cnc_out, "ecapa_aam_amsupcon_caa_mgda", "seed1986")
    data = replicas.make_esd(tmp_path / "esd")["data_folder"]
    out = tmp_path / "out"
    _, seconds = run_recipe(
        "EmoSpeech",
        "ecapa_aam_copypaste_cos_em.yaml",
        "--corpus", "esd",  # n_speakers comes from the YAML's per-corpus table (14)
        "--data_folder", data,
        "--output_root", str(out),
        "--pretrained_encoder", pretrained,
        "--speakers_per_batch", "4",
        "--wav_augment", "null",  # no MUSAN / RIR folder needed then
        "--seed", "7",  # another random initialisation than the CN-Celeb run's
        *TINY,
        cwd=tmp_path,
    )
    system = "ecapa_aam_copypaste_cos_em"
    # The fine-tuned encoder stays within a few Adam steps (lr 1e-4) of the pre-trained one; a fresh
    # initialisation would be far from it. The classifier (other speakers) has its own shape.
    tuned = checkpoint_tensors(os.path.join(out, system, "seed7"), "embedding_model")
    source = checkpoint_tensors(pretrained, "embedding_model")
    assert tuned.keys() == source.keys()
    trained = [k for k in tuned if "running" not in k and "num_batches" not in k]  # not the BatchNorm statistics
    changes = [float((tuned[k] - source[k]).abs().max()) for k in trained]
    assert max(changes) < 0.01, max(changes)
    assert checkpoint_tensors(os.path.join(out, system, "seed7"), "classifier")["weight"].shape[0] == 14
    metrics = read_metrics(str(out), system, seed=7)
    emotions = ["angry", "happy", "sad", "surprise"]
    check_conditions(metrics, ["all", "same_emotion", "neutral_neutral", "neutral_emotional"])
    assert {f"test_{e}" for e in emotions} <= set(metrics["conditions"])
    with open(os.path.join(out, system, "seed7", "train_log.txt")) as f:
        log = f.read()
    assert "train parallel_cos:" in log and "em_masked_share" in log
    assert not os.path.exists(os.path.join(out, "augment"))


# --------------------------------------------------------------------------- bad input reaches the user


def failing_run(corpus, *args, cwd):
    completed, _ = run_recipe(corpus, "ecapa_aam.yaml", *args, *TINY, cwd=cwd, check=False)
    assert completed.returncode != 0
    return completed.stdout + completed.stderr


def test_missing_corpus_folder_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    output = failing_run("CNCeleb", "--data_folder", str(empty), "--output_root", str(tmp_path / "o"),
                         "--wav_augment", "null", cwd=tmp_path)
    assert f"missing folder {empty}/CN-Celeb_flac/eval/test" in output


def test_missing_corpus_list_is_named(tmp_path):
    data = replicas.make_cnceleb(tmp_path / "cnc")["data_folder"]
    dev_list = os.path.join(data, "CN-Celeb_flac", "dev", "dev.lst")
    os.remove(dev_list)
    output = failing_run("CNCeleb", "--data_folder", data, "--output_root", str(tmp_path / "o"),
                         "--wav_augment", "null", cwd=tmp_path)
    assert f"missing list {dev_list}" in output


def test_missing_musan_folder_is_named(cnceleb_replica, augment_folders, tmp_path):
    _, rirs = augment_folders
    output = failing_run(
        "CNCeleb", "--data_folder", cnceleb_replica, "--output_root", str(tmp_path / "o"),
        "--n_speakers", str(CNC_SPEAKERS), "--n_valid_speakers", "2",
        "--musan_folder", str(tmp_path / "musan"), "--rir_folder", rirs, cwd=tmp_path,
    )
    assert f"musan_folder: folder not found: {tmp_path}/musan" in output
    assert "--wav_augment null" in output


def test_trial_list_naming_unknown_utterances_is_an_error_with_the_ids(tmp_path):
    data = replicas.make_voxceleb(tmp_path / "vox", extra_vox2_speakers=6)["data_folder"]
    with open(os.path.join(data, "veri_test2.txt"), "a") as f:
        f.write("0 id10270/x6uYqmx31kE/00001.wav id10299/NOSUCHVIDEO/00042.wav\n")
    output = failing_run("VoxCeleb", "--data_folder", data, "--output_root", str(tmp_path / "o"),
                         "--wav_augment", "null", cwd=tmp_path)
    assert "veri_test2.txt: 1 utterance(s) not found" in output
    assert "first: id10299/NOSUCHVIDEO/00042" in output
