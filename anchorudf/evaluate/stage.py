"""The evaluate stage: reconstruct every test view, score it, compare with baselines.

Outputs::

    out_dir/views.csv             one row per (test garment, yaw, method)
    out_dir/pictures/<id>.png     input, ground truth, points and mesh, front and side
    out_dir/index.html            the pictures with their metrics
    recon_dir/<id>/yaw_<yaw>/     points.ply, anchors.ply, mesh.ply, mesh.obj (view NDC)

The aggregated metrics are returned (the caller writes metrics.json).

Metric frames: ``paper_*`` follow the paper (squared distances, the view's NDC mapped
to [0, 1] by (x + 1) / 2, x1e-3 in the column name); ``chamfer_l1``, ``p2s`` and
``fscore`` are in the normalised garment frame (largest extent 1), unsquared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anchorudf.config import Params
from anchorudf.geometry.camera import project, unproject

log = logging.getLogger(__name__)

METRICS = ["paper_chamfer_1e3", "paper_p2s_1e3", "chamfer_l1", "p2s", "fscore"]


@dataclass
class GroundTruth:
    """A test garment in the garment frame."""

    garment_id: str
    category: str
    vertices: np.ndarray
    faces: np.ndarray
    surface: np.ndarray   # (M, 3) evaluation surface samples
    boundary_loops: int


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.random.default_rng(seed).choice(len(points), n, replace=False)]


def score(pred_ndc: np.ndarray, gt: GroundTruth, calib: np.ndarray, p: Params, seed: int) -> dict:
    """Paper metrics (NDC -> [0,1], squared) and readable ones (garment frame) of a cloud."""
    from anchorudf.evaluate import metrics as m

    e = p.evaluate
    if len(pred_ndc) == 0:
        return {k: float("nan") for k in METRICS} | {"points": 0}
    pred_ndc = _subsample(np.asarray(pred_ndc, np.float64), e.metric_points, seed)
    gt_pts = _subsample(gt.surface.astype(np.float64), e.metric_points, seed + 1)
    gt_ndc = project(calib, gt_pts)
    pred_g = unproject(calib, pred_ndc)
    return {
        "paper_chamfer_1e3": 1e3 * m.paper_chamfer(m.ndc_to_paper(pred_ndc), m.ndc_to_paper(gt_ndc)),
        "paper_p2s_1e3": 1e3 * m.paper_p2s(m.ndc_to_paper(pred_ndc), m.ndc_to_paper(gt_ndc)),
        "chamfer_l1": m.chamfer_l1(pred_g, gt_pts),
        "p2s": m.p2s_exact(pred_g, gt.vertices, gt.faces),
        "fscore": m.fscore(pred_g, gt_pts, e.fscore_threshold),
        "points": int(len(pred_ndc)),
    }


def evaluate(p: Params, garments_dir: Path, render_dir: Path, cache_dir: Path, model_dir: Path,
             out_dir: Path, recon_dir: Path) -> dict:
    """Reconstruct and score all test views; returns the aggregated metrics (JSON-able)."""
    import pandas as pd
    import torch

    from anchorudf.data.cache import load_samples
    from anchorudf.data.manifest import read_manifest
    from anchorudf.data.meshio import load_garment, mesh_arrays
    from anchorudf.evaluate.baselines import Retrieval
    from anchorudf.evaluate.report import write_garment_outputs, write_index
    from anchorudf.reconstruct.image import reconstruct_image
    from anchorudf.render import load_views
    from anchorudf.train.checkpoint import load_model
    from anchorudf.train.data import image_tensors, load_rgb_mask
    from anchorudf.train.trainer import resolve_device_type

    out_dir = Path(out_dir)
    device = resolve_device_type(p.train.device)
    model, meta = load_model(model_dir, device=device)
    df = read_manifest(garments_dir)
    test = df[df["split"] == "test"]
    if test.empty:
        raise ValueError(f"{garments_dir}: no test garments in the manifest")
    retrieval = Retrieval(df, garments_dir, render_dir, cache_dir, p) if p.evaluate.baselines else None
    rows, pictures, truths = [], {}, {}
    from tqdm.auto import tqdm

    jobs = [(r, yaw) for r in test.itertuples() for yaw in p.render.test_yaws]
    for k, (r, yaw) in enumerate(tqdm(jobs, desc="evaluate", unit="view", dynamic_ncols=True)):
        if r.id not in truths:  # once per garment, not once per test yaw
            v, f = mesh_arrays(load_garment(garments_dir, r.mesh))
            truths[r.id] = GroundTruth(r.id, r.category, v, f,
                                       load_samples(cache_dir, r.id)["surface_points"],
                                       int(r.boundary_loops))
        gt = truths[r.id]
        view = next((x for x in load_views(render_dir, r.id) if abs(x.yaw - yaw) < 1e-6), None)
        if view is None:
            raise ValueError(f"{r.id}: no rendered view at test yaw {yaw}")
        rgb, mask = load_rgb_mask(Path(view.image), Path(view.mask))
        image, _ = image_tensors(rgb, mask)
        torch.manual_seed(p.evaluate.seed)
        rec = reconstruct_image(model, image, p.evaluate, delta=p.train.delta, device=device)
        calib = np.asarray(view.calib, np.float64)
        seed = p.evaluate.seed + k
        base = {"id": r.id, "category": r.category, "yaw": float(yaw)}
        rows.append(base | {"method": "anchorudf_points"} | score(rec.points, gt, calib, p, seed))
        if len(rec.mesh_faces):
            from anchorudf.evaluate.pictures import mesh_points
            from anchorudf.geometry.topology import boundary_loops

            mp, _ = mesh_points(rec.mesh_vertices, rec.mesh_faces, p.evaluate.metric_points, seed)
            rows.append(base | {"method": "anchorudf_mesh"} | score(mp, gt, calib, p, seed)
                        | {"boundary_loops": boundary_loops(rec.mesh_faces),
                           "gt_boundary_loops": gt.boundary_loops})
        rows.append(base | {"method": "predicted_anchors"} | score(rec.anchors, gt, calib, p, seed))
        if retrieval is not None:
            for name, pts in retrieval.predict(r.id, r.category, yaw, mask, gt, calib).items():
                rows.append(base | {"method": name} | score(pts, gt, calib, p, seed))
        write_garment_outputs(Path(recon_dir) / r.id / f"yaw_{yaw:06.2f}", rec)
        if r.id not in pictures:
            pictures[r.id] = (rgb, mask, rec, gt, calib)
    table = pd.DataFrame(rows)
    from anchorudf.utils.io import write_text

    write_text(out_dir / "views.csv", table.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    summary = aggregate(table)
    write_index(out_dir, pictures, table, summary)
    return summary


def aggregate(table) -> dict:
    """Mean over yaws per garment, then over garments (the paper's order); per category too."""
    out: dict = {}

    def mean(x) -> float | None:  # JSON has no NaN: a method that failed everywhere is null
        v = x.mean()  # pandas skips NaN (views where nothing was reconstructed)
        return None if np.isnan(v) else float(v)

    for method, t in table.groupby("method", sort=True):
        per_garment = t.groupby(["id", "category"])[METRICS].mean().reset_index()
        entry = {k: mean(per_garment[k]) for k in METRICS}
        entry["views"] = int(len(t))
        entry["empty_views"] = int((t["points"] == 0).sum())
        if "boundary_loops" in t and t["boundary_loops"].notna().any():
            ok = t.dropna(subset=["boundary_loops"])
            entry["boundary_loops_match"] = float((ok["boundary_loops"] == ok["gt_boundary_loops"]).mean())
        entry["per_category"] = {c: {k: mean(g[k]) for k in METRICS}
                                 for c, g in per_garment.groupby("category", sort=True)}
        out[method] = entry
    return out


def format_table(summary: dict) -> str:
    """A plain-text table of the aggregated metrics, one row per method."""
    head = f"{'method':<20}" + "".join(f"{k:>19}" for k in METRICS)
    lines = [head, "-" * len(head)]
    for method, e in summary.items():
        lines.append(f"{method:<20}" + "".join(f"{e[k]:>19.4f}" if e[k] is not None else f"{'n/a':>19}"
                                               for k in METRICS))
    return "\n".join(lines)
