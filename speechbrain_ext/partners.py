"""CopyPaste partners: which utterance of the same speaker each training utterance is joined with.

:class:`CopyPastePartners` picks the partner ``u`` of an utterance ``x``: same speaker,
other emotion, with counted fallbacks; deterministic in ``(seed, epoch, utterance id)``
so every DataLoader worker and a resumed run agree (methods.md B.1).
:func:`add_parallel_item` is the data-pipeline step built on it: partner pick →
partner crop → :class:`~speechbrain_ext.copypaste.CopyPaste` → ``parallel_sig``, plus
the kind of the pick (``partner_kind``), computed in the DataLoader workers.
:class:`SelfPartners` is the equal-compute control's picker: every utterance is its own
partner and is read again as a second, independent crop.
"""

import math

import numpy as np
import torch

from speechbrain_ext import data
from speechbrain_ext.seeding import keyed_draw

__all__ = [
    "ALL_PARTNER_KINDS",
    "PARTNER_KINDS",
    "SELF_CROP",
    "UNREADABLE_PARTNER",
    "CopyPastePartners",
    "SelfPartners",
    "add_parallel_item",
    "copypaste_seed",
    "make_partners",
]

#: Keys of :attr:`CopyPastePartners.counts`, in reporting order.
PARTNER_KINDS = ("other_emotion", "same_emotion_fallback", "speaker_only_fallback", "self_fallback")
#: ``partner_kind`` of an example whose partner audio could not be read: ``x`` itself was used.
UNREADABLE_PARTNER = "unreadable_partner_fallback"
#: ``partner_kind`` of :class:`SelfPartners`: the utterance itself, by design (not a fallback).
SELF_CROP = "self_crop"
#: Every value ``partner_kind`` can take, in reporting order.
ALL_PARTNER_KINDS = (*PARTNER_KINDS, SELF_CROP, UNREADABLE_PARTNER)


