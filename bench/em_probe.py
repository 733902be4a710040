"""Where is the speaker information? Test-time masking of trained runs, validation speakers only.

Emotion-aware masking (methods.md B.3) hides the ``rho`` share of highest-energy frames in
training. Whether that helps depends on what those frames carry in the corpus at hand: if they
hold much of the SPEAKER information, training on masked inputs takes it away from the
classifier. This probe measures it on a trained run without retraining: it embeds the
validation utterances with a share ``rho`` of the frames hidden at test time, by the same
:class:`~speechbrain_ext.augment.EnergyEmotionMask` (same fill, after mean-variance
normalisation, as the recipes' EM by default), choosing

* ``highest``: the highest-energy frames (what EM hides in training),
* ``random``: as many frames drawn at random (seeded),
* ``lowest``: as many lowest-energy frames,

and scores the validation trials (``all`` and ``neutral_emotional``). Hiding the
highest-energy frames costing more EER than hiding random ones means those frames carry more
than their share of the speaker information. A run trained with EM should lose less under
``highest`` masking than the baseline (it learnt without them).

Only the validation split is read (its manifest and trial lists): nothing here looks at the
evaluation trials. Results are cached per run in ``<run>/report/em_probe.json`` (keyed by the
checkpoint and the probe settings) and read by ``bench/ablation.py --suite emotion``.

Usage::

    .venv/bin/python bench/em_probe.py results/ablation/emotion_runs/ecapa_aam/seed1986 [more runs] \\
        [--ratios 0.1 0.2 0.4] [--threads 1]
"""

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from speechbrain_ext import verification  # noqa: E402
from speechbrain_ext.augment import SELECTIONS, EnergyEmotionMask  # noqa: E402
from speechbrain_ext.hparams import load_hparams  # noqa: E402

RATIOS = (0.1, 0.2, 0.4)
CONDITIONS = ("all", "neutral_emotional")
CACHE = os.path.join("report", "em_probe.json")
FORMAT = 1


class TestTimeMask:
    """Mixin for a Brain class: apply :attr:`probe_mask` to the features of every non-training stage.

    Example
    -------
    >>> class Base:
    ...     def compute_features(self, wavs, lens, stage):
    ...         return torch.ones(1, 8, 1)
    >>> class Probe(TestTimeMask, Base):
    ...     pass
    >>> p = Probe()
    >>> p.compute_features(None, None, None).sum().item()
    8.0
    """

    probe_mask = None

    def compute_features(self, wavs, lens, stage):
        """The Brain's features, then the probe's mask (none when :attr:`probe_mask` is ``None``)."""
        feats = super().compute_features(wavs, lens, stage)
        if self.probe_mask is None:
            return feats
        return self.probe_mask(feats, wavs, lens)[0]


def load_run(run_folder, device="cpu"):
    """The run's Brain (its own ``hyperparams.yaml``) with the selected checkpoint (lowest valid EER) loaded.

    Returns
    -------
    brain : SpeakerBrain subclass with :class:`TestTimeMask`
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
    """
    path = os.path.join(run_folder, "hyperparams.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_folder}: no hyperparams.yaml (not a finished recipe run)")
    hparams, _ = load_hparams(path)
    brain_class = type(f"Probe{hparams['brain_class'].__name__}", (TestTimeMask, hparams["brain_class"]), {})
    brain = brain_class(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts={"device": device}, checkpointer=hparams["checkpointer"],
    )
    checkpoint = brain.checkpointer.recover_if_possible(min_key="EER")
    if checkpoint is None:
        raise FileNotFoundError(f"{run_folder}: no checkpoint in {brain.checkpointer.checkpoints_dir}")
    return brain, checkpoint


def probe_run(run_folder, ratios=RATIOS, seed=0, refresh=False):
    """Validation EER / minDCF of one run under test-time masking; cached in ``<run>/report/em_probe.json``.

    Returns
    -------
    dict
        ``{"checkpoint", "valid_EER_selected", "results": {"none": {condition: {"eer", "min_dcf"}},
        "<select>@<rho>": {...}}, "seconds"}``.
    """
    cache = os.path.join(run_folder, CACHE)
    settings = {"format": FORMAT, "ratios": [float(r) for r in ratios], "seed": seed, "conditions": list(CONDITIONS)}
    brain, checkpoint = load_run(run_folder)
    if os.path.isfile(cache) and not refresh:
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("settings") == settings and cached.get("checkpoint") == os.path.basename(checkpoint.path):
            return cached
    hp = brain.hparams
    dataset = verification.utterance_dataset(hp.valid_annotation, hp.data_folder, hp.sample_rate)
    options = brain.valid_loader_options()
    options["num_workers"] = 0
    start = time.time()
    results = {}
    probes = [("none", None)] + [
        (f"{select}@{rho:g}", EnergyEmotionMask(mask_ratio=rho, select=select, fill="mean"))
        for rho in ratios for select in SELECTIONS
    ]
    for name, mask in probes:
        brain.probe_mask = mask
        torch.manual_seed(seed)  # the random selection: the same frames for every run
        ids, embeddings = verification.extract_embeddings(brain, dataset, options, desc=name)
        metrics = verification.score_trial_dir(ids, embeddings, hp.valid_trials_dir, conditions=list(CONDITIONS))
        results[name] = {c: {"eer": metrics[c]["eer"], "min_dcf": metrics[c]["min_dcf"]} for c in CONDITIONS}
    out = {
        "settings": settings, "checkpoint": os.path.basename(checkpoint.path),
        "valid_EER_selected": checkpoint.meta.get("EER"), "results": results,
        "seconds": round(time.time() - start, 1),
    }
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(cache + ".tmp", cache)
    return out


def main(argv=None):
    """Probe the given runs and print their validation EER per masking."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders (<runs_root>/<row>/seed<seed>)")
    p.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    p.add_argument("--seed", type=int, default=0, help="seed of the random selection")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--refresh", action="store_true", help="ignore the cache")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for run in args.runs:
        out = probe_run(run, args.ratios, args.seed, args.refresh)
        print(f"{run} ({out['checkpoint']}, {out['seconds']} s): valid EER (%) all / neutral_emotional")
        for name, res in out["results"].items():
            print(f"  {name:>12}: " + " / ".join(f"{100 * res[c]['eer']:.2f}" for c in CONDITIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
