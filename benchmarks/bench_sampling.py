"""Exact UDF targets: our BVH + float64 refinement vs the reference code's KD-tree and trimesh.

Run: ``python benchmarks/bench_sampling.py [--points 1000000] [--kd-samples 10000000]``.

Prints queries/s of each method on the same query points (near-surface Gaussian offsets
plus uniform points, as the sample stage draws them) around a ~50k-face noisy open
cylinder in the garment frame, speed ratios, each method's max/mean distance error vs the
exact distances, and seconds per garment of the whole sample + anchors stages at defaults.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def noisy_open_cylinder(sections: int = 160, rings: int = 157, seed: int = 0):
    """(V, 3), (F, 3): a bumpy open tube of ~2 * sections * (rings - 1) faces, garment frame."""
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    ys = np.linspace(-0.5, 0.5, rings)
    a, y = np.meshgrid(ang, ys)
    r = 0.3 + 0.03 * np.sin(3 * a) * np.cos(7 * y) + 0.004 * rng.standard_normal(a.shape)
    v = np.stack([r * np.cos(a), y, r * np.sin(a)], -1).reshape(-1, 3)
    i = np.arange(rings - 1)[:, None] * sections
    s = np.arange(sections)[None]
    p0, p1 = i + s, i + (s + 1) % sections
    f = np.concatenate([np.stack([p0, p1, p0 + sections], -1).reshape(-1, 3),
                        np.stack([p1, p1 + sections, p0 + sections], -1).reshape(-1, 3)])
    v = v - (v.max(0) + v.min(0)) / 2
    return v / (v.max(0) - v.min(0)).max(), f


def make_queries(v, f, n: int, seed: int = 1) -> np.ndarray:
    """Query points distributed like the sample stage's defaults."""
    from anchorudf.config import SampleConfig
    from anchorudf.geometry.sampling import UNIFORM_HALF_EXTENT, class_counts, surface_samples

    rng = np.random.default_rng(seed)
    cfg = SampleConfig(points_per_garment=n)
    counts = class_counts(cfg)
    uni = rng.uniform(-UNIFORM_HALF_EXTENT, UNIFORM_HALF_EXTENT, (counts[0], 3))
    surf, _ = surface_samples(v, f, int(counts[1:].sum()), rng)
    sig = np.repeat(cfg.sigmas, counts[1:])[:, None]
    return np.concatenate([uni, surf + rng.standard_normal(surf.shape) * sig])


def brute_force(v, f, p):
    """Exact distances by testing every triangle (slow; a small subset only)."""
    from anchorudf.geometry.closest import point_triangle_closest

    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return np.array([np.sqrt(((pt - point_triangle_closest(np.broadcast_to(pt, a.shape), a, b, c)) ** 2)
                             .sum(1)).min() for pt in p])


def stage_seconds() -> tuple[float, float]:
    """Seconds per garment of build_sample_shard and build_anchors at default params."""
    import trimesh

    from anchorudf.config import AnchorsConfig, EvaluateConfig, SampleConfig
    from anchorudf.data.manifest import MANIFEST_COLUMNS, write_manifest
    from anchorudf.data.meshio import save_garment
    from anchorudf.data.sample_stage import build_anchors, build_sample_shard

    v, f = noisy_open_cylinder()
    with tempfile.TemporaryDirectory() as tmp:
        g, cache = Path(tmp) / "garments", Path(tmp) / "cache"
        rel = save_garment(g, "bench", trimesh.Trimesh(v, f, process=False))
        write_manifest(g, [{c: "" for c in MANIFEST_COLUMNS} | {"id": "bench", "mesh": rel}], [])
        t0 = time.perf_counter()
        build_sample_shard(g, cache, SampleConfig(shards=[0]), 0)
        t1 = time.perf_counter()
        build_anchors(g, cache, AnchorsConfig(), EvaluateConfig().gt_points)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def bench_ours(v, f, p, check: int) -> tuple[np.ndarray, float]:
    """Exact distances and queries/s of our path; prints the breakdown and the exactness."""
    import open3d as o3d  # import time (~1 s) is not query time

    from anchorudf.config import SampleConfig
    from anchorudf.geometry.closest import MeshQuery, closest_points_full
    from anchorudf.geometry.sampling import class_counts

    closest_points_full(v, f, p[:1000])   # warm up
    t0 = time.perf_counter()
    exact, _, _, _ = closest_points_full(v, f, p)
    t_ours = time.perf_counter() - t0
    mq = MeshQuery(v, f)
    t0 = time.perf_counter()
    raw = mq._scene.compute_closest_points(o3d.core.Tensor(p.astype(np.float32)))["points"].numpy()
    t_o3d = time.perf_counter() - t0
    n_uni = int(class_counts(SampleConfig(points_per_garment=len(p)))[0])   # uniform class comes first
    rates = []
    for part in (p[:n_uni], p[n_uni:]):
        t0 = time.perf_counter()
        mq.query(part, full=True)
        rates.append(len(part) / (time.perf_counter() - t0))
    print(f"ours (open3d BVH + float64 refine + directions, BVH build included): {t_ours:.2f} s, "
          f"{len(p) / t_ours:,.0f} queries/s (open3d search alone {len(p) / t_o3d:,.0f} q/s; "
          f"uniform points {rates[0]:,.0f} q/s, near-surface {rates[1]:,.0f} q/s)")
    raw_d = np.linalg.norm(p - raw, axis=1)
    print(f"  open3d float32 output vs refined: max |d| diff {np.abs(raw_d - exact).max():.2e}")
    sub = np.random.default_rng(2).choice(len(p), size=min(check, len(p)), replace=False)
    bf = brute_force(v, f, p[sub])
    print(f"  vs brute force over all triangles ({len(sub)} points): max error "
          f"{np.abs(exact[sub] - bf).max():.2e}, mean {np.abs(exact[sub] - bf).mean():.2e}")
    return exact, len(p) / t_ours


