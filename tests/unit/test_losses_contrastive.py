"""Tests of AngularMarginSupConLoss and ClassAwareAttention (methods.md A.1, A.2)."""

import math

import pytest
import torch

from speechbrain_ext.losses import SIN_CLAMP, AngularMarginSupConLoss, ClassAwareAttention, _positive_pairs

# ---------------------------------------------------------------------------
# Reference implementation: a plain Python loop over anchors, autograd for gradients
# ---------------------------------------------------------------------------


def reference_psi(cos, margin, easy_margin=False):
    """methods.md A.1 psi with the same sin clamp as the implementation (autograd-friendly)."""
    if margin == 0:
        return cos
    if easy_margin and cos <= 0:
        return cos
    if not easy_margin and cos < -math.cos(margin):  # theta + m > pi
        return cos - margin * math.sin(margin)
    sin_t = torch.sqrt(torch.clamp(1 - cos * cos, min=SIN_CLAMP))
    return cos * math.cos(margin) - sin_t * math.sin(margin)


def reference_loss(emb, labels, weights=None, margin=0.2, temperature=0.07, easy_margin=False):
    z = torch.nn.functional.normalize(emb.reshape(emb.shape[0], -1), dim=1)
    sim = z @ z.T
    labels = labels.reshape(-1).tolist()
    n = len(labels)
    per_anchor = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        negatives = [a for a in range(n) if labels[a] != labels[i]]
        if not positives:
            continue
        total = 0.0
        for p in positives:
            psi = reference_psi(sim[i, p], margin, easy_margin) / temperature
            terms = [psi]
            terms += [sim[i, q] / temperature for q in positives if q != p]
            for a in negatives:
                log_w = 0.0 if weights is None else torch.log(weights[i, a])
                terms.append(sim[i, a] / temperature + log_w)
            total = total - (psi - torch.logsumexp(torch.stack(terms), dim=0))
        per_anchor.append(total / len(positives))
    return torch.stack(per_anchor).mean()


def random_batch(n=12, dim=5, n_classes=4, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n, dim, generator=gen, dtype=dtype)
    labels = torch.randint(0, n_classes, (n,), generator=gen)
    weights = torch.rand(n, n, generator=gen, dtype=dtype) * 2 + 0.05
    return emb, labels, weights


def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# ---------------------------------------------------------------------------
# AngularMarginSupConLoss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_pairs_enumeration(seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 7, (40,), generator=gen)
    pi, pj, n_pos, rev = _positive_pairs(labels)
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(40, dtype=torch.bool)
    assert sorted(zip(pi.tolist(), pj.tolist())) == sorted(map(tuple, same.nonzero().tolist()))
    assert pi.tolist() == sorted(pi.tolist())  # CSR row order
    assert n_pos.tolist() == same.sum(1).tolist()
    assert (pi[rev] == pj).all() and (pj[rev] == pi).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_pml_supcon_without_margin(seed):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(32, 16, generator=gen)
    labels = torch.randint(0, 6, (32,), generator=gen)
    labels[-1] = 99  # one anchor without positives: skipped by both (pml drops its zero loss)
    # pml's SupConLoss L2-normalises (CosineSimilarity), divides by the temperature and
    # averages the per-anchor L_out over anchors with a non-zero loss.
    expected = pml.SupConLoss(temperature=0.07)(emb, labels)
    ours = AngularMarginSupConLoss(margin=0.0, temperature=0.07)(emb * 3.0, labels)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_equals_pml_gradient_without_margin():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    emb, labels, _ = random_batch(n=20, dim=6, n_classes=5, seed=3)
    a = emb.clone().requires_grad_(True)
    b = emb.clone().requires_grad_(True)
    pml.SupConLoss(temperature=0.1)(a, labels).backward()
    AngularMarginSupConLoss(margin=0.0, temperature=0.1)(b, labels).backward()
    torch.testing.assert_close(b.grad, a.grad)


