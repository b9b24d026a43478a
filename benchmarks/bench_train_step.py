"""Seconds per GDA training step: one autograd pass vs the reference code's Jacobian.

The GDA loss needs d f / d p at every query point. We take it with ONE
``torch.autograd.grad(f.sum(), p, create_graph=True)``. The reference implementation
builds it by the chain rule through a Jacobian: with a decoder input of width D, every
point is repeated D times, the decoder input is recomputed at all N * D copies and the
d-th copy's channel d is differentiated w.r.t. its point (giving d input / d p, (N, D, 3));
d f / d input comes from the decoder; grad = (d f / d input) @ (d input / d p). That
method is re-implemented here from its description (``jacobian_gradient``).

Each (config, method) runs in a fresh process so peak memory is its own: on CPU the
growth of the peak RSS over the set-up (resource.ru_maxrss), on CUDA
torch.cuda.max_memory_allocated. Steps are GDA-phase steps of the real trainer
(encoders frozen, decoder fine-tuned); "grad s" isolates the gradient + L_gda
forward/backward on precomputed image features. At paper size a Jacobian step takes
minutes on CPU, so by default only its gradient part (all that differs between the two
methods; the frozen encoder's forward is shared) is timed there:
``--paper-jacobian-step`` times the full step too.

    python benchmarks/bench_train_step.py                 # default + paper size, ~3 min on 2 cores
    python benchmarks/bench_train_step.py --configs default --steps 5
    python benchmarks/bench_train_step.py --paper-points 2000 --paper-size 256

``--recipes`` instead times the CPU training recipe before and after the step-efficiency
work (issue "a learned field that gets the garment's depth right"): ``v1`` is the first
default (batch 8 x 2000 points, full-resolution position CNN, every stack decoded in the
GDA phase), ``now`` is params.yaml's default. It prints seconds per main-phase and
GDA-phase step and query points per second (items x points / s), same run, same machine:

    python benchmarks/bench_train_step.py --recipes
    python benchmarks/bench_train_step.py --recipes --steps 8 --rounds 3   # a shared machine
    python benchmarks/bench_train_step.py --recipes --cpu-time --threads 1  # a busy one: CPU seconds

A third row, ``now-v1code``, runs today's recipe through the first version's computation
(``use_reference_code``: per-stack decoder inputs and a layer-by-layer decoder, the
position CNN in the standard layout), so the table splits the gain into recipe and code.
A fourth, ``2stacks``, is the default until 2026-12-06 (two hourglass stacks, no depth
input) with today's code, and a fifth, ``no-depth-input``, today's default without the depth
head and its input to the decoder (``model.depth_head``, ``model.depth_input``): ``2stacks``
against ``no-depth-input`` is what the one-stack model alone saves a step, ``no-depth-input``
against ``now`` what the depth input costs; a sixth, ``2000points``, is today's model with
4 x 2000 points and 6240 + 780 steps (the same CPU time on one thread as ``now``'s 4 x 4000
and 4800 + 600): what half the points save a step and what its longer schedule costs. Every
row also prints its own schedule (main + GDA steps) and that schedule's minutes at the
measured step times. ``--rows`` times only some rows:
    python benchmarks/bench_train_step.py --recipes --rows no-depth-input,now --steps 8 --rounds 3

``--table5`` times the four models of the paper's Table 5 at CPU scale (AnchorUDF,
AnchorUDF-HD, PIFu-UDF, PIFuHD-UDF; 256 px renders, coarse input 128 px): seconds per
main, GDA and HD step, same run, and the compute of each row's schedule relative to
AnchorUDF's (the README's equal-budget claim):

    python benchmarks/bench_train_step.py --table5
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np


def jacobian_gradient(model, enc, points):
    """Reference way: (f, grad) of the last stack through a repeated-point Jacobian.

    points: (B, N, 3) NDC. Returns f (B, N) and grad (B, N, 3), differentiable w.r.t.
    the decoder (create_graph) like the autograd version.
    """
    import torch

    b, n, _ = points.shape
    d = model.decoder.in_dim
    p_rep = points.detach().unsqueeze(2).expand(b, n, d, 3).reshape(b, n * d, 3).requires_grad_(True)
    x_rep = model.decoder_input(enc, p_rep)  # (B, N*D, D): copy j of point n at row n*D + j
    select = torch.eye(d, device=points.device, dtype=x_rep.dtype).repeat(n, 1)  # (N*D, D)
    (jac,) = torch.autograd.grad((x_rep * select).sum(), p_rep, create_graph=True)
    jac = jac.view(b, n, d, 3)  # d x_j / d p_n
    x = model.decoder_input(enc, points)  # (B, N, D)
    if not x.requires_grad:  # frozen encoders: differentiate w.r.t. the input itself
        x = x.detach().requires_grad_(True)
    f = model.decoder(x)
    (dfdx,) = torch.autograd.grad(f.float().sum(), x, create_graph=True)  # (B, N, D)
    return f, torch.einsum("bnd,bndk->bnk", dfdx.float(), jac.float())


def jacobian_train_step(trainer, batch) -> None:
    """The trainer's GDA-phase step with the gradient taken the reference way."""
    from anchorudf.train.losses import gda_loss, udf_loss

    model, cfg = trainer.model, trainer.cfg
    model.train()
    trainer.optimizer.zero_grad(set_to_none=True)
    b = trainer._to_device(batch)
    with trainer._autocast():
        enc = model.encode(b["image"])
        udf = [model.decoder(model.decoder_input(enc, b["points"], s)) for s in range(len(enc.features) - 1)]
        f, grad = jacobian_gradient(model, enc, b["points"])
    udf.append(f)
    loss = sum(udf_loss(u, b["udf"], cfg.delta) for u in udf) / len(udf)
    loss = loss + cfg.lambda_gda * gda_loss(grad, b["direction"], f.detach() < cfg.delta)
    loss.backward()
    trainer.optimizer.step()
    trainer.step += 1


