"""Nearest-neighbour distances between point clouds and the paper's Chamfer distance.

Frames and units: both clouds must share one frame; distances come out in its units
(unsquared from :func:`nn_dist`, squared in :func:`paper_chamfer`). The paper reports its
Chamfer with both clouds in ``[0, 1]^3`` (:func:`ndc_to_paper` maps NDC ``[-1, 1]^3``
there), x 1e3; the diversity report uses the normalised garment frame instead.

Nearest neighbours go through ``scipy.spatial.cKDTree`` (all cores): O((N + M) log M) time
and O(N + M) memory, never an N x M distance matrix.
"""

from __future__ import annotations

import numpy as np


def as_cloud(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as a non-empty finite (N, 3) float64 array, or ValueError naming ``name``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise ValueError(f"{name}: expected a non-empty (N, 3) point array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or infinite coordinates")
    return a


def nn_dist(src: np.ndarray, dst) -> np.ndarray:
    """(N,) unsquared distance from each of (N, 3) ``src`` to its nearest of (M, 3) ``dst``.

    ``dst`` may also be a ``cKDTree`` built on the target points, to reuse it across calls.
    """
    from scipy.spatial import cKDTree

    tree = dst if isinstance(dst, cKDTree) else cKDTree(as_cloud(dst, "dst"))
    d, _ = tree.query(as_cloud(src, "src"), k=1, workers=-1)
    return d


def ndc_to_paper(points_ndc: np.ndarray) -> np.ndarray:
    """NDC ``[-1, 1]^3`` -> the paper's metric frame ``[0, 1]^3``: ``(x + 1) / 2``."""
    return (np.asarray(points_ndc, dtype=np.float64) + 1.0) * 0.5


def squared_chamfer(d_ab: np.ndarray, d_ba: np.ndarray) -> float:
    """``0.5 * (mean d_ab^2 + mean d_ba^2)`` of the nearest-neighbour distances both ways."""
    return float(0.5 * (np.mean(d_ab ** 2) + np.mean(d_ba ** 2)))


def paper_chamfer(pred: np.ndarray, gt: np.ndarray) -> float:
    """``0.5 * (mean d^2(pred -> gt) + mean d^2(gt -> pred))``, squared, in the clouds'
    frame (the paper's ``[0, 1]^3`` for its table)."""
    return squared_chamfer(nn_dist(pred, gt), nn_dist(gt, pred))
