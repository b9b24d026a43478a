"""Evaluation outputs people look at: a sheet per evaluated garment, a contact sheet of all
of them, an interactive 3D view, the index page, and the README teaser made from the sheets.

Outputs (under the evaluate ``out_dir``)::

    pictures/<id>.png     the garment's sheet (see :func:`sheet`)
    contact_sheet.png     every evaluated garment in one picture: input, ground truth,
                          reconstruction, error (input view), one cell per garment
    3d/plotly.min.js      plotly.js, written once, so the page works offline
    3d/garments.js        the 3D figures (:mod:`anchorudf.evaluate.viewer3d`)
    index.html            metrics, the contact sheet, the 3D view and every sheet

Pictures are offscreen pyrender renders (:mod:`anchorudf.render.shaded`) of meshes in the
view's NDC; a reconstruction without a mesh (meshing off, or nothing extracted) is drawn
as point splats instead. The error of a reconstruction is each vertex's (or point's)
exact distance to the ground-truth surface (:func:`anchorudf.geometry.closest.closest_points`)
in the garment frame (largest extent 1), coloured with viridis on [0, ``ERROR_MAX``].
The reconstructions themselves are written by :mod:`anchorudf.reconstruct.outputs`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.evaluate.table import METRICS, format_table
from anchorudf.geometry.camera import project, unproject
from anchorudf.render.pictures import colorbar, colormap, save_png, splat
from anchorudf.render.shaded import GT_RGB, RECON_RGB, render_mesh, turn
from anchorudf.utils.io import write_text

if TYPE_CHECKING:
    from anchorudf.reconstruct.image import Reconstruction

#: garment units (largest extent 1) where the error colours saturate: 5% of the garment.
ERROR_MAX = 0.05
#: tile side of the sheets (pixels), caption strip above each tile, header of a sheet.
TILE, CAPTION, HEADER = 192, 18, 40
#: turns of the views in a sheet: (yaw about NDC +y in degrees, name).
TURNS = ((0.0, "input view"), (90.0, "side, 90 deg"), (180.0, "back, 180 deg"))
#: tile side and cells per row of the contact sheet.
CONTACT_TILE, CONTACT_COLUMNS = 128, 2
#: points drawn when a reconstruction has no mesh.
SPLAT_POINTS = 40_000
ERROR_LABEL = "distance to ground truth\n(garment units)"


@dataclass
class GarmentPictures:
    """What the pictures and the 3D view of one evaluated view need, in the view's NDC."""

    garment_id: str
    category: str
    split: str
    yaw: float                  # degrees, the input view's
    rgb: np.ndarray             # (H, W, 3) uint8 input image
    mask: np.ndarray            # (H, W) bool
    gt_vertices: np.ndarray     # (V, 3) NDC
    gt_faces: np.ndarray
    mesh_vertices: np.ndarray   # (V', 3) NDC, empty without a mesh
    mesh_faces: np.ndarray
    mesh_colors: np.ndarray     # (V', 3) uint8 from the input image
    mesh_error: np.ndarray      # (V',) distance to the ground truth, garment units
    points: np.ndarray          # (N, 3) NDC, at most SPLAT_POINTS of the dense cloud
    points_error: np.ndarray    # (N,) garment units

    @property
    def has_mesh(self) -> bool:
        return len(self.mesh_faces) > 0


def calib_yaw(calib: np.ndarray) -> float:
    """The yaw (degrees, in [0, 360)) of a calib made by :func:`anchorudf.geometry.camera.make_calib`."""
    r = np.asarray(calib, dtype=np.float64)[:3, :3]
    return round(math.degrees(math.atan2(-r[0, 2], r[0, 0])) % 360.0, 6) % 360.0


