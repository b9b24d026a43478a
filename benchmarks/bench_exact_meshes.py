"""The evaluation's mesher on exact UDFs: boundary loops of the ground truth's own field.

For every garment of the chosen splits, the exact unsigned distance of its ground-truth
mesh, mapped to the NDC of its yaw-0 view, goes through the evaluation's own path: dense
points by the NDF projection (``evaluate.seeding`` uniform, the paper's), then
:func:`anchorudf.reconstruct.meshing.extract_mesh` with ``evaluate``'s params (the
``points`` mesher at ``mesh_level`` unless overridden). A mesher that is right must give
every garment its boundary-loop count (``boundary_loops`` in the manifest): a wrong count
here is the mesher's fault, not a learned field's.

Run (after ``anchorudf preprocess --out DIR``)::

    python benchmarks/bench_exact_meshes.py --data DIR [--split test] [-S evaluate.mesh_level=1.5]

Prints one line per garment (loops vs ground truth, pieces, non-manifold edges, mesh paper
Chamfer x1e-3 against the ground truth's surface samples, seconds of meshing) and the
count of garments whose loops are right.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np


def exact_udf(vertices_ndc: np.ndarray, faces: np.ndarray):
    """The exact unsigned distance to a mesh (NDC), differentiable as the NDF needs."""
    from anchorudf.geometry.closest import MeshQuery
    from anchorudf.reconstruct.meshing import closest_point_udf

    mq = MeshQuery(vertices_ndc, faces, threads=0)
    return closest_point_udf(lambda x: mq.query(x)[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="preprocessed data folder (garments/, render/, cache/)")
    ap.add_argument("--split", default="test", help="manifest split (test, shifted, train)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many garments (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated garment ids")
    ap.add_argument("-S", dest="overrides", action="append", default=[], help="params override key=value")
    args = ap.parse_args(argv)

    import torch

    from anchorudf.config import load_params
    from anchorudf.data.cache import load_samples
    from anchorudf.data.manifest import read_manifest
    from anchorudf.data.meshio import load_garment, mesh_arrays
    from anchorudf.evaluate.metrics import ndc_to_paper, paper_chamfer
    from anchorudf.geometry.camera import project
    from anchorudf.geometry.topology import mesh_topology
    from anchorudf.reconstruct.dense import dense_point_cloud
    from anchorudf.reconstruct.meshing import extract_mesh
    from anchorudf.render import load_views
    from anchorudf.render.pictures import mesh_points

    torch.set_num_threads(1)
    p = load_params("params.yaml", args.overrides)
    cfg = dataclasses.replace(p.evaluate, seeding="uniform")
    data = Path(args.data)
    df = read_manifest(data / "garments")
    df = df[df["split"] == args.split]
    if args.only:
        df = df[df["id"].isin(args.only.split(","))]
    if args.limit:
        df = df.head(args.limit)
    right, rows = 0, 0
    print(f"mesher={cfg.mesher} level={cfg.mesh_level} resolution={cfg.mesh_resolution}")
    print(f"{'garment':<16} {'loops':>5} {'gt':>3} {'pieces':>6} {'nm-edges':>8} {'chamfer':>8} {'s':>6}")
    for r in df.itertuples():
        v, f = mesh_arrays(load_garment(data / "garments", r.mesh))
        view = next(x for x in load_views(data / "render", r.id) if abs(x.yaw) < 1e-6)
        calib = np.asarray(view.calib, np.float64)
        v_ndc = project(calib, v)
        udf = exact_udf(v_ndc, f)
        torch.manual_seed(cfg.seed)
        pts = dense_point_cloud(udf, cfg, delta=p.train.delta)
        t0 = time.perf_counter()
        mv, mf = extract_mesh(udf, pts, cfg)
        dt = time.perf_counter() - t0
        topo = mesh_topology(mv, mf)
        gt_s = project(calib, load_samples(data / "cache", r.id)["surface_points"])
        mp, _ = mesh_points(mv, mf, 20000, 0) if len(mf) else (np.zeros((0, 3)), None)
        ch = paper_chamfer(ndc_to_paper(mp), ndc_to_paper(gt_s)) * 1e3 if len(mp) else float("nan")
        ok = topo["boundary_loops"] == int(r.boundary_loops)
        right += ok
        rows += 1
        print(f"{r.id:<16} {topo['boundary_loops']:>5} {int(r.boundary_loops):>3} {topo['pieces']:>6} "
              f"{topo['nonmanifold_edges']:>8} {ch:>8.3f} {dt:>6.1f}{'' if ok else '  <-'}", flush=True)
    print(f"loops right on {right}/{rows} garments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
