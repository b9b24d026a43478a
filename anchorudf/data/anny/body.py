"""The ``anny`` body model: a project-local build, posed bodies, and their support function.

Frames and units: everything here is in the anny frame, metres, +Z up, the body's front
facing -Y, the body's left at +X. ``rest`` coordinates are the shaped body before posing
(anny's identity pose, an A-pose with the arms about 47 degrees below horizontal); the
garment generator evaluates its cut and pattern fields there, so a sleeve cut stays at the
same place on the arm whatever the pose.

The garment base surface is MakeHuman's ``helper-tights`` (a bodysuit about 6 mm off the
skin, open at the neck and wrists), which the ``anny-full`` topology skins with the body.
The generic open-surface tools the garment generator applies to it (clipping, smoothing,
push-out, ...) are in :mod:`anchorudf.geometry.surface`.
"""

from __future__ import annotations

import fcntl
import gzip
import inspect
import io
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

# Pose names understood by :func:`pose_rotations`. ``POSES`` are drawn for the training and
# test garments of the default set; ``SHIFTED_POSES`` only for its style-shifted garments
# (split ``shifted``): poses the model never sees in training.
POSES = ("a_pose", "arms_down", "walk", "arms_raised", "contrapposto", "reach",
         "stride", "bent_knee", "arms_forward", "sit_hips")
SHIFTED_POSES = ("lunge", "t_pose", "knee_up")
ALL_POSES = POSES + SHIFTED_POSES


