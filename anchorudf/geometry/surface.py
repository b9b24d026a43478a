"""Open-surface tools: subdivision, clipping by a field, compaction, pieces, normals,
smoothing, push-out of a closed body, cylinder grids and boundary loops.

Frames and units: none is assumed unless a function says so. Vertex positions are (V, 3)
float64 in any frame; lengths (``margin``, ``snap``) are in the units of those positions.
Where a function carries per-vertex ``data`` (V, D) rows instead of positions, the rows
may hold positions and attributes side by side (e.g. posed xyz, rest xyz, weights); they
are interpolated linearly. Faces are (F, 3) int64 triangles (or (Q, 4) quads where said),
outward winding, and every function keeps the winding.
"""

from __future__ import annotations

import numpy as np

from anchorudf.geometry.topology import (boundary_edges, boundary_half_edges, face_components, face_edges,
                                        unique_edges, unique_rows)


def subdivide_quads(quads: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One linear quad subdivision: each quad -> 4 (edge midpoints + centre).

    ``data`` (V, D) is interpolated linearly; returns (quads (4Q, 4), data (V', D)) with the
    original vertices first, then one vertex per unique edge, then one per quad. Winding
    is kept.
    """
    q = np.asarray(quads, dtype=np.int64)
    n = len(data)
    edges = face_edges(q, order="face")  # (4Q, 2)
    key = np.sort(edges, axis=1)
    uniq, inv = unique_rows(key, return_inverse=True)
    mid = n + inv.reshape(-1, 4)  # (Q, 4): midpoint of edge (q[k], q[k+1])
    centre = n + len(uniq) + np.arange(len(q))
    new = np.concatenate([data, 0.5 * (data[uniq[:, 0]] + data[uniq[:, 1]]), data[q].mean(axis=1)])
    out = []
    for k in range(4):
        out.append(np.stack([q[:, k], mid[:, k], centre, mid[:, k - 1]], axis=1))
    return np.concatenate(out), new


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """Split each quad (a, b, c, d) into (a, b, c) and (a, c, d); winding kept."""
    q = np.asarray(quads, dtype=np.int64)
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


def clip_mesh(faces: np.ndarray, data: np.ndarray, phi: np.ndarray,
              snap: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of a triangle mesh where the per-vertex field ``phi <= 0``.

    Triangles crossing the zero level are cut along it (linear interpolation on edges,
    one shared new vertex per cut edge, so the piece stays connected and the cut is a clean
    boundary). Values within ``snap`` of 0 (units of ``phi``) count as on the level: such a
    vertex is reused instead of a coincident new one, and the degenerate triangles this
    leaves are dropped. ``data`` (V, D) rows are interpolated. Returns (faces, data)
    without unreferenced vertices; winding is kept.
    """
    f = np.asarray(faces, dtype=np.int64)
    phi = np.asarray(phi, dtype=np.float64)
    phi = np.where(np.abs(phi) <= snap, 0.0, phi)
    inside = phi[f] <= 0  # (F, 3)
    count = inside.sum(axis=1)
    keep = [f[count == 3]]
    # Rotate each cut triangle so that its odd vertex (the lone in or lone out) comes first.
    part = (count == 1) | (count == 2)
    cut, cin = f[part], inside[part]
    lone_in = cin.sum(axis=1) == 1
    odd = np.where(lone_in, np.argmax(cin, axis=1), np.argmin(cin, axis=1))
    tri = np.take_along_axis(cut, (odd[:, None] + np.arange(3)[None]) % 3, axis=1)  # a (odd), b, c
    # The two cut edges of each rotated triangle, a-b and c-a (not a face-edge enumeration).
    key = np.concatenate([np.sort(tri[:, [0, 1]], axis=1), np.sort(tri[:, [2, 0]], axis=1)])
    uniq, inv = unique_rows(key, return_inverse=True)
    p0, p1 = phi[uniq[:, 0]], phi[uniq[:, 1]]
    t = np.divide(p0, p0 - p1, out=np.zeros_like(p0), where=p0 != p1)
    new = data[uniq[:, 0]] + t[:, None] * (data[uniq[:, 1]] - data[uniq[:, 0]])
    point = np.where(p0 == 0, uniq[:, 0], np.where(p1 == 0, uniq[:, 1], len(data) + np.arange(len(uniq))))
    p_ab, p_ca = point[inv[: len(tri)]], point[inv[len(tri):]]
    a, b, c = tri[lone_in].T
    keep.append(np.stack([a, p_ab[lone_in], p_ca[lone_in]], axis=1))
    a, b, c = tri[~lone_in].T  # a is the lone outside vertex: keep quad b, c, p_ca, p_ab
    pab, pca = p_ab[~lone_in], p_ca[~lone_in]
    keep.append(np.stack([b, c, pca], axis=1))
    keep.append(np.stack([b, pca, pab], axis=1))
    out = np.concatenate(keep)
    good = (out[:, 0] != out[:, 1]) & (out[:, 1] != out[:, 2]) & (out[:, 2] != out[:, 0])
    return compact(out[good], np.concatenate([data, new]))


def compact(faces: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unreferenced vertices (order of the rest kept); returns (faces, data)."""
    used, inv = np.unique(faces, return_inverse=True)
    return inv.reshape(faces.shape).astype(np.int64), data[used]


def largest_piece(faces: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edge-connected piece with the most faces (ties: lowest label), compacted."""
    labels = face_components(faces)
    best = np.argmax(np.bincount(labels))
    return compact(faces[labels == best], data)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals, frame of ``vertices`` (zero for isolated
    vertices)."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def smoothing_operator(faces: np.ndarray, n: int):
    """Sparse (n, n) row-stochastic umbrella operator; boundary vertices average over their
    boundary neighbours only, so cut edges stay clean lines instead of shrinking inwards."""
    from scipy.sparse import coo_matrix, diags

    e = unique_edges(faces)
    be = boundary_edges(faces)
    on_b = np.zeros(n, bool)
    on_b[be.ravel()] = True
    interior = e[~(on_b[e[:, 0]] | on_b[e[:, 1]])]
    mixed = e[on_b[e[:, 0]] ^ on_b[e[:, 1]]]
    inner_end = np.where(on_b[mixed[:, 0]], mixed[:, 1], mixed[:, 0])
    outer_end = np.where(on_b[mixed[:, 0]], mixed[:, 0], mixed[:, 1])
    rows = np.concatenate([interior[:, 0], interior[:, 1], be[:, 0], be[:, 1], inner_end])
    cols = np.concatenate([interior[:, 1], interior[:, 0], be[:, 1], be[:, 0], outer_end])
    a = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    return diags(1.0 / np.maximum(deg, 1)) @ a


def taubin(vertices: np.ndarray, op, iterations: int, lam: float = 0.5, mu: float = -0.53) -> np.ndarray:
    """Taubin smoothing (low-pass without much shrinkage) with the operator ``op``
    (:func:`smoothing_operator`); positions stay in their frame and units."""
    v = vertices.copy()
    for _ in range(iterations):
        v = v + lam * (op @ v - v)
        v = v + mu * (op @ v - v)
    return v


def push_out(points: np.ndarray, body, margin: float,
             rounds: tuple[int, ...] = (8, 32, 96)) -> tuple[np.ndarray, int]:
    """Move points inside the closed ``body`` (trimesh, same frame as ``points``) just
    outside it.

    Inside is ray parity (``body.contains``; Embree when embreex is installed), the same
    test the garment checks use. In round r a point still inside goes to the nearest of its
    candidates that is outside: its ``rounds[r]`` closest body vertices, each offset along
    its vertex normal by 1, 2, 4 or 8 times ``margin`` (units of the positions; metres for
    anny bodies). More candidates resolve creases where a vertex's normal points into
    another body part (armpit, crotch). Returns the points and how many are still inside
    (0 when clean).
    """
    from scipy.spatial import cKDTree

    pts = np.array(points, dtype=np.float64)
    verts, normals = np.asarray(body.vertices), np.asarray(body.vertex_normals)
    tree = cKDTree(verts)
    steps = margin * np.array([1.0, 2.0, 4.0, 8.0])
    inside = np.nonzero(body.contains(pts))[0]
    for k in rounds:
        if len(inside) == 0:
            break
        _, near = tree.query(pts[inside], k=min(k, len(verts)))  # (I, k)
        near = near.reshape(len(inside), -1)
        cand = (verts[near][:, :, None] + normals[near][:, :, None] * steps[:, None]).reshape(len(inside), -1, 3)
        ok = ~body.contains(cand.reshape(-1, 3)).reshape(len(inside), -1)
        dist = np.where(ok, np.linalg.norm(cand - pts[inside][:, None], axis=2), np.inf)
        best = np.argmin(dist, axis=1)
        found = np.isfinite(dist[np.arange(len(inside)), best])
        pts[inside[found]] = cand[found, best[found]]
        inside = inside[~found]
    return pts, len(inside)


def cylinder_grid_faces(rows: int, n: int) -> np.ndarray:
    """Triangles of a (rows+1) x n cylinder grid (vertex ``k * n + j``: row k, column j),
    columns by increasing angle: outward."""
    k, j = np.meshgrid(np.arange(rows), np.arange(n), indexing="ij")
    a, d = k * n + j, k * n + (j + 1) % n
    b, c = a + n, d + n
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])


def loop_around_axis(verts: np.ndarray, faces: np.ndarray, centre: np.ndarray, highest: bool = False) -> np.ndarray:
    """Vertex ids, in half-edge order, of the lowest boundary loop that goes once around
    the vertical axis through ``centre`` (the hem; neck and cuffs are above or beside), or
    of the highest such loop when ``highest`` (a top's neckline, with the axis up the neck).

    Frame: +Z is vertical (the anny frame); ``centre`` is the (x, y) of the axis.
    """
    border = boundary_half_edges(faces)
    nxt = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    loops, seen = [], set()
    for start in border[:, 0].tolist():
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loop = np.array(loop)
        ang = np.arctan2(verts[loop, 1] - centre[1], verts[loop, 0] - centre[0])
        turns = np.angle(np.exp(1j * np.diff(np.append(ang, ang[0])))).sum() / (2 * np.pi)
        if abs(abs(turns) - 1.0) < 0.25:
            loops.append(loop)
    if not loops:
        raise ValueError("no boundary loop goes around the body axis")
    height = lambda l: verts[l, 2].mean()  # noqa: E731
    return max(loops, key=height) if highest else min(loops, key=height)