class CopyPastePartners:
    """Pick the CopyPaste partner of each training utterance (methods.md B.1).

    For an utterance ``x`` of speaker ``s`` and emotion ``e`` :meth:`pick` returns,
    by priority (the "kind" of the pick):

    1. ``"other_emotion"``: a uniformly random utterance of ``s`` with emotion ``e' != e``;
    2. ``"same_emotion_fallback"``: when every utterance of ``s`` has emotion ``e``, a
       uniformly random OTHER utterance of ``s``;
    3. ``"self_fallback"``: when ``s`` has a single utterance, ``x`` itself.

    Without an emotion column (``emotions=None``), ``require_emotion=True`` raises a
    ``ValueError`` naming the column ``emotion`` and the manifest; with
    ``require_emotion=False`` every speaker is treated as one-emotion and picks are of
    kind ``"speaker_only_fallback"`` (a random other utterance of ``s``) or
    ``"self_fallback"``. Missing individual emotion values (``None``, NaN, ``""``)
    always raise.

    Randomness: the choice depends only on ``(seed, epoch, utterance id)`` through a
    keyed BLAKE2 hash (not Python's salted ``hash``), so the same call gives the same
    partner in any DataLoader worker, any process and after a resume, and a new epoch
    gives a new draw. Lookup tables (per-speaker blocks of utterances sorted by
    emotion) are built once with numpy; :meth:`pick` is O(1).

    Counting: each :meth:`pick` adds one to ``counts[kind]`` of THIS object. With
    ``num_workers > 0`` the DataLoader picks in copies of the object, so the main
    process sees no counts; use :attr:`kind_totals` (per-utterance kinds over the
    manifest, i.e. the counts of an epoch that visits each utterance once) or return
    the kind from the pipeline (``pick(..., return_kind=True)``) and count it in the Brain.

    Arguments
    ---------
    ids : sequence of str
        Utterance ids (unique), e.g. the ``ID`` column of ``train.csv``.
    speakers : sequence
        Speaker label of each utterance (``spk_id``).
    emotions : sequence or None
        Emotion label of each utterance (``emotion`` column), or ``None`` when absent.
    seed : int
        Seed of the partner draws.
    require_emotion : bool
        Whether a missing emotion column is an error (default True).
    manifest : str
        Name of the manifest, used in error messages.

    Example
    -------
    >>> partners = CopyPastePartners(
    ...     ids=["a1", "a2", "a3", "b1", "b2", "c1"],
    ...     speakers=["A", "A", "A", "B", "B", "C"],
    ...     emotions=["happy", "sad", "happy", "neutral", "neutral", "angry"],
    ...     seed=0)
    >>> partners.pick("a1")
    'a2'
    >>> partners.pick("b1"), partners.pick(5)
    ('b2', 'c1')
    >>> partners.counts
    {'other_emotion': 1, 'same_emotion_fallback': 1, 'speaker_only_fallback': 0, 'self_fallback': 1}
    """

    def __init__(self, ids, speakers, emotions=None, seed=0, require_emotion=True, manifest="<manifest>"):
        ids = [str(i) for i in ids]
        speakers = list(speakers)
        if len(speakers) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(speakers)} speaker labels")
        self.ids = ids
        self.index_of = {utt: i for i, utt in enumerate(ids)}
        if len(self.index_of) != len(ids):
            seen, dup = set(), None
            for utt in ids:
                if utt in seen:
                    dup = utt
                    break
                seen.add(utt)
            raise ValueError(f"duplicate utterance id {dup!r} in {manifest}")
        self.seed = int(seed)
        self.manifest = manifest
        self.has_emotion = emotions is not None
        if emotions is None:
            if require_emotion:
                raise ValueError(
                    f"CopyPaste partners need an 'emotion' column, which {manifest} lacks; add it to the "
                    "manifest, or pass require_emotion=False to fall back to speaker-only partners"
                )
            emotions = [""] * len(ids)
        else:
            emotions = list(emotions)
            if len(emotions) != len(ids):
                raise ValueError(f"{len(ids)} ids but {len(emotions)} emotion labels in {manifest}")
            missing = [ids[i] for i, e in enumerate(emotions) if self._is_missing(e)]
            if missing:
                raise ValueError(
                    f"{len(missing)} utterances of {manifest} have no value in column 'emotion' "
                    f"(first: {missing[:3]})"
                )
        n = len(ids)
        spk_code = self._codes(speakers)
        emo_code = self._codes(emotions)
        idx = np.arange(n, dtype=np.int64)
        # Global order: by speaker, then emotion, then manifest order.
        order = np.lexsort((idx, emo_code, spk_code))
        spk_sorted = spk_code[order]
        emo_sorted = emo_code[order]
        new_spk = np.ones(n, dtype=bool)
        new_spk[1:] = spk_sorted[1:] != spk_sorted[:-1]
        new_pair = new_spk.copy()
        new_pair[1:] |= emo_sorted[1:] != emo_sorted[:-1]
        spk_block = np.cumsum(new_spk) - 1
        pair_block = np.cumsum(new_pair) - 1
        spk_starts = np.flatnonzero(new_spk)
        pair_starts = np.flatnonzero(new_pair)
        spk_counts = np.diff(np.append(spk_starts, n))
        pair_counts = np.diff(np.append(pair_starts, n))
        pos = np.empty(n, dtype=np.int64)
        pos[order] = idx  # position of each utterance in the global order
        self._order = order
        self._spk_start = spk_starts[spk_block][pos]
        self._spk_count = spk_counts[spk_block][pos]
        self._emo_rel_start = (pair_starts[pair_block] - spk_starts[spk_block])[pos]
        self._emo_count = pair_counts[pair_block][pos]
        self._self_rel = pos - self._spk_start
        kinds = np.where(
            self._spk_count == 1,
            3,
            np.where(self._emo_count < self._spk_count, 0, 1 if self.has_emotion else 2),
        )
        self._kind = kinds
        self.kind_totals = {k: int((kinds == i).sum()) for i, k in enumerate(PARTNER_KINDS)}
        self.counts = dict.fromkeys(PARTNER_KINDS, 0)

    @staticmethod
    def _is_missing(value):
        """True for ``None``, NaN and empty / blank strings.

        Example
        -------
        >>> [CopyPastePartners._is_missing(v) for v in (None, float("nan"), " ", "sad")]
        [True, True, True, False]
        """
        if value is None:
            return True
        if isinstance(value, float) and math.isnan(value):
            return True
        return isinstance(value, str) and not value.strip()

    @staticmethod
    def _codes(labels):
        """Integer codes of labels in order of first appearance.

        Example
        -------
        >>> CopyPastePartners._codes(["b", "a", "b"]).tolist()
        [0, 1, 0]
        """
        table = {}
        return np.array([table.setdefault(label, len(table)) for label in labels], dtype=np.int64)

    def __len__(self):
        """Number of utterances.

        Example
        -------
        >>> len(CopyPastePartners(["a"], ["s"], ["e"]))
        1
        """
        return len(self.ids)


    def _index(self, index_or_id):
        if isinstance(index_or_id, (int, np.integer)) and not isinstance(index_or_id, bool):
            index = int(index_or_id)
            if not 0 <= index < len(self.ids):
                raise IndexError(f"utterance index {index} out of range [0, {len(self.ids)})")
            return index
        try:
            return self.index_of[str(index_or_id)]
        except KeyError:
            raise KeyError(f"unknown utterance id {index_or_id!r} (not in {self.manifest})") from None

    def kind_of(self, index_or_id):
        """The kind of partner an utterance gets (fixed by the manifest, not random).

        Example
        -------
        >>> p = CopyPastePartners(["a", "b"], ["s", "s"], ["x", "x"])
        >>> p.kind_of("a")
        'same_emotion_fallback'
        """
        return PARTNER_KINDS[int(self._kind[self._index(index_or_id)])]

    def pick_index(self, index_or_id, epoch=0, return_kind=False, count=True):
        """Manifest index of the partner of an utterance (index or id); see :meth:`pick`.

        Example
        -------
        >>> p = CopyPastePartners(["a", "b"], ["s", "s"], ["x", "y"])
        >>> p.pick_index(0)
        1
        """
        i = self._index(index_or_id)
        kind = int(self._kind[i])
        if kind == 3:
            partner = i
        else:
            epoch = int(epoch)
            h = keyed_draw(self.seed, epoch, self.ids[i])
            n_spk = int(self._spk_count[i])
            if kind == 0:
                n_emo = int(self._emo_count[i])
                j = h % (n_spk - n_emo)
                if j >= self._emo_rel_start[i]:
                    j += n_emo
            else:
                j = h % (n_spk - 1)
                if j >= self._self_rel[i]:
                    j += 1
            partner = int(self._order[self._spk_start[i] + j])
        if count:
            self.counts[PARTNER_KINDS[kind]] += 1
        return (partner, PARTNER_KINDS[kind]) if return_kind else partner

    def pick(self, index_or_id, epoch=0, return_kind=False, count=True):
        """Id of the CopyPaste partner of an utterance.

        Arguments
        ---------
        index_or_id : int or str
            Manifest row index (``int``) or utterance id (``str``).
        epoch : int
            Epoch of the draw (default 0).
        return_kind : bool
            Also return the kind (one of :data:`PARTNER_KINDS`).
        count : bool
            Add the pick to :attr:`counts` (default True).

        Returns
        -------
        str, or (str, str) with ``return_kind``

        Example
        -------
        >>> p = CopyPastePartners(["a", "b", "c"], ["s", "s", "s"], ["x", "y", "y"], seed=1)
        >>> p.pick("b", epoch=0, return_kind=True)
        ('a', 'other_emotion')
        >>> p.pick("b", epoch=0) == p.pick(1, epoch=0)
        True
        """
        partner, kind = self.pick_index(index_or_id, epoch, return_kind=True, count=count)
        return (self.ids[partner], kind) if return_kind else self.ids[partner]


