"""Ingestion of a user garment dataset into a garments folder (manifest + normalised meshes).

For every candidate file (anchorudf.data.sources): load robustly, validate, clean
(anchorudf.data.normalize.clean_mesh), normalise to the garment frame, save with
anchorudf.data.meshio.save_garment, and build a manifest row; then split by group and
write ``manifest.csv`` / ``rejects.csv`` (anchorudf.data.manifest.write_manifest).

Bad files (empty, truncated, binary garbage, not a mesh, NaN/Inf vertices, point clouds,
only degenerate faces, missing) each give one rejects row ``file, reason`` (file relative
to the input root) and an :class:`IngestWarning`; the other files are still processed.
Errors (:class:`IngestError`, nothing written but the meshes already saved): no candidate
file at all, no garment left after the category filter, every file rejected (a dataset
with nothing valid is a mistake, not an empty success), or any reject with ``strict``.
Same input and arguments give identical bytes (manifest.csv, rejects.csv, meshes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anchorudf.data.manifest import GarmentSetError
from anchorudf.data.sources import SourceItem, discover_sources

# What a mismatched file really is, from its first bytes.
_MAGIC = [(b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG\r\n\x1a\n", "a PNG image"),
          (b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "an executable")]
_TEXT_FORMATS = (".obj", ".off", ".gltf")


class IngestError(GarmentSetError):
    """The dataset cannot be ingested; ``rejects`` lists the rejected files."""

    def __init__(self, message: str, rejects: list[dict] | None = None):
        super().__init__(message)
        self.rejects = list(rejects or [])


class IngestWarning(UserWarning):
    """One input file was rejected."""


class RejectedFile(ValueError):
    """A file that is not a usable garment mesh; the message is the plain-words reason."""


@dataclass
class IngestResult:
    """Manifest rows (MANIFEST_COLUMNS, sorted by id) and rejects (file, reason)."""

    rows: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


def _sniff(path: Path) -> None:
    """Reject empty, mislabelled and binary-garbage files before any parser sees them."""
    size = path.stat().st_size
    if size == 0:
        raise RejectedFile("empty file (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(65536)
    suffix = path.suffix.lower()
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise RejectedFile(f"not a mesh: the file is {what} with a {suffix} name")
    if suffix in _TEXT_FORMATS and b"\x00" in head:
        raise RejectedFile(f"binary garbage: {suffix} is a text format but the file holds binary data")
    if suffix == ".ply" and not head.startswith(b"ply"):
        raise RejectedFile("not a PLY file: it does not start with the 'ply' header")
    if suffix == ".glb" and not head.startswith(b"glTF"):
        raise RejectedFile("not a GLB file: it does not start with the 'glTF' header")


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) not in (b"\n", b"\r")


def _single_mesh(loaded, path: Path):
    """One Trimesh from whatever trimesh.load returned, or RejectedFile."""
    import trimesh

    if isinstance(loaded, trimesh.Scene):
        geoms = loaded.dump() if len(loaded.geometry) else []
    else:
        geoms = [loaded]
    meshes = [g for g in geoms if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        points = sum(len(g.vertices) for g in geoms if hasattr(g, "vertices"))
        if points == 0:
            raise RejectedFile(f"no mesh data found: not a valid {path.suffix.lower()} file")
        text = path.suffix.lower() in _TEXT_FORMATS
        hint = " (the file ends mid-line: truncated?)" if text and _ends_mid_line(path) else ""
        raise RejectedFile(f"point cloud only: {points} vertices and no faces{hint}")
    return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)


def _has_file_texture(mesh) -> bool:
    """True when the mesh has UVs and a texture image that came from a file."""
    visual = mesh.visual
    if getattr(visual, "kind", None) != "texture" or getattr(visual, "uv", None) is None:
        return False
    image = getattr(getattr(visual, "material", None), "image", None)
    # trimesh fills a missing material with a 2x2 placeholder; a loaded image has a path
    return image is not None and ("file_path" in image.info or image.size != (2, 2))


def load_mesh_file(path: str | Path, texture: Path | None = None):
    """Load one garment file as a Trimesh (visual kept), or raise RejectedFile(reason).

    ``texture``: image attached when the mesh has UVs but no texture from its material
    (MGN's multi_tex.jpg). Returns ``(mesh, notes)``.
    """
    import trimesh
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise RejectedFile(f"file missing (expected {path.name})")
    _sniff(path)
    try:
        loaded = trimesh.load(str(path), file_type=path.suffix.lower().lstrip("."), process=False)
    except Exception as exc:  # any parser failure is this file's problem only
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise RejectedFile(f"unreadable {path.suffix.lower()} file (truncated or corrupt): "
                           f"{type(exc).__name__}: {msg}") from exc
    mesh = _single_mesh(loaded, path)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise RejectedFile(f"{int(bad.sum())} of {len(v)} vertices have NaN/Inf coordinates")
    notes = []
    if texture is not None and not _has_file_texture(mesh):
        if getattr(mesh.visual, "uv", None) is not None:
            with Image.open(texture) as im:
                image = im.convert("RGB")
            mesh.visual = trimesh.visual.TextureVisuals(uv=np.asarray(mesh.visual.uv), image=image)
            notes.append(f"attached texture {texture.name}")
        else:
            notes.append(f"no UVs: {texture.name} not used")
    return mesh, notes


def _process(item: SourceItem, root: Path, out_dir: Path, up_axis: str, units: str) -> tuple[str, dict]:
    """Worker: one SourceItem -> ("ok", row without split) or ("reject", {file, reason})."""
    from anchorudf.data.manifest import manifest_row
    from anchorudf.data.meshio import save_garment
    from anchorudf.data.normalize import clean_mesh, normalize_mesh
    from anchorudf.data.orientation import orientation_findings

    rel = item.path.relative_to(root).as_posix()
    try:
        mesh, notes = load_mesh_file(item.path, item.texture)
        n_in = (len(mesh.vertices), len(mesh.faces))
        mesh, clean_notes = clean_mesh(mesh)
        if len(mesh.faces) == 0:
            raise RejectedFile(f"all {n_in[1]} faces are degenerate (zero area)")
        mesh, scale, offset = normalize_mesh(mesh, up_axis=up_axis, units=units)
        size = f"size {mesh.metadata['size_m']:.4g} m (source units {mesh.metadata['source_units']}"
        notes = clean_notes + notes + [size + (", guessed)" if units == "auto" else ")")]
        notes += orientation_findings(mesh)  # looks rotated: the up axis may be wrong
        mesh_rel = save_garment(out_dir, item.garment_id, mesh)
        changed = (len(mesh.vertices), len(mesh.faces)) != n_in
        row = manifest_row(item.garment_id, item.category, "", item.group, rel, mesh_rel, mesh, scale, offset,
                           status="cleaned" if changed else "ok", notes="; ".join(notes))
        return "ok", row
    except RejectedFile as exc:
        return "reject", {"file": rel, "reason": str(exc)}
    except Exception as exc:  # never let one file kill the run
        return "reject", {"file": rel, "reason": f"failed while processing: {type(exc).__name__}: {exc}"}


def assign_splits(groups: list[str], test_fraction: float, seed: int) -> dict[str, str]:
    """{group: "train" | "test"}: sorted groups shuffled with ``seed``; the first
    round(test_fraction * n) are test, at least one when n >= 2 and test_fraction > 0,
    and never all of them (at least one train group remains)."""
    uniq = sorted(set(groups))
    n = len(uniq)
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    test = {uniq[i] for i in perm[:n_test]}
    return {g: ("test" if g in test else "train") for g in uniq}


def _candidates(input_dir: Path, fmt: str, out_dir: Path, categories) -> list[SourceItem]:
    try:
        items = discover_sources(input_dir, fmt)
    except ValueError as exc:
        raise IngestError(str(exc)) from exc
    out_abs = out_dir.resolve()
    items = [it for it in items if not it.path.resolve().is_relative_to(out_abs)]
    if not items:
        raise IngestError(f"{input_dir}: no {fmt} garment files found (empty input folder?)")
    if categories is not None:
        keep = [it for it in items if it.category in set(categories)]
        if not keep:
            found = sorted({it.category for it in items})
            raise IngestError(f"{input_dir}: no garment of categories {sorted(categories)} "
                              f"(found categories {found})")
        items = keep
    return items


def _reject_list(rejects: list[dict]) -> str:
    return "\n".join(f"  {r['file']}: {r['reason']}" for r in rejects)


def suspect_orientations(rows: list[dict]) -> dict[str, str]:
    """``{garment id: orientation findings}`` of the manifest rows whose notes hold an
    ``orientation:`` finding (:mod:`anchorudf.data.orientation`)."""
    from anchorudf.data.orientation import ORIENTATION_PREFIX

    out = {}
    for r in rows:
        found = [n.strip() for n in str(r.get("notes", "")).split(";") if n.strip().startswith(ORIENTATION_PREFIX)]
        if found:
            out[str(r["id"])] = "; ".join(found)
    return out


def ingest_dataset(input_dir: Path, fmt: str, out_dir: Path, *, categories: list[str] | None,
                   test_fraction: float, seed: int, strict: bool, up_axis: str = "+Y",
                   workers: int = 1, units: str = "auto") -> IngestResult:
    """Ingest the ``fmt`` dataset ("generic", "mgn", "df3d") at ``input_dir`` into ``out_dir``.

    categories: keep only these categories (None = all). test_fraction, seed: group split
    (:func:`assign_splits`). strict: raise IngestError after processing when any file was
    rejected. up_axis: the source up axis (rotated to +Y). workers: processes (1 = inline).
    units: "auto", "mm", "cm" or "m" (only recorded in notes). Returns the rows and rejects
    written to ``out_dir/manifest.csv`` and ``out_dir/rejects.csv``.
    """
    from anchorudf.data.manifest import write_manifest
    from anchorudf.data.normalize import up_rotation
    from anchorudf.utils.parallel import run_per_garment

    input_dir, out_dir = Path(input_dir), Path(out_dir)
    up_rotation(up_axis)  # fail fast on a bad axis
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction {test_fraction} not in [0, 1)")
    items = _candidates(input_dir, fmt, out_dir, categories)
    jobs = {it.path.relative_to(input_dir).as_posix(): (it, input_dir, out_dir, up_axis, units) for it in items}
    done, crashed = run_per_garment(_process, jobs, workers, "ingest", unit="file")
    rows, rejects = [], []
    for kind, rec in done.values():
        (rows if kind == "ok" else rejects).append(rec)
    # _process turns every error into a reject; only a dead worker process ends up here.
    rejects += [{"file": f["id"], "reason": f"failed while processing: {f['error']}"} for f in crashed]
    for r in rejects:
        warnings.warn(f"{input_dir / r['file']}: rejected: {r['reason']}", IngestWarning, stacklevel=2)
    if not rows:
        raise IngestError(f"{input_dir}: no valid garment, all {len(rejects)} files rejected:\n"
                          + _reject_list(rejects), rejects)
    if strict and rejects:
        raise IngestError(f"{input_dir}: {len(rejects)} of {len(items)} files rejected "
                          f"(strict mode):\n" + _reject_list(rejects), rejects)
    rotated = suspect_orientations(rows)
    if rotated:
        warnings.warn(f"{input_dir}: {len(rotated)} of {len(rows)} garments look rotated in the garment frame "
                      f"(+Y up, front +Z) with up axis {up_axis.strip()}; check --up-axis / garments.up_axis "
                      f"(manifest notes 'orientation:'): " + ", ".join(sorted(rotated)[:10])
                      + (" ..." if len(rotated) > 10 else ""), IngestWarning, stacklevel=2)
    split = assign_splits([r["group"] for r in rows], test_fraction, seed)
    for r in rows:
        r["split"] = split[r["group"]]
    rows.sort(key=lambda r: r["id"])
    rejects.sort(key=lambda r: r["file"])
    write_manifest(out_dir, rows, rejects)
    return IngestResult(rows=rows, rejects=rejects)
