"""Damaged checkpoints and a full disk: the previous checkpoint always survives and loads.

The end-to-end SIGKILL-while-writing case is in ``test_resume.py``; here, the damaged
folders SpeechBrain's own ``Checkpointer`` leaves behind (it writes ``CKPT.yaml``
first), a disk that fills up during a checkpoint or the embedding cache
(``RLIMIT_FSIZE`` in a child process: writes past the limit fail with ``EFBIG``).
"""

import logging
import os
import pathlib
import resource
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from reliability_helpers import (
    ROOT,
    checkpoints,
    child_env,
    experiment_dir,
    read_markers,
    recipe_command,
    run_recipe,
    train_log_epochs,
)
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.checkpoints import DAMAGED_PREFIX, SafeCheckpointer


def make_objects(seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 64)).sum().backward()
    optimizer.step()
    return {"model": model, "optimizer": optimizer}


def damage_truncated(path):
    with open(path / "model.ckpt", "r+b") as f:
        f.truncate(os.path.getsize(path / "model.ckpt") // 2)


def damage_missing(path):
    os.remove(path / "optimizer.ckpt")


def damage_meta(path):
    with open(path / "CKPT.yaml", "w") as f:
        f.write("# yamllint disable\n")


DAMAGES = {
    "CKPT.yaml + truncated model.ckpt (killed while writing it)": damage_truncated,
    "CKPT.yaml + no optimizer.ckpt (killed before writing it)": damage_missing,
    "CKPT.yaml cut short (killed while writing the meta file)": damage_meta,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_checkpoint_left_by_speechbrain_is_skipped(tmp_path, damage, scenario, caplog):
    row = scenario(
        f"Newest checkpoint damaged as SpeechBrain's Checkpointer leaves it: {damage}",
        "recovery skips it with a warning naming it (renamed damaged-CKPT+...) and loads the previous intact "
        "checkpoint; nothing is deleted",
        group="checkpoint faults",
    )
    good = make_objects(1)
    SafeCheckpointer(tmp_path, good).save_checkpoint(meta={"epoch": 1})
    newer = make_objects(2)
    # written by SpeechBrain's own Checkpointer (no record), then damaged as a SIGKILL would leave it
    broken = Checkpointer(tmp_path, newer).save_checkpoint(meta={"epoch": 2})
    DAMAGES[damage](pathlib.Path(broken.path))

    plain_error = None
    try:
        Checkpointer(tmp_path, make_objects(3)).recover_if_possible()
    except Exception as err:  # what happens without the fix
        plain_error = f"{type(err).__name__}: {str(err).split('.')[0][:80]}"

    target = make_objects(3)
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.checkpoints"):
        loaded = SafeCheckpointer(tmp_path, target).recover_if_possible()
    assert loaded is not None and loaded.meta["epoch"] == 1
    assert torch.equal(target["model"].weight, good["model"].weight)
    assert sorted(p.name for p in tmp_path.glob(DAMAGED_PREFIX + "*")) == [f"damaged-{broken.path.name}"]
    assert broken.path.name in caplog.text and "skipping damaged checkpoint" in caplog.text
    warning = next(r.getMessage() for r in caplog.records if "skipping damaged" in r.getMessage())
    row.observed = (
        f"SpeechBrain's Checkpointer: {plain_error or 'loaded it'}; SafeCheckpointer: warning "
        f"'{warning.split('; moved')[0].replace(str(tmp_path), '<save>')}', "
        "loaded the epoch-1 checkpoint (weights equal)"
    )
    assert plain_error is not None or damage.startswith("CKPT.yaml cut")


def test_leftover_of_an_interrupted_safe_save_is_removed(tmp_path, scenario):
    row = scenario(
        "Leftover .tmp-CKPT+ folder of a killed SafeCheckpointer save",
        "invisible to recovery; removed at the next start",
        group="checkpoint faults",
    )
    objects = make_objects(1)
    SafeCheckpointer(tmp_path, objects).save_checkpoint(meta={"epoch": 1})
    leftover = tmp_path / ".tmp-CKPT+2099-01-01+00-00-00+00"
    leftover.mkdir()
    (leftover / "model.ckpt").write_bytes(b"PK\x03\x04half")
    ckpt = SafeCheckpointer(tmp_path, make_objects(2))
    assert not leftover.exists()
    assert [c.meta["epoch"] for c in ckpt.list_checkpoints()] == [1]
    row.observed = "removed by SafeCheckpointer.__init__ (warning logged); only the epoch-1 checkpoint is listed"


SAVE_UNDER_LIMIT = textwrap.dedent("""
    import os, resource, signal, sys
    import torch
    from speechbrain_ext.checkpoints import CheckpointError, SafeCheckpointer
    folder = sys.argv[1]
    torch.manual_seed(0)
    model = torch.nn.Linear(256, 256)  # 257 kB of float32
    ckpt = SafeCheckpointer(folder, {"model": model})
    ckpt.save_and_keep_only(meta={"epoch": 1})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    with torch.no_grad():
        model.weight += 1
    try:
        ckpt.save_and_keep_only(meta={"epoch": 2})
    except CheckpointError as err:
        print("ERROR", err)
        sys.exit(3)
""")


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, scenario):
    row = scenario(
        "Disk full (RLIMIT_FSIZE 100 kB) while writing a checkpoint (SafeCheckpointer.save_and_keep_only)",
        "CheckpointError naming the file, the folder and the cause; partial folder removed; the previous "
        "checkpoint kept and loadable",
        group="checkpoint faults",
    )
    done = subprocess.run([sys.executable, "-c", SAVE_UNDER_LIMIT, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, env=child_env(), timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    message = done.stdout.split("ERROR", 1)[1].strip()
    assert "model.ckpt" in message and str(tmp_path) in message and "disk full or file size limit" in message
    assert "no older checkpoint was deleted" in message
    names = os.listdir(tmp_path)
    assert len([n for n in names if n.startswith("CKPT+")]) == 1 and not [n for n in names if n.startswith(".")]
    model = torch.nn.Linear(256, 256)
    loaded = SafeCheckpointer(tmp_path, {"model": model}).recover_if_possible()
    assert loaded.meta["epoch"] == 1
    row.observed = message.replace(str(tmp_path), "<save>")


CACHE_UNDER_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    import torch
    from speechbrain_ext.extraction import write_cache
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    ok = write_cache(path, [f"u{i}" for i in range(1000)], torch.randn(1000, 192))
    print("OK" if ok else "FAILED")
""")


def test_disk_full_while_writing_the_embedding_cache(tmp_path, scenario):
    row = scenario(
        "Disk full (RLIMIT_FSIZE 50 kB) while writing the embeddings cache",
        "warning naming the cache; the temporary file is removed; the older cache is untouched, a partial one "
        "never exists",
        group="checkpoint faults",
    )
    from speechbrain_ext.extraction import write_cache

    path = tmp_path / "embeddings" / "eval-x.pt"
    assert write_cache(str(path), ["old"], torch.ones(1, 192))
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", CACHE_UNDER_LIMIT, str(path)], capture_output=True, text=True,
                          cwd=ROOT, env=child_env(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "FAILED", done.stdout + done.stderr
    assert "could not write the embedding cache" in done.stderr and str(path) in done.stderr
    assert sorted(os.listdir(path.parent)) == ["eval-x.pt"] and path.read_bytes() == before
    assert torch.load(path, weights_only=True)["ids"] == ["old"]
    line = next(x for x in done.stderr.splitlines() if "could not write the embedding cache" in x)
    row.observed = line.split(" - ")[-1].replace(str(tmp_path), "<tmp>")[:240]


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


@pytest.mark.slow
def test_disk_full_during_training_then_resume(corpus, tmp_path, scenario):
    row = scenario(
        "Disk full (RLIMIT_FSIZE 700 kB < optimizer.ckpt) at the end-of-epoch-2 checkpoint of a real run",
        "the run stops with 'error: could not write optimizer.ckpt ...'; the epoch-1 checkpoint is kept; the same "
        "command with space again resumes at epoch 2",
        group="checkpoint faults",
    )
    out, markers = str(tmp_path / "out"), str(tmp_path / "markers.txt")
    run_recipe(corpus, out, "--number_of_epochs", 1, markers=markers)
    before = checkpoints(out)
    failed = subprocess.run(
        recipe_command(corpus, out, "--number_of_epochs", 2), capture_output=True, text=True, timeout=300,
        env=child_env(markers), cwd=ROOT, preexec_fn=_limit_file_size(700_000),
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output[-3000:]
    error = next(line for line in output.splitlines() if line.startswith("error: "))
    assert "could not write optimizer.ckpt of checkpoint" in error and "no older checkpoint was deleted" in error
    save = os.path.join(experiment_dir(out), "save")
    assert checkpoints(out) == before and not [n for n in os.listdir(save) if n.startswith(".tmp")]
    assert "Traceback" not in failed.stderr
    n = len(read_markers(markers))
    run_recipe(corpus, out, "--number_of_epochs", 2, markers=markers)
    resumed = [m for m in read_markers(markers)[n:] if m[0] == "train"]
    assert resumed[0][1:3] == ["2", "1"]
    assert len(train_log_epochs(out)) == 3  # epoch 1, the failed epoch 2 (logged before saving), epoch 2
    row.observed = (
        error.replace(str(tmp_path), "<tmp>")[:300] + " ... | the epoch-1 checkpoint is kept (the only one, "
        "intact); the same command without the limit resumed at epoch 2 step 1 and finished"
    )
