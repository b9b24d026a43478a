"""Open-surface meshes from a learned, noisy UDF by cutting its offset shell (prototype)."""

from __future__ import annotations

import numpy as np

from anchorudf.config import EvaluateConfig
from anchorudf.reconstruct.dense import UdfFn, udf_and_grad


def _values(udf_fn: UdfFn, xyz: np.ndarray, batch_points: int, device: str) -> np.ndarray:
    import torch

    if len(xyz) == 0:
        return np.zeros(0)
    f, _ = udf_and_grad(udf_fn, torch.as_tensor(xyz, dtype=torch.float32, device=device), batch_points,
                        with_grad=False)
    return f.double().cpu().numpy()


def _band_volume(udf_fn, pts, origin, h, shape, eps, band_cells, grow_steps, batch_points, device):
    """UDF on the grid nodes near the points (grown along the low band); +inf elsewhere."""
    from scipy import ndimage

    vol = np.full(shape, np.inf)
    known = np.zeros(shape, dtype=bool)
    idx = np.clip(np.rint((pts - origin) / h).astype(np.int64), 0, np.array(shape) - 1)
    want = np.zeros(shape, dtype=bool)
    want[tuple(idx.T)] = True
    cube = np.ones((3, 3, 3), dtype=bool)
    want = ndimage.binary_dilation(want, cube, iterations=band_cells)
    for _ in range(grow_steps + 1):
        new = np.argwhere(want & ~known)
        if len(new) == 0:
            break
        vol[tuple(new.T)] = _values(udf_fn, origin + new * h, batch_points, device)
        known |= want
        # Low nodes on the band's edge: the surface goes on beyond the band, follow it.
        edge = known & (vol < 2 * eps) & ndimage.binary_dilation(~known, cube)
        if not edge.any():
            break
        want = known | ndimage.binary_dilation(edge, cube, iterations=band_cells)
    return vol, known


def _exits(vol, origin, h, x, direction, eps, max_len):
    """Distance along ``direction`` from each point (on the eps level) to where the
    trilinearly interpolated grid field rises back above eps (the other side of the slab);
    inf when it does not within ``max_len``."""
    from scipy.ndimage import map_coordinates

    step = 0.25 * h
    t = np.arange(1, int(np.ceil(max_len / step)) + 1) * step
    out = np.full(len(x), np.inf)
    for s0 in range(0, len(x), 20000):
        xs, ds = x[s0:s0 + 20000], direction[s0:s0 + 20000]
        q = (xs[:, None, :] + t[None, :, None] * ds[:, None, :] - origin) / h
        f = map_coordinates(vol, q.reshape(-1, 3).T, order=1, mode="nearest").reshape(len(xs), -1)
        inside = f < eps
        entered = np.maximum.accumulate(inside, axis=1)
        leave = entered & ~inside
        k = np.argmax(leave, axis=1)
        has = leave[np.arange(len(xs)), k]
        f1 = f[np.arange(len(xs)), k]
        f0 = f[np.arange(len(xs)), np.maximum(k - 1, 0)]
        frac = np.clip((eps - f0) / np.maximum(f1 - f0, 1e-12), 0.0, 1.0)
        te = t[k] - step + frac * step
        out[s0:s0 + 20000] = np.where(has & (k > 0), te, np.inf)
    return out


def _signed_graph(verts, faces, normals, exits, h):
    """Same-layer weights on shell edges, other-layer (negative) weights between partners:
    each vertex and the shell vertex where its ray along -normal leaves the slab."""
    from scipy.sparse import coo_matrix
    from scipy.spatial import cKDTree

    from anchorudf.geometry.topology import unique_edges

    n = len(verts)
    e = unique_edges(faces)
    dot = (normals[e[:, 0]] * normals[e[:, 1]]).sum(1)
    w_same = ((1 + dot) / 2) ** 2 + 1e-3
    src = np.flatnonzero(np.isfinite(exits))
    target = verts[src] - exits[src, None] * normals[src]
    d, j = cKDTree(verts).query(target, k=4, distance_upper_bound=0.75 * h)
    i = np.repeat(src, j.shape[1]).reshape(j.shape)
    ok = np.isfinite(d)
    i, j = i[ok], j[ok]
    dn = (normals[i] * normals[j]).sum(1)
    ok = dn < -0.3
    i, j, w_diff = i[ok], j[ok], -dn[ok]
    best = np.zeros(n)
    np.minimum.at(best, i, -w_diff)
    rows = np.r_[e[:, 0], e[:, 1], i, j]
    cols = np.r_[e[:, 1], e[:, 0], j, i]
    vals = np.r_[w_same, w_same, -w_diff, -w_diff]
    return coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr(), best


