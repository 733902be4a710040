"""Training objectives added by this project, as small composable modules.

- :class:`ParallelCosineLoss`: ``mean(1 - cos(e, e'))`` over parallel pairs
  (Tian, Hu & Xu 2025; methods.md B.2).
- :class:`AngularMarginSupConLoss`: supervised contrastive loss with an additive
  angular margin on positives, optional negative weights (Li, Mak & Meng 2023;
  methods.md A.1).
- :class:`ClassAwareAttention`: negative-pair weights from the classifier's
  true-class probability (methods.md A.2).
- :func:`negative_mask`: the pairs of a batch with different labels (the negatives).
"""

import math
import warnings

import torch

from speechbrain_ext.precision import float32_function, full_precision, upcast


def flatten_embeddings(embeddings):
    """Accept ``[N, D]`` or SpeechBrain's ``[N, 1, D]`` and return ``[N, D]``.

    Example
    -------
    >>> flatten_embeddings(torch.zeros(4, 1, 3)).shape
    torch.Size([4, 3])
    """
    if embeddings.dim() == 3 and embeddings.shape[1] == 1:
        return embeddings[:, 0]
    if embeddings.dim() != 2:
        raise ValueError(f"expected embeddings [N, D] or [N, 1, D], got {tuple(embeddings.shape)}")
    return embeddings


class ParallelCosineLoss(torch.nn.Module):
    """Cosine loss between each embedding and its parallel counterpart.

    ``L = mean_i (1 - cos(e_i, e'_i))`` (methods.md B.2). Zero when every pair points
    the same way, 2 when every pair is opposite. Computed in float32 (autocast off) for
    float16/bfloat16 inputs; the loss is float32 (:mod:`speechbrain_ext.precision`).

    Example
    -------
    >>> loss = ParallelCosineLoss()
    >>> a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> b = torch.tensor([[3.0, 0.0], [0.0, -1.0]])
    >>> float(loss(a, b))
    1.0
    """

    def forward(self, emb_a, emb_b):
        """Return the mean of ``1 - cos`` over pairs; ``[N, D]`` or ``[N, 1, D]`` inputs."""
        emb_a, emb_b = flatten_embeddings(emb_a), flatten_embeddings(emb_b)
        if emb_a.shape != emb_b.shape:
            raise ValueError(
                f"parallel embeddings differ in shape: {tuple(emb_a.shape)} vs {tuple(emb_b.shape)}"
            )
        with full_precision(emb_a.device):
            cos = torch.nn.functional.cosine_similarity(upcast(emb_a), upcast(emb_b), dim=-1, eps=1e-8)
            return (1.0 - cos).mean()


# ---------------------------------------------------------------------------
# Angular-margin supervised contrastive loss (Li, Mak & Meng 2023; methods.md A.1)
# ---------------------------------------------------------------------------

#: Lower clamp of ``1 - cos^2`` inside ``sin(theta) = sqrt(1 - cos^2)``. It keeps the
#: margin's derivative finite at ``cos = +-1`` (duplicated or collapsed embeddings);
#: only values numerically indistinguishable from +-1 in float32 are affected.
SIN_CLAMP = 1e-6


def _angular_margin(cos, margin, easy_margin):
    """Return ``psi(cos)`` and ``d psi / d cos`` of methods.md A.1 (elementwise).

    ``psi = cos(theta + m) = cos*cos(m) - sin(theta)*sin(m)`` with
    ``sin(theta) = sqrt(clamp(1 - cos^2, SIN_CLAMP))`` (no ``acos``), replaced by
    ArcFace's monotone fallback ``cos - m*sin(m)`` where ``theta + m > pi``, i.e. where
    ``cos < cos(pi - m) = -cos(m)``; with ``easy_margin`` the margin is instead
    dropped where ``cos <= 0``. The derivative is that of this clamped expression.
    """
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    one_minus_sq = 1.0 - cos * cos
    clamped = one_minus_sq < SIN_CLAMP
    sin_t = one_minus_sq.clamp_min(SIN_CLAMP).sqrt()
    psi = cos * cos_m - sin_t * sin_m
    dpsi = torch.where(clamped, torch.full_like(cos, cos_m), cos_m + sin_m * cos / sin_t)
    if easy_margin:
        plain = cos <= 0
        psi = torch.where(plain, cos, psi)
    else:
        plain = cos < -cos_m
        psi = torch.where(plain, cos - margin * sin_m, psi)
    dpsi = torch.where(plain, torch.ones_like(dpsi), dpsi)
    return psi, dpsi


