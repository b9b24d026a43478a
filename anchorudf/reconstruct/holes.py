"""Closing small holes of a mesh extracted from a noisy UDF.

A learned UDF that is not quite zero everywhere on the surface leaves pin holes in the
extracted mesh: boundary loops of a few cell edges. Real openings of a garment (neck,
sleeves, hems, waist) are loops of many cells, so closing only loops of at most
``max_edges`` edges removes the pin holes and keeps the garment open.
"""

from __future__ import annotations

import numpy as np


def _boundary_half_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) directed edges a->b, in their face's winding, used by exactly one face."""
    from anchorudf.geometry.topology import boundary_half_edges

    return boundary_half_edges(faces)


def fill_small_holes(vertices: np.ndarray, faces: np.ndarray,
                     max_edges: int) -> tuple[np.ndarray, np.ndarray]:
    """Close every simple boundary loop of at most ``max_edges`` edges.

    Each such loop gets a vertex at its centroid and a fan of triangles wound against the
    loop's boundary edges, so the filled piece keeps a consistent orientation. Loops that
    touch another loop (a vertex with more than two boundary edges) are left alone.
    Returns new (V', 3) vertices (the old ones first, unchanged) and (F', 3) faces.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if max_edges < 3 or len(f) == 0:
        return v, f
    bhe = _boundary_half_edges(f)
    if len(bhe) == 0:
        return v, f
    degree = np.bincount(bhe.ravel(), minlength=len(v))
    nxt = dict(zip(bhe[:, 0].tolist(), bhe[:, 1].tolist()))
    seen: set[int] = set()
    new_v: list[np.ndarray] = []
    new_f: list[list[int]] = []
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, cur, simple = [start], nxt.get(start), degree[start] == 2
        while cur is not None and cur != start and len(loop) <= len(bhe):
            simple &= degree[cur] == 2
            loop.append(cur)
            cur = nxt.get(cur)
        seen.update(loop)
        if cur != start or not simple or not 3 <= len(loop) <= max_edges:
            continue
        centre = len(v) + len(new_v)
        new_v.append(v[loop].mean(axis=0))
        for p, q in zip(loop, loop[1:] + loop[:1]):
            new_f.append([q, p, centre])  # the edge p->q is used in the opposite direction
    if not new_v:
        return v, f
    return np.concatenate([v, np.array(new_v)]), np.concatenate([f, np.array(new_f, dtype=np.int64)])
