"""Dense point clouds and open-surface meshing on analytic UDFs with known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from anchorudf.config import EvaluateConfig  # noqa: E402
from anchorudf.geometry.camera import make_calib, project  # noqa: E402
from anchorudf.geometry.topology import boundary_loops, face_components  # noqa: E402
from anchorudf.reconstruct import dense_point_cloud, to_garment_frame, udf_mesh  # noqa: E402
from anchorudf.reconstruct.dense import udf_and_grad  # noqa: E402

# Shapes, NDC units. Each has a torch UDF (what the code sees) and an independent float64
# numpy distance (the reference the tests check against).
SIDE, Z0 = 0.5, 0.03  # square sheet [-0.5, 0.5]^2 at z = 0.03
CAP_R, CAP_TH = 0.6, math.radians(60)  # sphere cap around +z, polar angle <= 60 deg
CYL_R, CYL_H = 0.4, 0.5  # open cylinder around +y, |y| <= 0.5


def _relu2(x):
    return torch.clamp(x, min=0.0) ** 2


def _sqrt(x):
    return torch.sqrt(x + 1e-12)


def plane_udf(p, z0=Z0):
    return _sqrt(_relu2(p[:, 0].abs() - SIDE) + _relu2(p[:, 1].abs() - SIDE) + (p[:, 2] - z0) ** 2)


def cap_udf(p):
    r = _sqrt((p ** 2).sum(1))
    rho = _sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)
    rim = _sqrt((rho - CAP_R * math.sin(CAP_TH)) ** 2 + (p[:, 2] - CAP_R * math.cos(CAP_TH)) ** 2)
    return torch.where(torch.atan2(rho, p[:, 2]) <= CAP_TH, (r - CAP_R).abs(), rim)


def cylinder_udf(p):
    rho = _sqrt(p[:, 0] ** 2 + p[:, 2] ** 2)
    return _sqrt((rho - CYL_R) ** 2 + _relu2(p[:, 1].abs() - CYL_H))


def plane_ref(x):
    return np.sqrt(np.maximum(np.abs(x[:, 0]) - SIDE, 0) ** 2
                   + np.maximum(np.abs(x[:, 1]) - SIDE, 0) ** 2 + (x[:, 2] - Z0) ** 2)


def cap_ref(x):
    # Inside the cone of the cap the nearest point is radial; outside it is on the rim circle.
    r = np.linalg.norm(x, axis=1)
    rho = np.hypot(x[:, 0], x[:, 1])
    inside = np.arctan2(rho, x[:, 2]) <= CAP_TH
    rim = np.hypot(rho - CAP_R * np.sin(CAP_TH), x[:, 2] - CAP_R * np.cos(CAP_TH))
    return np.where(inside, np.abs(r - CAP_R), rim)


def cylinder_ref(x):
    rho = np.hypot(x[:, 0], x[:, 2])
    return np.hypot(rho - CYL_R, np.maximum(np.abs(x[:, 1]) - CYL_H, 0))


SHAPES = {
    # name: (udf, reference distance, area, boundary loops)
    "plane": (plane_udf, plane_ref, (2 * SIDE) ** 2, 1),
    "cap": (cap_udf, cap_ref, 2 * np.pi * CAP_R ** 2 * (1 - np.cos(CAP_TH)), 1),
    "cylinder": (cylinder_udf, cylinder_ref, 2 * np.pi * CYL_R * 2 * CYL_H, 2),
}


def _cfg(**kw) -> EvaluateConfig:
    # The paper's NDF protocol: uniform seeds, filter at 0.007 NDC.
    base = dict(seed=3, seed_points=3000, target_points=6000, mesh_resolution=40, batch_points=4096,
                seeding="uniform", filter_val=0.007)
    base.update(kw)
    return EvaluateConfig(**base)


def _area(v, f):
    return float(0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum())


@pytest.mark.parametrize("name", list(SHAPES))
def test_dense_points_land_on_surface(name):
    udf, ref, _, _ = SHAPES[name]
    pts = dense_point_cloud(udf, _cfg(), delta=0.2)
    assert pts.shape == (6000, 3) and pts.dtype == np.float32
    assert ref(pts.astype(np.float64)).max() < 1e-3
    # Not all on the rim: most points are on the open surface's interior.
    assert len(np.unique(np.round(pts, 3), axis=0)) > 3000


def test_dense_is_deterministic_and_seeded():
    a = dense_point_cloud(cylinder_udf, _cfg(), delta=0.2)
    b = dense_point_cloud(cylinder_udf, _cfg(), delta=0.2)
    c = dense_point_cloud(cylinder_udf, _cfg(seed=4), delta=0.2)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_dense_batching_does_not_change_result():
    a = dense_point_cloud(plane_udf, _cfg(batch_points=50000), delta=0.2)
    b = dense_point_cloud(plane_udf, _cfg(batch_points=700), delta=0.2)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_dense_warns_when_rounds_run_out():
    with pytest.warns(RuntimeWarning, match="only"):
        pts = dense_point_cloud(plane_udf, _cfg(max_rounds=2, target_points=100000), delta=0.2)
    assert 0 < len(pts) < 100000


def test_udf_and_grad_sanitises_nan_gradients():
    p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    f, g = udf_and_grad(lambda x: x.norm(dim=1), p, batch_points=1)
    assert torch.isfinite(g).all()
    np.testing.assert_allclose(g[1].numpy(), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("name", list(SHAPES))
def test_mesh_open_surfaces(name):
    udf, ref, area, loops = SHAPES[name]
    cfg = _cfg()
    pts = dense_point_cloud(udf, cfg, delta=0.2)
    v, f = udf_mesh(udf, pts, cfg)
    assert v.dtype == np.float64 and f.dtype == np.int64 and len(f) > 500
    h = np.ptp(pts, axis=0).max() / cfg.mesh_resolution
    assert ref(v).max() < 0.3 * h  # on the surface, up to the rim trimming tolerance
    assert boundary_loops(f) == loops  # open rims stay open, no caps, no cracks
    assert len(np.unique(face_components(f))) == 1
    # A double layer would give twice the area; a capped cylinder would add 2 pi r^2.
    assert abs(_area(v, f) / area - 1) < 0.1


def test_mesh_has_one_layer_per_column():
    cfg = _cfg()
    v, f = udf_mesh(plane_udf, dense_point_cloud(plane_udf, cfg, delta=0.2), cfg)
    import trimesh

    mesh = trimesh.Trimesh(v, f, process=False)
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.4, 0.4, size=(200, 2))
    origins = np.c_[xy, np.full(len(xy), -1.0)]
    _, ray_ids, _ = mesh.ray.intersects_location(origins, np.tile([0.0, 0.0, 1.0], (len(xy), 1)))
    hits = np.bincount(ray_ids, minlength=len(xy))
    assert (hits == 1).mean() > 0.97  # rays through a vertex/edge may double-count


def test_mesh_two_close_sheets_stay_two_sheets():
    def two(p):
        return torch.minimum(plane_udf(p, 0.05), plane_udf(p, -0.05))

    cfg = _cfg(mesh_resolution=48)
    v, f = udf_mesh(two, dense_point_cloud(two, cfg, delta=0.2), cfg)
    assert len(np.unique(face_components(f))) == 2
    assert np.abs(np.abs(v[:, 2]) - 0.05).max() < 1e-4  # nothing on the medial plane
    assert abs(_area(v, f) / 2.0 - 1) < 0.1


def test_mesh_survives_a_relu_zero_slab():
    def slab(p):  # a UDF that is exactly 0 (zero gradient) within 0.002 of the surface
        return torch.relu(cylinder_udf(p) - 0.002)

    cfg = _cfg()
    v, f = udf_mesh(slab, dense_point_cloud(slab, cfg, delta=0.2), cfg)
    assert boundary_loops(f) == 2
    assert cylinder_ref(v).max() < 0.02
    assert abs(_area(v, f) / SHAPES["cylinder"][2] - 1) < 0.1


def test_mesh_is_deterministic_and_consistently_wound():
    cfg = _cfg()
    pts = dense_point_cloud(cap_udf, cfg, delta=0.2)
    v1, f1 = udf_mesh(cap_udf, pts, cfg)
    v2, f2 = udf_mesh(cap_udf, pts, cfg)
    assert v1.tobytes() == v2.tobytes() and f1.tobytes() == f2.tobytes()
    import trimesh

    assert trimesh.Trimesh(v1, f1, process=False).is_winding_consistent


def test_mesh_rejects_bad_points():
    with pytest.raises(ValueError, match="points"):
        udf_mesh(plane_udf, np.zeros((0, 3)), _cfg())
    with pytest.raises(ValueError, match="volume"):
        udf_mesh(plane_udf, np.zeros((5, 3)), _cfg())


def test_to_garment_frame_inverts_project():
    calib = make_calib(40.0, 1.7, center=np.array([0.1, -0.2, 0.05]))
    x = np.random.default_rng(1).uniform(-0.5, 0.5, size=(50, 3))
    np.testing.assert_allclose(to_garment_frame(project(calib, x), calib), x, atol=1e-12)
    with pytest.raises(ValueError, match="calib"):
        to_garment_frame(x, np.eye(3))


def test_anchor_seeding_lands_on_the_surface_near_the_anchors():
    """seeding=anchors: seeds around (noisy) anchors, projected onto the surface."""
    udf, ref = SHAPES["cylinder"][0], SHAPES["cylinder"][1]
    rng = np.random.default_rng(0)
    th = rng.uniform(0, 2 * np.pi, 40)
    z = rng.uniform(-CYL_H, CYL_H, 40)
    anchors = np.stack([CYL_R * np.cos(th), z, CYL_R * np.sin(th)], 1) + rng.normal(0, 0.02, (40, 3))
    cfg = _cfg(seeding="anchors", anchor_std=0.03, filter_val=0.007)
    pts = dense_point_cloud(udf, cfg, delta=0.2, anchors=anchors)
    assert len(pts) == cfg.target_points
    assert np.abs(ref(pts.astype(np.float64))).max() < 1e-3
    # the points stay near the anchors (no uniform exploration of the whole box)
    from scipy.spatial import cKDTree

    assert cKDTree(anchors).query(pts)[0].max() < 0.3
    with pytest.raises(ValueError, match="no anchors"):
        dense_point_cloud(udf, cfg, delta=0.2)


# --- the shell mesher (default evaluate.mesher): exact and noisy analytic UDFs ---------

from anchorudf.geometry.topology import nonmanifold_edges, nonmanifold_vertices  # noqa: E402
from anchorudf.reconstruct import extract_mesh, shell_mesh  # noqa: E402


def _noisy(udf, amp=0.006, floor=0.004, scale=0.15, seed=0):
    """A learned-looking field: never 0 (a floor), smooth bumps of the value (up to 2 amp)."""
    rng = np.random.default_rng(seed)
    w = torch.as_tensor(rng.normal(size=(12, 3)) / scale, dtype=torch.float32)
    ph = torch.as_tensor(rng.uniform(0, 2 * np.pi, 12), dtype=torch.float32)

    def f(p):
        bumps = (torch.sin(p @ w.T + ph).mean(1) + 1.0)  # in [0, 2], smooth
        return torch.sqrt(udf(p) ** 2 + floor ** 2) + amp * bumps

    return f


def _check_open_surface(v, f, ref, area, loops, h, tol_cells):
    assert v.dtype == np.float64 and f.dtype == np.int64 and len(f) > 500
    assert boundary_loops(f) == loops                      # rims open, no caps, no holes
    assert len(np.unique(face_components(f))) == 1
    assert len(nonmanifold_edges(f)) == 0 and len(nonmanifold_vertices(f)) == 0
    assert ref(v).max() < tol_cells * h                    # on the surface
    assert abs(_area(v, f) / area - 1) < 0.05              # one layer, not two
    import trimesh

    assert trimesh.Trimesh(v, f, process=False).is_winding_consistent


@pytest.mark.parametrize("name", list(SHAPES))
def test_shell_mesh_exact_udfs(name):
    udf, ref, area, loops = SHAPES[name]
    cfg = _cfg()
    pts = dense_point_cloud(udf, cfg, delta=0.2)
    v, f = shell_mesh(udf, pts, cfg)
    h = np.ptp(pts, axis=0).max() / cfg.mesh_resolution
    # NDF projection on an exact field: on the surface to float32 precision, rims included.
    _check_open_surface(v, f, ref, area, loops, h, tol_cells=1e-3)


@pytest.mark.parametrize("name", list(SHAPES))
def test_extract_mesh_noisy_udfs(name):
    """Value noise and a floor (the field never reaches 0): the old per-cell signs crack,
    the shell still gives one open sheet with the right rims, near the surface."""
    udf, ref, area, loops = SHAPES[name]
    noisy = _noisy(udf)
    cfg = _cfg(filter_val=0.02, reseed_val=0.04, mesher="shell")  # the field's floor is 0.004 to 0.016
    pts = dense_point_cloud(noisy, cfg, delta=0.2)
    v, f = extract_mesh(noisy, pts, cfg)
    h = np.ptp(pts, axis=0).max() / cfg.mesh_resolution
    _check_open_surface(v, f, ref, area, loops, h, tol_cells=0.5)


def test_shell_two_close_sheets_and_relu_slab():
    def two(p):
        return torch.minimum(plane_udf(p, 0.05), plane_udf(p, -0.05))

    cfg = _cfg(mesh_resolution=48)
    v, f = shell_mesh(two, dense_point_cloud(two, cfg, delta=0.2), cfg)
    assert len(np.unique(face_components(f))) == 2
    assert np.abs(np.abs(v[:, 2]) - 0.05).max() < 1e-4
    assert abs(_area(v, f) / 2.0 - 1) < 0.05

    def slab(p):  # exactly 0 (zero gradient) within 0.002 of the surface
        return torch.relu(cylinder_udf(p) - 0.002)

    cfg = _cfg()
    v, f = shell_mesh(slab, dense_point_cloud(slab, cfg, delta=0.2), cfg)
    assert boundary_loops(f) == 2 and len(nonmanifold_edges(f)) == 0
    assert cylinder_ref(v).max() < 0.003


def test_shell_mesh_takes_the_middle_of_a_thick_slab():
    """A blurry field's low valley is a slab: the mesh goes through its middle (where the
    surface is), not along one of its faces."""
    t = 0.03  # half-thickness of the zero slab: about 1.5 cells at mesh_resolution 40

    def slab(p):
        return torch.relu(cylinder_udf(p) - t)

    cfg = _cfg(filter_val=0.02, reseed_val=0.04)
    pts = dense_point_cloud(slab, cfg, delta=0.2)
    side = lambda v: np.abs(v[:, 1]) < CYL_H - 2 * t  # away from the rims (their slab caps)
    v, f = shell_mesh(slab, pts, cfg)
    assert boundary_loops(f) == 2 and len(nonmanifold_edges(f)) == 0
    assert np.abs(np.hypot(v[:, 0], v[:, 2]) - CYL_R)[side(v)].mean() < 0.15 * t
    assert abs(_area(v, f) / SHAPES["cylinder"][2] - 1) < 0.1
    v0, _ = shell_mesh(slab, pts, cfg, mid_slab=False)  # the slab's inner face
    assert np.abs(np.hypot(v0[:, 0], v0[:, 2]) - CYL_R)[side(v0)].mean() > 0.8 * t


def test_mid_slab_positions_exact_layers():
    """Two parallel layers 2 e apart (normals facing away from each other): every vertex
    whose exit meets the other layer moves e towards it; a vertex without exit stays."""
    from anchorudf.reconstruct.shell import mid_slab_positions

    g = np.stack(np.meshgrid(np.linspace(0, 1, 6), np.linspace(0, 1, 6), indexing="ij"), -1).reshape(-1, 2)
    e = 0.05
    top = np.c_[g, np.full(len(g), e)]
    bottom = np.c_[g, np.full(len(g), -e)]
    verts = np.r_[top, bottom]
    normals = np.r_[np.tile([0, 0, 1.0], (len(g), 1)), np.tile([0, 0, -1.0], (len(g), 1))]
    q = np.arange(36).reshape(6, 6)
    tri = np.r_[np.c_[q[:-1, :-1].ravel(), q[1:, :-1].ravel(), q[:-1, 1:].ravel()],
                np.c_[q[1:, :-1].ravel(), q[1:, 1:].ravel(), q[:-1, 1:].ravel()]]
    faces = np.r_[tri, tri + 36]
    exits = np.full(72, 2 * e)
    out, w = mid_slab_positions(verts, faces, normals, exits, max_len=1.0)
    assert np.allclose(out[:, 2], 0.0) and np.allclose(w, 1.0)
    exits[0] = np.inf        # no far side found: no own shift, nor for its partner (not mutual)
    out, w = mid_slab_positions(verts, faces, normals, exits, max_len=1.0, smooth_steps=0)
    assert out[0, 2] == e and out[36, 2] == -e and w[0] == 0 and w[36] == 0
    assert np.allclose(np.delete(out[:, 2], [0, 36]), 0.0)
    exits[0], exits[1] = 2 * e, 6 * e        # a thickness its partner does not see: not moved
    out, _ = mid_slab_positions(verts, faces, normals, exits, max_len=1.0, smooth_steps=0)
    assert out[1, 2] == e and out[37, 2] == -e
    out, _ = mid_slab_positions(verts, faces, normals, np.full(72, 2 * e), max_len=e)  # too thick
    assert np.array_equal(out, verts)


@pytest.mark.parametrize("name", ["cylinder", "cap"])
def test_points_mesher_follows_the_dense_points(name):
    """mesher=points: the shell cut of the dense cloud's own distance field. On a clean
    cloud of an exact surface: one open sheet with the right rims, on the surface, one
    layer; no vertex much further than a cell from the cloud or the surface."""
    from scipy.spatial import cKDTree

    udf, ref, area, loops = SHAPES[name]
    cfg = _cfg(mesher="points", target_points=20000)
    pts = dense_point_cloud(udf, cfg, delta=0.2)
    v, f = extract_mesh(udf, pts, cfg)
    h = np.ptp(pts, axis=0).max() / cfg.mesh_resolution
    _check_open_surface(v, f, ref, area, loops, h, tol_cells=1.0)
    assert ref(v).mean() < 0.1 * h                         # the grid's trilinear exits: a few outliers
    assert cKDTree(pts).query(v)[0].max() < 1.5 * h


def test_points_mesher_level_bridges_gaps_in_a_blobby_cloud():
    """evaluate.mesh_level: a cloud of separate blobs on a sheet (as anchor-seeded dense
    points are) leaves a hole at every gap wider than about twice the level; at 2.5 cells
    the blobs join into one sheet with one rim, still on the surface."""
    from scipy.spatial import cKDTree

    from anchorudf.geometry.topology import boundary_loops

    rng = np.random.default_rng(0)
    c = np.arange(-0.45, 0.451, 0.1)
    centres = np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)  # 10 x 10 blobs
    r, t = 0.03 * np.sqrt(rng.uniform(0, 1, (len(centres), 80))), rng.uniform(0, 2 * np.pi, (len(centres), 80))
    xy = (centres[:, None] + np.stack([r * np.cos(t), r * np.sin(t)], -1)).reshape(-1, 2)
    pts = np.c_[xy, np.full(len(xy), Z0)]
    loops, meshes = {}, {}
    for level in (1.0, 2.5):
        cfg = _cfg(mesher="points", mesh_level=level, mesh_fill_field=0.0, mesh_fill_holes=0)
        v, f = extract_mesh(plane_udf, pts, cfg)
        loops[level], meshes[level] = boundary_loops(f), (v, f)
    h = np.ptp(pts, axis=0).max() / cfg.mesh_resolution
    assert loops[1.0] >= 20                                  # a hole at (nearly) every diagonal gap
    assert loops[2.5] == 1                                   # one sheet, one rim
    v, f = meshes[2.5]
    dz = np.abs(v[:, 2] - Z0)
    assert dz.mean() < 0.1 * h and dz.max() < h              # on the sheet (the rim's turn within a cell)
    assert cKDTree(pts).query(v)[0].max() < 3.0 * h          # bridges span the gaps, no further


def test_points_mesher_keeps_a_sleeve_the_field_filled():
    """evaluate.mesh_recover: a hollow torso (a blurry tube: two layers, the inner one
    kept) with a thin solid sleeve coming out of its side. The sleeve's shell hangs on
    the torso's dropped outer layer and is too small a piece to keep a half of its own,
    so the cut drops it whole; recovered, it is meshed at the cloud's own surface."""
    from scipy.spatial import cKDTree

    from anchorudf.geometry.topology import mesh_topology
    from anchorudf.reconstruct.meshing import points_udf

    rng = np.random.default_rng(0)
    n, m = 30000, 4000
    th, rad = rng.uniform(0, 2 * np.pi, n), 0.3 + rng.normal(0, 0.012, n)
    torso = np.c_[rad * np.cos(th), rng.uniform(-0.5, 0.5, n), rad * np.sin(th)]
    t, r, a = rng.uniform(0, 0.3, m), 0.045 * np.sqrt(rng.uniform(0, 1, m)), rng.uniform(0, 2 * np.pi, m)
    sleeve = np.c_[0.3 + t, 0.2 + r * np.cos(a), r * np.sin(a)]
    pts = np.r_[torso, sleeve]
    h = np.ptp(pts, axis=0).max() / 40
    far = sleeve[sleeve[:, 0] > 0.4]
    dist = {}
    for rec in (0, 40):
        cfg = _cfg(mesher="points", mesh_fill_field=0.0, mesh_fill_holes=0, mesh_recover=rec)
        v, f = extract_mesh(points_udf(pts), pts, cfg)
        dist[rec] = cKDTree(v).query(far)[0] / h
        assert cKDTree(v).query(torso)[0].mean() < h                  # the torso is there either way
        topo = mesh_topology(v, f)
        assert topo["nonmanifold_edges"] == 0 and topo["nonmanifold_vertices"] == 0
    assert dist[0].mean() > 4                                        # dropped: no surface near the sleeve
    assert dist[40].mean() < 1.2 and dist[40].max() < 3              # kept, on the cloud


