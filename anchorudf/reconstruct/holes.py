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
    new_v: list[np.ndarray] = []
    new_f: list[list[int]] = []
    for loop in _simple_loops(f):
        if len(loop) > max_edges:
            continue
        centre = len(v) + len(new_v)
        new_v.append(v[loop].mean(axis=0))
        for p, q in zip(loop, loop[1:] + loop[:1]):
            new_f.append([q, p, centre])  # the edge p->q is used in the opposite direction
    if not new_v:
        return v, f
    return np.concatenate([v, np.array(new_v)]), np.concatenate([f, np.array(new_f, dtype=np.int64)])


def _simple_loops(faces: np.ndarray) -> list[list[int]]:
    """Boundary loops as vertex lists in the direction of their half-edges, simple ones only
    (every vertex on two boundary edges)."""
    bhe = _boundary_half_edges(faces)
    if len(bhe) == 0:
        return []
    degree = np.bincount(bhe.ravel()).tolist()  # Python ints: the walk below indexes them one by one
    nxt = dict(zip(bhe[:, 0].tolist(), bhe[:, 1].tolist()))
    seen: set[int] = set()
    loops = []
    # A walk ends back at its start (a loop), at a dead end, or at a vertex already walked
    # (in this walk or an earlier one): no simple loop has an edge in from outside, so
    # such a walk is not one. Every boundary vertex is walked at most once: O(E).
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, cur, simple = [start], nxt.get(start), degree[start] == 2
        seen.add(start)
        while cur is not None and cur != start and cur not in seen:
            simple &= degree[cur] == 2
            loop.append(cur)
            seen.add(cur)
            cur = nxt.get(cur)
        if cur == start and simple and len(loop) >= 3:
            loops.append(loop)
    return loops


#: a disk with at least ON_MESH_FRACTION of its points within ON_MESH_CELLS cells of a
#: mesh vertex not on its loop lies on the mesh itself (the outline of a sheet): not a
#: hole across it. (On a grid of cell-sized triangles 79% of the sheet is that close to a
#: vertex; a disk across a hole has only what curls in from its rim.)
ON_MESH_CELLS = 0.5
ON_MESH_FRACTION = 0.5
#: loops of a smaller mean radius (cells) skip that test: around so small a hole the rim
#: folds over it, so the rim's own vertices lie within ON_MESH_CELLS of the disk, and a
#: sheet this small inside its outline is below any piece size the meshers keep.
SMALL_LOOP_CELLS = 2.0