def load_anny(cache_dir: Path):
    """The anny model (``anny-full`` topology), built once into ``cache_dir``, then cached.

    ``ANNY_CACHE_DIR`` and ``WARP_CACHE_PATH`` point under ``cache_dir`` before anny is
    imported. The first call with an empty cache builds the model (about 15 s, 1.6 GB
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
    _use_fast_blend_shape_loader()
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


_BLEND_SHAPE_PARAMS = ["filename", "vertices_count", "world_transformation", "dtype"]


def _use_fast_blend_shape_loader() -> None:
    """Make anny's one-time build read its blend-shape targets with one numpy parse per file.

    anny parses its 1136 ``*.target.gz`` files (one ``id dx dy dz`` line per moved vertex,
    6.9 M lines) a line at a time with a ``torch.as_tensor`` per line: about 65 of the
    build's 75 s on one core, while the other processes of the garments stage wait for
    the build. :func:`load_blend_shape_fast` gives the same tensors. anny's function is
    replaced only when its signature is the one this was written against (a newer anny
    keeps its own).
    """
    from anny.models import full_model

    original = getattr(full_model, "load_blend_shape", None)
    if original is None or getattr(original, "_anchorudf_original", None) is not None:
        return
    if list(inspect.signature(original).parameters) != _BLEND_SHAPE_PARAMS:
        return

    def load_blend_shape(filename, vertices_count, world_transformation, dtype):
        return load_blend_shape_fast(filename, vertices_count, world_transformation, dtype, original)

    load_blend_shape._anchorudf_original = original
    full_model.load_blend_shape = load_blend_shape


def load_blend_shape_fast(filename, vertices_count: int, world_transformation, dtype, original):
    """anny's ``load_blend_shape`` (a ``(vertices_count, 3)`` offset tensor, zero where the
    target file names no vertex, mapped by ``world_transformation``) with one numpy parse
    of the file. Files it cannot read the same way (not 4 numbers a line, vertex ids that
    are not integers in range, a vertex named twice) go to anny's ``original``, which reads
    them (or fails on them) as it always has."""
    import torch

    def annys():
        return original(filename, vertices_count, world_transformation, dtype)

    with gzip.open(filename, "rb") as f:
        data = f.read()
    if not data.strip() or re.search(rb"(^|\n)[ \t\r]*(\n|$)", data.rstrip(b"\n")):
        return annys()  # empty, or a blank line
    try:  # numpy's C parser: correctly rounded like float(), one row per line, same width
        table = np.loadtxt(io.BytesIO(data), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return annys()
    if table.shape[1] != 4:
        return annys()
    ids = table[:, 0].astype(np.int64)
    if (ids != table[:, 0]).any() or ids.min() < 0 or ids.max() >= vertices_count or len(np.unique(ids)) != len(ids):
        return annys()
    blend_shape = torch.zeros((vertices_count, 3), dtype=dtype)
    blend_shape[torch.from_numpy(ids)] = torch.from_numpy(table[:, 1:]).to(dtype)
    return world_transformation.apply(blend_shape)


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

    ``strength`` scales the pose's angles (1 = nominal); ``jitter`` is up to 14 small angles
    in degrees added to any pose (missing ones are 0): spine bend/twist/lean, head turn,
    left/right arm spread, left/right leg swing (negative = forwards), left/right knee bend,
    left/right arm swing (negative = forwards), left/right elbow bend.
    """
    if pose not in ALL_POSES:
        raise ValueError(f"unknown pose {pose!r}; expected one of {ALL_POSES}")
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
    elif pose == "stride":  # a long walking step
        add("upperleg01.L", "x", -32 * k), add("lowerleg01.L", "x", 12 * k)
        add("upperleg01.R", "x", 20 * k), add("lowerleg01.R", "x", 22 * k)
        add("upperarm01.L", "x", 22 * k), add("upperarm01.R", "x", -24 * k)
        add("upperarm01.L", "y", 18 * k), add("upperarm01.R", "y", -18 * k)
    elif pose == "bent_knee":  # weight on one leg, the other knee bent forward
        add("upperleg01.R", "x", -30 * k), add("lowerleg01.R", "x", 45 * k)
        add("upperarm01.L", "y", 16 * k), add("upperarm01.R", "y", -10 * k)
    elif pose == "arms_forward":  # both arms lifted forwards, elbows bent a little
        add("upperarm01.L", "x", -40 * k), add("upperarm01.R", "x", -40 * k)
        add("lowerarm01.L", "x", -15 * k), add("lowerarm01.R", "x", -15 * k)
        add("upperarm01.L", "y", 10 * k), add("upperarm01.R", "y", -10 * k)
    elif pose == "sit_hips":  # sitting-like hips: both thighs forward, knees bent, torso leaning
        add("upperleg01.L", "x", -38 * k), add("upperleg01.R", "x", -34 * k)
        add("lowerleg01.L", "x", 40 * k), add("lowerleg01.R", "x", 36 * k)
        add("spine03", "x", -6 * k), add("upperarm01.L", "y", 15 * k), add("upperarm01.R", "y", -15 * k)
    elif pose == "lunge":  # shifted only: a deep forward lunge
        add("upperleg01.L", "x", -58 * k), add("lowerleg01.L", "x", 68 * k)
        add("upperleg01.R", "x", 28 * k), add("lowerleg01.R", "x", 12 * k)
        add("spine03", "x", -8 * k), add("upperarm01.L", "y", 20 * k), add("upperarm01.R", "y", -20 * k)
    elif pose == "t_pose":  # shifted only: arms horizontal
        add("upperarm01.L", "y", -45 * k), add("upperarm01.R", "y", 45 * k)
    elif pose == "knee_up":  # shifted only: one thigh raised high, knee bent
        add("upperleg01.R", "x", -70 * k), add("lowerleg01.R", "x", 80 * k)
        add("upperarm01.L", "y", 8 * k), add("upperarm01.R", "y", -30 * k), add("upperarm01.R", "x", -20 * k)
    bend, twist, lean, head, spread_l, spread_r, swing_l, swing_r, knee_l, knee_r, fwd_l, fwd_r, \
        elbow_l, elbow_r = (list(jitter) + [0.0] * 14)[:14]
    add("spine03", "x", bend), add("spine03", "z", twist), add("spine02", "y", lean)
    add("neck01", "z", head), add("upperarm01.L", "y", spread_l), add("upperarm01.R", "y", -spread_r)
    add("upperleg01.L", "x", swing_l), add("upperleg01.R", "x", swing_r)
    add("lowerleg01.L", "x", knee_l), add("lowerleg01.R", "x", knee_r)
    add("upperarm01.L", "x", fwd_l), add("upperarm01.R", "x", fwd_r)
    add("lowerarm01.L", "x", -elbow_l), add("lowerarm01.R", "x", -elbow_r)
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
    """Support function of the posed trunk and legs (arms excluded unless ``arms``) in
    horizontal bands: h(z, theta) = max over body vertices near height z of
    (p - centre) . (cos, sin)(theta). A curve at radius >= h around ``centre`` encloses the
    body's slice (convex-hull drape)."""

    def __init__(self, body: PosedBody, assets: BodyAssets, centre: np.ndarray,
                 z_top: float, z_bottom: float, band: float = 0.01, arms: bool = False):
        used = np.unique(body.faces)
        arm = assets.groups["arm_L"][used] + assets.groups["arm_R"][used]
        p = body.vertices[used if arms else used[arm < 0.5]]
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
