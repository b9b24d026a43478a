"""The ``anny`` body model: a project-local build, posed bodies, and open-surface tools.

Frames and units: everything here is in the anny frame, metres, +Z up, the body's front
facing -Y, the body's left at +X. ``rest`` coordinates are the shaped body before posing
(anny's identity pose, an A-pose with the arms about 47 degrees below horizontal); the
garment generator evaluates its cut and pattern fields there, so a sleeve cut stays at the
same place on the arm whatever the pose.

The garment base surface is MakeHuman's ``helper-tights`` (a bodysuit about 6 mm off the
skin, open at the neck and wrists), which the ``anny-full`` topology skins with the body.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANNY_TOPOLOGY = "anny-full"
# The only build product anny needs once built (about 72 MB); the rest (about 0.8 GB) is
# intermediate data that is deleted after the build.
_KEEP_PATTERN = re.compile(r"^build_compact_model_data_[0-9a-f]+\.safetensors$")
_STATE: dict = {}

# Pose names understood by :func:`pose_parameters` (all drawn by the garment planner).
POSES = ("a_pose", "arms_down", "walk", "arms_raised", "contrapposto", "reach")


def load_anny(cache_dir: Path):
    """The anny model (``anny-full`` topology), built once into ``cache_dir``, then cached.

    ``ANNY_CACHE_DIR`` and ``WARP_CACHE_PATH`` point under ``cache_dir`` before anny is
    imported. The first call with an empty cache builds the model (about 45-60 s, 1.6 GB
    RAM) under a file lock (parallel processes wait instead of building twice), then
    deletes every cached file but ``build_compact_model_data_*.safetensors``. Later calls
    in the process return the same model object; later processes load it in about 0.5 s.
    """
    if "model" in _STATE:
        return _STATE["model"]
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ANNY_CACHE_DIR"] = str(cache_dir)
    os.environ["WARP_CACHE_PATH"] = str(cache_dir / "warp")
    import anny
    import anny.paths

    anny.paths.set_anny_cache_path(cache_dir)  # in case anny was imported before
    with open(cache_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            model = anny.Anny(topology=ANNY_TOPOLOGY)
        finally:
            prune_anny_cache(cache_dir)
            fcntl.flock(lock, fcntl.LOCK_UN)
    model.eval()
    _STATE["model"] = model
    return model


def prune_anny_cache(cache_dir: Path) -> list[Path]:
    """Delete the intermediate build files of anny's cache; returns the deleted paths.

    Only files inside anny's versioned folders (``v<N>/``) are touched, and the compact
    model data (``build_compact_model_data_*.safetensors``) is always kept.
    """
    removed = []
    for folder in sorted(Path(cache_dir).glob("v[0-9]*")):
        if not folder.is_dir():
            continue
        for item in sorted(folder.iterdir()):
            if item.is_file() and not _KEEP_PATTERN.match(item.name):
                item.unlink()
                removed.append(item)
    return removed


@dataclass(frozen=True)
class BodyAssets:
    """Pose-independent data of the model, computed once per process."""

    model: object
    body_faces: np.ndarray  # (F, 3) int64 body triangles, outward winding
    tights_quads: np.ndarray  # (Q, 4) int64 quads of helper-tights, outward winding
    groups: dict  # name -> (V,) float64 summed skinning weight (arm_L, leg_R, torso, ...)
    bones: tuple  # bone labels


def body_assets(cache_dir: Path) -> BodyAssets:
    """Model, tights quads and per-vertex bone-group weights (cached per process)."""
    if "assets" in _STATE:
        return _STATE["assets"]
    import anny
    from anny.utils.obj_utils import load_obj_file

    model = load_anny(cache_dir)
    obj = Path(anny.__file__).parent / "data" / "mpfb2" / "3dobjs" / "base.obj"
    _, _, obj_groups = load_obj_file(str(obj), pack_as_tensor=False)
    quads = np.asarray(obj_groups["helper-tights"]["face_vertex_indices"], dtype=np.int64)
    if quads.ndim != 2 or quads.shape[1] != 4:
        raise ValueError(f"{obj}: helper-tights is not a quad mesh")
    labels = tuple(model.bone_labels)
    weights = model.vertex_bone_weights.detach().cpu().numpy().astype(np.float64)
    index = model.vertex_bone_indices.detach().cpu().numpy().astype(np.int64)
    groups = {}
    stem = [re.match(r"[a-z]*", b).group(0) for b in labels]
    for side in ("L", "R"):
        arm = [i for i, b in enumerate(labels) if b.endswith("." + side)
               and stem[i] in ("upperarm", "lowerarm", "wrist", "finger", "metacarpal")]
        leg = [i for i, b in enumerate(labels) if b.endswith("." + side)
               and stem[i] in ("upperleg", "lowerleg", "foot", "toe")]
        groups[f"arm_{side}"] = _group_weight(weights, index, arm)
        groups[f"leg_{side}"] = _group_weight(weights, index, leg)
    assets = BodyAssets(model=model, body_faces=model.faces.detach().cpu().numpy().astype(np.int64),
                        tights_quads=quads, groups=groups, bones=labels)
    _STATE["assets"] = assets
    return assets


def _group_weight(weights: np.ndarray, index: np.ndarray, bones: list[int]) -> np.ndarray:
    if not bones:
        raise ValueError("anny rig: a bone group is empty (unexpected bone labels)")
    return (weights * np.isin(index, bones)).sum(axis=1)


def _rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(4)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def pose_rotations(pose: str, strength: float, jitter: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Bone -> 4x4 rotation (world-aligned axes, anny's ``local-ref``) of a named pose.

    ``strength`` scales the pose's angles (1 = nominal); ``jitter`` is 6 small angles in
    degrees (spine bend/twist/lean, head turn, left/right arm spread) added to any pose.
    """
    if pose not in POSES:
        raise ValueError(f"unknown pose {pose!r}; expected one of {POSES}")
    k = float(strength)
    rot: dict[str, list] = {}

    def add(bone: str, axis: str, deg: float) -> None:
        rot.setdefault(bone, []).append(_rotation(axis, deg))

    if pose == "arms_down":
        add("upperarm01.L", "y", 20 * k), add("upperarm01.R", "y", -20 * k)
    elif pose == "walk":
        add("upperleg01.L", "x", -22 * k), add("lowerleg01.L", "x", 18 * k)
        add("upperleg01.R", "x", 12 * k), add("lowerleg01.R", "x", 8 * k)
        add("upperarm01.L", "x", 14 * k), add("upperarm01.R", "x", -16 * k)
        add("upperarm01.L", "y", 15 * k), add("upperarm01.R", "y", -15 * k)
    elif pose == "arms_raised":
        add("upperarm01.L", "y", -28 * k), add("upperarm01.R", "y", 28 * k)
    elif pose == "contrapposto":
        add("upperleg01.R", "x", -8 * k), add("lowerleg01.R", "x", 16 * k)
        add("upperleg01.L", "y", 5 * k), add("spine03", "y", 4 * k)
        add("upperarm01.L", "y", 14 * k), add("upperarm01.R", "y", -6 * k)
    elif pose == "reach":
        add("upperarm01.R", "x", -40 * k), add("lowerarm01.R", "x", -20 * k)
        add("upperarm01.L", "y", 18 * k), add("spine04", "z", 6 * k)
    bend, twist, lean, head, spread_l, spread_r = (list(jitter) + [0.0] * 6)[:6]
    add("spine03", "x", bend), add("spine03", "z", twist), add("spine02", "y", lean)
    add("neck01", "z", head), add("upperarm01.L", "y", spread_l), add("upperarm01.R", "y", -spread_r)
    out = {}
    for bone, mats in rot.items():
        m = np.eye(4)
        for r in mats:
            m = r @ m
        out[bone] = m
    return out


