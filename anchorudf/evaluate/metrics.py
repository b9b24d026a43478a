"""Point-cloud and point-to-surface metrics (numpy in, floats out).

Frames and units
----------------
- ``paper_*``: both clouds already mapped into the paper's ``[0, 1]^3`` frame
  (:func:`ndc_to_paper`), distances **squared**, not multiplied by 1e3. The paper prints
  these x 1e3.
- ``chamfer_l1``, ``fscore``, ``p2s_exact``: unsquared distances in whatever frame the
  inputs share (the project reports them in the normalised garment frame).

Nearest neighbours go through ``scipy.spatial.cKDTree`` (all cores): O((N + M) log M) time
and O(N + M) memory, never an N x M distance matrix.
"""

from __future__ import annotations

import numpy as np

# The distance kernels live in the geometry layer (the data layer's diversity report uses
# them too); re-exported here as part of the evaluation API.
from anchorudf.geometry.distance import as_cloud as _cloud
from anchorudf.geometry.distance import ndc_to_paper, nn_dist, paper_chamfer, squared_chamfer  # noqa: F401


def paper_p2s(pred: np.ndarray, gt: np.ndarray) -> float:
    """The paper's "P2S": mean squared distance from ``pred`` to the nearest *gt sample*."""
    return float(np.mean(nn_dist(pred, gt) ** 2))


def chamfer_l1(pred: np.ndarray, gt: np.ndarray) -> float:
    """``0.5 * (mean d(pred -> gt) + mean d(gt -> pred))``, unsquared."""
    return float(0.5 * (np.mean(nn_dist(pred, gt)) + np.mean(nn_dist(gt, pred))))


def fscore(pred: np.ndarray, gt: np.ndarray, threshold: float) -> float:
    """Harmonic mean of precision (share of ``pred`` within ``threshold`` of ``gt``) and
    recall (share of ``gt`` within ``threshold`` of ``pred``); 0 when both are 0."""
    if not threshold > 0:
        raise ValueError(f"fscore: threshold must be > 0, got {threshold}")
    precision = float(np.mean(nn_dist(pred, gt) < threshold))
    recall = float(np.mean(nn_dist(gt, pred) < threshold))
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def p2s_exact(pred: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> float:
    """Mean unsquared distance from (N, 3) ``pred`` to the triangles of the gt mesh (exact)."""
    from anchorudf.geometry.closest import closest_points

    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"p2s_exact: expected non-empty (F, 3) faces, got shape {f.shape}")
    udf, _ = closest_points(_cloud(vertices, "vertices"), f, _cloud(pred, "pred"))
    return float(np.mean(np.asarray(udf, dtype=np.float64)))


def point_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float) -> dict[str, float]:
    """Chamfer-L1, F-score and the two squared paper metrics of clouds in one frame.

    One KD-tree query per direction serves all four. The squared paper metrics are only
    comparable with the paper when the inputs are in its ``[0, 1]^3`` frame.
    """
    return distance_metrics(nn_dist(pred, gt), nn_dist(gt, pred), threshold)


def distance_metrics(d_pg: np.ndarray, d_gp: np.ndarray, threshold: float) -> dict[str, float]:
    """:func:`point_metrics` from the nearest-neighbour distances both ways (pred -> gt,
    gt -> pred), unsquared, in the frame ``threshold`` is in. Under a similarity transform
    the nearest neighbours stay the same and the distances scale: the distances of one
    frame, multiplied by its scale, serve every other (``score`` queries once in NDC)."""
    p, r = float(np.mean(d_pg < threshold)), float(np.mean(d_gp < threshold))
    return {
        "chamfer_l1": float(0.5 * (d_pg.mean() + d_gp.mean())),
        "fscore": 0.0 if p + r == 0 else 2 * p * r / (p + r),
        "paper_chamfer": squared_chamfer(d_pg, d_gp),
        "paper_p2s": float(np.mean(d_pg ** 2)),
    }


def side_silhouette_iou(pred_ndc: np.ndarray, gt_ndc: np.ndarray, resolution: int = 64) -> float:
    """IoU of the two clouds' silhouettes seen from 90 degrees to the side of the view.

    Both clouds are in the view's NDC (x right, y up, z towards the camera); the side view
    looks along x, so each cloud is splatted onto the (z, y) plane over [-1, 1]^2 at
    ``resolution`` px, closed by one pixel and hole-filled (a dense cloud's splat has gaps
    between points; a silhouette has none). A reconstruction of the right depth profile
    scores near 1; a constant-thickness slab of the right front view does not.
    """
    from scipy import ndimage

    def silhouette(points: np.ndarray) -> np.ndarray:
        img = np.zeros((resolution, resolution), dtype=bool)
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if len(pts):
            ij = np.floor((pts[:, [1, 2]] + 1.0) * (0.5 * resolution)).astype(np.int64)
            ok = ((ij >= 0) & (ij < resolution)).all(axis=1)
            img[ij[ok, 0], ij[ok, 1]] = True
        img = ndimage.binary_closing(img, iterations=1, border_value=0)
        return ndimage.binary_fill_holes(img)

    a, b = silhouette(pred_ndc), silhouette(gt_ndc)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")
