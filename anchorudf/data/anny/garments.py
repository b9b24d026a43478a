"""The embedded default garment set: open garment surfaces generated from anny bodies.

Six categories in the default set (``anchorudf.config.CATEGORIES``): tops (tshirt,
longsleeve, longcoat) and bottoms (trousers, shorts, skirt); four more on request
(``garments.categories``, ``anchorudf.config.GENERATOR_CATEGORIES``): dresses (a fitted
sleeveless to elbow-sleeved bodice with a skirt swept from the hips, mini to floor length),
vests (sleeveless, open down the front: one loop runs round the neck, the front edges
and the hem), capes (ponchos: one sheet over the shoulders and arms with a neck hole,
2 loops) and hoodies (long sleeves and a hood over the head sewn onto the neckline:
4 loops, the face opening, two cuffs and the hem). With cut variants (``GarmentSpec.style``, see
:data:`anchorudf.data.anny.plan.STYLES`): tank tops (sleeveless), A-line coats, wide and
slim trousers, wide shorts, straight, A-line, pencil (tight, no flare, hardly any folds)
and pleated (knife pleats) skirts.
:func:`anchorudf.data.anny.plan.plan_garments` draws every parameter of every garment
from one seed into :class:`GarmentSpec` records; :func:`generate_garment` turns one spec
into a mesh, deterministically (same spec, same bytes).

Construction (anny frame: metres, +Z up, front -Y): tops, trousers and shorts are cut out
of MakeHuman's ``helper-tights`` bodysuit with smooth scalar fields evaluated on the rest
(A-pose) body (neckline, hem, sleeve and leg cuts), then offset outwards by the fit,
smoothed, wrinkled and pushed out of the body. Skirts, and the lower part of long coats,
are swept down from a waist (or the coat's hip-level hem) around the support function of
the posed legs, so they bridge between the legs like fabric. The returned mesh is in the
garment orientation: metres, +Y up, the front facing +Z, i.e. anny (x, y, z) -> (x, z, -y).
It is not normalised (the garments stage centres and scales it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anchorudf.config import GENERATOR_CATEGORIES
from anchorudf.data.anny import body as ab
from anchorudf.data.anny.plan import PATTERNS, TOPS, GarmentSpec
from anchorudf.geometry import surface as sf

EXPECTED_LOOPS = {"tshirt": 4, "longsleeve": 4, "longcoat": 4, "trousers": 3, "shorts": 3, "skirt": 2,
                  "dress": 4, "vest": 3, "cape": 2, "hoodie": 4}
SWEPT_TOPS = ("longcoat", "dress")  # a top cut at the hips, its skirt swept down from there
_MARGIN = 0.004  # metres kept between a pushed-out garment vertex and the skin

PHENOTYPES = ("gender", "age", "muscle", "weight", "height", "proportions")
_ANNY_TO_GARMENT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # p_out = p @ this
# Columns of the vertex data rows carried through subdivision and clipping.
_P, _R, _W = slice(0, 3), slice(3, 6), slice(6, 10)  # posed xyz, rest xyz, arm L/R + leg L/R weights


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def posed_body(spec: GarmentSpec, cache_dir: Path) -> ab.PosedBody:
    """The shaped and posed anny body a garment is made on (anny frame, metres)."""
    assets = ab.body_assets(cache_dir)
    if len(spec.phenotype) != len(PHENOTYPES):
        raise ValueError(f"{spec.garment_id}: phenotype needs {len(PHENOTYPES)} values {PHENOTYPES}")
    return ab.pose_body(assets, dict(zip(PHENOTYPES, spec.phenotype)), spec.pose,
                        spec.pose_strength, spec.pose_jitter)


def garment_body(spec: GarmentSpec, cache_dir: Path):
    """The body of ``spec`` as a watertight trimesh in the garment orientation (metres,
    +Y up, front +Z): the reference for "no garment vertex inside the body"."""
    import trimesh

    body = posed_body(spec, cache_dir)
    return trimesh.Trimesh(body.vertices @ _ANNY_TO_GARMENT, body.faces, process=False)


def generate_garment(spec: GarmentSpec, cache_dir: Path):
    """One garment as a ``trimesh.Trimesh``: metres, +Y up, front +Z, not normalised.

    An open, connected surface with ``EXPECTED_LOOPS[category]`` boundary loops, consistent
    winding (normals outwards), no vertex inside its body, and per-vertex RGBA colours.
    Deterministic: the same spec gives the same bytes. Raises ``ValueError`` naming the
    garment when the spec is invalid or the surface fails these checks.
    """
    import trimesh

    from anchorudf.geometry.topology import boundary_loops

    if spec.category not in GENERATOR_CATEGORIES:
        raise ValueError(f"{spec.garment_id}: unknown category {spec.category!r}")
    assets = ab.body_assets(cache_dir)
    body = posed_body(spec, cache_dir)
    body_mesh = trimesh.Trimesh(body.vertices, body.faces, process=False)
    rng = np.random.default_rng(spec.seed)
    if spec.category == "skirt":
        verts, faces = _skirt(spec, body, assets, rng)
    elif spec.category == "cape":
        verts, faces = _cape(spec, body, assets, rng)
    else:
        faces, data = _tights_piece(spec, body, assets)
        verts = _dress(spec, body, body_mesh, faces, data, rng)
        if spec.category in SWEPT_TOPS:
            verts, faces = _coat_skirt(spec, body, assets, verts, faces, rng)
        elif spec.category == "hoodie":
            verts, faces = _hood(spec, body, assets, verts, faces, rng)
    verts, left = sf.push_out(verts, body_mesh, _MARGIN)
    if left:
        raise ValueError(f"{spec.garment_id}: {left} vertices stay inside the body after push-out")
    loops = boundary_loops(faces)
    if loops != EXPECTED_LOOPS[spec.category]:
        raise ValueError(f"{spec.garment_id}: {loops} boundary loops, expected {EXPECTED_LOOPS[spec.category]}")
    colours = _colours(spec, verts)
    return trimesh.Trimesh(verts @ _ANNY_TO_GARMENT, faces, vertex_colors=colours, process=False)


def _landmarks(j: dict) -> dict:
    """Heights (z) of the body's landmarks from a joints dict (rest or posed)."""
    crotch = 0.5 * (j["upperleg01.L"][2] + j["upperleg01.R"][2])
    neck = j["neck01"][2]
    return {"crotch": crotch, "neck": neck, "torso": neck - crotch,
            "leg": crotch - 0.5 * (j["foot.L"][2] + j["foot.R"][2])}


