"""Tests of speechbrain_ext.copypaste: the CopyPaste parallel waveform (methods.md B.1)."""

import math

import pytest
import torch

from speechbrain_ext.copypaste import CopyPaste

# ---------------------------------------------------------------------------- CopyPaste


def _runs(out, info):
    """Split an output into (first part, cross-fade, second part) from its info."""
    left = info["crossfade"] // 2
    right = info["crossfade"] - left
    seam = info["seam"]
    return out[: seam - left], out[seam - left : seam + right], out[seam + right :]


@pytest.mark.parametrize("fade", ["linear", "equal_power"])
def test_copypaste_length_and_provenance(fade):
    total = 1600
    x = torch.arange(total, dtype=torch.float64)  # >= 0, step +1
    u = -torch.arange(3000, dtype=torch.float64) - 1  # < 0, step -1
    cp = CopyPaste(crossfade=160, fade=fade)
    orders = set()
    for seed in range(20):
        out, info = cp(x, u, generator=seed, return_info=True)
        assert out.shape == x.shape and out.dtype == x.dtype
        orders.add(info["x_first"])
        first, fade_part, second = _runs(out, info)
        assert fade_part.numel() == 160
        src_first, src_second = (x, u) if info["x_first"] else (u, x)
        step_first = 1.0 if info["x_first"] else -1.0
        step_second = -step_first
        # Outside the cross-fade: one contiguous crop of each source.
        assert torch.all(torch.diff(first) == step_first) and torch.all(torch.diff(second) == step_second)
        assert bool(torch.isin(first, src_first).all()) and bool(torch.isin(second, src_second).all())
        assert (first >= 0).all() if info["x_first"] else (first < 0).all()
        # Cross-fade: fade_out * (continuation of the first crop) + fade_in * (lead-in of the second).
        n = fade_part.numel()
        cont = first[-1] + step_first * torch.arange(1, n + 1, dtype=torch.float64)
        lead = second[0] - step_second * torch.arange(n, 0, -1, dtype=torch.float64)
        w_out, w_in = cp.fade_weights(n, dtype=torch.float64)
        torch.testing.assert_close(fade_part, w_out * cont + w_in * lead)
        # x share of the output (seam position) follows r.
        n_x = info["seam"] if info["x_first"] else total - info["seam"]
        assert n_x == round(info["ratio"] * total)
    assert orders == {True, False}


def test_copypaste_ratio_bounds():
    total = 1000
    x = torch.arange(total, dtype=torch.float32) + 1
    u = -torch.arange(total, dtype=torch.float32) - 1
    cp = CopyPaste(min_ratio=0.3, max_ratio=0.7, crossfade=0)
    shares = []
    for seed in range(200):
        out = cp(x, u, generator=seed)
        n_x = int((out > 0).sum())
        assert int((out < 0).sum()) == total - n_x
        shares.append(n_x / total)
    assert min(shares) >= 0.3 and max(shares) <= 0.7
    assert min(shares) < 0.35 and max(shares) > 0.65  # spans the interval
    fixed = CopyPaste(min_ratio=0.25, max_ratio=0.25, crossfade=0, random_order=False)
    out = fixed(x, u, generator=0)
    assert (out[:250] > 0).all() and (out[250:] < 0).all()


def test_copypaste_determinism():
    x, u = torch.randn(16000), torch.randn(12000)
    cp = CopyPaste()
    torch.testing.assert_close(cp(x, u, generator=5), cp(x, u, generator=5), rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    torch.testing.assert_close(cp(x, u, generator=g1), cp(x, u, generator=g2), rtol=0, atol=0)
    # A generator advances: the next draw differs from the first.
    assert not torch.equal(cp(x, u, generator=g1), cp(x, u, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(cp(x, u, generator=5), cp(x, u, generator=6))
    torch.manual_seed(3)
    a = cp(x, u)
    torch.manual_seed(3)
    torch.testing.assert_close(a, cp(x, u), rtol=0, atol=0)


def test_copypaste_short_partner_is_repeat_padded():
    total = 1000
    x = torch.arange(total, dtype=torch.float32) + 1
    u = -torch.arange(50, dtype=torch.float32) - 1  # much shorter than its share
    cp = CopyPaste(crossfade=0, random_order=False)
    for seed in range(5):
        out, info = cp(x, u, generator=seed, return_info=True)
        assert out.shape == (total,)
        u_part = out[info["seam"] :]
        assert u_part.numel() > 50
        # Tiled from its beginning: u[0], u[1], ..., u[49], u[0], ...
        expected = u.repeat(math.ceil(u_part.numel() / 50))[: u_part.numel()]
        torch.testing.assert_close(u_part, expected)


def test_copypaste_batch_and_lengths():
    cp = CopyPaste(crossfade=16)
    wav = torch.randn(3, 800)
    partner = torch.randn(3, 500)
    lengths = torch.tensor([1.0, 0.5, 0.75])
    out, infos = cp(
        wav, partner, generator=0, lengths=lengths, partner_lengths=torch.ones(3), return_info=True
    )
    assert out.shape == wav.shape and len(infos) == 3
    assert torch.all(out[1, 400:] == 0) and torch.all(out[2, 600:] == 0)
    # A list of variable-length partners works too, and row b equals the 1-D call with the same stream.
    g = torch.Generator().manual_seed(1)
    rows = cp(wav, [partner[0], partner[1, :100], partner[2, :7]], generator=g)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(rows[0], cp(wav[0], partner[0], generator=g))
    with pytest.raises(ValueError):
        cp(wav, partner[:2])
    with pytest.raises(ValueError):
        CopyPaste(min_ratio=0.8, max_ratio=0.2)


def test_copypaste_tiny_inputs():
    cp = CopyPaste(crossfade=160)
    for total in (1, 2, 5, 161):
        out = cp(torch.ones(total), -torch.ones(3), generator=0)
        assert out.shape == (total,) and torch.isfinite(out).all()
