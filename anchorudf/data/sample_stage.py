"""Stages 3a/3b: build the samples shards and the anchors cache (layout: anchorudf.data.cache).

Both stages resume: every finished garment is written atomically first (samples under
``shard-{k}/.parts/``, anchors as their final files), so a killed run redoes only the
unfinished garments. Each garment's RNG is seeded from ``(seed, crc32(garment id))``,
so a garment's data does not depend on the shard count, the worker count or the order.
A garment that fails is warned about, listed in ``failed.json`` and skipped. A finished
garment is only reused while the params, the manifest and its mesh (sha256) are the same.
Each garment's index entry records the sha256 of its mesh and of its rows.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from anchorudf.data.cache import (FORMAT, SAMPLE_ARRAYS, anchor_params, params_differ, rows_sha256, sample_params,
                                  sha256_file)
from anchorudf.utils.io import atomic_path, ensure_writable_dir, write_json
from anchorudf.utils.parallel import run_per_garment, warn_failed

if TYPE_CHECKING:
    from anchorudf.config import AnchorsConfig, SampleConfig


def garment_rng(seed: int, garment_id: str, stream: int = 0) -> np.random.Generator:
    """The RNG of one garment: independent of shards, workers and processing order."""
    return np.random.default_rng([int(seed), zlib.crc32(garment_id.encode("utf-8")), int(stream)])


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)


def _sample_one(garments_dir: str, rel: str, gid: str, cfg: SampleConfig, part: str) -> None:
    """Worker: sample one garment into ``part`` (an .npz written atomically); raises on failure."""
    from anchorudf.data.meshio import load_garment, mesh_arrays
    from anchorudf.geometry.sampling import query_points

    v, f = mesh_arrays(load_garment(garments_dir, rel))
    # one BVH thread per worker process when there are several: no oversubscription
    out = query_points(v, f, cfg, garment_rng(cfg.seed, gid), threads=1 if cfg.workers > 1 else 0)
    arrays = {name: out[name].astype(dtype) for name, dtype in SAMPLE_ARRAYS.items()}
    arrays["direction64"] = out["direction"]   # only for measuring the float16 error
    with atomic_path(part, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _anchor_one(garments_dir: str, rel: str, gid: str, cfg: AnchorsConfig, gt_points: int, folder: str) -> None:
    """Worker: k-means anchors and evaluation surface samples of one garment; raises on failure."""
    from anchorudf.data.meshio import load_garment, mesh_arrays
    from anchorudf.geometry.anchors import kmeans_anchors
    from anchorudf.geometry.sampling import surface_samples

    v, f = mesh_arrays(load_garment(garments_dir, rel))
    pts, _ = surface_samples(v, f, cfg.surface_samples, garment_rng(cfg.seed, gid, 0))
    km_seed = int(garment_rng(cfg.seed, gid, 1).integers(2**31 - 1))
    anchors = kmeans_anchors(pts, cfg.count, km_seed, cfg.method)
    surface, _ = surface_samples(v, f, gt_points, garment_rng(cfg.seed, gid, 2))
    # surface first: a garment counts as done once its anchors file exists.
    _save_npy(Path(folder) / f"{gid}_surface.npy", surface.astype(np.float32))
    _save_npy(Path(folder) / f"{gid}_anchors.npy", anchors)


def _failed_json(failed: list[dict[str, str]]) -> dict[str, str]:
    """The on-disk shape of a cache folder's ``failed.json``: {garment id: error}."""
    return {f["id"]: f["error"] for f in failed}


def _prepare(folder: Path, state: dict, clear: Callable[[], None], clear_garment: Callable[[str], None]) -> None:
    """Reset ``folder`` when the params/manifest of its finished or interrupted run differ,
    and drop the finished garments whose mesh (sha256) changed since.

    ``state`` = {"params": ..., "manifest_sha256": ..., "mesh_sha256": {id: sha256}}; kept
    in ``.state.json`` while the stage runs; ``index.json`` holds the first two and a
    ``mesh_sha256`` per garment when it is done.
    """
    state_path, index = folder / ".state.json", folder / "index.json"
    old = None
    for path in (index, state_path):
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                old = {}
            old = old if isinstance(old, dict) else {}
            break
    if old is not None and (params_differ(old.get("params", {}), state["params"])
                            or old.get("manifest_sha256") != state["manifest_sha256"]):
        clear()
    elif old is not None:
        meshes = old.get("mesh_sha256")
        if not isinstance(meshes, dict):
            meshes = {gid: e.get("mesh_sha256") for gid, e in old.get("garments", {}).items()
                      if isinstance(e, dict)}
        for gid, sha in state["mesh_sha256"].items():
            if meshes.get(gid) != sha:
                clear_garment(gid)
    if index.is_file():
        index.unlink()   # from here on the folder is "in progress" until index.json is back
    write_json(state_path, state)