class _AMSupConFunction(torch.autograd.Function):
    """Forward and closed-form backward of AM-SupCon (methods.md A.1).

    Inputs: raw embeddings ``x`` [N, D]; positive pairs ``(pi, pj)`` (``pi != pj``,
    same label, sorted by anchor), the reversed-pair index ``rev`` and CSR row
    pointers ``crow`` (see :func:`_positive_pairs`); the per-pair coefficient
    ``coef = 1 / (|A| |P(i)|)``; optional negative weights [N, N] (constants).
    Everything is computed once on the N x N similarity matrix; the backward forms
    ``G = dL/dS`` in closed form and returns ``dL/dx`` through ``S = Z Z^T`` and
    ``Z = x / ||x||``. It is applied through :func:`~speechbrain_ext.precision.float32_function`
    (float32 inputs, autocast off in forward and backward): the sparse CSR product has
    no float16/bfloat16 kernel, and float16 cannot hold ``exp(1/tau)``.
    """

    @staticmethod
    def forward(ctx, x, pi, pj, rev, crow, coef, weights, temperature, margin, easy_margin):
        norm = x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        z = x / norm
        inv_t = 1.0 / temperature
        # Logits l_ij = cos_ij / tau; the diagonal is excluded from every sum.
        logits = (z * inv_t) @ z.T
        logits.fill_diagonal_(float("-inf"))
        row_max = logits.amax(dim=1)  # finite for N >= 2; l - row_max <= 0
        l_pos = logits[pi, pj]
        e = logits.sub_(row_max[:, None]).exp_()  # E_ij = exp(l_ij - M_i); E_ii = 0
        e_pos = e[pi, pj]
        if weights is not None:
            e.mul_(weights)  # w_ia only multiplies negatives: positives are reset below
        e[pi, pj] = 0.0  # e now holds the (weighted) negative terms only
        n = x.shape[0]
        # B_i = sum over positives + weighted negatives (in units of exp(M_i)).
        b = e.sum(dim=1).index_add_(0, pi, e_pos)
        # Denominator of pair (i, p): exp(psi_ip/tau - M_i) + R_ip with R_ip = B_i - E_ip.
        rest = (b[pi] - e_pos).clamp_min(0.0)
        cos_pos = l_pos * temperature
        if margin != 0.0:
            psi, dpsi = _angular_margin(cos_pos, margin, easy_margin)
            a = psi * inv_t - row_max[pi]
        else:
            dpsi = None
            a = l_pos - row_max[pi]
        log_rest = rest.log()  # -inf when the positive is alone in its denominator
        # l_ip = log(e^a + R) - a = softplus(log R - a), finite even when e^a underflows.
        pair_loss = torch.nn.functional.softplus(log_rest - a)
        loss = (coef * pair_loss).sum()
        # Gradient pieces: q = e^a / (e^a + R) and c / (e^a + R) = c * exp(-logaddexp(a, log R)).
        q = torch.sigmoid(a - log_rest)
        c_over_d = coef * torch.exp(-torch.logaddexp(a, log_rest))
        t_row = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, pi, c_over_d)
        ctx.save_for_backward(z, norm, e, e_pos, pi, pj, rev, crow, coef, q, c_over_d, t_row, dpsi)
        ctx.inv_t = inv_t
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        z, norm, e, e_pos, pi, pj, rev, crow, coef, q, c_over_d, t_row, dpsi = ctx.saved_tensors
        inv_t = ctx.inv_t
        # G_ij = dL/dS_ij = diag(T) E_neg + (sparse positive entries), where the dense part
        # is w_ij E_ij T_i / tau on negatives and, for positives (i, p),
        # G_ip = [E_ip (T_i - c_ip / D_ip) + c_ip (q_ip - 1) psi'_ip] / tau.
        # dL/dZ = (G + G^T) Z is formed without materialising G (no N x N temporaries):
        # diag(T) E Z + E^T diag(T) Z, plus one sparse (CSR) product for the positive pairs.
        scale = grad_out * inv_t
        t_col = (t_row * scale)[:, None]
        slope = coef * (q - 1.0)
        if dpsi is not None:
            slope = slope * dpsi
        g_pos = (e_pos * (t_row[pi] - c_over_d) + slope) * scale
        dz = torch.addmm(t_col * (e @ z), e.T, t_col * z)
        # Positive part of G + G^T: a CSR matrix whose pattern is the (symmetric) pair set.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            sym = torch.sparse_csr_tensor(crow, pj, g_pos + g_pos[rev], (z.shape[0], z.shape[0]))
        dz += sym @ z
        dx = (dz - z * (z * dz).sum(dim=1, keepdim=True)) / norm
        return dx, None, None, None, None, None, None, None, None, None


