"""k-means anchor targets: cluster centres of surface samples.

Frame: whatever frame the points are in (the garment frame in the cache; the training
step maps anchors to NDC with each view's calib).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def canonical_order(centres: np.ndarray) -> np.ndarray:
    """Rows sorted lexicographically by (x, y, z): a stable order independent of labels."""
    c = np.asarray(centres)
    return c[np.lexsort((c[:, 2], c[:, 1], c[:, 0]))]


def kmeans_anchors(points: np.ndarray, count: int, seed: int,
                   method: Literal["kmeans", "minibatch"] = "kmeans") -> np.ndarray:
    """(count, 3) float32 k-means centres of ``points`` (N, 3), sorted by (x, y, z).

    ``kmeans``: scikit-learn ``KMeans(n_init=1)``; ``minibatch``: ``MiniBatchKMeans``
    with batch 4096 (about 7x faster, a few % worse inertia). The fit runs on one OpenMP
    thread: scikit-learn merges per-thread partial sums in a nondeterministic order, and
    byte-identical anchors matter more than the seconds saved.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    p = np.asarray(points, dtype=np.float64)
    count = int(count)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points: expected an (N, 3) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points: contain NaN or infinite coordinates")
    if not 1 <= count <= len(p):
        raise ValueError(f"count: need 1 <= count <= number of points ({len(p)}), got {count}")
    if method == "kmeans":
        km = KMeans(n_clusters=count, n_init=1, random_state=int(seed))
    elif method == "minibatch":
        km = MiniBatchKMeans(n_clusters=count, n_init=1, batch_size=4096, random_state=int(seed))
    else:
        raise ValueError(f"method: {method!r} is not one of ['kmeans', 'minibatch']")
    with threadpool_limits(limits=1, user_api="openmp"):
        km.fit(p)
    return canonical_order(km.cluster_centers_.astype(np.float32))
