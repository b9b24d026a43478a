"""How far each test garment is from the training set (a guard against look-up-table data).

Distances follow the paper's Chamfer convention, in the canonical normalised garment frame
(bounding-box centre at the origin, largest extent 1): for surface samples A and B,

    chamfer(A, B) = 0.5 * (mean_a min_b |a - b|^2 + mean_b min_a |a - b|^2)

i.e. squared distances, in (garment-frame units)^2 (the shared kernel is
:func:`anchorudf.geometry.distance.paper_chamfer`). No alignment beyond the normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def normalised_samples(mesh, n_points: int, seed: int) -> np.ndarray:
    """(n_points, 3) area-uniform surface samples of ``mesh`` in its canonical frame
    (bbox centred, largest extent 1). Seeded: same mesh and seed, same points."""
    from anchorudf.geometry.sampling import surface_samples

    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64)
    lo, hi = v.min(axis=0), v.max(axis=0)
    extent = float((hi - lo).max())
    if len(f) == 0 or extent <= 0:
        raise ValueError("cannot sample a mesh without faces or with zero extent")
    v = (v - 0.5 * (lo + hi)) / extent
    pts, _ = surface_samples(v, f, n_points, np.random.default_rng(seed), pick="choice")
    return pts


def nearest_train_distances(meshes: dict, specs: list, n_points: int = 10000, seed: int = 0):
    """One row per test (and style-shifted) garment: its nearest training garment (over
    all categories) by paper-convention Chamfer in the canonical frame.

    ``meshes``: garment_id -> trimesh; ``specs``: objects with ``garment_id``, ``category``
    and ``split`` (e.g. GarmentSpec); garments without a mesh are skipped. Columns: id,
    category, nearest_train_id, nearest_train_category, chamfer, split (``test`` or
    ``shifted``; rows in ``specs`` order). Each garment is sampled
    with its own seed derived from ``seed`` and its position in ``specs``. Empty frame when
    there is no test or no training garment.
    """
    import pandas as pd
    from scipy.spatial import cKDTree

    cols = ["id", "category", "nearest_train_id", "nearest_train_category", "chamfer", "split"]
    have = [s for s in specs if s.garment_id in meshes]
    pts = {s.garment_id: normalised_samples(meshes[s.garment_id], n_points, seed * 1000003 + i)
           for i, s in enumerate(have)}
    train = [s for s in have if s.split == "train"]
    test = [s for s in have if s.split in ("test", "shifted")]
    if not train or not test:
        return pd.DataFrame(columns=cols)
    trees = {s.garment_id: cKDTree(pts[s.garment_id]) for s in train}
    rows = []
    for t in test:
        tree_t = cKDTree(pts[t.garment_id])
        # Visit candidates from a cheap estimate (first 500 samples) so the exact search
        # below can abandon most pairs early; the result is the exact minimum.
        guess = [_chamfer_bounded(pts[t.garment_id][:500], pts[s.garment_id][:500],
                                  cKDTree(pts[s.garment_id][:500]), cKDTree(pts[t.garment_id][:500]), np.inf)
                 for s in train]
        best, best_s = np.inf, None
        for k in np.argsort(guess, kind="stable"):
            s = train[k]
            d = _chamfer_bounded(pts[t.garment_id], pts[s.garment_id], trees[s.garment_id], tree_t, best)
            if d < best:
                best, best_s = d, s
        rows.append({"id": t.garment_id, "category": t.category, "nearest_train_id": best_s.garment_id,
                     "nearest_train_category": best_s.category, "chamfer": best, "split": t.split})
    return pd.DataFrame(rows, columns=cols)


def _chamfer_bounded(a: np.ndarray, b: np.ndarray, tree_b, tree_a, bound: float, chunk: int = 2000) -> float:
    """Paper Chamfer of samples a, b (:func:`anchorudf.geometry.distance.paper_chamfer`,
    summed chunk by chunk), or ``inf`` as soon as a partial sum proves it is >= ``bound``
    (every unvisited squared distance is >= 0, so partial sums are lower bounds)."""
    from anchorudf.geometry.distance import nn_dist

    total, na, nb = 0.0, len(a), len(b)
    for start in range(0, max(na, nb), chunk):
        if start < na:
            total += 0.5 * float(np.sum(nn_dist(a[start:start + chunk], tree_b) ** 2)) / na
        if start < nb:
            total += 0.5 * float(np.sum(nn_dist(b[start:start + chunk], tree_a) ** 2)) / nb
        if total >= bound:
            return np.inf
    return total


def write_diversity(meshes: dict, specs: list, out: Path) -> dict:
    """Write ``out/diversity.csv`` (:func:`nearest_train_distances` of the garments that
    have a mesh) and return its summary: median, minimum and per-category median of the
    test garments' nearest-train Chamfer, x 1e3, and the median of the style-shifted
    garments' (``shifted_nearest_train_chamfer_median_1e3``, when there are any). Empty
    when there is no test or no training garment."""
    from anchorudf.utils.io import write_text

    from anchorudf.data.manifest import stable_float

    specs = [s for s in specs if s.garment_id in meshes]
    df = nearest_train_distances(meshes, specs)
    df["chamfer"] = [stable_float(c) for c in df["chamfer"]]  # same text across machines
    write_text(Path(out) / "diversity.csv", df.to_csv(index=False, lineterminator="\n"))
    shifted, df = df[df["split"] == "shifted"], df[df["split"] == "test"]
    out = {}
    if not df.empty:
        per_cat = df.groupby("category")["chamfer"].median()
        out = {"nearest_train_chamfer_median_1e3": float(df["chamfer"].median() * 1e3),
               "nearest_train_chamfer_min_1e3": float(df["chamfer"].min() * 1e3),
               "nearest_train_chamfer_by_category_1e3": {k: float(v * 1e3) for k, v in per_cat.items()}}
    if not shifted.empty:
        out["shifted_nearest_train_chamfer_median_1e3"] = float(shifted["chamfer"].median() * 1e3)
    return out
