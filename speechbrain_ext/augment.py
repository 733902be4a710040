"""Data augmentation for emotion-invariant speaker embeddings (methods.md, paper B).

- :class:`CopyPaste`: build a parallel waveform ``x'`` from a crop of the utterance
  ``x`` and a crop of a partner ``u`` of the same speaker, joined with a short
  cross-fade (B.1).
- :class:`CopyPastePartners`: the data-pipeline piece that picks the partner ``u``:
  same speaker, other emotion, with counted fallbacks; deterministic in
  ``(seed, epoch, utterance id)`` so every DataLoader worker and a resumed run
  agree (B.1).
- :class:`EnergyEmotionMask`: mask the ``round(rho * T_valid)`` highest-energy
  frames of each utterance in the features, on the frame grid of SpeechBrain's
  ``Fbank`` (B.3).

Units: every length in this module is in SAMPLES (waveforms) or FRAMES (features);
relative lengths follow SpeechBrain (fraction of the padded length, in ``(0, 1]``).
"""

import csv
import hashlib
import math

import numpy as np
import torch

__all__ = ["PARTNER_KINDS", "SELECTIONS", "CopyPaste", "CopyPastePartners", "EnergyEmotionMask"]

#: Keys of :attr:`CopyPastePartners.counts`, in reporting order.
PARTNER_KINDS = ("other_emotion", "same_emotion_fallback", "speaker_only_fallback", "self_fallback")


def _make_generator(generator):
    """Return a ``torch.Generator`` (or ``None`` for torch's global RNG).

    ``generator`` may be ``None``, an ``int`` seed (a fresh CPU generator seeded with
    it) or a ``torch.Generator`` (used as is, its state advances).

    Example
    -------
    >>> g = _make_generator(3)
    >>> int(torch.randint(0, 1000, (1,), generator=g)) == int(
    ...     torch.randint(0, 1000, (1,), generator=_make_generator(3)))
    True
    >>> _make_generator(None) is None
    True
    """
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)):
        g = torch.Generator()
        g.manual_seed(int(generator))
        return g
    kind = type(generator).__name__
    raise TypeError(f"generator must be None, an int seed or a torch.Generator, not {kind}")


def _valid_samples(lengths, size, batch):
    """Absolute valid lengths ``round(lengths * size)`` (SpeechBrain's convention) as ints.

    Example
    -------
    >>> _valid_samples(torch.tensor([1.0, 0.5]), 10, 2)
    [10, 5]
    >>> _valid_samples(None, 7, 3)
    [7, 7, 7]
    """
    if lengths is None:
        return [size] * batch
    lengths = torch.as_tensor(lengths).reshape(-1).cpu()
    if not lengths.is_floating_point():
        lengths = lengths.float()
    if lengths.numel() != batch:
        raise ValueError(f"expected {batch} relative lengths, got {lengths.numel()}")
    return [int(v) for v in torch.round(lengths * size).clamp(0, size).long()]