def _positive_pairs(labels):
    """Enumerate all ordered positive pairs ``(i, p)``, ``p != i``, ``y_p == y_i``.

    Built from the sorted labels in O(N log N + number of pairs), without an N x N
    mask. Pairs are sorted by anchor (CSR row order) and ``rev[t]`` is the index of the
    reversed pair ``(p, i)`` of pair ``t``.

    Returns
    -------
    tuple
        ``(pi, pj, n_pos, rev)`` with ``n_pos[i] = |P(i)|``.

    Example
    -------
    >>> pi, pj, n_pos, rev = _positive_pairs(torch.tensor([5, 7, 5, 5]))
    >>> list(zip(pi.tolist(), pj.tolist()))
    [(0, 2), (0, 3), (2, 0), (2, 3), (3, 0), (3, 2)]
    >>> n_pos.tolist(), rev.tolist()
    ([2, 0, 2, 2], [2, 4, 0, 5, 1, 3])
    """
    n = labels.shape[0]
    device = labels.device
    order = torch.argsort(labels, stable=True)
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=device)  # position of each sample in sorted order
    group_start = torch.repeat_interleave(starts, counts)[rank]  # per original index
    n_pos = torch.repeat_interleave(counts, counts)[rank] - 1
    first = torch.cumsum(n_pos, 0) - n_pos  # first pair of each anchor
    pi = torch.repeat_interleave(torch.arange(n, device=device), n_pos)
    k = torch.arange(pi.shape[0], device=device) - first[pi]
    own = rank[pi] - group_start[pi]  # the anchor's own slot in its group, skipped
    pj = order[group_start[pi] + k + (k >= own).long()]
    rev = first[pj] + own - (rank[pi] > rank[pj]).long()
    return pi, pj, n_pos, rev


