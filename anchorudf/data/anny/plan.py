"""Planning of the embedded default garment set: every parameter of every garment.

:func:`plan_garments` draws every parameter of every garment from one seed (body shape,
pose, cut variant, fit, lengths, flare, neckline, waistband, folds, drape, appearance) into
:class:`GarmentSpec` records, and plans the style-shifted evaluation garments (split
``shifted``) from ranges the training garments never draw from;
:func:`anchorudf.data.anny.garments.generate_garment` turns one spec into a mesh.
Lengths are in metres (anny frame) unless a field says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anchorudf.config import GENERATOR_CATEGORIES
from anchorudf.data.anny.body import POSES, SHIFTED_POSES

TOPS = ("tshirt", "longsleeve", "longcoat", "dress", "vest", "cape", "hoodie")  # a dress takes a body's top slot
BOTTOMS = ("trousers", "shorts", "skirt")
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "gradient")
#: Per-garment appearance, drawn with equal odds for train/test garments: ``grey`` is
#: untextured cloth (the renderer's fallback grey, what an uncoloured user mesh looks
#: like, with a small brightness change), ``plain`` one random colour, ``pattern`` a
#: two-colour pattern (stripes, checks, gradient). Shifted garments are all ``grey``.
APPEARANCES = ("grey", "plain", "pattern")
GREY_RGB = (158, 153, 148)  # anchorudf.render.views.FALLBACK_RGB in 0-255
#: Cut variants within each category (see :mod:`anchorudf.data.anny.garments`).
STYLES = {"tshirt": ("regular", "tank"), "longsleeve": ("regular",), "longcoat": ("regular", "a_line"),
          "trousers": ("regular", "wide", "slim"), "shorts": ("regular", "wide"),
          "skirt": ("straight", "a_line", "pencil", "pleated"), "dress": ("regular", "a_line"),
          "vest": ("regular",), "cape": ("regular",), "hoodie": ("regular",)}
SPLITS = ("train", "test", "shifted")
#: ``length`` of the shifted garments, outside the training range [0, 1]: cropped tops,
#: ankle-length coats, capri trousers, knee-length shorts, micro or floor-length skirts,
#: floor-length dresses, cropped vests, knee-length capes, cropped hoodies.
SHIFTED_LENGTHS = {"tshirt": ((-0.4, -0.2),), "longsleeve": ((-0.4, -0.2),), "longcoat": ((1.1, 1.3),),
                   "trousers": ((-0.5, -0.25),), "shorts": ((1.12, 1.3),), "skirt": ((-0.2, -0.1), (1.04, 1.1)),
                   "dress": ((1.05, 1.12),), "vest": ((-0.4, -0.2),), "cape": ((1.1, 1.3),),
                   "hoodie": ((-0.4, -0.2),)}
#: ``fit`` (ease, metres): training garments draw from FIT_RANGE; shifted ones from beyond
#: it on either side (skin-tight or very loose).
FIT_RANGE = (0.003, 0.07)
SHIFTED_FITS = ((0.0012, 0.0025), (0.075, 0.09))


@dataclass(frozen=True)
class GarmentSpec:
    """Everything needed to regenerate one garment (lengths in metres unless noted)."""

    garment_id: str  # e.g. "tshirt_0007"
    category: str  # one of anchorudf.config.GENERATOR_CATEGORIES
    body_id: str  # body instance; a top and a bottom share one body
    split: str  # "train" | "test" (by body) | "shifted" (style-shifted evaluation garments)
    seed: int  # per-garment seed of the noise fields (wrinkle phases and directions)
    phenotype: tuple[float, ...]  # anny gender, age, muscle, weight, height, proportions in [0, 1]
    pose: str  # one of anny.body.POSES (SHIFTED_POSES for split "shifted")
    pose_strength: float  # scale of the pose's angles (1 = nominal)
    pose_jitter: tuple[float, ...]  # 14 small extra angles in degrees (see anny.body.pose_rotations)
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
    style: str = "regular"  # cut variant, one of STYLES[category]
    appearance: str = "pattern"  # one of APPEARANCES (how color_a/color_b/pattern were drawn)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _body_params(rng: np.random.Generator, shifted: bool = False, pose_index: int | None = None) -> dict:
    """Adult anny phenotypes (age >= 0.62: young adult .. old) and a pose with 14 jitter
    angles (see anny.body.pose_rotations): random, or ``poses[pose_index % len(poses)]``;
    the poses are ``SHIFTED_POSES`` (never drawn for training) when ``shifted``."""
    phen = (rng.uniform(0, 1), rng.uniform(0.62, 1.0), rng.uniform(0.05, 0.95), rng.uniform(0.02, 0.98),
            rng.uniform(0.1, 1.0), rng.uniform(0.05, 0.95))
    poses = SHIFTED_POSES if shifted else POSES
    pose = poses[int(rng.integers(len(poses)))] if pose_index is None else poses[pose_index % len(poses)]
    jitter = rng.normal(0, [4, 6, 4, 8, 6, 6, 9, 9, 10, 10, 12, 12, 14, 14])
    # Arms only spread outwards (no arm pressed into the chest); knees and elbows bend one way.
    jitter[[4, 5, 8, 9, 12, 13]] = np.abs(jitter[[4, 5, 8, 9, 12, 13]])
    jitter = tuple(float(x) for x in jitter)
    strength = rng.uniform(0.9, 1.1) if shifted else rng.uniform(0.55, 1.3)
    return {"phenotype": tuple(round(float(x), 6) for x in phen), "pose": pose,
            "pose_strength": round(float(strength), 6),
            "pose_jitter": tuple(round(x, 6) for x in jitter)}


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.1, 0.85), rng.uniform(0.2, 0.95)
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def _garment_params(rng: np.random.Generator, category: str, shifted: bool = False) -> dict:
    u = lambda lo, hi: round(float(rng.uniform(lo, hi)), 6)  # noqa: E731
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    style = pick(STYLES[category])
    out = {"fit": u(*FIT_RANGE), "length": u(0, 1), "sleeve": u(0, 1), "flare": u(0, 1),
           "neck_depth": u(0.0, 0.16), "neck_width": u(0.06, 0.11), "neck_shape": u(0, 1),
           "rise": u(0, 1), "waistband": u(0.01, 0.06), "hem_tilt": u(-0.03, 0.08),
           "wrinkle_amp": u(0.002, 0.009), "wrinkle_scale": u(0.06, 0.28),
           "fold_amp": u(0.0, 0.025), "fold_count": int(rng.integers(5, 15)),
           "drape": u(-0.06, 0.06), "pattern": PATTERNS[1 + int(rng.integers(len(PATTERNS) - 1))],
           "color_a": _colour(rng), "color_b": _colour(rng), "pattern_scale": u(0.05, 0.14),
           "style": style, "appearance": pick(APPEARANCES)}
    grey = round(float(rng.uniform(0.8, 1.12)), 6)  # drawn always: the stream stays aligned
    # Cut variants: flare / fit / folds within the style's range.
    if style in ("a_line", "wide"):
        out["flare"] = u(0.55, 1.0)
    elif style == "pencil":
        out["flare"], out["fold_amp"], out["fit"] = 0.0, u(0.0, 0.006), u(0.003, 0.02)
    elif style == "pleated":
        out["fold_count"], out["fold_amp"] = int(rng.integers(16, 30)), u(0.008, 0.02)
    elif style == "tank":  # a loose sleeveless top balloons away from the body
        out["fit"] = u(0.003, 0.03)
    elif style == "slim":
        out["fit"], out["flare"] = u(0.003, 0.012), 0.0
    elif style in ("straight", "regular") and category in ("skirt", "longcoat", "trousers"):
        out["flare"] = u(0.0, 0.55)
    if shifted:  # outside the training ranges: length, fit, untextured cloth
        lo, hi = pick(SHIFTED_LENGTHS[category])
        out["length"], out["fit"] = u(lo, hi), u(*pick(SHIFTED_FITS))
        out["appearance"] = "grey"
        grey = 1.0
    if out["appearance"] == "grey":
        out["pattern"], out["color_a"] = "solid", tuple(int(min(255, round(c * grey))) for c in GREY_RGB)
        out["color_b"] = out["color_a"]
    elif out["appearance"] == "plain":
        out["pattern"], out["color_b"] = "solid", out["color_a"]
    if category == "hoodie":  # a round, shallow neckline to sew the hood on (drawn last: no other stream moves)
        out["neck_depth"], out["neck_shape"] = u(0.0, 0.03), u(0.0, 0.3)
    return out


def plan_garments(count: int, categories: list[str], seed: int, test_fraction: float,
                  shifted_count: int = 0, extra_train: int = 0,
                  extra_categories: list[str] | None = None) -> list[GarmentSpec]:
    """Plan ``count`` garments, categories round-robin, a top and a bottom per body, then
    ``shifted_count`` style-shifted evaluation garments, then ``extra_train`` more
    training garments.

    Garment ``i`` has category ``categories[i % len(categories)]`` and id
    ``f"{category}_{i:04d}"``; it is worn by the first body that has no garment of its
    kind (top/bottom) yet. The split is by body: first, for each category without a test
    garment, one of its bodies becomes test if the category keeps a train body; then
    random bodies until ``round(test_fraction * bodies)`` (at least one, never all) are
    test. The shifted garments come after (ids go on from ``count``, categories
    round-robin again) on bodies of their own, with split ``shifted``: poses of
    ``SHIFTED_POSES``, lengths in ``SHIFTED_LENGTHS`` and fits in ``SHIFTED_FITS``
    (all outside the ranges the others draw from) and untextured grey cloth. The extra
    training garments come last (ids go on from ``count + shifted_count``), drawn from the
    same ranges as the first ``count`` on bodies of their own, all split ``train``: they
    widen the training world without changing a test or shifted garment. Their categories
    are ``extra_categories`` round-robin (None or empty: ``categories``), so the training
    world can hold cuts the test and shifted sets do not.
    Deterministic in ``seed``; the first ``count`` specs do not depend on ``shifted_count``
    or ``extra_train``, the shifted ones not on ``extra_train``.
    """
    if count < 1:
        raise ValueError(f"garments.count must be >= 1, got {count}")
    if shifted_count < 0:
        raise ValueError(f"garments.shifted_count must be >= 0, got {shifted_count}")
    if extra_train < 0:
        raise ValueError(f"garments.extra_train must be >= 0, got {extra_train}")
    extra_categories = list(extra_categories or categories)
    for key, cats in (("categories", categories), ("extra_categories", extra_categories)):
        bad = [c for c in cats if c not in GENERATOR_CATEGORIES]
        if not cats or bad:
            raise ValueError(f"garments.{key}: unknown {bad or 'empty list'}; expected some of {GENERATOR_CATEGORIES}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"garments.test_fraction must be in [0, 1), got {test_fraction}")
    cats = [categories[i % len(categories)] for i in range(count)]
    body_of, n_bodies = _assign_bodies(cats)
    test = _test_bodies(cats, body_of, n_bodies, seed, test_fraction)
    specs = []
    for i, c in enumerate(cats):
        b = body_of[i]
        specs.append(GarmentSpec(
            garment_id=f"{c}_{i:04d}", category=c, body_id=f"body_{b:04d}",
            split="test" if b in test else "train",
            seed=int(np.random.SeedSequence([int(seed), 2, i]).generate_state(1)[0]),
            **_body_params(_rng(seed, 1, b)), **_garment_params(_rng(seed, 3, i), c)))
    shifted_cats = [categories[k % len(categories)] for k in range(shifted_count)]
    shifted_body, n_shifted_bodies = _assign_bodies(shifted_cats)
    for k, c in enumerate(shifted_cats):
        i, b = count + k, n_bodies + shifted_body[k]
        specs.append(GarmentSpec(
            garment_id=f"{c}_{i:04d}", category=c, body_id=f"body_{b:04d}", split="shifted",
            seed=int(np.random.SeedSequence([int(seed), 7, k]).generate_state(1)[0]),
            **_body_params(_rng(seed, 5, shifted_body[k]), shifted=True, pose_index=shifted_body[k]),
            **_garment_params(_rng(seed, 6, k), c, shifted=True)))
    extra_cats = [extra_categories[k % len(extra_categories)] for k in range(extra_train)]
    extra_body, _ = _assign_bodies(extra_cats)
    first_body = n_bodies + n_shifted_bodies
    for k, c in enumerate(extra_cats):
        i, b = count + shifted_count + k, first_body + extra_body[k]
        specs.append(GarmentSpec(
            garment_id=f"{c}_{i:04d}", category=c, body_id=f"body_{b:04d}", split="train",
            seed=int(np.random.SeedSequence([int(seed), 8, k]).generate_state(1)[0]),
            **_body_params(_rng(seed, 9, extra_body[k])), **_garment_params(_rng(seed, 10, k), c)))
    return specs


def _assign_bodies(cats: list[str]) -> tuple[list[int], int]:
    """Body index of each garment (a top and a bottom per body) and the number of bodies."""
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
    return body_of, len(bodies)


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