def _overrides(args, name: str) -> list[str]:
    if name == "default":
        return ["render.size=128", "train.points=2000", f"train.batch_size={args.batch}", "anchors.count=300"]
    return [f"model.stacks={args.paper_stacks}", f"model.depth={args.paper_depth}",
            f"model.channels={args.paper_channels}", "model.decoder=[1024, 512, 256, 128]",
            f"render.size={args.paper_size}", f"train.points={args.paper_points}",
            f"train.batch_size={args.paper_batch}", "anchors.count=600"]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _grad_part(trainer, batch, method: str, repeats: int) -> tuple[float, float]:
    """Seconds of gradient + L_gda forward/backward on precomputed features; max |grad|."""
    import torch

    from anchorudf.train.losses import gda_loss, udf_gradient

    model, b = trainer.model, trainer._to_device(batch)
    with torch.no_grad(), trainer._autocast():
        enc = model.encode(b["image"])
    times = []
    for _ in range(repeats):
        trainer.optimizer.zero_grad(set_to_none=True)
        _sync(trainer.device)
        t = time.perf_counter()
        with trainer._autocast():
            if method == "autograd":
                pts = b["points"].detach().requires_grad_(True)
                f = model.query(enc, pts)
                grad = udf_gradient(f, pts)
            else:
                f, grad = jacobian_gradient(model, enc, b["points"])
        gda_loss(grad, b["direction"], f.detach() < trainer.cfg.delta).backward()
        _sync(trainer.device)
        times.append(time.perf_counter() - t)
    return min(times), grad.detach().cpu()