class AngularMarginSupConLoss(torch.nn.Module):
    """Supervised contrastive loss with an additive angular margin on positives.

    Implements methods.md A.1 (Li, Mak & Meng, ICASSP 2023): for anchor ``i`` with
    positives ``P(i)`` and negatives ``N(i)``,

    ``L_i = -1/|P(i)| sum_p log exp(psi_ip/tau) / (exp(psi_ip/tau)
    + sum_{q in P(i), q != p} exp(cos_iq/tau) + sum_{a in N(i)} w_ia exp(cos_ia/tau))``

    with ``psi = cos(theta + m)`` (ArcFace fallback ``cos(theta) - m sin(m)`` where
    ``theta + m > pi``). The margin touches only the positive in the numerator (and
    its copy in the denominator), never the other positives nor the negatives.
    ``L`` is the mean of ``L_i`` over anchors with at least one positive. With
    ``margin=0`` and no weights this is SupCon's ``L_out`` (Khosla et al. 2020), equal
    to pytorch-metric-learning's ``SupConLoss`` at the same temperature.

    The forward and backward are a custom autograd function (one N x N similarity
    matrix, closed-form gradient), vectorised over anchors, in log-sum-exp form,
    with finite gradients at ``cos = +-1``. Memory is O(N^2).

    Mixed precision: float16/bfloat16 embeddings (or autocast) are computed in float32
    with autocast off, forward and backward; the loss is float32 and the gradient
    reaches the embeddings in their dtype (:mod:`speechbrain_ext.precision`).

    Arguments
    ---------
    margin : float
        Additive angular margin ``m`` in radians (0 disables it).
    temperature : float
        Temperature ``tau``. In float32 keep ``tau`` above ~0.03 when the negative
        weights can be nearly zero (exponent range).
    easy_margin : bool
        If True, use ``psi = cos(theta)`` where ``cos(theta) <= 0`` instead of the
        ArcFace fallback.

    Attributes
    ----------
    last_stats : dict
        Per-batch statistics of the latest call, for logging:
        ``frac_anchors_with_positives`` (anchors that enter the mean / N) and
        ``num_positive_pairs`` (ordered pairs).

    Example
    -------
    >>> loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.5)
    >>> emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]], requires_grad=True)
    >>> loss = loss_fn(emb, torch.tensor([0, 0, 1]))
    >>> # psi_01 = cos(acos(0.8) + 0.2) = 0.66485; anchor 2 has no positive (skipped):
    >>> # L = [log(1 + e^{(-1 - 0.66485)/0.5}) + log(1 + e^{(-0.8 - 0.66485)/0.5})] / 2
    >>> round(loss.item(), 4)
    0.0436
    >>> loss_fn.last_stats["frac_anchors_with_positives"]
    0.6666666666666666
    >>> loss.backward(); bool(torch.isfinite(emb.grad).all())
    True
    """

    def __init__(self, margin=0.2, temperature=0.07, easy_margin=False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= margin < math.pi:
            raise ValueError(f"margin must lie in [0, pi), got {margin}")
        self.margin = float(margin)
        self.temperature = float(temperature)
        self.easy_margin = bool(easy_margin)
        self.last_stats = {}

    def forward(self, embeddings, labels, negative_weights=None):
        """Return the scalar loss.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[N, D]`` or ``[N, 1, D]``; L2-normalised inside the loss.
        labels : torch.Tensor
            ``[N]`` or ``[N, 1]`` integer class labels.
        negative_weights : torch.Tensor, optional
            ``[N, N]`` weights ``w_ia`` multiplying the negative terms only (e.g. from
            :class:`ClassAwareAttention`); entries of positive pairs and the
            diagonal are ignored. Treated as constants (no gradient flows to them).

        Returns
        -------
        torch.Tensor
            Scalar loss.

        Example
        -------
        >>> emb = torch.randn(6, 1, 4)
        >>> loss = AngularMarginSupConLoss()(emb, torch.tensor([[0], [0], [1], [1], [2], [2]]))
        >>> loss.shape
        torch.Size([])
        """
        x = upcast(flatten_embeddings(embeddings))
        y = labels.reshape(-1)
        n = x.shape[0]
        if y.shape[0] != n:
            raise ValueError(f"got {n} embeddings but {y.shape[0]} labels")
        if negative_weights is not None:
            if negative_weights.shape != (n, n):
                raise ValueError(
                    f"negative_weights must be [N, N] = [{n}, {n}], got {tuple(negative_weights.shape)}"
                )
            negative_weights = negative_weights.detach().to(dtype=x.dtype, device=x.device)
        with torch.no_grad():
            pi, pj, n_pos, rev = _positive_pairs(y.to(x.device))
            crow = torch.nn.functional.pad(torch.cumsum(n_pos, 0), (1, 0))
            n_anchors = int((n_pos > 0).sum())
            self.last_stats = {
                "frac_anchors_with_positives": n_anchors / max(n, 1),
                "num_positive_pairs": int(pi.shape[0]),
            }
            if n_anchors == 0:
                raise ValueError(
                    f"AngularMarginSupConLoss: no positive pair in a batch of {n} samples "
                    f"({int(y.unique().numel())} distinct labels); every batch needs at least two "
                    "samples of one class (use a speaker-balanced sampler, e.g. "
                    "speechbrain_ext.sampling.SpeakerBalancedBatchSampler with utterances_per_speaker >= 2)"
                )
            coef = (1.0 / (n_anchors * n_pos[pi].to(x.dtype))).to(x.dtype)
        return float32_function(_AMSupConFunction, x.device.type).apply(
            x, pi, pj, rev, crow, coef, negative_weights, self.temperature, self.margin, self.easy_margin
        )


# ---------------------------------------------------------------------------
# Class-aware attention on negatives (methods.md A.2)
# ---------------------------------------------------------------------------


class ClassAwareAttention(torch.nn.Module):
    """Negative-pair weights from the classification head's confidence (methods.md A.2).

    ``p_i = softmax(s * cos(W, z_i))[y_i]`` is the head's probability of the true
    class (cosine logits WITHOUT margin), ``w_ia = min(p_i, p_a)`` for negative pairs,
    so pairs involving a hard (low-confidence) sample contribute less. With
    ``normalize`` each anchor's negative weights are rescaled to mean 1
    (``w_ia * |N(i)| / sum_{a in N(i)} w_ia``) so the temperature keeps its meaning.

    Everything is computed in log space (``log p = s cos_y - logsumexp(s cos)`` via
    ``log_softmax``,
    ``w = exp(min(log p_i, log p_a) - logsumexp_{N(i)} + log |N(i)|)``), so the weights
    stay finite and correctly normalised when ``p`` underflows. No gradient flows.
    float16/bfloat16 logits are upcast first: the weights are float32.

    Entries that are not negative pairs (the diagonal and same-class pairs) are set
    to 0 (our convention; :class:`AngularMarginSupConLoss` ignores them), so with
    ``normalize`` every row with negatives sums to ``|N(i)|``. Rows without negatives
    are all zero.

    Arguments
    ---------
    scale : float
        Scale ``s`` applied to the cosine logits (the AAM head's scale, 30 by default).
    normalize : bool
        Row-normalise the negative weights to mean 1.

    Example
    -------
    >>> caa = ClassAwareAttention(scale=1.0, normalize=False)
    >>> cos = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # p_i = 1/2 for all
    >>> caa(cos, torch.tensor([0, 0, 1]))
    tensor([[0.0000, 0.0000, 0.5000],
            [0.0000, 0.0000, 0.5000],
            [0.5000, 0.5000, 0.0000]])
    >>> ClassAwareAttention(scale=1.0)(cos, torch.tensor([0, 0, 1])).sum(dim=1)
    tensor([1., 1., 2.])
    """

    def __init__(self, scale=30.0, normalize=True):
        super().__init__()
        self.scale = float(scale)
        self.normalize = bool(normalize)

    @torch.no_grad()
    def forward(self, cosine_logits, labels):
        """Return the ``[N, N]`` negative weights.

        Arguments
        ---------
        cosine_logits : torch.Tensor
            ``[N, C]`` or SpeechBrain's ``[N, 1, C]`` cosine similarities between the
            embeddings and the class weights (no margin, no scale).
        labels : torch.Tensor
            ``[N]`` or ``[N, 1]`` class indices in ``[0, C)``.

        Returns
        -------
        torch.Tensor
            ``[N, N]`` weights (0 off the negative pairs), detached.

        Example
        -------
        >>> w = ClassAwareAttention()(torch.rand(4, 1, 3), torch.tensor([[0], [1], [2], [2]]))
        >>> w.shape
        torch.Size([4, 4])
        """
        cos = upcast(flatten_embeddings(cosine_logits).detach())
        y = labels.reshape(-1).to(device=cos.device, dtype=torch.long)
        if y.shape[0] != cos.shape[0]:
            raise ValueError(f"got {cos.shape[0]} rows of logits but {y.shape[0]} labels")
        log_p = torch.log_softmax(self.scale * cos, dim=1).gather(1, y[:, None])[:, 0]
        log_w = torch.minimum(log_p[:, None], log_p[None, :])
        log_w.masked_fill_(y[:, None] == y[None, :], float("-inf"))  # keep negative pairs only
        if not self.normalize:
            return log_w.exp_()
        # Shift by the row max (over negatives) before exp: the largest term is 1,
        # so the row sum cannot underflow whatever the magnitude of log p.
        row_max = log_w.amax(dim=1, keepdim=True)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        w = log_w.sub_(row_max).exp_()
        _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
        n_neg = (y.shape[0] - counts[inverse]).to(w.dtype)[:, None]
        return w.mul_(n_neg / w.sum(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny))


def negative_mask(labels):
    """Boolean ``[N, N]`` mask of pairs with different labels.

    Example
    -------
    >>> negative_mask(torch.tensor([0, 0, 1])).int().tolist()
    [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    """
    labels = labels.reshape(-1)
    return labels[:, None] != labels[None, :]
