"""Exact closest points vs a brute-force point-to-triangle reference."""

import meshes
import numpy as np
import pytest

from anchorudf.geometry.closest import closest_points, closest_points_full, point_triangle_closest


def _ref_point_segment(p, a, b):
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-300), 0.0, 1.0)
    return a + t[:, None] * ab


def reference_closest(vertices, faces, points):
    """Brute force: every point against every triangle, in float64.

    Projection onto the plane when the barycentrics are inside, otherwise the nearest of the
    three edge segments; the minimum over all triangles.
    """
    p = np.asarray(points, dtype=np.float64)
    best_d = np.full(len(p), np.inf)
    best_q = np.zeros_like(p)
    for tri in np.asarray(vertices, dtype=np.float64)[faces]:
        a, b, c = tri
        n = np.cross(b - a, c - a)
        n = n / np.linalg.norm(n)
        proj = p - ((p - a) @ n)[:, None] * n
        # barycentrics of the projection by solving the 2x2 Gram system
        e0, e1, r = b - a, c - a, proj - a
        g = np.array([[e0 @ e0, e0 @ e1], [e0 @ e1, e1 @ e1]])
        vw = np.linalg.solve(g, np.stack([r @ e0, r @ e1]))
        inside = (vw[0] >= 0) & (vw[1] >= 0) & (vw.sum(0) <= 1)
        cands = [_ref_point_segment(p, a, b), _ref_point_segment(p, b, c), _ref_point_segment(p, c, a)]
        q = np.where(inside[:, None], proj, 0.0)
        d = np.where(inside, np.linalg.norm(p - proj, axis=1), np.inf)
        for cq in cands:
            cd = np.linalg.norm(p - cq, axis=1)
            better = (~inside) & (cd < d)
            q[better], d[better] = cq[better], cd[better]
        upd = d < best_d
        best_d[upd], best_q[upd] = d[upd], q[upd]
    return best_d, best_q


def single_triangle():
    return np.array([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], [0.1, 0.3, 0.05]]), np.array([[0, 1, 2]])


def open_cylinder(sections=12, rings=4):
    """An open tube of radius 0.3 and height 0.8 (no caps)."""
    return meshes.open_tube_arrays(sections=sections, rings=rings)


def bumpy_sheet(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-0.5, 0.5, n), np.linspace(-0.5, 0.5, n))
    z = 0.08 * rng.standard_normal(x.shape)
    v = np.stack([x.ravel() + 0.02 * rng.standard_normal(x.size), y.ravel(), z.ravel()], 1)
    f = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            f += [[i, i + 1, i + n], [i + 1, i + n + 1, i + n]]
    return v, np.array(f)


def special_points(v, f, rng):
    """Vertices, edge points, face interiors, far points and points beyond open boundaries."""
    tri = v[f]
    t = rng.random((len(f), 1))
    edges = tri[:, 0] + t * (tri[:, 1] - tri[:, 0])
    bary = rng.dirichlet([1, 1, 1], len(f))
    inside = np.einsum("fk,fkd->fd", bary, tri)
    far = rng.normal(size=(50, 3)) * 20.0
    centre = v.mean(0)
    beyond = centre + (v - centre) * 1.3 + rng.normal(scale=0.01, size=v.shape)
    near = inside + rng.normal(scale=0.02, size=inside.shape)
    box = rng.uniform(-0.7, 0.7, size=(300, 3))
    return np.concatenate([v, edges, inside, far, beyond, near, box])


@pytest.mark.parametrize("make", [single_triangle, open_cylinder, bumpy_sheet])
def test_matches_brute_force(make):
    rng = np.random.default_rng(1)
    v, f = make()
    p = special_points(v, f, rng)
    udf, q = closest_points(v, f, p)
    ref_d, _ = reference_closest(v, f, p)
    assert udf.dtype == np.float64 and udf.shape == (len(p),) and q.shape == (len(p), 3)
    assert np.abs(udf - ref_d).max() <= 1e-6
    # q lies on the surface and realises the distance
    ref_q_d, _ = reference_closest(v, f, q)
    assert ref_q_d.max() <= 1e-6
    assert np.allclose(np.linalg.norm(p - q, axis=1), udf, atol=1e-12)
    # points on vertices/edges/faces have distance ~0
    n_on = len(v) + 2 * len(f)
    assert udf[:n_on].max() <= 1e-6


@pytest.mark.parametrize("make", [single_triangle, open_cylinder, bumpy_sheet])
def test_direction_is_unit_and_reconstructs_point(make):
    rng = np.random.default_rng(2)
    v, f = make()
    p = special_points(v, f, rng)
    udf, q, fid, d = closest_points_full(v, f, p)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert np.abs(q + udf[:, None] * d - p).max() <= 1e-6
    assert fid.min() >= 0 and fid.max() < len(f)
    # the chosen face really holds q
    tri = v[f[fid]]
    own = point_triangle_closest(q, tri[:, 0], tri[:, 1], tri[:, 2])
    assert np.abs(own - q).max() <= 1e-9


def test_on_surface_direction_is_face_normal():
    v, f = single_triangle()
    n = np.cross(v[1] - v[0], v[2] - v[0])
    n /= np.linalg.norm(n)
    centroid = v.mean(0, keepdims=True)
    _, _, _, d = closest_points_full(v, f, centroid)
    assert np.allclose(np.abs(d @ n), 1.0)


def test_kernel_regions_against_reference():
    rng = np.random.default_rng(3)
    a, b, c = (rng.normal(size=(2000, 3)) for _ in range(3))
    p = rng.normal(size=(2000, 3)) * 2
    q = point_triangle_closest(p, a, b, c)
    for i in range(0, 2000, 97):
        d, _ = reference_closest(np.stack([a[i], b[i], c[i]]), np.array([[0, 1, 2]]), p[i:i + 1])
        assert abs(np.linalg.norm(p[i] - q[i]) - d[0]) <= 1e-9


def test_degenerate_triangle_falls_back_to_edges():
    a = np.array([[0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.0, 0.0]])
    c = np.array([[2.0, 0.0, 0.0]])   # collinear: zero area
    q = point_triangle_closest(np.array([[1.5, 1.0, 0.0]]), a, b, c)
    assert np.allclose(q, [[1.5, 0.0, 0.0]])


def test_bad_input_raises():
    v, f = single_triangle()
    with pytest.raises(ValueError, match="faces"):
        closest_points(v, np.zeros((0, 3), int), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="vertices"):
        closest_points(np.zeros((0, 3)), f, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        closest_points(v, f, np.array([[np.nan, 0, 0]]))
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        closest_points(bad, f, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="vertex ids"):
        closest_points(v, np.array([[0, 1, 5]]), np.zeros((1, 3)))
