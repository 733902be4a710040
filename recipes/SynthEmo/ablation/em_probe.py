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
nothing here looks at the evaluation trials. Results are cached per run in
``<run>/report/em_probe.json`` (keyed by the checkpoint and the probe settings). The emotion
ablation (``emotion.yaml`` next to this file) runs it as a report section,
:class:`EmProbeSection`: after training it probes the finished runs of the rows and seeds it
is given, then tabulates them.

Usage::

    .venv/bin/python recipes/SynthEmo/ablation/em_probe.py results/ablation/SynthEmo/ecapa_aam/seed1986 \\
        [more runs] [--ratios 0.1 0.2 0.4] [--threads 1]
"""

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import ruamel.yaml
import speechbrain as sb
import torch

from speechbrain_ext import batching, emotion_report, evaluation, extraction, report, scoring, selection, splits
from speechbrain_ext.augment import SELECTIONS, EnergyEmotionMask
from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.files import atomic_write_json
from speechbrain_ext.hparams import load_hparams
from speechbrain_ext.suite_report import Section, fmt, mean_std
from speechbrain_ext.trial_scores import load_trial_scores, save_trial_scores, speakers_of_trials

RATIOS = (0.1, 0.2, 0.4)
CONDITIONS = ("all", "neutral_emotional")
CACHE = os.path.join("report", "em_probe.json")
SCORES = os.path.join("report", "em_probe")  # <mask>.npz: per-trial scores, for the paired intervals
# 3: the masks reach the padding-invariant extraction (2 embedded unmasked); 4: per-trial scores kept
FORMAT = 4


class TestTimeMask:
    """Mixin for a Brain class: apply :attr:`probe_mask` to the features of every non-training stage.

    The Brain's inference hook :meth:`~speechbrain_ext.brains.SpeakerBrain.embed` reads the
    feature modules directly (padding-invariant extraction), so with a mask set :meth:`embed`
    goes through :meth:`compute_features` instead, on sub-batches of equal length (no padding).

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

    def embed(self, wavs, lens):
        """The Brain's inference embeddings; with a mask, each utterance's masked features encoded alone."""
        if self.probe_mask is None:
            return super().embed(wavs, lens)
        with torch.no_grad():
            return batching.embed_equal_lengths(lambda w, n: self.encode(w, n, sb.Stage.TEST), wavs, lens)


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

    The per-trial scores of every mask go to ``<run>/report/em_probe/<mask>.npz``
    (:func:`~speechbrain_ext.trial_scores.save_trial_scores`, with the run's seed), so the
    report can pair masks over speakers and seeds (:func:`mask_differences`).

    Returns
    -------
    dict
        ``{"checkpoint", "valid_EER_selected", "results": {"none": {condition: {"eer", "min_dcf"}},
        "<select>@<rho>": {...}}, "split", "seconds"}``.
    """
    settings = probe_settings(ratios, seed)
    cached = None if refresh else cached_probe(run_folder, settings)
    if cached is not None:
        return cached
    brain, checkpoint = load_run(run_folder)
    hp = brain.hparams
    valid = splits.parse_splits(hp.valid_splits, "valid_splits")[0]
    # "all" is required; the emotional condition only where the corpus's validation trials have it
    conditions = [c for c in CONDITIONS if c == "all" or c in evaluation.trial_lists(valid.trials)]
    dataset = extraction.utterance_dataset(valid.annotation, hp.data_folder, hp.sample_rate)
    utt2spk = {u: spk for u, (spk,) in emotion_report.read_labels(valid.annotation, ("spk_id",)).items()}
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
        ids, embeddings = extraction.extract_embeddings(encode, make_loader, dataset, desc=name)
        trials, scores, _ = evaluation.score_lists(ids, embeddings, valid.trials, conditions)
        metrics = scoring.evaluate_conditions(scores)
        results[name] = {c: {k: metrics[c][k] for k in ("eer", "min_dcf", "eer_threshold")} for c in conditions}
        speakers = {c: speakers_of_trials(t.test, utt2spk, t.path or c) for c, t in trials.items()}
        save_trial_scores(scores_file(run_folder, name), scores, speakers,
                          meta={"seed": hp.seed, "split": valid.name, "mask": name})
        if mask is None and _has_emotions(valid.annotation):
            shift = relative_emotion_shift(ids, embeddings, emotion_report.read_labels(valid.annotation))
    out = {
        "settings": settings, "checkpoint": os.path.basename(checkpoint.path),
        "valid_EER_selected": checkpoint.meta.get("EER"), "results": results, "emotion_shift": shift,
        "split": valid.name, "seconds": round(time.time() - start, 1),
    }
    atomic_write_json(os.path.join(run_folder, CACHE), out, indent=1)
    return out


def probe_settings(ratios=RATIOS, seed=0):
    """What a cached probe must have been run with to be reused.

    Example
    -------
    >>> probe_settings([0.2])["ratios"]
    [0.2]
    """
    return {"format": FORMAT, "ratios": [float(r) for r in ratios], "seed": seed, "conditions": list(CONDITIONS)}


def cached_probe(run_folder, settings):
    """The run's cached probe when it has these settings and the checkpoint its ``metrics.json`` names, else None.

    Example
    -------
    >>> import tempfile
    >>> cached_probe(tempfile.mkdtemp(), probe_settings()) is None
    True
    """
    path = os.path.join(run_folder, CACHE)
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(run_folder, "report", report.METRICS_FILE)):
        return None
    with open(path) as f:
        cached = json.load(f)
    checkpoint = os.path.basename(str(report.read_metrics(os.path.join(run_folder, "report")).get("checkpoint")))
    return cached if cached.get("settings") == settings and cached.get("checkpoint") == checkpoint else None


# compare's verdicts speak of a system's error; here the question is which mask raises it
_DIRECTION = {"better": "lower", "worse": "higher"}


def scores_file(run_folder, mask):
    """Where the per-trial scores of one mask of a run's probe go.

    Example
    -------
    >>> scores_file("runs/a/seed1", "highest@0.2")
    'runs/a/seed1/report/em_probe/highest@0.2.npz'
    """
    return os.path.join(run_folder, SCORES, f"{mask}.npz")


def mask_differences(runs, split, masks, pairs, n_draws=1000, seed=0):
    """EER of each mask and paired differences between masks over speakers and seeds (``all`` trials).

    Arguments
    ---------
    runs : list of str
        Probed run folders of one system (one per seed).
    split : str
        The probed validation split (named in the score files).
    masks : list of str
        Mask names (``none``, ``<select>@<rho>``).
    pairs : list of (str, str)
        ``(mask, reference)``: each difference is ``mask - reference``.
    n_draws, seed : int
        Bootstrap draws and their seed.

    Returns
    -------
    summary : dict
        ``{mask: {"value", "low", "high"}}`` (EER, a fraction).
    differences : dict
        ``{(mask, reference): {"difference", "low", "high", "verdict"}}``.
    """
    systems = {m: [load_trial_scores(scores_file(r, m)) for r in runs] for m in masks}
    comparison = SplitComparison(systems, split, n_draws=n_draws, seed=seed, conditions=["all"])
    summary = {row["system"]: row["metrics"]["eer"] for row in comparison.summary()}
    differences = {(m, ref): comparison.difference(m, ref)[0]["metrics"]["eer"] for m, ref in pairs}
    return summary, differences


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


class EmProbeSection(Section):
    """The probe as a suite report section: probe the finished runs after training, then tabulate them.

    Arguments
    ---------
    rows : list of str or None
        Rows probed (default: every row of the suite, variants included).
    seeds : int
        How many of the suite's seeds are probed (the first ones): the probe embeds the
        validation utterances once per mask, so it costs about ``1 + 3 x len(ratios)``
        validation passes per run.
    ratios : list of float
        Shares of hidden frames.

    Example
    -------
    >>> EmProbeSection(rows=["ecapa_aam"], seeds=1, ratios=[0.2]).settings["ratios"]
    [0.2]
    """

    def __init__(self, rows=None, seeds=1, ratios=(0.2,)):
        self.rows, self.n_seeds, self.settings = rows, int(seeds), probe_settings(ratios)

    def _runs(self, suite):
        rows = [r for r in suite.rows if self.rows is None or r.name in self.rows]
        return [(row, seed) for row in rows for seed in suite.seeds[: self.n_seeds]]

    def after_runs(self, suite, out=print):
        """Probe, ``suite.jobs`` processes at a time, every finished run without a current probe."""
        todo = [suite.run_folder(row, seed) for row, seed in self._runs(suite)
                if os.path.isfile(os.path.join(suite.run_folder(row, seed), "report", report.METRICS_FILE))
                and cached_probe(suite.run_folder(row, seed), self.settings) is None]
        if not todo:
            return
        out(f"[{time.strftime('%H:%M:%S')}] test-time masking probe of {len(todo)} run(s) (validation speakers)")
        env = {**os.environ, "OMP_NUM_THREADS": str(suite.threads)}
        ratios = [str(r) for r in self.settings["ratios"]]
        commands = [[sys.executable, os.path.abspath(__file__), *todo[i :: suite.jobs], "--threads",
                     str(suite.threads), "--ratios", *ratios] for i in range(min(suite.jobs, len(todo)))]
        procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for c in commands]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                out(f"probe failed (exit {proc.returncode}):\n{err[-2000:]}")

    def render(self, ctx):
        """Validation EER per mask with intervals, highest / lowest vs random paired, and the emotion shift."""
        probed = {}
        for row, seed in self._runs(ctx.suite):
            result = cached_probe(ctx.suite.run_folder(row, seed), self.settings)
            if result is not None:
                probed.setdefault(row, []).append((ctx.suite.run_folder(row, seed), result))
        lines = ["## Validation probe: which frames carry the speaker?", ""]
        if not probed:
            return lines + ["No probed run (the probe runs after training; not with `--report-only`).", ""]
        ratios = self.settings["ratios"]
        masks = ["none"] + [f"{select}@{rho:g}" for rho in ratios for select in SELECTIONS]
        pairs = [(f"{select}@{rho:g}", f"random@{rho:g}") for rho in ratios for select in ("highest", "lowest")]
        lines += [
            "Each selected checkpoint embeds the VALIDATION utterances with a share rho of its frames hidden at "
            "test time by the same `EnergyEmotionMask` as training (mean fill): the `highest`-energy frames (what "
            "EM hides in training), as many `random` frames, or the `lowest`-energy ones. Validation EER (%) on "
            f"`all` trials of the first {len(ctx.suite.seeds[: self.n_seeds])} seed(s), 95 % interval over "
            "speakers and seeds; the differences are paired (same runs, same trials, same speaker draws) "
            f"(`{os.path.relpath(os.path.abspath(__file__))}`; a diagnostic, not an evaluation figure):", "",
            "| system | runs | " + " | ".join(m.replace("@", " ") for m in masks) + " | "
            + " | ".join(f"{m.replace('@', ' ')} − {ref.split('@')[0]}" for m, ref in pairs) + " |",
            "|:---|---:|" + "---:|" * (len(masks) + len(pairs))]
        for row, probes in probed.items():
            summary, differences = mask_differences([run for run, _ in probes], probes[0][1]["split"], masks, pairs,
                                                    ctx.suite.draws, ctx.suite.bootstrap_seed)
            cells = [f"{100 * summary[m]['value']:.2f} [{100 * summary[m]['low']:.2f}, {100 * summary[m]['high']:.2f}]"
                     for m in masks]
            cells += [f"{100 * d['difference']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] "
                      f"**{_DIRECTION.get(d['verdict'], d['verdict'])}**" for d in (differences[p] for p in pairs)]
            lines.append(f"| {row.label} | {len(probes)} | " + " | ".join(cells) + " |")
        lines += ["", "Read across a row: `highest` above `random` at the same rho (an interval above zero) means "
                  "the highest-energy frames carry more than their share of the speaker information.", "",
                  "Emotion shift (no mask, validation speakers; mean ± std over the probed runs, a description "
                  "without interval): mean 1 − cos between a speaker's emotional and neutral centroids; "
                  "separation: between two speakers' neutral centroids.", "",
                  "| system | emotion shift | speaker separation | shift / separation |", "|:---|---:|---:|---:|"]
        for row, probes in probed.items():
            cells = [fmt(*mean_std([(r.get("emotion_shift") or {}).get(k) for _, r in probes]), 3)
                     for k in ("shift", "separation", "ratio")]
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
        return lines + [""]


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