def test_shell_mesh_deterministic_and_empty_field():
    cfg = _cfg()
    pts = dense_point_cloud(cap_udf, cfg, delta=0.2)
    a, b = shell_mesh(cap_udf, pts, cfg), shell_mesh(cap_udf, pts, cfg)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    v, f = shell_mesh(lambda p: plane_udf(p) + 1.0, pts, cfg)  # nothing below the level
    assert v.shape == (0, 3) and f.shape == (0, 3)
    with pytest.raises(ValueError, match="points"):
        shell_mesh(plane_udf, np.zeros((0, 3)), cfg)
    with pytest.raises(ValueError, match="mid_projection"):
        shell_mesh(cap_udf, pts, cfg, mid_projection="sometimes")


def test_extract_mesh_keeps_the_meshudf_option():
    cfg = _cfg(mesher="meshudf")
    pts = dense_point_cloud(plane_udf, cfg, delta=0.2)
    from anchorudf.reconstruct.holes import fill_small_holes

    v, f = extract_mesh(plane_udf, pts, cfg)
    v2, f2 = fill_small_holes(*udf_mesh(plane_udf, pts, cfg, min_component_faces=cfg.mesh_min_faces),
                              cfg.mesh_fill_holes)
    assert v.tobytes() == v2.tobytes() and f.tobytes() == f2.tobytes()


