"""A reconstruction on disk: points.ply, anchors.ply and mesh.ply + mesh.obj (view NDC)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.utils.io import atomic_path

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


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A triangle mesh in the format of ``path``'s suffix (``.ply``, ``.obj``), atomically."""
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=False)
    fmt = Path(path).suffix.lstrip(".")
    data = mesh.export(file_type=fmt)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data if isinstance(data, bytes) else data.encode())


def write_garment_outputs(folder: Path, rec: Reconstruction) -> None:
    """points.ply, anchors.ply and (if any) mesh.ply + mesh.obj of one reconstruction (NDC)."""
    folder = Path(folder)
    write_ply_points(folder / "points.ply", rec.points)
    write_ply_points(folder / "anchors.ply", rec.anchors)
    if len(rec.mesh_faces):
        write_mesh(folder / "mesh.ply", rec.mesh_vertices, rec.mesh_faces)
        write_mesh(folder / "mesh.obj", rec.mesh_vertices, rec.mesh_faces)