@dataclass(frozen=True)
class PosedBody:
    """One shaped and posed body (anny frame, metres)."""

    vertices: np.ndarray  # (V, 3) posed positions of all anny-full vertices
    rest: np.ndarray  # (V, 3) rest (A-pose) positions of the same vertices
    faces: np.ndarray  # (F, 3) body triangles (watertight, outward)
    joints_rest: dict  # bone label -> (3,) rest head position
    joints: dict  # bone label -> (3,) posed head position


def pose_body(assets: BodyAssets, phenotype: dict[str, float], pose: str, strength: float,
              jitter: tuple[float, ...]) -> PosedBody:
    """Shape the body with ``phenotype`` (anny phenotypes in [0, 1]) and pose it."""
    import torch

    rots = pose_rotations(pose, strength, jitter)
    params = {b: torch.as_tensor(m[None], dtype=torch.float64) for b, m in rots.items()}
    with torch.no_grad():
        out = assets.model(pose_parameters=params,
                           phenotype_kwargs={k: float(v) for k, v in phenotype.items()})
    verts = out["vertices"][0].cpu().numpy().astype(np.float64)
    rest = out["rest_vertices"][0].cpu().numpy().astype(np.float64)
    heads_rest = out["rest_bone_heads"][0].cpu().numpy().astype(np.float64)
    heads = out["bone_poses"][0, :, :3, 3].cpu().numpy().astype(np.float64)
    names = assets.bones
    return PosedBody(vertices=verts, rest=rest, faces=assets.body_faces,
                     joints_rest={n: heads_rest[i] for i, n in enumerate(names)},
                     joints={n: heads[i] for i, n in enumerate(names)})


