"""Per-garment cost of each preprocessing stage here, extrapolated to the paper's MGN setting.

Measures, on a few garments of the embedded default set (generated if needed):
garment generation, rendering at 512x512, exact query sampling at 1M points, and k-means
anchors + ground-truth samples at the paper's sizes; then prints what 154 garments x 360
views x 1M points (MGN in the paper) cost in time and storage at those rates.

    python benchmarks/bench_pipeline_cost.py [--garments 2] [--views 12] [--points 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--garments", type=int, default=2, help="garments measured per stage")
    ap.add_argument("--views", type=int, default=12, help="views rendered per garment (512 px)")
    ap.add_argument("--points", type=int, default=1_000_000, help="query points per garment")
    ap.add_argument("--anny-cache", default=".cache/anny")
    args = ap.parse_args()

    from anchorudf import stages
    from anchorudf.config import load_params

    n = args.garments
    root = Path(tempfile.mkdtemp(prefix="anchorudf-cost-"))
    step = 360.0 / args.views
    p = load_params(None, [f"garments.count={max(n, 6)}", f"garments.anny_cache={args.anny_cache}",
                           "render.size=512", f"render.yaw_step={step}", "render.test_yaws=[0.0]",
                           "render.shards=[0]", f"sample.points_per_garment={args.points}",
                           "sample.uniform_ratio=0.0", "sample.shards=[0]", "train.sigma_mix=[0, 0.01, 0.49, 0.5]",
                           "anchors.count=600", "anchors.surface_samples=100000",
                           "evaluate.gt_points=1000000"])
    rows = []

    t = time.perf_counter()
    stages.garments(p, root / "garments")
    g_count = max(n, 6)
    rows.append(("garments (generate + normalise)", (time.perf_counter() - t) / g_count, "garment"))
    # keep the first n garments only
    from anchorudf.data.manifest import read_manifest, write_manifest
    df = read_manifest(root / "garments").head(n)
    write_manifest(root / "garments", df.to_dict("records"), [])

    t = time.perf_counter()
    stages.render(p, root / "garments", root / "render", 0)
    per_view = (time.perf_counter() - t) / (n * args.views)
    rows.append(("render, 512x512, colour + mask + PNG", per_view, "view"))
    view_bytes = folder_bytes(root / "render") / (n * args.views)

    t = time.perf_counter()
    stages.sample(p, root / "garments", root / "cache", 0)
    per_garment_sample = (time.perf_counter() - t) / n
    rows.append((f"sample, {args.points:,} exact query points", per_garment_sample, "garment"))
    point_bytes = folder_bytes(root / "cache" / "samples") / (n * args.points)

    t = time.perf_counter()
    stages.anchors(p, root / "garments", root / "cache")
    per_garment_anchor = (time.perf_counter() - t) / n
    rows.append(("anchors, k-means 600 on 100k + 1M GT samples", per_garment_anchor, "garment"))
    anchor_bytes = folder_bytes(root / "cache" / "anchors") / n

    print(f"{'stage':<48}{'seconds':>10}  per")
    for name, sec, unit in rows:
        print(f"{name:<48}{sec:>10.3f}  {unit}")
    print(f"storage: {view_bytes / 1e3:.1f} kB per 512 px view (image + mask), "
          f"{point_bytes:.1f} B per query point, {anchor_bytes / 1e6:.1f} MB anchors + GT per garment")

    garments, views, points = 154, 360, 1_000_000
    hours = {
        "render": garments * views * per_view / 3600,
        "sample": garments * per_garment_sample * points / args.points / 3600,
        "anchors": garments * per_garment_anchor / 3600,
    }
    storage = {
        "render": garments * views * view_bytes / 1e9,
        "sample": garments * points * point_bytes / 1e9,
        "anchors": garments * anchor_bytes / 1e9,
    }
    print(f"\nMGN setting ({garments} garments x {views} views at 512 px, {points:,} points each), this machine:")
    for k in hours:
        print(f"  {k:<8} {hours[k]:8.2f} h   {storage[k]:8.2f} GB")
    print(f"  total    {sum(hours.values()):8.2f} h   {sum(storage.values()):8.2f} GB  "
          "(shards split this across machines; workers across cores)")


if __name__ == "__main__":
    main()
