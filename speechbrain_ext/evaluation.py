"""Extract → score → report: the evaluation stage shared by every recipe.

It depends on what it uses, not on a Brain: an ``encode(wavs, lens)`` function (the
trained encoder), a ``make_loader(dataset)`` factory and the splits of the hparams
(:mod:`speechbrain_ext.splits`). Embeddings of a split's manifest are extracted once
per checkpoint and cached on disk (:func:`cache_key`), every trial list of a split's
trial folder is scored with batched cosine scoring (optionally AS-normalised against
the training speakers' mean embeddings), and :func:`evaluate` reports every
evaluation split side by side: EER and minDCF with their speaker-bootstrap
intervals, Cllr / min Cllr / actual DCF of the raw scores and of the LLRs of a
calibration fitted on the pooled trials of validation splits
(:mod:`speechbrain_ext.split_metrics`), the per-trial score files
``scores/<split>.npz`` (:mod:`speechbrain_ext.trial_scores`), ``calibration.json``,
``metrics.json``, ``report.md`` and the plots (:mod:`speechbrain_ext.report`).
"""

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from speechbrain_ext import report, score_norm, scoring, split_metrics, trial_scores
from speechbrain_ext.extraction import cache_key, extract_embeddings, utterance_dataset
from speechbrain_ext.files import atomic_write_json

logger = logging.getLogger(__name__)

ENROL_MAP = "enrol.map"
CALIBRATION_FILE = "calibration.json"


def trial_lists(trials_dir):
    """The trial lists of a split's folder, ``{condition: path}`` in name order.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for n in ("all.txt", "enrol.map", "b.txt"):
    ...     _ = open(os.path.join(d, n), "w").write("")
    >>> list(trial_lists(d))
    ['all', 'b']
    """
    if not os.path.isdir(trials_dir):
        raise FileNotFoundError(f"trial folder not found: {trials_dir} (did data preparation run?)")
    names = sorted(n for n in os.listdir(trials_dir) if n.endswith(".txt"))
    if not names:
        raise FileNotFoundError(f"no trial list (*.txt) in {trials_dir}")
    return {n[: -len(".txt")]: os.path.join(trials_dir, n) for n in names}


def score_lists(ids, embeddings, trials_dir, conditions=None, cohort=None, top_n=300):
    """Parse and score the trial lists of ``trials_dir`` against an embedding table.

    Arguments are those of :func:`score_trial_dir`.

    Returns
    -------
    trials : dict
        ``{condition: Trials}``.
    scores : dict
        ``{condition: (scores, labels)}``.
    enrol_map : dict or None
        The folder's ``enrol.map``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "all.txt"), "w").write("1 a b\\n0 a c\\n")
    >>> trials, scores, _ = score_lists(["a", "b", "c"], torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), d)
    >>> trials["all"].test, scores["all"][0].tolist()
    (['b', 'c'], [1.0, 0.0])
    """
    lists = trial_lists(trials_dir)
    if conditions is not None:
        unknown = [c for c in conditions if c not in lists]
        if unknown:
            raise FileNotFoundError(f"no trial list {unknown[0]}.txt in {trials_dir} (have: {sorted(lists)})")
        lists = {c: lists[c] for c in conditions}
    enrol_path = os.path.join(trials_dir, ENROL_MAP)
    enrol_map = scoring.load_enrol_map(enrol_path) if os.path.isfile(enrol_path) else None
    embeddings = embeddings.numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    trials, scores = {}, {}
    for name, path in lists.items():
        trials[name] = scoring.load_trials(path)
        scores[name] = (
            scoring.score_trials(ids, embeddings, trials[name], enrol_map=enrol_map, cohort=cohort, top_n=top_n),
            trials[name].labels,
        )
    return trials, scores, enrol_map


