"""Evaluation outputs people look at: a picture per test garment and the index page.

The reconstructions themselves are written by :mod:`anchorudf.reconstruct.outputs`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.evaluate.table import METRICS, format_table
from anchorudf.geometry.camera import project
from anchorudf.render.pictures import mesh_points, panel, save_png, splat
from anchorudf.utils.io import write_text

if TYPE_CHECKING:
    from anchorudf.reconstruct.image import Reconstruction


def picture(rgb: np.ndarray, mask: np.ndarray, rec: Reconstruction, gt, calib: np.ndarray,
            tile: int = 192) -> np.ndarray:
    """One panel: input, then GT / points / mesh from the input view and from the side.

    ``gt`` has ``vertices`` and ``faces`` in the garment frame (an evaluate GroundTruth).
    """
    gt_p, gt_n = mesh_points(gt.vertices, gt.faces, 60_000)
    gt_ndc, gt_nn = project(calib, gt_p), gt_n @ calib[:3, :3].T
    gt_nn /= np.maximum(np.linalg.norm(gt_nn, axis=1, keepdims=True), 1e-12)
    mv, mn = mesh_points(rec.mesh_vertices, rec.mesh_faces, 60_000)
    tiles, titles = [np.where(mask[..., None], rgb, 255)], ["input"]
    for side in (False, True):
        tag = "side" if side else "front"
        tiles += [splat(gt_ndc, tile, normals=gt_nn, side=side),
                  splat(rec.points, tile, side=side),
                  splat(mv, tile, normals=mn, side=side)]
        titles += [f"ground truth ({tag})", f"points ({tag})", f"mesh ({tag})"]
    return panel(tiles, titles, tile)


def write_index(out_dir: Path, pictures: dict, table, summary: dict) -> None:
    """pictures/<id>.png for every test garment and index.html listing them with metrics."""
    out_dir = Path(out_dir)
    rows = []
    for gid in sorted(pictures):
        save_png(out_dir / "pictures" / f"{gid}.png", picture(*pictures[gid]))
        t = table[(table["id"] == gid) & (table["method"] == "anchorudf_points")]
        cells = "".join(f"<td>{t[k].mean():.4f}</td>" for k in METRICS)
        cat = html.escape(str(t["category"].iloc[0])) if len(t) else ""
        rows.append(f"<tr><td>{html.escape(gid)}</td><td>{cat}</td>{cells}</tr>"
                    f"<tr><td colspan='{len(METRICS) + 2}'><img src='pictures/{html.escape(gid)}.png'></td></tr>")
    head = "".join(f"<th>{k}</th>" for k in METRICS)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>anchorudf evaluation</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:right}} img{{max-width:100%}}</style>
</head><body><h1>anchorudf evaluation</h1>
<p>paper_* : the paper's squared metrics (x1e-3, view NDC mapped to [0,1]); chamfer_l1, p2s:
unsquared, garment frame (largest extent 1); fscore at the configured threshold.</p>
<pre>{html.escape(format_table(summary))}</pre>
<table><tr><th>garment</th><th>category</th>{head}</tr>{''.join(rows)}</table></body></html>
"""
    write_text(out_dir / "index.html", page)
