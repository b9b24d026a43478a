"""GPU readiness check on one NVIDIA GPU: EGL vs OSMesa masks, paper-preset CUDA training
with and without AMP, torchrun/NCCL, a 900k-point dense reconstruction.

``bash benchmarks/gpu_check.sh`` runs every step (under 5 minutes on one GPU), prints one
table and exits non-zero on any failure or mismatch. Each step is a subcommand of this
helper that appends one row (JSON lines) to ``--table``:

    python benchmarks/gpu_check.py preflight                      # fails fast without CUDA
    python benchmarks/gpu_check.py render --backend egl --out egl.npz     # 36 views, 512 px
    python benchmarks/gpu_check.py render --backend osmesa --out osmesa.npz
    python benchmarks/gpu_check.py compare egl.npz osmesa.npz     # masks must agree
    python benchmarks/gpu_check.py train --amp on  --work W       # 50 steps, paper preset
    python benchmarks/gpu_check.py train --amp off --work W
    python -m torch.distributed.run --standalone --nproc_per_node=1 benchmarks/gpu_check.py nccl
    python benchmarks/gpu_check.py torchrun --work W              # torchrun -m anchorudf train
    python benchmarks/gpu_check.py dense --model W/train-amp-on/run/model   # 900k points
    python benchmarks/gpu_check.py table                          # exit 1 if any row failed

``--device``, ``--params`` and ``-S`` let the tests run the non-GPU parts on a CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "pipeline" / "presets" / "paper.yaml"
DEFAULT_TABLE = Path(os.environ.get("GPU_CHECK_TABLE", "gpu_check_table.jsonl"))
NO_CUDA = 3  # exit status of preflight without a CUDA device


# ----------------------------------------------------------------------------- the table

def record(table: Path, check: str, ok: bool, seconds: float, detail: str) -> int:
    """Append one row to ``table``, print it, return its exit status (0 ok, 1 failed)."""
    row = {"check": check, "result": "PASS" if ok else "FAIL", "seconds": round(float(seconds), 2),
           "detail": " ".join(str(detail).split())}
    table.parent.mkdir(parents=True, exist_ok=True)
    with open(table, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"[gpu_check] {row['result']} {check}: {row['detail']} ({row['seconds']} s)", flush=True)
    return 0 if ok else 1


def format_table(rows: list[dict]) -> str:
    header = ["check", "result", "seconds", "detail"]
    cells = [header] + [[str(r.get(k, "")) for k in header] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = []
    for n, c in enumerate(cells):
        lines.append(" | ".join(c[i].ljust(widths[i]) for i in range(3)) + " | " + c[3])
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    return "\n".join(lines)


def cmd_table(args) -> int:
    rows = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()] \
        if Path(args.table).is_file() else []
    print(format_table(rows))
    missing = [c for c in args.expect if c not in {r["check"] for r in rows}]
    for c in missing:
        print(f"[gpu_check] FAIL {c}: no result (the step crashed or timed out)")
    failed = [r["check"] for r in rows if r["result"] != "PASS"] + missing
    if not rows:
        print("[gpu_check] FAILED: no results")
    else:
        print("[gpu_check] " + ("FAILED: " + ", ".join(failed) if failed else "all passed"))
    return 0 if rows and not failed else 1


# ---------------------------------------------------------------------------- preflight

def cmd_preflight(args) -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}, torch.cuda.is_available() is False); this check "
              "needs one NVIDIA GPU and a CUDA torch", file=sys.stderr)
        return NO_CUDA
    props = torch.cuda.get_device_properties(0)
    print(f"[gpu_check] {torch.cuda.device_count()} CUDA device(s); 0: {props.name}, "
          f"{props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor}; "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")
    return 0


# ------------------------------------------------------------------------------- render

def test_garment(sections: int = 208, rings: int = 121):
    """An open pleated skirt (garment frame, vertex colours, ~50k faces): fine silhouette
    detail where two rasterisers could disagree."""
    import numpy as np
    import trimesh

    th = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    ys = np.linspace(-0.45, 0.45, rings)
    t, y = np.meshgrid(th, ys)
    rad = 0.3 * (1.0 + 0.3 * (0.5 - (y + 0.45) / 0.9)) + 0.02 * np.sin(12 * t)
    v = np.stack([rad * np.sin(t), y, rad * np.cos(t)], -1).reshape(-1, 3)
    j, i = np.meshgrid(np.arange(rings - 1), np.arange(sections), indexing="ij")
    a, b = j * sections + i, j * sections + (i + 1) % sections
    f = np.concatenate([np.stack([a, b, a + sections], -1).reshape(-1, 3),
                        np.stack([b, b + sections, a + sections], -1).reshape(-1, 3)])
    rng = np.random.default_rng(0)
    colours = np.concatenate([rng.integers(80, 230, (len(v), 3)), np.full((len(v), 1), 255)], 1)
    return trimesh.Trimesh(v, f, vertex_colors=colours.astype(np.uint8), process=False)


def gl_renderer_name(size: int, backend: str) -> str:
    """GL_RENDERER of this process's renderer (``llvmpipe ...`` on Mesa's CPU rasteriser)."""
    try:
        from OpenGL.GL import GL_RENDERER, glGetString

        from anchorudf.render.backend import get_renderer

        r = get_renderer(size, size, backend)
        r._platform.make_current()
        return glGetString(GL_RENDERER).decode(errors="replace")
    except Exception as exc:  # informative only
        return f"unknown ({type(exc).__name__})"


def cmd_render(args) -> int:
    os.environ["PYOPENGL_PLATFORM"] = args.backend  # before anything imports OpenGL
    import numpy as np

    from anchorudf.config import load_params
    from anchorudf.render.views import render_views

    cfg = load_params(None, [f"render.size={args.size}", f"render.backend={args.backend}"]).render
    yaws = [360.0 * k / args.views for k in range(args.views)]
    mesh = test_garment()
    t0 = time.perf_counter()
    first = render_views(mesh, yaws[:1], cfg, seed=0, name="gpu_check")  # context + upload
    t1 = time.perf_counter()
    rest = render_views(mesh, yaws[1:], cfg, seed=0, name="gpu_check") if len(yaws) > 1 else []
    t2 = time.perf_counter()
    views = first + rest
    gl = gl_renderer_name(args.size, args.backend)
    np.savez(args.out, masks=np.stack([v.mask for v in views]), images=np.stack([v.image for v in views]),
             yaws=np.asarray(yaws), backend=args.backend, gl_renderer=gl)
    on_cpu = "llvmpipe" in gl.lower() or "softpipe" in gl.lower()
    ok = (os.environ.get("PYOPENGL_PLATFORM") == args.backend and all(v.mask.any() for v in views)
          and not (args.backend == "egl" and on_cpu))
    rate = (len(views) - 1) / (t2 - t1) if len(views) > 1 else float("nan")
    note = "; EGL fell back to Mesa's CPU rasteriser" if args.backend == "egl" and on_cpu else ""
    return record(args.table, f"render {args.backend}", ok, t2 - t0,
                  f"{len(views)} views {args.size}px, {rate:.1f} views/s after a {t1 - t0:.2f} s first view; "
                  f"GL_RENDERER {gl}{note}")


def compare_masks(a, b) -> dict:
    """Per-view disagreement of two (V, H, W) bool mask stacks: differing pixels over the
    union (1 - IoU). Returns views, max_mismatch, worst_view, mean_mismatch, differing_pixels."""
    import numpy as np

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask stacks differ in shape: {a.shape} vs {b.shape}")
    diff = (a ^ b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    frac = np.where(union > 0, diff / np.maximum(union, 1), 0.0)
    return {"views": int(len(a)), "max_mismatch": float(frac.max(initial=0.0)),
            "worst_view": int(frac.argmax()) if len(a) else -1, "mean_mismatch": float(frac.mean()) if len(a) else 0.0,
            "differing_pixels": int(diff.sum()), "empty_views": int((union == 0).sum())}


def cmd_compare(args) -> int:
    import numpy as np

    t0 = time.perf_counter()
    with np.load(args.a) as a, np.load(args.b) as b:
        try:
            stats = compare_masks(a["masks"], b["masks"])
        except ValueError as exc:
            return record(args.table, "masks egl=osmesa", False, time.perf_counter() - t0, str(exc))
        image_diff = float(np.abs(a["images"].astype(np.int16) - b["images"].astype(np.int16)).mean())
        names = f"{a['backend']} vs {b['backend']}"
    ok = stats["max_mismatch"] <= args.tolerance and stats["empty_views"] == 0 and stats["views"] > 0
    return record(args.table, "masks egl=osmesa", ok, time.perf_counter() - t0,
                  f"{names}: max mismatch {stats['max_mismatch']:.2e} of the silhouette (view "
                  f"{stats['worst_view']}, tolerance {args.tolerance:g}), {stats['differing_pixels']} pixels "
                  f"differ over {stats['views']} views; image mean |diff| {image_diff:.2f}/255 (not checked)")


# -------------------------------------------------------------------------------- train

def train_command(args, run: Path, steps: int, amp: bool, launcher: list[str] | None = None,
                  items: int = 8) -> list[str]:
    """The ``anchorudf train --synthetic`` command line of one check (the last 40% of the
    steps in the GDA phase, so both phases run, and the model is exported at the end; with
    model.hd_enabled the last 20% in the HD phase, after 20% of GDA)."""
    from anchorudf.config import load_params

    hd = steps // 5 if load_params(args.params, list(args.set)).model.hd_enabled else 0
    gda = steps // 5 if hd else (steps * 2) // 5
    cmd = [sys.executable, "-m", "anchorudf"] if launcher is None else launcher + ["-m", "anchorudf"]
    return cmd + ["train", "--synthetic", "--synthetic-items", str(items), "--max-steps", str(steps),
                  "--params", str(args.params), "--run-dir", str(run / "run"), "--live-dir", str(run / "live"),
                  "-S", f"train.device={args.device}", "-S", f"train.amp={'true' if amp else 'false'}",
                  "-S", f"train.steps={steps - gda - hd}", "-S", f"train.gda_steps={gda}",
                  "-S", f"train.log_every={steps}", "-S", f"train.ckpt_every={steps}",
                  "-S", "train.num_workers=2"] + (["-S", f"train.hd_steps={hd}"] if hd else []) \
        + [a for s in args.set for a in ("-S", s)]


def parse_metrics(stdout: str) -> dict:
    """The JSON object ``anchorudf train`` prints last (rank 0)."""
    start = stdout.rfind("\n{")
    start = start + 1 if start >= 0 else stdout.find("{")
    if start < 0:
        raise ValueError("no metrics JSON in the output")
    return json.loads(stdout[start:])


def run_train_check(args, name: str, cmd: list[str], steps: int, env: dict | None = None) -> int:
    import shutil

    run = Path(args.work) / name.replace(" ", "-")
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return record(args.table, name, False, seconds, f"exit {proc.returncode}: {tail}")
    try:
        m = parse_metrics(proc.stdout)
    except ValueError as exc:
        return record(args.table, name, False, seconds, f"{exc}: {proc.stdout[-200:]}")
    finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in m.values())
    ok = finite and int(m.get("step", -1)) == steps and "loss" in m and (run / "run" / "model").is_dir()
    detail = (f"{int(m.get('step', -1))} steps, loss {m.get('loss', float('nan')):.4g}"
              f"{'' if finite else ' NON-FINITE METRICS ' + json.dumps(m)}, "
              f"{1000 * m.get('seconds_per_step', float('nan')):.0f} ms/step")
    if name.startswith("torchrun") and env and env.get("NCCL_DEBUG"):
        detail += "; NCCL initialised" if "NCCL INFO" in proc.stdout + proc.stderr else "; no NCCL (world size 1)"
    return record(args.table, name, ok, seconds, detail)


def cmd_train(args) -> int:
    amp = args.amp == "on"
    name = f"train amp {args.amp}"
    return run_train_check(args, name, train_command(args, Path(args.work) / name.replace(" ", "-"),
                                                     args.steps, amp), args.steps)


def cmd_torchrun(args) -> int:
    name = "torchrun train"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
    cmd = train_command(args, Path(args.work) / name.replace(" ", "-"), args.steps, amp=True,
                        launcher=launcher, items=4)
    return run_train_check(args, name, cmd, args.steps, env={"NCCL_DEBUG": "INFO"})


def cmd_nccl(args) -> int:
    """Under torchrun: an NCCL process group, all_reduce and all_gather_object on the GPUs."""
    import torch
    import torch.distributed as dist

    t0 = time.perf_counter()
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl", init_method="env://")
        t = torch.full((1024,), float(rank + 1), device="cuda")
        dist.all_reduce(t)
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rank)
        dist.barrier()
        ok = bool(torch.all(t == world * (world + 1) / 2)) and gathered == list(range(world))
        detail = f"backend {dist.get_backend()}, world {world}, NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}"
        dist.destroy_process_group()
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return record(args.table, "nccl", ok, time.perf_counter() - t0, detail) if rank == 0 else (0 if ok else 1)


# -------------------------------------------------------------------------------- dense

def cylinder_udf(p):
    """Exact UDF of an open cylinder (radius 0.4, |y| <= 0.5, NDC)."""
    import torch

    rho = torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2 + 1e-12)
    return torch.sqrt((rho - 0.4) ** 2 + torch.clamp(p[:, 1].abs() - 0.5, min=0) ** 2 + 1e-12)


def cmd_dense(args) -> int:
    """dense_point_cloud of ``--points`` points through the model: the UDF is an exact
    cylinder plus 0 x the network's output, so every query pays the real network (and a
    NaN from it shows), while the surface is known and the point count is reached."""
    import dataclasses

    import numpy as np
    import torch

    from anchorudf.config import load_params
    from anchorudf.reconstruct import dense_point_cloud

    p = load_params(args.params, list(args.set))
    cfg = dataclasses.replace(p.evaluate, target_points=args.points, seeding="uniform")
    device = args.device
    t0 = time.perf_counter()
    if args.model and Path(args.model).is_dir():
        from anchorudf.models.checkpoint import load_model

        model, meta = load_model(args.model, device=device)
        size, source = int(meta["image_size"]), f"model {args.model}"
    else:
        from anchorudf.models.anchorudf import AnchorUDF

        torch.manual_seed(0)
        model = AnchorUDF(p.model, p.anchors.count, p.render.size).to(device).eval()
        size, source = p.render.size, "randomly initialised model (no --model)"
    with torch.no_grad():
        enc = model.encode(torch.rand(1, 3, size, size, device=device))

    def udf(q):
        return cylinder_udf(q) + 0.0 * model.query(enc, q[None])[0].float()

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    pts = dense_point_cloud(udf, cfg, delta=p.train.delta, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    rho = np.hypot(pts[:, 0], pts[:, 2])
    err = float(np.hypot(rho - 0.4, np.maximum(np.abs(pts[:, 1]) - 0.5, 0)).max()) if len(pts) else float("nan")
    finite = bool(np.isfinite(pts).all())
    ok = len(pts) == args.points and finite and err <= cfg.filter_val
    peak = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else ""
    return record(args.table, "dense 900k" if args.points == 900_000 else f"dense {args.points}", ok, t2 - t0,
                  f"{len(pts)} of {args.points} points in {t2 - t1:.1f} s ({cfg.seed_points} seeds/round, "
                  f"batch {cfg.batch_points}){peak}; max surface error {err:.1e}"
                  f"{'' if finite else ', NON-FINITE points'}; {source}")


# --------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="JSON-lines results file")
    sub = ap.add_subparsers(dest="command", required=True)

    sub.add_parser("preflight", help="fail fast (exit 3) without a CUDA device").set_defaults(func=cmd_preflight)

    r = sub.add_parser("render", help="render the test garment with one backend into an .npz")
    r.add_argument("--backend", choices=["egl", "osmesa"], required=True)
    r.add_argument("--size", type=int, default=512)
    r.add_argument("--views", type=int, default=36)
    r.add_argument("--out", type=Path, required=True)
    r.set_defaults(func=cmd_render)

    c = sub.add_parser("compare", help="compare the masks of two render .npz files")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--tolerance", type=float, default=0.005,
                   help="largest per-view disagreement, fraction of the silhouette (1 - IoU)")
    c.set_defaults(func=cmd_compare)

    def training(p, steps: int):
        p.add_argument("--work", type=Path, default=Path("gpu_check_work"))
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--params", type=Path, default=PAPER)
        p.add_argument("--device", default="cuda")
        p.add_argument("--set", "-S", action="append", default=[], help="extra override key=value")

    t = sub.add_parser("train", help="anchorudf train --synthetic on the GPU, AMP on or off")
    t.add_argument("--amp", choices=["on", "off"], required=True)
    training(t, 50)
    t.set_defaults(func=cmd_train)

    tr = sub.add_parser("torchrun", help="torchrun -m anchorudf train --synthetic")
    tr.add_argument("--nproc", type=int, default=1)
    training(tr, 10)
    tr.set_defaults(func=cmd_torchrun)

    sub.add_parser("nccl", help="(under torchrun) NCCL all_reduce / all_gather").set_defaults(func=cmd_nccl)

    d = sub.add_parser("dense", help="dense_point_cloud of 900k points through the model")
    d.add_argument("--model", type=Path, default=None, help="model folder (default: a random model)")
    d.add_argument("--points", type=int, default=900_000)
    d.add_argument("--params", type=Path, default=PAPER)
    d.add_argument("--device", default="cuda")
    d.add_argument("--set", "-S", action="append", default=[], help="extra override key=value")
    d.set_defaults(func=cmd_dense)

    tb = sub.add_parser("table", help="print the table; exit 1 if a row failed or is missing")
    tb.add_argument("--expect", nargs="*", default=[], help="checks that must have a row")
    tb.set_defaults(func=cmd_table)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
