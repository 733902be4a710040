"""Embeddings of a manifest's utterances with one encoder, cached on disk per checkpoint.

The evaluation stage (:mod:`speechbrain_ext.evaluation`), the validation
(:mod:`speechbrain_ext.validation`) and the external anchor
(:mod:`speechbrain_ext.anchor`) read utterances and extract embeddings through these
functions; a cache is named by the checkpoint and the manifest's content
(:func:`cache_key`) and written atomically (:func:`write_cache`).
"""

import glob
import hashlib
import logging
import os

import torch
from tqdm import tqdm

from speechbrain_ext import data as sx_data
from speechbrain_ext.files import TMP_PREFIX, atomic_path

logger = logging.getLogger(__name__)

__all__ = ["cache_key", "extract_embeddings", "utterance_dataset", "utterance_loader", "write_cache"]


def utterance_dataset(manifest, data_folder, sample_rate):
    """Whole utterances of a manifest, longest first (little padding, early out-of-memory).

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
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


def utterance_loader(dataset, batch_size=8):
    """Batches of whole utterances for :func:`extract_embeddings`, read in the main process.

    Example
    -------
    >>> batch = next(iter(utterance_loader([{"id": "a", "sig": torch.zeros(4), "audio_issue": ""}])))
    >>> batch.id
    ['a']
    """
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=sx_data.collate_skipping)


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


#: Part of every cache key: a cache written by another extraction (version 1: SpeechBrain's
#: padded batches, before :func:`speechbrain_ext.batching.embed_batch`) is not reused.
EXTRACTION_VERSION = 2


def cache_key(checkpoint_path, manifest):
    """A short key naming (extraction version, checkpoint, manifest content) for the embedding cache.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv"); _ = open(p, "w").write("x")
    >>> cache_key("/ckpt/a", p) == cache_key("/ckpt/a", p), cache_key("/ckpt/a", p) == cache_key("/ckpt/b", p)
    (True, False)
    """
    digest = hashlib.sha256(f"v{EXTRACTION_VERSION}".encode())
    digest.update(str(os.path.abspath(checkpoint_path) if checkpoint_path else "none").encode())
    with open(manifest, "rb") as f:
        digest.update(f.read())
    return digest.hexdigest()[:16]
