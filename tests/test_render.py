"""Render library: calib agreement, handedness, masks, depth, determinism, resume, failures."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from anchorudf.config import RenderConfig
from anchorudf.geometry.camera import make_calib, ndc_to_pixel, project, view_scale

SIZE = 96
RED_FRONT, GREEN_SIDE = (255, 0, 0, 255), (0, 255, 0, 255)


def skirt(nu: int = 48, nv: int = 20, r: float = 0.32, h: float = 0.9, wave: float = 0.02):
    """Open flared cylinder around +Y with pleats; red patch on +Z, green patch on +X."""
    import trimesh

    th = np.linspace(0.0, 2 * np.pi, nu, endpoint=False)
    ys = np.linspace(-h / 2, h / 2, nv)
    t, y = np.meshgrid(th, ys)  # (nv, nu)
    rad = r * (1.0 + 0.3 * (0.5 - (y + h / 2) / h)) + wave * np.sin(8 * t)
    v = np.stack([rad * np.sin(t), y, rad * np.cos(t)], -1).reshape(-1, 3)
    j, i = np.meshgrid(np.arange(nv - 1), np.arange(nu), indexing="ij")
    a, b = j * nu + i, j * nu + (i + 1) % nu
    c, d = a + nu, b + nu
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])
    mesh = trimesh.Trimesh(v, faces, process=False)
    ang, yv = t.ravel(), y.ravel()
    col = np.tile([200, 200, 200, 255], (len(v), 1)).astype(np.uint8)
    near = lambda a0: np.abs(np.angle(np.exp(1j * (ang - a0)))) < 0.45  # noqa: E731
    col[near(0.0) & (np.abs(yv) < 0.15)] = RED_FRONT
    col[near(np.pi / 2) & (np.abs(yv) < 0.15)] = GREEN_SIDE
    mesh.visual.vertex_colors = col
    return mesh


def sheet(n: int = 12, facing: float = 1.0):
    """Flat square sheet in the XY plane; its winding faces +Z (facing=1) or -Z (-1)."""
    import trimesh

    g = np.linspace(-0.5, 0.5, n)
    x, y = np.meshgrid(g, g)
    v = np.stack([x.ravel(), y.ravel(), 0.05 * np.sin(3 * x.ravel())], -1)
    j, i = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = j * n + i
    f = np.concatenate([np.stack([a, a + 1, a + n], -1).reshape(-1, 3),
                        np.stack([a + 1, a + n + 1, a + n], -1).reshape(-1, 3)])
    if facing < 0:
        f = f[:, ::-1]
    uv = np.stack([(x.ravel() + 0.5), (y.ravel() + 0.5)], -1)
    return trimesh.Trimesh(v, f, process=False), uv


def cfg_for(**kw) -> RenderConfig:
    base = dict(size=SIZE, yaw_step=0.0, yaws=[0.0, 90.0], test_yaws=[0.0, 40.0, 320.0],
                backend="osmesa", shards=[0], workers=1)
    base.update(kw)
    return RenderConfig(**base)


def rasterise(calib: np.ndarray, vertices: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Reference silhouette: union of projected triangles, pixel centres inside (skimage)."""
    from skimage.draw import polygon

    uv = ndc_to_pixel(project(calib, vertices), size, size)
    out = np.zeros((size, size), dtype=bool)
    for tri in faces:
        rr, cc = polygon(uv[tri, 1], uv[tri, 0], shape=out.shape)
        out[rr, cc] = True
    return out


def colour_pixels(image: np.ndarray, channel: int) -> np.ndarray:
    im = image.astype(int)
    others = [c for c in range(3) if c != channel]
    return (im[..., channel] > 120) & (im[..., channel] > 2.5 * im[..., others].max(-1))


@pytest.fixture(scope="module")
def skirt_views():
    from anchorudf.render import render_views

    mesh = skirt()
    yaws = [0.0, 40.0, 90.0, 180.0, 320.0]
    return mesh, render_views(mesh, yaws, cfg_for(), seed=3, name="skirt", depth=True)