def _layer_labels(a, verts, normals, centre, tol=1e-4):
    """+1 / -1 per vertex from the leading eigenvector of each piece's normalised signed
    adjacency; 0 for pieces without any other-layer link."""
    from scipy.sparse import diags
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import eigsh

    n = a.shape[0]
    ncomp, comp = connected_components(abs(a), directed=False)
    labels = np.zeros(n)
    neg = np.asarray((a.minimum(0) != 0).sum(axis=1)).ravel() > 0
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(ncomp + 1))
    for c in range(ncomp):
        idx = order[bounds[c]:bounds[c + 1]]
        if len(idx) < 3 or not neg[idx].any():
            continue
        sub = a[idx][:, idx]
        deg = np.asarray(abs(sub).sum(axis=1)).ravel()
        dih = diags(1.0 / np.sqrt(deg))
        m = dih @ sub @ dih
        # Start from "normals point away from the vertical axis through the centre".
        radial = verts[idx] - centre
        radial[:, 1] = 0.0
        x0 = np.where((normals[idx] * radial).sum(1) >= 0, 1.0, -1.0) * np.sqrt(deg)
        if len(idx) < 50:
            vec = np.linalg.eigh(m.toarray())[1][:, -1:]
        else:
            _, vec = eigsh(m, k=1, which="LA", v0=x0, tol=tol, maxiter=20 * len(idx))
        labels[idx] = np.where(vec[:, 0] >= 0, 1.0, -1.0)
    return labels, comp