def run_case(config: str, method: str, args_dict: dict) -> dict:
    """One (config, method) in this (fresh) process."""
    import torch
    from torch.utils.data import default_collate

    from anchorudf.config import load_params
    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.train.synthetic import SyntheticDataset
    from anchorudf.train.trainer import Trainer
    from anchorudf.utils.device import resolve_device_type

    args = argparse.Namespace(**args_dict)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    p = load_params(None, _overrides(args, config) + ["train.steps=0", f"train.gda_steps={args.steps}"])
    device = torch.device(resolve_device_type(args.device))
    torch.manual_seed(0)
    trainer = Trainer(AnchorUDF(p.model, p.anchors.count, p.render.size), p.train, device)
    data = SyntheticDataset.from_params(p, length=max(p.train.batch_size, 2))
    batch = default_collate([data[(i % len(data), i)] for i in range(p.train.batch_size)])
    step = trainer.train_step if method == "autograd" else (lambda bt: jacobian_train_step(trainer, bt))
    # --check compares gradients of the untrained model (the two runs train apart later).
    grad = _grad_part(trainer, batch, method, 1)[1] if args.check else None
    paper = config == "paper"
    full = not (paper and method == "jacobian" and not args.paper_jacobian_step)
    warmup, steps = (0, args.paper_steps) if paper else (args.warmup, args.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = _peak_mb(device) if device.type == "cpu" else 0.0
    times = []
    for i in range(warmup + steps if full else 0):
        _sync(device)
        t = time.perf_counter()
        step(batch)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    repeats = 1 if (paper and method == "jacobian") else args.grad_repeats
    grad_s = _grad_part(trainer, batch, method, repeats)[0]
    peak = _peak_mb(device) - base
    return {"config": config, "method": method, "device": str(device), "step_s": min(times) if times else float("nan"),
            "grad_s": grad_s, "peak_mb": peak, "batch": p.train.batch_size, "points": p.train.points,
            "decoder_in": trainer.model.decoder.in_dim, "grad": grad.numpy().tolist() if grad is not None else None}


#: Today's default without the depth head and its input to the decoder (README "the depth
#: head fed to the decoder"; the default until the stop after 2026-12-06's).
NO_DEPTH = ["model.depth_head=false", "model.depth_input=false"]
#: The first CPU default, for --recipes (what today's defaults are measured against).
RECIPE_V1 = ["model.stacks=2", "model.pos_levels=0", "train.batch_size=8", "train.points=2000",
             "train.steps=1600", "train.gda_steps=200", *NO_DEPTH]
#: The default until 2026-12-06: two hourglass stacks, no depth input, today's code.
RECIPE_TWO_STACKS = ["model.stacks=2", "train.steps=3100", "train.gda_steps=390", *NO_DEPTH]
#: Half the points per item, 1.3x the steps (README: "Half the points per item, more steps").
RECIPE_2000_POINTS = ["train.points=2000", "train.steps=6240", "train.gda_steps=780"]


def use_reference_code() -> None:
    """Put this process's model and loss code back to the first version's computation (the
    same functions, computed the plain way): every stack's decoder input sampled and
    concatenated on its own and the decoder's layers applied one by one
    (``AnchorUDF.decode_stacks_reference``), the position CNN in the standard memory
    layout, the anchor Chamfer one direction at a time, the optimizer's per-tensor update
    loop (torch's CPU default; ``make_optimizer`` groups it)."""
    import functools

    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.models.position import PositionCNN
    from anchorudf.train import losses
    from anchorudf.train import trainer as trainer_mod

    trainer_mod.make_optimizer = functools.partial(trainer_mod.make_optimizer, foreach=False)

    AnchorUDF.decode_stacks = AnchorUDF.decode_stacks_reference
    PositionCNN.forward = PositionCNN._forward
    losses.anchor_chamfer = lambda pred, target: (losses._nearest_sq(pred.float(), target.float(), 512).mean()
                                                  + losses._nearest_sq(target.float(), pred.float(), 512).mean())


def recipe_case(name: str, overrides: list[str], args_dict: dict, reference: bool = False) -> dict:
    """Seconds per main and GDA step of the real trainer on synthetic items, this process
    (``reference``: with :func:`use_reference_code`)."""
    import torch
    from torch.utils.data import default_collate

    from anchorudf.config import load_params
    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.train.synthetic import SyntheticDataset
    from anchorudf.train.trainer import Trainer

    args = argparse.Namespace(**args_dict)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if reference:
        use_reference_code()
    out = {"recipe": name}
    phases = [("main", ["train.steps=100", "train.gda_steps=0"], 0),
              ("gda", ["train.steps=0", "train.gda_steps=100"], 0)]
    if TABLE5_HD in overrides:
        phases.append(("hd", ["train.steps=1", "train.gda_steps=0", "train.hd_steps=100"], 1))
    for phase, steps, first in phases:
        p = load_params(None, overrides + steps)
        torch.manual_seed(0)
        trainer = Trainer(AnchorUDF(p.model, p.anchors.count, p.render.size), p.train, torch.device("cpu"))
        trainer.prepare(first)
        data = SyntheticDataset.from_params(p, length=p.train.batch_size)
        batch = default_collate([data[(i, i)] for i in range(p.train.batch_size)])
        times = []
        clock = time.process_time if getattr(args, "cpu_time", False) else time.perf_counter
        for i in range(args.warmup + args.steps):
            t = clock()
            trainer.train_step(batch)
            if i >= args.warmup:
                times.append(clock() - t)
        out[f"{phase}_s"] = float(np.median(times))
        out[f"{phase}_min_s"] = float(np.min(times))
        out["batch"], out["points"] = p.train.batch_size, p.train.points
    out["points_per_s"] = out["batch"] * out["points"] / out["main_s"]
    sched = load_params(None, overrides).train  # the row's own schedule (main + GDA steps)
    out["schedule"] = f"{sched.steps} + {sched.gda_steps}"
    out["schedule_min"] = (sched.steps * out["main_s"] + sched.gda_steps * out["gda_s"]) / 60.0
    return out


#: --recipes rows: (name, params overrides, the first version's code path).
RECIPE_ROWS = (("v1", RECIPE_V1, True), ("now-v1code", [], True), ("2stacks", RECIPE_TWO_STACKS, False),
               ("no-depth-input", NO_DEPTH, False), ("2000points", RECIPE_2000_POINTS, False),
               ("now", [], False))


def run_recipes(args) -> None:
    """The rows of RECIPE_ROWS, each in a fresh process, ``--rounds`` times interleaved
    (a shared machine's load drifts: every row sees the same drift); per row the median
    over rounds of each round's median step."""
    wanted = RECIPE_ROWS if not args.rows else [r for r in RECIPE_ROWS if r[0] in args.rows.split(",")]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in wanted}
    for _ in range(args.rounds):
        for name, overrides, reference in wanted:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
                runs[name].append(ex.submit(recipe_case, name, overrides, vars(args), reference).result())
    rows = {}
    for name, got in runs.items():
        rows[name] = {k: (float(np.median([g[k] for g in got])) if isinstance(got[0][k], float) else got[0][k])
                      for k in got[0]}
    print("recipe         | code | batch x points | main step s (fastest) | GDA step s (fastest) | "
          "query points / s (main) | schedule | schedule min")
    for name, _, reference in wanted:
        r = rows[name]
        print(f"{name:14s} | {'v1' if reference else 'now':4s} | {r['batch']:5d} x {r['points']:5d} | "
              f"{r['main_s']:8.3f} ({r['main_min_s']:.3f})  | {r['gda_s']:8.3f} ({r['gda_min_s']:.3f})  | "
              f"{r['points_per_s']:10.0f} | {r['schedule']} | {r['schedule_min']:.1f}")
    pairs = (("now vs v1", "v1", "now"), ("recipe alone (v1 code)", "v1", "now-v1code"),
             ("code alone (today's recipe)", "now-v1code", "now"),
             ("one stack alone (today's code, both without the depth input)", "2stacks", "no-depth-input"),
             ("the depth input (today's code; below 1x: dearer)", "no-depth-input", "now"),
             ("today's 4 x 4000 points against 4 x 2000 with 1.3x the steps (below 1x: dearer)", "2000points", "now"))
    for label, a, b in ((label, rows[x], rows[y]) for label, x, y in pairs if x in rows and y in rows):
        print(f"{label}: main step {a['main_s'] / b['main_s']:.2f}x cheaper, GDA step {a['gda_s'] / b['gda_s']:.2f}x "
              f"cheaper, query points/s {b['points_per_s'] / a['points_per_s']:.2f}x, "
              f"schedule {b['schedule_min'] / a['schedule_min']:.2f}x the time")