def _limb_s(rest: np.ndarray, j: dict, side: str, arm: bool) -> np.ndarray:
    names = ("upperarm01", "lowerarm01", "wrist") if arm else ("upperleg01", "lowerleg01", "foot")
    a, b, c = (j[f"{n}.{side}"] for n in names)
    return ab.limb_coordinate(rest, a, b, c)


def _limb_cut(data: np.ndarray, j: dict, side: str, arm: bool, length: float) -> np.ndarray:
    """Field <= 0 on the part of a limb above ``length`` (limb units: 1 = elbow/knee,
    2 = wrist/ankle) and on the trunk; blended by the skinning weight of the limb so the
    zero level stays a smooth ring (slanted near the armpit/crotch like a real seam)."""
    w = data[:, 6 + (0 if arm else 2) + (0 if side == "L" else 1)]
    return w * (_limb_s(data[:, _R], j, side, arm) - length) - 0.3 * (1.0 - w)


def _tights_piece(spec: GarmentSpec, body: ab.PosedBody, assets: ab.BodyAssets):
    """Cut the (once subdivided) tights into the garment's piece: (faces, data rows)."""
    quads = assets.tights_quads
    used, inv = np.unique(quads, return_inverse=True)
    g = assets.groups
    data = np.concatenate([body.vertices[used], body.rest[used],
                           np.stack([g["arm_L"], g["arm_R"], g["leg_L"], g["leg_R"]], 1)[used]], 1)
    quads, data = sf.subdivide_quads(inv.reshape(-1, 4), data)
    faces = sf.quads_to_triangles(quads)
    j, lm = body.joints_rest, _landmarks(body.joints_rest)
    rest = lambda: data[:, _R]  # noqa: E731  (data changes after every cut)
    if spec.category in TOPS:
        r = rest()
        nx, ny = j["neck01"][0], j["neck01"][1]
        rho = np.hypot(r[:, 0] - nx, r[:, 1] - ny)
        front = _smoothstep((ny - r[:, 1]) / 0.05)
        q = 1.0 + 2.0 * (1.0 - spec.neck_shape)  # 1: V-neck, 3: round/scoop
        dip = np.clip(1.0 - (np.abs(r[:, 0] - nx) / (0.9 * spec.neck_width)) ** q, 0.0, 1.0)
        cut = lm["neck"] - 0.01 + 1.5 * (rho - spec.neck_width) - spec.neck_depth * dip * front
        faces, data = sf.clip_mesh(faces, data, r[:, 2] - cut)
        if spec.category == "vest":  # open down the front: a slit joins the neckline to the hem
            r = rest()
            front = _smoothstep((ny - r[:, 1]) / 0.04)
            gap = 0.012 + 0.025 * spec.neck_depth  # half-width of the opening: 1.2-1.6 cm
            faces, data = sf.clip_mesh(faces, data, (gap - np.abs(r[:, 0] - nx)) * front - 0.05 * (1.0 - front))
        lo, hi = _sleeve_range(spec.category, spec.style)
        for side in "LR":
            faces, data = sf.clip_mesh(faces, data, _limb_cut(data, j, side, True, lo + (hi - lo) * spec.sleeve))
        w_arm = data[:, 6] + data[:, 7]
        if spec.category in SWEPT_TOPS:  # flat hip-level hem in the posed body; the sweep goes on from it
            z, hem = data[:, 2], _landmarks(body.joints)["crotch"] + 0.05
        else:
            z = data[:, 5]
            side = np.tanh(data[:, 4] / 0.1)  # -1 front .. +1 back
            hem = lm["crotch"] + lm["torso"] * (0.40 - 0.33 * spec.length) - 0.5 * spec.hem_tilt * side
            hem = np.maximum(hem, lm["crotch"] + 0.04)
        faces, data = sf.clip_mesh(faces, data, (hem - z) * (1.0 - w_arm) - 0.05 * w_arm)
    else:
        r = rest()
        back = np.tanh(r[:, 1] / 0.1)
        waist = lm["crotch"] + lm["torso"] * (0.17 + 0.25 * spec.rise) + 0.015 * back
        faces, data = sf.clip_mesh(faces, data, r[:, 2] - waist)
        lo, hi = (1.45, 1.95) if spec.category == "trousers" else (0.2, 1.05)
        for side in "LR":
            faces, data = sf.clip_mesh(faces, data, _limb_cut(data, j, side, False, lo + (hi - lo) * spec.length))
    return sf.largest_piece(faces, data)