def fill_field_holes(vertices: np.ndarray, faces: np.ndarray, udf_fn, h: float, max_udf: float,
                     batch_points: int, device: str = "cpu", steps: int = 5,
                     quantile: float = 0.9, max_radius: float = np.inf,
                     narrow_width: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Close the holes the field itself spans: boundary loops across which the UDF stays low.

    Vertices where two fans touch are split first, so a boundary that runs through one
    twice (two holes meeting at a corner, common between the blobs of a dense cloud) is
    two simple loops. For every simple boundary loop a disk is laid out as rings shrinking
    to the loop's centroid (about one ring per ``h``). The disk is added when

    - the ``quantile`` of the UDF over its new vertices is at most ``max_udf``: the field
      says there is surface across the loop (a dip of the learned field above the
      extraction level; across a garment's opening the disk's middle is far from any
      surface);
    - the loop's mean radius is at most ``max_radius``: a learned field blurry enough to
      span a wide opening (a neck, a hem, a waist) would close it, so only holes narrower
      than a garment's openings are trusted to it;
    - the disk is not the mesh itself: fewer than ``ON_MESH_FRACTION`` of its points lie
      within ``ON_MESH_CELLS * h`` of a mesh vertex other than the loop's or of a disk
      added before it (loops are taken from the narrowest): the outline of a sheet has
      the sheet inside it; a second layer behind a hole, such as the other side of a
      garment or of a thick slab, is farther than that. Loops narrower than
      ``SMALL_LOOP_CELLS * h`` (mean radius) skip this test: the rim of so small a hole
      folds over it.

    A narrow loop (``narrow_width`` > 0; :func:`_narrow_loops`: a mean width of at most
    ``narrow_width``, and the field low across it) is a slit or a crumpled sliver, such as
    the seam where the cut into one layer switched layers, not an opening: it skips the
    first two tests (across a slit that curves with the surface the disk's middle lies off
    it, and a long slit has a wide mean radius).

    An added disk is wound against the loop's edges and its new vertices are projected
    onto the zero level (``steps`` NDF steps). Returns new vertices (the old ones first,
    unchanged, except that split vertices are appended as copies) and faces.
    """
    import torch
    from scipy.spatial import cKDTree

    from anchorudf.geometry.topology import split_nonmanifold_vertices
    from anchorudf.reconstruct.dense import project_points, udf_and_grad

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return v, f
    v, f = split_nonmanifold_vertices(v, f)
    loops = _simple_loops(f)
    if not loops:
        return v, f
    narrow = _narrow_loops(v, loops, udf_fn, max_udf, narrow_width, batch_points, device)
    disks = []
    for loop, thin in zip(loops, narrow):
        ring = v[loop]
        c = ring.mean(axis=0)
        radius = float(np.linalg.norm(ring - c, axis=1).mean())
        if radius > max_radius and not thin:
            continue
        rings = int(np.clip(np.ceil(radius / h), 1, 16))
        frac = np.arange(rings - 1, 0, -1) / rings  # outer to inner, loop itself excluded
        inner = c + (ring[None] - c) * frac[:, None, None]  # (rings-1, n, 3)
        disks.append((radius, loop, c, inner, thin))
    if not disks:
        return v, f
    # Narrow holes first: a wider loop around them (a sheet's outline) then sees the filled
    # surface inside it.
    disks.sort(key=lambda d: d[0])
    pts = np.concatenate([np.concatenate([d[2][None], d[3].reshape(-1, 3)]) for d in disks])
    fv, _ = udf_and_grad(udf_fn, torch.as_tensor(pts, dtype=torch.float32, device=device), batch_points,
                         with_grad=False)
    fv = fv.double().cpu().numpy()
    new_v, new_f, at, n0, tree, added = [], [], 0, len(v), None, None
    for radius, loop, c, inner, thin in disks:
        k = 1 + inner.shape[0] * inner.shape[1]
        score = np.quantile(fv[at:at + k], quantile)
        disk = pts[at:at + k]
        at += k
        if score > max_udf and not thin:
            continue
        if radius >= SMALL_LOOP_CELLS * h:  # smaller loops skip the outline test (SMALL_LOOP_CELLS)
            if tree is None:
                used = np.unique(f)
                tree = cKDTree(v[used])
            dist, idx = tree.query(disk, k=8)
            dist[np.isin(used[np.minimum(idx, len(used) - 1)], loop)] = np.inf  # the loop's own vertices
            dist = dist.min(axis=1)
            if added is not None:  # the disks added so far are mesh too
                dist = np.minimum(dist, added.query(disk)[0])
            if np.mean(dist <= ON_MESH_CELLS * h) >= ON_MESH_FRACTION:  # the mesh goes on inside the loop
                continue
        n = len(loop)
        base = n0 + sum(len(x) for x in new_v)
        ids = [np.asarray(loop)]
        for r in range(inner.shape[0]):
            ids.append(base + 1 + r * n + np.arange(n))
        centre = base
        new_v.append(np.concatenate([c[None], inner.reshape(-1, 3)]))
        for outer, inn in zip(ids[:-1], ids[1:]):
            p, q = outer, np.roll(outer, -1)
            pi, qi = inn, np.roll(inn, -1)
            # boundary half-edge p->q is used as q->p by the new faces
            new_f.append(np.stack([q, p, pi], 1))
            new_f.append(np.stack([q, pi, qi], 1))
        last = ids[-1]
        new_f.append(np.stack([np.roll(last, -1), last, np.full(n, centre)], 1))
        added = cKDTree(np.concatenate(new_v))
    if not new_v:
        return v, f
    add = np.concatenate(new_v)
    moved, _ = project_points(udf_fn, torch.as_tensor(add, dtype=torch.float32, device=device),
                              delta=2 * h, num_steps=steps, batch_points=batch_points)
    add = moved.double().cpu().numpy()
    return np.concatenate([v, add]), np.concatenate([f] + [x.astype(np.int64) for x in new_f])


#: a narrow loop also has at least this share of its vertices paired across it, with the
#: field low between them (fill_field_holes).
NARROW_FRACTION = 0.8


def loop_width(ring: np.ndarray, step: int = 4) -> float:
    """A closed polyline's mean width: twice the (vector) area it spans over its length,
    the length measured by chords ``step`` vertices apart (divided by ``step``), so that a
    rim zig-zagging from vertex to vertex counts as long as its course, not as its zig-zags.

    A circle of radius r gives r, a slit of width w (much longer than wide) about w."""
    c = ring.mean(axis=0)
    area = 0.5 * np.linalg.norm(np.cross(ring - c, np.roll(ring, -1, axis=0) - c).sum(axis=0))
    k = max(1, min(step, len(ring) // 4))
    length = np.linalg.norm(np.roll(ring, -k, axis=0) - ring, axis=1).sum() / k
    return float(2 * area / length) if length > 0 else 0.0


def _narrow_loops(v: np.ndarray, loops: list[list[int]], udf_fn, max_udf: float, width: float,
                  batch_points: int, device: str) -> list[bool]:
    """Per loop: whether it is narrow (``fill_field_holes``' ``narrow_width``): a mean width
    (:func:`loop_width`) of at most ``width``, and at least ``NARROW_FRACTION`` of its
    vertices with a vertex across the loop (:func:`across_partners`, within ``2 * width``)
    where the UDF at their midpoint is at most ``max_udf``."""
    if width <= 0 or not loops:
        return [False] * len(loops)
    thin = np.array([loop_width(v[lp]) <= width for lp in loops])
    if not thin.any():
        return thin.tolist()
    import torch

    from anchorudf.reconstruct.dense import udf_and_grad

    cand = np.flatnonzero(thin)
    pairs = [(i, a, b) for i in cand for a, b in enumerate(across_partners(v[loops[i]], 2 * width)) if b >= 0]
    low = np.zeros(len(loops))
    if pairs:
        mid = np.array([0.5 * (v[loops[i][a]] + v[loops[i][b]]) for i, a, b in pairs])
        fv, _ = udf_and_grad(udf_fn, torch.as_tensor(mid, dtype=torch.float32, device=device), batch_points,
                             with_grad=False)
        np.add.at(low, [i for i, _, _ in pairs], fv.double().cpu().numpy() <= max_udf)
    share = low / np.array([len(lp) for lp in loops])
    thin &= share >= NARROW_FRACTION
    return thin.tolist()


#: a boundary vertex's partner across its loop must be at least this many times farther
#: along the loop than in space: across the loop, not a neighbour. No pair of a convex
#: loop qualifies (along a circle the arc is at most pi/2 times the chord).
ACROSS_ARC_RATIO = 3.0


def across_partners(ring: np.ndarray, max_gap: float) -> np.ndarray:
    """For every vertex of a closed polyline: the index of the nearest of its vertices within
    ``max_gap`` that is ``ACROSS_ARC_RATIO`` times farther along the polyline (the shorter
    way) than in space, and than half ``max_gap``, or -1: the far side of a slit, not a
    neighbour nor the next fold of a rim that zig-zags."""
    from scipy.spatial import cKDTree

    n = len(ring)
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1))]
    dist, idx = cKDTree(ring).query(ring, k=min(32, n), distance_upper_bound=max_gap)
    along = np.abs(arc[:n, None] - arc[np.minimum(idx, n - 1)])
    along = np.minimum(along, arc[-1] - along)
    ok = (idx < n) & (dist > 0) & (along >= ACROSS_ARC_RATIO * np.maximum(dist, max_gap / 2))
    first = np.argmax(ok, axis=1)  # neighbours come nearest first
    return np.where(ok.any(axis=1), idx[np.arange(n), first], -1)