#: Table 5 at CPU scale (README "AnchorUDF-HD and the paper's Table 5"): 256 px renders,
#: the coarse level reading them area-downsampled to 128 px.
TABLE5_COMMON = ["render.size=256", "model.coarse_size=128", *NO_DEPTH]  # the paper's models: no depth head
TABLE5_PIFU = ["model.position_feature=depth", "train.lambda_ap=0"]
TABLE5_HD = "model.hd_enabled=true"
TABLE5 = (("AnchorUDF", []), ("AnchorUDF-HD", [TABLE5_HD]),
          ("PIFu-UDF", TABLE5_PIFU), ("PIFuHD-UDF", TABLE5_PIFU + [TABLE5_HD]))


def run_table5(args) -> None:
    """Seconds per main, GDA and HD step of the four Table 5 models, same run, and the
    compute of each row's schedule (coarse rows: --coarse-steps; HD rows: --hd-coarse-steps
    then --hd-steps) relative to AnchorUDF's."""
    rows = []
    for name, extra in TABLE5:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
            r = ex.submit(recipe_case, name, TABLE5_COMMON + extra, vars(args)).result()
        hd = TABLE5_HD in extra
        main, gda = (int(x) for x in (args.hd_coarse_steps if hd else args.coarse_steps).split("+"))
        r["schedule"] = f"{main} + {gda}" + (f" + {args.hd_steps} HD" if hd else "")
        r["compute_s"] = main * r["main_s"] + gda * r["gda_s"] + (args.hd_steps * r["hd_s"] if hd else 0.0)
        rows.append(r)
    base = rows[0]["compute_s"]
    print("model | main step s | GDA step s | HD step s | schedule | compute min | vs AnchorUDF")
    for r in rows:
        hd_s = f"{r['hd_s']:.3f}" if "hd_s" in r else "-"
        print(f"{r['recipe']:12s} | {r['main_s']:.3f} | {r['gda_s']:.3f} | {hd_s} | {r['schedule']} | "
              f"{r['compute_s'] / 60:.1f} | {r['compute_s'] / base:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", action="store_true", help="time the CPU recipe v1 vs today's default instead")
    ap.add_argument("--table5", action="store_true",
                    help="time the four Table 5 models (coarse, GDA and HD steps) and each row's schedule")
    ap.add_argument("--coarse-steps", default="2800+350", help="--table5: main + GDA steps of the coarse rows")
    ap.add_argument("--hd-coarse-steps", default="1900+240", help="--table5: main + GDA steps before the HD phase")
    ap.add_argument("--hd-steps", type=int, default=600, help="--table5: HD-phase steps of the HD rows")
    ap.add_argument("--configs", default="default,paper", help="comma list of default, paper")
    ap.add_argument("--methods", default="autograd,jacobian")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=2, help="timed steps (min is reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--grad-repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="batch of the default config")
    ap.add_argument("--paper-batch", type=int, default=1)
    ap.add_argument("--paper-steps", type=int, default=1, help="timed steps of the paper config (no warmup)")
    ap.add_argument("--paper-jacobian-step", action="store_true",
                    help="also time a full Jacobian step at paper size (minutes on CPU; by default only "
                         "its gradient part, which is all that differs, is timed)")
    ap.add_argument("--paper-points", type=int, default=5000)
    ap.add_argument("--paper-size", type=int, default=512)
    ap.add_argument("--paper-stacks", type=int, default=5)
    ap.add_argument("--paper-depth", type=int, default=4)
    ap.add_argument("--paper-channels", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1, help="--recipes: interleaved rounds of every row")
    ap.add_argument("--rows", default="", help="--recipes: comma-separated rows to time (default: all; "
                                               "v1, now-v1code, 2stacks, no-depth-input, 2000points, now)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="--recipes / --table5: time steps in process CPU seconds (all threads) instead of wall "
                         "clock, for a shared machine")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--check", action="store_true", help="also compare the two methods' gradients (peak memory then includes that pass)")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    if args.recipes:
        run_recipes(args)
        return
    if args.table5:
        run_table5(args)
        return
    rows = []
    for config in args.configs.split(","):
        for method in args.methods.split(","):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
                r = ex.submit(run_case, config, method, vars(args)).result()
            rows.append(r)
            print(f"{config:8s} {method:9s} {r['device']:5s} batch {r['batch']} x {r['points']} pts, "
                  f"D={r['decoder_in']}: step {r['step_s']:.3f} s, grad {r['grad_s']:.3f} s, "
                  f"peak +{r['peak_mb']:.0f} MB", flush=True)
    _report(rows, args)