def test_hand_computed_margin_and_skipped_anchor():
    # z0 = (1, 0), z1 = (0.8, 0.6) same class, z2 = (-1, 0) other class; m = 0.2, tau = 0.5.
    # theta_01 = acos(0.8) = 0.643501, psi_01 = cos(0.643501 + 0.2) = 0.664847.
    # Anchor 0: L0 = log(1 + exp((cos_02 - psi)/tau)) = log(1 + exp((-1 - 0.664847)/0.5)) = 0.035178
    # Anchor 1: L1 = log(1 + exp((-0.8 - 0.664847)/0.5)) = 0.052035
    # Anchor 2 has no positive: skipped. L = (0.035178 + 0.052035) / 2 = 0.043606
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]], dtype=torch.float64)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.5)
    psi = math.cos(math.acos(0.8) + 0.2)
    l0 = math.log1p(math.exp((-1 - psi) / 0.5))
    l1 = math.log1p(math.exp((-0.8 - psi) / 0.5))
    assert (round(psi, 5), round(l0, 6), round(l1, 6)) == (0.66485, 0.035178, 0.052035)
    loss = loss_fn(emb, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx((l0 + l1) / 2, abs=1e-12)
    assert loss.item() == pytest.approx(0.043606, abs=1e-6)
    assert loss_fn.last_stats["frac_anchors_with_positives"] == pytest.approx(2 / 3)
    assert loss_fn.last_stats["num_positive_pairs"] == 2


def test_hand_computed_margin_fallback():
    # z0 = (1, 0), z1 = (cos 170deg, sin 170deg) same class, z2 = (0, 1) other class; m = 0.2, tau = 1.
    # cos_01 = -0.984808 < cos(pi - m) = -cos(0.2) = -0.980067, i.e. theta + m > pi:
    # ArcFace fallback psi = cos - m sin m = -0.984808 - 0.2 * 0.198669 = -1.024542.
    # Anchor 0 (negative cos_02 = 0):        L0 = log(1 + e^(0 + 1.024542))        = 1.331262
    # Anchor 1 (negative cos_12 = 0.173648): L1 = log(1 + e^(0.173648 + 1.024542)) = 1.461892
    # L = (1.331262 + 1.461892) / 2 = 1.396577
    # easy_margin: psi = cos (cos <= 0): L = [log(1 + e^0.984808) + log(1 + e^1.158456)] / 2 = 1.366844
    emb = torch.tensor([unit(0), unit(170), unit(90)], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    loss = AngularMarginSupConLoss(margin=0.2, temperature=1.0)(emb, labels)
    assert loss.item() == pytest.approx(1.396577, abs=1e-6)
    easy = AngularMarginSupConLoss(margin=0.2, temperature=1.0, easy_margin=True)(emb, labels)
    assert easy.item() == pytest.approx(1.366844, abs=1e-6)


def test_hand_computed_other_positives_in_denominator():
    # z0 = 0deg, z1 = 60deg, z2 = 90deg (class 0), z3 = 180deg (class 1, no positive: skipped);
    # m = 0.5, tau = 1. psi(cos 60deg) = cos(pi/3 + 0.5) = 0.023597,
    # psi(cos 90deg) = cos(pi/2 + 0.5) = -0.479426, psi(cos 30deg) = cos(pi/6 + 0.5) = 0.520296.
    # Term (i, p) = log(e^psi_ip + e^cos_iq + e^cos_i3) - psi_ip (q the other positive):
    # (0,1): log(e^0.023597 + e^0 + e^-1) - 0.023597           = 0.848432
    # (0,2): log(e^-0.479426 + e^0.5 + e^-1) + 0.479426        = 1.448589
    # (1,0): log(e^0.023597 + e^0.866025 + e^-0.5) - 0.023597  = 1.364658
    # (1,2): log(e^0.520296 + e^0.5 + e^-0.5) - 0.520296       = 0.850320
    # (2,0): log(e^-0.479426 + e^0.866025 + e^0) + 0.479426    = 1.864865
    # (2,1): log(e^0.520296 + e^0 + e^0) - 0.520296            = 0.783303
    # L = mean over anchors 0..2 of the mean over their 2 positives = 7.160168 / 6 = 1.193361
    emb = torch.tensor([unit(0), unit(60), unit(90), unit(180)], dtype=torch.float64)
    loss_fn = AngularMarginSupConLoss(margin=0.5, temperature=1.0)
    loss = loss_fn(emb, torch.tensor([0, 0, 0, 1]))
    assert loss.item() == pytest.approx(1.193361, abs=1e-6)
    assert loss_fn.last_stats["frac_anchors_with_positives"] == 0.75


def test_negative_weights_hand_computed():
    # Same geometry as the first case with w_02 = 2 and w_12 = 0.5 (tau = 0.5, m = 0.2):
    # L0 = log(1 + 2 e^((-1 - 0.664847)/0.5)), L1 = log(1 + 0.5 e^((-0.8 - 0.664847)/0.5)).
    emb = torch.tensor([[1.0, 0.0], [0.8, 0.6], [-1.0, 0.0]], dtype=torch.float64)
    weights = torch.tensor([[7.0, 7.0, 2.0], [7.0, 7.0, 0.5], [1.0, 1.0, 7.0]], dtype=torch.float64)
    psi = math.cos(math.acos(0.8) + 0.2)
    expected = (
        math.log1p(2 * math.exp((-1 - psi) / 0.5)) + math.log1p(0.5 * math.exp((-0.8 - psi) / 0.5))
    ) / 2
    loss = AngularMarginSupConLoss(margin=0.2, temperature=0.5)(emb, torch.tensor([0, 0, 1]), weights)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_weights_only_touch_negatives():
    emb, labels, weights = random_batch(seed=4)
    loss_fn = AngularMarginSupConLoss()
    same = labels[:, None] == labels[None, :]
    other = weights.clone()
    other[same] = 123.0  # positive pairs and diagonal: must be ignored
    torch.testing.assert_close(loss_fn(emb, labels, weights), loss_fn(emb, labels, other))
    ones = torch.ones_like(weights)
    torch.testing.assert_close(loss_fn(emb, labels, ones), loss_fn(emb, labels))


@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("easy_margin", [False, True])
def test_matches_loop_reference_value_and_gradient(margin, use_weights, easy_margin):
    emb, labels, weights = random_batch(n=14, dim=3, seed=int(margin * 10) + 3 * use_weights)
    weights = weights if use_weights else None
    a = emb.clone().requires_grad_(True)
    b = emb.clone().requires_grad_(True)
    ours = AngularMarginSupConLoss(margin=margin, temperature=0.3, easy_margin=easy_margin)(
        a, labels, weights
    )
    ref = reference_loss(b, labels, weights, margin=margin, temperature=0.3, easy_margin=easy_margin)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_matches_reference_in_float32():
    emb, labels, weights = random_batch(n=40, dim=8, n_classes=8, seed=9, dtype=torch.float32)
    a = emb.clone().requires_grad_(True)
    b = emb.double().requires_grad_(True)
    ours = AngularMarginSupConLoss()(a, labels, weights)
    ref = reference_loss(b, labels, weights.double())
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "margin,use_weights,easy_margin",
    [(0.0, False, False), (0.2, False, False), (0.2, True, False), (0.3, True, True)],
)
def test_gradcheck(margin, use_weights, easy_margin):
    emb, labels, weights = random_batch(n=10, dim=3, n_classes=3, seed=5)
    weights = weights if use_weights else None
    loss_fn = AngularMarginSupConLoss(margin=margin, temperature=0.5, easy_margin=easy_margin)
    x = emb.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, labels, weights), (x,))


