"""Orientation findings of ingested garments: a wrong ``garments.up_axis`` is reported."""

import warnings

import meshes
import numpy as np
import pytest

from anchorudf.data.ingest import IngestWarning, ingest_dataset, suspect_orientations
from anchorudf.data.normalize import normalize_mesh
from anchorudf.data.orientation import ORIENTATION_PREFIX, orientation_findings, principal_axes

KW = dict(categories=None, test_fraction=0.0, seed=0, strict=False)


def _normalised(mesh, up_axis="+Y"):
    return normalize_mesh(mesh, up_axis=up_axis)[0]


def test_upright_garments_have_no_findings():
    assert orientation_findings(_normalised(meshes.open_tube(0.2, 0.7, sections=24, up="y"))) == []
    # wide and short (shorts, a T-pose top) is still upright
    wide = meshes.open_tube(0.2, 0.7, sections=24, up="y")
    wide.vertices = wide.vertices * [2.2, 0.5, 0.8]
    assert orientation_findings(_normalised(wide)) == []
    # a Z-up source read with the right up axis
    assert orientation_findings(_normalised(meshes.open_tube(0.2, 0.7, sections=24, up="z"), "+Z")) == []


def test_a_wrong_up_axis_is_found():
    lying = _normalised(meshes.open_tube(0.2, 0.7, sections=24, up="z"))  # Z-up read as Y-up
    found = orientation_findings(lying)
    assert len(found) == 1 and found[0].startswith(ORIENTATION_PREFIX) and "depth" in found[0]
    sheet = meshes.open_tube(0.3, 0.05, sections=24, up="y")  # a flat ring: no height at all
    assert "flat along the up axis" in orientation_findings(_normalised(sheet))[0]
    deep = meshes.open_tube(0.2, 0.9, sections=24, up="y")
    deep.vertices = deep.vertices * [0.5, 1.0, 1.4]  # front along X
    assert "deeper than wide" in orientation_findings(_normalised(deep))[0]


def test_principal_axes_of_a_tilted_tube():
    tube = meshes.open_tube(0.05, 1.0, sections=24, rings=8, up="y")
    c, s = np.cos(np.radians(60)), np.sin(np.radians(60))
    tube.vertices = tube.vertices @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]])  # tilted 60 degrees towards z
    val, axes = principal_axes(tube.vertices, tube.faces)
    assert val[0] > 10 * val[1] and abs(axes[0] @ [0, c, s]) == pytest.approx(1.0, abs=1e-6)
    found = orientation_findings(tube)
    assert found and all(f.startswith(ORIENTATION_PREFIX) for f in found)


def test_ingest_notes_and_warns_rotated_garments(tmp_path):
    src = tmp_path / "src" / "skirt"
    src.mkdir(parents=True)
    meshes.open_tube(0.2, 0.7, sections=16, rings=2, up="z").export(src / "lying.ply")
    meshes.open_tube(0.2, 0.7, sections=16, rings=2, up="y").export(src / "upright.ply")
    with pytest.warns(IngestWarning, match=r"1 of 2 garments look rotated.*up-axis"):
        res = ingest_dataset(tmp_path / "src", "generic", tmp_path / "out", **KW)
    notes = {r["id"]: r["notes"] for r in res.rows}
    lying, upright = (next(k for k in notes if name in k) for name in ("lying", "upright"))
    assert ORIENTATION_PREFIX in notes[lying] and ORIENTATION_PREFIX not in notes[upright]
    assert list(suspect_orientations(res.rows)) == [lying]
    # the right axis for the lying one: the other now lies (and is reported), never silently
    with pytest.warns(IngestWarning, match="1 of 2"):
        res = ingest_dataset(tmp_path / "src", "generic", tmp_path / "o2", **KW, up_axis="+Z")
    assert list(suspect_orientations(res.rows)) == [upright]
    (src / "lying.ply").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        assert suspect_orientations(ingest_dataset(tmp_path / "src", "generic", tmp_path / "o3", **KW).rows) == {}