def test_view_yaws_union_sorted_dedup():
    from anchorudf.render import view_yaws

    assert view_yaws(cfg_for(yaw_step=90.0)) == [0.0, 40.0, 90.0, 180.0, 270.0, 320.0]
    assert view_yaws(cfg_for(yaws=[320.0, 10.0, 40.0], test_yaws=[40.0])) == [10.0, 40.0, 320.0]
    assert view_yaws(cfg_for(yaws=[-40.0, 360.0], test_yaws=[0.0, 320.0])) == [0.0, 320.0]
    assert len(view_yaws(cfg_for(yaw_step=0.1, test_yaws=[0.3]))) == 3600
    with pytest.raises(ValueError, match="too close"):
        view_yaws(cfg_for(yaws=[10.001, 10.002]))


@pytest.mark.parametrize("idx", [0, 1, 2, 4])  # yaws 0, 40, 90, 320
def test_mask_matches_projected_triangles(skirt_views, idx):
    mesh, views = skirt_views
    v = views[idx]
    k = view_scale(mesh.vertices, 0.88)
    np.testing.assert_allclose(v.calib, make_calib(v.yaw, k))
    ref = rasterise(v.calib, np.asarray(mesh.vertices), np.asarray(mesh.faces), SIZE)
    iou = (ref & v.mask).sum() / (ref | v.mask).sum()
    print(f"yaw {v.yaw}: IoU {iou:.4f}")
    assert iou >= 0.98, f"yaw {v.yaw}: IoU {iou:.4f}"
    # every vertex (rim vertices lie on the silhouette) is within a pixel of the mask
    from scipy.ndimage import binary_dilation

    uv = np.rint(ndc_to_pixel(project(v.calib, mesh.vertices), SIZE, SIZE)).astype(int)
    assert ((uv >= 0) & (uv < SIZE)).all()
    assert binary_dilation(v.mask, np.ones((3, 3), bool))[uv[:, 1], uv[:, 0]].all()


def test_yaw_direction_and_handedness(skirt_views):
    mesh, views = skirt_views
    by_yaw = {v.yaw: v for v in views}
    col = np.asarray(mesh.visual.vertex_colors)
    red = colour_pixels(by_yaw[0.0].image, 0)
    assert red.sum() > 50 and colour_pixels(by_yaw[180.0].image, 0).sum() == 0
    assert colour_pixels(by_yaw[90.0].image, 1).sum() > 50
    # where the markers land: the projected marker centroid (catches mirrored images)
    for yaw, channel, colour in [(0.0, 0, RED_FRONT), (40.0, 1, GREEN_SIDE), (320.0, 0, RED_FRONT)]:
        v = by_yaw[yaw]
        pts = np.asarray(mesh.vertices)[(col == colour).all(1)].mean(0, keepdims=True)
        u_ref, v_ref = ndc_to_pixel(project(v.calib, pts), SIZE, SIZE)[0]
        rows, cols = np.nonzero(colour_pixels(v.image, channel))
        assert abs(cols.mean() - u_ref) < 3 and abs(rows.mean() - v_ref) < 3, (yaw, cols.mean(), u_ref)
    assert np.nonzero(colour_pixels(by_yaw[40.0].image, 1))[1].mean() > SIZE / 2  # +X side on the right


