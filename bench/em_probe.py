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

and scores the validation trials (``all`` and ``neutral_emotional``). It also reports, without
masking, the validation speakers' emotion shift relative to their separation
(:func:`relative_emotion_shift`). Hiding the
highest-energy frames costing more EER than hiding random ones means those frames carry more
than their share of the speaker information. A run trained with EM should lose less under
``highest`` masking than the baseline (it learnt without them).

Only the first validation split of ``valid_splits`` is read (its manifest and trial lists):
nothing here looks at the evaluation trials. Results are cached per run in ``<run>/report/em_probe.json`` (keyed by the
checkpoint and the probe settings) and read by ``bench/ablation.py --suite emotion``.

Usage::

    .venv/bin/python bench/em_probe.py results/ablation/emotion_runs/ecapa_aam/seed1986 [more runs] \\
        [--ratios 0.1 0.2 0.4] [--threads 1]
"""

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time

import ruamel.yaml
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from speechbrain_ext import emotion_report, evaluation, selection, splits  # noqa: E402
from speechbrain_ext.augment import SELECTIONS, EnergyEmotionMask  # noqa: E402
from speechbrain_ext.hparams import load_hparams  # noqa: E402

RATIOS = (0.1, 0.2, 0.4)
CONDITIONS = ("all", "neutral_emotional")
CACHE = os.path.join("report", "em_probe.json")
FORMAT = 2


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


def relocated_hparams(run_folder):
    """The text of ``<run_folder>/hyperparams.yaml`` with its own output folder replaced by ``run_folder``.

    SpeechBrain saves the hparams with every reference resolved, so the checkpoint,
    report and log paths name the folder the run was trained in; a run moved or copied
    since then (or one whose folder name SpeechBrain's argument parser mangled) would
    otherwise point elsewhere, and its checkpointer would create that folder again.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "hyperparams.yaml"), "w").write(
    ...     "output_folder: /old/run\\nsave_folder: /old/run/save\\nckpt: !new:collections.OrderedDict\\n"
    ...     "  x: /old/run/save\\nother: /old/runner\\n")
    >>> text = relocated_hparams(d)
    >>> f"{d}/save" in text, "/old/run/" in text, "/old/runner" in text
    (True, False, True)
    """
    path = os.path.join(run_folder, "hyperparams.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_folder}: no hyperparams.yaml (not a finished recipe run)")
    yaml = ruamel.yaml.YAML()
    yaml.width = 10**6
    with open(path) as f:
        tree = yaml.load(f)
    old, new = str(tree["output_folder"]).rstrip("/"), os.path.abspath(run_folder)

    def visit(node):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, str) and (value == old or value.startswith(old + "/")):
                node[key] = new + value[len(old):]
            else:
                visit(value)

    visit(tree)
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return stream.getvalue()


def load_run(run_folder, device="cpu"):
    """The run's Brain (its own ``hyperparams.yaml``) with the selected checkpoint (lowest valid EER) loaded.

    Returns
    -------
    brain : SpeakerBrain subclass with :class:`TestTimeMask`
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        tmp.write(relocated_hparams(run_folder))
    try:
        hparams, _ = load_hparams(tmp.name)
    finally:
        os.remove(tmp.name)
    brain_class = type(f"Probe{hparams['brain_class'].__name__}", (TestTimeMask, hparams["brain_class"]), {})
    brain = brain_class(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts={"device": device}, checkpointer=hparams["checkpointer"],
    )
    checkpoint = selection.recover_best(brain.checkpointer)
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
    valid = splits.parse_splits(hp.valid_splits, "valid_splits")[0]
    # "all" is required; the emotional condition only where the corpus's validation trials have it
    conditions = [c for c in CONDITIONS if c == "all" or c in evaluation.trial_lists(valid.trials)]
    dataset = evaluation.utterance_dataset(valid.annotation, hp.data_folder, hp.sample_rate)
    options = brain.valid_loader_options()
    options["num_workers"] = 0
    encode, make_loader = brain.inference_functions(options)
    start = time.time()
    results = {}
    probes = [("none", None)] + [
        (f"{select}@{rho:g}", EnergyEmotionMask(mask_ratio=rho, select=select, fill="mean"))
        for rho in ratios for select in SELECTIONS
    ]
    shift = None
    for name, mask in probes:
        brain.probe_mask = mask
        torch.manual_seed(seed)  # the random selection: the same frames for every run
        ids, embeddings = evaluation.extract_embeddings(encode, make_loader, dataset, desc=name)
        metrics = evaluation.score_trial_dir(ids, embeddings, valid.trials, conditions=conditions)
        results[name] = {c: {"eer": metrics[c]["eer"], "min_dcf": metrics[c]["min_dcf"]} for c in conditions}
        if mask is None and _has_emotions(valid.annotation):
            shift = relative_emotion_shift(ids, embeddings, emotion_report.read_labels(valid.annotation))
    out = {
        "settings": settings, "checkpoint": os.path.basename(checkpoint.path),
        "valid_EER_selected": checkpoint.meta.get("EER"), "results": results, "emotion_shift": shift,
        "seconds": round(time.time() - start, 1),
    }
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(cache + ".tmp", cache)
    return out


def _has_emotions(manifest):
    with open(manifest, newline="") as f:
        return "emotion" in (csv.DictReader(f).fieldnames or [])


def relative_emotion_shift(ids, embeddings, labels):
    """Emotion shift (:func:`~speechbrain_ext.emotion_report.emotion_shift`) over the speaker separation.

    The separation is the mean ``1 - cos`` between the neutral centroids of two different
    speakers. A raw shift falls also when every embedding moves closer to every other;
    the ratio asks how far emotion moves a speaker compared with how far apart speakers are.

    Returns
    -------
    dict
        ``{"shift", "separation", "ratio"}``.

    Example
    -------
    >>> labels = {"a": ("s1", "neutral"), "b": ("s1", "sad"), "c": ("s2", "neutral")}
    >>> out = relative_emotion_shift(["a", "b", "c"], torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), labels)
    >>> round(out["shift"], 4), out["separation"], round(out["ratio"], 4)
    (0.2929, 1.0, 0.2929)
    """
    shift = emotion_report.emotion_shift(ids, embeddings, labels)
    emb = torch.nn.functional.normalize(embeddings.double(), dim=1)
    rows = {}
    for row, utt in enumerate(ids):
        spk, emotion = labels.get(utt, (None, None))
        if emotion == emotion_report.NEUTRAL:
            rows.setdefault(spk, []).append(row)
    if len(rows) < 2:
        return {"shift": shift, "separation": float("nan"), "ratio": float("nan")}
    centroids = torch.nn.functional.normalize(torch.stack([emb[r].mean(dim=0) for r in rows.values()]), dim=1)
    cos = centroids @ centroids.T
    n = cos.shape[0]
    separation = float((1.0 - cos).sum() / (n * (n - 1)))  # the diagonal adds 0
    return {"shift": shift, "separation": separation, "ratio": shift / separation}


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
        conditions = " / ".join(out["results"]["none"])
        print(f"{run} ({out['checkpoint']}, {out['seconds']} s): valid EER (%) {conditions}")
        for name, res in out["results"].items():
            print(f"  {name:>12}: " + " / ".join(f"{100 * res[c]['eer']:.2f}" for c in res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
