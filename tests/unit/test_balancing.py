"""Tests of the loss balancers (methods.md A.3)."""

import pytest
import torch
from gloo_ranks import spawn_ranks

from speechbrain_ext import distributed
from speechbrain_ext.balancing import FixedWeights, MGDABalancer, min_norm_coefficient
from speechbrain_ext.losses import AngularMarginSupConLoss


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# ---------------------------------------------------------------------------
# min_norm_coefficient
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "g1,g2,expected",
    [
        (t(1.0, 2.0), t(1.0, 2.0), 0.5),  # parallel and equal: ||g1 - g2|| = 0
        (t(1.0, 2.0), t(-1.0, -2.0), 0.5),  # opposite, equal norms: 0.5 g1 + 0.5 g2 = 0
        (t(2.0, 0.0), t(-1.0, 0.0), 1.0 / 3.0),  # opposite, unequal: (1 - a) * 1 = a * 2
        (t(1.0, 0.0), t(0.0, 1.0), 0.5),  # orthogonal, equal norms
        (t(1.0, 0.0), t(0.0, 2.0), 0.8),  # orthogonal: (g2 - g1).g2 = 4, ||g1 - g2||^2 = 5
        (t(1.0, 0.0), t(3.0, 0.0), 1.0),  # g2 dominates in the same direction: take g1 only
        (t(3.0, 0.0), t(1.0, 0.0), 0.0),  # g1 dominates: take g2 only
        (t(1.0, 0.0), t(2.0, 2.0), 1.0),  # (g2 - g1).g2 = 6 > ||g1 - g2||^2 = 5: clipped
    ],
)
def test_alpha_known_geometries(g1, g2, expected):
    assert min_norm_coefficient(g1, g2).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_alpha_is_min_norm_on_a_grid(seed):
    gen = torch.Generator().manual_seed(seed)
    g1 = torch.randn(7, generator=gen, dtype=torch.float64)
    g2 = torch.randn(7, generator=gen, dtype=torch.float64) * (0.2 + 3 * torch.rand(1, generator=gen).item())
    if seed % 3 == 0:
        g2 = g2 + 2 * g1  # correlated directions: often clipped to 0 or 1
    alpha = min_norm_coefficient(g1, g2).item()
    assert 0.0 <= alpha <= 1.0
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64)
    norms = (grid[:, None] * g1 + (1 - grid[:, None]) * g2).norm(dim=1)
    best = (alpha * g1 + (1 - alpha) * g2).norm()
    assert best <= norms.min() + 1e-12
    assert abs(alpha - grid[norms.argmin()].item()) <= 1e-3 or best == pytest.approx(norms.min().item())


def test_alpha_shapes_and_dtype():
    alpha = min_norm_coefficient(torch.ones(2, 3), torch.zeros(6))
    assert alpha.dtype == torch.float64 and alpha.item() == 0.0  # zero gradient has the minimum norm
    with pytest.raises(ValueError, match="differ"):
        min_norm_coefficient(torch.ones(3), torch.ones(4))


# ---------------------------------------------------------------------------
# FixedWeights
# ---------------------------------------------------------------------------


def test_fixed_weights():
    shared = torch.ones(3, requires_grad=True)
    balancer = FixedWeights({"cls": 1.0, "con": 0.25})
    total, stats = balancer({"cls": shared.sum(), "con": 4 * shared.sum()}, shared)
    assert total.item() == pytest.approx(6.0)
    assert stats == {"w_cls": 1.0, "w_con": 0.25}
    total.backward()
    torch.testing.assert_close(shared.grad, torch.full((3,), 2.0))


def test_fixed_weights_name_errors():
    balancer = FixedWeights({"cls": 1.0, "con": 1.0})
    with pytest.raises(KeyError, match="missing: \\['con'\\]"):
        balancer({"cls": torch.tensor(1.0)})
    with pytest.raises(KeyError, match="unexpected: \\['cos'\\]"):
        balancer({"cls": torch.tensor(1.0), "con": torch.tensor(1.0), "cos": torch.tensor(1.0)})
    with pytest.raises(ValueError):
        FixedWeights({})


# ---------------------------------------------------------------------------
# MGDABalancer
# ---------------------------------------------------------------------------


