"""Views per second at 512x512: ``render_views`` side by side with a bare pyrender loop.

The bare loop is the floor of what pyrender can do: one OffscreenRenderer, the same scene
(the same two-sided mesh, camera and light), re-posed per view, colour + depth read back,
nothing else. Our path adds the per-view calib, bounds check, seeded light, mask and
background fill. A third column adds PNG encoding of image and mask (what the stage writes).

    python benchmarks/bench_render.py [--size 512] [--views 36] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


def pleated_skirt(nu: int, nv: int):
    """Open flared cylinder with pleats, 2 nu (nv - 1) faces, vertex colours, garment frame."""
    import trimesh

    th = np.linspace(0.0, 2 * np.pi, nu, endpoint=False)
    ys = np.linspace(-0.45, 0.45, nv)
    t, y = np.meshgrid(th, ys)
    rad = 0.3 * (1.0 + 0.3 * (0.5 - (y + 0.45) / 0.9)) + 0.02 * np.sin(12 * t)
    v = np.stack([rad * np.sin(t), y, rad * np.cos(t)], -1).reshape(-1, 3)
    j, i = np.meshgrid(np.arange(nv - 1), np.arange(nu), indexing="ij")
    a, b = j * nu + i, j * nu + (i + 1) % nu
    f = np.concatenate([np.stack([a, b, a + nu], -1).reshape(-1, 3),
                        np.stack([b, b + nu, a + nu], -1).reshape(-1, 3)])
    mesh = trimesh.Trimesh(v, f, process=False)
    rng = np.random.default_rng(0)
    mesh.visual.vertex_colors = np.concatenate(
        [rng.integers(80, 230, (len(v), 3)), np.full((len(v), 1), 255)], 1).astype(np.uint8)
    return mesh


class Clock:
    """Wall-clock and process CPU time (all threads: llvmpipe renders on several)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def ours(mesh, yaws, cfg) -> Clock:
    from anchorudf.render.views import render_views

    with Clock() as c:
        render_views(mesh, yaws, cfg, seed=0, name="bench")
    return c


def ours_with_png(mesh, yaws, cfg) -> Clock:
    from anchorudf.render.stage import encode_image
    from anchorudf.render.views import render_views

    with Clock() as c:
        for v in render_views(mesh, yaws, cfg, seed=0, name="bench"):
            encode_image(v.image, "png", 0)
            encode_image(v.mask.astype(np.uint8) * 255, "png", 0)
    return c


def bare(mesh, yaws, cfg) -> Clock:
    """One renderer, one scene, set pose, render colour + depth; nothing else."""
    from anchorudf.geometry.camera import make_calib, view_scale
    from anchorudf.render.backend import get_renderer, import_pyrender
    from anchorudf.render.views import GarmentScene, random_light

    pyrender = import_pyrender(cfg.backend)
    gs = GarmentScene(pyrender, mesh, list(cfg.background), "bench")
    gs.set_view(np.eye(4), random_light(np.random.default_rng(0)))
    renderer = get_renderer(cfg.size, cfg.size, cfg.backend)
    k = view_scale(mesh.vertices, cfg.fill)
    poses = [make_calib(y, k) for y in yaws]
    with Clock() as c:
        for pose in poses:
            gs.scene.set_pose(gs.mesh_node, pose)
            renderer.render(gs.scene)
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--views", type=int, default=36)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from anchorudf.config import RenderConfig
    from anchorudf.render.backend import select_backend

    cfg = RenderConfig(size=args.size, backend="auto")
    backend = select_backend(cfg.backend)
    yaws = list(np.linspace(0.0, 360.0, args.views, endpoint=False))
    print(f"backend={backend} size={args.size} views={args.views} cores={os.cpu_count()} "
          f"(best of {args.repeats}; other processes on the machine add noise)")
    print("views/s = views / best wall time; cpu ms/view = process CPU time (less sensitive to load)")
    print(f"{'faces':>7} {'bare v/s':>9} {'ours v/s':>9} {'ratio':>6} {'ours+png v/s':>13}"
          f" {'bare cpu ms':>12} {'ours cpu ms':>12} {'cpu ratio':>10}")
    for nu, nv in [(100, 26), (320, 79)]:
        mesh = pleated_skirt(nu, nv)
        bare(mesh, yaws[:2], cfg), ours(mesh, yaws[:2], cfg)  # warm-up: shaders, buffers
        b, o, p = [], [], []
        for _ in range(args.repeats):  # interleaved so drifting load hits both alike
            b.append(bare(mesh, yaws, cfg))
            o.append(ours(mesh, yaws, cfg))
            p.append(ours_with_png(mesh, yaws, cfg))
        n = len(yaws)
        vb, vo, vp = (n / min(c.wall for c in x) for x in (b, o, p))
        cb, co = (1000 * min(c.cpu for c in x) / n for x in (b, o))
        print(f"{len(mesh.faces):>7} {vb:>9.1f} {vo:>9.1f} {vo / vb:>6.2f} {vp:>13.1f}"
              f" {cb:>12.1f} {co:>12.1f} {cb / co:>10.2f}")


if __name__ == "__main__":
    main()
