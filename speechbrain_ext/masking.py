"""Energy-based emotion-aware masking of the features (methods.md B.3).

:class:`EnergyEmotionMask` masks the ``round(rho * T_valid)`` highest-energy frames
of each utterance in the features, on the frame grid of SpeechBrain's ``Fbank``;
``select`` gives the ablation controls (lowest-energy or random frames).

Units: lengths are in SAMPLES (waveforms) or FRAMES (features); relative lengths
follow SpeechBrain (fraction of the padded length, in ``(0, 1]``).
"""

import math

import torch

from speechbrain_ext.precision import upcast

__all__ = ["SELECTIONS", "EnergyEmotionMask"]

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

    Mixed precision: frame energies and the fill mean are computed in float32 from
    float16/bfloat16 waveforms or features (no matrix product, so autocast changes
    nothing); the masked features keep the dtype of ``feats``.

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
        """Frame RMS energy ``[B, T]`` of ``wavs [B, S]``, past the valid length zeroed (float32 for half inputs).

        Example
        -------
        >>> e = EnergyEmotionMask().frame_energy(torch.ones(2, 16000))
        >>> e.shape, round(float(e[0, 50]), 4), round(float(e[0, 0]), 4)
        (torch.Size([2, 101]), 1.0, 0.7071)
        """
        if wavs.dim() != 2:
            raise ValueError(f"wavs must be [B, S], got {tuple(wavs.shape)}")
        size = wavs.shape[1]
        wavs = upcast(wavs.detach())
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
            full = upcast(feats)
            keep = (valid & ~mask).to(full.dtype)[..., None]
            n_keep = keep.sum(dim=1)
            all_valid = valid.to(full.dtype)[..., None]
            fallback = (full * all_valid).sum(dim=1) / all_valid.sum(dim=1).clamp_min(1.0)
            mean = (full * keep).sum(dim=1) / n_keep.clamp_min(1.0)
            fill = torch.where(n_keep > 0, mean, fallback)[:, None, :].to(feats.dtype)
        masked = torch.where(mask[..., None], fill, feats)
        return masked, mask
