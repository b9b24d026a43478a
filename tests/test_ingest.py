"""Tests of user dataset ingestion: layouts, bad inputs, strict mode, splits, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image

from anchorudf.data.ingest import IngestError, IngestWarning, assign_splits, ingest_dataset
from anchorudf.data.manifest import MANIFEST_COLUMNS, read_manifest
from anchorudf.data.meshio import load_garment
from anchorudf.data.sources import discover_sources, sanitize_id

KW = dict(categories=None, test_fraction=0.5, seed=0, strict=False)


def _patch(seed: int = 0, n: int = 4, size=(0.5, 0.7)) -> trimesh.Trimesh:
    """Small open wavy grid (one boundary loop), metres, +Y up."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.linspace(0, size[0], n), np.linspace(0, size[1], n), indexing="ij")
    v = np.stack([xs.ravel(), ys.ravel(), 0.03 * rng.standard_normal(xs.size)], axis=1)
    ids = np.arange(n * n).reshape(n, n)
    f = [[ids[i, j], ids[i + 1, j], ids[i + 1, j + 1]] for i in range(n - 1) for j in range(n - 1)]
    f += [[ids[i, j], ids[i + 1, j + 1], ids[i, j + 1]] for i in range(n - 1) for j in range(n - 1)]
    return trimesh.Trimesh(v + seed, np.array(f), process=False)


def _write(mesh: trimesh.Trimesh, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


def _uv_obj(path: Path, seed: int = 0) -> trimesh.Trimesh:
    """OBJ with v/vt faces and no mtl (as MGN ships them); returns the mesh written."""
    mesh = _patch(seed)
    v = np.asarray(mesh.vertices)
    uv = (v[:, :2] - v[:, :2].min(0)) / np.ptp(v[:, :2], axis=0)
    lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v] + [f"vt {a:.6f} {b:.6f}" for a, b in uv]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in face) for face in mesh.faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return mesh


