"""Surface samples and training query points with exact unsigned-distance targets.

Frame: the garment frame (bounding-box centre at the origin, largest extent 1, so the
mesh lies in [-0.5, 0.5]^3); all lengths below are in that frame.

Query points of one garment (``SampleConfig``), in this order, so each class is one
contiguous block:

- class 0, ``round(uniform_ratio * n)`` points uniform in the cube
  ``[-UNIFORM_HALF_EXTENT, UNIFORM_HALF_EXTENT]^3`` (the garment box padded by 0.1 on every
  side: it holds the whole garment plus the reach of the widest Gaussian, and most of the
  region that NDC seeds cover at inference);
- class ``i + 1``, the rest split by ``ratios`` (largest remainder), area-weighted surface
  samples plus ``N(0, sigmas[i]^2)`` offsets per axis.

Points are rounded to float32 *before* the targets are computed, so a cache that stores
float32 points holds exactly the points its distances belong to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from anchorudf.config import SampleConfig

#: half side of the cube of the uniform query points (garment frame units).
UNIFORM_HALF_EXTENT = 0.6


def split_counts(total: int, shares: list[float] | np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``shares`` (largest remainder).

    Shares are normalised; ties in the remainders go to the earlier class, so the result
    is deterministic.
    """
    s = np.asarray(shares, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0 or (s < 0).any() or not np.isfinite(s).all() or s.sum() <= 0:
        raise ValueError(f"shares must be non-negative with a positive sum, got {list(s)}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    exact = total * s / s.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = int(total - counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) float64 triangle areas."""
    v = np.asarray(vertices, dtype=np.float64)
    t = v[np.asarray(faces, dtype=np.int64)]
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def surface_samples(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator,
                    pick: Literal["cdf", "choice"] = "cdf") -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform over the surface area: ((n, 3) float64, (n,) int64 face ids).

    A face is picked with probability proportional to its area, then a point uniform in it
    (square-root barycentric map); points are in the frame and units of ``vertices``.
    ``pick`` chooses how the faces are drawn from ``rng``: ``"cdf"`` (the training samples
    and anchors) by the inverse CDF of the cumulative areas, ``"choice"`` (the diversity
    report and the pictures' mesh points) with ``rng.choice(F, n, p=areas / areas.sum())``.
    Both take the same draws from ``rng``, but round the CDF differently (normalised
    probabilities vs. a scaled draw), so a draw right at a CDF step can pick the
    neighbouring face; each caller keeps the one its stored outputs were made with.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    areas = face_areas(v, f)
    total = areas.sum()
    if len(f) == 0 or not np.isfinite(total) or total <= 0:
        raise ValueError("cannot sample a mesh without faces or with zero total area")
    if pick == "cdf":
        cdf = np.cumsum(areas)
        fid = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
        fid = np.minimum(fid, len(f) - 1)
    elif pick == "choice":
        fid = rng.choice(len(f), size=n, p=areas / total)
    else:
        raise ValueError(f"surface_samples: pick must be 'cdf' or 'choice', got {pick!r}")
    r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    t = v[f[fid]]
    pts = ((1 - r1)[:, None] * t[:, 0] + (r1 * (1 - r2))[:, None] * t[:, 1]
           + (r1 * r2)[:, None] * t[:, 2])
    return pts, fid


def class_counts(cfg: "SampleConfig") -> np.ndarray:
    """(1 + len(sigmas),) points per class: [uniform, sigma_0, sigma_1, ...]."""
    n = int(cfg.points_per_garment)
    n_uniform = int(round(n * float(cfg.uniform_ratio)))
    near = split_counts(n - n_uniform, cfg.ratios) if n > n_uniform else np.zeros(len(cfg.sigmas), np.int64)
    return np.concatenate([[n_uniform], near]).astype(np.int64)


def query_points(vertices: np.ndarray, faces: np.ndarray, cfg: "SampleConfig",
                 rng: np.random.Generator, threads: int = 0) -> dict[str, np.ndarray]:
    """Query points of one garment with exact targets (garment frame).

    Returns a dict of ``points`` (N, 3) float64 (float32-representable), ``sigma_index``
    (N,) int8 (0 = uniform, i + 1 = ``cfg.sigmas[i]``; sorted, so classes are contiguous),
    ``udf`` (N,) float64 unsquared distance, ``closest`` (N, 3) float64 closest surface
    point and ``direction`` (N, 3) float64 unit ``(p - q)/|p - q|`` (see
    :func:`anchorudf.geometry.closest.closest_points_full`), with
    ``N = cfg.points_per_garment``.
    """
    from anchorudf.geometry.closest import closest_points_full

    if len(cfg.sigmas) != len(cfg.ratios):
        raise ValueError("sample.ratios: needs one ratio per entry of sample.sigmas")
    counts = class_counts(cfg)
    blocks = [rng.uniform(-UNIFORM_HALF_EXTENT, UNIFORM_HALF_EXTENT, size=(counts[0], 3))]
    surf, _ = surface_samples(vertices, faces, int(counts[1:].sum()), rng)
    sigma = np.repeat(np.asarray(cfg.sigmas, dtype=np.float64), counts[1:])
    blocks.append(surf + rng.normal(0.0, 1.0, size=surf.shape) * sigma[:, None])
    points = np.concatenate(blocks).astype(np.float32).astype(np.float64)
    sigma_index = np.repeat(np.arange(len(counts), dtype=np.int8), counts)
    udf, closest, _, direction = closest_points_full(vertices, faces, points, threads=threads)
    return {"points": points, "sigma_index": sigma_index, "udf": udf, "closest": closest,
            "direction": direction}