def shell_mesh(udf_fn: UdfFn, points: np.ndarray, cfg: EvaluateConfig, device: str = "cpu",
               eps_cells: float = 0.75, band_cells: int = 3, grow_steps: int = 16,
               max_thickness_cells: float = 12.0, min_component_faces: int = 8, search_steps: int = 9,
               refine: float = 0.2, slab_dot: float = 0.95, thin_cells: float = 2.5, projection: str = "slab", ndf_steps: int = 5, chord_min: bool = False, eig_tol: float = 1e-4, debug: dict | None = None):
    from skimage.measure import marching_cubes

    from anchorudf.reconstruct.meshing import _compact, _grid, _small_pieces

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"shell_mesh: expected non-empty finite (P, 3) points, got shape {pts.shape}")
    origin, h, dims = _grid(pts, cfg.mesh_resolution, band_cells + 2)
    shape = tuple(dims + 1)
    eps = eps_cells * h
    vol, known = _band_volume(udf_fn, pts, origin, h, shape, eps, band_cells, grow_steps,
                              cfg.batch_points, device)
    vol[~known] = max(4 * eps, float(vol[known].max()))
    try:
        verts, faces, normals, _ = marching_cubes(vol.astype(np.float32), eps, spacing=(h, h, h),
                                                  method="lewiner", allow_degenerate=False)
    except (ValueError, RuntimeError):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    verts = verts.astype(np.float64) + origin
    faces = faces.astype(np.int64)
    nrm = -normals.astype(np.float64)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    exits = _exits(vol, origin, h, verts, -nrm, eps, max_thickness_cells * h)
    a, best = _signed_graph(verts, faces, nrm, exits, h)
    npart = int((best < 0).sum())
    centre = pts.mean(axis=0)
    labels, comp = _layer_labels(a, verts, nrm, centre, tol=eig_tol)
    keep_v = np.zeros(len(verts), dtype=bool)
    for c in np.unique(comp[labels != 0]):
        idx = np.flatnonzero((comp == c) & (labels != 0))
        side = 1.0 if (labels[idx] > 0).sum() >= (labels[idx] < 0).sum() else -1.0
        keep_v[idx[labels[idx] == side]] = True
    if debug is not None:
        debug.update(shell_v=verts, shell_f=faces, normals=nrm, labels=labels, comp=comp, partners=npart,
                     eps=eps, h=h, exits=exits)
    faces = faces[keep_v[faces].all(axis=1)]
    if len(faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    used = np.unique(faces)
    new = verts.copy()
    if projection == "ndf":
        import torch

        from anchorudf.reconstruct.dense import project_points

        p, _ = project_points(udf_fn, torch.as_tensor(verts[used], dtype=torch.float32, device=device),
                              delta=eps, num_steps=ndf_steps, batch_points=cfg.batch_points)
        new[used] = p.double().cpu().numpy()
    elif projection == "line":
        new[used] = _grad_line(udf_fn, verts[used], nrm[used], eps, search_steps, cfg.batch_points, device)
    else:
        x, n_u, te = verts[used], nrm[used], exits[used]
        slab = np.isfinite(te) & (best[used] < -slab_dot)
        # Through the slab: its middle; in a thin (distance-like) valley, then the minimum nearby.
        mid = x[slab] - 0.5 * te[slab, None] * n_u[slab]
        if chord_min:
            mid = _line_min(udf_fn, x[slab], n_u[slab], te[slab], 2 * search_steps, cfg.batch_points, device)
        thin = te[slab] < thin_cells * h
        if refine > 0 and thin.any():
            w = refine * te[slab][thin]
            mid[thin] = _line_min(udf_fn, mid[thin] + w[:, None] * n_u[slab][thin], n_u[slab][thin], 2 * w,
                                  search_steps, cfg.batch_points, device)
        new[used[slab]] = mid
        # No way out (rims, where the ray runs along the sheet): the minimum along the gradient.
        rim = used[~slab]
        if len(rim):
            import torch

            _, g = udf_and_grad(udf_fn, torch.as_tensor(verts[rim], dtype=torch.float32, device=device),
                                cfg.batch_points)
            g = g.double().cpu().numpy()
            gn = np.linalg.norm(g, axis=1)
            g = g / np.maximum(gn, 1e-12)[:, None]
            direction = np.where(((gn > 1e-12) & ((g * nrm[rim]).sum(1) > 0))[:, None], g, nrm[rim])
            new[rim] = _project(udf_fn, verts[rim], direction, eps, search_steps, cfg.batch_points, device)

    faces = faces[_small_pieces(faces, min_component_faces)]
    if len(faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return _compact(new, faces)


def _line_min(udf_fn, x, direction, length, steps, batch_points, device):
    """Minimum of f on the segments x - t direction, t in [0, length] (per point), two-stage."""
    def search(t0, t):  # t0 (n,), t (n, k) offsets -> refined t (n,)
        q = x[:, None, :] - (t0[:, None] + t)[..., None] * direction[:, None, :]
        fq = _values(udf_fn, q.reshape(-1, 3), batch_points, device).reshape(len(x), -1)
        k0 = np.argmin(fq, axis=1)
        k = np.clip(k0, 1, t.shape[1] - 2)
        r = np.arange(len(x))
        f0, f1, f2 = fq[r, k - 1], fq[r, k], fq[r, k + 1]
        den = f0 - 2 * f1 + f2
        off = np.where(den > 1e-12, 0.5 * (f0 - f2) / np.maximum(den, 1e-12), 0.0)
        ds = t[:, 1] - t[:, 0]
        return t0 + t[r, k] + np.clip(off, -1, 1) * ds

    if len(x) == 0:
        return x
    u = np.linspace(0.0, 1.0, steps)
    t1 = search(np.zeros(len(x)), length[:, None] * u[None])
    s = length / (steps - 1)
    t2 = search(t1, s[:, None] * np.linspace(-1, 1, 5)[None])
    return x - np.clip(t2, 0.0, length)[:, None] * direction


def _project(udf_fn, x, nrm, eps, steps, batch_points, device):
    """Move (n, 3) points to the minimum of f along -nrm within 2.5 eps (two-stage search)."""
    def search(t0, t):  # t0 (n,), t (k,) offsets -> refined t (n,)
        q = x[:, None, :] - (t0[:, None] + t[None, :])[..., None] * nrm[:, None, :]
        fq = _values(udf_fn, q.reshape(-1, 3), batch_points, device).reshape(len(x), -1)
        k0 = np.argmin(fq, axis=1)
        k = np.clip(k0, 1, len(t) - 2)
        r = np.arange(len(x))
        f0, f1, f2 = fq[r, k - 1], fq[r, k], fq[r, k + 1]
        den = f0 - 2 * f1 + f2
        off = np.where(den > 1e-12, 0.5 * (f0 - f2) / np.maximum(den, 1e-12), 0.0)
        tt = t[k] + np.clip(off, -1, 1) * (t[1] - t[0])
        return t0 + np.where((k0 == k) | (k0 > 0), tt, t[0])
    coarse = np.linspace(0.0, 2.5 * eps, steps)
    t1 = search(np.zeros(len(x)), coarse)
    s = coarse[1] - coarse[0]
    t2 = search(t1, np.linspace(-s, s, 5))
    return x - np.maximum(t2, 0.0)[:, None] * nrm


def _grad_line(udf_fn, x, nrm, eps, steps, batch_points, device):
    import torch

    _, g = udf_and_grad(udf_fn, torch.as_tensor(x, dtype=torch.float32, device=device), batch_points)
    g = g.double().cpu().numpy()
    gn = np.linalg.norm(g, axis=1)
    g = g / np.maximum(gn, 1e-12)[:, None]
    direction = np.where(((gn > 1e-12) & ((g * nrm).sum(1) > 0))[:, None], g, nrm)
    return _project(udf_fn, x, direction, eps, steps, batch_points, device)
