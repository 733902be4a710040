"""CopyPaste: a parallel waveform of the same speaker from two of their utterances (methods.md B.1).

:class:`CopyPaste` joins a crop of the utterance ``x`` and a crop of a partner ``u``
of the same speaker with a short cross-fade; the partner is picked by
:class:`~speechbrain_ext.partners.CopyPastePartners` in the data pipeline
(:func:`~speechbrain_ext.partners.add_parallel_item`).

Units: every length in this module is in SAMPLES; relative lengths follow
SpeechBrain (fraction of the padded length, in ``(0, 1]``).
"""

import math

import numpy as np
import torch

__all__ = ["CopyPaste"]


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
    of the same speaker, see :class:`~speechbrain_ext.partners.CopyPastePartners`):

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
