"""Cleaning and normalisation of user garment meshes into the garment frame.

Garment frame (see anchorudf.geometry.camera): bounding-box centre at the origin, largest
extent 1, +Y up. A source mesh is brought there by

    garment = (R @ source - offset) * scale

where ``R`` is the proper rotation (det +1, so triangle winding is unchanged) that takes the
source's up axis to +Y (:func:`up_rotation`), ``offset`` is the bounding-box centre of the
*rotated* source mesh (in source units) and ``scale`` is 1 / its largest extent (in 1/source
units). These are the manifest's ``scale`` and ``offset_x/y/z`` columns. With the default
up axis "+Y", ``R`` is the identity and ``offset`` is simply the source bounding-box centre.

Both functions keep the mesh's visual (UVs + texture image, vertex or face colours) and
are deterministic (no randomness, stable vertex and face order).
"""

from __future__ import annotations

import numpy as np

from anchorudf.data.meshio import quantize
from anchorudf.geometry.topology import unique_rows

# Rotation taking each source up axis to +Y. Each is a single 90/180-degree turn:
#   +Z: about +X by -90 deg, (x, y, z) -> (x, z, -y)   (Blender/Z-up: front -Y ends at +Z)
#   -Z: about +X by +90 deg, (x, y, z) -> (x, -z, y)
#   +X: about +Z by +90 deg, (x, y, z) -> (-y, x, z)
#   -X: about +Z by -90 deg, (x, y, z) -> (y, -x, z)
#   -Y: about +Z by 180 deg, (x, y, z) -> (-x, -y, z)  (keeps the front at +Z)
_UP_ROTATIONS = {
    "+Y": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    "-Y": [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
    "+Z": [[1, 0, 0], [0, 0, 1], [0, -1, 0]],
    "-Z": [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
    "+X": [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
    "-X": [[0, 1, 0], [-1, 0, 0], [0, 0, 1]],
}

# Metres per source unit.
UNIT_METRES = {"mm": 0.001, "cm": 0.01, "m": 1.0}


def up_rotation(up_axis: str = "+Y") -> np.ndarray:
    """(3, 3) float64 rotation ``R`` with ``R @ up == +Y`` for ``up_axis`` in +-X/Y/Z.

    A missing sign means "+"; case is ignored. Raises ValueError for anything else.
    """
    key = str(up_axis).strip().upper()
    if len(key) == 1:
        key = "+" + key
    if key not in _UP_ROTATIONS:
        raise ValueError(f"up axis {up_axis!r} not one of {sorted(_UP_ROTATIONS)}")
    return np.array(_UP_ROTATIONS[key], dtype=np.float64)


def guess_units(extent: float, units: str = "auto") -> tuple[str, float]:
    """(units, size_m): the source unit and the largest extent in metres.

    ``units="auto"`` guesses from the largest extent of a garment (a few cm to ~2 m):
    extent > 300 -> mm, extent > 3 -> cm, else m. So a 1.5 m dress reads as 1500 (mm),
    150 (cm) or 1.5 (m). Normalisation removes the scale anyway; this only records the
    metric size of the source for the manifest notes.
    """
    if units == "auto":
        units = "mm" if extent > 300.0 else "cm" if extent > 3.0 else "m"
    if units not in UNIT_METRES:
        raise ValueError(f"units {units!r} not one of auto, mm, cm, m")
    return units, float(extent) * UNIT_METRES[units]


def normalize_mesh(mesh, up_axis: str = "+Y", units: str = "auto"):
    """Rotate ``up_axis`` to +Y, centre the bounding box and scale the largest extent to 1.

    Returns ``(garment_mesh, scale, offset)`` with ``garment = (R @ source - offset) * scale``
    (``R = up_rotation(up_axis)``; ``offset`` (3,) float64 is the bounding-box centre of the
    rotated source, in source units; ``scale`` in 1/source units), up to the rounding of the
    garment vertices to the storage grid (:func:`anchorudf.data.meshio.quantize`, 2**-20,
    so the centre and extent hold to ~1e-6). The returned mesh is a
    copy with the same faces and visual; its ``metadata`` gains ``source_units`` ("mm", "cm"
    or "m", guessed when ``units="auto"``) and ``size_m`` (source largest extent in metres).
    Raises ValueError if the mesh has non-finite vertices or zero extent.
    """
    rot = up_rotation(up_axis)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError("mesh has no vertices or non-finite vertex coordinates")
    v_rot = v @ rot.T
    lo, hi = v_rot.min(axis=0), v_rot.max(axis=0)
    offset = (lo + hi) / 2.0
    extent = float((hi - lo).max())
    if not np.isfinite(extent) or extent <= 0.0:
        raise ValueError("mesh has zero extent (all vertices at one point)")
    scale = 1.0 / extent
    out = mesh.copy()
    out.vertices = quantize((v_rot - offset) * scale)  # the storage grid, see data.meshio
    src_units, size_m = guess_units(extent, units)
    out.metadata["source_units"] = src_units
    out.metadata["size_m"] = size_m
    return out, scale, offset


def _visual_keys(mesh) -> tuple[str, np.ndarray | None]:
    """(kind, per-vertex attributes that must match for two vertices to merge)."""
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture" and getattr(visual, "uv", None) is not None:
        return "texture", np.asarray(visual.uv, dtype=np.float64)
    if kind == "vertex":
        return "vertex", np.asarray(visual.vertex_colors, dtype=np.float64)
    if kind == "face":
        return "face", None
    return "none", None


def _rebuild(mesh, kind: str, vert_src: np.ndarray, faces: np.ndarray, face_src: np.ndarray):
    """New Trimesh from original vertex ids ``vert_src`` and re-indexed ``faces``."""
    import trimesh
    from trimesh.visual import ColorVisuals, TextureVisuals

    visual = mesh.visual
    if kind == "texture":
        new_visual = TextureVisuals(uv=np.asarray(visual.uv)[vert_src], material=visual.material)
    elif kind == "vertex":
        new_visual = ColorVisuals(vertex_colors=np.asarray(visual.vertex_colors)[vert_src])
    elif kind == "face":
        new_visual = ColorVisuals(face_colors=np.asarray(visual.face_colors)[face_src])
    else:
        new_visual = None
    out = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, dtype=np.float64)[vert_src],
                          faces=faces, visual=new_visual, process=False, validate=False)
    out.metadata.update(mesh.metadata)
    return out


def _merge_exact(vertices: np.ndarray, attrs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact duplicates (position and attributes): (first ids in order, old -> new map)."""
    key = vertices + 0.0  # -0.0 -> 0.0 so signed zeros merge
    if attrs is not None:
        key = np.concatenate([key, attrs + 0.0], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # new ids follow first occurrence
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def clean_mesh(mesh):
    """Conservative cleaning; returns ``(mesh, notes)`` with one note per action or finding.

    Actions, in order: merge exact duplicate vertices (same position AND same UV / vertex
    colour, so UV seams survive), drop degenerate faces (a repeated vertex or area below
    1e-12 of the squared largest extent), drop duplicate faces (same vertex set, either
    winding; the first is kept), drop unreferenced vertices. Findings (the mesh is kept):
    several disconnected pieces, non-manifold edges (used by more than two faces).
    Vertex and face order are otherwise preserved. Non-finite vertices are the caller's
    job to reject (they are not removed here). The result may have zero faces.
    """
    notes: list[str] = []
    kind, attrs = _visual_keys(mesh)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    face_src = np.arange(len(f))

    vert_src, remap = _merge_exact(v, attrs)
    if len(vert_src) < len(v):
        notes.append(f"merged {len(v) - len(vert_src)} duplicate vertices")
    f = remap[f]
    v = v[vert_src]

    extent = float(np.ptp(v, axis=0).max()) if len(v) else 0.0
    area2 = np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    bad = repeated | (area2 <= 2e-12 * extent * extent)
    if bad.any():
        notes.append(f"removed {int(bad.sum())} degenerate faces")
        f, face_src = f[~bad], face_src[~bad]

    if len(f):
        _, first = unique_rows(np.sort(f, axis=1), return_index=True)
        if len(first) < len(f):
            notes.append(f"removed {len(f) - len(first)} duplicate faces")
            keep = np.sort(first)
            f, face_src = f[keep], face_src[keep]

    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    if not used.all():
        notes.append(f"removed {int((~used).sum())} unreferenced vertices")
    new_id = np.cumsum(used) - 1
    f = new_id[f]
    vert_src = vert_src[used]

    return _rebuild(mesh, kind, vert_src, f, face_src), notes + _findings(f)


def _findings(faces: np.ndarray) -> list[str]:
    """Notes on what is kept as is: several pieces, non-manifold edges."""
    from anchorudf.geometry.topology import face_components, face_edges

    if len(faces) == 0:
        return []
    notes = []
    pieces = int(face_components(faces).max()) + 1
    if pieces > 1:
        notes.append(f"{pieces} pieces")
    edges = np.sort(face_edges(faces), axis=1)
    _, counts = unique_rows(edges, return_counts=True)
    nm = int((counts > 2).sum())
    if nm:
        notes.append(f"{nm} non-manifold edges")
    return notes
