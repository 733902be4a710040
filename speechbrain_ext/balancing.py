"""Combining two training objectives: fixed weights or MGDA-UB (methods.md A.3).

Both balancers share one interface, used by the Brain::

    total_loss, stats = balancer({"cls": loss_cls, "con": loss_con}, shared=embeddings)

where ``shared`` is the batch of embeddings both heads consume and ``stats`` is a
dict of floats to log.

- :class:`FixedWeights`: ``total = sum_k w_k L_k``.
- :class:`MGDABalancer`: the multiple-gradient-descent "upper bound" variant of
  Sener & Koltun (NeurIPS 2018). The two gradients are taken with respect to
  ``shared`` only, so balancing costs two small autograd calls through the heads,
  never a second backward pass through the encoder.

Mixed precision: the terms are combined in float32 (float16/bfloat16 terms are upcast;
float64 stays float64), so the total is float32 (:mod:`speechbrain_ext.precision`).
"""

import torch

from speechbrain_ext import distributed
from speechbrain_ext.precision import upcast

_NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def _alpha_from_products(g11, g12, g22):
    """Closed-form min-norm coefficient from the three dot products (float64 scalars).

    ``alpha = clip((g2 - g1).g2 / ||g1 - g2||^2, 0, 1)`` with ``(g2 - g1).g2 = g22 - g12``
    and ``||g1 - g2||^2 = g11 + g22 - 2 g12``; 0.5 when the difference vanishes.
    """
    den = g11 + g22 - 2.0 * g12
    if not den > 0:  # g1 == g2 (or rounding made the difference vanish)
        return torch.full_like(den, 0.5)
    return ((g22 - g12) / den).clamp(0.0, 1.0)


def min_norm_coefficient(g1, g2):
    """Return the ``alpha`` in [0, 1] minimising ``||alpha g1 + (1 - alpha) g2||``.

    Closed form of methods.md A.3: ``alpha = clip((g2 - g1).g2 / ||g1 - g2||^2, 0, 1)``,
    and ``alpha = 0.5`` when ``g1 == g2`` (``||g1 - g2||^2 == 0``). Inputs of any shape
    are flattened; the products are accumulated in float64.

    Arguments
    ---------
    g1, g2 : torch.Tensor
        Two gradients of the same number of elements.

    Returns
    -------
    torch.Tensor
        0-dim float64 tensor.

    Example
    -------
    >>> float(min_norm_coefficient(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])))
    0.8
    >>> float(min_norm_coefficient(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])))
    0.5
    >>> float(min_norm_coefficient(torch.tensor([1.0]), torch.tensor([3.0])))  # g1 is smaller
    1.0
    """
    a = g1.detach().reshape(-1).double()
    b = g2.detach().reshape(-1).double()
    if a.shape != b.shape:
        raise ValueError(f"gradients differ in size: {a.numel()} vs {b.numel()}")
    return _alpha_from_products(a @ a, a @ b, b @ b)


class FixedWeights(torch.nn.Module):
    """Weighted sum of named losses with constant weights.

    Arguments
    ---------
    weights : dict
        ``{loss_name: weight}``; the losses passed at call time must have exactly
        these names.

    Example
    -------
    >>> balancer = FixedWeights({"cls": 1.0, "con": 0.5})
    >>> total, stats = balancer({"cls": torch.tensor(2.0), "con": torch.tensor(4.0)})
    >>> float(total), stats
    (4.0, {'w_cls': 1.0, 'w_con': 0.5})
    """

    def __init__(self, weights):
        super().__init__()
        if not weights:
            raise ValueError("FixedWeights needs at least one loss weight")
        self.weights = {str(k): float(v) for k, v in dict(weights).items()}

    def forward(self, losses, shared=None):
        """Return ``(sum_k w_k L_k, {"w_<name>": w_k})``; ``shared`` is unused.

        Arguments
        ---------
        losses : dict
            ``{name: scalar tensor}`` with exactly the names given at construction.
        shared : torch.Tensor, optional
            Ignored (accepted for interface compatibility with :class:`MGDABalancer`).

        Returns
        -------
        tuple
            The total loss and a dict of floats.

        Example
        -------
        >>> FixedWeights({"a": 2.0})({"a": torch.tensor(1.5)})[0]
        tensor(3.)
        """
        del shared
        missing = sorted(set(self.weights) - set(losses))
        extra = sorted(set(losses) - set(self.weights))
        if missing or extra:
            raise KeyError(
                f"FixedWeights: loss names {sorted(losses)} do not match the weights "
                f"{sorted(self.weights)} (missing: {missing}, unexpected: {extra})"
            )
        total = sum(w * upcast(losses[name]) for name, w in self.weights.items())
        return total, {f"w_{name}": w for name, w in self.weights.items()}


