"""Exact closest points on a triangle mesh: the ground truth of the unsigned distance field.

The search runs through open3d's ``RaycastingScene.compute_closest_points`` (an Embree BVH,
float32 internally). Its answer is then refined in float64: for every query the closest
point on the *chosen* triangle is recomputed exactly with Ericson's region method
(Real-Time Collision Detection, 5.1.5), so distances and closest points are exact to float64
on that triangle. The triangle choice itself is float32: when two triangles are within
float32 rounding (~1e-7 of the coordinates) of each other the other one may be picked,
which changes the distance by no more than that rounding.

All inputs and outputs are in the mesh's own frame and units (the garment frame for
stored garments); distances are unsquared.
"""

from __future__ import annotations

import numpy as np

#: |p - q| below this counts as "on the surface" for the direction (face normal instead).
ON_SURFACE = 1e-12
#: queries per open3d call / float64 refinement block (bounds peak memory to ~100 MB).
CHUNK = 1 << 18


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"vertices: expected a non-empty (V, 3) array, got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"faces: expected a non-empty (F, 3) array, got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected integer vertex ids, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"faces: vertex ids must lie in [0, {len(v) - 1}], got [{f.min()}, {f.max()}]")
    if not np.isfinite(v).all():
        raise ValueError("vertices: contain NaN or infinite coordinates")
    return v, f.astype(np.int64)


