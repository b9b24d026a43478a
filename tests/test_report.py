"""The evaluation's pictures, contact sheet, teaser and interactive 3D page (report.py, viewer3d.py)."""

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import meshes
from anchorudf.cli import app
from anchorudf.config import RenderConfig
from anchorudf.evaluate import report
from anchorudf.evaluate.table import METRICS, aggregate
from anchorudf.geometry.camera import make_calib, project
from anchorudf.reconstruct.image import Reconstruction
from anchorudf.render.views import render_views
from chromium import Browser, chromium_path

SHEET = (4 * report.TILE, report.HEADER + 3 * (report.TILE + report.CAPTION))


def _garment(n: int, mesh: bool = True, yaw: float = 40.0):
    """A coloured tube (ground truth), its rendered view, and a noisy reconstruction of it."""
    m = meshes.open_tube(0.25 + 0.04 * n, 0.7, sections=48, rings=12, colour=True, seed=n)
    gv, gf = np.asarray(m.vertices), np.asarray(m.faces)
    view = render_views(m, [yaw], RenderConfig(size=96), seed=0)[0]
    rng = np.random.default_rng(n)
    rv = project(view.calib, gv) + rng.normal(0, 0.005, gv.shape)
    pts = project(view.calib, gv[rng.integers(0, len(gv), 4000)]).astype(np.float32)
    rec = Reconstruction(pts, pts[:16], rv if mesh else np.zeros((0, 3)), gf if mesh else np.zeros((0, 3), np.int64))
    gt = SimpleNamespace(garment_id=f"g{n}", category=["skirt", "trousers"][n % 2], vertices=gv, faces=gf)
    return (view.image, view.mask, rec, gt, view.calib)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    pictures = {f"g{n}": _garment(n, mesh=n != 2) for n in range(3)}
    rng = np.random.default_rng(0)
    rows = [{"id": gid, "category": pictures[gid][3].category, "yaw": 40.0, "split": "test", "method": method,
             "points": 4000} | {k: float(rng.random()) for k in METRICS}
            for gid in pictures for method in ("anchorudf_points", "anchorudf_mesh", "predicted_anchors")
            if not (gid == "g2" and method == "anchorudf_mesh")]
    table = pd.DataFrame(rows)
    table.to_csv(out / "views.csv", index=False)
    report.write_index(out, pictures, table, aggregate(table))
    return out, pictures, table


def _nonwhite(img: np.ndarray) -> float:
    return float((np.asarray(img)[..., :3] < 245).any(axis=-1).mean())


def _tile(path, row, col) -> np.ndarray:
    box = report.tile_box(row, col)
    return np.asarray(Image.open(path).convert("RGB").crop((box[0], box[1] + report.CAPTION, box[2], box[3])))


def test_sheets_contact_sheet_and_3d_assets(evaluated):
    from plotly.offline import get_plotlyjs

    out, pictures, _ = evaluated
    for gid in pictures:
        sheet = out / "pictures" / f"{gid}.png"
        assert Image.open(sheet).size == SHEET
        for row in range(3):
            for col in range(4):
                assert _nonwhite(_tile(sheet, row, col)) > 0.02, (gid, row, col)
    # the ground truth from the input view covers the input's silhouette
    rgb, mask, *_ = pictures["g0"]
    gt_tile = np.asarray(Image.fromarray(_tile(out / "pictures" / "g0.png", 0, 1)).resize(mask.shape[::-1]))
    drawn = (gt_tile < 245).any(axis=-1)
    assert (drawn & mask).sum() / mask.sum() > 0.9 and (drawn & ~mask).sum() / mask.sum() < 0.1
    # error tiles: viridis of small errors (dark blue-purple), not the shading colours
    err = _tile(out / "pictures" / "g0.png", 2, 1).reshape(-1, 3).astype(int)
    err = err[(err < 245).any(axis=1)]
    assert np.median(err[:, 2] - err[:, 1]) > 20
    contact = Image.open(out / "contact_sheet.png")
    assert contact.size[0] == report.CONTACT_COLUMNS * (4 * report.CONTACT_TILE + 8)
    assert (out / "3d" / "plotly.min.js").read_text() == get_plotlyjs()
    text = (out / "3d" / "garments.js").read_text()
    data = json.loads(text[text.index("=") + 1:].strip().rstrip(";"))
    assert data["order"] == ["g0", "g1", "g2"]
    traces = data["figures"]["g0"]["data"]
    assert [t["type"] for t in traces] == ["mesh3d"] * 3
    assert traces[2]["meta"] == {"geometry_of": 1} and "x" not in traces[2]   # geometry stored once
    assert len(traces[1]["vertexcolor"]) <= report.TILE * 100 and traces[2]["cmax"] == report.ERROR_MAX
    assert [t["type"] for t in data["figures"]["g2"]["data"]] == ["mesh3d", "scatter3d", "scatter3d"]
    page = (out / "index.html").read_text()
    for ref in ("contact_sheet.png", "pictures/g1.png", "3d/plotly.min.js", "3d/garments.js", 'id="viewer3d"'):
        assert ref in page
    assert "http://" not in page and "https://" not in page   # nothing from the network