def score_trial_dir(ids, embeddings, trials_dir, conditions=None, cohort=None, top_n=300, return_scores=False):
    """Score the trial lists of ``trials_dir`` against an embedding table.

    Arguments
    ---------
    ids : list of str
        Utterance IDs, aligned with ``embeddings``.
    embeddings : torch.Tensor or np.ndarray
        ``[N, D]`` embeddings.
    trials_dir : str
        Folder of ``<condition>.txt`` lists and an optional ``enrol.map``.
    conditions : list of str or None
        The conditions to score (default: every list in the folder).
    cohort : torch.Tensor or None
        ``[M, D]`` cohort for AS-norm; ``None`` scores raw cosine.
    top_n : int
        AS-norm cohort size.
    return_scores : bool
        Also return ``{condition: (scores, labels)}``.

    Returns
    -------
    dict
        ``{condition: {"eer", "min_dcf", "n_target", "n_nontarget", ...}}``
        (and the scores when asked).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "all.txt"), "w").write("1 a b\\n0 a c\\n")
    >>> emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> score_trial_dir(["a", "b", "c"], emb, d)["all"]["eer"]
    0.0
    """
    _, scores_by_condition, _ = score_lists(ids, embeddings, trials_dir, conditions, cohort, top_n)
    metrics = scoring.evaluate_conditions(scores_by_condition)
    return (metrics, scores_by_condition) if return_scores else metrics


def speaker_cohort(encode, make_loader, manifest, data_folder, sample_rate, max_per_speaker="all", seed=0,
                   subtract_mean=False, return_mean=False, cache_path=None):
    """The AS-norm cohort of the speakers of ``manifest``: one mean embedding per speaker, as WeSpeaker builds it.

    The mean of each speaker's raw embeddings over all its utterances (``"all"``) or
    over ``max_per_speaker`` of them drawn by a seeded sample across all of them
    (:func:`speechbrain_ext.score_norm.cohort_sample`; never "the first few", which
    on a corpus sorted by emotion or session would all be alike). With
    ``subtract_mean``, the mean of the embedded utterances is subtracted from every
    speaker mean (WeSpeaker's ``--cal_mean``; the caller subtracts the same mean,
    returned with ``return_mean``, from the trial embeddings).

    Arguments
    ---------
    encode, make_loader : callable
        As in :func:`extract_embeddings`.
    manifest : str
        The training manifest (column ``spk_id``).
    data_folder : str
        Replacement of ``$data_root``.
    sample_rate : int
        Rate the audio is read at.
    max_per_speaker : int or "all"
        Utterances per speaker.
    seed : int
        Seed of the per-speaker sample.
    subtract_mean : bool
        Subtract the training mean from the speaker means.
    return_mean : bool
        Also return the training mean (``[D]``).
    cache_path : str or None
        Embedding cache of the cohort utterances (see :func:`extract_embeddings`).

    Returns
    -------
    torch.Tensor
        ``[n_speakers, D]``, L2-normalised (and the ``[D]`` mean with ``return_mean``).
    """
    dataset = utterance_dataset(manifest, data_folder, sample_rate)
    all_ids = sorted(dataset.data_ids)
    keep = set(score_norm.cohort_sample(all_ids, [dataset.data[u]["spk_id"] for u in all_ids], max_per_speaker,
                                        seed))
    subset = dataset.filtered_sorted(key_test={"id": lambda i: i in keep}, sort_key="duration")
    ids, emb = extract_embeddings(encode, make_loader, subset, cache_path=cache_path, desc="cohort")
    mean = score_norm.embedding_mean(emb)
    _names, means = score_norm.speaker_means(emb, [dataset.data[i]["spk_id"] for i in ids],
                                             mean if subtract_mean else None)
    cohort = torch.nn.functional.normalize(means, dim=1)
    return (cohort, mean) if return_mean else cohort


@dataclass
class ScoredSplit:
    """One split scored with one checkpoint: what the report, the score file and the calibration read.

    Attributes
    ----------
    name : str
        The split's name (``eval``, ``ood``, ``valid``...).
    ids : list of str
        Utterance ids of the embedding table.
    embeddings : torch.Tensor
        ``[N, D]`` raw embeddings (before length normalisation), aligned with ``ids``.
    rows : dict
        The manifest's rows by utterance id (``duration``, ``spk_id``...).
    trials : dict
        ``{condition: Trials}``.
    scores : dict
        ``{condition: (scores, labels)}``, trial order.
    enrol_map : dict or None
        Multi-utterance enrolment models of the trial folder.
    cohort_means : numpy.ndarray or None
        Per-utterance mean of the top-N cohort scores (AS-norm runs only).
    """

    name: str
    ids: list
    embeddings: torch.Tensor
    rows: dict
    trials: dict
    scores: dict
    enrol_map: dict = None
    cohort_means: np.ndarray = None
    _metadata: dict = field(default=None, repr=False)

    def test_speakers(self):
        """``{condition: speaker of each trial's test utterance}`` (the manifest's ``spk_id``)."""
        utt2spk = {u: row["spk_id"] for u, row in self.rows.items()}
        return {c: trial_scores.speakers_of_trials(t.test, utt2spk, t.path or c) for c, t in self.trials.items()}

    def utterance_metadata(self):
        """``{"duration", "norm"[, "cohort_mean"]}`` per utterance of ``ids`` (the quality measures' input).

        Durations come from the manifest, norms from the raw embeddings (before length
        normalisation); computed once.
        """
        if self._metadata is None:
            self._metadata = {
                "duration": np.array([float(self.rows[u]["duration"]) for u in self.ids], dtype=np.float64),
                "norm": torch.linalg.vector_norm(self.embeddings.double(), dim=1).numpy(),
            }
            if self.cohort_means is not None:
                self._metadata["cohort_mean"] = self.cohort_means
        return self._metadata