class MGDABalancer(torch.nn.Module):
    """MGDA-UB weighting of exactly two losses (methods.md A.3).

    ``g_k = dL_k / d shared`` (flattened, optionally normalised), ``alpha`` the
    min-norm coefficient (:func:`min_norm_coefficient`), and the returned loss is
    ``alpha * L_first + (1 - alpha) * L_second`` (dict order) with ``alpha`` detached.

    The gradients are taken with ``torch.autograd.grad(L_k, shared, retain_graph=True)``:
    autograd only runs the nodes between the loss and ``shared`` (the heads), never
    the encoder below it. Under ``torch.distributed`` (initialised, world size > 1)
    the three dot products ``g1.g1, g1.g2, g2.g2`` are summed over ranks before
    ``alpha`` is formed, so every rank uses the same ``alpha`` (that of the global
    batch, for normalisation 'none' and 'loss').

    Mixed precision: under autocast ``shared`` and its gradients are float16/bfloat16;
    the products are accumulated in float64 and the total is float32. Under fp16 the
    gradients are those of the unscaled losses (SpeechBrain's ``GradScaler`` scales
    only the final backward): ``alpha`` is invariant to a common scale of both, and
    only components below float16's normal range (6.1e-5) lose digits.

    Arguments
    ---------
    normalization : str
        Gradient normalisation before ``alpha`` is formed, as in Sener & Koltun's
        ``gradient_normalizers``: ``'none'``; ``'l2'`` divides ``g_k`` by ``||g_k||``;
        ``'loss'`` by ``L_k``; ``'loss+'`` by ``L_k * ||g_k||``. Under
        ``torch.distributed`` the norms and losses are the local ones.
    eps : float
        Lower bound of every normaliser (avoids division by zero).

    Example
    -------
    >>> shared = torch.tensor([[1.0, 2.0]], requires_grad=True)
    >>> losses = {"cls": (shared * torch.tensor([1.0, 0.0])).sum(),
    ...           "con": (shared * torch.tensor([0.0, 2.0])).sum()}
    >>> total, stats = MGDABalancer()(losses, shared)
    >>> round(stats["alpha"], 6)  # g1 = (1, 0), g2 = (0, 2)
    0.8
    >>> total.backward(); shared.grad
    tensor([[0.8000, 0.4000]])
    """

    def __init__(self, normalization="none", eps=1e-8):
        super().__init__()
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        self.eps = float(eps)

    def _normalizer(self, grad, loss):
        if self.normalization == "none":
            return 1.0
        value = torch.ones((), dtype=torch.float64, device=grad.device)
        if self.normalization in ("l2", "loss+"):
            value = value * grad.double().norm()
        if self.normalization in ("loss", "loss+"):
            value = value * loss.detach().double()
        return value.clamp_min(self.eps)

    def forward(self, losses, shared):
        """Return ``(alpha L1 + (1 - alpha) L2, {"alpha": alpha})``.

        Arguments
        ---------
        losses : dict
            Exactly two ``{name: scalar tensor}``; ``alpha`` multiplies the first.
        shared : torch.Tensor
            The shared representation (batch of embeddings) both losses depend on;
            must be part of their autograd graph.

        Returns
        -------
        tuple
            The combined loss (its graph still reaches the encoder) and a dict of floats.

        Example
        -------
        >>> z = torch.ones(2, 3, requires_grad=True)
        >>> total, stats = MGDABalancer()({"a": z.sum(), "b": 2 * z.sum()}, z)
        >>> stats  # g1 = 1, g2 = 2: the smaller gradient wins
        {'alpha': 1.0}
        """
        if len(losses) != 2:
            raise ValueError(f"MGDABalancer combines exactly two losses, got {len(losses)}: {list(losses)}")
        if shared is None or not shared.requires_grad:
            raise ValueError("MGDABalancer needs the shared representation (requires_grad=True)")
        (name1, loss1), (name2, loss2) = losses.items()
        grads = []
        for name, loss in ((name1, loss1), (name2, loss2)):
            if not loss.requires_grad:
                raise ValueError(f"loss {name!r} has no autograd graph")
            (grad,) = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            grads.append(torch.zeros_like(shared) if grad is None else grad)
        g1 = grads[0].reshape(-1).double() / self._normalizer(grads[0], loss1)
        g2 = grads[1].reshape(-1).double() / self._normalizer(grads[1], loss2)
        products = torch.stack([g1 @ g1, g1 @ g2, g2 @ g2])
        if distributed.world_size() > 1:
            torch.distributed.all_reduce(products, op=torch.distributed.ReduceOp.SUM)
        alpha = _alpha_from_products(*products).detach()
        loss1, loss2 = upcast(loss1), upcast(loss2)
        total = alpha.to(loss1.dtype) * loss1 + (1.0 - alpha).to(loss2.dtype) * loss2
        return total, {"alpha": float(alpha)}