def _report(rows: list[dict], args) -> None:
    import numpy as np

    by = {(r["config"], r["method"]): r for r in rows}
    print("\n(step nan / - : not timed, see --paper-jacobian-step)")
    print("config   | step s autograd | step s jacobian | step ratio | grad ratio | peak MB a / j")
    for config in args.configs.split(","):
        a, j = by.get((config, "autograd")), by.get((config, "jacobian"))
        if not (a and j):
            continue
        ratio = j["step_s"] / a["step_s"]
        step_j = "-" if ratio != ratio else f"{j['step_s']:.3f}"
        step_r = "-" if ratio != ratio else f"{ratio:.1f}x"
        print(f"{config:8s} | {a['step_s']:15.3f} | {step_j:>15s} | {step_r:>10s}"
              f" | {j['grad_s'] / a['grad_s']:9.1f}x | {a['peak_mb']:.0f} / {j['peak_mb']:.0f}")
        if args.check:
            diff = np.abs(np.array(a["grad"]) - np.array(j["grad"])).max()
            print(f"{'':8s}   max |grad_autograd - grad_jacobian| = {diff:.2e}")
    if args.json:
        from anchorudf.utils.io import write_json

        write_json(args.json, [{k: v for k, v in r.items() if k != "grad"} for r in rows])


if __name__ == "__main__":
    main()
