"""Mixed precision (``--precision bf16`` / ``fp16``): the dtype the project's losses compute in.

SpeechBrain's ``--precision`` runs ``compute_forward`` and ``compute_objectives`` under
``torch.autocast`` (bf16 on CPU or CUDA, fp16 on CUDA only), so the encoder hands the
losses float16 or bfloat16 embeddings and logits, and autocast would run their matrix
products in that dtype too. The project's losses, balancers and masking follow one
policy, the one autocast applies to torch's own losses (``log_softmax``,
``cross_entropy``... run in float32):

- they compute in float32 whatever the input dtype (:func:`compute_dtype`; float64
  stays float64), with autocast off inside (:func:`full_precision`); the custom
  autograd function of AM-SupCon declares this with ``torch.amp.custom_fwd(...,
  cast_inputs=torch.float32)`` and ``custom_bwd`` (:func:`float32_function`);
- a loss returns a float32 scalar; gradients reach the inputs in the inputs' own
  dtype (the cast to float32 is part of the autograd graph);
- class-aware attention returns float32 weights; the masked features of
  ``EnergyEmotionMask`` keep the features' dtype (they feed the encoder).

The reason is range, not only precision: with ``tau = 0.07`` the AM-SupCon logits
reach ``+-1/0.07 = +-14.3`` and their exponentials ``e^14.3 = 1.6e6``, beyond
float16's largest value (65504); bfloat16 has the range but 8 significant bits.
"""

import contextlib
import functools

import torch

__all__ = ["compute_dtype", "float32_function", "full_precision", "upcast"]


def compute_dtype(dtype):
    """The dtype a computation on ``dtype`` inputs runs in: float32, or float64 for float64.

    Example
    -------
    >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float16), compute_dtype(torch.float64)
    (torch.float32, torch.float32, torch.float64)
    """
    return torch.promote_types(dtype, torch.float32)


def upcast(tensor):
    """``tensor`` in :func:`compute_dtype` (a differentiable cast; the same tensor when already there).

    Example
    -------
    >>> x = torch.ones(2, dtype=torch.bfloat16, requires_grad=True)
    >>> upcast(x).sum().backward(); upcast(x).dtype, x.grad.dtype
    (torch.float32, torch.bfloat16)
    """
    return tensor.to(compute_dtype(tensor.dtype))


def full_precision(device):
    """Context in which autocast is off on ``device``'s type (ops run in their inputs' dtype).

    Example
    -------
    >>> with torch.autocast("cpu", dtype=torch.bfloat16), full_precision(torch.device("cpu")):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


@functools.cache
def float32_function(function, device_type):
    """The autograd ``function`` declared float32-only under autocast on ``device_type``.

    A subclass whose ``forward`` is wrapped in ``torch.amp.custom_fwd(device_type=...,
    cast_inputs=torch.float32)`` (under autocast, floating inputs other than float64 are
    cast to float32 and autocast is off inside) and whose ``backward`` is wrapped in
    ``torch.amp.custom_bwd`` (it runs with the forward's autocast state: off), so the
    closed-form backward never meets autocast either, e.g. when MGDA takes gradients
    inside SpeechBrain's autocast region. ``custom_fwd`` names one device type, so one
    subclass is made (once) per device type; pick it with the input's ``device.type``.

    Example
    -------
    >>> class Square(torch.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x @ x
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return grad @ x.T + x.T @ grad
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     float32_function(Square, "cpu").apply(torch.ones(2, 2)).dtype
    torch.float32
    >>> float32_function(Square, "cpu") is float32_function(Square, "cpu")
    True
    """
    forward = torch.amp.custom_fwd(function.forward, device_type=device_type, cast_inputs=torch.float32)
    backward = torch.amp.custom_bwd(function.backward, device_type=device_type)
    namespace = {"forward": staticmethod(forward), "backward": staticmethod(backward), "__doc__": function.__doc__}
    return type(f"{function.__name__}_{device_type}", (function,), namespace)
