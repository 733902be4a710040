"""Data-parallel helpers for ``torchrun`` training with SpeechBrain's DDP support.

SpeechBrain 1.1.2 detects a ``torchrun`` launch from the ``RANK`` and ``LOCAL_RANK``
environment variables, ``speechbrain.utils.distributed.ddp_init_group`` (called by
:func:`speechbrain_ext.recipe.main`) opens the process group with
``--distributed_backend`` (``nccl`` by default, ``gloo`` on CPU) and the Brain wraps
every trainable module in ``DistributedDataParallel``, which AVERAGES the parameter
gradients over the ``W`` ranks after each backward pass.

Contrastive negatives from every rank
-------------------------------------
:func:`gather_with_grad` concatenates a tensor over the ranks (rank order) and keeps
the autograd graph of this rank's slice only: the other slices are constants. The
contrastive loss of :class:`~speechbrain_ext.brains.ContrastiveSpeakerBrain` with
``contrastive_gather: True`` is then computed **all-vs-all on the gathered batch on
every rank**, so every rank evaluates the same function ``L`` of the same ``N``
embeddings: the value is exactly the single-process loss on the concatenated batch,
and the gradient autograd gives rank ``r`` for its own slice is exactly
``dL/dz_r`` (the contributions of the anchors of the other ranks to ``dL/dz_r`` are
computed here too, since this rank also evaluates those anchors). No gradient has to
be communicated, so the backward pass (and MGDA's extra ``autograd.grad`` call) runs
no collective. DDP then averages ``sum_r dL/dz_r dz_r/dtheta / W``; multiplying the
local gradient by ``W`` first (:func:`scale_grad`) makes the average equal to the
single-process ``dL/dtheta``. The per-rank AAM term, a mean over the local batch, is
already ``W`` times the single-process gradient on the local slice, so MGDA's
summed dot products are ``W^2`` times the single-process ones and ``alpha`` is the
single-process value. ``tests/unit/test_distributed.py`` checks both to 1e-6. The
cost is an ``N x N`` similarity matrix per rank (``N = W P K``), negligible next to
the encoder. (Batch normalisation inside the encoder still sees per-rank statistics
unless it is synchronised, see below.)

Batch normalisation under DDP on CPU
------------------------------------
SpeechBrain converts every ``BatchNorm`` of a DDP module to ``SyncBatchNorm``, which
torch implements for accelerators only: a CPU (``gloo``) run fails at its first
training step. :func:`configure_sync_batchnorm` (called from the recipes' YAML,
``sync_batchnorm: auto``) keeps the conversion where it can run and skips it for
modules on the CPU (per-rank statistics there).
"""

import logging

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "any_rank",
    "configure_sync_batchnorm",
    "gather_batch",
    "gather_tensors",
    "gather_with_grad",
    "is_distributed",
    "rank",
    "scale_grad",
    "world_size",
]


def is_distributed():
    """True inside an initialised process group of more than one rank.

    Example
    -------
    >>> is_distributed()
    False
    """
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def world_size():
    """Number of ranks (1 without an initialised process group).

    Example
    -------
    >>> world_size()
    1
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank():
    """Rank of this process (0 without an initialised process group).

    Example
    -------
    >>> rank()
    0
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def any_rank(flag, device="cpu"):
    """True when ``flag`` is true on ANY rank (``flag`` itself without a process group).

    Every rank must call it at the same point: e.g. before a training step, so that a
    batch whose audio was all unreadable on one rank makes EVERY rank skip that step
    instead of leaving the others waiting for its gradients.

    Example
    -------
    >>> any_rank(True), any_rank(False)
    (True, False)
    """
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(value)  # SUM over the ranks
    return bool(value.item() > 0)


def _gather_sizes(tensor):
    """First-dimension sizes of ``tensor`` on every rank (a list of ints, rank order)."""
    size = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    torch.distributed.all_gather(sizes, size)
    return [int(s) for s in sizes]


def gather_tensors(tensor):
    """Concatenate ``tensor`` over the ranks along dim 0, in rank order, without gradient.

    The ranks may hold different numbers of rows (padded to the largest for the
    collective, then trimmed); the other dimensions must agree. Without a process
    group of more than one rank, ``tensor`` is returned unchanged.

    Arguments
    ---------
    tensor : torch.Tensor
        ``[n_r, ...]`` on this rank.

    Returns
    -------
    torch.Tensor
        ``[sum_r n_r, ...]``, detached.

    Example
    -------
    >>> gather_tensors(torch.arange(3)).tolist()
    [0, 1, 2]
    """
    if not is_distributed():
        return tensor.detach()
    return _gather(tensor.detach())[0]


def _gather(tensor):
    """All-gather with variable first dimension; returns (gathered, start, stop of this rank)."""
    sizes = _gather_sizes(tensor)
    largest = max(sizes)
    padded = tensor
    if tensor.shape[0] < largest:
        pad = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([tensor, pad])
    parts = [torch.empty_like(padded) for _ in sizes]
    torch.distributed.all_gather(parts, padded.contiguous())
    gathered = torch.cat([part[:n] for part, n in zip(parts, sizes)])
    start = sum(sizes[: rank()])
    return gathered, start, start + sizes[rank()]