class GroupedBalancer(torch.nn.Module):
    """Sum named loss terms into weighted groups, then combine the groups with an inner balancer.

    For a balancer that takes a fixed set of losses, e.g. MGDA (two) in a system with
    the emotion terms: ``groups={"cls": {"aam": 1, "aam_parallel": 1, "parallel_cos": λ},
    "con": {"contrastive": 1}}`` balances the classification side of methods.md B.2
    against the contrastive term. Every term must belong to exactly one group.

    Arguments
    ---------
    inner : torch.nn.Module
        Called as ``inner({group: loss}, shared)``, returns ``(loss, stats)``.
    groups : dict
        ``{group: {term: weight}}``.

    Example
    -------
    >>> from speechbrain_ext.balancing import FixedWeights
    >>> b = GroupedBalancer(FixedWeights({"cls": 1.0, "con": 0.5}),
    ...                     {"cls": {"aam": 1.0, "cos": 2.0}, "con": {"sup": 1.0}})
    >>> total, stats = b({"aam": torch.tensor(1.0), "cos": torch.tensor(0.5), "sup": torch.tensor(4.0)})
    >>> float(total), stats["group_cls"], stats["w_con"]
    (4.0, 2.0, 0.5)
    """

    def __init__(self, inner, groups):
        super().__init__()
        self.inner = inner
        self.groups = {str(g): {str(k): float(w) for k, w in dict(terms).items()} for g, terms in dict(groups).items()}
        names = [k for terms in self.groups.values() for k in terms]
        if len(names) != len(set(names)):
            raise ValueError(f"GroupedBalancer: a term belongs to several groups: {self.groups}")
        self.terms = set(names)

    def forward(self, losses, shared=None):
        """Return the inner balancer's ``(loss, stats)`` on the group sums, with ``group_<name>`` stats."""
        missing = sorted(self.terms - set(losses))
        extra = sorted(set(losses) - self.terms)
        if missing or extra:
            raise KeyError(
                f"GroupedBalancer: loss names {sorted(losses)} do not match the groups {self.groups} "
                f"(missing: {missing}, unexpected: {extra})"
            )
        grouped = {g: sum(w * upcast(losses[k]) for k, w in terms.items()) for g, terms in self.groups.items()}
        total, stats = self.inner(grouped, shared)
        return total, {**stats, **{f"group_{g}": float(v.detach()) for g, v in grouped.items()}}