def prepare(rgb: np.ndarray, mask: np.ndarray, rec: Reconstruction, gt, calib: np.ndarray,
            split: str = "", backend: str = "auto") -> GarmentPictures:
    """The pictures' inputs of one view: ``gt`` (an evaluate GroundTruth: ``garment_id``,
    ``category``, ``vertices``, ``faces`` in the garment frame) and ``rec`` (view NDC)."""
    from anchorudf.geometry.closest import MeshQuery
    from anchorudf.reconstruct.colors import vertex_colors

    calib = np.asarray(calib, dtype=np.float64)
    gv, gf = np.asarray(gt.vertices, np.float64), np.asarray(gt.faces, np.int64)
    query = MeshQuery(gv, gf)  # closest_points, with the ground truth's BVH built once

    def error(ndc: np.ndarray) -> np.ndarray:
        if len(ndc) == 0:
            return np.zeros(0)
        return query.query(unproject(calib, ndc))[0]

    mv = np.asarray(rec.mesh_vertices, np.float64).reshape(-1, 3)
    mf = np.asarray(rec.mesh_faces, np.int64).reshape(-1, 3)
    colors = getattr(rec, "mesh_colors", None)
    if len(mf) and (colors is None or len(colors) != len(mv)):
        colors, _ = vertex_colors(mv, mf, rgb, mask, backend=backend)
    pts = np.asarray(rec.points, np.float64).reshape(-1, 3)
    if len(pts) > SPLAT_POINTS:
        pts = pts[np.random.default_rng(0).choice(len(pts), SPLAT_POINTS, replace=False)]
    return GarmentPictures(
        garment_id=str(gt.garment_id), category=str(getattr(gt, "category", "")), split=str(split),
        yaw=calib_yaw(calib), rgb=np.asarray(rgb, np.uint8)[..., :3], mask=np.asarray(mask, bool),
        gt_vertices=project(calib, gv), gt_faces=gf, mesh_vertices=mv, mesh_faces=mf,
        mesh_colors=(np.zeros((0, 3), np.uint8) if colors is None else np.asarray(colors, np.uint8)),
        mesh_error=error(mv) if len(mf) else np.zeros(0), points=pts, points_error=error(pts))


def _depth_splat(points: np.ndarray, yaw: float, colors: np.ndarray | None = None) -> np.ndarray:
    return splat(turn(points, yaw), TILE, colors=colors, radius=2 if len(points) < 20_000 else 1)


def sheet_tiles(gp: GarmentPictures, backend: str = "auto") -> list[list[tuple[np.ndarray, str]]]:
    """The sheet's 3 x 4 (tile, caption) grid.

    Row 0: the input image, then the ground truth from the input view, the side and the
    back; row 1: the reconstruction with its image colours (input view), then shaded
    from the three turns; row 2: the colour bar, then the error heat map from the three
    turns. Without a mesh, rows 1 and 2 are point splats (depth-shaded, error-coloured).
    """
    from anchorudf.reconstruct.colors import image_colors

    inp = np.where(gp.mask[..., None], gp.rgb, 255).astype(np.uint8)
    rows = [[(inp, "input")], [], [(colorbar(TILE, TILE, ERROR_MAX, ERROR_LABEL), "error scale")]]
    if gp.has_mesh:
        rows[1].append((render_mesh(gp.mesh_vertices, gp.mesh_faces, gp.mesh_colors, size=TILE, ambient=0.6,
                                    backend=backend), "reconstruction, image colours"))
        err_colors = colormap(gp.mesh_error, ERROR_MAX)
    else:
        rows[1].append((_depth_splat(gp.points, 0.0, image_colors(gp.points, gp.rgb, gp.mask)),
                        "points, image colours (no mesh)"))
        err_colors = colormap(gp.points_error, ERROR_MAX)
    for yaw, name in TURNS:
        rows[0].append((render_mesh(gp.gt_vertices, gp.gt_faces, size=TILE, yaw=yaw, base=GT_RGB,
                                    backend=backend), f"ground truth, {name}"))
        if gp.has_mesh:
            rows[1].append((render_mesh(gp.mesh_vertices, gp.mesh_faces, size=TILE, yaw=yaw, base=RECON_RGB,
                                        backend=backend), f"reconstruction, {name}"))
            rows[2].append((render_mesh(gp.mesh_vertices, gp.mesh_faces, err_colors, size=TILE, yaw=yaw,
                                        ambient=0.6, backend=backend), f"error, {name}"))
        else:
            rows[1].append((_depth_splat(gp.points, yaw), f"points, {name}"))
            rows[2].append((_depth_splat(gp.points, yaw, err_colors), f"error of points, {name}"))
    return rows


