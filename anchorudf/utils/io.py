"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

An interrupted run never leaves a half-written file under the final name, so a stage
that finds an output can trust it and resume from there. Also: sha256 of files and of
garment meshes (the checksums the caches record), and :func:`ensure_writable_dir`, which
every command calls on its output folders before doing any work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary name keeps the final suffix (or ``suffix``) so libraries that pick a
    format from the extension (trimesh, PIL, numpy) still do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path, block: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def mesh_sha256(path: str | Path) -> str:
    """sha256 of a stored garment mesh: the file, or for a ``mesh.obj`` in its own folder
    every file of that folder (material, texture), by name. The provenance hash that the
    render, samples and anchors caches record per garment."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: garment mesh missing")
    if path.name != "mesh.obj":
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(p for p in path.parent.iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(p.name.encode() + b"\0" + bytes.fromhex(sha256_file(p)))
    return h.hexdigest()


def ensure_writable_dir(path: str | Path, *, keep: bool = True) -> Path:
    """Create ``path`` (and parents) and check a file can be written in it, before any work.

    ``keep=False`` removes again the folders this call created (the writer creates them
    when it writes), so a command that fails later leaves nothing behind. Raises
    :class:`~anchorudf.errors.OutputError` naming the folder when it cannot be written.
    """
    from anchorudf.errors import OutputError

    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write to this folder ({exc.strerror or exc})") from None
    if not keep:
        for p in created:   # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
    return path
