"""Discovery of garment files in user datasets: generic folders, MGN, Deep Fashion3D.

Each layout yields :class:`SourceItem` rows sorted by path. Nothing is loaded here; a
listed file may still turn out to be unreadable (ingestion rejects it then).

- ``generic``: any folder tree of .obj/.ply/.glb/.gltf/.off/.stl files (case-insensitive;
  hidden files and folders skipped). Category = the first folder below the root
  (lower-cased), "unknown" for files at the root; ``categories.csv`` at the root (columns
  ``file,category``, file relative to the root) overrides. Group = the file itself.
- ``mgn``: ``<root>/<subject>/{Pants,ShortPants,ShirtNoCoat,TShirtNoCoat,LongCoat}.obj``
  with ``multi_tex.jpg`` next to them; one extra folder level above the subjects is
  tolerated, and so is the root being a subject folder. Group = subject.
- ``df3d``: ``filtered_registered_mesh/<id>-<pose>/model_cleaned.obj`` (the root is that
  folder or its parent). Group = ``<id>`` (the garment instance, so its poses share a
  split). Category from ``categories.csv`` at the root (columns ``id,category``; id is the
  instance id or the full ``<id>-<pose>`` folder name), else "unknown": Deep Fashion3D
  folder names carry no category.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
FORMATS = ("generic", "mgn", "df3d")
MGN_CATEGORIES = {"Pants": "trousers", "ShortPants": "shorts", "ShirtNoCoat": "longsleeve",
                  "TShirtNoCoat": "tshirt", "LongCoat": "longcoat"}
MGN_TEXTURE = "multi_tex.jpg"
DF3D_FOLDER = "filtered_registered_mesh"
DF3D_MESH = "model_cleaned.obj"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class SourceItem:
    """One candidate garment file.

    path: the file; garment_id: unique filesystem-safe id; category: garment category;
    group: what the train/test split keeps together; texture: an image to attach when the
    mesh has UVs but no usable material (MGN's ``multi_tex.jpg``), else None.
    """

    path: Path
    garment_id: str
    category: str
    group: str
    texture: Path | None = None


def sanitize_id(text: str) -> str:
    """Filesystem-safe id: '/' -> '__', other characters outside [A-Za-z0-9_.-] -> '_'."""
    out = _UNSAFE.sub("_", text.replace("\\", "/").replace("/", "__"))
    out = re.sub(r"^[.-]+", "_", out)  # no hidden or option-like names
    return out or "garment"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _unique_ids(items: list[SourceItem], root: Path) -> list[SourceItem]:
    """Disambiguate colliding ids with a short hash of the relative path (deterministic)."""
    from collections import Counter
    from dataclasses import replace

    counts = Counter(it.garment_id for it in items)
    out = []
    for it in items:
        if counts[it.garment_id] > 1:
            digest = hashlib.sha1(_rel(it.path, root).encode("utf-8")).hexdigest()[:8]
            it = replace(it, garment_id=f"{it.garment_id}-{digest}")
        out.append(it)
    return out


def _read_csv_map(path: Path, key: str, value: str) -> dict[str, str]:
    """{key column: value column} of a small CSV file; ValueError naming the file if bad."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if key not in cols or value not in cols:
            raise ValueError(f"{path}: needs columns {key!r} and {value!r}, found {cols}")
        reader.fieldnames = cols
        table = {}
        for row in reader:
            k, v = (row.get(key) or "").strip(), (row.get(value) or "").strip()
            if k and v:
                table[k.replace("\\", "/").removeprefix("./") if key == "file" else k] = v
    return table


def _hidden(rel_parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") for p in rel_parts)


def _generic(root: Path) -> list[SourceItem]:
    csv_path = root / "categories.csv"
    overrides = _read_csv_map(csv_path, "file", "category") if csv_path.is_file() else {}
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if _hidden(rel.parts) or path.suffix.lower() not in MESH_SUFFIXES:
            continue
        category = rel.parts[0].strip().lower() if len(rel.parts) > 1 else "unknown"
        category = overrides.get(rel.as_posix(), category)
        stem = rel.with_suffix("").as_posix()
        items.append(SourceItem(path=path, garment_id=sanitize_id(stem), category=category,
                                group=rel.as_posix()))
    return items


def _mgn(root: Path) -> list[SourceItem]:
    names = {f"{k.lower()}.obj": k for k in MGN_CATEGORIES}
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if _hidden(rel.parts) or len(rel.parts) > 3 or path.name.lower() not in names:
            continue
        subject = path.parent.name
        kind = names[path.name.lower()]
        texture = next((p for p in sorted(path.parent.iterdir())
                        if p.name.lower() == MGN_TEXTURE), None)
        items.append(SourceItem(path=path, garment_id=sanitize_id(f"{subject}__{kind}"),
                                category=MGN_CATEGORIES[kind], group=subject, texture=texture))
    return items


def _df3d(root: Path) -> list[SourceItem]:
    csv_path = root / "categories.csv"
    table = _read_csv_map(csv_path, "id", "category") if csv_path.is_file() else {}
    base = root / DF3D_FOLDER if (root / DF3D_FOLDER).is_dir() else root
    items = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        instance, sep, _pose = folder.name.partition("-")
        if not sep or not instance:
            continue
        category = table.get(folder.name, table.get(instance, "unknown"))
        items.append(SourceItem(path=folder / DF3D_MESH, garment_id=sanitize_id(folder.name),
                                category=category, group=instance))
    return items


def discover_sources(input_dir: str | Path, fmt: str) -> list[SourceItem]:
    """Candidate garments of ``input_dir`` in layout ``fmt`` (generic, mgn or df3d).

    Sorted by path; ids unique. A Deep Fashion3D pose folder without ``model_cleaned.obj``
    is still listed (ingestion rejects it as missing). Raises ValueError for an unknown
    format, a missing folder or a malformed ``categories.csv``; returns [] when nothing
    matches (the caller decides that this is an error).
    """
    root = Path(input_dir)
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not root.is_dir():
        raise ValueError(f"{root}: input folder does not exist")
    items = {"generic": _generic, "mgn": _mgn, "df3d": _df3d}[fmt](root)
    return _unique_ids(sorted(items, key=lambda it: _rel(it.path, root)), root)