def _font(size: int = 12):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def tile_box(row: int, col: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a sheet's tile with its caption (for cropping)."""
    x, y = col * TILE, HEADER + row * (TILE + CAPTION)
    return x, y, x + TILE, y + CAPTION + TILE


def compose_sheet(rows: list[list[tuple[np.ndarray, str]]], header: list[str]) -> np.ndarray:
    """The (H, W, 3) uint8 sheet: header lines, then the grid of captioned tiles."""
    from PIL import Image, ImageDraw

    ncol = max(len(r) for r in rows)
    out = Image.new("RGB", (ncol * TILE, HEADER + len(rows) * (TILE + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(header[:2]):
        draw.text((4, 3 + 18 * i), line, fill=(0, 0, 0), font=_font(13 if i == 0 else 12))
    for r, row in enumerate(rows):
        for c, (img, caption) in enumerate(row):
            x, y, _, _ = tile_box(r, c)
            tile = Image.fromarray(np.asarray(img, np.uint8)).convert("RGB")
            if tile.size != (TILE, TILE):
                tile = tile.resize((TILE, TILE))
            out.paste(tile, (x, y + CAPTION))
            draw.text((x + 3, y + 3), caption, fill=(0, 0, 0), font=_font(11))
    return np.asarray(out)


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def metrics_line(table, garment_id: str, yaw: float) -> str:
    """'mesh: Chamfer-L1 .. P2S .. F-score ..; points: ...' of one view, from views.csv rows."""
    if table is None or not len(table):
        return ""
    t = table[(table["id"] == garment_id) & ((table["yaw"] - yaw).abs() < 1e-6)]
    parts = []
    for method, name in (("anchorudf_mesh", "mesh"), ("anchorudf_points", "points")):
        r = t[t["method"] == method]
        if len(r):
            r = r.iloc[0]
            parts.append(f"{name}: Chamfer-L1 {_fmt(r['chamfer_l1'])}, P2S {_fmt(r['p2s'])}, "
                         f"F-score@1% {_fmt(r['fscore'])}")
    return "; ".join(parts) + " (garment units)" if parts else ""


def sheet(gp: GarmentPictures, table=None, backend: str = "auto"):
    """(the sheet (H, W, 3) uint8, its tiles): header, then :func:`sheet_tiles`."""
    rows = sheet_tiles(gp, backend)
    split = f", split {gp.split}" if gp.split else ""
    head = [f"{gp.garment_id}  ({gp.category}{split}), input yaw {gp.yaw:g} deg",
            metrics_line(table, gp.garment_id, gp.yaw)]
    return compose_sheet(rows, head), rows


def contact_sheet(cells: list[tuple[str, list[np.ndarray]]], tile: int = CONTACT_TILE,
                  columns: int = CONTACT_COLUMNS) -> np.ndarray:
    """One picture of many garments: per cell a caption and its tiles side by side
    (input, ground truth, reconstruction, error), ``columns`` cells per row, a legend on top."""
    from PIL import Image, ImageDraw

    per = max((len(t) for _, t in cells), default=4)
    cell_w, cell_h, cap, legend_h = per * tile + 8, tile + 16, 16, 40
    nrow = max(1, math.ceil(len(cells) / columns))
    out = Image.new("RGB", (columns * cell_w, legend_h + nrow * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    draw.text((4, 3), "per garment: input | ground truth | reconstruction | error "
                      "(all from the input view)", fill=(0, 0, 0), font=_font(12))
    bar_w = min(300, columns * cell_w - 200)
    grad = colormap(np.linspace(0.0, ERROR_MAX, bar_w), ERROR_MAX)
    out.paste(Image.fromarray(np.repeat(grad[None], 10, axis=0)), (60, 22))
    draw.text((4, 21), "error 0", fill=(0, 0, 0), font=_font(11))
    draw.text((66 + bar_w, 21), f">= {ERROR_MAX:g} garment units (largest extent 1)", fill=(0, 0, 0),
              font=_font(11))
    for n, (caption, tiles) in enumerate(cells):
        x0, y0 = (n % columns) * cell_w, legend_h + (n // columns) * cell_h
        draw.text((x0 + 3, y0 + 2), caption, fill=(0, 0, 0), font=_font(11))
        for k, t in enumerate(tiles):
            im = Image.fromarray(np.asarray(t, np.uint8)).convert("RGB").resize((tile, tile), Image.LANCZOS)
            out.paste(im, (x0 + k * tile, y0 + cap))
    return np.asarray(out)


def _split_of(table, gid: str) -> str:
    if table is None or "split" not in getattr(table, "columns", ()):
        return ""
    s = table.loc[table["id"] == gid, "split"]
    return str(s.iloc[0]) if len(s) else ""


def write_index(out_dir: Path, pictures: dict, table, summary: dict, backend: str = "auto") -> None:
    """The sheets, the contact sheet, the 3D view and index.html of the evaluated garments.

    ``pictures``: garment id -> (rgb, mask, Reconstruction, GroundTruth, calib) of one view;
    ``table``: the views.csv rows; ``summary``: the aggregated metrics.
    """
    from anchorudf.evaluate.viewer3d import viewer_section, write_viewer_assets

    out_dir = Path(out_dir)
    rows, cells, prepared = [], [], []
    for gid in sorted(pictures):
        rgb, mask, rec, gt, calib = pictures[gid]
        gp = prepare(rgb, mask, rec, gt, calib, split=_split_of(table, gid), backend=backend)
        img, tiles = sheet(gp, table, backend)
        save_png(out_dir / "pictures" / f"{gid}.png", img)
        prepared.append(gp)
        p2s = _view_metric(table, gid, gp.yaw, "p2s")
        cells.append((f"{gid} ({gp.category}{', ' + gp.split if gp.split not in ('', 'test') else ''})"
                      f"  P2S {p2s}", [tiles[0][0][0], tiles[0][1][0], tiles[1][1][0], tiles[2][1][0]]))
        t = table[(table["id"] == gid) & (table["method"] == "anchorudf_points")]
        metric_cells = "".join(f"<td>{t[k].mean():.4f}</td>" for k in METRICS)
        cat = html.escape(str(t["category"].iloc[0])) if len(t) else ""
        gid_h = html.escape(gid)
        rows.append(f"<tr id='g-{gid_h}'><td>{gid_h}</td><td>{cat}</td><td>{html.escape(gp.split)}</td>"
                    f"{metric_cells}<td><a href='#viewer3d' onclick=\"show3d('{gid_h}')\">3D</a></td></tr>"
                    f"<tr><td colspan='{len(METRICS) + 4}'><img src='pictures/{gid_h}.png' "
                    f"alt='{gid_h}' loading='lazy'></td></tr>")
    save_png(out_dir / "contact_sheet.png", contact_sheet(cells))
    write_viewer_assets(out_dir, prepared, ERROR_MAX)
    head = "".join(f"<th>{k}</th>" for k in METRICS)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>anchorudf evaluation</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:right}} img{{max-width:100%}}
#viewer3d{{width:100%;max-width:960px;height:640px;border:1px solid #ccc}}</style>
</head><body><h1>anchorudf evaluation</h1>
<p>paper_* : the paper's squared metrics (x1e-3, view NDC mapped to [0,1]); chamfer_l1, p2s:
unsquared, garment frame (largest extent 1); fscore at the configured threshold.</p>
<pre>{html.escape(format_table(summary))}</pre>
<h2>All evaluated garments</h2>
<p>Input, ground truth, reconstruction and its error (distance to the ground-truth surface,
garment units, 0 to {ERROR_MAX:g} and above), all from the input view.</p>
<img src="contact_sheet.png" alt="contact sheet">
{viewer_section()}
<h2>Per garment</h2>
<p>Metrics of the dense points (anchorudf_points, mean over the test yaws); each sheet: ground
truth, reconstruction and error from the input view, the side and the back.</p>
<table><tr><th>garment</th><th>category</th><th>split</th>{head}<th></th></tr>{''.join(rows)}</table>
</body></html>
"""
    write_text(out_dir / "index.html", page)


def _view_metric(table, gid: str, yaw: float, key: str) -> str:
    if table is None or not len(table):
        return "n/a"
    t = table[(table["id"] == gid) & ((table["yaw"] - yaw).abs() < 1e-6)]
    for method in ("anchorudf_mesh", "anchorudf_points"):
        r = t[t["method"] == method]
        if len(r):
            return _fmt(float(r[key].iloc[0]))
    return "n/a"


#: sheet tiles of a teaser row: (row, col) of input, ground truth, image colours,
#: reconstruction, its side, error; and of the colour bar (added to the first row).
TEASER_TILES = ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1))
TEASER_BAR = (2, 0)
TEASER_CATEGORIES = ("tshirt", "trousers", "skirt", "longsleeve", "longcoat", "shorts")


def teaser_ids(table, count: int = 3) -> list[str]:
    """Garments for the teaser: in ``count`` categories (t-shirt, trousers, skirt first),
    the test garment with the median P2S of its category (mesh, else points): typical ones."""
    import pandas as pd

    t = table
    if "split" in t.columns:
        t = t[t["split"].fillna("test") == "test"]
    method = "anchorudf_mesh" if (t["method"] == "anchorudf_mesh").any() else "anchorudf_points"
    per = t[t["method"] == method].groupby(["id", "category"])["p2s"].mean().reset_index()
    cats = sorted(per["category"].unique(), key=lambda c: (TEASER_CATEGORIES.index(c)
                                                          if c in TEASER_CATEGORIES else 99, c))
    ids = []
    for c in cats[:count]:
        g = per[per["category"] == c].sort_values(["p2s", "id"], na_position="last")
        g = g[pd.notna(g["p2s"])] if g["p2s"].notna().any() else g
        ids.append(str(g.iloc[(len(g) - 1) // 2]["id"]))
    return ids


def make_teaser(eval_dir: Path, out: Path, ids: list[str] | None = None, count: int = 3) -> Path:
    """docs/teaser.png from an evaluation's outputs (``views.csv`` and ``pictures/``).

    One row per garment (``ids``, else :func:`teaser_ids`): input, ground truth,
    reconstruction with image colours, shaded reconstruction from the input view and the
    side, and the error heat map, cropped from its sheet; the colour bar at the end of the
    first row. Needs no model and no data: only what ``anchorudf evaluate`` wrote. Saved
    as a 256-colour PNG (it is kept in git).
    """
    import pandas as pd
    from PIL import Image, ImageDraw

    eval_dir = Path(eval_dir)
    table = pd.read_csv(eval_dir / "views.csv") if (eval_dir / "views.csv").is_file() else None
    if ids is None:
        if table is None:
            raise FileNotFoundError(f"{eval_dir / 'views.csv'}: not found (pass garment ids)")
        ids = teaser_ids(table, count)
    if not ids:
        raise ValueError(f"{eval_dir / 'views.csv'}: no garments to show")
    w, h = TILE, TILE + CAPTION
    ncol = len(TEASER_TILES) + 1
    out_img = Image.new("RGB", (ncol * w, len(ids) * h), (255, 255, 255))
    draw = ImageDraw.Draw(out_img)
    for r, gid in enumerate(ids):
        path = eval_dir / "pictures" / f"{gid}.png"
        sheet_img = Image.open(path).convert("RGB")
        need = tile_box(2, 3)
        if sheet_img.size != (need[2], need[3]):
            raise ValueError(f"{path}: a sheet of {sheet_img.size[0]}x{sheet_img.size[1]} pixels, not the "
                             f"{need[2]}x{need[3]} of this version: re-run `anchorudf evaluate`")
        for c, (tr, tc) in enumerate(TEASER_TILES):
            out_img.paste(sheet_img.crop(tile_box(tr, tc)), (c * w, r * h))
        if r == 0:
            out_img.paste(sheet_img.crop(tile_box(*TEASER_BAR)), (len(TEASER_TILES) * w, 0))
        else:  # the captions once, in the first row
            draw.rectangle([w, r * h, len(TEASER_TILES) * w, r * h + CAPTION - 1], fill=(255, 255, 255))
        cat = ""
        if table is not None and "category" in table.columns:
            c = table.loc[table["id"].astype(str) == gid, "category"]
            cat = f" ({c.iloc[0]})" if len(c) else ""
        draw.rectangle([0, r * h, w - 1, r * h + CAPTION - 1], fill=(255, 255, 255))
        draw.text((3, r * h + 3), f"input: {gid}{cat}", fill=(0, 0, 0), font=_font(11))
    from anchorudf.utils.io import atomic_path

    with atomic_path(out) as tmp:  # a 256-colour palette: a quarter of the bytes, same look
        out_img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(tmp, format="PNG", optimize=True)
    return Path(out)
