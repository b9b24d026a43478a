"""AnchorUDF losses. All distances are NDC units (garment distance x calib scale).

The paper writes L_udf and L_gda as sums over points; we take means (over points and
the batch) so the loss scale and the learning rate do not depend on the number of
query points or the batch size. With N points per item, a paper-sum equals our mean x N.
"""

from __future__ import annotations

import torch


def udf_loss(pred: torch.Tensor, gt: torch.Tensor, delta: float, clamp: str = "both") -> torch.Tensor:
    """Clamped L1, mean over all points (``train.udf_clamp``).

    ``both`` (the paper): |min(pred, delta) - min(gt, delta)|. Points with both distances
    beyond delta cost nothing, and neither does a prediction beyond delta at a near point:
    once every prediction is above delta the loss has no gradient and the field is dead
    for good (seen on an H200, batch 24 with bf16, about 150 steps in).
    ``target``: the same value wherever pred <= delta, and |pred - gt| where pred > delta
    > gt, so a near point always pulls its prediction down; beyond delta, max(delta - pred, 0).
    pred, gt: (B, N) distances in NDC units; delta: NDC units (0.2 in the paper).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"udf_loss: prediction {tuple(pred.shape)} and target {tuple(gt.shape)} differ")
    pred, gt = pred.float(), gt.float()
    if clamp == "both":
        return (pred.clamp(max=delta) - gt.clamp(max=delta)).abs().mean()
    if clamp != "target":
        raise ValueError(f"udf_loss: clamp must be 'both' or 'target', got {clamp!r}")
    near = gt < delta
    return torch.where(near, (pred - gt).abs(), (delta - pred).clamp(min=0.0)).mean()


def _nearest_sq(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, Na, 3), (B, Nb, 3) -> (B, Na) squared distance from each a to its nearest b."""
    out = []
    for i in range(0, a.shape[1], chunk):
        d = (a[:, i:i + chunk, None, :] - b[:, None, :, :]).pow(2).sum(-1)  # (B, c, Nb)
        out.append(d.min(dim=2).values)
    return torch.cat(out, dim=1)


def anchor_chamfer(pred: torch.Tensor, target: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Squared Chamfer distance, both directions, averaged over points and the batch.

    pred: (B, K, 3), target: (B, M, 3) anchors in NDC (K and M may differ). Returns
    mean_k min_m |p_k - t_m|^2 + mean_m min_k |p_k - t_m|^2, averaged over the batch.
    Differences are formed explicitly (no |a|^2 + |b|^2 - 2ab cancellation): with at most
    ``chunk`` predicted anchors as one (B, K, M) matrix whose minima serve both directions,
    else ``chunk`` rows at a time per direction to bound memory.
    """
    if pred.dim() != 3 or target.dim() != 3 or pred.shape[-1] != 3 or target.shape[-1] != 3 \
            or pred.shape[0] != target.shape[0]:
        raise ValueError(f"anchor_chamfer: expected (B, K, 3) and (B, M, 3), got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    pred, target = pred.float(), target.float()
    if pred.shape[1] <= chunk:  # one (B, K, M) matrix serves both directions
        d = (pred[:, :, None, :] - target[:, None, :, :]).pow(2).sum(-1)
        return d.min(dim=2).values.mean() + d.min(dim=1).values.mean()
    return _nearest_sq(pred, target, chunk).mean() + _nearest_sq(target, pred, chunk).mean()


def gda_loss(grad: torch.Tensor, direction: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Gradient direction alignment: mean over masked points of 1 - cos(grad, direction).

    grad: (B, N, 3) spatial gradient of the predicted distance (d f / d p, NDC);
    direction: (B, N, 3) ground-truth (p - q) / |p - q|; mask: (B, N) bool, the points
    that count (the paper's f < delta). 0 when aligned, 2 when opposite; a zero (still
    differentiable) loss when no point is masked in.
    """
    grad, direction = grad.float(), direction.float()
    cos = (grad * direction).sum(-1) / (grad.norm(dim=-1) * direction.norm(dim=-1)).clamp_min(eps)
    m = mask.to(cos.dtype)
    return ((1.0 - cos) * m).sum() / m.sum().clamp_min(1.0)


def udf_gradient(f: torch.Tensor, points: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """d f / d points with ONE autograd pass: f (B, N) depends per point on points (B, N, 3).

    Because each f[b, n] depends only on points[b, n], the gradient of f.sum() is every
    point's own gradient. ``create_graph`` keeps it differentiable for a loss on it.
    """
    (grad,) = torch.autograd.grad(f.float().sum(), points, create_graph=create_graph)
    return grad
