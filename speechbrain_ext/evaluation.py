"""Extract → score → report: the evaluation stage shared by every recipe.

It depends on what it uses, not on a Brain: an ``encode(wavs, lens)`` function (the
trained encoder), a ``make_loader(dataset)`` factory, a manifest and a trial folder.
Embeddings of an evaluation manifest are extracted once per checkpoint and cached on
disk (the caller names the cache, e.g. with :func:`cache_key`), every trial list of a
split's trial folder is scored with batched cosine scoring (optionally AS-normalised
against the training speakers' mean embeddings), and the metrics go to
``metrics.json``, ``report.md``, ``det.png`` and ``score_hist.png``.
"""

import glob
import hashlib
import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from speechbrain_ext import data as sx_data
from speechbrain_ext import report, score_norm, scoring
from speechbrain_ext.files import TMP_PREFIX, atomic_path

logger = logging.getLogger(__name__)

ENROL_MAP = "enrol.map"


def utterance_dataset(manifest, data_folder, sample_rate):
    """Whole utterances of a manifest, longest first (little padding, early out-of-memory).

    Example
    -------
    >>> import tempfile, os, soundfile as sf
    >>> d = tempfile.mkdtemp()
    >>> for name, n in (("a", 800), ("b", 1600)):
    ...     sf.write(os.path.join(d, name + ".wav"), np.zeros(n, dtype="float32"), 16000)
    >>> p = os.path.join(d, "m.csv")
    >>> _ = open(p, "w").write("ID,duration,wav,spk_id\\na,0.05,$data_root/a.wav,s\\nb,0.1,$data_root/b.wav,s\\n")
    >>> [ex["id"] for ex in utterance_dataset(p, d, 16000)]
    ['b', 'a']
    """
    dataset = sx_data.load_dataset(manifest, data_folder)
    sx_data.add_audio(dataset, sx_data.AudioReader(sample_rate))
    dataset.set_output_keys(["id", "sig", "audio_issue"])
    return dataset.filtered_sorted(sort_key="duration", reverse=True)


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
    lists = trial_lists(trials_dir)
    if conditions is not None:
        unknown = [c for c in conditions if c not in lists]
        if unknown:
            raise FileNotFoundError(f"no trial list {unknown[0]}.txt in {trials_dir} (have: {sorted(lists)})")
        lists = {c: lists[c] for c in conditions}
    enrol_path = os.path.join(trials_dir, ENROL_MAP)
    enrol_map = scoring.load_enrol_map(enrol_path) if os.path.isfile(enrol_path) else None
    embeddings = embeddings.numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    scores_by_condition = {}
    for name, path in lists.items():
        trials = scoring.load_trials(path)
        scores = scoring.score_trials(ids, embeddings, trials, enrol_map=enrol_map, cohort=cohort, top_n=top_n)
        scores_by_condition[name] = (scores, trials.labels)
    metrics = scoring.evaluate_conditions(scores_by_condition)
    return (metrics, scores_by_condition) if return_scores else metrics



def extract_embeddings(encode, make_loader, dataset, cache_path=None, desc="embeddings"):
    """Embeddings of every readable utterance of ``dataset``.

    Arguments
    ---------
    encode : callable
        ``encode(wavs [B, S], lens [B]) -> [B, 1, D]``: the encoder, ready for
        inference (eval mode, on its device).
    make_loader : callable
        ``make_loader(dataset)``: an iterable of batches collated by
        :func:`~speechbrain_ext.data.collate_skipping`.
    dataset : DynamicItemDataset
        With output keys ``id``, ``sig``, ``audio_issue``.
    cache_path : str or None
        Where to cache the result; reused when it exists.
    desc : str
        Progress-bar label.

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
        ``[N, D]`` float32 on the CPU.

    Example
    -------
    >>> ds = [{"id": "a", "sig": torch.ones(4), "audio_issue": ""}, {"id": "b", "sig": torch.zeros(0),
    ...        "audio_issue": "error: x"}]
    >>> def make_loader(dataset):
    ...     return [sx_data.collate_skipping(dataset)]
    >>> ids, emb = extract_embeddings(lambda w, lens: w.sum(1, keepdim=True)[:, None], make_loader, ds)
    >>> ids, emb.tolist()
    (['a'], [[4.0]])
    """
    if cache_path and os.path.isfile(cache_path):
        cached = torch.load(cache_path, weights_only=True)
        return cached["ids"], cached["embeddings"]
    ids, chunks, issues = [], [], sx_data.AudioIssueCounter()
    with torch.no_grad():
        for batch in tqdm(make_loader(dataset), desc=desc, dynamic_ncols=True):
            issues.update(batch.all_issues, batch.all_ids)
            if not batch.batchsize:
                continue
            wavs, lens = batch.sig
            chunks.append(encode(wavs, lens)[:, 0].float().cpu())
            ids.extend(batch.id)
    if issues.skipped:
        logger.warning(
            "%d utterance(s) could not be read and have no embedding: %s", issues.skipped, issues.first_errors
        )
    embeddings = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    if cache_path:
        write_cache(cache_path, ids, embeddings)
    return ids, embeddings


