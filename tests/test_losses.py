"""Losses on hand-computed cases and against slow references."""

from __future__ import annotations

import itertools

import pytest
import torch

from anchorudf.train.losses import anchor_chamfer, gda_loss, udf_gradient, udf_loss


def test_udf_loss_clamp_hand_computed():
    pred = torch.tensor([[0.1, 0.3, 0.5, 0.05]])
    gt = torch.tensor([[0.15, 0.1, 0.4, 0.05]])
    # |0.1-0.15| = 0.05, |0.2-0.1| = 0.1, |0.2-0.2| = 0, 0 -> mean 0.0375
    assert udf_loss(pred, gt, 0.2).item() == pytest.approx(0.0375)
    # Both beyond delta: no loss and no gradient.
    p = torch.tensor([[0.5]], requires_grad=True)
    loss = udf_loss(p, torch.tensor([[0.9]]), 0.2)
    loss.backward()
    assert loss.item() == 0 and p.grad.item() == 0


def test_udf_loss_target_clamp_has_no_dead_zone():
    pred = torch.tensor([[0.1, 0.3, 0.5, 0.05, 0.1]], requires_grad=True)
    gt = torch.tensor([[0.15, 0.1, 0.4, 0.05, 0.3]])
    # Equal to the paper's clamp wherever pred <= delta; a near target under a prediction
    # above delta costs |pred - gt| (0.2, not 0.1) and pulls it down.
    both, target = udf_loss(pred, gt, 0.2, "both"), udf_loss(pred, gt, 0.2, "target")
    assert both.item() == pytest.approx((0.05 + 0.1 + 0 + 0 + 0.1) / 5)
    assert target.item() == pytest.approx((0.05 + 0.2 + 0 + 0 + 0.1) / 5)
    (g,) = torch.autograd.grad(target, pred)
    assert g[0].tolist() == pytest.approx([-0.2, 0.2, 0.0, 0.0, -0.2])
    # A dead field (every prediction above delta): the paper's loss has no gradient at all,
    # the target clamp still pulls every near point down and leaves far ones alone.
    dead = torch.full((1, 4), 0.5, requires_grad=True)
    gt = torch.tensor([[0.01, 0.1, 0.3, 0.9]])
    assert torch.autograd.grad(udf_loss(dead, gt, 0.2, "both"), dead)[0].abs().sum() == 0
    (g,) = torch.autograd.grad(udf_loss(dead, gt, 0.2, "target"), dead)
    assert g[0].tolist() == pytest.approx([0.25, 0.25, 0.0, 0.0])
    with pytest.raises(ValueError, match="clamp"):
        udf_loss(dead, gt, 0.2, "none")


def test_udf_loss_is_a_mean_over_points():
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.rand(2, 10, generator=g) * 0.3, torch.rand(2, 10, generator=g) * 0.3
    twice = udf_loss(pred.repeat(1, 2), gt.repeat(1, 2), 0.2)
    assert twice.item() == pytest.approx(udf_loss(pred, gt, 0.2).item())
    with pytest.raises(ValueError):
        udf_loss(pred, gt[:, :5], 0.2)


def chamfer_reference(a, b):
    """Slow, obviously correct: loops over every pair."""
    total = 0.0
    for x, y in zip(a, b):
        ab = sum(min(float(((p - q) ** 2).sum()) for q in y) for p in x) / len(x)
        ba = sum(min(float(((p - q) ** 2).sum()) for p in x) for q in y) / len(y)
        total += ab + ba
    return total / len(a)


def test_anchor_chamfer_hand_and_reference():
    a = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.0, 0.0, 0.5]]])
    # a->b: (0.25 + 1.25) / 2 = 0.75; b->a: 0.25 -> 1.0
    assert anchor_chamfer(a, b).item() == pytest.approx(1.0)
    assert anchor_chamfer(a, a).item() == 0.0
    g = torch.Generator().manual_seed(0)
    p, t = torch.rand(3, 13, 3, generator=g), torch.rand(3, 7, 3, generator=g)
    for chunk in (1, 4, 512):
        assert anchor_chamfer(p, t, chunk=chunk).item() == pytest.approx(chamfer_reference(p, t), rel=1e-5)


def test_anchor_chamfer_gradient_matches_cdist():
    g = torch.Generator().manual_seed(1)
    t = torch.rand(2, 5, 3, generator=g, dtype=torch.float64)
    p0 = torch.rand(2, 9, 3, generator=g, dtype=torch.float64)
    q = p0.clone().requires_grad_(True)
    d = torch.cdist(q, t) ** 2
    (d.min(2).values.mean() + d.min(1).values.mean()).backward()
    for chunk in (2, 512):  # chunked, and one matrix for both directions
        p = p0.clone().requires_grad_(True)
        anchor_chamfer(p, t, chunk=chunk).backward()
        torch.testing.assert_close(p.grad, q.grad)