class CountingIdentity(torch.autograd.Function):
    """Stands for the encoder: counts how often autograd runs its backward."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        CountingIdentity.calls += 1
        return grad


def make_problem(seed=0, n=12, dim=6, n_classes=4):
    gen = torch.Generator().manual_seed(seed)
    encoder_in = torch.randn(n, dim, generator=gen, requires_grad=True)
    head = torch.nn.Linear(dim, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(n_classes, dim, generator=gen))
        head.bias.zero_()
    labels = torch.arange(n) % n_classes
    return encoder_in, head, labels


def losses_of(shared, head, labels):
    cls = torch.nn.functional.cross_entropy(head(shared), labels)
    con = AngularMarginSupConLoss(temperature=0.2)(shared, labels)
    return {"cls": cls, "con": con}


@pytest.mark.parametrize("normalization", ["none", "l2", "loss", "loss+"])
def test_mgda_gradient_is_the_min_norm_combination(normalization):
    encoder_in, head, labels = make_problem()
    shared = CountingIdentity.apply(encoder_in)
    losses = losses_of(shared, head, labels)
    g1, g2 = (torch.autograd.grad(loss, shared, retain_graph=True)[0] for loss in losses.values())
    total, stats = MGDABalancer(normalization=normalization)(losses, shared)
    alpha = stats["alpha"]
    # alpha from the normalised gradients (Sener & Koltun's gradient_normalizers)
    scale = {
        "none": (1.0, 1.0),
        "l2": (g1.norm(), g2.norm()),
        "loss": (losses["cls"].detach(), losses["con"].detach()),
        "loss+": (losses["cls"].detach() * g1.norm(), losses["con"].detach() * g2.norm()),
    }[normalization]
    assert alpha == pytest.approx(min_norm_coefficient(g1 / scale[0], g2 / scale[1]).item(), rel=1e-6)
    assert 0.0 < alpha < 1.0
    (grad_total,) = torch.autograd.grad(total, shared, retain_graph=True)
    torch.testing.assert_close(grad_total, alpha * g1 + (1 - alpha) * g2)
    assert total.item() == pytest.approx(alpha * losses["cls"].item() + (1 - alpha) * losses["con"].item())


def test_mgda_never_backpropagates_through_the_encoder():
    encoder_in, head, labels = make_problem(seed=1)
    CountingIdentity.calls = 0
    shared = CountingIdentity.apply(encoder_in)
    total, _ = MGDABalancer()(losses_of(shared, head, labels), shared)
    assert CountingIdentity.calls == 0  # balancing stopped at `shared`
    assert encoder_in.grad is None and head.weight.grad is None
    total.backward()
    assert CountingIdentity.calls == 1  # the single training backward
    assert encoder_in.grad is not None and head.weight.grad is not None


def test_mgda_alpha_is_detached_and_first_loss_gets_alpha():
    shared = torch.tensor([[1.0, 2.0]], requires_grad=True)
    a = (shared * torch.tensor([1.0, 0.0])).sum()  # g = (1, 0)
    b = (shared * torch.tensor([0.0, 2.0])).sum()  # g = (0, 2)
    total, stats = MGDABalancer()({"a": a, "b": b}, shared)
    assert stats["alpha"] == pytest.approx(0.8)
    total, stats = MGDABalancer()({"b": b, "a": a}, shared)  # order matters: alpha multiplies the first
    assert stats["alpha"] == pytest.approx(0.2)
    (grad,) = torch.autograd.grad(total, shared)
    torch.testing.assert_close(grad, torch.tensor([[0.8, 0.4]]))


def test_mgda_equal_gradients_give_half():
    shared = torch.ones(4, requires_grad=True)
    total, stats = MGDABalancer()({"a": shared.sum(), "b": shared.sum() + 3.0}, shared)
    assert stats["alpha"] == 0.5
    assert total.item() == pytest.approx(5.5)


def test_mgda_errors():
    shared = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="exactly two"):
        MGDABalancer()({"a": shared.sum()}, shared)
    with pytest.raises(ValueError, match="exactly two"):
        MGDABalancer()({"a": shared.sum(), "b": shared.sum(), "c": shared.sum()}, shared)
    with pytest.raises(ValueError, match="shared"):
        MGDABalancer()({"a": shared.sum(), "b": shared.sum()}, torch.ones(3))
    with pytest.raises(ValueError, match="normalization"):
        MGDABalancer(normalization="l1")


def test_mgda_loss_independent_of_shared():
    shared = torch.ones(3, requires_grad=True)
    other = torch.ones(2, requires_grad=True)
    total, stats = MGDABalancer()({"a": shared.sum(), "b": other.sum()}, shared)
    assert stats["alpha"] == 0.0  # the zero gradient has the minimum norm


def test_mgda_distributed_sums_the_products(monkeypatch):
    """Every rank forms alpha from the dot products summed over ranks, i.e. from the global batch."""
    gen = torch.Generator().manual_seed(0)
    g1_local, g2_local = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    g1_other, g2_other = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen) * 3
    o1, o2 = g1_other.double(), g2_other.double()
    other_products = torch.stack([(o1 * o1).sum(), (o1 * o2).sum(), (o2 * o2).sum()])
    calls = []

    def fake_all_reduce(tensor, op=None):
        calls.append(op)
        tensor += other_products  # what rank 1 contributes

    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake_all_reduce)
    assert distributed.world_size() == 2
    shared = torch.zeros(5, 3, requires_grad=True)
    losses = {"a": (shared * g1_local).sum(), "b": (shared * g2_local).sum()}
    _, stats = MGDABalancer()(losses, shared)
    assert calls == [torch.distributed.ReduceOp.SUM]
    global_alpha = min_norm_coefficient(torch.cat([g1_local, g1_other]), torch.cat([g2_local, g2_other]))
    local_alpha = min_norm_coefficient(g1_local, g2_local)
    assert stats["alpha"] == pytest.approx(global_alpha.item(), rel=1e-9)
    assert stats["alpha"] != pytest.approx(local_alpha.item(), rel=1e-3)


def _ddp_worker(rank, out_dir):
    gen = torch.Generator().manual_seed(100 + rank)  # different data on every rank
    g1, g2 = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen) * (1 + rank)
    shared = torch.zeros(4, 3, requires_grad=True)
    _, stats = MGDABalancer()({"a": (shared * g1).sum(), "b": (shared * g2).sum()}, shared)
    torch.save({"alpha": stats["alpha"], "g1": g1, "g2": g2}, f"{out_dir}/rank{rank}.pt")


def test_mgda_same_alpha_on_every_rank_with_gloo(tmp_path):
    """Two real gloo processes with different data agree on the alpha of the global batch."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not available")
    spawn_ranks(_ddp_worker, str(tmp_path), str(tmp_path))
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0]["alpha"] == results[1]["alpha"]
    expected = min_norm_coefficient(
        torch.cat([r["g1"] for r in results]), torch.cat([r["g2"] for r in results])
    )
    assert results[0]["alpha"] == pytest.approx(expected.item(), rel=1e-9)