def test_gradcheck_in_fallback_region():
    # Positive pairs (0, 1) at 150deg (margin region), (2, 3) at 175deg (theta + m > pi: fallback,
    # m = 0.2 = 11.5deg) and (4, 5) exactly opposite (cos = -1); the norms differ on purpose.
    emb = torch.tensor([unit(3), unit(153), unit(-40), unit(135), unit(100), unit(-80)], dtype=torch.float64)
    emb = emb * torch.tensor([[1.0], [2.0], [0.5], [1.5], [1.0], [3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(emb, dim=1).T
    assert cos[2, 3] < -math.cos(0.2) and cos[0, 1] > -math.cos(0.2)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.4)
    x = emb.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, labels), (x,))


def test_finite_gradient_at_cos_plus_and_minus_one():
    # Duplicated positives (cos = 1, as the sampler produces for speakers with < K utterances)
    # and an exactly opposite positive pair (cos = -1).
    emb = torch.tensor(
        [
            [1.0, 0.0, 0.0],
            [2.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, -1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.3, 0.0, -1.0],
        ],
        dtype=torch.float64,
    )
    labels = torch.tensor([0, 0, 1, 1, 2, 3])
    for easy_margin in (False, True):
        a = emb.clone().requires_grad_(True)
        b = emb.clone().requires_grad_(True)
        loss = AngularMarginSupConLoss(margin=0.2, easy_margin=easy_margin)(a, labels)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(a.grad).all()
        reference_loss(b, labels, easy_margin=easy_margin).backward()
        torch.testing.assert_close(a.grad, b.grad)
    x = emb.float().requires_grad_(True)
    AngularMarginSupConLoss(margin=0.2)(x, labels).backward()
    assert torch.isfinite(x.grad).all()


