"""Open-surface meshes from an unsigned distance field (MeshUDF-style, Guillard et al. 2022).

This is ``evaluate.mesher: meshudf``: right on exact fields, shredded by a learned one
(per-cell sign choices disagree across cells). The default is ``shell``
(:mod:`anchorudf.reconstruct.shell`); :func:`extract_mesh` runs the configured one.

Why not marching cubes on ``|f| = eps``: that level set of a UDF is a thin closed shell
around the surface, i.e. two parallel sheets (a double layer) with closed caps over every
open boundary. A UDF has no sign to run marching cubes at level 0 on.

What this module does (all in NDC, distances in NDC units):

1. Grid. Cubic cells of side ``h = extent / cfg.mesh_resolution`` (``extent`` = largest
   side of the bounding box of the dense points) cover the box plus a margin. The grid
   origin is shifted by a fraction of a cell so that grid nodes do not sit exactly on
   axis-aligned surfaces, where the UDF gradient is undefined.
2. Narrow band. The search starts from the cells within ``band_cells`` cells of a cell
   holding a dense point (a sparse set; nothing is allocated per grid cell) and grows
   along the surface: neighbours of sign-changing cells are visited too, up to
   ``grow_steps`` times, so gaps in the dense cloud do not become holes. The UDF and its
   gradient are evaluated, once per node, on the corners of visited cells only.
3. Per-cell pseudo-sign. In each cell the corner with the smallest UDF (among corners
   with a usable gradient) is the reference; a corner whose gradient points against the
   reference gradient (dot < 0) lies on the other side of the surface and gets value
   ``-f``, the others ``+f`` (magnitudes floored at 1e-3 cells so that no value sits
   exactly on the iso level). This is local: two cells may give a shared corner
   different signs, which is exactly what lets an open sheet end (beyond a rim all
   gradients point away from the rim, so no sign change and no face there) and what a
   global pseudo-SDF cannot do. Cells with no sign change produce nothing. A node with a
   zero gradient (inside the exactly-zero slab of a ReLU output) borrows, once and for
   all cells, the direction of the nearer side of the slab (probed at +-h/2, +-h).
4. Marching cubes per cell. All sign-changing cells are packed as separate 2x2x2 blocks
   (stride 3, separator nodes in between) into one volume, and
   ``skimage.measure.marching_cubes`` (Lewiner) runs once on it; triangles whose centroid
   lies in a separator cube are discarded. Each triangle vertex is mapped back to its
   cell edge and re-interpolated in float64 (``t = |f_a| / (|f_a| + |f_b|)``), and
   vertices of neighbouring cells on the same edge are merged by their exact position.
5. Filtering. Faces with a vertex whose UDF exceeds ``max_vertex_udf`` are dropped: this
   removes crossings between opposite gradients that are not the surface (a medial axis
   between two sheets, where gradients point *towards* each other) and trims the
   one-cell overshoot beyond open rims. Connected pieces with fewer than
   ``min_component_faces`` faces are dropped.

Limits: where neighbouring cells disagree about a shared edge (noisy gradients, features
smaller than a cell, two sheets closer than ~2 cells) the mesh can have small cracks;
open rims are jagged at the scale of a cell and trimmed inwards by up to about half a
cell (a sheet loses ~3-5% of its area at 40 cells); face winding is made consistent per
connected piece (non-orientable pieces keep a seam); an exactly-zero slab is handled up
to roughly 0.2-0.3 cells thick (at 0.4 cells and more, folds and small holes appear:
lower ``mesh_resolution``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from anchorudf.config import EvaluateConfig
from anchorudf.geometry.topology import unique_rows
from anchorudf.reconstruct.dense import UdfFn, udf_and_grad

if TYPE_CHECKING:
    import torch  # noqa: F401

# Corner k of a cell sits at offset CORNERS[k] (x, y, z) from the cell's lower corner.
CORNERS = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.int64)


def _band_cells(points: np.ndarray, origin: np.ndarray, h: float, dims: np.ndarray,
                band_cells: int) -> np.ndarray:
    """(M, 3) int64 cells within ``band_cells`` (Chebyshev) of a cell holding a point."""
    occ = np.floor((points - origin) / h).astype(np.int64)
    occ = unique_rows(np.clip(occ, 0, dims - 1))
    r = np.arange(-band_cells, band_cells + 1)
    offs = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    keys = []
    for start in range(0, len(occ), 65536):
        c = (occ[start:start + 65536, None, :] + offs[None]).reshape(-1, 3)
        c = c[np.all((c >= 0) & (c < dims), axis=1)]
        keys.append(np.unique(np.ravel_multi_index(c.T, dims)))
    lin = np.unique(np.concatenate(keys))
    return np.stack(np.unravel_index(lin, dims), axis=1).astype(np.int64)


def _pseudo_signed(f: np.ndarray, g: np.ndarray, floor: float) -> np.ndarray:
    """Per-cell signed corner values (C, 8) from UDF (C, 8) and gradients (C, 8, 3).

    The reference is the nearest corner with a usable gradient; corners whose gradient
    points against it get ``-f``, the others ``+f``. Corners without a usable gradient
    count as the reference's side. Cells without any usable corner get no surface.
    Magnitudes are at least ``floor``: an exact zero on the iso level would make marching
    cubes collapse several vertices onto one node (slivers and non-manifold edges);
    a small positive floor keeps them apart, as in standard marching cubes.
    """
    norm = np.linalg.norm(g, axis=2)
    usable = norm > 0
    rows = np.arange(len(g))
    ref = np.argmin(np.where(usable, f, np.inf), axis=1)
    dots = np.einsum("ckd,cd->ck", g, g[rows, ref])
    return np.where(usable & (dots < 0), -1.0, 1.0) * np.maximum(f, floor)


def _march_cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching cubes on each cell separately.

    Args:
        values: (C, 8) signed corner values of C sign-changing cells.

    Returns (T,) cell of each triangle, (T, 3, 3) int64 lower-corner offsets of each
    vertex's edge, and (T, 3) int64 edge axis; the caller interpolates positions.
    """
    from skimage.measure import marching_cubes

    n = len(values)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    vol = np.full((3 * rows, 3 * cols, 2), float(np.abs(values).max()) + 1.0, dtype=np.float32)
    a, b = np.divmod(np.arange(n), cols)
    for k, (dx, dy, dz) in enumerate(CORNERS):
        vol[3 * a + dx, 3 * b + dy, dz] = values[:, k]
    verts, faces, _, _ = marching_cubes(vol, 0.0, method="lewiner", allow_degenerate=True)
    tri = verts[faces].astype(np.float64)  # (T, 3 vertices, 3) in packed voxel units
    cube = np.floor(tri.mean(axis=1)).astype(np.int64)
    inside = (cube[:, 0] % 3 == 0) & (cube[:, 1] % 3 == 0)
    tri, cube = tri[inside], cube[inside]
    cell = (cube[:, 0] // 3) * cols + cube[:, 1] // 3
    local = np.clip(tri - np.stack([cube[:, 0], cube[:, 1], np.zeros_like(cube[:, 0])], 1)[:, None],
                    0.0, 1.0)
    # The free coordinate of an edge point is the one farthest from {0, 1}.
    axis = np.argmax(np.minimum(local, 1.0 - local), axis=2)  # (T, 3)
    lower = np.rint(local).astype(np.int64)
    np.put_along_axis(lower, axis[..., None], 0, axis=2)
    return cell, lower, axis


def _orient(faces: np.ndarray) -> np.ndarray:
    """Flip faces so that neighbours across every manifold edge have consistent winding.

    Works on the orientation double cover: node ``(f, o)`` is face ``f`` kept (o = 0) or
    flipped (o = 1); a shared edge links the two states that agree. Within an orientable
    piece, the states connected to the piece's first face kept are the consistent choice.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nf = len(faces)
    if nf == 0:
        return faces
    from anchorudf.geometry.topology import face_edges

    he = face_edges(faces, order="face")  # directed, face by face
    fid = np.repeat(np.arange(nf), 3)
    _, eid, cnt = unique_rows(np.sort(he, axis=1), return_inverse=True, return_counts=True)
    eid = eid.ravel()
    order = np.argsort(eid, kind="stable")
    e_s = eid[order]
    pair = (e_s[1:] == e_s[:-1]) & (cnt[e_s[1:]] == 2)
    i, j = order[:-1][pair], order[1:][pair]
    # The same direction of a shared edge in both faces means opposite windings.
    flip = (he[i, 0] == he[j, 0]).astype(np.int64)
    fi, fj = fid[i], fid[j]
    src = np.r_[2 * fi, 2 * fi + 1]
    dst = np.r_[2 * fj + flip, 2 * fj + (1 - flip)]
    double = coo_matrix((np.ones(len(src)), (src, dst)), shape=(2 * nf, 2 * nf))
    _, lab2 = connected_components(double, directed=False)
    single = coo_matrix((np.ones(len(fi)), (fi, fj)), shape=(nf, nf))
    _, comp = connected_components(single, directed=False)
    _, root = np.unique(comp, return_index=True)  # first face of each piece
    keep_label = lab2[2 * root][comp]
    flipped = lab2[2 * np.arange(nf)] != keep_label
    out = faces.copy()
    out[flipped] = out[flipped][:, ::-1]
    return out


def _small_pieces(faces: np.ndarray, min_faces: int) -> np.ndarray:
    """Boolean mask of faces that belong to pieces with at least ``min_faces`` faces."""
    from anchorudf.geometry.topology import face_components

    if len(faces) == 0 or min_faces <= 1:
        return np.ones(len(faces), dtype=bool)
    labels = face_components(faces)
    sizes = np.bincount(labels)
    return sizes[labels] >= min_faces


def _compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unreferenced vertices and renumber faces."""
    used, inv = np.unique(faces.ravel(), return_inverse=True)
    return vertices[used], inv.reshape(-1, 3).astype(np.int64)


def _grid(points: np.ndarray, resolution: int, margin_cells: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Origin (3,), cell side h and cells per axis (3,) of the grid around ``points``."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError(f"udf_mesh: the dense points span no volume (extent {extent})")
    h = extent / resolution
    # An irrational-looking shift keeps nodes off axis-aligned surfaces (undefined gradient).
    origin = lo - (margin_cells + 0.4142136) * h
    dims = np.ceil((hi - origin) / h).astype(np.int64) + margin_cells + 1
    return origin, h, dims


class _Nodes:
    """UDF values and gradients on grid nodes, evaluated lazily and cached."""

    def __init__(self, udf_fn: UdfFn, origin: np.ndarray, h: float, dims: np.ndarray,
                 batch_points: int, device: str):
        self.udf_fn, self.origin, self.h, self.shape = udf_fn, origin, h, tuple(dims + 1)
        self.batch_points, self.device = batch_points, device
        self.ids = np.zeros(0, dtype=np.int64)
        self.f = np.zeros(0)
        self.g = np.zeros((0, 3))

    def corners(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """UDF (C, 8) and gradient (C, 8, 3) at the corners of (C, 3) cells."""
        import torch

        lin = np.ravel_multi_index((cells[:, None, :] + CORNERS[None]).reshape(-1, 3).T, self.shape)
        new = np.setdiff1d(lin, self.ids)
        if len(new):
            xyz = self.origin + np.stack(np.unravel_index(new, self.shape), axis=1) * self.h
            f, g = udf_and_grad(self.udf_fn, torch.as_tensor(xyz, dtype=torch.float32,
                                                             device=self.device), self.batch_points)
            f, g = f.double().cpu().numpy(), g.double().cpu().numpy()
            self._orient_flat(xyz, f, g)
            ids = np.concatenate([self.ids, new])
            order = np.argsort(ids, kind="stable")
            self.ids = ids[order]
            self.f = np.concatenate([self.f, f])[order]
            self.g = np.concatenate([self.g, g])[order]
        at = np.searchsorted(self.ids, lin)
        return self.f[at].reshape(-1, 8), self.g[at].reshape(-1, 8, 3)


    def _orient_flat(self, xyz: np.ndarray, f: np.ndarray, g: np.ndarray) -> None:
        """Give nodes with a zero gradient (in place) the direction of the nearer side.

        A network ending in a ReLU is exactly 0, with a zero gradient, on a slab around
        the surface. A node inside it is probed at +-h/2 and +-h along the axes; each
        probe q with a usable gradient n_q puts the slab's boundary on its side at
        ``(x - q) . n_q + f_q`` from the node (<= 0 inside). The node takes the
        direction of the probe whose boundary is nearest, so it joins that side in
        every cell that shares it, which keeps neighbouring cells consistent.
        """
        import torch

        bad = np.flatnonzero(np.linalg.norm(g, axis=1) <= 1e-12)
        if len(bad) == 0:
            return
        offs = np.concatenate([np.eye(3) * s for s in (0.5, -0.5, 1.0, -1.0)]) * self.h
        probes = (xyz[bad, None, :] + offs[None]).reshape(-1, 3)
        fp, gp = udf_and_grad(self.udf_fn, torch.as_tensor(probes, dtype=torch.float32,
                                                           device=self.device), self.batch_points)
        fp = fp.double().cpu().numpy().reshape(len(bad), -1)
        gp = gp.double().cpu().numpy().reshape(len(bad), len(offs), 3)
        norm = np.linalg.norm(gp, axis=2)
        n = gp / np.maximum(norm, 1e-300)[..., None]
        e = np.einsum("kpd,kpd->kp", -offs[None], n) + fp
        e = np.where(norm > 1e-12, e, -np.inf)
        best = np.argmax(e, axis=1)
        found = np.isfinite(e[np.arange(len(bad)), best])
        g[bad[found]] = n[np.arange(len(bad)), best][found]
        g[bad[~found]] = 0.0


def _neighbours(cells: np.ndarray, dims: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(K, 3) cells in the 26-neighbourhood of ``cells`` whose linear ids are not in ``seen``."""
    r = np.array([-1, 0, 1])
    offs = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    c = (cells[:, None, :] + offs[None]).reshape(-1, 3)
    c = c[np.all((c >= 0) & (c < dims), axis=1)]
    lin = np.setdiff1d(np.unique(np.ravel_multi_index(c.T, dims)), seen)
    return np.stack(np.unravel_index(lin, dims), axis=1).astype(np.int64)


def _sign_changing_cells(nodes: _Nodes, start: np.ndarray, dims: np.ndarray,
                         grow_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells (K, 3) whose pseudo-signed corner values (K, 8) change sign.

    Starts from the ``start`` cells and grows along the surface: neighbours of
    sign-changing cells are visited too, up to ``grow_steps`` times, which closes holes
    where the dense cloud had gaps.
    """
    h = nodes.h
    seen = np.ravel_multi_index(start.T, dims)
    frontier, out_c, out_v = start, [], []
    for step in range(grow_steps + 1):
        f, g = nodes.corners(frontier)
        # A surface through a cell passes within half a diagonal of its nearest corner.
        near = f.min(axis=1) <= 0.9 * h
        values = _pseudo_signed(f[near], g[near], 1e-3 * h)
        active = (values < 0).any(axis=1)
        out_c.append(frontier[near][active])
        out_v.append(values[active])
        if step == grow_steps or not active.any():
            break
        frontier = _neighbours(frontier[near][active], dims, seen)
        if len(frontier) == 0:
            break
        seen = np.union1d(seen, np.ravel_multi_index(frontier.T, dims))
    return np.concatenate(out_c), np.concatenate(out_v)


def udf_mesh(udf_fn: UdfFn, points: np.ndarray, cfg: EvaluateConfig, device: str = "cpu",
             band_cells: int = 1, margin_cells: int = 2, grow_steps: int = 32,
             max_vertex_udf: float | None = None,
             min_component_faces: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mesh the zero level of a UDF with open boundaries kept open (see the module doc).

    Args:
        udf_fn: (N, 3) NDC points -> (N,) unsigned distances (NDC units), differentiable.
        points: (P, 3) dense points near the surface (NDC), e.g. from
            :func:`anchorudf.reconstruct.dense.dense_point_cloud`; they set the grid's box
            and the cells where the search starts.
        cfg: ``mesh_resolution`` (cells along the box's largest side), ``batch_points``
            and ``filter_val`` are used.
        band_cells: cells visited around every cell that holds a dense point.
        margin_cells: empty cells added around the points' bounding box.
        grow_steps: times the visited band grows along the surface (fills point gaps).
        max_vertex_udf: faces with a vertex farther than this from the zero level (NDC)
            are dropped; ``None`` = ``max(cfg.filter_val, 0.25 * h)``.
        min_component_faces: smaller connected pieces are dropped (speckles).

    Returns (V, 3) float64 NDC vertices and (F, 3) int64 faces, consistently wound per
    orientable piece. Empty arrays if no cell changes sign.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"udf_mesh: expected non-empty finite (P, 3) points, got shape {pts.shape}")
    origin, h, dims = _grid(pts, cfg.mesh_resolution, margin_cells)
    nodes = _Nodes(udf_fn, origin, h, dims, cfg.batch_points, device)
    cells, values = _sign_changing_cells(nodes, _band_cells(pts, origin, h, dims, band_cells),
                                         dims, grow_steps)
    if len(cells) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    cell, lower, axis = _march_cells(values)
    # Re-interpolate every vertex on its cell edge in float64.
    k_a = lower @ np.array([4, 2, 1])
    k_b = k_a + np.array([4, 2, 1])[axis]
    fa, fb = np.abs(values[cell[:, None], k_a]), np.abs(values[cell[:, None], k_b])
    t = fa / (fa + fb)
    grid_pos = (cells[cell][:, None, :] + lower).astype(np.float64)
    np.put_along_axis(grid_pos, axis[..., None],
                      np.take_along_axis(grid_pos, axis[..., None], 2) + t[..., None], axis=2)
    return _assemble(udf_fn, grid_pos, origin, h, cfg, device, max_vertex_udf, min_component_faces)


def _assemble(udf_fn: UdfFn, grid_pos: np.ndarray, origin: np.ndarray, h: float,
              cfg: EvaluateConfig, device: str, max_vertex_udf: float | None,
              min_component_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge (T, 3, 3) triangle corners (grid units) into a filtered, oriented mesh."""
    import torch

    keys = np.rint(grid_pos.reshape(-1, 3) * 65536.0).astype(np.int64)
    uniq, first, inv = unique_rows(keys, return_index=True, return_inverse=True)
    verts = origin + grid_pos.reshape(-1, 3)[first] * h
    faces = inv.reshape(-1, 3).astype(np.int64)
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[ok]
    _, once = unique_rows(np.sort(faces, axis=1), return_index=True)
    faces = faces[np.sort(once)]
    fv, _ = udf_and_grad(udf_fn, torch.as_tensor(verts, dtype=torch.float32, device=device),
                         cfg.batch_points, with_grad=False)
    fv = fv.double().cpu().numpy()
    tau = max(cfg.filter_val, 0.25 * h) if max_vertex_udf is None else float(max_vertex_udf)
    faces = faces[(fv[faces] <= tau).all(axis=1)]
    faces = faces[_small_pieces(faces, min_component_faces)]
    if len(faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts, faces = _compact(verts, faces)
    return verts, _orient(faces)


def mesh_to_points_chamfer(v: np.ndarray, f: np.ndarray, points: np.ndarray, n: int = 20000,
                           seed: int = 0) -> float:
    """Symmetric mean Chamfer (unsquared) between ``n`` area-uniform samples of the mesh
    (v, f) and up to ``n`` of ``points``: how well a mesh agrees with the dense points of
    the same field (excess surface and missing surface both count). inf for an empty mesh."""
    from scipy.spatial import cKDTree

    from anchorudf.render.pictures import mesh_points

    samples, _ = mesh_points(v, f, n, seed)
    if len(samples) == 0 or len(points) == 0:
        return float("inf")
    pts = np.asarray(points, np.float64)
    if len(pts) > n:
        pts = pts[np.random.default_rng(seed).choice(len(pts), n, replace=False)]
    d1, _ = cKDTree(pts).query(samples)
    d2, _ = cKDTree(samples).query(pts)
    return float(d1.mean() + d2.mean())


def closest_point_udf(closest: Callable[[np.ndarray], np.ndarray]) -> UdfFn:
    """A UDF from a closest-point query: ``closest`` maps (N, 3) float64 points to the
    (N, 3) nearest points of a set (a cloud, a mesh). Differentiable in the query point:
    the gradient is ``(p - closest) / |p - closest|``, so one NDF step lands on it."""
    import torch

    def udf(p: "torch.Tensor") -> "torch.Tensor":
        nearest = torch.as_tensor(closest(p.detach().cpu().double().numpy()), dtype=p.dtype, device=p.device)
        return (p - nearest).norm(dim=-1)

    return udf


def points_udf(points: np.ndarray) -> UdfFn:
    """The unsigned distance to the nearest of ``points`` (NDC), as a (values only) UDF.

    A learned field's dense points sit in its low valley; their own distance field is
    sharp (its zero set is the cloud), so the shell mesher's level can be small and the
    mesh follows the cloud, including its middle when the cloud is a thick slab.
    Differentiable: one NDF step lands a point on its nearest cloud point."""
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    tree = cKDTree(pts)
    return closest_point_udf(lambda x: pts[tree.query(x, k=1)[1]])


def extract_mesh(udf_fn: UdfFn, points: np.ndarray, cfg: EvaluateConfig,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The evaluation's mesh of a UDF: ``cfg.mesher`` and its hole handling.

    ``shell``: :func:`anchorudf.reconstruct.shell.shell_mesh`, then the holes the field
    spans are closed (``cfg.mesh_fill_field``, those of mean radius up to
    ``cfg.mesh_fill_radius`` cells, and slits of mean width up to ``cfg.mesh_fill_narrow`` cells
    whatever their radius: :func:`anchorudf.reconstruct.holes.fill_field_holes`), then pin holes
    (``cfg.mesh_fill_holes``), then every vertex where two fans touch is split, so the
    result is a 2-manifold with boundary. ``meshudf``: :func:`udf_mesh` and pin holes.
    ``points`` (default): the shell cut of the dense points' own distance field (:func:`points_udf`,
    level ``cfg.mesh_level`` cells; the mid-slab placement puts the layer in the cloud's middle,
    and one NDF step of that field puts the rims' vertices on their nearest points; pieces the
    cut drops on both sides, of at least ``cfg.mesh_recover`` shell vertices, are kept whole), then
    the same hole handling with the learned field.
    ``auto``: ``shell`` and ``meshudf``, and the one closer to ``points`` (the field's
    dense points, no ground truth) by :func:`mesh_to_points_chamfer`.
    Pieces under ``cfg.mesh_min_faces`` faces are dropped either way. Returns (V, 3)
    float64 NDC vertices and (F, 3) int64 faces.
    """
    from anchorudf.reconstruct.holes import fill_small_holes

    if cfg.mesher == "auto":
        import dataclasses

        meshes = [extract_mesh(udf_fn, points, dataclasses.replace(cfg, mesher=m), device=device)
                  for m in ("shell", "meshudf")]
        return min(meshes, key=lambda vf: mesh_to_points_chamfer(vf[0], vf[1], points))
    if cfg.mesher == "meshudf":
        v, f = udf_mesh(udf_fn, points, cfg, device=device, min_component_faces=cfg.mesh_min_faces)
        return fill_small_holes(v, f, cfg.mesh_fill_holes)
    from anchorudf.reconstruct.shell import shell_mesh

    floor = 0.0
    if cfg.mesher == "points":
        from anchorudf.reconstruct.shell import field_floor

        v, f = points_mesh(points, cfg, device)
        # The mesh's level was the cloud's, not the field's: a hole the field spans is one
        # where it stays within mesh_fill_field cells of its own floor.
        if len(f) and cfg.mesh_fill_field > 0:
            floor = field_floor(udf_fn, points, cfg.batch_points, device)
    else:
        v, f = shell_mesh(udf_fn, points, cfg, device=device, min_component_faces=cfg.mesh_min_faces)
    return close_holes(v, f, udf_fn, points, cfg, floor, device)


def points_mesh(points: np.ndarray, cfg: EvaluateConfig, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The ``points`` mesher before any hole handling: the shell cut of the dense points'
    own distance field (:func:`points_udf`) at level ``cfg.mesh_level`` cells."""
    from anchorudf.reconstruct.shell import shell_mesh

    return shell_mesh(points_udf(points), points, cfg, device=device, min_component_faces=cfg.mesh_min_faces,
                      eps_cells=cfg.mesh_level, floor_cells=None, mid_max_cells=30.0,
                      mid_projection="never", ndf_steps=1, recover_min_vertices=cfg.mesh_recover)


def close_holes(v: np.ndarray, f: np.ndarray, udf_fn: UdfFn, points: np.ndarray, cfg: EvaluateConfig,
                floor: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The hole handling of :func:`extract_mesh` (``shell`` and ``points``): the holes the
    field spans (``cfg.mesh_fill_field`` cells above ``floor``, the field's own floor for the
    ``points`` mesher; :func:`anchorudf.reconstruct.holes.fill_field_holes`), then pin holes,
    then every vertex where two fans touch is split."""
    from anchorudf.geometry.topology import split_nonmanifold_vertices
    from anchorudf.reconstruct.holes import fill_field_holes, fill_small_holes

    if len(f) and cfg.mesh_fill_field > 0:
        pts = np.asarray(points, dtype=np.float64)
        h = float(np.ptp(pts, axis=0).max()) / cfg.mesh_resolution
        v, f = fill_field_holes(v, f, udf_fn, h, floor + cfg.mesh_fill_field * h, cfg.batch_points, device,
                                max_radius=cfg.mesh_fill_radius * h if cfg.mesh_fill_radius > 0 else np.inf,
                                narrow_width=cfg.mesh_fill_narrow * h)
    v, f = fill_small_holes(v, f, cfg.mesh_fill_holes)
    return split_nonmanifold_vertices(v, f)
