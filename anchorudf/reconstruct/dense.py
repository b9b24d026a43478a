"""Dense point clouds from an unsigned distance field (the NDF projection algorithm).

Frames and units
----------------
Everything here is in NDC (see :mod:`anchorudf.geometry.camera`): seeds are drawn in the
view box ``[-1, 1]^3`` and distances returned by ``udf_fn`` are NDC units.
:func:`to_garment_frame` maps the result back to the normalised garment frame.

Algorithm (Chibane et al. 2020, as used by AnchorUDF)
----------------------------------------------------
Every round starts from ``cfg.seed_points`` points and moves each of them ``cfg.num_steps``
times by ``p <- p - normalize(grad f(p)) * min(f(p), delta)``. Round 0 starts from uniform
seeds and only serves to find the surface; from round 1 on, points with
``f < cfg.filter_val`` after the steps are kept. The next round's seeds are drawn (with
replacement) from the points with ``f < cfg.reseed_val`` and jittered with
``N(0, (delta / 3)^2)`` (the protocol's jitter: projection brings jittered points back
onto the surface, the jitter spreads them along it).
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Callable

import numpy as np

from anchorudf.config import EvaluateConfig

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

UdfFn = Callable[["torch.Tensor"], "torch.Tensor"]


def udf_and_grad(udf_fn: UdfFn, points: "torch.Tensor", batch_points: int,
                 with_grad: bool = True) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """Evaluate ``udf_fn`` (and its gradient) on (N, 3) points, ``batch_points`` per call.

    Returns the (N,) distances and, if ``with_grad``, the (N, 3) gradient, both detached.
    Non-finite gradients (e.g. ``d|x|/dx`` at ``x = 0``) are replaced by zeros.
    """
    import torch

    fs, gs = [], []
    for start in range(0, len(points), batch_points):
        p = points[start:start + batch_points].detach()
        if with_grad:
            p = p.clone().requires_grad_(True)
            with torch.enable_grad():
                f = udf_fn(p).reshape(-1)
                (g,) = torch.autograd.grad(f.sum(), p)
            gs.append(torch.nan_to_num(g.detach(), nan=0.0, posinf=0.0, neginf=0.0))
        else:
            with torch.no_grad():
                f = udf_fn(p).reshape(-1)
        if f.shape[0] != p.shape[0]:
            raise ValueError(f"udf_fn returned {tuple(f.shape)} distances for {p.shape[0]} points")
        fs.append(f.detach())
    empty = points.new_zeros((0,))
    f_all = torch.cat(fs) if fs else empty
    g_all = (torch.cat(gs) if gs else points.new_zeros((0, 3))) if with_grad else None
    return f_all, g_all


def project_points(udf_fn: UdfFn, points: "torch.Tensor", delta: float, num_steps: int,
                   batch_points: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Move (N, 3) NDC points ``num_steps`` times towards the zero level of ``udf_fn``.

    Each step is ``p <- p - normalize(grad f) * min(f, delta)``. Returns the moved points
    and their final distances (N,). Processed in chunks of ``batch_points`` so peak memory
    is that of one chunk's forward and backward pass.
    """
    import torch

    out_p, out_f = [], []
    for start in range(0, len(points), batch_points):
        p = points[start:start + batch_points]
        for _ in range(num_steps):
            f, g = udf_and_grad(udf_fn, p, batch_points)
            n = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
            p = p - n * f.clamp(max=delta).unsqueeze(1)
        f, _ = udf_and_grad(udf_fn, p, batch_points, with_grad=False)
        out_p.append(p)
        out_f.append(f)
    return torch.cat(out_p), torch.cat(out_f)


def dense_point_cloud(udf_fn: UdfFn, cfg: EvaluateConfig, delta: float, device: str = "cpu",
                      anchors: np.ndarray | None = None) -> np.ndarray:
    """Dense points on the zero level of an unsigned distance field (NDF projection).

    Inputs (all in the view's NDC, x right, y up, z towards the camera, box ``[-1, 1]^3``):

    - ``udf_fn``: maps an (N, 3) float32 tensor of NDC points on ``device`` to their (N,)
      unsigned distances in NDC units; differentiable w.r.t. its input.
    - ``cfg``: the evaluate params; ``seed``, ``seed_points``, ``num_steps``,
      ``filter_val``, ``reseed_val`` (NDC units), ``target_points``, ``max_rounds``,
      ``batch_points``, ``seeding`` and ``anchor_std`` (NDC) are used.
    - ``delta``: largest step of one projection in NDC units (the training clamp).
    - ``device``: torch device the points are projected on. Random numbers are drawn on
      the CPU, so a seed gives the same points on every device.
    - ``anchors``: (K, 3) predicted anchors in NDC, required when ``cfg.seeding ==
      "anchors"``: every round then seeds ``anchors + N(0, anchor_std^2)`` and keeps
      points from round 0 on.

    Output: a (M, 3) float32 array of NDC points, ``M == cfg.target_points`` (a seeded
    random subset of all kept points), or all kept points with a RuntimeWarning when
    ``cfg.max_rounds`` rounds were not enough. Same inputs and seed give identical bytes.
    """
    import torch

    gen = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    seeds = _uniform_seeds(cfg.seed_points, gen, device, dtype=torch.float32)
    anchor_seeds = _anchor_seeder(cfg, gen, device, anchors) if cfg.seeding == "anchors" else None
    if anchor_seeds is not None:
        seeds = anchor_seeds()
    kept = _projection_rounds(udf_fn, cfg, delta, device, gen, seeds, anchor_seeds)
    return _final_subset(kept, cfg)


