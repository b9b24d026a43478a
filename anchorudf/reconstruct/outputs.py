"""A reconstruction on disk: points.ply, anchors.ply and mesh.ply + mesh.obj + mesh.glb (view NDC).

``mesh.ply`` and ``mesh.glb`` carry the mesh's vertex colours (from the input image,
:mod:`anchorudf.reconstruct.colors`) when the reconstruction has them; ``mesh.glb`` (glTF
binary: opens in Blender and web viewers) is in glTF's own frame, which is the view's NDC
(+y up, +z towards the camera, the front facing the viewer). ``mesh.obj`` is geometry only.

Writing into a folder first removes the files of these names left by an earlier
reconstruction (only those: other files stay), so a folder never mixes two runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.utils.io import atomic_path

#: every file :func:`write_garment_outputs` may write.
OUTPUT_NAMES = ("points.ply", "anchors.ply", "mesh.ply", "mesh.obj", "mesh.glb")

if TYPE_CHECKING:
    from anchorudf.reconstruct.image import Reconstruction


def write_ply_points(path: Path, points: np.ndarray) -> None:
    """Binary little-endian PLY of (N, 3) float32 points (N may be 0)."""
    pts = np.ascontiguousarray(np.asarray(points, dtype="<f4").reshape(-1, 3))
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\n"
              "end_header\n").encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + pts.tobytes())


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray,
               colors: np.ndarray | None = None) -> None:
    """A triangle mesh in the format of ``path``'s suffix (``.ply``, ``.obj``, ``.glb``),
    atomically; ``colors`` (V, 3) uint8 become vertex colours (not in ``.obj``)."""
    import trimesh

    fmt = Path(path).suffix.lstrip(".")
    kwargs = {}
    if colors is not None and fmt != "obj":
        c = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        kwargs["vertex_colors"] = np.concatenate([c, np.full((len(c), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False, **kwargs)
    data = mesh.export(file_type=fmt)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())


def remove_outputs(folder: Path, names: tuple[str, ...] = OUTPUT_NAMES) -> None:
    """Delete the files ``names`` in ``folder`` that an earlier run left (nothing else)."""
    for name in names:
        path = Path(folder) / name
        if path.is_file() or path.is_symlink():
            path.unlink()


def write_garment_outputs(folder: Path, rec: Reconstruction) -> list[Path]:
    """points.ply, anchors.ply and (if any) mesh.ply + mesh.obj + mesh.glb of one
    reconstruction (NDC), the mesh with ``rec.mesh_colors`` when set.

    Files of these names from an earlier run are removed first; returns the files written.
    """
    folder = Path(folder)
    remove_outputs(folder)
    written = [folder / "points.ply", folder / "anchors.ply"]
    write_ply_points(written[0], rec.points)
    write_ply_points(written[1], rec.anchors)
    if len(rec.mesh_faces):
        colors = getattr(rec, "mesh_colors", None)
        for name in ("mesh.ply", "mesh.obj", "mesh.glb"):
            write_mesh(folder / name, rec.mesh_vertices, rec.mesh_faces, colors)
            written.append(folder / name)
    return written
