"""Tests of anchorudf.data.normalize: up rotation, normalisation, conservative cleaning."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from anchorudf.data.meshio import QUANT_BITS
from anchorudf.data.normalize import clean_mesh, guess_units, normalize_mesh, up_rotation


def _patch(nx: int = 4, ny: int = 5, seed: int = 0, textured: bool = False) -> trimesh.Trimesh:
    """Open wavy grid patch, 0.6 x 1.7 (x, z) with height noise in y, as a Trimesh."""
    rng = np.random.default_rng(seed)
    xs, zs = np.meshgrid(np.linspace(0, 0.6, nx), np.linspace(0, 1.7, ny), indexing="ij")
    v = np.stack([xs.ravel(), 0.05 * rng.standard_normal(xs.size), zs.ravel()], axis=1)
    ids = np.arange(nx * ny).reshape(nx, ny)
    f = []
    for i in range(nx - 1):
        for j in range(ny - 1):
            a, b, c, d = ids[i, j], ids[i + 1, j], ids[i + 1, j + 1], ids[i, j + 1]
            f += [[a, b, c], [a, c, d]]
    mesh = trimesh.Trimesh(v + [3.0, -2.0, 10.0], np.array(f), process=False)
    if textured:
        uv = np.stack([xs.ravel() / 0.6, zs.ravel() / 1.7], axis=1)
        img = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8))
        mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=img)
    return mesh


@pytest.mark.parametrize("axis,expect", [("+Y", [0, 1, 0]), ("+Z", [0, 0, 1]), ("-Z", [0, 0, -1]),
                                         ("+X", [1, 0, 0]), ("-X", [-1, 0, 0]), ("-Y", [0, -1, 0]),
                                         ("z", [0, 0, 1])])
def test_up_rotation_maps_up_to_y(axis, expect):
    r = up_rotation(axis)
    np.testing.assert_allclose(r @ np.array(expect, float), [0, 1, 0])
    np.testing.assert_allclose(r @ r.T, np.eye(3))
    assert np.linalg.det(r) == pytest.approx(1.0)  # proper: winding unchanged


def test_up_rotation_rejects_bad_axis():
    with pytest.raises(ValueError, match="up axis"):
        up_rotation("+W")


@pytest.mark.parametrize("axis", ["+Y", "+Z", "-X"])
def test_normalize_frame_and_inverse(axis):
    src = _patch(textured=True)
    out, scale, offset = normalize_mesh(src, up_axis=axis)
    v = np.asarray(out.vertices)
    lo, hi = v.min(0), v.max(0)
    grid = 2.0**-QUANT_BITS  # vertices are rounded to the storage grid
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=grid)
    assert abs((hi - lo).max() - 1.0) <= grid
    assert np.array_equal(v, np.round(v / grid) * grid)
    r = up_rotation(axis)
    np.testing.assert_allclose((np.asarray(src.vertices) @ r.T - offset) * scale, v, atol=grid / 2)
    assert offset.shape == (3,) and offset.dtype == np.float64
    np.testing.assert_array_equal(out.faces, src.faces)
    # visual intact: same UVs and texture image
    np.testing.assert_array_equal(out.visual.uv, src.visual.uv)
    assert np.array_equal(np.asarray(out.visual.material.image), np.asarray(src.visual.material.image))
    # the source is left untouched
    assert np.asarray(src.vertices)[:, 2].min() >= 10.0


def test_normalize_z_up_becomes_tall_in_y():
    src = _patch()  # tallest along z (1.7), thinnest along y
    out, _, _ = normalize_mesh(src, up_axis="+Z")
    ext = np.ptp(np.asarray(out.vertices), axis=0)
    assert np.argmax(ext) == 1 and ext[1] == pytest.approx(1.0)
    # +Z up: a vertex higher in source z is higher in garment y
    sv, ov = np.asarray(src.vertices), np.asarray(out.vertices)
    assert np.corrcoef(sv[:, 2], ov[:, 1])[0, 1] > 0.999
    assert np.corrcoef(sv[:, 1], ov[:, 2])[0, 1] < -0.999  # source +Y (Z-up "back") -> -Z


def test_normalize_deterministic_and_units():
    src = _patch()
    a, sa, oa = normalize_mesh(src)
    b, sb, ob = normalize_mesh(src)
    assert sa == sb and np.array_equal(oa, ob) and np.array_equal(a.vertices, b.vertices)
    assert a.metadata["source_units"] == "m" and a.metadata["size_m"] == pytest.approx(1.7)
    mm = src.copy()
    mm.vertices = np.asarray(mm.vertices) * 1000
    out, scale, _ = normalize_mesh(mm)
    assert out.metadata["source_units"] == "mm" and out.metadata["size_m"] == pytest.approx(1.7)
    assert scale == pytest.approx(1 / 1700)
    assert guess_units(150.0) == ("cm", pytest.approx(1.5))
    assert guess_units(1.5, "cm") == ("cm", pytest.approx(0.015))


def test_normalize_rejects_degenerate_inputs():
    flat = trimesh.Trimesh(np.zeros((3, 3)), [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="zero extent"):
        normalize_mesh(flat)
    nan = trimesh.Trimesh([[0, 0, 0], [np.nan, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="non-finite"):
        normalize_mesh(nan)


def _corner_set(mesh) -> set:
    """Slow reference view: each face as a frozenset of (position, uv) corners."""
    v = np.asarray(mesh.vertices)
    uv = getattr(mesh.visual, "uv", None)
    out = set()
    for face in np.asarray(mesh.faces):
        corners = [tuple(v[i]) + (tuple(uv[i]) if uv is not None else ()) for i in face]
        out.add(frozenset(corners))
    return out


def _reference_clean(mesh) -> set:
    """Unique non-degenerate faces by corner set: what cleaning must keep, done naively."""
    v = np.asarray(mesh.vertices)
    keep = set()
    for face in np.asarray(mesh.faces):
        corners, p = _corner_set_one(mesh, face), v[face]
        area = 0.5 * np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0]))
        if len(corners) == 3 and area > 1e-9:
            keep.add(corners)
    return keep


def _corner_set_one(mesh, face) -> frozenset:
    v = np.asarray(mesh.vertices)
    uv = getattr(mesh.visual, "uv", None)
    return frozenset(tuple(v[i]) + (tuple(uv[i]) if uv is not None else ()) for i in face)


def test_clean_against_reference_keeps_uv_seams():
    mesh = _patch(textured=True)
    v, f, uv = np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.visual.uv)
    # a UV seam: vertex 0 duplicated with a different uv (must NOT merge), vertex 5 exactly
    # duplicated (must merge), one duplicated face (reversed winding), one degenerate face,
    # one unreferenced vertex
    v2 = np.vstack([v, v[0], v[5], [9.0, 9.0, 9.0]])
    uv2 = np.vstack([uv, [0.9, 0.9], uv[5], [0.0, 0.0]])
    n = len(v)
    f2 = f.copy()
    f2[0] = [n, f[0][1], f[0][2]]          # face 0 uses the seam copy of vertex 0
    k = int(np.where((f == 5).any(axis=1))[0][0])
    f2[k][f2[k] == 5] = n + 1             # one face uses the exact copy of vertex 5
    f2 = np.vstack([f2, f2[2][::-1], [1, 1, 2]])
    dirty = trimesh.Trimesh(v2, f2, visual=trimesh.visual.TextureVisuals(uv=uv2, image=mesh.visual.material.image),
                            process=False)
    out, notes = clean_mesh(dirty)
    assert _corner_set(out) == _reference_clean(dirty)
    assert len(out.faces) == len(f)
    text = "; ".join(notes)
    assert "removed 1 duplicate faces" in text and "removed 1 degenerate faces" in text
    assert "removed 1 unreferenced vertices" in text
    # the seam copy of vertex 0 survives with its own uv
    assert len(out.vertices) == n + 1
    assert out.visual.material.image is mesh.visual.material.image


def test_clean_pieces_and_nonmanifold_noted():
    a, b = _patch(seed=1), _patch(seed=2)
    b.vertices = np.asarray(b.vertices) + [5, 0, 0]
    two = trimesh.util.concatenate([a, b])
    out, notes = clean_mesh(two)
    assert "2 pieces" in notes and len(out.faces) == len(two.faces)
    fin = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0.5]],
                          [[0, 1, 2], [0, 1, 3], [0, 1, 4]], process=False)
    out, notes = clean_mesh(fin)
    assert "1 non-manifold edges" in notes


def test_clean_keeps_vertex_and_face_colours():
    mesh = _patch()
    colours = np.tile(np.arange(len(mesh.vertices))[:, None] % 256, (1, 4)).astype(np.uint8)
    colours[:, 3] = 255
    mesh.visual = trimesh.visual.ColorVisuals(vertex_colors=colours)
    dup = trimesh.Trimesh(np.vstack([mesh.vertices, mesh.vertices[:1]]),
                          np.vstack([mesh.faces, [[len(mesh.vertices), 1, 2]]]),
                          visual=trimesh.visual.ColorVisuals(vertex_colors=np.vstack([colours, colours[:1]])),
                          process=False)
    out, notes = clean_mesh(dup)
    assert "merged 1 duplicate vertices" in notes and "removed 1 duplicate faces" not in notes
    np.testing.assert_array_equal(out.visual.vertex_colors, colours)
    fc = _patch()
    fc.visual = trimesh.visual.ColorVisuals(face_colors=np.tile([10, 20, 30, 255], (len(fc.faces), 1)))
    fc_dup = trimesh.Trimesh(fc.vertices, np.vstack([fc.faces, fc.faces[:2]]), process=False,
                             visual=trimesh.visual.ColorVisuals(
                                 face_colors=np.vstack([fc.visual.face_colors, [[0, 0, 0, 255]] * 2])))
    out, notes = clean_mesh(fc_dup)
    assert "removed 2 duplicate faces" in notes
    np.testing.assert_array_equal(out.visual.face_colors, fc.visual.face_colors)


def test_clean_all_degenerate_gives_empty():
    mesh = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2], [0, 0, 1]], process=False)
    out, notes = clean_mesh(mesh)
    assert len(out.faces) == 0 and "removed 2 degenerate faces" in notes