def test_mesh_to_points_chamfer_counts_excess_and_missing_surface():
    from anchorudf.reconstruct.meshing import mesh_to_points_chamfer

    cfg = _cfg()
    pts = dense_point_cloud(cylinder_udf, cfg, delta=0.2)
    v, f = shell_mesh(cylinder_udf, pts, cfg)
    good = mesh_to_points_chamfer(v, f, pts)
    half = f[v[f].mean(axis=1)[:, 1] > 0]                 # missing surface
    swollen = v * 1.2                                     # surface off the points
    assert good < 0.03                                    # sampling spacing of both clouds
    assert mesh_to_points_chamfer(v, half, pts) > 3 * good
    assert mesh_to_points_chamfer(swollen, f, pts) > 3 * good
    assert mesh_to_points_chamfer(v, f[:0], pts) == float("inf")


def test_extract_mesh_auto_keeps_the_mesh_closer_to_the_points():
    from anchorudf.reconstruct.meshing import mesh_to_points_chamfer

    noisy = _noisy(cylinder_udf)
    cfg = _cfg(filter_val=0.02, reseed_val=0.04)
    pts = dense_point_cloud(noisy, cfg, delta=0.2)
    both = [extract_mesh(noisy, pts, _cfg(filter_val=0.02, reseed_val=0.04, mesher=m)) for m in ("shell", "meshudf")]
    scores = [mesh_to_points_chamfer(v, f, pts) for v, f in both]
    v, f = extract_mesh(noisy, pts, _cfg(filter_val=0.02, reseed_val=0.04, mesher="auto"))
    best = both[int(np.argmin(scores))]
    assert v.tobytes() == best[0].tobytes() and f.tobytes() == best[1].tobytes()