class SelfPartners:
    """Every utterance is its own CopyPaste partner (kind :data:`SELF_CROP`): the equal-compute control.

    With :func:`add_parallel_item` the partner is read again as a crop of its own (keyed
    ``"<id>><id>"``, so at another position than ``x``'s crop), and with a CopyPaste whose
    share of ``x`` is 0 (``min_ratio = max_ratio = 0``) ``x'`` is that whole second crop:
    two independent crops of each utterance, the same encoder inputs per step as CopyPaste.

    Arguments
    ---------
    ids : sequence of str
        Utterance ids.

    Example
    -------
    >>> p = SelfPartners(["a", "b"])
    >>> p.pick("b", epoch=3, return_kind=True), p.kind_totals[SELF_CROP], len(p)
    (('b', 'self_crop'), 2, 2)
    """

    def __init__(self, ids):
        self.ids = [str(i) for i in ids]
        self.kind_totals = {SELF_CROP: len(self.ids)}
        self.counts = {SELF_CROP: 0}

    def __len__(self):
        """Number of utterances."""
        return len(self.ids)

    def pick(self, index_or_id, epoch=0, return_kind=False, count=True):
        """The utterance itself (the arguments are those of :meth:`CopyPastePartners.pick`)."""
        utt = self.ids[index_or_id] if isinstance(index_or_id, (int, np.integer)) else str(index_or_id)
        if count:
            self.counts[SELF_CROP] += 1
        return (utt, SELF_CROP) if return_kind else utt


def copypaste_seed(seed, epoch, utt_id):
    """Seed of the CopyPaste draw of one utterance, from ``(seed, epoch, id)`` only.

    A keyed BLAKE2 hash (not Python's salted ``hash``), so every DataLoader worker, every
    process and a resumed run draw the same ratio, order and crops.

    Example
    -------
    >>> copypaste_seed(1986, 3, "S0001_000001") == copypaste_seed(1986, 3, "S0001_000001")
    True
    >>> copypaste_seed(1986, 3, "S0001_000001") == copypaste_seed(1986, 4, "S0001_000001")
    False
    >>> 0 <= copypaste_seed(0, 0, "a") < 2**63
    True
    """
    return keyed_draw(seed, epoch, utt_id, "copypaste") & (2**63 - 1)


