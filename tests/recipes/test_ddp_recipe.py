"""A 2-process ``torchrun`` run of the CN-Celeb paper-A recipe on CPU (gloo), on a miniature replica.

SpeechBrain 1.1.2 detects the launch from ``RANK``/``LOCAL_RANK`` (set by torchrun),
opens the process group in ``ddp_init_group`` with ``--distributed_backend gloo`` and
wraps the trainable modules in DistributedDataParallel. The run uses the speaker-
disjoint P x K sampler per rank, the contrastive negatives of both ranks
(``--contrastive_gather True``), MGDA with all-reduced dot products and the
augmentation; preparation, checkpoints, the train log and the evaluation are the
main process's alone.
"""

import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import replicas  # noqa: E402

SYSTEM = "ecapa_aam_amsupcon_caa_mgda"


def test_two_process_run_completes_and_only_rank_0_writes(tmp_path):
    data = replicas.make_cnceleb(tmp_path / "cnc", extra_speakers=8)["data_folder"]
    for subset in ("noise", "music", "speech"):
        replicas.write_audio(tmp_path / "musan" / subset / "src" / f"{subset}.wav", seconds=1.0)
    replicas.write_audio(tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "r1.wav", seconds=0.3)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        os.path.join(ROOT, "recipes", "CNCeleb", "train.py"),
        os.path.join(ROOT, "recipes", "CNCeleb", "hparams", f"{SYSTEM}.yaml"),
        "--distributed_backend", "gloo",
        "--contrastive_gather", "True",
        "--data_folder", data,
        "--output_root", str(out),
        "--musan_folder", str(tmp_path / "musan"),
        "--rir_folder", str(tmp_path / "RIRS_NOISES"),
        "--augment_prob", "1.0",
        "--n_speakers", "11",  # 13 CN-Celeb1/2 training speakers of the replica - 2 valid
        "--n_valid_speakers", "2",
        "--speakers_per_batch", "4",  # per rank: 8 distinct speakers per global batch
        "--channels", "32",
        "--number_of_epochs", "1",
        "--num_workers", "0",
        "--noise_workers", "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-5000:]

    exp = out / SYSTEM / "seed1986"
    checkpoints = glob.glob(str(exp / "save" / "CKPT+*"))
    assert len(checkpoints) == 1, checkpoints  # one end-of-epoch checkpoint, written by rank 0
    names = sorted(os.listdir(checkpoints[0]))
    for name in ("embedding_model.ckpt", "classifier.ckpt", "train_sampler.ckpt", "counter.ckpt", "CKPT.yaml"):
        assert name in names, names
    assert not [n for n in names if n.startswith(".") or "tmp" in n.lower()], names
    with open(os.path.join(checkpoints[0], "train_sampler.ckpt")) as f:
        assert json.load(f)["speakers_per_batch"] == 4
    with open(exp / "train_log.txt") as f:
        epochs = [line for line in f if line.startswith("epoch")]
    assert len(epochs) == 1 and "train alpha:" in epochs[0] and "train contrastive:" in epochs[0]
    with open(exp / "report" / "metrics.json") as f:
        metrics = json.load(f)
    assert list(metrics["splits"]) == ["cnc_eval_avg", "cnc_eval_concat"]  # one split per protocol
    assert output.count("report.md") == 1  # evaluation ran on the main process only
