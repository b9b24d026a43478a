"""Time dense point extraction, meshing and metrics; compare the KD-tree metric with brute force.

Run: ``python benchmarks/bench_reconstruct.py`` (default ~3-4 min on 2 cores), or shrink
with e.g. ``--points 100000 --seed-points 50000 --gt-points 200000``.

1. An analytic open cylinder UDF (NDC units) wrapped in a small MLP whose output is
   multiplied by 0, so every query pays a network-like forward and backward cost.
2. If ``anchorudf.models.AnchorUDF`` imports: a randomly initialised default model fed a
   random image. Its UDF has no surface, so only the cost of one projection round of
   ``--model-seed-points`` seeds is measured and scaled to the cylinder run's rounds.
3. Metrics: paper Chamfer between ``--points`` predicted and ``--gt-points`` gt samples
   through cKDTree, against a chunked ``torch.cdist`` brute force timed on
   ``--brute-queries`` queries and extrapolated; prints the ratio.
4. Meshers (``meshudf``, ``shell``, ``points``), same run, seconds per view at
   ``--mesh-resolution`` (default 64, the evaluation's): on the cylinder MLP field, exact
   and with a floor and smooth value noise (a learned-looking field); with ``--model DIR
   --data DIR`` also on the first ``--views`` test views of a trained model (rendered
   views under DIR/render, manifest under DIR/garments). Each line: CPU seconds (all
   threads) and wall seconds of ``extract_mesh``, boundary loops (and the ground truth's),
   non-manifold edges, pieces. ``--meshers-only`` skips 1-3.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def cylinder_udf_mlp(hidden: int = 128, seed: int = 0):
    """Open cylinder (r 0.4, |y| <= 0.5, NDC) UDF plus 0 x a 3-hidden-layer MLP's output."""
    import torch

    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Softplus(),
                              torch.nn.Linear(hidden, hidden), torch.nn.Softplus(),
                              torch.nn.Linear(hidden, hidden), torch.nn.Softplus(),
                              torch.nn.Linear(hidden, 1))

    def udf(p: "torch.Tensor") -> "torch.Tensor":
        rho = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2 + 1e-12)
        d = torch.sqrt((rho - 0.4) ** 2 + torch.clamp(p[:, 1].abs() - 0.5, min=0) ** 2 + 1e-12)
        return d + 0.0 * mlp(p)[:, 0]

    return udf


def bench_cylinder(args, cfg) -> int:
    from anchorudf.geometry.topology import boundary_loops
    from anchorudf.reconstruct import dense_point_cloud, extract_mesh

    udf = cylinder_udf_mlp(args.hidden)
    calls = {"n": 0}

    def counted(p):
        calls["n"] += 1
        return udf(p)

    t = time.perf_counter()
    pts = dense_point_cloud(counted, cfg, delta=0.2)
    t_dense = time.perf_counter() - t
    rounds = int(np.ceil(calls["n"] / (np.ceil(cfg.seed_points / cfg.batch_points) * (cfg.num_steps + 1))))
    rho = np.hypot(pts[:, 0], pts[:, 2])
    err = np.hypot(rho - 0.4, np.maximum(np.abs(pts[:, 1]) - 0.5, 0)).max()
    print(f"dense: {len(pts)} points in {t_dense:.1f} s ({rounds} rounds of {cfg.seed_points} seeds), "
          f"max |true distance| {err:.1e}")
    t = time.perf_counter()
    v, f = extract_mesh(udf, pts, cfg)
    print(f"mesh ({cfg.mesher}): res {cfg.mesh_resolution}: {len(v)} vertices, {len(f)} faces, "
          f"{boundary_loops(f)} boundary loops in {time.perf_counter() - t:.1f} s")
    return rounds