def test_numerically_stable_with_extreme_logits():
    # tau = 0.01 puts logits at +-100: naive exp overflows in float32, log-sum-exp does not.
    gen = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(8, 16, generator=gen), dim=1)
    labels = torch.arange(64) % 8
    emb = (centres[labels] + 1e-3 * torch.randn(64, 16, generator=gen)).requires_grad_(True)
    loss = AngularMarginSupConLoss(margin=0.2, temperature=0.01)(emb, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    ref = reference_loss(emb.detach().double(), labels, margin=0.2, temperature=0.01)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-3, abs=1e-4)


def test_speechbrain_shapes():
    emb, labels, weights = random_batch(seed=6)
    loss_fn = AngularMarginSupConLoss()
    torch.testing.assert_close(
        loss_fn(emb[:, None, :], labels[:, None], weights), loss_fn(emb, labels, weights)
    )


def test_no_positive_pair_raises():
    with pytest.raises(ValueError, match="no positive pair"):
        AngularMarginSupConLoss()(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_bad_shapes_raise():
    loss_fn = AngularMarginSupConLoss()
    with pytest.raises(ValueError, match="labels"):
        loss_fn(torch.randn(4, 3), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="negative_weights"):
        loss_fn(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]), torch.ones(3, 3))


def test_second_backward_through_retained_graph():
    # MGDA takes a gradient with retain_graph=True, then the total loss is backpropagated again.
    emb, labels, weights = random_batch(seed=7)
    x = emb.clone().requires_grad_(True)
    loss = AngularMarginSupConLoss()(x, labels, weights)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    loss.backward()
    torch.testing.assert_close(x.grad, g1)


# ---------------------------------------------------------------------------
# ClassAwareAttention
# ---------------------------------------------------------------------------


def direct_caa(cos, labels, scale, normalize):
    """Straight from methods.md A.2 (float64 softmax)."""
    p = torch.softmax(scale * cos.double(), dim=1)[torch.arange(len(labels)), labels]
    n = len(labels)
    w = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        negatives = [a for a in range(n) if labels[a] != labels[i]]
        for a in negatives:
            w[i, a] = min(p[i], p[a])
        if normalize and negatives:
            w[i] = w[i] * len(negatives) / w[i].sum()
    return w