def _texture(path: Path, seed: int = 0) -> np.ndarray:
    img = (np.random.default_rng(seed).random((16, 16, 3)) * 255).astype(np.uint8)
    img[:8] = [200, 30, 30]  # large flat areas survive JPEG
    Image.fromarray(img).save(path, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generic_subfolders_and_categories_csv(tmp_path):
    src = tmp_path / "in"
    _write(_patch(1), src / "TShirt" / "shirt 01.obj")
    _write(_patch(2), src / "skirt" / "a.PLY")
    _write(_patch(3), src / "skirt" / "deep" / "b.off")
    _write(_patch(4), src / "loose.glb")
    _write(_patch(5), src / "loose2.stl")
    (src / "notes.txt").write_text("not a mesh, ignored")
    (src / "categories.csv").write_text("file,category\nloose.glb,dress\n")
    res = ingest_dataset(src, "generic", tmp_path / "out", **KW)
    assert not res.rejects
    got = {r["id"]: (r["category"], r["group"], r["source"]) for r in res.rows}
    assert got == {"TShirt__shirt_01": ("tshirt", "TShirt/shirt 01.obj", "TShirt/shirt 01.obj"),
                   "skirt__a": ("skirt", "skirt/a.PLY", "skirt/a.PLY"),
                   "skirt__deep__b": ("skirt", "skirt/deep/b.off", "skirt/deep/b.off"),
                   "loose": ("dress", "loose.glb", "loose.glb"),
                   "loose2": ("unknown", "loose2.stl", "loose2.stl")}
    df = read_manifest(tmp_path / "out")
    assert list(df.columns) == MANIFEST_COLUMNS and len(df) == 5
    assert set(df["split"]) == {"train", "test"}
    only = ingest_dataset(src, "generic", tmp_path / "out2", **{**KW, "categories": ["skirt"]})
    assert sorted(r["id"] for r in only.rows) == ["skirt__a", "skirt__deep__b"]


def test_manifest_offset_scale_reproduce_source(tmp_path):
    src = tmp_path / "in"
    mesh = _patch(7, size=(30.0, 60.0))  # centimetres, Z-up below
    mesh.vertices = np.asarray(mesh.vertices)[:, [0, 2, 1]] * [1, -1, 1]
    _write(mesh, src / "a" / "g.ply")
    res = ingest_dataset(src, "generic", tmp_path / "out", **KW, up_axis="+Z")
    (row,) = res.rows
    out = load_garment(tmp_path / "out", row["mesh"])
    rot = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    offset = np.array([row["offset_x"], row["offset_y"], row["offset_z"]])
    expect = (np.asarray(mesh.vertices) @ rot.T - offset) * row["scale"]
    np.testing.assert_allclose(np.asarray(out.vertices), expect, atol=1e-6)
    ext = np.ptp(np.asarray(out.vertices), axis=0)
    assert ext.max() == pytest.approx(1.0, abs=1e-6) and np.argmax(ext) == 1
    assert "source units cm" in row["notes"] and row["boundary_loops"] == 1


def test_mgn_layout_texture_and_subject_groups(tmp_path):
    root = tmp_path / "mgn" / "Multi-Garment_dataset"
    src_mesh = _uv_obj(root / "125611494277906" / "Pants.obj", seed=1)
    _uv_obj(root / "125611494277906" / "TShirtNoCoat.obj", seed=2)
    tex = _texture(root / "125611494277906" / "multi_tex.jpg", seed=1)
    (root / "125611494277906" / "registration.pkl").write_bytes(b"\x80\x04N.")
    _uv_obj(root / "125611499981111" / "ShortPants.obj", seed=3)
    _uv_obj(root / "125611499981111" / "LongCoat.obj", seed=4)
    _texture(root / "125611499981111" / "multi_tex.jpg", seed=2)
    res = ingest_dataset(tmp_path / "mgn", "mgn", tmp_path / "out", **KW)
    rows = {r["id"]: r for r in res.rows}
    assert {k: v["category"] for k, v in rows.items()} == {
        "125611494277906__Pants": "trousers", "125611494277906__TShirtNoCoat": "tshirt",
        "125611499981111__ShortPants": "shorts", "125611499981111__LongCoat": "longcoat"}
    by_group: dict[str, set] = {}
    for r in rows.values():
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert by_group == {"125611494277906": by_group["125611494277906"],
                        "125611499981111": by_group["125611499981111"]}
    assert all(len(s) == 1 for s in by_group.values())  # a subject never straddles
    assert set.union(*by_group.values()) == {"train", "test"}  # 2 subjects, fraction 0.5
    pants = rows["125611494277906__Pants"]
    assert pants["mesh"].endswith("mesh.obj") and "attached texture multi_tex.jpg" in pants["notes"]
    out = load_garment(tmp_path / "out", pants["mesh"])
    assert out.visual.kind == "texture" and len(out.vertices) == len(src_mesh.vertices)
    np.testing.assert_array_equal(np.asarray(out.visual.material.image.convert("RGB")), tex)
    # UVs survive: the texel each vertex maps to is unchanged
    uv = np.asarray(out.visual.uv)
    v = np.asarray(src_mesh.vertices)
    np.testing.assert_allclose(uv, (v[:, :2] - v[:, :2].min(0)) / np.ptp(v[:, :2], axis=0), atol=1e-5)


def test_df3d_poses_share_split(tmp_path):
    base = tmp_path / "df3d" / "filtered_registered_mesh"
    for name, seed in [("1-1", 1), ("1-2", 2), ("2-1", 3), ("3-1", 4), ("3-4", 5), ("4-1", 6)]:
        _write(_patch(seed), base / name / "model_cleaned.obj")
    (tmp_path / "df3d" / "categories.csv").write_text("id,category\n1,longsleeve\n3-4,skirt\n")
    for root in (tmp_path / "df3d", base):
        items = discover_sources(root, "df3d")
        assert [it.group for it in items] == ["1", "1", "2", "3", "3", "4"]
    for seed in range(6):
        res = ingest_dataset(tmp_path / "df3d", "df3d", tmp_path / f"out{seed}", **{**KW, "seed": seed})
        split = {r["id"]: r["split"] for r in res.rows}
        assert split["1-1"] == split["1-2"] and split["3-1"] == split["3-4"]
        assert sorted(split.values()).count("test") in (2, 3, 4)  # 2 of 4 instances
    cats = {r["id"]: r["category"] for r in res.rows}
    assert cats["1-2"] == "longsleeve" and cats["3-4"] == "skirt" and cats["2-1"] == "unknown"


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file of each bad kind; returns {relative file: expected reason words}."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.obj").write_bytes(b"")
    good = trimesh.exchange.ply.export_ply(_patch(9), encoding="binary")
    (folder / "truncated.ply").write_bytes(good[: len(good) // 2])
    (folder / "garbage.ply").write_bytes(rng.bytes(3000))
    (folder / "garbage.obj").write_bytes(rng.bytes(3000))
    (folder / "nan.obj").write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 inf\nf 1 2 3\nf 1 3 4\n")
    (folder / "points.ply").write_bytes(trimesh.PointCloud(rng.random((20, 3))).export(file_type="ply"))
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\nf 1 1 2\n")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / "photo.obj", format="JPEG")
    (folder / "text.obj").write_text("hello\nthis is not a mesh at all\n")
    return {"empty.obj": "empty file", "truncated.ply": "truncated", "garbage.ply": "not a PLY file",
            "garbage.obj": "binary garbage", "nan.obj": "2 of 4 vertices have NaN/Inf",
            "points.ply": "point cloud only: 20 vertices", "flat.obj": "all 3 faces are degenerate",
            "photo.obj": "JPEG image", "text.obj": "no mesh data found"}


def test_bad_inputs_rejected_one_row_each(tmp_path):
    src = tmp_path / "in"
    expected = {f"junk/{k}": v for k, v in _bad_inputs(src / "junk").items()}
    _write(_patch(1), src / "junk" / "fine.obj")
    _write(_patch(2), src / "shirt" / "ok.ply")
    with pytest.warns(IngestWarning) as record:
        res = ingest_dataset(src, "generic", tmp_path / "out", **KW)
    assert sorted(r["id"] for r in res.rows) == ["junk__fine", "shirt__ok"]
    got = {r["file"]: r["reason"] for r in res.rejects}
    assert sorted(got) == sorted(expected) and len(res.rejects) == len(expected)
    for f, words in expected.items():
        assert words in got[f], (f, got[f])
    assert len(record) == len(expected)
    rj = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert list(rj.columns) == ["file", "reason"] and sorted(rj["file"]) == sorted(expected)


def test_strict_raises_listing_rejects(tmp_path):
    src = tmp_path / "in"
    bad = _bad_inputs(src)
    _write(_patch(1), src / "ok.obj")
    with pytest.warns(IngestWarning), pytest.raises(IngestError) as info:
        ingest_dataset(src, "generic", tmp_path / "out", **{**KW, "strict": True})
    msg = str(info.value)
    assert f"{len(bad)} of {len(bad) + 1} files rejected" in msg
    assert all(name in msg for name in bad) and len(info.value.rejects) == len(bad)


def test_empty_and_all_rejected_folders_raise(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no meshes here")
    with pytest.raises(IngestError, match="no generic garment files found"):
        ingest_dataset(tmp_path / "empty", "generic", tmp_path / "out", **KW)
    with pytest.raises(IngestError, match="no mgn garment files found"):
        ingest_dataset(tmp_path / "empty", "mgn", tmp_path / "out", **KW)
    with pytest.raises(IngestError, match="does not exist"):
        ingest_dataset(tmp_path / "missing", "generic", tmp_path / "out", **KW)
    _bad_inputs(tmp_path / "allbad")
    with pytest.warns(IngestWarning), pytest.raises(IngestError, match="no valid garment"):
        ingest_dataset(tmp_path / "allbad", "generic", tmp_path / "out", **KW)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_multi_piece_and_duplicate_faces_accepted(tmp_path):
    src = tmp_path / "in"
    a, b = _patch(1), _patch(2)
    b.vertices = np.asarray(b.vertices) + [3, 0, 0]
    _write(trimesh.util.concatenate([a, b]), src / "two_pieces.ply")
    dup = _patch(3)
    _write(trimesh.Trimesh(dup.vertices, np.vstack([dup.faces, dup.faces[:3]]), process=False),
           src / "dup_faces.ply")
    res = ingest_dataset(src, "generic", tmp_path / "out", **KW)
    rows = {r["id"]: r for r in res.rows}
    assert "2 pieces" in rows["two_pieces"]["notes"] and rows["two_pieces"]["status"] == "ok"
    assert "removed 3 duplicate faces" in rows["dup_faces"]["notes"]
    assert rows["dup_faces"]["status"] == "cleaned" and rows["dup_faces"]["faces"] == len(dup.faces)


def test_rerun_identical_bytes_and_workers(tmp_path):
    src = tmp_path / "in"
    _write(_patch(1), src / "a" / "x.obj")
    _write(_patch(2), src / "b" / "y.glb")
    _uv_obj(src / "c" / "z.obj", seed=3)
    (src / "c" / "bad.obj").write_bytes(b"")
    with pytest.warns(IngestWarning):
        ingest_dataset(src, "generic", tmp_path / "out", **KW)
    first = _all_bytes(tmp_path / "out")
    with pytest.warns(IngestWarning):
        ingest_dataset(src, "generic", tmp_path / "out", **KW)
    assert _all_bytes(tmp_path / "out") == first
    with pytest.warns(IngestWarning):
        ingest_dataset(src, "generic", tmp_path / "out2", **KW, workers=2)
    assert _all_bytes(tmp_path / "out2") == first
    assert "manifest.csv" in first and "rejects.csv" in first


def test_assign_splits_and_ids():
    groups = [f"g{i}" for i in range(10)]
    s = assign_splits(groups, 0.2, seed=3)
    assert sum(v == "test" for v in s.values()) == 2 and s == assign_splits(groups[::-1], 0.2, 3)
    assert list(assign_splits(["a", "b"], 0.01, 0).values()).count("test") == 1
    assert list(assign_splits(["a", "b"], 0.9, 0).values()).count("train") == 1
    assert assign_splits(["a"], 0.5, 0) == {"a": "train"}
    assert assign_splits(groups, 0.0, 0) == {g: "train" for g in groups}
    assert sanitize_id("tshirt/shirt 01") == "tshirt__shirt_01" and sanitize_id(".x/ü") == "_x___"


def test_df3d_texture_from_mtl_kept(tmp_path):
    folder = tmp_path / "filtered_registered_mesh" / "7-1"
    folder.mkdir(parents=True)
    mesh = _patch(8)
    v = np.asarray(mesh.vertices)
    uv = (v[:, :2] - v[:, :2].min(0)) / np.ptp(v[:, :2], axis=0)
    img = Image.fromarray((np.random.default_rng(8).random((8, 8, 3)) * 255).astype(np.uint8))
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=img)
    text, extra = trimesh.exchange.obj.export_obj(mesh, include_texture=True, return_texture=True,
                                                  mtl_name="model_cleaned.mtl")
    (folder / "model_cleaned.obj").write_text(text)
    for name, data in extra.items():
        (folder / name).write_bytes(data)
    (tmp_path / "filtered_registered_mesh" / "8-1").mkdir()  # pose folder without its mesh
    with pytest.warns(IngestWarning):
        res = ingest_dataset(tmp_path / "filtered_registered_mesh", "df3d", tmp_path / "out", **KW)
    assert res.rejects == [{"file": "8-1/model_cleaned.obj",
                            "reason": "file missing (expected model_cleaned.obj)"}]
    (row,) = res.rows
    out = load_garment(tmp_path / "out", row["mesh"])
    assert out.visual.kind == "texture" and "attached" not in row["notes"]
    np.testing.assert_array_equal(np.asarray(out.visual.material.image.convert("RGB")), np.asarray(img))


def test_category_filter_leaving_nothing_raises(tmp_path):
    _write(_patch(1), tmp_path / "in" / "skirt" / "a.obj")
    with pytest.raises(IngestError, match=r"no garment of categories \['dress'\].*found categories \['skirt'\]"):
        ingest_dataset(tmp_path / "in", "generic", tmp_path / "out", **{**KW, "categories": ["dress"]})
