"""Speaker-balanced batch sampling for contrastive training.

:class:`SpeakerBalancedBatchSampler` yields batches of ``P`` distinct speakers x
``K`` utterances (so every anchor has ``K - 1`` positives), visits every utterance
at least once per epoch, is reproducible from ``(seed, epoch)`` and is
checkpointable with SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer`.

Batches of a group (hard negatives)
-----------------------------------
With ``speaker_groups`` (a speaker attribute: accent, nationality, gender, recording
set-up...), a share ``grouped_share`` of the batches draws its ``P`` speakers from one
group, so the in-batch negatives of a contrastive loss share that attribute and the
model must separate speakers by something else. :func:`read_speaker_groups` reads the
attribute from a speaker table (SynthEmo's ``speakers.csv``, VoxCeleb1's
``vox1_meta.csv``)::

    train_sampler: !name:speechbrain_ext.sampling.SpeakerBalancedBatchSampler
        speakers_per_batch: 16
        utterances_per_speaker: 2
        speaker_groups: !name:speechbrain_ext.sampling.read_speaker_groups
            path: !ref <manifest_folder>/speakers.csv
            column: accent
        grouped_share: 1.0

Use with SpeechBrain's Brain
----------------------------
Pass it as ``batch_sampler`` in the train dataloader options (and no ``batch_size``,
``shuffle``, ``sampler`` or ``drop_last``)::

    sampler = SpeakerBalancedBatchSampler(labels, speakers_per_batch=64,
                                          utterances_per_speaker=2, seed=1986)
    checkpointer.add_recoverable("train_sampler", sampler)
    brain.fit(epoch_counter, train_data, valid_data,
              train_loader_kwargs={"batch_sampler": sampler, "num_workers": 4})

SpeechBrain 1.1.2 only calls ``set_epoch`` on ``Brain.train_sampler``, which it sets
for ``shuffle=True`` or under DDP, but NOT for a ``batch_sampler`` in single-process
training. Either set ``brain.train_sampler = sampler`` before ``fit`` (recommended),
or rely on the fallback here: an ``__iter__`` without an intervening ``set_epoch``
advances the epoch by one (logged once), which keeps epochs different and reproducible.

Under DDP, SpeechBrain wraps any ``batch_sampler`` in ``DistributedSamplerWrapper``,
which hands whole batches of the (identical on every rank) global sequence to each
rank; keep ``rank=None, world_size=None`` for that. For the speaker-disjoint per-step
partition of this class instead (``rank``/``world_size`` given), derive the Brain from
:class:`speechbrain_ext.compat.Brain` and return the sampler from its hook, as
:class:`~speechbrain_ext.brains.SpeakerBrain` does::

    def rank_partitioned_sampler(self, loader_kwargs):
        sampler = loader_kwargs.get("batch_sampler")
        return sampler if isinstance(sampler, SpeakerBalancedBatchSampler) else None

Mid-epoch resume: ``SaveableDataLoader`` checkpoints the number of batches already
yielded and, on recovery, fast-forwards a fresh iterator of this sampler by that
many batches. Brain calls ``set_epoch(epoch)`` before creating the iterator and the
sampler's own checkpoint restores ``seed`` and ``epoch``, so the replayed epoch is
the same sequence and training resumes at the right batch.
"""

import json
import logging
import math
from collections import OrderedDict

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.trial_composition import CompositionError, read_attributes

logger = logging.getLogger(__name__)


class SpeakerGroupError(SpeechBrainExtError, ValueError):
    """A speaker-group table or mapping is unusable; the message names the file, column or speaker.

    Example
    -------
    >>> isinstance(SpeakerGroupError("speakers.csv: no column 'acent'"), ValueError)
    True
    """


def read_speaker_groups(path, column, key="spk_id"):
    """``{speaker: group}`` from the columns ``key`` and ``column`` of a CSV speaker table.

    Arguments
    ---------
    path : str
        A CSV file with a header line (comma-separated; tab-separated when the header has tabs
        and no commas, as VoxCeleb1's ``vox1_meta.csv``), read by
        :func:`speechbrain_ext.trial_composition.read_attributes`.
    column : str
        The attribute that makes a group (e.g. ``accent``, ``Nationality``).
    key : str
        The column of speaker IDs, as the training manifest's ``spk_id`` spells them.

    Returns
    -------
    dict
        Speaker ID -> group value (a string).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "speakers.csv")
    >>> _ = open(path, "w").write("spk_id,accent\\nS1,en-US\\nS2,en\\n")
    >>> read_speaker_groups(path, "accent")
    {'S1': 'en-US', 'S2': 'en'}
    """
    with open(path, newline="", encoding="utf-8") as f:
        header = f.readline()
    delimiter = "\t" if "\t" in header and "," not in header else ","
    try:
        table = read_attributes(path, [column], id_column=key, delimiter=delimiter)
    except CompositionError as err:
        raise SpeakerGroupError(str(err)) from err
    if not table:
        raise SpeakerGroupError(f"{path}: no speakers")
    return {speaker: group for speaker, (group,) in table.items()}