def _check_points(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points: expected an (N, 3) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points: contain NaN or infinite coordinates")
    return p


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _segment_closest(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3) closest points on segments [a, b] (zero-length segments allowed)."""
    ab = b - a
    den = _dot(ab, ab)
    t = np.divide(_dot(p - a, ab), den, out=np.zeros(len(p)), where=den > 0)
    return a + np.clip(t, 0.0, 1.0)[:, None] * ab


def point_triangle_closest(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N, 3) float64 closest points of ``p[i]`` on triangles ``(a[i], b[i], c[i])``.

    Ericson's Voronoi-region test, vectorised. Only two dot products depend on the point;
    the other four follow from the edge Gram matrix. Degenerate (zero-area) triangles fall
    back to the nearest of their three edges.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    aa, bb, abc = _dot(ab, ab), _dot(ac, ac), _dot(ab, ac)
    d3, d4 = d1 - aa, d2 - abc     # ab.(p-b), ac.(p-b)
    d5, d6 = d1 - abc, d2 - bb     # ab.(p-c), ac.(p-c)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        e_ab = d1 / (d1 - d3)
        e_ac = d2 / (d2 - d6)
        e_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        den = 1.0 / (va + vb + vc)
        conds = [
            (d1 <= 0) & (d2 <= 0),                              # vertex a
            (d3 >= 0) & (d4 <= d3),                             # vertex b
            (vc <= 0) & (d1 >= 0) & (d3 <= 0),                  # edge ab
            (d6 >= 0) & (d5 <= d6),                             # vertex c
            (vb <= 0) & (d2 >= 0) & (d6 <= 0),                  # edge ac
            (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),        # edge bc
        ]
        v = np.select(conds, [0.0, 1.0, e_ab, 0.0, 0.0, 1.0 - e_bc], vb * den)
        w = np.select(conds, [0.0, 0.0, 0.0, 1.0, e_ac, e_bc], vc * den)
    q = a + v[:, None] * ab + w[:, None] * ac
    # Zero-area triangles (Gram determinant 0) and any non-finite result: nearest edge point.
    bad = ~np.isfinite(q).all(axis=1) | (aa * bb - abc * abc <= 1e-20 * aa * bb)
    if bad.any():
        pb, cands = p[bad], [(a[bad], b[bad]), (b[bad], c[bad]), (c[bad], a[bad])]
        best = np.stack([_segment_closest(pb, s, e) for s, e in cands])          # (3, M, 3)
        k = np.argmin(((best - pb[None]) ** 2).sum(-1), axis=0)
        q[bad] = best[k, np.arange(len(pb))]
    return q


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 10 bits (uint64): x -> x0 0 0 x1 0 0 x2..."""
    x = x & np.uint64(0x3FF)
    for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def morton_order(points: np.ndarray) -> np.ndarray:
    """(N,) permutation sorting points along a 30-bit Morton (Z-order) curve of their box.

    Spatially close queries then walk the same BVH nodes one after the other: 1.2-2x more
    queries/s for scattered points (measured on a 50k-face mesh), for ~0.1 s per 1M points.
    """
    lo = points.min(axis=0)
    span = max(float((points.max(axis=0) - lo).max()), 1e-300)
    q = ((points - lo) * (1023.0 / span)).astype(np.uint64)
    code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << np.uint64(1)) | (_spread_bits(q[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")


class MeshQuery:
    """A BVH over one mesh, reusable for many closest-point queries.

    ``vertices`` (V, 3) float, ``faces`` (F, 3) int; coordinates in any frame, results in
    the same frame. ``threads`` = 0 lets open3d use all cores.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, threads: int = 0):
        import open3d as o3d

        self.vertices, self.faces = _check_mesh(vertices, faces)
        self.threads = int(threads)
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(self.vertices.astype(np.float32)),
                                  o3d.core.Tensor(self.faces.astype(np.uint32)))

    def face_ids(self, points: np.ndarray) -> np.ndarray:
        """(N,) int64 id of the closest triangle per point (float32 BVH search)."""
        import open3d as o3d

        p32 = np.ascontiguousarray(points, dtype=np.float32)
        out = self._scene.compute_closest_points(o3d.core.Tensor(p32), nthreads=self.threads)
        fid = out["primitive_ids"].numpy().astype(np.int64)
        if len(fid) and fid.max() >= len(self.faces):   # open3d's INVALID_ID: nothing was hit
            raise ValueError("mesh: the BVH found no valid triangle (all faces degenerate?)")
        return fid

    def query(self, points: np.ndarray, full: bool = False) -> tuple[np.ndarray, ...]:
        """(udf (N,), closest (N, 3)[, face_id (N,), direction (N, 3)]), all float64 / int64."""
        p = _check_points(points)
        n = len(p)
        udf, closest = np.empty(n), np.empty((n, 3))
        fid = np.empty(n, dtype=np.int64)
        order = morton_order(p) if n > 4096 else np.arange(n)
        for s in range(0, n, CHUNK):
            idx = order[s:s + CHUNK]
            pc = p[idx]
            f = self.face_ids(pc)
            tri = self.faces[f]
            q = point_triangle_closest(pc, self.vertices[tri[:, 0]], self.vertices[tri[:, 1]],
                                       self.vertices[tri[:, 2]])
            closest[idx], fid[idx] = q, f
            udf[idx] = np.sqrt(((pc - q) ** 2).sum(axis=1))
        if not full:
            return udf, closest
        return udf, closest, fid, self._directions(p, closest, udf, fid)

    def _directions(self, p: np.ndarray, q: np.ndarray, udf: np.ndarray, fid: np.ndarray) -> np.ndarray:
        """Unit (p - q)/|p - q|; on the surface the face normal, turned towards p if it can be."""
        d = np.empty_like(p)
        off = udf >= ON_SURFACE
        d[off] = (p[off] - q[off]) / udf[off, None]
        on = ~off
        if on.any():
            tri = self.vertices[self.faces[fid[on]]]                            # (M, 3, 3)
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            length = np.linalg.norm(nrm, axis=1)
            nrm = np.where(length[:, None] > 0, nrm / np.maximum(length, 1e-300)[:, None],
                           np.array([0.0, 0.0, 1.0]))   # zero-area face: any unit vector
            side = np.sign(_dot(p[on] - q[on], nrm))
            d[on] = nrm * np.where(side < 0, -1.0, 1.0)[:, None]
        return d


def closest_points(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray,
                   threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact unsigned distance and closest surface point for every query point.

    ``vertices`` (V, 3), ``faces`` (F, 3) int, ``points`` (N, 3), one frame. Returns
    ``udf`` (N,) float64 (unsquared, same units) and ``closest`` (N, 3) float64.
    Raises ``ValueError`` for an empty mesh, bad shapes, bad face ids or NaN/inf input.
    """
    return MeshQuery(vertices, faces, threads).query(points)


def closest_points_full(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray,
                        threads: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`closest_points`, plus ``face_id`` (N,) int64 and ``direction`` (N, 3).

    ``direction`` is the unit vector ``(p - q) / |p - q|`` (so ``q + udf * direction == p``).
    For points on the surface (``|p - q| < ON_SURFACE``) it is the unit normal of the closest
    face, flipped towards ``p`` when ``p - q`` has a component along it, else as wound.
    """
    return MeshQuery(vertices, faces, threads).query(points, full=True)