def test_no_mesh_falls_back_to_point_splats(evaluated):
    out, pictures, _ = evaluated
    gp = report.prepare(*pictures["g2"])
    assert not gp.has_mesh and len(gp.points) == 4000 and gp.points_error.max() < 1e-6
    rows = report.sheet_tiles(gp)
    assert [c for _, c in rows[1]][1:] == [f"points, {name}" for _, name in report.TURNS]


def test_error_is_the_exact_distance_to_the_ground_truth_in_garment_units():
    # a flat square in the garment frame; the reconstruction is the square moved 0.02 NDC
    # towards the camera; with 2 NDC units per garment unit that is 0.01 garment units
    gv = np.array([[-0.25, -0.25, 0.0], [0.25, -0.25, 0.0], [0.25, 0.25, 0.0], [-0.25, 0.25, 0.0]])
    gf = np.array([[0, 1, 2], [0, 2, 3]])
    calib = make_calib(0.0, 2.0)
    rv = project(calib, gv) + [0.0, 0.0, 0.02]
    rec = Reconstruction(rv.astype(np.float32), rv[:1].astype(np.float32), rv, gf)
    gt = SimpleNamespace(garment_id="sq", category="skirt", vertices=gv, faces=gf)
    rgb, mask = np.full((32, 32, 3), 200, np.uint8), np.ones((32, 32), bool)
    gp = report.prepare(rgb, mask, rec, gt, calib)
    assert np.allclose(gp.mesh_error, 0.01, atol=1e-12) and np.allclose(gp.points_error, 0.01, atol=1e-7)
    assert gp.yaw == 0.0 and report.calib_yaw(make_calib(320.0, 1.3)) == pytest.approx(320.0)
    assert (gp.mesh_colors == 200).all()   # coloured here when the reconstruction is not


def test_teaser_from_the_evaluate_outputs(evaluated, tmp_path):
    out, _, table = evaluated
    assert report.teaser_ids(table, count=3) == ["g1", "g0"]   # trousers, skirt; one each (median)
    r = CliRunner().invoke(app, ["teaser", "--eval", str(out), "--out", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output
    img = Image.open(tmp_path / "t.png")
    assert img.size == (7 * report.TILE, 2 * (report.TILE + report.CAPTION))
    r = CliRunner().invoke(app, ["teaser", "--eval", str(out), "--out", str(tmp_path / "u.png"),
                                 "--id", "g2"])
    assert r.exit_code == 0 and Image.open(tmp_path / "u.png").size[1] == report.TILE + report.CAPTION
    # a sheet of another layout is refused with a clear message
    Image.new("RGB", (10, 10)).save(tmp_path / "bad.png")
    (tmp_path / "ev" / "pictures").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(tmp_path / "ev" / "pictures" / "g0.png")
    r = CliRunner().invoke(app, ["teaser", "--eval", str(tmp_path / "ev"), "--out", str(tmp_path / "v.png"),
                                 "--id", "g0"])
    assert r.exit_code == 1 and "re-run `anchorudf evaluate`" in r.output


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (Debian package "
                    "`chromium`; `bash .ci/setup --dev` installs it when run as root)")
def test_3d_page_draws_in_headless_chromium_without_console_errors(evaluated):
    out, pictures, _ = evaluated
    rect_js = ("(() => {const r = document.getElementById('viewer3d').getBoundingClientRect();"
               " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height};})()")
    with Browser() as b:
        b.open((out / "index.html").as_uri())
        assert b.wait_for("document.getElementById('viewer3d').getAttribute('data-drawn')") == "g0"
        assert b.evaluate("document.querySelectorAll('#viewer3d canvas').length") >= 1
        assert b.evaluate("document.getElementById('garment3d').options.length") == 3
        rect = b.evaluate(rect_js)
        shot = np.asarray(Image.open(io.BytesIO(b.screenshot(rect))).convert("RGB"))
        # the WebGL canvas drew the reconstruction in its image colours (the axes are hidden,
        # so whatever is not white in the middle of the plot comes from WebGL)
        h, w = shot.shape[:2]
        middle = shot[h // 5: -h // 10, w // 5: -w // 5]
        assert _nonwhite(middle) > 0.03
        rgb, mask = pictures["g0"][0], pictures["g0"][1]
        want = rgb[mask].astype(float).mean(axis=0)
        got = middle[(middle < 245).any(axis=-1)].astype(float)
        assert np.abs(np.median(got, axis=0) - want).max() < 60, (np.median(got, axis=0), want)
        # the error preset: viridis (blue above green) instead of the image colours
        b.evaluate("Plotly.restyle('viewer3d', {visible: ['legendonly', 'legendonly', true]}).then(() => 1)",
                   await_promise=True)
        err = np.asarray(Image.open(io.BytesIO(b.screenshot(rect))).convert("RGB"))[h // 5: -h // 10, w // 5: -w // 5]
        px = err[(err < 245).any(axis=-1)].astype(int)
        assert len(px) > 0.03 * err.shape[0] * err.shape[1] and np.median(px[:, 2] - px[:, 1]) > 20
        # another garment, with points only
        assert b.evaluate("show3d('g2').then(() => document.getElementById('viewer3d').getAttribute('data-drawn'))",
                          await_promise=True) == "g2"
        assert _nonwhite(np.asarray(Image.open(io.BytesIO(b.screenshot(rect))).convert("RGB"))) > 0.01
        errors = b.console_errors()
    assert errors == [], errors