def test_mask_exact_from_depth_and_background(skirt_views):
    from anchorudf.render.backend import depth_mask, ortho_ndc_depth, raw_depth

    mesh, views = skirt_views
    for v in views:
        assert v.mask.dtype == bool and v.image.dtype == np.uint8 and v.image.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(v.mask, np.isfinite(v.depth))
        assert (v.image[~v.mask] == 255).all()
    # depth is the true orthographic NDC z: compare at front-facing vertices
    v = views[0]
    ndc = project(v.calib, mesh.vertices)
    normals_z = (np.asarray(mesh.vertex_normals) @ v.calib[:3, :3].T)[:, 2] / view_scale(mesh.vertices, 0.88)
    pix = np.rint(ndc_to_pixel(ndc, SIZE, SIZE)).astype(int)
    front = (normals_z > 0.8) & (np.abs(np.asarray(mesh.vertices)[:, 1]) < 0.4)  # outward, off the rims
    assert front.sum() > 50
    got = v.depth[pix[front, 1], pix[front, 0]]
    np.testing.assert_allclose(got, ndc[front, 2], atol=0.03)
    # the conversion helpers invert pyrender's perspective formula exactly
    raw = np.array([[0.0, 0.25, 0.999999, 1.0]])
    n, f = 0.5, 3.5
    zn = 2 * raw - 1
    pr = np.where(raw < 1, 2 * n * f / (f + n - zn * (f - n)), 0.0)
    np.testing.assert_allclose(raw_depth(pr, n, f), raw, atol=1e-9)
    assert depth_mask(raw_depth(pr, n, f)).tolist() == [[True, True, True, False]]
    np.testing.assert_allclose(ortho_ndc_depth(raw, n, f, 2.0)[0, :3], [1.5, 0.75, -1.5], atol=1e-5)