def bench_model(args, cfg, rounds: int) -> None:
    try:
        from anchorudf.config import ModelConfig
        from anchorudf.models import AnchorUDF
    except ImportError as e:
        print(f"model: skipped ({e})")
        return
    import torch

    from anchorudf.reconstruct import project_points

    torch.manual_seed(0)
    model = AnchorUDF(ModelConfig(), anchor_count=300, image_size=128).eval()
    with torch.no_grad():
        enc = model.encode(torch.rand(1, 3, 128, 128))

    def udf(p):
        return model.query(enc, p[None])[0]

    seeds = torch.rand(args.model_seed_points, 3) * 2 - 1
    t = time.perf_counter()
    project_points(udf, seeds, 0.2, cfg.num_steps, cfg.batch_points)
    dt = time.perf_counter() - t
    per_round = dt * cfg.seed_points / args.model_seed_points
    print(f"model: one round of {args.model_seed_points} seeds ({cfg.num_steps} steps) {dt:.1f} s -> "
          f"{per_round:.0f} s per round of {cfg.seed_points}, ~{per_round * rounds:.0f} s for "
          f"{args.points} points ({rounds} rounds as above)")


def bench_metrics(args) -> None:
    import torch

    from anchorudf.evaluate import paper_chamfer

    rng = np.random.default_rng(0)

    def cyl(n):
        a, y = rng.uniform(0, 2 * np.pi, n), rng.uniform(-0.5, 0.5, n)
        return np.c_[0.4 * np.cos(a), y, 0.4 * np.sin(a)]

    gt, pred = cyl(args.gt_points), cyl(args.points) + rng.normal(0, 0.002, (args.points, 3))
    t = time.perf_counter()
    value = paper_chamfer(pred, gt)
    t_kd = time.perf_counter() - t
    q = min(args.brute_queries, len(pred))
    gt_t, pred_t = torch.as_tensor(gt, dtype=torch.float32), torch.as_tensor(pred[:q], dtype=torch.float32)
    t = time.perf_counter()
    best = torch.full((q,), float("inf"))
    for i in range(0, q, 256):
        for j in range(0, len(gt_t), 262144):
            d = torch.cdist(pred_t[i:i + 256], gt_t[j:j + 262144])
            best[i:i + 256] = torch.minimum(best[i:i + 256], d.min(dim=1).values)
    t_q = (time.perf_counter() - t) / q
    # Both directions cost |pred| x |gt| distance evaluations each: 2 |pred| timed queries.
    t_brute = t_q * 2 * len(pred)
    print(f"metrics: paper Chamfer {value:.3e} of {len(pred)} x {len(gt)} points: cKDTree "
          f"{t_kd:.1f} s; brute force (cdist, {q} queries timed) ~{t_brute:.0f} s; "
          f"ratio {t_brute / t_kd:.0f}x")


def _time_meshers(label: str, udf, pts: np.ndarray, cfg, gt_loops: int | str = "?") -> dict:
    """One line per mesher on the same field and points; returns {mesher: wall seconds}."""
    import dataclasses

    from anchorudf.geometry.topology import connected_pieces, mesh_topology
    from anchorudf.reconstruct import extract_mesh

    out = {}
    for mesher in ("meshudf", "shell", "points"):
        c = dataclasses.replace(cfg, mesher=mesher)
        t, tc = time.perf_counter(), time.process_time()
        v, f = extract_mesh(udf, pts, c)
        wall, cpu = time.perf_counter() - t, time.process_time() - tc
        topo = mesh_topology(v, f)
        out[mesher] = wall
        print(f"  {label:<28} {mesher:<8} {cpu:6.2f} s cpu {wall:6.2f} s wall  loops {topo['boundary_loops']:3d} "
              f"(gt {gt_loops})  non-manifold edges {topo['nonmanifold_edges']:3d}  pieces {connected_pieces(f)}")
    return out


