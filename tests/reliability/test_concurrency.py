"""Two data preparations started at the same instant on the same save folder (data_prep.common.prep_lock)."""

import filecmp
import os
import subprocess
import sys
import textwrap
import time

import pytest
from reliability_helpers import ROOT, TINY, child_env

from speechbrain_ext.data import check_manifest

CHILD = textwrap.dedent("""
    import logging, os, sys, time
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    from data_prep.synthetic import prepare_synthemo
    data, save, go, sizes = sys.argv[1], sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4:]]
    open(go + "." + str(os.getpid()), "w").close()      # ready
    while not os.path.exists(go):                       # start together
        time.sleep(0.005)
    prepare_synthemo(data, save, seed=1234, n_train=sizes[0], n_valid=sizes[1], n_eval=sizes[2],
                     n_sentences=sizes[3], progress=False)
    print("DONE")
""")


def race(tmp_path, data_folder, save_folder):
    go = str(tmp_path / "go")
    sizes = [str(TINY[k]) for k in ("n_train_speakers", "n_valid_speakers", "n_eval_speakers", "n_sentences")]
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, data_folder, save_folder, go, *sizes], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env())
        for _ in range(2)
    ]
    deadline = time.time() + 120
    while len([n for n in os.listdir(tmp_path) if n.startswith("go.")]) < 2:
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    open(go, "w").close()
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    return outputs


def same_tree(a, b):
    """Relative paths whose content differs between folders ``a`` and ``b`` (``.prepare.lock`` aside)."""
    files = set()
    for root in (a, b):
        for dirpath, _, names in os.walk(root):
            files |= {os.path.relpath(os.path.join(dirpath, n), root) for n in names if n != ".prepare.lock"}
    return sorted(f for f in files if not (os.path.isfile(os.path.join(a, f)) and os.path.isfile(os.path.join(b, f))
                                          and filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)))


def _check(tiny_synthemo, save, outputs, data_folder):
    reference = tiny_synthemo[1]
    leftovers = [n for _, _, names in os.walk(save) for n in names if n.startswith(".tmp")]
    assert not leftovers
    for split in ("train", "valid", "eval"):
        check_manifest(os.path.join(save, f"{split}.csv"))
    skipped = sum("already prepared" in o for o in outputs)
    assert skipped == 1, outputs
    if data_folder == tiny_synthemo[0]:
        assert same_tree(save, reference) == []
    else:  # noise.csv / rir.csv hold absolute paths of the data folder
        assert same_tree(save, reference) == ["noise.csv", "prepare.json", "rir.csv"]
    return skipped


def test_two_preparations_of_the_same_manifests_at_once(tiny_synthemo, tmp_path, scenario):
    row = scenario(
        "Two data preparations started at once on the same save folder (corpus present)",
        "both succeed; one writes, the other waits for the lock and finds them complete; manifests valid and "
        "byte-identical to a single preparation; no temporary file left",
    )
    save = str(tmp_path / "manifests")
    outputs = race(tmp_path, tiny_synthemo[0], save)
    _check(tiny_synthemo, save, outputs, tiny_synthemo[0])
    n_files = sum(len(names) for _, _, names in os.walk(save))
    row.observed = f"both exited 0; 1 wrote, 1 logged 'already prepared'; {n_files} files identical to the reference"


@pytest.mark.slow
def test_two_generations_of_a_new_corpus_at_once(tiny_synthemo, tmp_path, scenario):
    row = scenario(
        "Two preparations at once on a new corpus folder (generation + manifests race)",
        "both succeed; the corpus is generated once; manifests valid and identical to a single preparation",
    )
    data, save = str(tmp_path / "data"), str(tmp_path / "manifests")
    outputs = race(tmp_path, data, save)
    _check(tiny_synthemo, save, outputs, data)
    assert same_tree(os.path.join(data, "S0001"), os.path.join(tiny_synthemo[0], "S0001")) == []
    row.observed = "both exited 0; 1 generated + wrote, 1 waited and logged 'already prepared'; train/valid/eval " \
        "manifests and trials byte-identical to the reference, wavs identical"