def _slab_exits_reference(vol, origin, h, x, direction, eps, max_len):
    """Ray by ray, step by step: the first step back above ``eps`` after one below it."""
    from scipy.ndimage import map_coordinates

    step = 0.25 * h
    out = np.full(len(x), np.inf)
    for i in range(len(x)):
        prev, dipped = None, False
        for j in range(1, int(np.ceil(max_len / step)) + 1):
            q = (x[i] + j * step * direction[i] - origin) / h
            f = map_coordinates(vol, q[:, None], order=1, mode="nearest")[0]
            if dipped and f >= eps:
                out[i] = j * step - step + np.clip((eps - prev) / max(f - prev, 1e-12), 0.0, 1.0) * step
                break
            dipped |= f < eps
            prev = f
    return out


@pytest.mark.parametrize("block", [1, 3, 16])
def test_slab_exits_blocked_march_matches_the_ray_by_ray_reference(block):
    from anchorudf.reconstruct.shell import slab_exits

    rng = np.random.default_rng(block)
    n = 24
    z = np.arange(n)[None, None, :]
    vol = np.minimum(rng.uniform(0, 2, size=(n, n, n)), np.abs(z - 12) * 0.3)  # a noisy slab
    x = rng.uniform(4, 20, size=(120, 3)) * 0.1
    d = rng.normal(size=(120, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    got = slab_exits(vol, np.zeros(3), 0.1, x, d, 0.5, 1.5, block=block)
    want = _slab_exits_reference(vol, np.zeros(3), 0.1, x, d, 0.5, 1.5)
    assert 0.3 < np.isfinite(want).mean() < 1.0  # some rays exit, some do not
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_islands_reads_the_cycle_like_running_every_round(seed):
    """Labels that start cycling give the same labels after max_rounds as running every
    round. A small sheet of its own, tied to a big one only through the shell piece (as
    the other-layer links tie a blob to a garment), is one island whatever its label and
    flips every round: period 2, as on learned fields."""
    from anchorudf.geometry.topology import unique_edges
    from anchorudf.reconstruct.shell import _merge_islands, _merge_round

    def sheet(n, first):
        ij = first + np.arange(n * n).reshape(n, n)
        quads = np.stack([ij[:-1, :-1], ij[1:, :-1], ij[1:, 1:], ij[:-1, 1:]], -1).reshape(-1, 4)
        return np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])

    faces = np.concatenate([sheet(30, 0), sheet(3, 900)])
    rng = np.random.default_rng(seed)
    labels = np.r_[np.where(rng.random(900) < 0.8, 1.0, -1.0), -np.ones(9)]
    comp = np.zeros(909, dtype=np.int64)  # one shell piece
    e = unique_edges(faces)
    csize = np.bincount(comp)
    states, cur = [labels], labels
    for _ in range(100):
        cur = _merge_round(e, cur, comp, csize, 0.02)
        if cur is None:
            break
        states.append(cur)
    keys = [s.tobytes() for s in states]
    assert len(set(keys)) < len(keys), "the labelling does not cycle: the test checks nothing"
    assert len(set(keys[:3])) == 3  # and not from the first round: the random islands merge first
    for rounds in (1, 2, 3, 7, 50, 99, 100):
        want = states[min(rounds, len(states) - 1)]
        np.testing.assert_array_equal(_merge_islands(faces, labels, comp, 0.02, max_rounds=rounds), want)
