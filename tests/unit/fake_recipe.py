"""A stand-in recipe for the suite runner's tests: ``python fake_recipe.py <hparams.yaml> [--key value ...]``.

It writes, in a fraction of a second, what a recipe run leaves: ``train_log.jsonl``,
``report/metrics.json`` and ``report/scores/<split>.npz`` for the splits ``eval`` and
``ood``, with scores whose separation is the hparams' ``quality`` (known answers).
``crash_once: 1`` makes the first attempt fail after its first epoch (a marker in
``save/``); the next attempt notes that it resumed. ``sleep`` holds it for a while.
``init_from`` (a stage continuing a run): that run must have finished (exit 4 otherwise),
and its folder is noted in ``metrics.json``. Each attempt's checkpoint name is new, except
when the run had finished: it is then evaluated again (its ``score_norm`` noted in ``metrics.json``).
"""

import json
import os
import sys
import time

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from speechbrain_ext.trial_scores import save_trial_scores, scores_path  # noqa: E402

N_SPEAKERS, TRIALS_PER_SPEAKER = 20, 10


class _Loader(yaml.SafeLoader):
    """Reads a HyperPyYAML file's plain keys; tagged values (``!name:`` ...) become None."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def arguments(argv):
    with open(argv[0]) as f:
        hp = yaml.load(f, Loader=_Loader)
    rest = argv[1:]
    for key, value in zip(rest[::2], rest[1::2]):
        hp[key[2:]] = yaml.safe_load(value)
    return hp


def trials(quality, seed, split):
    """Scores of every condition: targets shifted by ``quality``, noise drawn from (seed, split)."""
    rng = np.random.default_rng([seed, sum(map(ord, split))])
    labels = np.tile([1] + [0] * (TRIALS_PER_SPEAKER - 1), N_SPEAKERS).astype(np.int8)
    speakers = np.repeat(np.arange(N_SPEAKERS), TRIALS_PER_SPEAKER).astype(np.int32)
    out = {}
    for condition, shift in (("all", 0.0), ("neutral_emotional", -0.5), ("neutral_neutral", 0.3), ("test_sad", -0.8)):
        out[condition] = (rng.normal(size=labels.size) + (quality + shift) * labels, labels, speakers)
    out["test_neutral"] = out["neutral_neutral"]  # SynthEmo's duplicated condition
    return out


def main(argv):
    hp = arguments(argv)
    out, seed = hp["output_folder"], int(hp["seed"])
    os.makedirs(os.path.join(out, "save"), exist_ok=True)
    source = hp.get("init_from")
    if source and not os.path.isfile(os.path.join(source, "report", "metrics.json")):
        print(f"init_from {source}: not a finished run", file=sys.stderr)
        return 4
    time.sleep(float(hp.get("sleep", 0)))
    marker = os.path.join(out, "save", "crashed")
    seconds = float(hp.get("train_seconds", 2.0))
    epochs = [{"epoch": e, "lr": 0.001, "train": {"loss": 1.0 / e, "seconds": seconds, "step_seconds": 1.5,
                                                   "loader_wait_seconds": 0.5, "alpha": 0.25 * e},
               "valid": {"valid": {"EER": v, "minDCF": 0.5}, "ood_valid": {"EER": v + 10, "minDCF": 0.7}},
               "valid_seconds": 0.5, "selection": {"rule": "valid", "EER": v, "minDCF": 0.5}}
              for e, v in enumerate(hp["valid_eers"], 1)]
    log = os.path.join(out, "train_log.jsonl")
    if hp.get("crash_once") and not os.path.isfile(marker):
        with open(log, "w") as f:
            f.write(json.dumps(epochs[0]) + "\n")
        open(marker, "w").close()
        print("crashed after epoch 1", file=sys.stderr)
        return 3
    if os.path.isfile(marker):
        open(os.path.join(out, "resumed"), "w").close()
    with open(log, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in epochs)
    speakers = tuple(f"S{i:02d}" for i in range(N_SPEAKERS))
    report = os.path.join(out, "report")
    splits = {}
    for split in ("eval", "ood"):
        data = trials(hp["quality"] - (0.5 if split == "ood" else 0.0), seed, split)
        save_trial_scores(scores_path(report, split), {c: (s, lab) for c, (s, lab, _) in data.items()},
                          {c: [speakers[i] for i in spk] for c, (_, _, spk) in data.items()},
                          {"seed": seed, "split": split, "system": hp["system"]})
        splits[split] = {"conditions": {c: {"eer": 0.1, "min_dcf": 0.5} for c in data}}
    # a finished run run again is evaluated again, from the checkpoint it had selected (as the recipe does)
    previous = os.path.join(report, "metrics.json")
    checkpoint = json.load(open(previous))["checkpoint"] if os.path.isfile(previous) else f"save/CKPT+{time.time_ns()}"
    metrics = {"splits": splits, "conditions": splits["eval"]["conditions"], "epoch": hp["evaluated_epoch"],
               "valid_EER": hp["valid_eers"][hp["evaluated_epoch"] - 1], "seed": seed, "system": hp["system"],
               "checkpoint": checkpoint, "init_from": source, "score_norm": hp.get("score_norm")}
    with open(os.path.join(report, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