def limb_coordinate(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Position along the polyline a-b-c: 0 at a, 1 at b, 2 at c (projection, unclamped)."""
    ab, bc = b - a, c - b
    u = (points - a) @ ab / (ab @ ab)
    w = 1.0 + (points - b) @ bc / (bc @ bc)
    return np.where(u <= 1.0, u, np.maximum(w, 1.0))


class BodySupport:
    """Support function of the posed trunk and legs (arms excluded) in horizontal bands:
    h(z, theta) = max over body vertices near height z of (p - centre) . (cos, sin)(theta).
    A curve at radius >= h around ``centre`` encloses the body's slice (convex-hull drape)."""

    def __init__(self, body: PosedBody, assets: BodyAssets, centre: np.ndarray,
                 z_top: float, z_bottom: float, band: float = 0.01):
        used = np.unique(body.faces)
        arm = assets.groups["arm_L"][used] + assets.groups["arm_R"][used]
        p = body.vertices[used[arm < 0.5]]
        self.centre, self.z_top, self.band = centre, z_top, band
        self.n_bands = int(np.ceil((z_top - z_bottom) / band)) + 3
        b = np.floor((z_top - p[:, 2]) / band).astype(np.int64) + 1
        ok = (b >= 0) & (b < self.n_bands)
        self.p, self.b = p[ok, :2] - centre, b[ok]

    def __call__(self, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """(N,) support values for points at heights ``z`` and angles ``theta``."""
        u = np.stack([np.cos(theta), np.sin(theta)], 1)
        b = np.clip(np.floor((self.z_top - z) / self.band).astype(np.int64) + 1, 0, self.n_bands - 1)
        out = np.full(len(z), -np.inf)
        for d in (-1, 0, 1):  # the neighbouring bands too: no slice falls between samples
            for band in np.unique(b + d):
                rows = np.nonzero(b + d == band)[0]
                pts = self.p[self.b == band]
                if len(pts):
                    out[rows] = np.maximum(out[rows], (u[rows] @ pts.T).max(axis=1))
        return np.where(np.isfinite(out), out, 0.0)


# ---- open-surface tools (any frame; vertex data rows carry positions and attributes) ----

def subdivide_quads(quads: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One linear quad subdivision: each quad -> 4 (edge midpoints + centre).

    ``data`` (V, D) is interpolated linearly; returns (quads (4Q, 4), data (V', D)) with the
    original vertices first, then one vertex per unique edge, then one per quad. Winding
    is kept.
    """
    q = np.asarray(quads, dtype=np.int64)
    n = len(data)
    edges = np.stack([q, np.roll(q, -1, axis=1)], axis=2).reshape(-1, 2)  # (4Q, 2)
    key = np.sort(edges, axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    mid = n + inv.reshape(-1, 4)  # (Q, 4): midpoint of edge (q[k], q[k+1])
    centre = n + len(uniq) + np.arange(len(q))
    new = np.concatenate([data, 0.5 * (data[uniq[:, 0]] + data[uniq[:, 1]]), data[q].mean(axis=1)])
    out = []
    for k in range(4):
        out.append(np.stack([q[:, k], mid[:, k], centre, mid[:, k - 1]], axis=1))
    return np.concatenate(out), new


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """Split each quad (a, b, c, d) into (a, b, c) and (a, c, d); winding kept."""
    q = np.asarray(quads, dtype=np.int64)
    return np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


def clip_mesh(faces: np.ndarray, data: np.ndarray, phi: np.ndarray,
              snap: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of a triangle mesh where the per-vertex field ``phi <= 0``.

    Triangles crossing the zero level are cut along it (linear interpolation on edges,
    one shared new vertex per cut edge, so the piece stays connected and the cut is a clean
    boundary). Values within ``snap`` of 0 count as on the level: such a vertex is reused
    instead of a coincident new one, and the degenerate triangles this leaves are dropped.
    ``data`` (V, D) rows are interpolated. Returns (faces, data) without unreferenced
    vertices; winding is kept.
    """
    f = np.asarray(faces, dtype=np.int64)
    phi = np.asarray(phi, dtype=np.float64)
    phi = np.where(np.abs(phi) <= snap, 0.0, phi)
    inside = phi[f] <= 0  # (F, 3)
    count = inside.sum(axis=1)
    keep = [f[count == 3]]
    # Rotate each cut triangle so that its odd vertex (the lone in or lone out) comes first.
    part = (count == 1) | (count == 2)
    cut, cin = f[part], inside[part]
    lone_in = cin.sum(axis=1) == 1
    odd = np.where(lone_in, np.argmax(cin, axis=1), np.argmin(cin, axis=1))
    tri = np.take_along_axis(cut, (odd[:, None] + np.arange(3)[None]) % 3, axis=1)  # a (odd), b, c
    key = np.concatenate([np.sort(tri[:, [0, 1]], axis=1), np.sort(tri[:, [2, 0]], axis=1)])
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    p0, p1 = phi[uniq[:, 0]], phi[uniq[:, 1]]
    t = np.divide(p0, p0 - p1, out=np.zeros_like(p0), where=p0 != p1)
    new = data[uniq[:, 0]] + t[:, None] * (data[uniq[:, 1]] - data[uniq[:, 0]])
    point = np.where(p0 == 0, uniq[:, 0], np.where(p1 == 0, uniq[:, 1], len(data) + np.arange(len(uniq))))
    p_ab, p_ca = point[inv[: len(tri)]], point[inv[len(tri):]]
    a, b, c = tri[lone_in].T
    keep.append(np.stack([a, p_ab[lone_in], p_ca[lone_in]], axis=1))
    a, b, c = tri[~lone_in].T  # a is the lone outside vertex: keep quad b, c, p_ca, p_ab
    pab, pca = p_ab[~lone_in], p_ca[~lone_in]
    keep.append(np.stack([b, c, pca], axis=1))
    keep.append(np.stack([b, pca, pab], axis=1))
    out = np.concatenate(keep)
    good = (out[:, 0] != out[:, 1]) & (out[:, 1] != out[:, 2]) & (out[:, 2] != out[:, 0])
    return compact(out[good], np.concatenate([data, new]))


def compact(faces: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unreferenced vertices (order of the rest kept)."""
    used, inv = np.unique(faces, return_inverse=True)
    return inv.reshape(faces.shape).astype(np.int64), data[used]


def largest_piece(faces: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edge-connected piece with the most faces (ties: lowest label)."""
    from anchorudf.geometry.topology import face_components

    labels = face_components(faces)
    best = np.argmax(np.bincount(labels))
    return compact(faces[labels == best], data)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals (zero for isolated vertices)."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def smoothing_operator(faces: np.ndarray, n: int):
    """Sparse (n, n) row-stochastic umbrella operator; boundary vertices average over their
    boundary neighbours only, so cut edges stay clean lines instead of shrinking inwards."""
    from scipy.sparse import coo_matrix, diags

    from anchorudf.geometry.topology import boundary_edges

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    be = boundary_edges(faces)
    on_b = np.zeros(n, bool)
    on_b[be.ravel()] = True
    interior = e[~(on_b[e[:, 0]] | on_b[e[:, 1]])]
    mixed = e[on_b[e[:, 0]] ^ on_b[e[:, 1]]]
    inner_end = np.where(on_b[mixed[:, 0]], mixed[:, 1], mixed[:, 0])
    outer_end = np.where(on_b[mixed[:, 0]], mixed[:, 0], mixed[:, 1])
    rows = np.concatenate([interior[:, 0], interior[:, 1], be[:, 0], be[:, 1], inner_end])
    cols = np.concatenate([interior[:, 1], interior[:, 0], be[:, 1], be[:, 0], outer_end])
    a = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    return diags(1.0 / np.maximum(deg, 1)) @ a


def taubin(vertices: np.ndarray, op, iterations: int, lam: float = 0.5, mu: float = -0.53) -> np.ndarray:
    """Taubin smoothing (low-pass without much shrinkage) with the operator ``op``."""
    v = vertices.copy()
    for _ in range(iterations):
        v = v + lam * (op @ v - v)
        v = v + mu * (op @ v - v)
    return v


def push_out(points: np.ndarray, body, margin: float,
             rounds: tuple[int, ...] = (8, 32, 96)) -> tuple[np.ndarray, int]:
    """Move points inside the closed ``body`` (trimesh) just outside it.

    Inside is ray parity (``body.contains``; Embree when embreex is installed), the same
    test the garment checks use. In round r a point still inside goes to the nearest of its
    candidates that is outside: its ``rounds[r]`` closest body vertices, each offset along
    its vertex normal by 1, 2, 4 or 8 times ``margin`` (metres). More candidates resolve
    creases where a vertex's normal points into another body part (armpit, crotch).
    Returns the points and how many are still inside (0 when clean).
    """
    from scipy.spatial import cKDTree

    pts = np.array(points, dtype=np.float64)
    verts, normals = np.asarray(body.vertices), np.asarray(body.vertex_normals)
    tree = cKDTree(verts)
    steps = margin * np.array([1.0, 2.0, 4.0, 8.0])
    inside = np.nonzero(body.contains(pts))[0]
    for k in rounds:
        if len(inside) == 0:
            break
        _, near = tree.query(pts[inside], k=min(k, len(verts)))  # (I, k)
        near = near.reshape(len(inside), -1)
        cand = (verts[near][:, :, None] + normals[near][:, :, None] * steps[:, None]).reshape(len(inside), -1, 3)
        ok = ~body.contains(cand.reshape(-1, 3)).reshape(len(inside), -1)
        dist = np.where(ok, np.linalg.norm(cand - pts[inside][:, None], axis=2), np.inf)
        best = np.argmin(dist, axis=1)
        found = np.isfinite(dist[np.arange(len(inside)), best])
        pts[inside[found]] = cand[found, best[found]]
        inside = inside[~found]
    return pts, len(inside)


def cylinder_grid_faces(rows: int, n: int) -> np.ndarray:
    """Triangles of a (rows+1) x n cylinder grid, columns by increasing angle: outward."""
    k, j = np.meshgrid(np.arange(rows), np.arange(n), indexing="ij")
    a, d = k * n + j, k * n + (j + 1) % n
    b, c = a + n, d + n
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])


def loop_around_axis(verts: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Vertex ids, in half-edge order, of the lowest boundary loop that goes once around
    the vertical axis through ``centre`` (the hem; neck and cuffs are above or beside)."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, inv, cnt = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True, return_counts=True)
    border = half[cnt[inv.ravel()] == 1]
    nxt = dict(zip(border[:, 0].tolist(), border[:, 1].tolist()))
    loops, seen = [], set()
    for start in border[:, 0].tolist():
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loop = np.array(loop)
        ang = np.arctan2(verts[loop, 1] - centre[1], verts[loop, 0] - centre[0])
        turns = np.angle(np.exp(1j * np.diff(np.append(ang, ang[0])))).sum() / (2 * np.pi)
        if abs(abs(turns) - 1.0) < 0.25:
            loops.append(loop)
    if not loops:
        raise ValueError("no boundary loop goes around the body axis")
    return min(loops, key=lambda l: verts[l, 2].mean())