def _uniform_seeds(n: int, gen: torch.Generator, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(n, 3) points uniform in the NDC box, drawn on the CPU from ``gen``."""
    import torch

    return (torch.rand(n, 3, generator=gen, dtype=dtype) * 2 - 1).to(device)


def _anchor_seeder(cfg: EvaluateConfig, gen: torch.Generator, device: str,
                   anchors: np.ndarray | None) -> Callable[[], torch.Tensor]:
    """A function drawing one round's seeds around the predicted anchors."""
    import torch

    if anchors is None or len(anchors) == 0:
        raise ValueError("dense_point_cloud: evaluate.seeding is 'anchors' but no anchors were given")
    anc = torch.as_tensor(np.asarray(anchors, dtype=np.float32))

    def anchor_seeds() -> torch.Tensor:
        idx = torch.randint(len(anc), (cfg.seed_points,), generator=gen)
        return (anc[idx] + torch.randn(cfg.seed_points, 3, generator=gen) * cfg.anchor_std).to(device)

    return anchor_seeds


def _projection_rounds(udf_fn: UdfFn, cfg: EvaluateConfig, delta: float, device: str,
                       gen: torch.Generator, seeds: torch.Tensor,
                       anchor_seeds: Callable[[], torch.Tensor] | None) -> list[torch.Tensor]:
    """Project, keep the points with ``f < filter_val``, reseed; until enough are kept.

    Returns the kept points of every round (CPU tensors). Round 0 of uniform seeds only
    finds the surface: its points are not kept.
    """
    from tqdm import tqdm

    std = delta / 3.0
    kept: list[torch.Tensor] = []
    total = 0
    bar = tqdm(total=cfg.target_points, desc="dense points", unit="pt",
               disable=not sys.stderr.isatty())
    for rnd in range(cfg.max_rounds):
        p, f = project_points(udf_fn, seeds, delta, cfg.num_steps, cfg.batch_points)
        if rnd > 0 or anchor_seeds is not None:
            good = p[f < cfg.filter_val]
            kept.append(good.cpu())
            total += len(good)
            bar.update(min(len(good), max(cfg.target_points - bar.n, 0)))
        if total >= cfg.target_points:
            break
        seeds = anchor_seeds() if anchor_seeds is not None else _reseed(p, f, cfg, std, gen, device)
    bar.close()
    return kept


def _reseed(p: torch.Tensor, f: torch.Tensor, cfg: EvaluateConfig, std: float,
            gen: torch.Generator, device: str) -> torch.Tensor:
    """Next round's seeds: points with ``f < reseed_val`` (with replacement) + N(0, std^2)."""
    import torch

    pool = p[f < cfg.reseed_val]
    if len(pool) == 0:
        # Nothing near the surface yet: start over from fresh uniform seeds.
        return _uniform_seeds(cfg.seed_points, gen, device)
    idx = torch.randint(len(pool), (cfg.seed_points,), generator=gen).to(device)
    noise = (torch.randn(cfg.seed_points, 3, generator=gen) * std).to(device)
    return pool[idx] + noise


def _final_subset(kept: list[torch.Tensor], cfg: EvaluateConfig) -> np.ndarray:
    """A seeded random subset of ``cfg.target_points`` kept points (all, with a warning, if fewer)."""
    import torch

    pts = torch.cat(kept).numpy().astype(np.float32) if kept else np.zeros((0, 3), np.float32)
    order = np.random.default_rng(cfg.seed).permutation(len(pts))
    if len(pts) < cfg.target_points:
        warnings.warn(f"dense_point_cloud: only {len(pts)} of {cfg.target_points} points after "
                      f"{cfg.max_rounds} rounds (raise evaluate.max_rounds or check the UDF)",
                      RuntimeWarning, stacklevel=3)
        return pts[order]
    return np.ascontiguousarray(pts[order[:cfg.target_points]])


def to_garment_frame(points_ndc: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """(N, 3) NDC points of a view with 4x4 ``calib`` -> (N, 3) float64 garment-frame points."""
    from anchorudf.geometry.camera import unproject

    p = np.asarray(points_ndc, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"to_garment_frame: expected (N, 3) points, got shape {p.shape}")
    c = np.asarray(calib, dtype=np.float64)
    if c.shape != (4, 4):
        raise ValueError(f"to_garment_frame: expected a 4x4 calib, got shape {c.shape}")
    return unproject(c, p)