def make_partners(dataset, seed, require_emotion=True, manifest="<manifest>", partner=None):
    """The partner picker of a loaded training set (columns ``spk_id`` and ``emotion``).

    ``partner=None`` (the method, methods.md B.1): :class:`CopyPastePartners`; without an
    ``emotion`` column, ``require_emotion=True`` raises its ``ValueError`` naming the column
    and the manifest. ``partner="self"``: :class:`SelfPartners` (the equal-compute control).

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s", "emotion": "sad"}, "b": {"spk_id": "s", "emotion": "happy"}})
    >>> make_partners(ds, seed=0).pick("a")
    'b'
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s"}, "b": {"spk_id": "s"}})
    >>> make_partners(ds, seed=0, require_emotion=False).kind_of("a")
    'speaker_only_fallback'
    >>> make_partners(ds, seed=0, partner="self").pick("a")
    'a'
    >>> make_partners(ds, seed=0, partner="other")
    Traceback (most recent call last):
    ...
    ValueError: copypaste_partner must be null (same speaker, other emotion) or 'self', got 'other'
    """
    ids = list(dataset.data_ids)
    if partner == "self":
        return SelfPartners(ids)
    if partner is not None:
        raise ValueError(f"copypaste_partner must be null (same speaker, other emotion) or 'self', got {partner!r}")
    speakers = data.manifest_column(dataset, "spk_id")
    has_emotion = bool(ids) and all("emotion" in dataset.data[i] for i in ids)
    emotions = [dataset.data[i]["emotion"] for i in ids] if has_emotion else None
    return CopyPastePartners(
        ids, speakers, emotions, seed=seed, require_emotion=require_emotion, manifest=str(manifest)
    )


def add_parallel_item(dataset, partners, reader, copypaste, seed):
    """Add the dynamic items ``parallel_sig`` and ``partner_kind`` (computed in the DataLoader workers).

    For utterance ``x`` (item ``sig``, already cropped by ``reader``) in epoch
    ``reader.epoch``: the partner ``u`` from ``partners`` (deterministic in
    ``(seed, epoch, id)``), read with the same ``reader`` (its crop keyed by
    ``"<id>><partner id>"``, so it is not the partner's own crop of the epoch), then
    ``copypaste(x, u)`` seeded with :func:`copypaste_seed`. A ``self_fallback`` partner
    (a speaker with one utterance) is ``x``'s own crop; a :data:`SELF_CROP` partner is read
    as a crop of its own. ``partner_kind`` is the kind of the pick, or
    :data:`UNREADABLE_PARTNER` when ``u`` could not be read and ``x`` itself was used. An
    unreadable ``x`` gives an empty ``parallel_sig`` (the example is dropped by
    :func:`~speechbrain_ext.data.collate_skipping` anyway).

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> from speechbrain_ext.copypaste import CopyPaste
    >>> d = tempfile.mkdtemp(); sf.write(os.path.join(d, "a.wav"), np.ones(800, "float32") * 0.5, 16000)
    >>> ds = DynamicItemDataset({"a": {"wav": os.path.join(d, "a.wav"), "spk_id": "s", "emotion": "sad"},
    ...                          "b": {"wav": os.path.join(d, "missing.wav"), "spk_id": "s", "emotion": "happy"}})
    >>> reader = data.AudioReader(16000, crop_seconds=0.025)
    >>> _ = data.add_audio(ds, reader)
    >>> add_parallel_item(ds, make_partners(ds, 0), reader, CopyPaste(crossfade=0), seed=0)
    >>> ds.set_output_keys(["sig", "parallel_sig", "partner_kind"])
    >>> ex = ds[0]
    >>> ex["parallel_sig"].shape, ex["partner_kind"]
    (torch.Size([400]), 'unreadable_partner_fallback')
    """
    wav_of = {i: dataset.data[i]["wav"] for i in dataset.data_ids}

    def parallel(utt_id, sig):
        epoch = reader.epoch
        partner, kind = partners.pick(utt_id, epoch=epoch, return_kind=True, count=False)
        if sig.numel() == 0:
            yield sig
            yield kind
            return
        if partner == utt_id and kind != SELF_CROP:
            partner_sig = sig
        else:
            partner_sig, issue = reader(wav_of[partner], f"{utt_id}>{partner}")
            if issue.startswith(data.ERROR_PREFIX) or partner_sig.numel() == 0:
                partner_sig, kind = sig, UNREADABLE_PARTNER
        generator = torch.Generator().manual_seed(copypaste_seed(seed, epoch, utt_id))
        yield copypaste(sig, partner_sig, generator=generator)
        yield kind

    dataset.add_dynamic_item(parallel, takes=["id", "sig"], provides=["parallel_sig", "partner_kind"])