def write_cache(cache_path, ids, embeddings):
    """Write the embedding cache atomically (:func:`speechbrain_ext.files.atomic_path`).

    A reader never sees a partial cache; when the write fails (disk full, size limit)
    the temporary file is removed, a warning names the cache, and the run goes on
    with the embeddings it holds in memory (the cache is only a shortcut).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "emb", "eval.pt")
    >>> write_cache(p, ["a"], torch.ones(1, 2))
    True
    >>> sorted(os.listdir(os.path.dirname(p)))
    ['eval.pt']
    """
    folder, name = os.path.split(os.path.abspath(cache_path))
    for stale in glob.glob(os.path.join(glob.escape(folder), f"{TMP_PREFIX}*-{glob.escape(name)}")):
        os.remove(stale)  # left by a killed run
    try:
        with atomic_path(cache_path) as tmp:
            torch.save({"ids": list(ids), "embeddings": embeddings}, tmp)
        return True
    except (OSError, RuntimeError) as err:  # torch's writer raises RuntimeError for a failed write
        logger.warning("could not write the embedding cache %s (%s: %s); continuing without it",
                       cache_path, type(err).__name__, err)
        return False


def cache_key(checkpoint_path, manifest):
    """A short key naming (checkpoint, manifest content) for the embedding cache.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv"); _ = open(p, "w").write("x")
    >>> cache_key("/ckpt/a", p) == cache_key("/ckpt/a", p), cache_key("/ckpt/a", p) == cache_key("/ckpt/b", p)
    (True, False)
    """
    digest = hashlib.sha256(str(os.path.abspath(checkpoint_path) if checkpoint_path else "none").encode())
    with open(manifest, "rb") as f:
        digest.update(f.read())
    return digest.hexdigest()[:16]


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


def evaluate(encode, make_loader, manifest, data_folder, trials_dir, out_dir, *, sample_rate=16000,
             cache_path=None, cohort_manifest=None, cohort_per_speaker=5, top_n=300, title="", extra=None):
    """Score every trial list of ``trials_dir`` on the embeddings of ``manifest`` and write the report.

    Arguments
    ---------
    encode, make_loader : callable
        As in :func:`extract_embeddings` (the model of the checkpoint to evaluate).
    manifest : str
        The evaluation manifest.
    data_folder : str
        Replacement of ``$data_root``.
    trials_dir : str
        Folder of ``<condition>.txt`` trial lists (and an optional ``enrol.map``).
    out_dir : str
        Where ``metrics.json``, ``report.md`` and the plots go.
    sample_rate : int
        Rate the audio is read at.
    cache_path : str or None
        Embedding cache of the evaluation manifest (see :func:`cache_key`).
    cohort_manifest : str or None
        With a manifest, scores are AS-normalised against the mean embeddings of its
        speakers (:func:`speaker_cohort`); None scores raw cosine.
    cohort_per_speaker, top_n : int
        Utterances per cohort speaker; cohort scores kept per side.
    title : str
        Report title.
    extra : dict or None
        More fields for ``metrics.json`` and the report (checkpoint, command, system...).

    Returns
    -------
    dict
        The metrics per condition.
    """
    dataset = utterance_dataset(manifest, data_folder, sample_rate)
    ids, embeddings = extract_embeddings(encode, make_loader, dataset, cache_path=cache_path, desc="eval")
    cohort = None
    if cohort_manifest is not None:
        cohort = speaker_cohort(encode, make_loader, cohort_manifest, data_folder, sample_rate, cohort_per_speaker)
    metrics, scores = score_trial_dir(ids, embeddings, trials_dir, cohort=cohort, top_n=top_n, return_scores=True)
    report.write_report(out_dir, metrics, scores, title=title, extra=extra)
    return metrics