def bench_kdtree(v, f, p, exact, samples: int, queries: int, n_uniform: int) -> tuple[float, float]:
    """The reference code's way: nearest of ``samples`` surface samples (q/s, q/s incl. build)."""
    from scipy.spatial import cKDTree

    from anchorudf.geometry.sampling import surface_samples

    t0 = time.perf_counter()
    pts, _ = surface_samples(v, f, samples, np.random.default_rng(3))
    tree = cKDTree(pts)
    t_build = time.perf_counter() - t0
    rng = np.random.default_rng(4)
    sub = np.arange(len(p)) if queries <= 0 else rng.choice(len(p), min(queries, len(p)), replace=False)
    t0 = time.perf_counter()
    kd_d, _ = tree.query(p[sub], workers=-1)
    t_kd = (time.perf_counter() - t0) * len(p) / len(sub)   # extrapolated to all points
    near = sub[sub >= n_uniform]
    t0 = time.perf_counter()
    tree.query(p[near], workers=-1)
    near_rate = len(near) / (time.perf_counter() - t0)
    err = kd_d - exact[sub]
    print(f"KD-tree, nearest of {samples:,} samples ({len(sub):,} queries): sample+build {t_build:.2f} s, "
          f"query {len(p) / t_kd:,.0f} q/s ({len(p) / (t_kd + t_build):,.0f} q/s incl. build; near-surface "
          f"points alone {near_rate:,.0f} q/s); error max {np.abs(err).max():.2e} mean {np.abs(err).mean():.2e} "
          f"(min {err.min():.1e})")
    return len(p) / t_kd, len(p) / (t_kd + t_build)


def bench_trimesh(v, f, p, exact, n: int) -> float:
    """trimesh.proximity.closest_point on a subset (q/s)."""
    import trimesh

    sub = np.random.default_rng(5).choice(len(p), size=min(n, len(p)), replace=False)
    t0 = time.perf_counter()
    _, tm_d, _ = trimesh.proximity.closest_point(trimesh.Trimesh(v, f, process=False), p[sub])
    t_tm = time.perf_counter() - t0
    err = tm_d - exact[sub]
    print(f"trimesh.proximity.closest_point ({len(sub)} points, extrapolated): {len(sub) / t_tm:,.0f} q/s; "
          f"error max {np.abs(err).max():.2e} mean {np.abs(err).mean():.2e}, "
          f"{np.mean(err > 1e-6) * 100:.2f}% more than 1e-6 too large")
    return len(sub) / t_tm


def main() -> None:
    from anchorudf.config import SampleConfig
    from anchorudf.geometry.sampling import class_counts

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="query points")
    ap.add_argument("--kd-samples", type=int, default=10_000_000, help="surface samples of the KD-tree method")
    ap.add_argument("--kd-queries", type=int, default=0, help="random subset for the KD-tree (0 = all)")
    ap.add_argument("--trimesh-points", type=int, default=10_000, help="subset for trimesh (extrapolated)")
    ap.add_argument("--check", type=int, default=300, help="subset checked against brute force")
    ap.add_argument("--no-stages", action="store_true", help="skip the per-garment stage timing")
    args = ap.parse_args()

    v, f = noisy_open_cylinder()
    p = make_queries(v, f, args.points)
    print(f"mesh: {len(f)} faces (open tube); {len(p):,} query points; {os.cpu_count()} cores")
    exact, ours = bench_ours(v, f, p, args.check)
    n_uniform = int(class_counts(SampleConfig(points_per_garment=len(p)))[0])   # first in p
    kd, kd_build = bench_kdtree(v, f, p, exact, args.kd_samples, args.kd_queries, n_uniform)
    tm = bench_trimesh(v, f, p, exact, args.trimesh_points)
    print(f"speed ratio ours / KD-tree: {ours / kd:.1f}x (query only), {ours / kd_build:.1f}x (incl. "
          f"sampling + build); ours / trimesh: {ours / tm:.1f}x")
    if not args.no_stages:
        ts, ta = stage_seconds()
        print(f"per garment at default params (50k faces): samples {ts:.2f} s + anchors {ta:.2f} s "
              f"= {ts + ta:.2f} s")


if __name__ == "__main__":
    main()