def _weighted_pick(rng, candidates, weights, n):
    """``n`` of ``candidates`` drawn without replacement with probabilities ∝ ``weights`` (Efraimidis-Spirakis keys).

    Draws one uniform number per candidate even when all are taken, so the stream of ``rng``
    does not depend on ``n``.
    """
    keys = np.log(weights) - np.log(-np.log(rng.random(len(candidates))))
    return candidates[np.argpartition(-keys, n - 1)[:n]] if n < len(candidates) else candidates


@register_checkpoint_hooks
class SpeakerBalancedBatchSampler(torch.utils.data.Sampler):
    """Batch sampler yielding ``P`` distinct speakers x ``K`` utterances per batch.

    Epoch construction, deterministic given ``(seed, epoch)``:

    1. every speaker's utterances are shuffled and cut into chunks of ``K``; an
       incomplete last chunk is completed with other (distinct) utterances of the
       same speaker; a speaker with fewer than ``K`` utterances gives one chunk of all
       its utterances plus draws with replacement (such speakers are counted in
       :attr:`num_undersized_speakers` and logged once);
    2. chunks are dealt into a FIXED number of global batches
       ``B = max(ceil(total_chunks / (P * W)), max_chunks_per_speaker)`` (``W`` the world
       size), each batch taking one chunk from up to ``P * W`` distinct speakers drawn
       at random, weighted by their remaining chunks (a speaker that would otherwise
       run out of batches is always taken); every chunk is used exactly once;
    3. batches that end up with fewer than ``P * W`` speakers are completed with extra
       random chunks of speakers absent from that batch.

    So every utterance is visited at least once per epoch and some (of speakers with
    many utterances, or padding) more than once. Rank ``r`` takes speakers
    ``[r P, (r + 1) P)`` of every global batch: ranks see disjoint speakers at each
    step and the same number of batches.

    Arguments
    ---------
    labels : sequence
        Speaker label of every dataset index (hashable values, or a 1-D tensor / array).
        For a ``DynamicItemDataset``::

            with dataset.output_keys_as(["spk_id"]):
                labels = [item["spk_id"] for item in dataset]
    speakers_per_batch : int
        ``P``, distinct speakers per batch (per rank).
    utterances_per_speaker : int
        ``K``, utterances per speaker in a batch (>= 2 for contrastive positives).
    seed : int
        Base seed; the epoch's order depends only on ``(seed, epoch)``.
    rank, world_size : int, optional
        Explicit data-parallel partition. ``None`` (default) means one process sees
        the whole sequence (also what SpeechBrain's ``DistributedSamplerWrapper``
        expects).
    speaker_groups : dict or callable, optional
        Speaker label -> group (any hashable), or a callable with no argument that returns
        such a mapping (YAML's ``!name:``, so that the table can be written by data
        preparation after the hparams are loaded). Every label must have a group.
        ``None`` (default) or ``grouped_share`` 0: the batches are exactly those without groups.
    grouped_share : float
        With ``speaker_groups``, the probability that a batch is grouped: its speakers
        are drawn from one group (chosen with probability ∝ the group's chunks still to
        deal), topped up from the other groups when that group has too few speakers
        left. Step 2 below is otherwise unchanged: every chunk is still used exactly once.

    Attributes
    ----------
    num_undersized_speakers : int
        Speakers with fewer than ``K`` utterances (sampled with replacement).
    epoch : int
        Current epoch (set by :meth:`set_epoch`).
    n_groups, grouped_share
        Number of speaker groups among the training speakers (0 without ``speaker_groups``)
        and the share of grouped batches (0.0 without).

    Example
    -------
    >>> labels = ["a", "a", "a", "b", "b", "c", "c", "c", "c"]
    >>> sampler = SpeakerBalancedBatchSampler(labels, speakers_per_batch=2, utterances_per_speaker=2)
    >>> sampler.set_epoch(1)
    >>> len(sampler)
    3
    >>> batches = list(sampler)
    >>> all(len(b) == 4 and len({labels[i] for i in b}) == 2 for b in batches)
    True
    >>> sorted(set(i for b in batches for i in b)) == list(range(len(labels)))
    True
    """

    def __init__(self, labels, speakers_per_batch, utterances_per_speaker, seed=563375142, rank=None,
                 world_size=None, speaker_groups=None, grouped_share=1.0):
        super().__init__()
        # tensors / arrays -> Python scalars (0-dim tensors would hash by identity)
        labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        if len(labels) == 0:
            raise ValueError("SpeakerBalancedBatchSampler: empty label list (no utterances to sample)")
        p, k = int(speakers_per_batch), int(utterances_per_speaker)
        if p < 1 or k < 1:
            raise ValueError(f"speakers_per_batch and utterances_per_speaker must be >= 1, got P={p}, K={k}")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        world_size = 1 if world_size is None else int(world_size)
        rank = 0 if rank is None else int(rank)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        groups = OrderedDict()
        for index, label in enumerate(labels):
            groups.setdefault(label, []).append(index)
        n_spk, n_utt = len(groups), len(labels)
        if p * world_size > n_spk or p * k > n_utt:
            raise ValueError(
                f"SpeakerBalancedBatchSampler: a batch needs P={p} distinct speakers x K={k} utterances"
                f" (x world_size={world_size} ranks) but the data has {n_spk} speakers and {n_utt} utterances"
            )
        if k < 2:
            logger.warning("utterances_per_speaker=%d: batches contain no positive pairs", k)
        self.speakers_per_batch, self.utterances_per_speaker = p, k
        self.rank, self.world_size = rank, world_size
        self.seed, self.epoch = int(seed), 0
        self._speakers = list(groups)
        self._utterances = [np.asarray(v, dtype=np.int64) for v in groups.values()]
        sizes = np.array([len(v) for v in self._utterances])
        self._chunks_per_speaker = np.maximum(1, -(-sizes // k))
        self.num_undersized_speakers = int((sizes < k).sum())
        if self.num_undersized_speakers:
            logger.warning(
                "SpeakerBalancedBatchSampler: %d of %d speakers have fewer than K=%d utterances; "
                "their batches repeat utterances (sampled with replacement)",
                self.num_undersized_speakers, n_spk, k,
            )
        self._num_batches = int(max(math.ceil(self._chunks_per_speaker.sum() / (p * world_size)),
                                    self._chunks_per_speaker.max()))
        self._group_of, self.n_groups, self.grouped_share = self._speaker_groups(speaker_groups, grouped_share)
        self._iterated = False  # iterated since the last set_epoch / load
        self._warned_epoch = False

    def _speaker_groups(self, speaker_groups, grouped_share):
        """The group index of every speaker (in ``self._speakers`` order), the number of groups and the share."""
        if speaker_groups is None:
            return None, 0, 0.0
        if callable(speaker_groups):
            speaker_groups = speaker_groups()
        share = float(grouped_share)
        if not 0.0 <= share <= 1.0:
            raise SpeakerGroupError(f"grouped_share must be in [0, 1], got {grouped_share!r}")
        missing = [spk for spk in self._speakers if spk not in speaker_groups]
        if missing:
            raise SpeakerGroupError(
                f"speaker_groups has no group for {len(missing)} of the {len(self._speakers)} training speakers "
                f"(first: {', '.join(map(repr, missing[:5]))})"
            )
        names = sorted({speaker_groups[spk] for spk in self._speakers}, key=str)
        index = {name: i for i, name in enumerate(names)}
        # share 0: checked, but no draw per batch either, so the batches are those without groups
        group_of = np.array([index[speaker_groups[spk]] for spk in self._speakers]) if share > 0 else None
        return group_of, len(names), share

    def _grouped_pick(self, rng, free, remaining, n_take):
        """``n_take`` free speakers, as many as it has from one group drawn ∝ its chunks left, the rest from others."""
        groups = self._group_of[free]
        weight = np.bincount(groups, weights=remaining[free], minlength=self.n_groups)
        group = rng.choice(self.n_groups, p=weight / weight.sum())
        inside, outside = free[groups == group], free[groups != group]
        if len(inside) >= n_take:
            return _weighted_pick(rng, inside, remaining[inside], n_take)
        return np.concatenate([inside, _weighted_pick(rng, outside, remaining[outside], n_take - len(inside))])

    def __len__(self):
        """Number of batches per epoch (the same on every rank and every epoch)."""
        return self._num_batches

    def set_epoch(self, epoch):
        """Select the epoch whose (reproducible) order the next ``__iter__`` yields.

        Example
        -------
        >>> s = SpeakerBalancedBatchSampler([0, 0, 1, 1], 2, 2, seed=3)
        >>> s.set_epoch(5); s.epoch
        5
        """
        self.epoch = int(epoch)
        self._iterated = False

    def _chunk(self, rng, utts):
        k = self.utterances_per_speaker
        if len(utts) >= k:
            return rng.choice(utts, size=k, replace=False)
        return np.concatenate([rng.permutation(utts), rng.choice(utts, size=k - len(utts), replace=True)])

    def epoch_batches(self, epoch=None):
        """Return this rank's batches of ``epoch`` (default: the current one) as an array.

        Arguments
        ---------
        epoch : int, optional
            Epoch to build; the result depends only on ``(seed, epoch)``.

        Returns
        -------
        numpy.ndarray
            ``[len(self), P * K]`` dataset indices, speaker-major within a batch.

        Example
        -------
        >>> s = SpeakerBalancedBatchSampler([0, 0, 1, 1, 2, 2], 3, 2, seed=7)
        >>> s.epoch_batches(epoch=2).shape
        (1, 6)
        """
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch & 0xFFFFFFFF, 0x5B5])
        k, pw = self.utterances_per_speaker, self.speakers_per_batch * self.world_size
        n_spk, n_batches = len(self._utterances), self._num_batches
        # 1. per-speaker shuffled chunks of K
        chunks = []
        for utts, n_chunks in zip(self._utterances, self._chunks_per_speaker):
            if len(utts) < k:
                chunks.append(self._chunk(rng, utts)[None])
                continue
            perm = rng.permutation(utts)
            pad = n_chunks * k - len(utts)
            if pad:  # complete the last chunk with distinct utterances not already in it
                others = perm[: (n_chunks - 1) * k]
                perm = np.concatenate([perm, rng.choice(others, size=pad, replace=False)])
            chunks.append(perm.reshape(n_chunks, k))
        remaining = self._chunks_per_speaker.astype(np.int64).copy()
        out = np.empty((n_batches, pw, k), dtype=np.int64)
        all_speakers = np.arange(n_spk)
        # 2. deal one chunk per selected speaker into each batch
        for b in range(n_batches):
            batches_left = n_batches - b
            active = np.flatnonzero(remaining > 0)
            forced = active[remaining[active] >= batches_left]
            free = active[remaining[active] < batches_left]
            n_take = min(pw, len(active)) - len(forced)
            if n_take > 0:
                # no draw for the grouping without groups: the batches stay those of a sampler without them
                if self._group_of is not None and rng.random() < self.grouped_share:
                    picked = self._grouped_pick(rng, free, remaining, n_take)
                else:
                    picked = _weighted_pick(rng, free, remaining[free], n_take)
                chosen = np.concatenate([forced, picked])
            else:
                chosen = forced
            rows = [chunks[s][len(chunks[s]) - remaining[s]] for s in chosen]
            remaining[chosen] -= 1
            # 3. pad with fresh chunks of speakers absent from this batch
            n_pad = pw - len(chosen)
            if n_pad > 0:
                absent = np.setdiff1d(all_speakers, chosen, assume_unique=True)
                extra = rng.choice(absent, size=n_pad, replace=False)
                rows += [self._chunk(rng, self._utterances[s]) for s in extra]
            out[b] = np.stack(rows)[rng.permutation(pw)]
        assert not remaining.any()
        p = self.speakers_per_batch
        return out[:, self.rank * p:(self.rank + 1) * p].reshape(n_batches, p * k)

    def __iter__(self):
        """Yield lists of dataset indices, one batch at a time."""
        if self._iterated:
            if not self._warned_epoch:
                logger.warning(
                    "SpeakerBalancedBatchSampler iterated again without set_epoch(); advancing the epoch "
                    "by one (set brain.train_sampler = this sampler so that Brain calls set_epoch)"
                )
                self._warned_epoch = True
            self.epoch += 1
        self._iterated = True
        for batch in self.epoch_batches():
            yield batch.tolist()

    @mark_as_saver
    def _save(self, path):
        state = {
            "seed": self.seed,
            "epoch": self.epoch,
            "iterated": self._iterated,
            "speakers_per_batch": self.speakers_per_batch,
            "utterances_per_speaker": self.utterances_per_speaker,
            "num_batches": self._num_batches,
            "n_groups": self.n_groups,
            "grouped_share": self.grouped_share,
        }
        with open(path, "w", encoding="utf-8") as fo:
            json.dump(state, fo)

    @mark_as_loader
    def _load(self, path, end_of_epoch):
        with open(path, encoding="utf-8") as fi:
            state = json.load(fi)
        current = {
            "speakers_per_batch": self.speakers_per_batch,
            "utterances_per_speaker": self.utterances_per_speaker,
            "num_batches": self._num_batches,
            "n_groups": self.n_groups,
            "grouped_share": self.grouped_share,
        }
        absent = {"n_groups": 0, "grouped_share": 0.0}  # a checkpoint written before groups existed
        for key, value in current.items():
            if state.get(key, absent.get(key)) != value:
                logger.warning("SpeakerBalancedBatchSampler checkpoint has %s=%s, this sampler %s",
                               key, state.get(key), value)
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        # After an end-of-epoch checkpoint the saved epoch is finished: the next
        # __iter__ without set_epoch() moves on; mid-epoch, it replays the saved epoch.
        self._iterated = bool(end_of_epoch and state.get("iterated", True))
