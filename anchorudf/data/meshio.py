"""Reading and writing normalised garment meshes in a garments folder.

Layout of a garments folder (the output of the ``garments`` stage or of
``anchorudf preprocess``)::

    manifest.csv            one row per accepted garment (see anchorudf.data.manifest)
    rejects.csv             one row per rejected input file: file, reason
    meshes/<id>.ply         colour-only garments: binary PLY with per-vertex RGBA
    meshes/<id>/mesh.obj    textured garments: OBJ + material.mtl + texture image

All meshes are in the garment frame (see anchorudf.geometry.camera): bounding-box centre
at the origin, largest extent 1, +Y up, front facing +Z.

Stored coordinates are quantised (:func:`quantize`): vertices and UVs are multiples of
``2**-20`` (about 9.5e-7), so float differences of a few ulps upstream (another CPU or
BLAS, FMA or not) give the same bytes on every machine in nearly all cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anchorudf.utils.io import atomic_path


# Storage grid of garment coordinates: 2**-QUANT_BITS of the garment frame (largest extent 1).
# 2**-20 ~ 9.5e-7 is 1e-4 of a render pixel (128 px over ~2 NDC units, ~0.016 per pixel;
# the garment spans ~1.8 NDC units) and 3e-4 of the smallest sample sigma (0.003): nothing
# downstream can see it. A value moves to another grid point only if it lies within its
# float error of a rounding boundary: for errors of a few float64 ulps (~1e-16) that is
# ~1e-9 per coordinate, so a whole default set (~1e6 coordinates) is byte-identical across
# machines in nearly all cases; rounding to float32 instead (the PLY's vertex type) has a
# finer grid (3e-8 at 0.5, finer towards 0) and flips 30 times more often or more. Multiples of
# 2**-20 are exact in float32 for |x| < 16 and in float64, and the rounding is exact
# (scaling by a power of two), so quantising twice changes nothing.
QUANT_BITS = 20


def quantize(values) -> np.ndarray:
    """``values`` (float64) rounded to the nearest multiple of ``2**-QUANT_BITS``."""
    q = float(2**QUANT_BITS)
    return np.round(np.asarray(values, dtype=np.float64) * q) / q + 0.0  # + 0.0: no -0.0


def quantized(mesh):
    """``mesh`` with vertices and UVs on the storage grid: ``mesh`` itself if already there,
    else a copy (the caller's mesh is never changed)."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    uv = getattr(mesh.visual, "uv", None) if getattr(mesh.visual, "kind", None) == "texture" else None
    qv = quantize(v)
    quv = None if uv is None else quantize(uv)
    if np.array_equal(qv, v) and (uv is None or np.array_equal(quv, np.asarray(uv, dtype=np.float64))):
        return mesh
    out = mesh.copy()
    out.vertices = qv
    if quv is not None:
        out.visual.uv = quv
    return out


def _has_texture(mesh) -> bool:
    visual = mesh.visual
    return (getattr(visual, "kind", None) == "texture" and getattr(visual, "uv", None) is not None
            and getattr(getattr(visual, "material", None), "image", None) is not None)


def garment_mesh_relpath(garment_id: str, textured: bool) -> str:
    return f"meshes/{garment_id}/mesh.obj" if textured else f"meshes/{garment_id}.ply"


def save_garment(garments_dir: str | Path, garment_id: str, mesh) -> str:
    """Write ``mesh`` atomically; returns its path relative to ``garments_dir``.

    Textured meshes keep UVs and the texture image (OBJ); others keep vertex colours (PLY).
    Vertices and UVs are stored on the :func:`quantize` grid.
    """
    import trimesh

    mesh = quantized(mesh)
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