def _concat_parts(shard_dir: Path, ids: list[str], parts: Path, num_classes: int,
                  meshes: dict[str, str]) -> tuple[dict, dict, dict]:
    """Stream the parts into the shard arrays; returns (arrays entry, garments entry, dir error)."""
    counts = {}
    for gid in ids:
        with np.load(parts / f"{gid}.npz") as z:
            counts[gid] = np.bincount(z["sigma_index"], minlength=num_classes)
    total = int(sum(c.sum() for c in counts.values()))
    shapes = {"points": (total, 3), "udf": (total,), "closest": (total, 3), "direction": (total, 3),
              "sigma_index": (total,)}
    arrays, garments, err = {}, {}, {"max_angle_rad": 0.0, "max_one_minus_cos": 0.0, "max_abs": 0.0}
    with _OpenArrays(shard_dir, shapes) as out:
        offset = 0
        for gid in ids:
            n = int(counts[gid].sum())
            starts = offset + np.concatenate([[0], np.cumsum(counts[gid])[:-1]])
            garments[gid] = {"offset": offset, "count": n,
                             "classes": [[int(s), int(c)] for s, c in zip(starts, counts[gid])],
                             "mesh_sha256": meshes[gid]}
            with np.load(parts / f"{gid}.npz") as z:
                for name in SAMPLE_ARRAYS:
                    out[name][offset:offset + n] = z[name]
                garments[gid]["rows_sha256"] = rows_sha256({name: out[name] for name in SAMPLE_ARRAYS},
                                                           offset, offset + n)
                _direction_error(z["direction"], z["direction64"], err)
            offset += n
    for name in SAMPLE_ARRAYS:
        path = shard_dir / f"{name}.npy"
        arrays[name] = {"file": path.name, "shape": list(shapes[name]), "dtype": SAMPLE_ARRAYS[name],
                        "sha256": sha256_file(path)}
    return arrays, garments, err


def _direction_error(d16: np.ndarray, d64: np.ndarray, acc: dict) -> None:
    if len(d64) == 0:
        return
    d = d16.astype(np.float64)
    cos = np.clip((d * d64).sum(1) / np.linalg.norm(d, axis=1), -1.0, 1.0)
    acc["max_abs"] = max(acc["max_abs"], float(np.abs(d - d64).max()))
    acc["max_one_minus_cos"] = max(acc["max_one_minus_cos"], float((1.0 - cos).max()))
    acc["max_angle_rad"] = max(acc["max_angle_rad"], float(np.arccos(cos).max()))


class _OpenArrays:
    """Shard arrays as .npy memmaps on temporary names, renamed into place on success."""

    def __init__(self, folder: Path, shapes: dict):
        self.folder, self.shapes, self._ctx, self.arrays = folder, shapes, [], {}

    def __enter__(self) -> dict:
        for name, shape in self.shapes.items():
            ctx = atomic_path(self.folder / f"{name}.npy", suffix=".npy")
            tmp = ctx.__enter__()
            self._ctx.append(ctx)
            self.arrays[name] = np.lib.format.open_memmap(tmp, mode="w+", dtype=SAMPLE_ARRAYS[name], shape=shape)
        return self.arrays

    def __exit__(self, *exc) -> None:
        for arr in self.arrays.values():
            arr.flush()
        self.arrays.clear()   # close the memmaps before the rename
        for ctx in self._ctx:
            ctx.__exit__(*exc)


def _garment_rows(garments_dir: Path, shard: int | None, num_shards: int) -> tuple[list[tuple[str, str]], dict]:
    """((id, mesh path) of the shard's garments, their state: manifest and mesh sha256s)."""
    from anchorudf.data.manifest import manifest_sha256, read_manifest, shard_rows
    from anchorudf.utils.io import mesh_sha256

    df = read_manifest(garments_dir)
    if shard is not None:
        df = shard_rows(df, shard, num_shards)
    rows = [(str(r.id), str(r.mesh)) for r in df.itertuples(index=False)]
    meshes = {}
    for gid, rel in rows:
        try:
            meshes[gid] = mesh_sha256(garments_dir / rel)
        except OSError:
            meshes[gid] = None   # missing mesh: the garment fails when its worker loads it
    return rows, {"manifest_sha256": manifest_sha256(garments_dir), "mesh_sha256": meshes}