@pytest.mark.parametrize("normalize", [False, True])
def test_caa_matches_direct_formula(normalize):
    gen = torch.Generator().manual_seed(0)
    cos = torch.rand(10, 6, generator=gen, dtype=torch.float64) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 4, 5, 5])
    w = ClassAwareAttention(scale=5.0, normalize=normalize)(cos, labels)
    torch.testing.assert_close(w, direct_caa(cos, labels, 5.0, normalize))
    negative = labels[:, None] != labels[None, :]
    assert (w[~negative] == 0).all()  # diagonal and positive pairs: 0 by convention
    if normalize:
        mean_neg = w.sum(1) / negative.sum(1)
        torch.testing.assert_close(mean_neg, torch.ones(10, dtype=torch.float64))


def test_caa_underflow_stays_finite_and_normalised():
    # Scale 1000: log p_i = s (cos_y - max cos) = -200, -600, -400, -700, -600 (the other
    # logsumexp terms are negligible), so every p_i is 0 in float32 with a naive softmax and a
    # naive normalisation gives 0/0. In log space the weights are well defined.
    cos = torch.tensor(
        [[0.8, 0.6, 0.0], [0.9, 0.3, 0.0], [0.1, 0.5, 0.0], [0.2, 0.9, 0.0], [0.6, 0.0, 0.0]],
        dtype=torch.float32,
    )
    labels = torch.tensor([1, 1, 0, 0, 2])
    scale = 1000.0
    naive_p = torch.softmax(scale * cos, dim=1)[torch.arange(5), labels]
    assert (naive_p == 0).all()
    w = ClassAwareAttention(scale=scale)(cos, labels)
    assert torch.isfinite(w).all()
    negative = labels[:, None] != labels[None, :]
    torch.testing.assert_close(w.sum(1), negative.sum(1).float())
    # Expected from the exact log-probabilities (float64, log space).
    log_p = (scale * cos.double()).gather(1, labels[:, None])[:, 0] - torch.logsumexp(scale * cos.double(), 1)
    log_w = torch.minimum(log_p[:, None], log_p[None, :]).masked_fill(~negative, float("-inf"))
    expected = torch.exp(log_w - torch.logsumexp(log_w, 1, keepdim=True)) * negative.sum(1, keepdim=True)
    # float32 rounding of s * cos (ulp of 900 is 6e-5) bounds the agreement
    torch.testing.assert_close(w.double(), expected, rtol=1e-4, atol=1e-5)
    # Anchor 0 (log p = -200) against negatives 2, 3, 4 (log p = -400, -700, -600):
    # log w = min(...) = -400, -700, -600, so after normalisation w_02 = 3 (|N(0)| = 3), the rest ~ 0.
    assert w[0, 2].item() == pytest.approx(3.0, rel=1e-5)
    assert w[0, 3].item() == 0.0 and w[0, 4].item() < 1e-30


def test_caa_no_gradient_and_speechbrain_shapes():
    cos = torch.rand(6, 1, 4, requires_grad=True)
    labels = torch.tensor([[0], [0], [1], [1], [2], [3]])
    w = ClassAwareAttention()(cos, labels)
    assert not w.requires_grad and w.shape == (6, 6)
    torch.testing.assert_close(w, ClassAwareAttention()(cos.detach()[:, 0], labels[:, 0]))


def test_caa_row_without_negatives_is_zero():
    w = ClassAwareAttention()(torch.rand(3, 2), torch.tensor([1, 1, 1]))
    assert (w == 0).all()


def test_caa_feeds_the_loss():
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 8, generator=gen, requires_grad=True)
    labels = torch.arange(12) // 3
    cos = torch.rand(12, 4, generator=gen) * 2 - 1
    weights = ClassAwareAttention()(cos, labels)
    loss = AngularMarginSupConLoss()(emb, labels, weights)
    loss.backward()
    ref = reference_loss(emb.detach().double(), labels, weights.double())
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
