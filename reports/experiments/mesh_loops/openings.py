"""Which of the ground truth's openings does the `points` mesh of a learned field have?

For every test view: the evaluation's saved dense points (``<eval>/<id>/yaw_*/points.ply``,
view NDC) are meshed by the `points` mesher's shell cut (``evaluate``'s params, before any
hole handling), and each ground-truth boundary loop (neck, hem, cuffs, waist, leg ends;
projected by the view's calib) is matched to the mesh's loops: found when a mesh loop's
centroid lies within half the ground-truth loop's mean radius of its centroid and their
mean radii are within 2x. The mesh then goes through the evaluation's own hole handling
(``meshing.close_holes``: the field fill with its narrow loops, pin holes): a found opening
that no loop matches afterwards was closed by it.

Run (after ``dvc repro evaluate``; about 5 s per view, one thread)::

    python reports/experiments/mesh_loops/openings.py --data data --eval data/eval \
        --model data/train/model --out reports/experiments/mesh_loops/openings.csv

Prints, per category and place (top / middle / bottom of the view), how many openings
the mesh has before the fill and how many of those the fill would close.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def loop_stats(v: np.ndarray, loop: list[int]) -> tuple[np.ndarray, float]:
    ring = v[loop]
    c = ring.mean(axis=0)
    return c, float(np.linalg.norm(ring - c, axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--eval", default="data/eval", help="the evaluation's reconstructions (points.ply)")
    ap.add_argument("--model", default="data/train/model")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default="")
    ap.add_argument("-S", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)

    import pandas as pd
    import torch
    import trimesh

    from anchorudf.config import load_params
    from anchorudf.data.images import image_tensors, load_rgb_mask
    from anchorudf.data.manifest import read_manifest
    from anchorudf.data.meshio import load_garment, mesh_arrays
    from anchorudf.geometry.camera import project
    from anchorudf.geometry.topology import split_nonmanifold_vertices
    from anchorudf.models.checkpoint import load_model
    from anchorudf.reconstruct.holes import _simple_loops
    from anchorudf.reconstruct.meshing import close_holes, points_mesh
    from anchorudf.reconstruct.shell import field_floor
    from anchorudf.render import load_views

    torch.set_num_threads(1)
    p = load_params("params.yaml", args.overrides)
    cfg = p.evaluate
    model, _ = load_model(Path(args.model), device="cpu")
    model.eval()
    data = Path(args.data)
    df = read_manifest(data / "garments")
    df = df[df["split"] == args.split]
    rows = []
    for r in df.itertuples():
        gv, gf = mesh_arrays(load_garment(data / "garments", r.mesh))
        for yaw in p.render.test_yaws:
            view = next(x for x in load_views(data / "render", r.id) if abs(x.yaw - yaw) < 1e-6)
            calib = np.asarray(view.calib, np.float64)
            g = project(calib, gv)
            gt = [loop_stats(g, lp) for lp in _simple_loops(gf)]
            rgb, mask = load_rgb_mask(Path(view.image), Path(view.mask))
            with torch.no_grad():
                feats = model.encode(image_tensors(rgb, mask)[0][None])

            def udf_fn(x):
                return model.query(feats, x[None])[0]

            pts = np.asarray(trimesh.load(Path(args.eval) / r.id / f"yaw_{yaw:06.2f}" / "points.ply").vertices,
                             np.float64)
            v, f = split_nonmanifold_vertices(*points_mesh(pts, cfg))
            floor = field_floor(udf_fn, pts, cfg.batch_points, "cpu") if cfg.mesh_fill_field > 0 else 0.0
            before = [loop_stats(v, lp) for lp in _simple_loops(f)]
            vf, ff = close_holes(v, f, udf_fn, pts, cfg, floor)  # extract_mesh's own hole handling
            after = [loop_stats(vf, lp) for lp in _simple_loops(ff)]
            h = float(np.ptp(pts, axis=0).max()) / cfg.mesh_resolution
            for c, radius in gt:
                found, kept = (any(np.linalg.norm(mc - c) < 0.5 * radius and 0.5 < mr / radius < 2
                                   for mc, mr in loops) for loops in (before, after))
                rows.append({"id": r.id, "category": r.category, "yaw": yaw,
                             "place": "top" if c[1] > 0.3 else "bottom" if c[1] < -0.3 else "middle",
                             "radius_cells": radius / h, "found": found,
                             "fill_closes": found and not kept, "mesh_loops": len(before)})
            print(r.id, yaw, f"{sum(x['found'] for x in rows[-len(gt):])}/{len(gt)} openings found", flush=True)
    t = pd.DataFrame(rows)
    if args.out:
        t.to_csv(args.out, index=False, float_format="%.3f")
    print(t.groupby(["category", "place"])[["found", "fill_closes"]].agg(["sum", "count"]).to_string())
    print(f"openings {len(t)}, in the mesh before the fill {int(t.found.sum())}, "
          f"of those the fill would close {int(t.fill_closes.sum())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