def bench_meshers(args, cfg) -> None:
    """Old against new mesher, seconds per view, on analytic and (optionally) learned fields."""
    import dataclasses

    import torch

    from anchorudf.reconstruct import dense_point_cloud

    cfg = dataclasses.replace(cfg, mesh_resolution=args.mesh_resolution, target_points=50_000, seed_points=20_000,
                              filter_val=0.015, reseed_val=0.03)
    print(f"meshers at mesh_resolution {cfg.mesh_resolution} (evaluate.mesher meshudf = old, shell = new):")
    exact = cylinder_udf_mlp(args.hidden)
    gen = torch.Generator().manual_seed(0)
    w, ph = torch.randn(12, 3, generator=gen) / 0.15, torch.rand(12, generator=gen) * 6.283

    def noisy(p):  # a floor of 0.004 and smooth bumps up to 0.012: a learned-looking field
        return torch.sqrt(exact(p) ** 2 + 0.004 ** 2) + 0.006 * (torch.sin(p @ w.T + ph).mean(1) + 1)

    for label, udf in (("cylinder, exact UDF", exact), ("cylinder, noisy UDF", noisy)):
        _time_meshers(label, udf, dense_point_cloud(udf, cfg, delta=0.2), cfg, gt_loops=2)
    if args.model:
        _bench_model_views(args, cfg)


def _bench_model_views(args, cfg) -> None:
    import dataclasses
    import json
    from pathlib import Path

    import pandas as pd
    import torch

    from anchorudf.data.images import image_tensors, load_rgb_mask
    from anchorudf.models.checkpoint import load_model
    from anchorudf.reconstruct import dense_point_cloud

    model, _ = load_model(args.model)
    data = Path(args.data)
    test = pd.read_csv(data / "garments" / "manifest.csv").query("split == 'test'")
    walls = {"meshudf": [], "shell": [], "points": []}
    for r in test.head(args.views).itertuples():
        gdir = next(data.glob(f"render/shard-*/{r.id}"))
        view = min(json.loads((gdir / "views.json").read_text())["views"], key=lambda x: abs(x["yaw"]))
        rgb, mask = load_rgb_mask(gdir / view["image"], gdir / view["mask"])
        image, _ = image_tensors(rgb, mask)
        with torch.no_grad():
            enc = model.encode(image[None])

        def udf(p, enc=enc):
            return model.query(enc, p[None])[0]

        torch.manual_seed(cfg.seed)
        pts = dense_point_cloud(udf, dataclasses.replace(cfg, seeding="anchors"), delta=0.2,
                                anchors=enc.anchors[0].float().numpy())
        for k, t in _time_meshers(f"{r.id} yaw {view['yaw']:g}", udf, pts, cfg, int(r.boundary_loops)).items():
            walls[k].append(t)
    for k, t in walls.items():
        if t:
            print(f"  {k}: {np.mean(t):.2f} s wall per view (mean of {len(t)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=900_000, help="dense points to extract")
    ap.add_argument("--seed-points", type=int, default=200_000, help="seeds per round")
    ap.add_argument("--resolution", type=int, default=96, help="mesh grid cells per axis")
    ap.add_argument("--hidden", type=int, default=64, help="width of the cost MLP")
    ap.add_argument("--model-seed-points", type=int, default=5_000, help="seeds timed on the model")
    ap.add_argument("--gt-points", type=int, default=1_000_000, help="gt samples of the metric")
    ap.add_argument("--brute-queries", type=int, default=2048, help="queries timed by brute force")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--skip-model", action="store_true", help="do not time AnchorUDF")
    ap.add_argument("--mesh-resolution", type=int, default=64, help="grid of the mesher comparison")
    ap.add_argument("--model", default="", help="trained model folder for the mesher comparison")
    ap.add_argument("--data", default="data", help="data folder (garments/, render/) with --model")
    ap.add_argument("--views", type=int, default=4, help="test views meshed with --model")
    ap.add_argument("--meshers-only", action="store_true", help="only the mesher comparison")
    args = ap.parse_args()
    import torch

    from anchorudf.config import EvaluateConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    cfg = dataclasses.replace(EvaluateConfig(), seeding="uniform", filter_val=0.007,  # the paper's NDF
                              seed_points=args.seed_points, target_points=args.points,
                              mesh_resolution=args.resolution, batch_points=65536)
    if not args.meshers_only:
        rounds = bench_cylinder(args, cfg)
        if not args.skip_model:
            bench_model(args, cfg, rounds)
        bench_metrics(args)
    bench_meshers(args, cfg)


if __name__ == "__main__":
    main()
