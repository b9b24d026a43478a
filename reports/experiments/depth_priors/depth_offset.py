"""How much of the dense points' error is one depth offset per view, and how flat they are.

For every evaluated view (``RECON/<id>/yaw_*/points.ply``, the evaluate stage's dense
points in the view's NDC) against the garment's cached surface samples mapped by the same
view's calib: the paper Chamfer (x1e-3, NDC -> [0, 1], squared; 30k points each way, so
close to but not the evaluate stage's figure), the same after the best shift of the whole
cloud along the view axis (a grid of -0.1..0.1 in [0, 1] units, step 0.005), and the
standard deviation of depth of the prediction and of the ground truth (a flattened, slab-like
reconstruction has the smaller one). Writes ``OUT`` (csv) and prints the means per split.

    python reports/experiments/depth_priors/depth_offset.py DATA RECON OUT
    # e.g. runs/base/data runs/sil0/recon reports/experiments/depth_priors/silhouette_s0/depth_offset.csv
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh
from scipy.spatial import cKDTree

from anchorudf.data.cache import load_surface
from anchorudf.data.manifest import read_manifest
from anchorudf.geometry.camera import project
from anchorudf.render import load_views

SHIFTS = np.arange(-0.1, 0.1001, 0.005)  # along the view axis, [0, 1] units
POINTS = 30000


def paper_chamfer(pred: np.ndarray, gt: np.ndarray, tree: cKDTree) -> float:
    """0.5 (mean squared pred -> gt + mean squared gt -> pred), points in [0, 1] units."""
    return 0.5 * (float((tree.query(pred)[0] ** 2).mean()) + float((cKDTree(pred).query(gt)[0] ** 2).mean()))


def view_row(pred_ndc: np.ndarray, gt_ndc: np.ndarray) -> dict:
    pred, gt = (pred_ndc + 1) / 2, (gt_ndc + 1) / 2
    tree = cKDTree(gt)
    values = [paper_chamfer(pred + np.array([0.0, 0.0, dz]), gt, tree) for dz in SHIFTS]
    k = int(np.argmin(values))
    zero = int(np.argmin(np.abs(SHIFTS)))
    return {"chamfer": 1e3 * values[zero], "best_shift_chamfer": 1e3 * values[k], "shift": SHIFTS[k],
            "pred_zstd": pred[:, 2].std(), "gt_zstd": gt[:, 2].std()}


def main(data: Path, recon: Path, out: Path) -> pd.DataFrame:
    df = read_manifest(data / "garments")
    rows = []
    for r in df[df.split.isin(["test", "shifted"])].itertuples():
        surf = load_surface(data / "cache", r.id).astype(np.float64)
        surf = surf[np.random.default_rng(0).choice(len(surf), POINTS, replace=False)]
        views = {round(v.yaw, 2): v for v in load_views(data / "render", r.id)}
        for folder in sorted((recon / r.id).glob("yaw_*")):
            yaw = float(folder.name[4:])
            pred = np.asarray(trimesh.load(folder / "points.ply").vertices, np.float64)
            pred = pred[np.random.default_rng(1).choice(len(pred), min(POINTS, len(pred)), replace=False)]
            gt = project(np.asarray(views[round(yaw, 2)].calib), surf)
            rows.append({"split": r.split, "id": r.id, "yaw": yaw, **view_row(pred, gt)})
    t = pd.DataFrame(rows)
    t.to_csv(out, index=False, float_format="%.6g")
    return t


if __name__ == "__main__":
    table = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    means = table.groupby("split")[["chamfer", "best_shift_chamfer", "pred_zstd", "gt_zstd"]].mean()
    means["mean_abs_shift"] = table.groupby("split")["shift"].apply(lambda s: np.abs(s).mean())
    print(means.to_string(float_format=lambda v: f"{v:.4f}"))
