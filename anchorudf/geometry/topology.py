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


def unique_rows(rows: np.ndarray, return_index: bool = False, return_inverse: bool = False,
                return_counts: bool = False):
    """``np.unique(rows, axis=0, ...)`` of an (N, k) integer array, the same outputs (rows in
    lexicographic order, first occurrences, a flat inverse), several times faster.

    The rows are packed into one int64 key each (mixed radix over each column's range,
    ``key = ((r0 - m0) * s1 + (r1 - m1)) * s2 + ...``, which sorts as the rows do) and the
    keys go through 1-D ``np.unique``; row-wise ``np.unique`` sorts a structured view
    instead, which dominated meshing and the topology metrics. Falls back to it when the
    ranges do not fit in 62 bits.
    """
    a = np.asarray(rows)
    extras = (return_index, return_inverse, return_counts)
    span = _packing_span(a)
    if span is None:
        out = np.unique(a, axis=0, return_index=return_index, return_inverse=return_inverse,
                        return_counts=return_counts)
        return _ravel_inverse(out, extras)
    lo = a.min(axis=0).astype(np.int64)
    key = np.zeros(len(a), dtype=np.int64)
    for j in range(a.shape[1]):
        key = key * span[j] + (a[:, j].astype(np.int64) - lo[j])
    out = np.unique(key, return_index=return_index, return_inverse=return_inverse,
                    return_counts=return_counts)
    keys = out[0] if any(extras) else out
    uniq = np.empty((len(keys), a.shape[1]), dtype=a.dtype)
    for j in range(a.shape[1] - 1, -1, -1):
        uniq[:, j] = keys % span[j] + lo[j]
        keys = keys // span[j]
    return _ravel_inverse((uniq, *out[1:]), extras) if any(extras) else uniq


def _packing_span(a: np.ndarray) -> np.ndarray | None:
    """Per-column value range of a non-empty (N, k) integer array when the ranges' product
    fits in 62 bits (rows then pack into one int64 key), else None."""
    if a.ndim != 2 or len(a) == 0 or a.dtype.kind not in "iu":
        return None
    lo, hi = a.min(axis=0), a.max(axis=0)
    if lo.min() < -(2 ** 62) or hi.max() >= 2 ** 62:
        return None
    span = hi.astype(np.int64) - lo.astype(np.int64) + 1
    return span if np.sum(np.log2(span.astype(np.float64))) < 62 else None


def _ravel_inverse(out, extras: tuple[bool, bool, bool]):
    """``np.unique``'s outputs with the inverse (when asked for) flattened."""
    if not any(extras):
        return out
    out = list(out)
    if extras[1]:
        out[1 + extras[0]] = np.asarray(out[1 + extras[0]]).ravel()
    return tuple(out)


def unique_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) undirected edges of the faces, each once, vertex ids sorted within a row,
    rows in lexicographic order."""
    return unique_rows(np.sort(face_edges(faces), axis=1))


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) edges used by exactly one triangle (the open boundary), vertex ids sorted."""
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.sort(face_edges(f), axis=1)
    uniq, counts = unique_rows(edges, return_counts=True)
    return uniq[counts == 1]


def boundary_half_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) directed edges a->b, in their face's winding, used by exactly one face
    (rows in :func:`face_edges` corner order)."""
    he = face_edges(faces)
    _, inv, counts = unique_rows(np.sort(he, axis=1), return_inverse=True, return_counts=True)
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
    _, edge_id = unique_rows(edges, return_inverse=True)
    edge_id = edge_id.ravel()
    order = np.argsort(edge_id, kind="stable")
    e_sorted, f_sorted = edge_id[order], face_of_edge[order]
    same = e_sorted[1:] == e_sorted[:-1]
    a, b = f_sorted[:-1][same], f_sorted[1:][same]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(f), len(f)))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def edge_face_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 2) undirected edges (sorted ids, rows sorted) and (E,) how many faces use each."""
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return unique_rows(np.sort(face_edges(f), axis=1), return_counts=True)


def nonmanifold_edges(faces: np.ndarray) -> np.ndarray:
    """(K, 2) edges (sorted ids) used by more than two faces."""
    edges, counts = edge_face_counts(faces)
    return edges[counts > 2]


