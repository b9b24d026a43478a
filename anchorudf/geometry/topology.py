"""Mesh topology helpers: edge enumeration, boundary edges and loops, connected pieces.

Faces are integer vertex-id arrays, (F, 3) triangles (or (F, k) polygons where said);
nothing here looks at coordinates, so the frame and units do not matter.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def face_edges(faces: np.ndarray, order: Literal["corner", "face"] = "corner") -> np.ndarray:
    """(k F, 2) directed edges ``(v_j, v_{j+1 mod k})`` of (F, k) polygon faces, in winding.

    ``order="corner"``: all faces' first edges (v0->v1), then all second edges (v1->v2),
    ...; row ``r`` belongs to face ``r % F`` (for triangles: ``[f[:, [0, 1]], f[:, [1, 2]],
    f[:, [2, 0]]]`` stacked). ``order="face"``: each face's k edges in turn; row ``r``
    belongs to face ``r // k``. The dtype of ``faces`` is kept; rows are not sorted.
    """
    f = np.asarray(faces)
    pairs = np.stack([f, np.roll(f, -1, axis=1)], axis=2)  # (F, k, 2)
    if order == "corner":
        return pairs.transpose(1, 0, 2).reshape(-1, 2)
    if order == "face":
        return pairs.reshape(-1, 2)
    raise ValueError(f"face_edges: order must be 'corner' or 'face', got {order!r}")


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) undirected edges of the faces, each once, vertex ids sorted within a row,
    rows in lexicographic order."""
    return np.unique(np.sort(face_edges(faces), axis=1), axis=0)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) edges used by exactly one triangle (the open boundary), vertex ids sorted."""
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.sort(face_edges(f), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return uniq[counts == 1]


def boundary_half_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) directed edges a->b, in their face's winding, used by exactly one face
    (rows in :func:`face_edges` corner order)."""
    he = face_edges(faces)
    _, inv, counts = np.unique(np.sort(he, axis=1), axis=0, return_inverse=True, return_counts=True)
    return he[counts[inv.ravel()] == 1]


def boundary_loops(faces: np.ndarray) -> int:
    """Number of boundary loops: connected components of the graph of boundary edges.

    A watertight mesh has 0; a T-shirt has 4 (neck, waist, two sleeves).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = boundary_edges(faces)
    if len(e) == 0:
        return 0
    verts, inv = np.unique(e.ravel(), return_inverse=True)
    inv = inv.reshape(-1, 2)
    n = len(verts)
    graph = coo_matrix((np.ones(len(inv)), (inv[:, 0], inv[:, 1])), shape=(n, n))
    count, _ = connected_components(graph, directed=False)
    return int(count)


def face_components(faces: np.ndarray) -> np.ndarray:
    """Label per face of its connected piece (faces sharing an edge are connected)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.sort(face_edges(f), axis=1)
    face_of_edge = np.tile(np.arange(len(f)), 3)
    _, edge_id = np.unique(edges, axis=0, return_inverse=True)
    edge_id = edge_id.ravel()
    order = np.argsort(edge_id, kind="stable")
    e_sorted, f_sorted = edge_id[order], face_of_edge[order]
    same = e_sorted[1:] == e_sorted[:-1]
    a, b = f_sorted[:-1][same], f_sorted[1:][same]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(f), len(f)))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)
