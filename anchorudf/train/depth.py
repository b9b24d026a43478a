"""Depth supervision of the image features (``model.depth_head``, ``train.lambda_depth``).

What a single view hides is depth: a small model trained for minutes learns the
garment's outline long before it learns how far each part is from the camera, and its
field becomes a slab of constant thickness. The depth head asks every stack's feature map
for it directly: per feature cell, the NDC depth (z, towards the camera) of the nearest
and of the farthest garment surface seen through that cell, an L1 loss over the cells the
garment covers. The targets come from the garment's surface samples (the anchors cache's
``surface`` array), mapped by the same (augmented) calib as the query points, so they
agree with the pixels by construction.

Cells follow the feature map's sampling: a map of side ``s`` has cell ``(i, j)`` centred at
NDC ``x = (2j + 1) / s - 1``, ``y = 1 - (2i + 1) / s`` (``grid_sample`` with
``align_corners=False`` on ``(x, -y)``, as :func:`anchorudf.models.position.sample_image_features`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from anchorudf.config import Params

#: Surface samples per garment kept for the targets (a fixed stride through the cache's).
SURFACE_SAMPLES = 20000


def depth_side(params: Params) -> int | None:
    """Side of the depth targets (the coarse feature map's) for ``params``, or None when
    the model has no depth head (items then carry no depth targets)."""
    if not params.model.depth_head:
        return None
    from anchorudf.models.hourglass import feature_side

    return feature_side(params.model.coarse_size or params.render.size)


def depth_targets(surface_ndc: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, 3) NDC surface samples -> ``depth`` (2, side, side) float32, [nearest, farthest]
    z per cell (max and min z of the samples in it), and ``covered`` (1, side, side)
    float32, 1 where the cell holds a sample (``depth`` is 0 elsewhere)."""
    p = np.asarray(surface_ndc, dtype=np.float64)
    j = np.floor((p[:, 0] + 1.0) * 0.5 * side).astype(np.int64)
    i = np.floor((1.0 - p[:, 1]) * 0.5 * side).astype(np.int64)
    ok = (i >= 0) & (i < side) & (j >= 0) & (j < side)
    cell, z = i[ok] * side + j[ok], p[ok, 2]
    near = np.full(side * side, -np.inf)
    far = np.full(side * side, np.inf)
    np.maximum.at(near, cell, z)
    np.minimum.at(far, cell, z)
    covered = np.isfinite(near)
    depth = np.zeros((2, side * side), np.float32)
    depth[0, covered], depth[1, covered] = near[covered], far[covered]
    return depth.reshape(2, side, side), covered.astype(np.float32).reshape(1, side, side)


def surface_subset(surface: np.ndarray, count: int = SURFACE_SAMPLES) -> np.ndarray:
    """Every k-th of the cached surface samples, at most ``count`` (float32, garment frame)."""
    stride = max(1, -(-len(surface) // count))
    return np.ascontiguousarray(surface[::stride], dtype=np.float32)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over covered cells and both depths.

    pred, target: (B, 2, s, s) NDC z; covered: (B, 1, s, s) in {0, 1}. 0 (differentiable)
    when no cell is covered."""
    if pred.shape != target.shape:
        raise ValueError(f"depth_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    w = covered.to(torch.float32).expand_as(target)
    err = (pred.float() - target.float()).abs() * w
    return err.sum() / w.sum().clamp_min(1.0)