def corner_fans(faces: np.ndarray) -> np.ndarray:
    """(F, 3) fan id of every face corner.

    The corners of one vertex belong to one fan when their faces are joined through
    edges that contain the vertex (the faces around a manifold vertex form one fan, a
    disk or a half-disk). Fan ids are 0..n_fans-1.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64)
    nf = len(f)
    if nf == 0:
        return np.zeros((0, 3), dtype=np.int64)
    corner = np.arange(3 * nf).reshape(nf, 3)
    # Each corner (f, k) of vertex v touches the edges (v, f[k+1]) and (v, f[k+2]).
    keys, ids = [], []
    for step in (1, 2):
        keys.append(np.stack([f, np.roll(f, -step, axis=1)], axis=2).reshape(-1, 2))
        ids.append(corner.ravel())
    keys, ids = np.concatenate(keys), np.concatenate(ids)
    _, group = unique_rows(keys, return_inverse=True)
    group = group.ravel()
    order = np.argsort(group, kind="stable")
    g, c = group[order], ids[order]
    same = g[1:] == g[:-1]
    graph = coo_matrix((np.ones(int(same.sum())), (c[:-1][same], c[1:][same])), shape=(3 * nf, 3 * nf))
    _, fans = connected_components(graph, directed=False)
    _, fans = np.unique(fans, return_inverse=True)
    return fans.reshape(nf, 3).astype(np.int64)


def nonmanifold_vertices(faces: np.ndarray) -> np.ndarray:
    """(K,) sorted ids of vertices whose faces form more than one fan (a bow-tie, two
    sheets touching at a point) or that lie on a non-manifold edge."""
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return np.zeros(0, dtype=np.int64)
    fans = corner_fans(f)
    pairs = unique_rows(np.c_[f.ravel(), fans.ravel()])
    verts, count = np.unique(pairs[:, 0], return_counts=True)
    bad = set(verts[count > 1].tolist()) | set(nonmanifold_edges(f).ravel().tolist())
    return np.array(sorted(bad), dtype=np.int64)


def split_nonmanifold_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give every fan of a vertex its own copy of the vertex (positions unchanged).

    A bow-tie vertex becomes two vertices; faces keep their order and winding. Vertices
    on non-manifold edges are left alone (split the edges' faces first). Returns new
    (V', 3) vertices (the old ones first) and (F, 3) faces.
    """
    v = np.asarray(vertices)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return v, f
    fans = corner_fans(f)
    pairs, first = unique_rows(np.c_[f.ravel(), fans.ravel()], return_index=True)
    # The fan met first (lowest corner) keeps the vertex id; the others get new ids.
    order = np.lexsort((first, pairs[:, 0]))
    pairs = pairs[order]
    leader = np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]
    new_id = np.empty(len(pairs), dtype=np.int64)
    new_id[leader] = pairs[leader, 0]
    extra = np.flatnonzero(~leader)
    new_id[extra] = len(v) + np.arange(len(extra))
    fan_to_id = np.empty(int(fans.max()) + 1, dtype=np.int64)
    fan_to_id[pairs[:, 1]] = new_id
    out = fan_to_id[fans]
    return np.concatenate([v, v[pairs[extra, 0]]]), out


def connected_pieces(faces: np.ndarray) -> int:
    """Number of edge-connected pieces of the faces (0 for no faces)."""
    f = np.asarray(faces, dtype=np.int64)
    return int(len(np.unique(face_components(f)))) if len(f) else 0


def boundary_length(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Total length of the boundary edges (edges of one face), in the vertices' units."""
    e = boundary_edges(faces)
    v = np.asarray(vertices, dtype=np.float64)
    return float(np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1).sum()) if len(e) else 0.0


def mesh_topology(vertices: np.ndarray, faces: np.ndarray) -> dict:
    """Boundary loops, non-manifold edges and vertices, pieces and boundary length of a mesh."""
    return {"boundary_loops": boundary_loops(faces) if len(faces) else 0,
            "nonmanifold_edges": int(len(nonmanifold_edges(faces))),
            "nonmanifold_vertices": int(len(nonmanifold_vertices(faces))),
            "pieces": connected_pieces(faces),
            "boundary_length": boundary_length(vertices, faces)}