def _sleeve_range(category: str, style: str = "regular") -> tuple[float, float]:
    """Sleeve cut (limb units: 1 = elbow, 2 = wrist) at sleeve = 0 and 1."""
    if style == "tank" or category == "vest":  # sleeveless: cut at the shoulder
        return (0.0, 0.12)
    return {"tshirt": (0.2, 1.0), "longsleeve": (1.35, 1.97), "longcoat": (1.6, 1.97), "dress": (0.0, 1.0),
            "hoodie": (1.35, 1.97)}[category]


def _wrinkle_field(points: np.ndarray, spec: GarmentSpec, rng: np.random.Generator, waves: int = 6) -> np.ndarray:
    """Smooth random field in [-1, 1]-ish: a sum of plane waves of wavelength ~wrinkle_scale."""
    dirs = rng.normal(size=(waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    k = 2 * np.pi / (spec.wrinkle_scale * rng.uniform(0.7, 1.4, waves))
    phase = rng.uniform(0, 2 * np.pi, waves)
    return np.sin(points @ (dirs * k[:, None]).T + phase).sum(axis=1) / np.sqrt(waves / 2)


def _dress(spec: GarmentSpec, body: ab.PosedBody, body_mesh, faces: np.ndarray, data: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Offset the tights piece by the fit, smooth it, add wrinkles, folds and drape."""
    pos, rest, w = data[:, _P], data[:, _R], data[:, _W]
    j, lm = body.joints_rest, _landmarks(body.joints_rest)
    w_arm, w_leg = w[:, 0] + w[:, 1], w[:, 2] + w[:, 3]
    ease = spec.fit * (1.0 - 0.4 * w_arm)
    s_leg = np.where(w[:, 2] >= w[:, 3], _limb_s(rest, j, "L", False), _limb_s(rest, j, "R", False))
    s_arm = np.where(w[:, 0] >= w[:, 1], _limb_s(rest, j, "L", True), _limb_s(rest, j, "R", True))
    if spec.category in ("trousers", "shorts"):
        if spec.style == "wide":  # wide legs: ease grows from the upper thigh down
            ease = ease + spec.flare * (0.08 if spec.category == "trousers" else 0.05) \
                * _smoothstep((s_leg - 0.05) / 0.8) * w_leg
        else:  # bootcut/flare below the knee (trousers), a little widening (shorts)
            ease = ease + spec.flare * (0.09 if spec.category == "trousers" else 0.03) \
                * _smoothstep((s_leg - (0.9 if spec.category == "trousers" else 0.1)) / 0.9) * w_leg
        top = rest[:, 2].max()
        ease = np.where(rest[:, 2] > top - spec.waistband, 0.002, ease)  # elastic waistband
    pos = pos + sf.vertex_normals(pos, faces) * ease[:, None]
    op = sf.smoothing_operator(faces, len(pos))
    pos = sf.taubin(pos, op, 3 + int(spec.fit * 250))
    pos, _ = sf.push_out(pos, body_mesh, _MARGIN)  # smoothing pulls fabric into creases
    normal = sf.vertex_normals(pos, faces)
    looseness = 0.5 + spec.fit / 0.06
    disp = spec.wrinkle_amp * looseness * _wrinkle_field(rest, spec, rng)
    # Ring folds where fabric bunches: at cuffs, elbows and knees.
    s, cuff = (s_arm, w_arm) if spec.category in TOPS else (s_leg, w_leg)
    end = s[cuff > 0.5].max() if (cuff > 0.5).any() else 0.0
    bunch = 0.6 * _smoothstep(1.0 - (end - s) / 0.4) * (end > 1.4) + 0.3 * _smoothstep(1.0 - np.abs(s - 1.0) / 0.2)
    disp += spec.fold_amp * cuff * bunch * np.sin(2 * np.pi * s / rng.uniform(0.15, 0.25) + rng.uniform(0, 6.3))
    pos = pos + normal * disp[:, None]
    # Asymmetric drape: the lower garment hangs to one side.
    if spec.category in TOPS:
        chest = lm["crotch"] + 0.7 * lm["torso"]
        hang = _smoothstep((chest - rest[:, 2]) / (0.6 * lm["torso"])) * (1.0 - w_arm)
    else:
        hang = _smoothstep((s_leg - 0.5) / 1.5) * w_leg
    pos[:, 0] += spec.drape * hang
    return sf.taubin(pos, op, 2)


def _sweep(spec: GarmentSpec, ring: np.ndarray, theta: np.ndarray, centre: np.ndarray, support: ab.BodySupport,
           z_hem: float, rng: np.random.Generator, band_top: float) -> tuple[np.ndarray, np.ndarray]:
    """Hang fabric down from ``ring`` (N, 3) to a hem near ``z_hem``.

    The rows below the ring lie at the increasing angles ``theta`` (N,) around ``centre``
    (the ring's own angles, or a monotone version of them); the first rows blend from the
    ring's positions. Returns ((K+1)*N, 3) vertices (the ring first) and faces oriented
    outwards. ``band_top``: height above which no folds are added (waistband).
    """
    n = len(ring)
    z0 = ring[:, 2]
    back = np.sin(theta)  # +1 at the back (+Y)
    th_d = rng.uniform(0, 2 * np.pi)
    hem = z_hem - 0.5 * spec.hem_tilt * back - 0.5 * abs(spec.drape) * np.cos(theta - th_d) \
        + 0.01 * np.sin(3 * theta + rng.uniform(0, 6.3))
    rows = max(4, int(np.ceil((z0 - hem).max() / 0.012)))
    v = np.linspace(0, 1, rows + 1)[:, None]  # (K+1, 1)
    z = z0[None] - v * (z0 - hem)[None]  # (K+1, N)
    th = np.broadcast_to(theta, z.shape)
    h = support(z.ravel(), th.ravel()).reshape(z.shape)
    ease = 0.006 + 0.6 * spec.fit
    r = np.hypot(ring[:, 0] - centre[0], ring[:, 1] - centre[1])[None].repeat(rows + 1, 0)
    for k in range(1, rows + 1):
        r[k] = np.maximum(r[k - 1], h[k] + ease)
    drop = z0[None] - z
    folds = rng.uniform(0.3, 1.0) * np.cos(spec.fold_count * theta + rng.uniform(0, 6.3)) \
        + rng.uniform(0.2, 0.6) * np.cos((spec.fold_count + 3) * theta + rng.uniform(0, 6.3))
    if spec.style == "pleated":  # knife pleats: a sawtooth around the hem instead of soft waves
        folds = 1.6 * (np.mod(spec.fold_count * theta / (2 * np.pi), 1.0) - 0.5)
    amp = (spec.fold_amp + 0.03 * spec.flare) * v ** 0.8 * (z < band_top)
    r = r + 0.45 * spec.flare * drop + amp * folds[None] + spec.drape * v ** 2 * np.cos(theta - th_d)[None]
    r[1:] = _smooth_rows(r[1:])
    r[1:] = np.maximum(r[1:], h[1:] + _MARGIN + 0.002)
    pts = _rows_from_ring(ring, centre, r, th, z)
    return pts.reshape(-1, 3), sf.cylinder_grid_faces(rows, n)


def _rows_from_ring(ring: np.ndarray, centre: np.ndarray, r: np.ndarray, th: np.ndarray,
                    z: np.ndarray) -> np.ndarray:
    """(K+1, N, 3) rows of a swept surface: radius ``r`` at angle ``th`` around ``centre``
    at height ``z`` (each (K+1, N)); the first three rows blend from the ``ring`` (N, 3)
    they start at, so the surface leaves it smoothly."""
    pts = np.stack([centre[0] + r * np.cos(th), centre[1] + r * np.sin(th), z], -1)
    for k in range(min(3, len(pts))):
        t = k / 3.0
        pts[k, :, :2] = (1 - t) * ring[:, :2] + t * pts[k, :, :2]
    return pts


def _smooth_rows(r: np.ndarray, passes: int = 3) -> np.ndarray:
    for _ in range(passes):  # circular [1, 2, 1] along each row
        r = 0.25 * (np.roll(r, 1, axis=1) + 2 * r + np.roll(r, -1, axis=1))
    return r


def _skirt(spec: GarmentSpec, body: ab.PosedBody, assets: ab.BodyAssets, rng: np.random.Generator):
    lm = _landmarks(body.joints)
    centre = 0.5 * (body.joints["upperleg01.L"][:2] + body.joints["upperleg01.R"][:2])
    z_top = lm["crotch"] + lm["torso"] * (0.15 + 0.22 * spec.rise)
    z_hem = lm["crotch"] - 0.5 * lm["leg"] * (0.35 + 1.45 * spec.length)
    support = ab.BodySupport(body, assets, centre, z_top + 0.02, z_hem - 0.12)
    n = 160
    theta = np.linspace(-np.pi, np.pi, n, endpoint=False)
    r0 = _smooth_rows(support(np.full(n, z_top), theta)[None])[0] + 0.004 + 0.1 * spec.fit
    ring = np.stack([centre[0] + r0 * np.cos(theta), centre[1] + r0 * np.sin(theta), np.full(n, z_top)], 1)
    return _sweep(spec, ring, theta, centre, support, z_hem, rng, z_top - spec.waistband)


def _cape(spec: GarmentSpec, body: ab.PosedBody, assets: ab.BodyAssets, rng: np.random.Generator):
    """A poncho: one sheet swept down from a neck hole (a ring 3 cm up the neck, of the
    neckline's radius or just clear of the neck) over the shoulders and arms (their convex
    hull, band by band) to a hem between the chest (length 0) and the thighs (length 1)."""
    lm = _landmarks(body.joints)
    centre = np.asarray(body.joints["neck01"][:2], dtype=np.float64)
    z_top = lm["neck"] + 0.03  # on the neck, above the shoulders' slope
    z_hem = lm["crotch"] + lm["torso"] * (0.55 - 0.75 * spec.length)
    support = ab.BodySupport(body, assets, centre, z_top + 0.02, z_hem - 0.12, arms=True)
    n = 160
    theta = np.linspace(-np.pi, np.pi, n, endpoint=False)
    # The neck hole: a ring of the neckline's radius, clear of the neck's own slice.
    neck = ab.BodySupport(body, assets, centre, z_top + 0.02, z_top - 0.02)
    r0 = np.maximum(spec.neck_width, _smooth_rows(neck(np.full(n, z_top), theta)[None])[0] + 0.01)
    ring = np.stack([centre[0] + r0 * np.cos(theta), centre[1] + r0 * np.sin(theta), np.full(n, z_top)], 1)
    return _sweep(spec, ring, theta, centre, support, z_hem, rng, z_top - 0.03)


def _coat_skirt(spec: GarmentSpec, body: ab.PosedBody, assets: ab.BodyAssets, verts: np.ndarray,
                faces: np.ndarray, rng: np.random.Generator):
    """Sew a swept skirt onto the lowest boundary loop (the hip-level hem) of a coat top."""
    lm = _landmarks(body.joints)
    centre = 0.5 * (body.joints["upperleg01.L"][:2] + body.joints["upperleg01.R"][:2])
    try:
        loop = sf.loop_around_axis(verts, faces, centre)
    except ValueError as exc:
        raise ValueError(f"{spec.garment_id}: coat hem: {exc}") from None
    theta = np.unwrap(np.arctan2(verts[loop, 1] - centre[1], verts[loop, 0] - centre[0]))
    flip = theta[-1] < theta[0]
    if flip:
        loop, theta = loop[::-1], theta[::-1]
    if abs(theta[-1] - theta[0] - 2 * np.pi) > np.pi / 2:
        raise ValueError(f"{spec.garment_id}: coat hem does not go once around the hips")
    # Monotone angles for the rows below: arc length along the hem, aligned to theta on average.
    seg = np.linalg.norm(np.diff(verts[np.append(loop, loop[0]), :2], axis=0), axis=1)
    mono = 2 * np.pi * np.concatenate([[0.0], np.cumsum(seg[:-1])]) / seg.sum()
    mono += np.angle(np.exp(1j * (theta - mono)).mean())
    if spec.category == "dress":  # mini (upper thigh) .. floor length
        z_hem = lm["crotch"] - lm["leg"] * (0.1 + 0.72 * spec.length)
    else:
        z_hem = lm["crotch"] - 0.5 * lm["leg"] * (0.6 + 0.9 * spec.length)
    support = ab.BodySupport(body, assets, centre, verts[loop, 2].max() + 0.02, z_hem - 0.12)
    pts, sk_faces = _sweep(spec, verts[loop], mono, centre, support, z_hem, rng, np.inf)
    n = len(loop)
    index = np.concatenate([loop, len(verts) + np.arange(len(pts) - n)])  # ring = the loop itself
    sk_faces = index[sk_faces]
    if flip:  # the top's hem half-edges run against increasing angle: match them
        sk_faces = sk_faces[:, ::-1]
    return np.concatenate([verts, pts[n:]]), np.concatenate([faces, sk_faces])


def _hood(spec: GarmentSpec, body: ab.PosedBody, assets: ab.BodyAssets, verts: np.ndarray,
          faces: np.ndarray, rng: np.random.Generator):
    """Sew a hood onto the neckline of a hooded top: a tube swept up from the neckline
    around the head (its support, band by band, plus an ease of 2-5 cm and a fuller back),
    closed over the crown, with the face opening cut out of its front (an ellipse from
    below the chin to the forehead). The neckline is sewn shut, so the top keeps 4 loops:
    the face opening, two cuffs and the hem.

    Drawn from the spec: the ease from ``fit``, the back's fullness from ``flare``, the
    opening's width from ``neck_width`` and its top from ``rise``.
    """
    j = body.joints
    head = np.asarray(j["head"], dtype=np.float64)
    centre = 0.5 * (np.asarray(j["neck01"][:2]) + head[:2])
    arm = assets.groups["arm_L"] + assets.groups["arm_R"]
    used = np.unique(body.faces)
    crown = body.vertices[used[arm[used] < 0.5], 2].max()  # top of the head (a raised hand ignored)
    eyes = 0.5 * (np.asarray(j["eye.L"]) + np.asarray(j["eye.R"]))
    chin = eyes[2] - (crown - eyes[2])
    try:
        loop = sf.loop_around_axis(verts, faces, centre, highest=True)
    except ValueError as exc:
        raise ValueError(f"{spec.garment_id}: hood neckline: {exc}") from None
    theta = np.unwrap(np.arctan2(verts[loop, 1] - centre[1], verts[loop, 0] - centre[0]))
    if abs(abs(theta[-1] - theta[0]) - 2 * np.pi) > np.pi / 2:
        raise ValueError(f"{spec.garment_id}: the neckline does not go once around the neck")
    ring = verts[loop]
    n = len(loop)
    z0 = ring[:, 2]
    support = ab.BodySupport(body, assets, centre, crown + 0.02, z0.min() - 0.02)
    ease = 0.02 + 0.45 * spec.fit
    rows = max(6, int(np.ceil((crown - z0.min()) / 0.012)))
    v = np.linspace(0, 1, rows + 1)[:, None]
    z = z0[None] + v * (crown - z0)[None]  # (K+1, N): up from the neckline to the crown
    th = np.broadcast_to(theta, z.shape)
    h = support(z.ravel(), th.ravel()).reshape(z.shape)
    back = np.clip(np.sin(theta), 0.0, None) ** 2  # +Y is the back
    r = h + ease + (0.015 + 0.035 * spec.flare) * back[None] * _smoothstep(v / 0.6) * _smoothstep((1 - v) / 0.3)
    r[1:] = _smooth_rows(r[1:])
    r = np.maximum(r, h + _MARGIN + 0.002)
    pts = _rows_from_ring(ring, centre, r, th, z)
    # A dome over the crown: shrinking rings (a quarter ellipse in profile) up to a pole.
    lift = 0.7 * ease
    dome = []
    for t in (0.35, 0.65, 0.88):
        rr = r[-1] * np.cos(0.5 * np.pi * t)
        dome.append(np.stack([centre[0] + rr * np.cos(theta), centre[1] + rr * np.sin(theta),
                              np.full(n, crown + lift * np.sin(0.5 * np.pi * t))], -1))
    grid = np.concatenate([pts.reshape(-1, 3)] + dome)
    k_rows = rows + len(dome)
    pole = len(grid)
    grid = np.concatenate([grid, [[centre[0], centre[1], crown + lift]]])
    hood_faces = sf.cylinder_grid_faces(k_rows, n)[:, ::-1]  # rows go up: reverse for outward winding
    last = k_rows * n + np.arange(n)
    hood_faces = np.concatenate([hood_faces, np.stack([last, np.roll(last, -1), np.full(n, pole)], 1)])
    # The face opening: an ellipse in the front view, from just below the chin to the forehead.
    half_w = 0.075 + 0.3 * (spec.neck_width - 0.06)
    top, bottom = crown - 0.02 - 0.03 * spec.rise, max(chin - 0.015, z0.max() + 0.03)
    zc, half_h = 0.5 * (top + bottom), 0.5 * (top - bottom)
    front = _smoothstep((head[1] - grid[:, 1]) / 0.03)  # -Y is the front
    e = ((grid[:, 0] - head[0]) / half_w) ** 2 + ((grid[:, 2] - zc) / half_h) ** 2
    hood_faces, grid = sf.clip_mesh(hood_faces, grid, (1.0 - e) * front - 0.05 * (1.0 - front))
    hood_faces, grid = sf.largest_piece(hood_faces, grid)
    if not np.allclose(grid[:n], ring):
        raise ValueError(f"{spec.garment_id}: the hood's face opening reaches the neckline")
    index = np.concatenate([loop, len(verts) + np.arange(len(grid) - n)])  # row 0 = the neckline itself
    hood_faces = index[hood_faces]
    # Match the top's winding: its neckline half-edges run loop[i] -> loop[i + 1] (the
    # loop's order), so the hood must hold them the other way.
    directed = np.concatenate([hood_faces[:, [0, 1]], hood_faces[:, [1, 2]], hood_faces[:, [2, 0]]])
    if ((directed[:, 0] == loop[0]) & (directed[:, 1] == loop[1])).any():
        hood_faces = hood_faces[:, ::-1]
    out_v = np.concatenate([verts, grid[n:]])
    out_f = np.concatenate([faces, hood_faces])
    disp = 0.5 * spec.wrinkle_amp * _wrinkle_field(out_v, spec, rng)
    hood = np.zeros(len(out_v), bool)
    hood[len(verts):] = True
    out_v = out_v + sf.vertex_normals(out_v, out_f) * (disp * hood)[:, None]
    return sf.taubin(out_v, sf.smoothing_operator(out_f, len(out_v)), 2), out_f


def _colours(spec: GarmentSpec, verts: np.ndarray) -> np.ndarray:
    """(V, 4) uint8 RGBA: the spec's pattern evaluated on the posed surface (anny frame)."""
    a, b = np.asarray(spec.color_a, float), np.asarray(spec.color_b, float)
    period = spec.pattern_scale
    height = verts[:, 2]
    # Around the body: a whole number of periods on a 15 cm radius, so no seam at the back.
    turns = max(3, int(round(2 * np.pi * 0.15 / period)))
    around = np.arctan2(verts[:, 1], verts[:, 0]) * turns * period / (2 * np.pi)
    soft = lambda f: 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * f / period))  # noqa: E731
    if spec.pattern == "solid":
        t = np.zeros(len(verts))
    elif spec.pattern == "hstripes":
        t = soft(height)
    elif spec.pattern == "vstripes":
        t = soft(around)
    elif spec.pattern == "checks":
        t = 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * height / period) * np.sin(2 * np.pi * around / period))
    elif spec.pattern == "gradient":
        t = (height - height.min()) / max(np.ptp(height), 1e-9)
    else:
        raise ValueError(f"{spec.garment_id}: unknown pattern {spec.pattern!r}; expected one of {PATTERNS}")
    rgb = a + t[:, None] * (b - a)
    if spec.category == "longcoat" and spec.appearance != "grey":  # a darker button placket down the front
        placket = (np.abs(verts[:, 0]) < 0.012) & (verts[:, 1] < -0.02) & (height < height.max() - 0.12)
        rgb[placket] *= 0.55
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(verts), 1), 255, np.uint8)], axis=1)
