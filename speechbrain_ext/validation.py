"""Validation during training: every valid split extracted in one pass, scored split by split.

The Brain validates on ``valid_splits`` (:mod:`speechbrain_ext.splits`) after every
epoch. :func:`validation_dataset` puts the splits' manifests in one dataset, each
manifest's utterances longest first, and :class:`SegmentBatches` batches each
manifest alone: an utterance gets the same batch mates (hence, with padding, the same
embedding) as when its split is validated alone, so adding a split never moves
another split's EER. :func:`score_valid_splits` scores each split's trial list on
the collected embeddings; :func:`speechbrain_ext.selection.selection_metric` turns
them into the checkpoint's selection EER.
"""

from speechbrain.dataio.dataset import DynamicItemDataset

from speechbrain_ext import data as sx_data
from speechbrain_ext.evaluation import score_trial_dir
from speechbrain_ext.extraction import utterance_dataset

__all__ = ["SegmentBatches", "score_valid_splits", "validation_dataset"]


def validation_dataset(manifests, data_folder, sample_rate):
    """Whole utterances of one or several manifests, each longest first, and where each one's run lies.

    With one manifest this is :func:`utterance_dataset`. With several, the datasets are
    concatenated in order (an utterance id in two different manifests is an error naming
    both); batching each segment alone (:class:`SegmentBatches`) then gives every
    utterance the same batch mates, hence the same embedding, as extracting its
    manifest alone.

    Returns
    -------
    dataset : DynamicItemDataset
    segments : list of (int, int)
        ``[start, end)`` of each distinct manifest in ``dataset``.

    Example
    -------
    >>> import tempfile, os, numpy as np, soundfile as sf
    >>> d = tempfile.mkdtemp()
    >>> for name, n in (("a", 800), ("b", 1600), ("c", 400)):
    ...     sf.write(os.path.join(d, name + ".wav"), np.zeros(n, dtype="float32"), 16000)
    >>> head = "ID,duration,wav,spk_id\\n"
    >>> _ = open(os.path.join(d, "1.csv"), "w").write(head + "a,0.05,$data_root/a.wav,s\\nb,0.1,$data_root/b.wav,s\\n")
    >>> _ = open(os.path.join(d, "2.csv"), "w").write(head + "c,0.025,$data_root/c.wav,t\\n")
    >>> ds, segments = validation_dataset([os.path.join(d, "1.csv"), os.path.join(d, "2.csv")], d, 16000)
    >>> [ex["id"] for ex in ds], segments
    (['b', 'a', 'c'], [(0, 2), (2, 3)])
    """
    manifests = list(dict.fromkeys(manifests))
    if len(manifests) == 1:
        dataset = utterance_dataset(manifests[0], data_folder, sample_rate)
        return dataset, [(0, len(dataset))]
    data, segments, origin = {}, [], {}
    for manifest in manifests:
        part = utterance_dataset(manifest, data_folder, sample_rate)
        for utt in part.data_ids:
            if utt in origin:
                raise sx_data.ManifestError(f"utterance id {utt!r} is in both {origin[utt]} and {manifest}")
            origin[utt] = manifest
            # filtered_sorted leaves the reserved key "id" in the rows it sorted
            data[utt] = {k: v for k, v in part.data[utt].items() if k != "id"}
        segments.append((len(data) - len(part.data_ids), len(data)))
    dataset = DynamicItemDataset(data)
    sx_data.add_audio(dataset, sx_data.AudioReader(sample_rate))
    dataset.set_output_keys(["id", "sig", "audio_issue"])
    return dataset, segments


class SegmentBatches:
    """Batch sampler: consecutive batches of ``batch_size`` that never cross a segment boundary.

    Example
    -------
    >>> list(SegmentBatches([(0, 3), (3, 5)], 2)), len(SegmentBatches([(0, 3), (3, 5)], 2))
    ([[0, 1], [2], [3, 4]], 3)
    """

    def __init__(self, segments, batch_size):
        self.batches = [
            list(range(i, min(i + batch_size, end))) for start, end in segments for i in range(start, end, batch_size)
        ]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def score_valid_splits(ids, embeddings, splits):
    """EER (%) and minDCF of each valid split's trial list on one embedding table.

    Arguments
    ---------
    ids : list of str
        Utterance ids of every valid split (the union), aligned with ``embeddings``.
    embeddings : torch.Tensor
        ``[N, D]``.
    splits : list of speechbrain_ext.splits.Split
        Each scored on its list ``<trials>/<condition>.txt``.

    Returns
    -------
    dict
        ``{split: {"EER": % rounded to 4 decimals, "minDCF": rounded to 5}}`` in split order.

    Example
    -------
    >>> import tempfile, os, torch
    >>> from speechbrain_ext.splits import Split
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "all.txt"), "w").write("1 a b\\n0 a c\\n")
    >>> emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> score_valid_splits(["a", "b", "c"], emb, [Split("valid", "v.csv", d)])
    {'valid': {'EER': 0.0, 'minDCF': 0.0}}
    """
    out = {}
    for split in splits:
        cond = score_trial_dir(ids, embeddings, split.trials, conditions=[split.condition])[split.condition]
        out[split.name] = {"EER": round(100 * cond["eer"], 4), "minDCF": round(cond["min_dcf"], 5)}
    return out
