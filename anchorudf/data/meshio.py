"""Reading and writing normalised garment meshes in a garments folder.

Layout of a garments folder (the output of the ``garments`` stage or of
``anchorudf preprocess``)::

    manifest.csv            one row per accepted garment (see anchorudf.data.manifest)
    rejects.csv             one row per rejected input file: file, reason
    meshes/<id>.ply         colour-only garments: binary PLY with per-vertex RGBA
    meshes/<id>/mesh.obj    textured garments: OBJ + material.mtl + texture image

All meshes are in the garment frame (see anchorudf.geometry.camera): bounding-box centre
at the origin, largest extent 1, +Y up, front facing +Z.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anchorudf.utils.io import atomic_path


def _has_texture(mesh) -> bool:
    visual = mesh.visual
    return (getattr(visual, "kind", None) == "texture" and getattr(visual, "uv", None) is not None
            and getattr(getattr(visual, "material", None), "image", None) is not None)


def garment_mesh_relpath(garment_id: str, textured: bool) -> str:
    return f"meshes/{garment_id}/mesh.obj" if textured else f"meshes/{garment_id}.ply"


def save_garment(garments_dir: str | Path, garment_id: str, mesh) -> str:
    """Write ``mesh`` atomically; returns its path relative to ``garments_dir``.

    Textured meshes keep UVs and the texture image (OBJ); others keep vertex colours (PLY).
    """
    import trimesh

    garments_dir = Path(garments_dir)
    textured = _has_texture(mesh)
    rel = garment_mesh_relpath(garment_id, textured)
    target = garments_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if textured:
        files = trimesh.exchange.obj.export_obj(mesh, include_texture=True, return_texture=True,
                                                mtl_name="material.mtl", include_normals=False)
        obj_text, extra = files
        for name, data in sorted(extra.items()):
            with atomic_path(target.parent / name) as tmp:
                tmp.write_bytes(data)
        with atomic_path(target) as tmp:
            tmp.write_text(obj_text)
    else:
        data = trimesh.exchange.ply.export_ply(mesh, encoding="binary", include_attributes=False)
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return rel


def load_garment(garments_dir: str | Path, rel_path: str):
    """Load a stored garment as a ``trimesh.Trimesh`` without reordering its vertices."""
    import trimesh

    path = Path(garments_dir) / rel_path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: garment mesh missing")
    mesh = trimesh.load(path, force="mesh", process=False, maintain_order=True)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{path}: not a triangle mesh")
    return mesh


def mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float64 (V, 3), faces int64 (F, 3)) of a trimesh."""
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
