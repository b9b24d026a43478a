"""Planning of the embedded default garment set: every parameter of every garment.

:func:`plan_garments` draws every parameter of every garment from one seed (body shape,
pose, fit, lengths, flare, neckline, waistband, folds, drape, colour pattern) into
:class:`GarmentSpec` records; :func:`anchorudf.data.anny.garments.generate_garment` turns
one spec into a mesh. Lengths are in metres (anny frame) unless a field says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anchorudf.config import CATEGORIES
from anchorudf.data.anny.body import POSES

TOPS = ("tshirt", "longsleeve", "longcoat")
BOTTOMS = ("trousers", "shorts", "skirt")
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "gradient")


@dataclass(frozen=True)
class GarmentSpec:
    """Everything needed to regenerate one garment (lengths in metres unless noted)."""

    garment_id: str  # e.g. "tshirt_0007"
    category: str  # one of anchorudf.config.CATEGORIES
    body_id: str  # body instance; a top and a bottom share one body
    split: str  # "train" | "test" (by body)
    seed: int  # per-garment seed of the noise fields (wrinkle phases and directions)
    phenotype: tuple[float, ...]  # anny gender, age, muscle, weight, height, proportions in [0, 1]
    pose: str  # one of anny.body.POSES
    pose_strength: float  # scale of the pose's angles (1 = nominal)
    pose_jitter: tuple[float, ...]  # 6 small extra angles in degrees (see anny.body.pose_rotations)
    fit: float  # ease: offset of the fabric from the tights, metres (tight 0.004 .. loose 0.06)
    length: float  # hem/leg length in [0, 1]: 0 = shortest, 1 = longest of the category
    sleeve: float  # sleeve length in [0, 1] (tops), 0 = shortest of the category
    flare: float  # widening towards the hem in [0, 1] (trousers, skirt, coat)
    neck_depth: float  # front neckline dip, metres
    neck_width: float  # neckline radius around the neck, metres
    neck_shape: float  # 0 = round/scoop .. 1 = V
    rise: float  # waist height of bottoms in [0, 1] (low .. high)
    waistband: float  # waistband height, metres
    hem_tilt: float  # hem height difference back minus front, metres
    wrinkle_amp: float  # amplitude of the low-frequency wrinkle field, metres
    wrinkle_scale: float  # wavelength of the wrinkle field, metres
    fold_amp: float  # amplitude of ring folds (cuffs, knees) and skirt folds, metres
    fold_count: int  # number of vertical folds around a skirt
    drape: float  # asymmetric drape: sideways hang of the lower garment, metres
    pattern: str  # one of PATTERNS
    color_a: tuple[int, int, int]  # RGB
    color_b: tuple[int, int, int]  # RGB of stripes/checks/gradient end
    pattern_scale: float  # stripe/check period, metres


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _body_params(rng: np.random.Generator) -> dict:
    """Adult anny phenotypes (age >= 0.62: young adult .. old) and a pose."""
    phen = (rng.uniform(0, 1), rng.uniform(0.62, 1.0), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.95),
            rng.uniform(0.2, 1.0), rng.uniform(0.1, 0.9))
    pose = POSES[int(rng.integers(len(POSES)))]
    jitter = rng.normal(0, [3, 4, 3, 8, 5, 5])
    jitter[4:] = np.abs(jitter[4:])  # arms only spread outwards: no arm pressed into the chest
    jitter = tuple(float(x) for x in jitter)
    return {"phenotype": tuple(round(float(x), 6) for x in phen), "pose": pose,
            "pose_strength": round(float(rng.uniform(0.6, 1.25)), 6),
            "pose_jitter": tuple(round(x, 6) for x in jitter)}


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.1, 0.85), rng.uniform(0.2, 0.95)
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def _garment_params(rng: np.random.Generator) -> dict:
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 6)  # noqa: E731
    return {"fit": u(0.004, 0.06), "length": u(0, 1), "sleeve": u(0, 1), "flare": u(0, 1),
            "neck_depth": u(0.0, 0.16), "neck_width": u(0.06, 0.11), "neck_shape": u(0, 1),
            "rise": u(0, 1), "waistband": u(0.01, 0.06), "hem_tilt": u(-0.03, 0.08),
            "wrinkle_amp": u(0.002, 0.008), "wrinkle_scale": u(0.07, 0.25),
            "fold_amp": u(0.0, 0.025), "fold_count": int(rng.integers(5, 15)),
            "drape": u(-0.06, 0.06), "pattern": PATTERNS[int(rng.integers(len(PATTERNS)))],
            "color_a": _colour(rng), "color_b": _colour(rng), "pattern_scale": u(0.05, 0.14)}


def plan_garments(count: int, categories: list[str], seed: int, test_fraction: float) -> list[GarmentSpec]:
    """Plan ``count`` garments, categories round-robin, a top and a bottom per body.

    Garment ``i`` has category ``categories[i % len(categories)]`` and id
    ``f"{category}_{i:04d}"``; it is worn by the first body that has no garment of its
    kind (top/bottom) yet. The split is by body: first, for each category without a test
    garment, one of its bodies becomes test if the category keeps a train body; then
    random bodies until ``round(test_fraction * bodies)`` (at least one, never all) are
    test. Deterministic in ``seed``.
    """
    if count < 1:
        raise ValueError(f"garments.count must be >= 1, got {count}")
    bad = [c for c in categories if c not in CATEGORIES]
    if not categories or bad:
        raise ValueError(f"garments.categories: unknown {bad or 'empty list'}; expected some of {CATEGORIES}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"garments.test_fraction must be in [0, 1), got {test_fraction}")
    cats = [categories[i % len(categories)] for i in range(count)]
    bodies: list[dict] = []  # {"top": i or None, "bottom": i or None}
    body_of = []
    for i, c in enumerate(cats):
        kind = "top" if c in TOPS else "bottom"
        b = next((k for k, body in enumerate(bodies) if body[kind] is None), None)
        if b is None:
            bodies.append({"top": None, "bottom": None})
            b = len(bodies) - 1
        bodies[b][kind] = i
        body_of.append(b)
    test = _test_bodies(cats, body_of, len(bodies), seed, test_fraction)
    specs = []
    for i, c in enumerate(cats):
        b = body_of[i]
        specs.append(GarmentSpec(
            garment_id=f"{c}_{i:04d}", category=c, body_id=f"body_{b:04d}",
            split="test" if b in test else "train",
            seed=int(np.random.SeedSequence([int(seed), 2, i]).generate_state(1)[0]),
            **_body_params(_rng(seed, 1, b)), **_garment_params(_rng(seed, 3, i))))
    return specs


def _test_bodies(cats: list[str], body_of: list[int], n_bodies: int, seed: int, fraction: float) -> set[int]:
    rng = _rng(seed, 4)
    n_test = int(round(fraction * n_bodies))
    if fraction > 0 and n_bodies >= 2:
        n_test = min(max(n_test, 1), n_bodies - 1)
    test: set[int] = set()
    order = [int(b) for b in rng.permutation(n_bodies)]
    # Coverage first: a test body per category, as long as the category keeps a train body.
    for c in dict.fromkeys(cats):
        owners = sorted({body_of[i] for i, x in enumerate(cats) if x == c}, key=order.index)
        if fraction > 0 and len(owners) >= 2 and not test.intersection(owners) and len(test) < n_bodies - 1:
            test.add(owners[0])
    for b in order:
        if len(test) >= n_test:
            break
        test.add(b)
    return test
