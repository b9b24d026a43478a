"""The garment manifest: one row per accepted garment, and the rejects table.

``manifest.csv`` columns (in this order):

=================  ==========================================================================
id                 garment id, unique, filesystem-safe (``[A-Za-z0-9_.-]``)
category           garment category (tshirt, longsleeve, longcoat, trousers, shorts, skirt, ...)
split              ``train`` or ``test``
group              what the split keeps together: body instance (default set), MGN subject,
                   Deep Fashion3D garment instance, or the file for generic folders
source             source file (or ``anny:<spec>`` for generated garments)
mesh               normalised mesh path, relative to the garments folder
vertices, faces    counts after cleaning
boundary_loops     number of boundary loops (open edges) of the normalised mesh
scale              factor applied: garment = (R @ source - offset) * scale, in 1/source units
                   (R: the rotation taking the source's up axis to +Y; identity for +Y)
offset_x/y/z       bounding-box centre after the up rotation, in source units
status             ``ok`` or ``cleaned``
notes              what cleaning did (merged pieces, removed duplicate faces, ...)
=================  ==========================================================================

``rejects.csv`` columns: ``file``, ``reason``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from anchorudf.errors import AnchorUDFError

MANIFEST_COLUMNS = ["id", "category", "split", "group", "source", "mesh", "vertices", "faces",
                    "boundary_loops", "scale", "offset_x", "offset_y", "offset_z", "status", "notes"]
REJECT_COLUMNS = ["file", "reason"]


class GarmentSetError(RuntimeError, AnchorUDFError):
    """No usable garment set can be written (nothing valid, or rejects in strict mode)."""


def manifest_row(garment_id: str, category: str, split: str, group: str, source: str, mesh_rel: str,
                 mesh, scale: float, offset: Sequence[float], status: str = "ok", notes: str = "") -> dict[str, Any]:
    """One manifest row (keys in :data:`MANIFEST_COLUMNS` order) of a saved garment.

    ``mesh``: the normalised mesh as saved (garment frame); its vertex, face and boundary
    loop counts are recorded. ``scale`` (1/source units) and ``offset`` (3,) (source units)
    as returned by :func:`anchorudf.data.normalize.normalize_mesh`.
    """
    from anchorudf.geometry.topology import boundary_loops

    return {"id": garment_id, "category": category, "split": split, "group": group, "source": source,
            "mesh": mesh_rel, "vertices": len(mesh.vertices), "faces": len(mesh.faces),
            "boundary_loops": boundary_loops(mesh.faces), "scale": stable_float(scale),
            "offset_x": stable_float(offset[0], 1.0 / scale), "offset_y": stable_float(offset[1], 1.0 / scale),
            "offset_z": stable_float(offset[2], 1.0 / scale), "status": status, "notes": notes}


def stable_float(x: float, unit: float | None = None, digits: int = 9) -> float:
    """``x`` rounded to ``digits`` significant digits, and to 0.0 when below ``1e-9 * unit``
    (noise around zero): last-bit differences between machines give the same CSV text in
    nearly all cases (see anchorudf.data.meshio.QUANT_BITS for the vertices)."""
    x = float(x)
    if unit is not None and abs(x) < 1e-9 * abs(float(unit)):
        return 0.0
    return float(f"{x:.{digits}g}") + 0.0  # + 0.0: no -0.0


def write_manifest(garments_dir: str | Path, rows: list[dict], rejects: list[dict]) -> None:
    """Write ``manifest.csv`` (sorted by id) and ``rejects.csv`` atomically."""
    import pandas as pd

    from anchorudf.utils.io import write_text

    garments_dir = Path(garments_dir)
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS).sort_values("id", kind="stable")
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise ValueError(f"duplicate garment id {dup!r} in manifest")
    write_text(garments_dir / "manifest.csv", df.to_csv(index=False, lineterminator="\n"))
    rj = pd.DataFrame(rejects, columns=REJECT_COLUMNS).sort_values("file", kind="stable")
    write_text(garments_dir / "rejects.csv", rj.to_csv(index=False, lineterminator="\n"))


def read_manifest(garments_dir: str | Path):
    """The manifest as a pandas DataFrame sorted by id (strings kept as strings)."""
    import pandas as pd

    path = Path(garments_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no garment manifest (run the garments stage first)")
    df = pd.read_csv(path, dtype={"id": str, "category": str, "split": str, "group": str,
                                  "source": str, "mesh": str, "status": str, "notes": str},
                     keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def shard_rows(df, shard: int, num_shards: int):
    """Rows of shard ``shard`` of ``num_shards``: the i-th garment by id goes to i % n."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} out of range for {num_shards} shards")
    return df.iloc[[i for i in range(len(df)) if i % num_shards == shard]].reset_index(drop=True)


def manifest_sha256(garments_dir: str | Path) -> str:
    """sha256 of ``manifest.csv``: what every cache records as ``manifest_sha256``."""
    from anchorudf.utils.io import sha256_file

    path = Path(garments_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no garment manifest (run the garments stage first)")
    return sha256_file(path)


def mesh_sha256s(garments_dir: str | Path, df=None) -> dict[str, str]:
    """``{garment id: sha256 of its stored mesh}`` for the rows of ``df`` (default: the manifest).

    The provenance hash (:func:`anchorudf.utils.io.mesh_sha256`) that render ``views.json``,
    the samples index and the anchors index record per garment and readers compare.
    """
    from anchorudf.utils.io import mesh_sha256

    df = read_manifest(garments_dir) if df is None else df
    return {str(r.id): mesh_sha256(Path(garments_dir) / r.mesh) for r in df.itertuples(index=False)}
