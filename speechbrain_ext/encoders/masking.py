"""Time masks and masked statistics shared by the encoders and padding-invariant extraction.

Every helper is trace-safe: positions come from a cumulative sum over the tensor's
own time axis (not from a Python ``int``), so an ONNX or TorchScript graph keeps the
batch and time axes symbolic. Relative lengths follow ``ECAPA_TDNN``'s convention:
frame ``t`` of a sequence of ``T`` frames is real when ``t < length * T``.
"""

import torch
from torch.nn import functional as F

__all__ = ["downsample_mask", "masked_mean", "masked_mean_std", "reflect_pad", "time_mask", "valid_frames"]


def time_mask(x, lengths):
    """Float mask ``[B, T]`` of the real frames of ``x`` (time on the last axis).

    Arguments
    ---------
    x : torch.Tensor
        ``[B, ..., T]``; only its batch size, time axis, dtype and device are used.
    lengths : torch.Tensor
        ``[B]`` relative lengths in (0, 1].

    Returns
    -------
    torch.Tensor
        ``[B, T]`` in ``x``'s dtype: 1 for ``t < lengths * T``, else 0.

    Example
    -------
    >>> time_mask(torch.zeros(2, 3, 4), torch.tensor([1.0, 0.5]))
    tensor([[1., 1., 1., 1.],
            [1., 1., 0., 0.]])
    """
    # float32 positions: bfloat16 counts exactly only up to 256 frames
    steps = torch.ones_like(x.flatten(0, -2)[0], dtype=torch.float32)
    pos = torch.cumsum(steps, dim=0) - 1
    total = pos[-1:] + 1
    mask = pos.unsqueeze(0) < lengths.to(torch.float32).unsqueeze(1) * total
    return mask.to(x.dtype)


def valid_frames(mask):
    """Number of real frames per sequence, ``[B]`` (same dtype as ``mask``).

    Example
    -------
    >>> valid_frames(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    tensor([2., 1.])
    """
    return mask.sum(dim=-1)


def downsample_mask(mask):
    """The mask after a stride-2 convolution with ``(kernel - 1) / 2`` zero padding.

    Such a convolution turns ``n`` frames into ``ceil(n / 2)``, and output frame ``j``
    is real exactly when input frame ``2 j`` is: keep every second column.

    Example
    -------
    >>> downsample_mask(torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]]))
    tensor([[1., 1., 0.]])
    """
    return mask[:, ::2]


def _broadcast(mask, x):
    """``mask [B, T]`` viewed as ``[B, 1, ..., 1, T]`` for ``x [B, ..., T]``."""
    for _ in range(x.dim() - 2):
        mask = mask.unsqueeze(1)
    return mask


def masked_mean(x, mask):
    """Mean over the real frames of ``x`` (time on the last axis).

    Example
    -------
    >>> masked_mean(torch.tensor([[[1.0, 3.0, 100.0]]]), torch.tensor([[1.0, 1.0, 0.0]]))
    tensor([[2.]])
    """
    m = _broadcast(mask, x)
    return (x * m).sum(dim=-1) / m.sum(dim=-1)


def masked_mean_std(x, mask, unbiased=True, eps=0.0):
    """Mean and standard deviation over the real frames of ``x`` (time on the last axis).

    Arguments
    ---------
    x : torch.Tensor
        ``[B, ..., T]``.
    mask : torch.Tensor
        ``[B, T]`` float mask (:func:`time_mask`).
    unbiased : bool
        Divide the squared deviations by ``n - 1`` (``torch.var``'s default) instead of
        ``n``; a one-frame sequence divides by 1 instead of 0.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    mean, std : torch.Tensor
        ``[B, ...]`` each.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 2.0, 3.0, 100.0]]])
    >>> mean, std = masked_mean_std(x, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    >>> mean, std
    (tensor([[2.]]), tensor([[1.]]))
    """
    m = _broadcast(mask, x)
    count = m.sum(dim=-1)
    mean = (x * m).sum(dim=-1) / count
    denominator = (count - 1).clamp(min=1) if unbiased else count
    var = ((x - mean.unsqueeze(-1)) * m).square().sum(dim=-1) / denominator
    return mean, torch.sqrt(var + eps)


def reflect_pad(x, counts, pad):
    """Pad ``x [B, C, T]`` by ``pad`` frames each side, reflecting each sequence at its own ends.

    Frame ``n_b + k`` of sequence ``b`` (``k < pad``) becomes frame ``n_b - 2 - k``: what
    ``F.pad(..., mode="reflect")`` gives the sequence alone, whatever padding follows
    it in the batch. Frames further out repeat the edge (they reach no real output of
    a convolution whose receptive field is ``2 * pad + 1``).

    Arguments
    ---------
    x : torch.Tensor
        ``[B, C, T]``.
    counts : torch.Tensor
        ``[B]`` real frames per sequence (floats holding integers, :func:`valid_frames`).
    pad : int
        Frames to add on each side.

    Returns
    -------
    torch.Tensor
        ``[B, C, T + 2 * pad]``.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 2.0, 3.0, 0.0, 0.0]]])
    >>> reflect_pad(x, torch.tensor([3.0]), 2)
    tensor([[[3., 2., 1., 2., 3., 2., 1., 1., 1.]]])
    >>> bool((reflect_pad(x[..., :3], torch.tensor([3.0]), 2) == F.pad(x[..., :3], (2, 2), mode="reflect")).all())
    True
    """
    steps = F.pad(torch.ones_like(x[0, 0], dtype=torch.float32), (pad, pad), value=1.0)
    pos = (torch.cumsum(steps, dim=0) - 1 - pad).unsqueeze(0)  # -pad .. T + pad - 1
    last = (counts.to(torch.float32) - 1).unsqueeze(1)
    index = pos.abs()
    index = torch.where(index > last, 2 * last - index, index).clamp(min=0)
    return x.gather(2, index.long().unsqueeze(1).expand(-1, x.shape[1], -1))