def gather_with_grad(tensor):
    """Concatenate ``tensor`` over the ranks (dim 0, rank order); gradients reach this rank's slice.

    The all-gathered copy of this rank's rows is replaced by ``tensor`` itself, so
    autograd flows from the result into ``tensor``; the other ranks' rows are
    constants. When every rank evaluates the same function of the gathered result
    (all-vs-all), the gradient each rank obtains for its own rows is the exact
    gradient of that function (see the module docstring; DDP's averaging is
    compensated with :func:`scale_grad`). Without a process group of more than one
    rank, ``tensor`` is returned unchanged.

    Arguments
    ---------
    tensor : torch.Tensor
        ``[n_r, ...]`` on this rank (ranks may differ in ``n_r``).

    Returns
    -------
    torch.Tensor
        ``[sum_r n_r, ...]``.

    Example
    -------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> y = gather_with_grad(x)
    >>> y.shape, y is x
    (torch.Size([2, 3]), True)
    """
    if not is_distributed():
        return tensor
    gathered, start, stop = _gather(tensor.detach())
    return torch.cat([gathered[:start], tensor, gathered[stop:]])


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``factor``."""

    @staticmethod
    def forward(ctx, tensor, factor):
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def scale_grad(tensor, factor):
    """Return ``tensor`` unchanged, with the gradient that flows back through it multiplied by ``factor``.

    Used to undo DDP's averaging (``factor = W``) for a loss that every rank
    evaluates whole on the gathered batch.

    Example
    -------
    >>> x = torch.ones(2, requires_grad=True)
    >>> scale_grad(x, 3.0).sum().backward()
    >>> x.grad.tolist()
    [3.0, 3.0]
    """
    if factor == 1:
        return tensor
    return _ScaleGrad.apply(tensor, float(factor))


def gather_batch(embeddings, logits, labels):
    """The batch of every rank for a loss evaluated all-vs-all on each rank (DDP).

    Embeddings are gathered with :func:`gather_with_grad` after :func:`scale_grad`
    by the world size ``W``:
    every rank computes the same loss on the same gathered batch, autograd gives
    each rank the exact gradient for its own rows, and the factor ``W`` cancels
    DDP's gradient average. Labels and (detached) logits are plain all-gathers.
    Without a process group of more than one rank, the inputs come back unchanged.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[n, D]`` or ``[n, 1, D]`` of this rank.
    logits : torch.Tensor or None
        ``[n, C]`` or ``[n, 1, C]`` cosine logits (for class-aware attention).
    labels : torch.Tensor
        ``[n]`` class indices.

    Returns
    -------
    tuple
        ``(embeddings, logits, labels)`` of all ranks, in rank order.

    Example
    -------
    >>> e, l, y = gather_batch(torch.ones(2, 1, 3), None, torch.tensor([0, 1]))
    >>> e.shape, l, y.tolist()
    (torch.Size([2, 1, 3]), None, [0, 1])
    """
    factor = world_size()
    embeddings = gather_with_grad(scale_grad(embeddings, factor))
    if logits is not None:
        logits = gather_tensors(logits)
    return embeddings, logits, gather_tensors(labels.reshape(-1))


# ----------------------------------------------------------------------------- batch norm

_SYNC_MODES = ("auto", True, False)


class _SyncBatchNormPolicy:
    """Stand-in for ``torch.nn.SyncBatchNorm`` in ``speechbrain.core`` (only ``convert_sync_batchnorm`` is used)."""

    mode = "auto"
    _warned = False

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Convert like torch, unless the policy says no (``False``, or ``auto`` and a CPU module)."""
        if cls.mode is False:
            return module
        if cls.mode == "auto":
            devices = {p.device.type for p in module.parameters()}
            if devices <= {"cpu"}:
                if not cls._warned:
                    logger.warning(
                        "sync_batchnorm=auto: modules on the CPU keep per-rank BatchNorm statistics "
                        "(torch's SyncBatchNorm runs on accelerators only)"
                    )
                    cls._warned = True
                return module
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)


def configure_sync_batchnorm(mode="auto"):
    """Choose how SpeechBrain's DDP wrapping treats ``BatchNorm`` layers (process-wide).

    ``True``: SpeechBrain's behaviour (``SyncBatchNorm`` everywhere; fails on CPU);
    ``False``: keep plain ``BatchNorm`` (per-rank statistics); ``"auto"``: convert
    modules whose parameters live on an accelerator, keep CPU modules as they are.
    It replaces the ``SyncBatchNorm`` name that ``speechbrain.core`` uses when it
    wraps modules in ``DistributedDataParallel`` and has no effect on single-process
    runs. The recipes call it from their YAML (``sync_batchnorm`` key).

    Arguments
    ---------
    mode : str or bool
        ``"auto"``, ``True`` or ``False``.

    Returns
    -------
    str or bool
        The mode set.

    Example
    -------
    >>> configure_sync_batchnorm("auto")
    'auto'
    >>> bn = torch.nn.Sequential(torch.nn.BatchNorm1d(3))
    >>> import speechbrain.core
    >>> type(speechbrain.core.SyncBatchNorm.convert_sync_batchnorm(bn)[0]).__name__  # on the CPU: kept
    'BatchNorm1d'
    """
    if mode not in _SYNC_MODES:
        raise ValueError(f"sync_batchnorm must be auto, True or False, got {mode!r}")
    from speechbrain_ext import compat  # imports speechbrain.core: only when a recipe configures DDP

    _SyncBatchNormPolicy.mode = mode
    compat.replace_sync_batchnorm(_SyncBatchNormPolicy)
    return mode