def test_gda_loss_aligned_opposite_orthogonal_masked():
    d = torch.nn.functional.normalize(torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    ones = torch.ones(1, 6, dtype=torch.bool)
    assert gda_loss(3.0 * d, d, ones).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert gda_loss(-d, d, ones).item() == pytest.approx(2.0)
    x, y = torch.tensor([[[1.0, 0, 0]]]), torch.tensor([[[0, 1.0, 0]]])
    assert gda_loss(x, y, torch.ones(1, 1, dtype=torch.bool)).item() == pytest.approx(1.0)
    # Only masked points count: two aligned + one opposite masked out -> 0.
    grad = torch.cat([d[:, :2], -d[:, 2:3]], 1)
    mask = torch.tensor([[True, True, False]])
    assert gda_loss(grad, d[:, :3], mask).item() == pytest.approx(0.0, abs=1e-6)
    # No masked point: zero, and still differentiable.
    g = d.clone().requires_grad_(True)
    loss = gda_loss(g, d, torch.zeros(1, 6, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.equal(g.grad, torch.zeros_like(g))


def test_udf_gradient_of_analytic_distance_is_the_direction():
    """f = |p - c| - r (a sphere's UDF outside it): grad = (p - c)/|p - c|, so L_gda = 0."""
    c = torch.tensor([0.1, -0.2, 0.3])
    pts = (torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    f = ((pts - c).norm(dim=-1) - 0.2).abs()
    grad = udf_gradient(f, pts)
    direction = torch.sign(((pts - c).norm(dim=-1) - 0.2))[..., None] * torch.nn.functional.normalize(pts - c, dim=-1)
    torch.testing.assert_close(grad, direction.detach())
    assert gda_loss(grad, direction.detach(), f < 10).item() == pytest.approx(0.0, abs=1e-6)
    # create_graph: the loss on the gradient is differentiable w.r.t. what made f.
    w = torch.tensor(1.5, requires_grad=True)
    g2 = udf_gradient(w * (pts ** 2).sum(-1), pts)
    g2.sum().backward()   # g2 = 2 w p, so d(sum g2)/dw = 2 sum(p)
    torch.testing.assert_close(w.grad, 2 * pts.detach().sum())


def udf_loss_reference(pred, gt, delta):
    """Slow, obviously correct: |min(p, delta) - min(g, delta)| averaged over every item and point."""
    terms = [abs(min(float(p), delta) - min(float(g), delta))
             for pb, gb in zip(pred, gt) for p, g in zip(pb, gb)]
    return sum(terms) / len(terms)


def gda_reference(grad, direction, mask, eps=1e-8):
    """Slow, obviously correct: 1 - cos averaged over the masked points; 0 when none is masked."""
    terms = []
    for gb, db, mb in zip(grad.double(), direction.double(), mask):
        for g, d, m in zip(gb, db, mb):
            if m:
                terms.append(1.0 - float(g @ d) / max(float(g.norm() * d.norm()), eps))
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("b,n", list(itertools.product([1, 3], [1, 17])))
def test_losses_accept_any_batch_and_point_count(b, n):
    """Every (B, N), with K != M anchors: the losses equal per-item, per-point references."""
    g = torch.Generator().manual_seed(b * 100 + n)
    pred, gt = torch.rand(b, n, generator=g) * 0.4, torch.rand(b, n, generator=g) * 0.4
    assert udf_loss(pred, gt, 0.2).item() == pytest.approx(udf_loss_reference(pred, gt, 0.2), rel=1e-6, abs=1e-7)
    m = n + 3   # K = n anchors predicted, M = n + 3 targets
    p, t = torch.rand(b, n, 3, generator=g), torch.rand(b, m, 3, generator=g)
    for chunk in (5, 512):
        assert anchor_chamfer(p, t, chunk=chunk).item() == pytest.approx(chamfer_reference(p, t), rel=1e-5, abs=1e-7)
        assert anchor_chamfer(t, p, chunk=chunk).item() == pytest.approx(chamfer_reference(t, p), rel=1e-5, abs=1e-7)
    grad, direction = torch.randn(b, n, 3, generator=g), torch.randn(b, n, 3, generator=g)
    mask = torch.rand(b, n, generator=g) < 0.6
    assert gda_loss(grad, direction, mask).item() == pytest.approx(gda_reference(grad, direction, mask),
                                                                    rel=1e-5, abs=1e-6)
