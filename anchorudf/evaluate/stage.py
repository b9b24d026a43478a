"""The evaluate stage: reconstruct every test view, score it, compare with baselines.

The garments of split ``test`` (the default test set) and of split ``shifted`` (the
default set's style-shifted garments: poses, cuts and cloth outside the training ranges)
are evaluated alike and aggregated separately: the returned metrics keep the test set's
methods at the top level, the shifted set's under ``"shifted"``, and the ratio shifted /
test of each method's metrics under ``"shifted_ratio"``.

Outputs::

    out_dir/views.csv             one row per (evaluated garment, yaw, method), with its split
    out_dir/pictures/<id>.png     ground truth, reconstruction, error: input view, side, back
    out_dir/contact_sheet.png     every evaluated garment in one picture
    out_dir/3d/                   plotly.min.js and garments.js of the page's 3D view
    out_dir/index.html            the pictures with their metrics, and the 3D view
    recon_dir/<id>/yaw_<yaw>/     points.ply, anchors.ply, mesh.ply (coloured), mesh.obj,
                                  mesh.glb (coloured) (view NDC)

The aggregated metrics are returned (the caller writes metrics.json).

Before any work the output folders are checked for writability and every input is checked
(:func:`check_inputs`): the anchors cache (checksums, ``gt_points``, built from the current
manifest and meshes) and the rendered views of the garments used (image checksums, mesh
sha256, render params). What is read later (surface samples, views) is checked again as
it is read.

Metric frames: ``paper_*`` follow the paper (squared distances, the view's NDC mapped
to [0, 1] by (x + 1) / 2, x1e-3 in the column name); ``chamfer_l1``, ``p2s`` and
``fscore`` are in the normalised garment frame (largest extent 1), unsquared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.config import Params
from anchorudf.data.cache import load_samples, verify_cache
from anchorudf.data.images import image_tensors, load_rgb_mask
from anchorudf.data.manifest import mesh_sha256s, read_manifest
from anchorudf.data.meshio import load_garment, mesh_arrays
from anchorudf.evaluate import metrics as m
from anchorudf.evaluate.baselines import Retrieval
from anchorudf.evaluate.report import write_index
from anchorudf.evaluate.table import METRICS, aggregate
from anchorudf.geometry.camera import calib_scale, project, unproject
from anchorudf.geometry.topology import boundary_length, mesh_topology
from anchorudf.models.checkpoint import load_model
from anchorudf.reconstruct.image import reconstruct_image
from anchorudf.reconstruct.outputs import write_garment_outputs
from anchorudf.render import View, load_views
from anchorudf.render import layout as render_layout
from anchorudf.render.pictures import mesh_points
from anchorudf.utils.device import resolve_device_type
from anchorudf.utils.io import ensure_writable_dir, write_text

if TYPE_CHECKING:
    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.reconstruct.image import Reconstruction

log = logging.getLogger(__name__)

__all__ = ["EVAL_SPLITS", "METRICS", "GroundTruth", "aggregate", "check_inputs", "evaluate", "score",
           "summarise_splits"]

#: Manifest splits the stage evaluates: the test set, and the style-shifted set when present.
EVAL_SPLITS = ("test", "shifted")


def summarise_splits(table) -> dict:
    """Aggregated metrics of a views table with a ``split`` column: the ``test`` rows'
    methods at the top level (:func:`aggregate`), and when there are ``shifted`` rows,
    ``"shifted"``: their aggregate, and ``"shifted_ratio"``: per method present in both,
    shifted / test of each metric (``None`` where either is missing or the test value is 0;
    for fscore, side_iou and grad_cos a ratio below 1 is the worse side)."""
    summary = aggregate(table[table["split"] == "test"])
    shifted = table[table["split"] == "shifted"]
    if len(shifted):
        summary["shifted"] = aggregate(shifted)
        summary["shifted_ratio"] = {
            method: {k: (e[k] / summary[method][k] if e[k] is not None and summary[method][k] else None)
                     for k in METRICS}
            for method, e in summary["shifted"].items() if method in summary}
    return summary


@dataclass
class GroundTruth:
    """A test garment in the garment frame."""

    garment_id: str
    category: str
    vertices: np.ndarray
    faces: np.ndarray
    surface: np.ndarray   # (M, 3) evaluation surface samples
    boundary_loops: int
    near_points: np.ndarray = None     # (Q, 3) cached query points near the surface
    near_udf: np.ndarray = None        # (Q,) their exact distances (garment units)
    near_direction: np.ndarray = None  # (Q, 3) unit (p - closest) / |p - closest|


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.random.default_rng(seed).choice(len(points), n, replace=False)]


def score(pred_ndc: np.ndarray, gt: GroundTruth, calib: np.ndarray, p: Params, seed: int) -> dict:
    """Paper metrics (NDC -> [0,1], squared) and readable ones (garment frame) of a cloud."""
    e = p.evaluate
    if len(pred_ndc) == 0:
        return {k: float("nan") for k in METRICS} | {"points": 0}
    pred_ndc = _subsample(np.asarray(pred_ndc, np.float64), e.metric_points, seed)
    gt_pts = _subsample(gt.surface.astype(np.float64), e.metric_points, seed + 1)
    gt_ndc = project(calib, gt_pts)
    pred_g = unproject(calib, pred_ndc)
    # One KD-tree query each way, in NDC: the paper's [0, 1] frame and the garment frame are
    # similarity transforms of it (NDC / 2, NDC / calib_scale), with the same neighbours.
    d_pg, d_gp = m.nn_dist(pred_ndc, gt_ndc), m.nn_dist(gt_ndc, pred_ndc)
    paper = m.distance_metrics(0.5 * d_pg, 0.5 * d_gp, e.fscore_threshold)
    scale = calib_scale(calib)
    readable = m.distance_metrics(d_pg / scale, d_gp / scale, e.fscore_threshold)
    return {
        "side_iou": m.side_silhouette_iou(pred_ndc, gt_ndc),
        "grad_cos": float("nan"),
        "paper_chamfer_1e3": 1e3 * paper["paper_chamfer"],
        "paper_p2s_1e3": 1e3 * paper["paper_p2s"],
        "chamfer_l1": readable["chamfer_l1"],
        "p2s": m.p2s_exact(pred_g, gt.vertices, gt.faces),
        "fscore": readable["fscore"],
        "points": int(len(pred_ndc)),
    }


#: NDC distance under which gradient alignment is measured (grad_cos), and how many points.
NEAR_NDC = 0.02
NEAR_POINTS = 4000


def gradient_cosine(model: AnchorUDF, image, gt: GroundTruth, calib: np.ndarray, device: str,
                    seed: int) -> float:
    """Mean cosine between the field's gradient and the true direction to the surface.

    Over up to ``NEAR_POINTS`` cached query points of the test garment whose exact
    distance, in the view's NDC units, is below ``NEAR_NDC``; the direction is mapped to
    NDC by the calib's linear part (a scaled rotation with the y flip). 1 is perfect
    alignment (projection along -grad lands on the surface); 0 is none.
    """
    import torch

    from anchorudf.reconstruct.dense import udf_and_grad

    if gt.near_points is None or not len(gt.near_points):
        return float("nan")
    keep = np.flatnonzero(gt.near_udf * calib_scale(calib) < NEAR_NDC)
    if len(keep) == 0:
        return float("nan")
    keep = _subsample(keep, NEAR_POINTS, seed)
    lin = np.asarray(calib, np.float64)[:3, :3]
    pts = torch.as_tensor(project(calib, gt.near_points[keep].astype(np.float64)), dtype=torch.float32,
                          device=device)
    direction = gt.near_direction[keep].astype(np.float64) @ lin.T
    direction /= np.linalg.norm(direction, axis=1, keepdims=True).clip(1e-12)
    with torch.no_grad():
        enc = model.encode(image[None].to(device))
    _, grad = udf_and_grad(lambda x: model.query(enc, x[None])[0], pts, batch_points=len(pts))
    g = grad.double().cpu().numpy()
    cos = (g * direction).sum(1) / np.linalg.norm(g, axis=1).clip(1e-12)
    return float(cos.mean())


def evaluate(p: Params, garments_dir: Path, render_dir: Path, cache_dir: Path, model_dir: Path,
             out_dir: Path, recon_dir: Path) -> dict:
    """Reconstruct and score all test views; returns the aggregated metrics (JSON-able).

    Garments are evaluated in ``evaluate.workers`` processes on the CPU (one on an
    accelerator), each running torch on one thread: the same bytes for any worker count.
    """
    import pandas as pd

    ensure_writable_dir(out_dir)
    ensure_writable_dir(recon_dir)
    df = read_manifest(garments_dir)
    if not (df["split"] == "test").any():
        raise ValueError(f"{garments_dir}: no test garments in the manifest")
    test = df[df["split"].isin(EVAL_SPLITS)]
    check_inputs(p, df, garments_dir, render_dir, cache_dir)
    device = resolve_device_type(p.train.device)
    yaws = list(p.render.test_yaws)
    # One task per garment (its ground truth is read once); view k keeps seed evaluate.seed + k.
    tasks = {r["id"]: (r, i * len(yaws)) for i, r in enumerate(test.to_dict("records"))}
    workers = min(p.evaluate.workers if device == "cpu" else 1, len(tasks))  # one accelerator: one process
    if workers > 1:  # a damaged or mismatched model is named here, not in a worker's start-up
        load_model(Path(model_dir), device=device)
    init = (p, str(garments_dir), str(render_dir), str(cache_dir), str(model_dir), str(recon_dir), device)
    done = _run_garments(tasks, workers, init)
    rows, pictures = [], {}
    for gid in tasks:  # manifest order, whatever order the workers finished in
        rows += done[gid][0]
        pictures[gid] = done[gid][1]
    return _write_results(pd.DataFrame(rows), pictures, Path(out_dir))


def _run_garments(tasks: dict, workers: int, init: tuple) -> dict:
    """``{garment id: _evaluate_garment(*args)}``, in this process (``workers <= 1``) or in
    ``workers`` spawned processes, by the stages' runner in its ``fail_fast`` mode: unlike
    in preprocessing a failure is not skipped, the first garment's error is raised with its
    own type (an :class:`~anchorudf.errors.IntegrityError` names the damaged file) and the
    rest cancelled. Run in this process, the worker state and torch's thread count are put
    back afterwards."""
    import torch

    from anchorudf.utils.parallel import run_per_garment

    threads = torch.get_num_threads()
    try:
        done, _ = run_per_garment(_evaluate_garment, tasks, workers, "evaluate",
                                  initializer=_init_worker, initargs=init, fail_fast=True)
    finally:
        _WORKER.clear()
        torch.set_num_threads(threads)
    return done


#: The evaluation process's state: params, paths, model, retrieval (:func:`_init_worker`).
_WORKER: dict = {}


def _init_worker(p: Params, garments_dir: str, render_dir: str, cache_dir: str, model_dir: str,
                 recon_dir: str, device: str) -> None:
    """Load the model (and the retrieval baselines' index) once per evaluation process.

    On the CPU torch runs one thread per process whatever the worker count: its reductions
    round differently with 1 and 2 threads, and the evaluation's bytes must not depend on
    the worker count or the machine's cores (``evaluate.workers`` processes use the cores).
    """
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    model, _ = load_model(Path(model_dir), device=device)
    df = read_manifest(Path(garments_dir))
    retrieval = (Retrieval(df, Path(garments_dir), Path(render_dir), Path(cache_dir), p)
                 if p.evaluate.baselines else None)
    _WORKER.update(p=p, garments=Path(garments_dir), render=Path(render_dir), cache=Path(cache_dir),
                   recon=Path(recon_dir), device=device, model=model, retrieval=retrieval)


def _evaluate_garment(row: dict, first: int) -> tuple[list[dict], tuple]:
    """views.csv rows of one garment at every test yaw (view ``k = first + j`` scored with
    seed ``evaluate.seed + k``), its reconstructions written to ``recon_dir``; returns the
    rows and the picture inputs of its first test yaw."""
    from types import SimpleNamespace

    w = _WORKER
    p, model, device = w["p"], w["model"], w["device"]
    r = SimpleNamespace(**row)
    gt = _ground_truth(r, w["garments"], w["cache"])
    rows, picture = [], None
    for j, yaw in enumerate(p.render.test_yaws):
        k = first + j
        view = _test_view(w["render"], r.id, yaw)
        rgb, mask = load_rgb_mask(Path(view.image), Path(view.mask))
        rec = _reconstruct(model, rgb, mask, p, device)
        calib = np.asarray(view.calib, np.float64)
        view_rows = _score_view(r, yaw, rec, gt, mask, calib, p, p.evaluate.seed + k, w["retrieval"])
        view_rows[0]["grad_cos"] = gradient_cosine(model, image_tensors(rgb, mask)[0], gt, calib, device,
                                                   p.evaluate.seed + k)
        rows += view_rows
        write_garment_outputs(w["recon"] / r.id / f"yaw_{yaw:06.2f}", rec)
        if picture is None:
            picture = (rgb, mask, rec, gt, calib)
    return rows, picture


def check_inputs(p: Params, df, garments_dir: Path, render_dir: Path, cache_dir: Path) -> None:
    """Raise an IntegrityError naming the file unless everything evaluate reads is intact and
    current: the anchors cache, and the views of the test garments (and of the train
    garments when the retrieval baselines run) at the test yaws."""
    verify_cache(cache_dir, gt_points=p.evaluate.gt_points, garments_dir=garments_dir, only="anchors")
    meshes = mesh_sha256s(garments_dir, df)
    wanted = render_layout.render_params(p.render)
    ids = df["id"] if p.evaluate.baselines else df.loc[df["split"].isin(EVAL_SPLITS), "id"]
    for gid in ids:
        views = render_layout.load_views(render_dir, gid, mesh_sha256=meshes[gid], params=wanted)
        for yaw in p.render.test_yaws:
            if not any(abs(v.yaw - yaw) < 1e-6 for v in views):
                raise ValueError(f"{gid}: no rendered view at test yaw {yaw} under {render_dir}")


def _ground_truth(r, garments_dir: Path, cache_dir: Path) -> GroundTruth:
    """The ground truth of manifest row ``r``: its mesh and evaluation surface samples."""
    v, f = mesh_arrays(load_garment(garments_dir, r.mesh))
    s = load_samples(cache_dir, r.id)
    near = np.flatnonzero(s["sigma_index"] > 0)  # the Gaussian-offset classes, not uniform points
    return GroundTruth(r.id, r.category, v, f, s["surface_points"], int(r.boundary_loops),
                       s["points"][near], s["udf"][near], s["direction"][near])


def _test_view(render_dir: Path, garment_id: str, yaw: float) -> View:
    """The rendered view of ``garment_id`` at test yaw ``yaw``."""
    view = next((x for x in load_views(render_dir, garment_id) if abs(x.yaw - yaw) < 1e-6), None)
    if view is None:
        raise ValueError(f"{garment_id}: no rendered view at test yaw {yaw}")
    return view


def _reconstruct(model: AnchorUDF, rgb: np.ndarray, mask: np.ndarray, p: Params, device: str) -> Reconstruction:
    """Reconstruct one masked view; torch's RNG is reseeded with evaluate.seed first. The
    mesh gets vertex colours from the view's image (:func:`anchorudf.reconstruct.colors.colorize`)."""
    import torch

    from anchorudf.reconstruct.colors import colorize

    image, _ = image_tensors(rgb, mask)
    torch.manual_seed(p.evaluate.seed)
    rec = reconstruct_image(model, image, p.evaluate, delta=p.train.delta, device=device)
    return colorize(rec, rgb, mask, backend=p.render.backend)


def _score_view(r, yaw: float, rec: Reconstruction, gt: GroundTruth, mask: np.ndarray,
                calib: np.ndarray, p: Params, seed: int, retrieval: Retrieval | None) -> list[dict]:
    """views.csv rows of one view: points, mesh (if any), predicted anchors, baselines."""
    base = {"id": r.id, "category": r.category, "yaw": float(yaw), "split": r.split}
    rows = [base | {"method": "anchorudf_points"} | score(rec.points, gt, calib, p, seed)]
    if len(rec.mesh_faces):
        mp, _ = mesh_points(rec.mesh_vertices, rec.mesh_faces, p.evaluate.metric_points, seed)
        rows.append(base | {"method": "anchorudf_mesh"} | score(mp, gt, calib, p, seed)
                    | mesh_topology_row(rec.mesh_vertices, rec.mesh_faces, gt, calib))
    rows.append(base | {"method": "predicted_anchors"} | score(rec.anchors, gt, calib, p, seed))
    if retrieval is not None:
        for name, pts in retrieval.predict(r.id, r.category, yaw, mask, gt, calib).items():
            rows.append(base | {"method": name} | score(pts, gt, calib, p, seed))
    return rows


def mesh_topology_row(vertices: np.ndarray, faces: np.ndarray, gt: GroundTruth, calib: np.ndarray) -> dict:
    """Topology columns of a mesh row: boundary loops (and the ground truth's), non-manifold
    edges and vertices, connected pieces, and the total boundary length over the ground
    truth's (both in the view's NDC; 1 is right, a shredded mesh has many times more)."""
    topo = mesh_topology(vertices, faces)
    gt_length = boundary_length(project(calib, gt.vertices), gt.faces)
    return {"boundary_loops": topo["boundary_loops"], "gt_boundary_loops": gt.boundary_loops,
            "nonmanifold_edges": topo["nonmanifold_edges"], "nonmanifold_vertices": topo["nonmanifold_vertices"],
            "pieces": topo["pieces"],
            "boundary_length_ratio": topo["boundary_length"] / gt_length if gt_length > 0 else float("nan")}


def _write_results(table, pictures: dict, out_dir: Path) -> dict:
    """views.csv, the pictures and index.html; returns the aggregated metrics
    (:func:`summarise_splits`)."""
    table = table[[c for c in table.columns if c != "split"] + ["split"]]  # split last: old columns keep their places
    write_text(out_dir / "views.csv", table.to_csv(index=False, lineterminator="\n", float_format="%.6g"))
    summary = summarise_splits(table)
    write_index(out_dir, pictures, table, summary)
    return summary