def build_sample_shard(garments_dir: Path, cache_dir: Path, cfg: SampleConfig, shard: int) -> dict[str, Any]:
    """Sample every garment of shard ``shard`` into ``cache_dir/samples/shard-{shard}``.

    Garments come from the manifest (garment i by id goes to shard i % len(cfg.shards));
    ``cfg.workers`` processes. Returns a summary: shard, garments, points, failed
    ([{"id", "error"}], sorted by id), direction_error.
    """
    from anchorudf.geometry.sampling import class_counts

    garments_dir, cache_dir = Path(garments_dir), Path(cache_dir)
    shard_dir = ensure_writable_dir(cache_dir / "samples" / f"shard-{shard}")
    rows, provenance = _garment_rows(garments_dir, shard, len(cfg.shards))
    parts = shard_dir / ".parts"
    params = sample_params(cfg)
    state = {"params": params, **provenance}
    _prepare(shard_dir, state, lambda: shutil.rmtree(parts, ignore_errors=True),
             lambda gid: (parts / f"{gid}.npz").unlink(missing_ok=True))
    parts.mkdir(parents=True, exist_ok=True)
    todo = {gid: (str(garments_dir), rel, gid, cfg, str(parts / f"{gid}.npz"))
            for gid, rel in rows if not (parts / f"{gid}.npz").is_file()}
    _, failed = run_per_garment(_sample_one, todo, cfg.workers, f"samples shard {shard}")
    warn_failed(f"samples shard {shard}", failed)
    failed_ids = [f["id"] for f in failed]
    ids = [gid for gid, _ in rows if gid not in failed_ids]
    num_classes = len(class_counts(cfg))
    arrays, garments, derr = _concat_parts(shard_dir, ids, parts, num_classes, state["mesh_sha256"])
    write_json(shard_dir / "failed.json", _failed_json(failed))
    index = {"format": FORMAT, "kind": "samples", "shard": int(shard), "num_shards": len(cfg.shards),
             "params": params, "manifest_sha256": state["manifest_sha256"],
             "classes": ["uniform"] + [f"sigma={s}" for s in cfg.sigmas],
             "total": int(sum(g["count"] for g in garments.values())), "arrays": arrays,
             "garments": garments, "failed": failed_ids, "direction_error": derr}
    write_json(shard_dir / "index.json", index)
    shutil.rmtree(parts)
    (shard_dir / ".state.json").unlink(missing_ok=True)
    return {"shard": int(shard), "garments": len(ids), "points": index["total"], "failed": failed,
            "direction_error": derr}


def build_anchors(garments_dir: Path, cache_dir: Path, cfg: AnchorsConfig, gt_points: int,
                  workers: int = 1) -> dict[str, Any]:
    """k-means anchors and ``gt_points`` evaluation surface samples of every garment.

    Writes ``cache_dir/anchors`` (layout in anchorudf.data.cache). Returns a summary:
    garments, failed ([{"id", "error"}], sorted by id).
    """
    garments_dir = Path(garments_dir)
    folder = ensure_writable_dir(Path(cache_dir) / "anchors")
    rows, provenance = _garment_rows(garments_dir, None, 1)
    params = anchor_params(cfg, gt_points)

    def clear() -> None:
        for p in list(folder.glob("*_anchors.npy")) + list(folder.glob("*_surface.npy")):
            p.unlink()

    def clear_garment(gid: str) -> None:   # anchors first: the garment no longer counts as done
        for kind in ("anchors", "surface"):
            (folder / f"{gid}_{kind}.npy").unlink(missing_ok=True)

    state = {"params": params, **provenance}
    _prepare(folder, state, clear, clear_garment)
    todo = {gid: (str(garments_dir), rel, gid, cfg, int(gt_points), str(folder))
            for gid, rel in rows if not (folder / f"{gid}_anchors.npy").is_file()}
    _, failed = run_per_garment(_anchor_one, todo, workers, "anchors")
    warn_failed("anchors", failed)
    failed_ids = [f["id"] for f in failed]
    garments = {}
    for gid, _ in rows:
        if gid in failed_ids:
            continue
        garments[gid] = {}
        for kind in ("anchors", "surface"):
            path = folder / f"{gid}_{kind}.npy"
            arr = np.load(path, mmap_mode="r")
            garments[gid][kind] = {"file": path.name, "shape": list(arr.shape), "dtype": str(arr.dtype),
                                   "sha256": sha256_file(path)}
        garments[gid]["mesh_sha256"] = state["mesh_sha256"][gid]
    write_json(folder / "failed.json", _failed_json(failed))
    write_json(folder / "index.json", {"format": FORMAT, "kind": "anchors", "params": params,
                                       "manifest_sha256": state["manifest_sha256"],
                                       "garments": garments, "failed": failed_ids})
    (folder / ".state.json").unlink(missing_ok=True)
    return {"garments": len(garments), "failed": failed}