def test_both_sides_visible_and_lit():
    from anchorudf.render import render_views

    for facing in (1.0, -1.0):
        mesh, _ = sheet(facing=facing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (v,) = render_views(mesh, [0.0], cfg_for(), seed=0, name="sheet")
        assert v.mask.mean() > 0.5
        assert v.image[v.mask].mean() > 60, f"facing {facing}: unlit"


def test_texture_and_missing_texture_fallback(tmp_path):
    import trimesh
    from PIL import Image

    from anchorudf.data.meshio import load_garment, save_garment
    from anchorudf.render import render_views

    mesh, uv = sheet()
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:, :4] = [0, 0, 255]
    tex[:, 4:] = [255, 0, 0]
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(tex))
    rel = save_garment(tmp_path, "tex", mesh)  # OBJ + MTL + PNG, as the garments stage stores it
    (v,) = render_views(load_garment(tmp_path, rel), [0.0], cfg_for(), seed=0, name="tex")
    assert colour_pixels(v.image[:, : SIZE // 2 - 8], 2).mean() > 0.5  # left: blue
    assert colour_pixels(v.image[:, SIZE // 2 + 8:], 0).mean() > 0.5  # right: red
    for png in (tmp_path / rel).parent.glob("*.png"):
        png.unlink()
    with pytest.warns(UserWarning, match="garment tex: texture image or UVs missing"):
        (v,) = render_views(load_garment(tmp_path, rel), [0.0], cfg_for(), seed=0, name="tex")
    assert v.mask.mean() > 0.5
    rgb = v.image[v.mask].astype(int)
    assert np.abs(rgb - rgb.mean(1, keepdims=True)).max() < 40  # plain greyish, no texture


def test_lights_seeded_per_view():
    from anchorudf.render import render_views

    mesh = skirt(nu=24, nv=8)
    a = render_views(mesh, [0.0, 40.0], cfg_for(), seed=5)
    b = render_views(mesh, [40.0], cfg_for(), seed=5)
    c = render_views(mesh, [40.0], cfg_for(), seed=6)
    assert a[1].light == b[0].light and np.array_equal(a[1].image, b[0].image)
    assert a[0].light != a[1].light and c[0].light != b[0].light
    json.dumps(a[0].light)


def test_bad_garments_raise_naming_them():
    import trimesh

    from anchorudf.render import RenderError, render_views

    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], process=False)
    with pytest.raises(RenderError, match="garment g7: degenerate"):
        render_views(flat, [0.0], cfg_for(), seed=0, name="g7")
    with pytest.raises(RenderError, match="garment big: larger than the view"):
        render_views(skirt(nu=16, nv=4), [0.0], cfg_for(fill=1.5), seed=0, name="big")


def test_select_backend(monkeypatch):
    from anchorudf.render import backend

    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    assert backend.select_backend("auto") == "osmesa"
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setattr(backend, "_library_loads", lambda p: p == "egl")
    monkeypatch.setattr(backend, "cuda_gpu_present", lambda: True)
    assert backend.select_backend("auto") == "egl"
    import os

    assert os.environ["PYOPENGL_PLATFORM"] == "egl"
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    monkeypatch.setattr(backend, "_library_loads", lambda p: False)
    with pytest.raises(backend.BackendError, match=r"libOSMesa\.so \(Debian package libosmesa6\)"):
        backend.select_backend("osmesa")
    with pytest.raises(backend.BackendError, match=r"libEGL\.so .*libosmesa6"):
        backend.select_backend("auto")


def test_pyrender_imported_with_pyglet_headless():
    # A headless GPU server has no X client libraries: pyglet's X11 platform (imported by
    # pyrender's viewer) failed there at import. A fresh process shows what we set.
    import subprocess
    import sys

    code = ("import os; os.environ.pop('PYGLET_HEADLESS', None); os.environ['PYOPENGL_PLATFORM'] = 'osmesa'; "
            "from anchorudf.render.backend import import_pyrender; import_pyrender('osmesa'); "
            "import pyglet; print(os.environ['PYGLET_HEADLESS'], pyglet.options['headless'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["1", "True"]


# ---------------------------------------------------------------- the shard stage


def make_garments(root: Path, degenerate: bool = False) -> Path:
    """A garments folder with three small skirts (and optionally a zero-area garment)."""
    import trimesh

    from anchorudf.data.manifest import write_manifest
    from anchorudf.data.meshio import save_garment

    meshes = {f"g{i}": skirt(nu=16 + 4 * i, nv=6, wave=0.01 * i) for i in range(3)}
    if degenerate:
        meshes["g1bad"] = trimesh.Trimesh([[0, 0, 0], [0.5, 0, 0], [1, 0, 0], [0, 0, 0]],
                                          [[0, 1, 2], [1, 2, 3]], process=False)
    rows = []
    for gid, m in meshes.items():
        rel = save_garment(root, gid, m)
        rows.append(dict(id=gid, category="skirt", split="train", group=gid, source="test", mesh=rel,
                         vertices=len(m.vertices), faces=len(m.faces), boundary_loops=2, scale=1.0,
                         offset_x=0.0, offset_y=0.0, offset_z=0.0, status="ok", notes=""))
    write_manifest(root, rows, [])
    return root


def stage_cfg(**kw) -> RenderConfig:
    return cfg_for(size=48, yaws=[0.0, 180.0], test_yaws=[40.0], **kw)


def files_of(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_shard_layout_load_views_and_determinism(tmp_path):
    from anchorudf.render import load_views, render_shard

    garments = make_garments(tmp_path / "garments")
    cfg = stage_cfg()
    s = render_shard(garments, tmp_path / "a", cfg, shard=0)
    assert (s["rendered"], s["skipped_existing"], s["failed"]) == (3, 0, [])
    gdir = tmp_path / "a" / "shard-0" / "g2"
    assert sorted(p.name for p in gdir.iterdir()) == [
        "mask_000.00.png", "mask_040.00.png", "mask_180.00.png", "view_000.00.png",
        "view_040.00.png", "view_180.00.png", "views.json"]
    meta = json.loads((gdir / "views.json").read_text())
    assert meta["garment_id"] == "g2" and meta["size"] == 48 and meta["params"]["yaws"] == [0.0, 40.0, 180.0]
    # the scale is stored at 12 significant digits (its determinant's last bit varies by CPU)
    from anchorudf.geometry.camera import calib_scale

    scale = calib_scale(np.asarray(meta["views"][0]["calib"]))
    assert meta["scale"] == float(f"{scale:.12g}") and abs(meta["scale"] - scale) < 1e-11 * scale
    # load_views: yaw order, calib as stored, from the out dir or the shard dir
    meta["views"] = meta["views"][::-1]
    (gdir / "views.json").write_text(json.dumps(meta))
    views = load_views(tmp_path / "a", "g2")
    assert [v.yaw for v in views] == [0.0, 40.0, 180.0]
    from anchorudf.data.meshio import load_garment

    mesh = load_garment(garments, "meshes/g2.ply")
    np.testing.assert_allclose(views[1].calib, make_calib(40.0, view_scale(mesh.vertices, cfg.fill)))
    assert meta["scale"] == pytest.approx(view_scale(mesh.vertices, cfg.fill))
    assert [v.yaw for v in load_views(tmp_path / "a" / "shard-0", "g2")] == [0.0, 40.0, 180.0]
    from PIL import Image

    m = np.asarray(Image.open(views[0].mask))
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255} and (m == 255).mean() > 0.2
    img = np.asarray(Image.open(views[0].image))
    assert img.shape == (48, 48, 3) and (img[m == 0] == 255).all()
    with pytest.raises(FileNotFoundError, match="'nope' is not rendered"):
        load_views(tmp_path / "a", "nope")
    # same inputs, same seed: identical bytes, also through a 2-process spawn pool
    render_shard(garments, tmp_path / "b", stage_cfg(workers=2), shard=0)
    a = files_of(tmp_path / "a")
    a["shard-0/g2/views.json"] = files_of(tmp_path / "b")["shard-0/g2/views.json"]  # undo the shuffle
    assert files_of(tmp_path / "b") == a


def test_resume_rerenders_only_incomplete(tmp_path):
    from anchorudf.render import render_shard

    garments = make_garments(tmp_path / "garments")
    out = tmp_path / "out"
    render_shard(garments, out, stage_cfg(), shard=0)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    (out / "shard-0" / "g1" / "views.json").unlink()
    s = render_shard(garments, out, stage_cfg(), shard=0)
    assert (s["rendered"], s["skipped_existing"]) == (1, 2)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert set(after) == set(before)
    changed = {p.parent.name for p in before if before[p] != after[p]}
    assert changed == {"g1"}
    # changed params: everything re-rendered
    s = render_shard(garments, out, stage_cfg(seed=9), shard=0)
    assert (s["rendered"], s["skipped_existing"]) == (3, 0)
    # another image format: re-rendered, old images removed, masks stay PNG
    s = render_shard(garments, out, stage_cfg(seed=9, image_format="jpg", jpeg_quality=80), shard=0)
    assert (s["rendered"], s["skipped_existing"]) == (3, 0)
    names = sorted(p.name for p in (out / "shard-0" / "g0").iterdir())
    assert names == ["mask_000.00.png", "mask_040.00.png", "mask_180.00.png", "view_000.00.jpg",
                     "view_040.00.jpg", "view_180.00.jpg", "views.json"]
    assert (out / "shard-0" / "g0" / "view_040.00.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_failed_garment_reported_and_skipped(tmp_path):
    from anchorudf.render import render_shard

    garments = make_garments(tmp_path / "garments", degenerate=True)
    with pytest.warns(UserWarning, match="garment g1bad failed"):
        s = render_shard(garments, tmp_path / "out", stage_cfg(), shard=0)
    assert s["rendered"] == 3 and [f["id"] for f in s["failed"]] == ["g1bad"]
    assert "degenerate" in s["failed"][0]["error"]
    failed = json.loads((tmp_path / "out" / "shard-0" / "failed.json").read_text())
    assert failed == s["failed"]
    assert not (tmp_path / "out" / "shard-0" / "g1bad" / "views.json").exists()
    for gid in ("g0", "g1", "g2"):
        assert (tmp_path / "out" / "shard-0" / gid / "views.json").is_file()


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, anchorudf.render as r; r.load_views; r.view_yaws; "
            "print([m for m in ('pyrender', 'OpenGL') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