class CopyPaste:
    """CopyPaste parallel sample: ``x' = concat(crop(x, r*T), crop(u, (1-r)*T))`` (methods.md B.1).

    For an utterance ``x`` of ``T`` samples and a partner ``u`` (another utterance
    of the same speaker, see :class:`CopyPastePartners`):

    - ``r ~ U[min_ratio, max_ratio]`` is the share of ``x``: ``T_x = round(r * T)``
      samples of ``x`` and ``T_u = T - T_x`` samples of ``u``;
    - each part is a contiguous crop at a uniformly random position of its source;
      a partner shorter than its share is repeated (tiled from its beginning)
      until long enough, then cropped;
    - with ``random_order`` the part of ``x`` comes first or second with
      probability 1/2 (else ``x`` is always first);
    - the seam is a cross-fade of ``crossfade`` samples centred on the seam
      position ``T_first``: the first part is extended by ``crossfade - crossfade // 2``
      samples past the seam, the second starts ``crossfade // 2`` samples before it,
      and the overlap is mixed with a fade-out / fade-in pair (``fade="linear"``:
      weights sum to 1; ``fade="equal_power"``: ``cos``/``sin``, squares sum to 1).
      The cross-fade is shortened to ``min(crossfade, T_x, T_u)`` for tiny parts.
      Outside the cross-fade every output sample is a sample of ``x`` or of ``u``.

    The output has exactly the length of ``wav``.

    Arguments
    ---------
    min_ratio, max_ratio : float
        Bounds of the share ``r`` of ``x`` (methods.md defaults 0.3, 0.7), ``0 <= min <= max <= 1``.
    crossfade : int
        Cross-fade length in SAMPLES (default 160 = 10 ms at 16 kHz); 0 disables it.
    random_order : bool
        Randomise which part comes first (default True).
    fade : str
        ``"linear"`` (default) or ``"equal_power"``.

    Example
    -------
    >>> cp = CopyPaste(min_ratio=0.5, max_ratio=0.5, crossfade=0, random_order=False)
    >>> x = torch.arange(1.0, 9.0)
    >>> u = -torch.arange(1.0, 9.0)
    >>> out = cp(x, u, generator=0)
    >>> out.shape
    torch.Size([8])
    >>> bool((out[:4] > 0).all() and (out[4:] < 0).all())
    True
    >>> cp(torch.zeros(2, 8), torch.ones(2, 5), generator=0).shape
    torch.Size([2, 8])
    """

    def __init__(self, min_ratio=0.3, max_ratio=0.7, crossfade=160, random_order=True, fade="linear"):
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        if int(crossfade) != crossfade or crossfade < 0:
            raise ValueError(f"crossfade is a non-negative number of samples, got {crossfade}")
        if fade not in ("linear", "equal_power"):
            raise ValueError(f"fade must be 'linear' or 'equal_power', got {fade!r}")
        self.min_ratio = float(min_ratio)
        self.max_ratio = float(max_ratio)
        self.crossfade = int(crossfade)
        self.random_order = bool(random_order)
        self.fade = fade

    def __repr__(self):
        """Return the constructor call.

        Example
        -------
        >>> CopyPaste()
        CopyPaste(min_ratio=0.3, max_ratio=0.7, crossfade=160, random_order=True, fade='linear')
        """
        return (
            f"CopyPaste(min_ratio={self.min_ratio}, max_ratio={self.max_ratio}, crossfade={self.crossfade}, "
            f"random_order={self.random_order}, fade={self.fade!r})"
        )

    def fade_weights(self, n, dtype=torch.float32, device=None):
        """Fade-out and fade-in weights of an ``n``-sample cross-fade (sample centres).

        Example
        -------
        >>> out_w, in_w = CopyPaste().fade_weights(4)
        >>> in_w.tolist()
        [0.125, 0.375, 0.625, 0.875]
        >>> (out_w + in_w).tolist()
        [1.0, 1.0, 1.0, 1.0]
        """
        pos = (torch.arange(n, dtype=torch.float64) + 0.5) / max(n, 1)
        if self.fade == "linear":
            fade_in = pos
            fade_out = 1.0 - pos
        else:
            fade_in = torch.sin(0.5 * math.pi * pos)
            fade_out = torch.cos(0.5 * math.pi * pos)
        return fade_out.to(dtype=dtype, device=device), fade_in.to(dtype=dtype, device=device)

    @staticmethod
    def _crop(src, n, generator):
        """A contiguous crop of ``n`` samples at a random position (tiled when ``src`` is shorter)."""
        length = src.shape[0]
        if n == 0:
            return src[:0]
        if length == 0:
            raise ValueError("cannot crop from an empty waveform")
        if length < n:
            return src.repeat(-(-n // length))[:n]
        start = int(torch.randint(0, length - n + 1, (1,), generator=generator))
        return src[start : start + n]

    def paste_one(self, wav, partner_wav, generator=None):
        """CopyPaste of one 1-D waveform; returns ``(wav', info)``.

        ``info`` holds ``ratio`` (drawn ``r``), ``x_first`` (bool), ``seam``
        (sample index of the seam centre) and ``crossfade`` (samples actually used).

        Example
        -------
        >>> cp = CopyPaste(crossfade=4)
        >>> out, info = cp.paste_one(torch.ones(100), -torch.ones(30), generator=1)
        >>> out.shape, sorted(info)
        (torch.Size([100]), ['crossfade', 'ratio', 'seam', 'x_first'])
        >>> 0.3 <= info["ratio"] <= 0.7
        True
        """
        if wav.dim() != 1 or partner_wav.dim() != 1:
            raise ValueError("paste_one expects 1-D waveforms")
        g = _make_generator(generator)
        total = wav.shape[0]
        ratio = self.min_ratio + (self.max_ratio - self.min_ratio) * float(torch.rand((), generator=g))
        x_first = True
        if self.random_order:
            x_first = bool(torch.rand((), generator=g) < 0.5)
        n_x = round(ratio * total)
        n_u = total - n_x
        n_first, n_second = (n_x, n_u) if x_first else (n_u, n_x)
        fade_n = min(self.crossfade, n_first, n_second)
        left = fade_n // 2
        right = fade_n - left
        # Draw the x crop before the u crop whatever the order, for reproducibility.
        if x_first:
            part_a = self._crop(wav, n_first + right, g)
            part_b = self._crop(partner_wav, n_second + left, g)
        else:
            part_b = self._crop(wav, n_second + left, g)
            part_a = self._crop(partner_wav, n_first + right, g)
        part_b = part_b.to(dtype=wav.dtype, device=wav.device)
        part_a = part_a.to(dtype=wav.dtype, device=wav.device)
        pieces = [part_a[: n_first - left]]
        if fade_n:
            fade_out, fade_in = self.fade_weights(fade_n, dtype=wav.dtype, device=wav.device)
            pieces.append(part_a[n_first - left :] * fade_out + part_b[:fade_n] * fade_in)
        pieces.append(part_b[fade_n:])
        out = torch.cat(pieces)
        info = {"ratio": ratio, "x_first": x_first, "seam": n_first, "crossfade": fade_n}
        return out, info

    def __call__(
        self, wav, partner_wav, generator=None, lengths=None, partner_lengths=None, return_info=False
    ):
        """Return the CopyPaste of ``wav`` with ``partner_wav``, same shape as ``wav``.

        Arguments
        ---------
        wav : torch.Tensor
            The utterance ``x``: ``[S]`` (one item, e.g. inside a data pipeline) or ``[B, S]``.
        partner_wav : torch.Tensor or sequence of torch.Tensor
            The partner ``u``: ``[S_u]`` for a 1-D ``wav``; ``[B, S_u]`` or ``B`` 1-D tensors
            for a batch. Its length is free (shorter partners are repeat-padded).
        generator : None, int or torch.Generator
            Source of randomness: torch's global RNG, a seed, or a generator (advanced in place).
            Same seed and inputs give the same output.
        lengths, partner_lengths : torch.Tensor, optional
            Batch mode only: SpeechBrain relative lengths of ``wav`` / ``partner_wav``. The
            CopyPaste of row ``b`` is built on its first ``round(lengths[b] * S)`` samples
            and the padding after them is left at zero.
        return_info : bool
            Also return the :meth:`paste_one` info (a dict, or a list of dicts for a batch).

        Returns
        -------
        torch.Tensor (and info when ``return_info``)

        Example
        -------
        >>> cp = CopyPaste()
        >>> x, u = torch.randn(2, 16000), torch.randn(2, 8000)
        >>> a = cp(x, u, generator=0)
        >>> a.shape, torch.equal(a, cp(x, u, generator=0))
        (torch.Size([2, 16000]), True)
        >>> out, info = cp(x[0], u[0], generator=torch.Generator().manual_seed(0), return_info=True)
        >>> out.shape
        torch.Size([16000])
        """
        g = _make_generator(generator)
        if wav.dim() == 1:
            if not torch.is_tensor(partner_wav) or partner_wav.dim() != 1:
                raise ValueError("a 1-D wav needs a 1-D partner_wav")
            out, info = self.paste_one(wav, partner_wav, g)
            return (out, info) if return_info else out
        if wav.dim() != 2:
            raise ValueError(f"wav must be [S] or [B, S], got {tuple(wav.shape)}")
        batch, size = wav.shape
        if torch.is_tensor(partner_wav):
            if partner_wav.dim() != 2 or partner_wav.shape[0] != batch:
                raise ValueError(f"partner_wav must be [{batch}, S_u], got {tuple(partner_wav.shape)}")
            p_valid = _valid_samples(partner_lengths, partner_wav.shape[1], batch)
            partners = [partner_wav[b, : p_valid[b]] for b in range(batch)]
        else:
            partners = list(partner_wav)
            if len(partners) != batch:
                raise ValueError(f"expected {batch} partner waveforms, got {len(partners)}")
        x_valid = _valid_samples(lengths, size, batch)
        out = torch.zeros_like(wav)
        infos = []
        for b in range(batch):
            row, info = self.paste_one(wav[b, : x_valid[b]], partners[b], g)
            out[b, : x_valid[b]] = row
            infos.append(info)
        return (out, infos) if return_info else out


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
    >>> partners.reset_counts(); partners.counts["other_emotion"]
    0
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
        self.epoch = 0
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

    @classmethod
    def from_csv(
        cls,
        path,
        seed=0,
        require_emotion=True,
        id_column="ID",
        speaker_column="spk_id",
        emotion_column="emotion",
    ):
        """Build from a manifest CSV (``ID, duration, wav, spk_id[, emotion, ...]``).

        Example
        -------
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "train.csv")
        >>> with open(p, "w") as f:
        ...     _ = f.write("ID,duration,wav,spk_id\\nu1,1.0,x.wav,s1\\nu2,1.0,y.wav,s1\\n")
        >>> CopyPastePartners.from_csv(p, require_emotion=False).pick("u1")
        'u2'
        >>> try:
        ...     CopyPastePartners.from_csv(p)
        ... except ValueError as err:
        ...     print("'emotion'" in str(err) and "train.csv" in str(err))
        True
        """
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
        for col in (id_column, speaker_column):
            if col not in columns:
                raise ValueError(f"column {col!r} missing from {path}")
        emotions = [r[emotion_column] for r in rows] if emotion_column in columns else None
        return cls(
            [r[id_column] for r in rows],
            [r[speaker_column] for r in rows],
            emotions,
            seed=seed,
            require_emotion=require_emotion,
            manifest=str(path),
        )

    def __len__(self):
        """Number of utterances.

        Example
        -------
        >>> len(CopyPastePartners(["a"], ["s"], ["e"]))
        1
        """
        return len(self.ids)

    def set_epoch(self, epoch):
        """Set the epoch used by :meth:`pick` when its ``epoch`` is ``None``.

        Call it before the epoch's DataLoader is created (SpeechBrain re-creates
        non-persistent workers every epoch, so they copy the new value).

        Example
        -------
        >>> p = CopyPastePartners(["a"], ["s"], ["e"]); p.set_epoch(3); p.epoch
        3
        """
        self.epoch = int(epoch)

    def _draw(self, utt_id, epoch):
        """64-bit draw from ``(seed, epoch, id)``, identical in every process."""
        key = f"{self.seed}\x1f{epoch}\x1f{utt_id}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")

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

    def pick_index(self, index_or_id, epoch=None, return_kind=False, count=True):
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
            epoch = self.epoch if epoch is None else int(epoch)
            h = self._draw(self.ids[i], epoch)
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

    def pick(self, index_or_id, epoch=None, return_kind=False, count=True):
        """Id of the CopyPaste partner of an utterance.

        Arguments
        ---------
        index_or_id : int or str
            Manifest row index (``int``) or utterance id (``str``).
        epoch : int, optional
            Epoch of the draw (default: :attr:`epoch`, set by :meth:`set_epoch`).
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

    def reset_counts(self):
        """Zero :attr:`counts` (call at the start of each epoch).

        Example
        -------
        >>> p = CopyPastePartners(["a"], ["s"], ["e"]); _ = p.pick("a"); p.reset_counts()
        >>> sum(p.counts.values())
        0
        """
        self.counts = dict.fromkeys(PARTNER_KINDS, 0)

    def stats(self):
        """Counts of this process and their fractions, for per-epoch logging.

        Returns a dict with ``total``, each kind's count, and ``frac_<kind>``.

        Example
        -------
        >>> p = CopyPastePartners(["a", "b"], ["s", "t"], ["e", "e"])
        >>> _ = p.pick("a"); _ = p.pick("b")
        >>> s = p.stats(); s["total"], s["self_fallback"], s["frac_self_fallback"]
        (2, 2, 1.0)
        """
        total = sum(self.counts.values())
        out = {"total": total, **self.counts}
        for kind in PARTNER_KINDS:
            out[f"frac_{kind}"] = self.counts[kind] / total if total else 0.0
        return out


#: Which frames :class:`EnergyEmotionMask` hides.
SELECTIONS = ("highest", "lowest", "random")


class EnergyEmotionMask(torch.nn.Module):
    """Emotion-aware masking: mask the highest-energy frames in the features (methods.md B.3).

    Frame energy is the RMS of the waveform over rectangular frames of
    ``frame_length`` samples every ``hop_length`` samples, CENTRED like
    ``speechbrain.processing.features.STFT`` (``center=True``, ``pad_mode="constant"``:
    ``frame_length // 2`` zeros on each side), so frame ``t`` is centred on sample
    ``t * hop_length`` and an ``S``-sample waveform gives ``T = 1 + S // hop_length``
    frames, exactly the ``T`` of ``speechbrain.lobes.features.Fbank`` with its defaults
    (``n_fft=400``, 25 ms / 10 ms at 16 kHz). Samples past a waveform's valid length
    are zeroed before the energy is computed.

    Per utterance ``b``: ``T_valid = round(lengths[b] * T)`` (SpeechBrain's
    ``InputNormalization`` convention) and ``k = round(mask_ratio * T_valid)``
    (``torch.round``: halves to even). The ``k`` valid frames of highest energy are
    masked; ties go to the lower frame index (stable sort), so silence gives a
    deterministic mask. Padding frames are never counted or masked. With
    ``contiguous=True`` one span of ``k`` valid frames with the largest summed frame
    RMS is masked instead (first such span on ties).

    ``select`` picks which frames: ``"highest"`` (the paper's energy-based choice),
    or, as controls for an ablation, ``"lowest"`` (the ``k`` lowest-energy frames)
    and ``"random"`` (``k`` valid frames drawn uniformly, or one uniformly placed span
    with ``contiguous=True``) from torch's global RNG, which a recipe seeds and
    checkpoints. The number of masked frames is the same in every case, so the
    controls separate the effect of WHICH frames are hidden from that of hiding any.

    Masked frames are filled with the utterance's mean feature vector over its
    unmasked valid frames (``fill="mean"``; over all valid frames when none stays
    unmasked) or with zeros (``fill="zero"``).

    The module masks whenever it is called (also in ``eval()`` mode): the Brain
    decides when to call it (training only) and on which inputs; :attr:`apply_to`
    (``"both"``: original and parallel inputs, or ``"parallel"``: the CopyPaste
    inputs only) records that choice for the Brain to read.

    Arguments
    ---------
    mask_ratio : float
        ``rho`` in ``[0, 1]`` (default 0.2); 0 masks nothing.
    frame_length : int
        Frame (window) length in SAMPLES (default 400 = 25 ms at 16 kHz; use Fbank's ``n_fft``).
    hop_length : int
        Hop in SAMPLES (default 160 = 10 ms at 16 kHz).
    fill : str
        ``"mean"`` (default) or ``"zero"``.
    contiguous : bool
        Mask one contiguous span instead of the top-k frames (default False).
    apply_to : str
        ``"both"`` (default) or ``"parallel"``; read by the Brain, not used here.
    select : str
        ``"highest"`` (default; methods.md B.3), ``"lowest"`` or ``"random"`` (controls).
    pad_mode : str
        Padding of the centred frames (default ``"constant"`` as SpeechBrain's STFT;
        ``"reflect"`` needs waveforms longer than ``frame_length // 2``).

    Example
    -------
    >>> em = EnergyEmotionMask(mask_ratio=0.25)
    >>> wavs = torch.zeros(1, 1120)           # 8 frames
    >>> wavs[0, 240] = 10.0                   # frame t spans samples [160 t - 200, 160 t + 200)
    >>> feats = torch.tensor([1.0, 9.0, 9.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(1, 8, 1)
    >>> masked, mask = em(feats, wavs, torch.ones(1))  # k = round(0.25 * 8) = 2
    >>> mask.int().tolist()
    [[0, 1, 1, 0, 0, 0, 0, 0]]
    >>> masked[0, :, 0].tolist()
    [1.0, 3.5, 3.5, 2.0, 3.0, 4.0, 5.0, 6.0]
    """

    def __init__(
        self,
        mask_ratio=0.2,
        frame_length=400,
        hop_length=160,
        fill="mean",
        contiguous=False,
        apply_to="both",
        pad_mode="constant",
        select="highest",
    ):
        super().__init__()
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        if frame_length < 1 or hop_length < 1:
            raise ValueError("frame_length and hop_length are positive numbers of samples")
        if fill not in ("mean", "zero"):
            raise ValueError(f"fill must be 'mean' or 'zero', got {fill!r}")
        if apply_to not in ("both", "parallel"):
            raise ValueError(f"apply_to must be 'both' or 'parallel', got {apply_to!r}")
        if select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
        self.select = select
        self.mask_ratio = float(mask_ratio)
        self.frame_length = int(frame_length)
        self.hop_length = int(hop_length)
        self.fill = fill
        self.contiguous = bool(contiguous)
        self.apply_to = apply_to
        self.pad_mode = pad_mode

    def extra_repr(self):
        """Hyper-parameters shown by ``repr``.

        Example
        -------
        >>> EnergyEmotionMask(contiguous=True).extra_repr()
        "mask_ratio=0.2, frame_length=400, hop_length=160, fill='mean', contiguous=True, apply_to='both'"
        """
        return (
            f"mask_ratio={self.mask_ratio}, frame_length={self.frame_length}, hop_length={self.hop_length}, "
            f"fill={self.fill!r}, contiguous={self.contiguous}, apply_to={self.apply_to!r}"
            + ("" if self.select == "highest" else f", select={self.select!r}")
        )

    def num_frames(self, num_samples):
        """Frames of an ``num_samples``-sample waveform on the centred grid.

        Example
        -------
        >>> EnergyEmotionMask().num_frames(48000)
        301
        """
        pad = self.frame_length // 2
        return (num_samples + 2 * pad - self.frame_length) // self.hop_length + 1

    def frame_energy(self, wavs, lengths=None):
        """Frame RMS energy ``[B, T]`` of ``wavs [B, S]`` (samples past the valid length zeroed).

        Example
        -------
        >>> e = EnergyEmotionMask().frame_energy(torch.ones(2, 16000))
        >>> e.shape, round(float(e[0, 50]), 4), round(float(e[0, 0]), 4)
        (torch.Size([2, 101]), 1.0, 0.7071)
        """
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be [B, S], got {tuple(wavs.shape)}")
        size = wavs.shape[1]
        wavs = wavs.detach()
        if lengths is not None:
            n_valid = torch.round(lengths.to(wavs.device) * size).clamp(0, size)
            keep = torch.arange(size, device=wavs.device)[None, :] < n_valid[:, None]
            wavs = torch.where(keep, wavs, torch.zeros((), dtype=wavs.dtype, device=wavs.device))
        pad = self.frame_length // 2
        padded = torch.nn.functional.pad(wavs[:, None, :], (pad, pad), mode=self.pad_mode)[:, 0]
        frames = padded.unfold(1, self.frame_length, self.hop_length)
        return frames.pow(2).mean(dim=-1).sqrt()

    def _priority(self, wavs, lengths, batch, n_frames):
        """``[B, T]`` float64: frames with a larger value are masked first (energy, -energy or uniform draws)."""
        if self.select == "random":  # the control needs no energy
            return torch.rand(batch, n_frames, dtype=torch.float64, device=wavs.device)
        energy = self.frame_energy(wavs, lengths).double()
        return -energy if self.select == "lowest" else energy

    @staticmethod
    def _best_span_start(priority, valid, t_valid, k):
        """Start of the ``k``-frame span of valid frames with the largest summed priority (first on ties)."""
        n_frames = priority.shape[1]
        frame_idx = torch.arange(n_frames, device=priority.device)
        priority = torch.where(valid, priority, torch.zeros((), dtype=priority.dtype, device=priority.device))
        csum = torch.nn.functional.pad(priority.cumsum(dim=1), (1, 0))
        ends = (frame_idx[None, :] + k[:, None]).clamp(max=n_frames)
        span = csum.gather(1, ends) - csum[:, :n_frames]
        allowed = frame_idx[None, :] + k[:, None] <= t_valid[:, None]
        span = torch.where(allowed, span, torch.full((), -math.inf, dtype=span.dtype, device=priority.device))
        return span.argmax(dim=1)

    def forward(self, feats, wavs, lengths=None):
        """Mask the highest-energy valid frames.

        Arguments
        ---------
        feats : torch.Tensor
            Features ``[B, T, F]`` computed from ``wavs`` (e.g. Fbank, before or after normalisation).
        wavs : torch.Tensor
            Waveforms ``[B, S]``; ``1 + S // hop_length`` must equal ``T``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]`` in ``(0, 1]`` (default: all 1).

        Returns
        -------
        masked_feats : torch.Tensor
            ``[B, T, F]``, masked frames replaced by the fill.
        mask : torch.Tensor
            ``[B, T]`` bool, True on masked frames.

        Example
        -------
        >>> em = EnergyEmotionMask(mask_ratio=0.5, fill="zero")
        >>> out, mask = em(torch.ones(2, 101, 3), torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
        >>> mask.sum(dim=1).tolist()  # T_valid = 101, 50 (round(50.5) = 50); k = round(0.5 * T_valid)
        [50, 25]
        """
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, T, F], got {tuple(feats.shape)}")
        batch, n_frames, _ = feats.shape
        if wavs.shape[0] != batch:
            raise ValueError(f"feats has {batch} utterances but wavs has {wavs.shape[0]}")
        device = feats.device
        if lengths is None:
            lengths = torch.ones(batch, device=device)
        # Keep the caller's dtype (float32 in SpeechBrain) so round(lengths * T) matches
        # InputNormalization bit for bit, also at .5 boundaries.
        lengths = torch.as_tensor(lengths, device=device).reshape(-1)
        if not lengths.is_floating_point():
            lengths = lengths.float()
        if lengths.numel() != batch:
            raise ValueError(f"expected {batch} relative lengths, got {lengths.numel()}")
        expected = self.num_frames(wavs.shape[1])
        if expected != n_frames:
            raise ValueError(
                f"feats have {n_frames} frames but wavs of {wavs.shape[1]} samples give {expected} frames "
                f"(frame_length={self.frame_length}, hop_length={self.hop_length}, centred)"
            )
        if self.mask_ratio == 0.0:
            return feats, torch.zeros(batch, n_frames, dtype=torch.bool, device=device)
        wavs = wavs.to(device)
        frame_idx = torch.arange(n_frames, device=device)
        t_valid = torch.round(lengths * n_frames).clamp(0, n_frames).long()
        k = torch.minimum(torch.round(self.mask_ratio * t_valid.double()).long(), t_valid)
        valid = frame_idx[None, :] < t_valid[:, None]
        if self.contiguous:
            if self.select == "random":
                start = (torch.rand(batch, dtype=torch.float64, device=device) * (t_valid - k + 1)).long()
                start = torch.minimum(start, (t_valid - k).clamp_min(0))
            else:
                start = self._best_span_start(self._priority(wavs, lengths, batch, n_frames), valid, t_valid, k)
            mask = (frame_idx[None, :] >= start[:, None]) & (frame_idx[None, :] < (start + k)[:, None])
        else:
            priority = self._priority(wavs, lengths, batch, n_frames)
            score = torch.where(valid, priority, torch.full((), -math.inf, dtype=priority.dtype, device=device))
            order = torch.sort(score, dim=1, descending=True, stable=True).indices
            ranks = torch.empty_like(order).scatter_(1, order, frame_idx.expand(batch, n_frames).contiguous())
            mask = ranks < k[:, None]
        mask = mask & valid
        if self.fill == "zero":
            fill = torch.zeros_like(feats[:, :1, :])
        else:
            keep = (valid & ~mask).to(feats.dtype)[..., None]
            n_keep = keep.sum(dim=1)
            all_valid = valid.to(feats.dtype)[..., None]
            fallback = (feats * all_valid).sum(dim=1) / all_valid.sum(dim=1).clamp_min(1.0)
            mean = (feats * keep).sum(dim=1) / n_keep.clamp_min(1.0)
            fill = torch.where(n_keep > 0, mean, fallback)[:, None, :]
        masked = torch.where(mask[..., None], fill, feats)
        return masked, mask