def score_split(split, encode, make_loader, data_folder, sample_rate, cache_path=None, cohort=None, top_n=300,
                conditions=None, mean=None):
    """Extract (or read from the cache) the embeddings of ``split`` and score its trial lists.

    Arguments
    ---------
    split : speechbrain_ext.splits.Split
    encode, make_loader : callable
        As in :func:`extract_embeddings`.
    data_folder : str
        Replacement of ``$data_root``.
    sample_rate : int
    cache_path : str or None
        The embedding cache (see :func:`cache_key`).
    cohort : torch.Tensor or None
        AS-norm cohort (None: raw cosine).
    top_n : int
        AS-norm cohort scores kept per side.
    conditions : list of str or None
        Trial lists to score (default: every list of the folder).
    mean : torch.Tensor or None
        ``[D]`` training mean subtracted from every embedding before scoring (WeSpeaker's
        ``--cal_mean``; the cache keeps the raw embeddings).

    Returns
    -------
    ScoredSplit
    """
    dataset = utterance_dataset(split.annotation, data_folder, sample_rate)
    ids, embeddings = extract_embeddings(encode, make_loader, dataset, cache_path=cache_path, desc=split.name)
    if mean is not None:
        embeddings = score_norm.subtract_mean(embeddings, mean)
    trials, scores, enrol_map = score_lists(ids, embeddings, split.trials, conditions, cohort, top_n)
    cohort_means = None
    if cohort is not None:
        normed = scoring.l2_normalise(embeddings.double(), "embeddings", ids)
        cohort_means = scoring.cohort_stats(normed, cohort, top_n)[0].double().numpy()
    return ScoredSplit(split.name, ids, embeddings, dataset.data, trials, scores, enrol_map, cohort_means)


def _training_statistics(encode, make_loader, manifest, data_folder, sample_rate, kind, subtract_mean,
                         per_speaker, seed, cache_dir, checkpoint_path):
    """``(cohort or None, mean or None)`` of the training speakers, as the score normalisation asks."""
    if kind not in ("none", "as-norm"):
        raise ValueError(f"score_norm must be 'none' or 'as-norm', got {kind!r}")
    if kind == "none" and not subtract_mean:
        return None, None
    if manifest is None:
        raise ValueError("score_norm 'as-norm' and score_norm_subtract_mean need the training manifest")
    cache = None
    if cache_dir is not None:
        cache = os.path.join(cache_dir, f"cohort-{per_speaker}-{seed}-{cache_key(checkpoint_path, manifest)}.pt")
    cohort, mean = speaker_cohort(encode, make_loader, manifest, data_folder, sample_rate, per_speaker, seed=seed,
                                  subtract_mean=subtract_mean, return_mean=True, cache_path=cache)
    return (cohort if kind == "as-norm" else None), (mean if subtract_mean else None)


def _write_outputs(out_dir, results, scores, n_draws, title, extra):
    """``calibration.json`` (or none: an earlier evaluation's is not this checkpoint's) and the report."""
    info = dict(extra or {})
    calibration_path = os.path.join(out_dir, CALIBRATION_FILE)
    if results.calibration is not None:
        atomic_write_json(calibration_path, results.calibration.to_dict(), indent=1)
    elif os.path.isfile(calibration_path):
        os.remove(calibration_path)
    if results.calibration_info is not None:
        info["calibration"] = results.calibration_info
    info["bootstrap"] = {"n_draws": int(n_draws), "level": 0.95, "resampled": "test speakers"}
    report.write_report(out_dir, results.metrics, scores, title=title, extra=info, aliases=results.aliases)


def evaluate(encode, make_loader, eval_splits, data_folder, out_dir, *, sample_rate=16000, cache_dir=None,
             checkpoint_path=None, calibration_splits=(), calibration_quality="duration_norm",
             calibration_p_target=0.5, cohort_manifest=None, score_norm_kind="none", subtract_mean=False,
             cohort_per_speaker="all", cohort_seed=0, top_n=300, n_draws=1000, title="", extra=None):
    """Score every evaluation split with one checkpoint and write the report.

    Arguments
    ---------
    encode, make_loader : callable
        As in :func:`extract_embeddings` (the model of the checkpoint to evaluate).
    eval_splits : list of speechbrain_ext.splits.Split
        Reported side by side; the first also gives ``metrics.json``'s top-level ``conditions``.
    data_folder : str
        Replacement of ``$data_root``.
    out_dir : str
        The report folder: ``metrics.json``, ``report.md``, plots, ``scores/<split>.npz``,
        ``calibration.json``.
    sample_rate : int
        Rate the audio is read at.
    cache_dir : str or None
        Folder of the embedding caches ``<split>-<cache_key>.pt`` (None: no cache).
    checkpoint_path : str or None
        Names the caches (:func:`cache_key`).
    calibration_splits : sequence of speechbrain_ext.splits.Split
        Validation splits whose trials (each split's list ``condition``), pooled, fit the
        calibration; empty: no calibration.
    calibration_quality : str or list
        Quality measures of the calibration (:func:`speechbrain_ext.quality.measure_names`).
    calibration_p_target : float
        Effective prior of the calibration fit.
    cohort_manifest : str or None
        The training manifest: its speakers' mean embeddings are the AS-norm cohort
        (:func:`speaker_cohort`) and its mean embedding the one ``subtract_mean`` removes.
    score_norm_kind : str
        ``"none"`` (raw cosine) or ``"as-norm"`` (needs ``cohort_manifest``).
    subtract_mean : bool
        Subtract the training mean embedding before scoring (WeSpeaker's ``--cal_mean``).
    cohort_per_speaker : int or "all"
        Training utterances per speaker embedded for the cohort and the mean.
    cohort_seed : int
        Seed of the per-speaker draw when ``cohort_per_speaker`` is a number.
    top_n : int
        Cohort scores kept per side.
    n_draws : int
        Speaker-bootstrap draws of the intervals.
    title : str
        Report title.
    extra : dict or None
        Run information for ``metrics.json`` and the report (checkpoint, command, system...).

    Returns
    -------
    dict
        ``{split: {condition: metrics}}``.
    """
    start = time.perf_counter()
    cohort, mean = _training_statistics(encode, make_loader, cohort_manifest, data_folder, sample_rate,
                                        score_norm_kind, subtract_mean, cohort_per_speaker, cohort_seed,
                                        cache_dir, checkpoint_path)

    def scored(split, conditions=None):
        cache = cache_dir and os.path.join(cache_dir, f"{split.name}-{cache_key(checkpoint_path, split.annotation)}.pt")
        return score_split(split, encode, make_loader, data_folder, sample_rate, cache, cohort, top_n, conditions,
                           mean)

    splits = {split.name: scored(split) for split in eval_splits}
    calibration = [scored(split, [split.condition]) for split in calibration_splits or ()]
    scored_seconds = time.perf_counter() - start
    norm = "cosine" if cohort is None else f"as-norm top-{top_n}"
    score_kind = f"{norm} mean-subtracted" if subtract_mean else norm
    meta = {k: v for k, v in (extra or {}).items() if k in ("system", "seed", "checkpoint", "epoch")}
    results = split_metrics.split_results(
        splits, calibration, calibration_quality, calibration_p_target, score_kind, n_draws,
        lambda name, speakers, llrs: trial_scores.save_trial_scores(
            trial_scores.scores_path(out_dir, name), splits[name].scores, speakers,
            {**meta, "split": name, "score_norm": score_kind}, llrs),
    )
    _write_outputs(out_dir, results, {n: s.scores for n, s in splits.items()}, n_draws, title, extra)
    logger.info("evaluation: %.1f s to extract and score, %.1f s for intervals, calibration, score files and report",
                scored_seconds, time.perf_counter() - start - scored_seconds)
    return results.metrics
