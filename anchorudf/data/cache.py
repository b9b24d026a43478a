"""The sample/anchor cache: layout, checksums, verification and memory-mapped reading.

Layout under a cache root (e.g. ``data/cache``)::

    samples/shard-{k}/points.npy       (N, 3) float32  query points, garment frame
    samples/shard-{k}/udf.npy          (N,)   float32  exact unsigned distance (unsquared)
    samples/shard-{k}/closest.npy      (N, 3) float32  closest surface point
    samples/shard-{k}/direction.npy    (N, 3) float16  unit (p - q)/|p - q|
    samples/shard-{k}/sigma_index.npy  (N,)   int8     0 = uniform, i + 1 = sample.sigmas[i]
    samples/shard-{k}/failed.json      garments that could not be sampled, with the reason
    samples/shard-{k}/index.json       written last: see below
    anchors/{id}_anchors.npy           (anchors.count, 3) float32  k-means centres, sorted (x, y, z)
    anchors/{id}_surface.npy           (evaluate.gt_points, 3) float32  surface samples
    anchors/failed.json, anchors/index.json

Arrays are flat, concatenated over the shard's garments (sorted by id); within a garment
the rows are sorted by ``sigma_index``, so each class is one contiguous range. Every
``.npy`` opens with ``np.load(path, mmap_mode="r")``.

A shard's ``index.json`` holds ``format``, ``shard``, ``num_shards``, ``params`` (the
``sample`` section plus derived constants), ``classes``, ``total``, ``arrays`` (per name:
file, shape, dtype, sha256), ``garments`` (per id: ``offset``, ``count``, ``classes`` =
one ``[start, count]`` per class with ``start`` an absolute row of the shard,
``mesh_sha256`` = the garment's stored mesh it was sampled from and ``rows_sha256`` = sha256
of its rows of every array, in :data:`SAMPLE_ARRAYS` order), ``direction_error`` (the
measured float16 error), ``failed`` and ``manifest_sha256`` (of the garments manifest it was
built from). The anchors index has ``format``, ``params`` (the ``anchors`` section and
``gt_points``), ``manifest_sha256`` and per garment the two files with shape, dtype and
sha256, and ``mesh_sha256``.

What readers check (:func:`verify_cache`, and :func:`load_samples` / :func:`load_surface`
for what they read): the format (an index of an older version is refused with "re-run"),
every file's sha256, shape and dtype, that the garments' row ranges tile the arrays exactly
(in range, no overlap or gap, classes inside their garment, counts adding up) and that each
garment's rows hash to its ``rows_sha256``; given the garments folder, that
``manifest_sha256`` is the current ``manifest.csv``'s and each ``mesh_sha256`` the current
mesh's. Every failure is a :class:`CacheError` (an :class:`~anchorudf.errors.IntegrityError`)
naming the file and the problem.

Why float16 directions: they are unit vectors, each component rounded to within 2^-12
(2.4e-4). Measured on 2M random unit vectors: angle to the float64 direction <= 4.1e-4 rad,
1 - cos <= 8.3e-8 (after renormalising), |norm - 1| <= 4.2e-4 (so a raw dot product is off by
<= 4.2e-4). Every shard stores its own measured maxima in ``direction_error``. That is far
below what the gradient-alignment loss 1 - cos(grad f, p - q) can resolve, and it halves the
array.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anchorudf.errors import IntegrityError
from anchorudf.utils.io import sha256_file

if TYPE_CHECKING:
    from anchorudf.config import AnchorsConfig, SampleConfig

FORMAT = 2   # 2: per-garment mesh_sha256 and rows_sha256, anchors index format and mesh_sha256
SAMPLE_ARRAYS = {"points": "float32", "udf": "float32", "closest": "float32",
                 "direction": "float16", "sigma_index": "int8"}
#: params keys that do not change the cache's content (ignored by the staleness check).
NON_CONTENT_KEYS = ("workers",)


class CacheError(RuntimeError, IntegrityError):
    """A cache that is missing, damaged (checksum, index ranges) or stale (made with other
    params, from another manifest or mesh, or by an older version)."""


def rows_sha256(arrays: dict[str, np.ndarray], start: int, stop: int) -> str:
    """sha256 of rows ``[start, stop)`` of every array of :data:`SAMPLE_ARRAYS`, in that order."""
    h = hashlib.sha256()
    for name, dtype in SAMPLE_ARRAYS.items():
        h.update(np.ascontiguousarray(arrays[name][start:stop], dtype=dtype))
    return h.hexdigest()


def sample_params(cfg: SampleConfig) -> dict[str, Any]:
    """What a samples shard records as its params: the ``sample`` section + derived constants,
    without :data:`NON_CONTENT_KEYS` (the worker count changes no byte of the shard, so it
    must not change its index either)."""
    from anchorudf.geometry.sampling import UNIFORM_HALF_EXTENT

    out = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NON_CONTENT_KEYS}
    out["uniform_half_extent"] = UNIFORM_HALF_EXTENT
    return out


def anchor_params(cfg: AnchorsConfig, gt_points: int) -> dict[str, Any]:
    """What the anchors index records as its params: ``anchors`` section + ``gt_points``."""
    return {**dataclasses.asdict(cfg), "gt_points": int(gt_points)}


def params_differ(stored: dict, wanted: dict) -> list[str]:
    """Keys whose values differ (ignoring :data:`NON_CONTENT_KEYS`), as ``key: a != b``."""
    keys = sorted((set(stored) | set(wanted)) - set(NON_CONTENT_KEYS))
    return [f"{k}: cached {stored.get(k)!r} != wanted {wanted.get(k)!r}"
            for k in keys if stored.get(k) != wanted.get(k)]


def read_index(path: Path) -> dict:
    """A cache ``index.json`` of this version's :data:`FORMAT` (else a one-line CacheError)."""
    path = Path(path)
    stage = "anchors" if path.parent.name == "anchors" else "sample"
    if not path.is_file():
        raise CacheError(f"{path}: missing (the stage did not finish)")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(f"{path}: damaged, not valid JSON ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("garments"), dict):
        raise CacheError(f"{path}: damaged, not a cache index (no garments table)")
    fmt = index.get("format")
    if fmt != FORMAT:
        older = fmt is None or (isinstance(fmt, int) and fmt < FORMAT)
        raise CacheError(f"{path}: made by {'an older' if older else 'another'} version of anchorudf "
                         f"(format {fmt}, this version reads {FORMAT}): re-run `dvc repro` "
                         f"(or `anchorudf {stage}`)")
    return index


def _check_manifest(index_path: Path, index: dict, garments_dir: Path) -> None:
    from anchorudf.data.manifest import manifest_sha256

    current = manifest_sha256(garments_dir)
    recorded = str(index.get("manifest_sha256"))
    if recorded != current:
        raise CacheError(f"{index_path}: stale, built from another {Path(garments_dir) / 'manifest.csv'} "
                         f"(sha256 {current[:12]}... != recorded {recorded[:12]}...): re-run `dvc repro`")


def _check_meshes(index_path: Path, index: dict, meshes: dict[str, str]) -> None:
    """Each garment of the index was made from the mesh the manifest points to now."""
    for gid, entry in sorted(index["garments"].items()):
        recorded = str(entry.get("mesh_sha256"))
        if gid not in meshes:
            raise CacheError(f"{index_path}: stale, garment {gid} is not in the current manifest: re-run `dvc repro`")
        if recorded != meshes[gid]:
            raise CacheError(f"{index_path}: stale, garment {gid} was made from another mesh (sha256 "
                             f"{recorded[:12]}... != current {meshes[gid][:12]}...): re-run `dvc repro`")


def _check_file(folder: Path, entry: dict, what: str) -> None:
    path = folder / entry["file"]
    if not path.is_file():
        raise CacheError(f"{path}: missing ({what})")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise CacheError(f"{path}: damaged, sha256 {digest[:12]}... != recorded {entry['sha256'][:12]}... ({what})")
    arr = np.load(path, mmap_mode="r")
    if list(arr.shape) != list(entry["shape"]) or str(arr.dtype) != entry["dtype"]:
        raise CacheError(f"{path}: damaged, {arr.dtype}{list(arr.shape)} != recorded "
                         f"{entry['dtype']}{entry['shape']} ({what})")


def shard_dirs(cache_dir: Path) -> list[Path]:
    """Existing ``samples/shard-{k}`` folders, by k."""
    root = Path(cache_dir) / "samples"
    found = [p for p in root.glob("shard-*") if p.is_dir() and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


def _garment_range(index_path: Path, gid: str, entry: dict, start: int) -> int:
    """Check one garment's ``offset``/``count``/``classes`` (rows from ``start``); returns its end."""
    entry = entry if isinstance(entry, dict) else {}
    off, count, classes = entry.get("offset"), entry.get("count"), entry.get("classes")
    if not (type(off) is int and type(count) is int and count >= 0 and isinstance(classes, list)):
        raise CacheError(f"{index_path}: damaged, garment {gid} has no valid offset/count/classes")
    if off != start:
        what = "overlap the previous garment" if off < start else "leave a gap after the previous garment"
        raise CacheError(f"{index_path}: damaged, garment {gid} rows start at {off} and {what} "
                         f"(expected {start})")
    row = off
    for c in classes:
        if not (isinstance(c, list) and len(c) == 2 and all(type(x) is int for x in c) and c[0] == row
                and c[1] >= 0):
            raise CacheError(f"{index_path}: damaged, garment {gid} class ranges {classes} do not tile "
                             f"its rows [{off}, {off + count})")
        row += c[1]
    if row != off + count:
        raise CacheError(f"{index_path}: damaged, garment {gid} class counts add up to {row - off}, "
                         f"not its count {count}")
    return off + count


def _check_rows(index_path: Path, index: dict, arrays: dict[str, np.ndarray]) -> None:
    """The garments' row ranges tile ``[0, total)`` and each garment's rows match its sha256."""
    n = len(arrays["points"])
    if index.get("total") != n:
        raise CacheError(f"{index_path}: damaged, total {index.get('total')} != {n} rows in the arrays")

    def start(item):   # non-integer offsets sort first and fail in _garment_range
        off = item[1].get("offset") if isinstance(item[1], dict) else None
        return (off if type(off) is int else -1, item[0])

    order = sorted(index["garments"].items(), key=start)
    end = 0
    for gid, entry in order:
        end = _garment_range(index_path, gid, entry, end)
    if end != n:
        raise CacheError(f"{index_path}: damaged, the garments' rows end at {end}, the arrays have {n}")
    for gid, entry in order:
        _check_garment_rows(index_path, gid, entry, arrays)


def _check_garment_rows(index_path: Path, gid: str, entry: dict, arrays: dict[str, np.ndarray]) -> None:
    off, count = entry["offset"], entry["count"]
    if not 0 <= off <= off + count <= len(arrays["points"]):
        raise CacheError(f"{index_path}: damaged, garment {gid} rows [{off}, {off + count}) are outside "
                         f"the {len(arrays['points'])} rows of the arrays")
    if "rows_sha256" not in entry or "mesh_sha256" not in entry:
        raise CacheError(f"{index_path}: damaged, garment {gid} has no rows_sha256/mesh_sha256")
    if rows_sha256(arrays, off, off + count) != entry["rows_sha256"]:
        raise CacheError(f"{index_path}: damaged, the rows [{off}, {off + count}) of garment {gid} do not "
                         "match its recorded rows_sha256 (offsets edited or rows moved)")


def _open_arrays(d: Path, index: dict, names=tuple(SAMPLE_ARRAYS)) -> dict[str, np.ndarray]:
    return {n: np.load(d / index["arrays"][n]["file"], mmap_mode="r") for n in names}


def _verify_samples(cache_dir: Path, sample_cfg: SampleConfig | None, garments_dir: Path | None,
                    meshes: dict[str, str] | None) -> int:
    dirs = shard_dirs(cache_dir)
    if sample_cfg is not None:
        dirs = [Path(cache_dir) / "samples" / f"shard-{k}" for k in range(len(sample_cfg.shards))]
    if not dirs:
        raise CacheError(f"{Path(cache_dir) / 'samples'}: missing, no shard folders")
    for d in dirs:
        index = read_index(d / "index.json")
        if sample_cfg is not None:
            diff = params_differ(index["params"], sample_params(sample_cfg))
            if diff:
                raise CacheError(f"{d / 'index.json'}: stale, params differ: {'; '.join(diff)}")
        if garments_dir is not None:
            _check_manifest(d / "index.json", index, garments_dir)
        for name in SAMPLE_ARRAYS:
            _check_file(d, index["arrays"][name], f"samples shard {index['shard']}, array {name}")
        _check_rows(d / "index.json", index, _open_arrays(d, index))
        if meshes is not None:
            _check_meshes(d / "index.json", index, meshes)
    return len(dirs)


def _verify_anchors(cache_dir: Path, anchors_cfg: AnchorsConfig | None, gt_points: int | None,
                    garments_dir: Path | None, meshes: dict[str, str] | None) -> int:
    folder = Path(cache_dir) / "anchors"
    index = read_index(folder / "index.json")
    if garments_dir is not None:
        _check_manifest(folder / "index.json", index, garments_dir)
    if anchors_cfg is not None:
        wanted = anchor_params(anchors_cfg, gt_points if gt_points is not None else index["params"]["gt_points"])
        diff = params_differ(index["params"], wanted)
        if diff:
            raise CacheError(f"{folder / 'index.json'}: stale, params differ: {'; '.join(diff)}")
    elif gt_points is not None and index["params"].get("gt_points") != int(gt_points):
        raise CacheError(f"{folder / 'index.json'}: stale, gt_points {index['params'].get('gt_points')} != {gt_points}")
    for gid, entry in sorted(index["garments"].items()):
        for kind in ("anchors", "surface"):
            _check_file(folder, entry[kind], f"garment {gid}, {kind}")
    if meshes is not None:
        _check_meshes(folder / "index.json", index, meshes)
    return len(index["garments"])


def verify_cache(cache_dir: str | Path, sample_cfg: SampleConfig | None = None,
                 anchors_cfg: AnchorsConfig | None = None, gt_points: int | None = None, *,
                 garments_dir: str | Path | None = None, only: str | None = None) -> dict[str, int]:
    """Check every checksum, shape, dtype and row range of the cache; with configs, that
    params match; with ``garments_dir``, that it was built from the current manifest and meshes.

    Verifies ``samples/`` when it exists or ``sample_cfg`` is given, and ``anchors/`` when it
    exists or ``anchors_cfg``/``gt_points`` is given; ``only="samples"``/``"anchors"`` limits
    it to one. Returns ``{"shards": n, "anchor_garments": m}``. Raises :class:`CacheError`
    naming the file and the problem (missing / damaged / stale / older version).
    """
    cache_dir = Path(cache_dir)
    out = {"shards": 0, "anchor_garments": 0}
    want_samples = only in (None, "samples") and (sample_cfg is not None or (cache_dir / "samples").is_dir())
    want_anchors = only in (None, "anchors") and (anchors_cfg is not None or gt_points is not None
                                                  or (cache_dir / "anchors").is_dir())
    if not want_samples and not want_anchors:
        raise CacheError(f"{cache_dir}: missing, no {only + '/' if only else 'samples/ or anchors/'} cache")
    meshes = None
    if garments_dir is not None:
        from anchorudf.data.manifest import mesh_sha256s

        garments_dir = Path(garments_dir)
        meshes = mesh_sha256s(garments_dir)
    if want_samples:
        out["shards"] = _verify_samples(cache_dir, sample_cfg, garments_dir, meshes)
    if want_anchors:
        out["anchor_garments"] = _verify_anchors(cache_dir, anchors_cfg, gt_points, garments_dir, meshes)
    return out


class SampleReader:
    """Memory-mapped random access to a samples cache (opened once, read row by row).

    ``draw`` reads only the drawn rows: sorted row indices into the memmaps, never a whole
    shard, so drawing 5000 points costs ~5000 * 40 bytes of I/O, not the garment's arrays.
    """

    #: arrays ``draw`` returns (``closest`` stays on disk; ``load_samples`` has it).
    DRAWN = ("points", "udf", "direction", "sigma_index")

    def __init__(self, cache_dir: str | Path):
        self.cache_dir = Path(cache_dir)
        self._arrays: dict[int, dict[str, np.ndarray]] = {}
        self._where: dict[str, tuple[int, dict]] = {}
        dirs = shard_dirs(self.cache_dir)
        if not dirs:
            raise CacheError(f"{self.cache_dir / 'samples'}: missing, no shard folders")
        self.num_classes = None
        for d in dirs:
            index = read_index(d / "index.json")
            k = int(index["shard"])
            self._arrays[k] = _open_arrays(d, index, self.DRAWN)
            self.num_classes = len(index["classes"])
            self.classes = list(index["classes"])
            for gid, entry in index["garments"].items():
                self._where[gid] = (k, entry)
        self._anchors: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict:
        # Pickle the path only: a memmap would pickle as a full in-memory copy of the shard
        # (e.g. when a DataLoader spawns workers); the copy reopens the files instead.
        return {"cache_dir": self.cache_dir}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["cache_dir"])

    @property
    def garment_ids(self) -> list[str]:
        return sorted(self._where)

    def _entry(self, garment_id: str) -> tuple[int, dict]:
        if garment_id not in self._where:
            raise KeyError(f"garment {garment_id!r} is not in the samples cache {self.cache_dir}")
        return self._where[garment_id]

    def draw(self, garment_id: str, n: int, mix: list[float], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` stored points of ``garment_id`` whose classes follow ``mix``.

        ``mix`` = shares of [uniform, sigma_0, sigma_1, ...] (normalised; exact integer counts
        by largest remainder). Rows are drawn without replacement when a class has enough,
        else with replacement, and come back grouped by class in storage order. Returns
        ``points`` (n, 3), ``udf`` (n,), ``direction`` (n, 3) float32 and ``sigma_index`` (n,) int8.
        """
        from anchorudf.geometry.sampling import split_counts

        shard, entry = self._entry(garment_id)
        if len(mix) != len(entry["classes"]):
            raise ValueError(f"mix: needs {len(entry['classes'])} shares ({self.classes}), got {len(mix)}")
        want = split_counts(int(n), mix)
        rows = []
        for c, (k, (start, count)) in enumerate(zip(want, entry["classes"])):
            if k == 0:
                continue
            if count == 0:
                raise ValueError(f"mix: asks for {k} points of class {self.classes[c]!r} but garment "
                                 f"{garment_id!r} has none in the cache")
            pick = rng.choice(count, size=int(k), replace=bool(k > count))
            rows.append(start + np.sort(pick))
        idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        arrays = self._arrays[shard]
        out = {name: np.asarray(arrays[name][idx]) for name in self.DRAWN}
        out["direction"] = out["direction"].astype(np.float32)
        return out

    def anchors(self, garment_id: str) -> np.ndarray:
        """(count, 3) float32 anchors of ``garment_id`` (garment frame)."""
        if garment_id not in self._anchors:
            self._anchors[garment_id] = _anchor_array(self.cache_dir, garment_id, "anchors")
        return self._anchors[garment_id]

    def surface(self, garment_id: str) -> np.ndarray:
        """(gt_points, 3) float32 surface samples of ``garment_id`` (garment frame; checksum
        checked on every call: callers keep what they need)."""
        return _anchor_array(self.cache_dir, garment_id, "surface")


def _anchor_array(cache_dir: Path, garment_id: str, kind: str) -> np.ndarray:
    """The ``kind`` array of ``garment_id``, after checking its sha256, shape and dtype."""
    folder = Path(cache_dir) / "anchors"
    index = read_index(folder / "index.json")
    if garment_id not in index["garments"]:
        raise KeyError(f"garment {garment_id!r} is not in the anchors cache {folder}")
    entry = index["garments"][garment_id][kind]
    _check_file(folder, entry, f"garment {garment_id}, {kind}")
    return np.load(folder / entry["file"])


def load_surface(cache_dir: str | Path, garment_id: str) -> np.ndarray:
    """(gt_points, 3) float32 evaluation surface samples of ``garment_id`` (checksum checked)."""
    return _anchor_array(Path(cache_dir), garment_id, "surface")


def load_samples(out_dir: str | Path, garment_id: str) -> dict[str, np.ndarray]:
    """Everything cached for one garment (garment frame), as in-memory numpy arrays.

    ``points`` (N, 3), ``udf`` (N,), ``closest`` (N, 3), ``direction`` (N, 3) float32,
    ``sigma_index`` (N,) int8, ``anchors`` (count, 3), ``surface_points`` (gt_points, 3).
    ``out_dir`` is the cache root (holding ``samples/`` and ``anchors/``). What it reads is
    checked: the garment's rows against its ``rows_sha256``, the anchor files' sha256.
    """
    out_dir = Path(out_dir)
    for d in shard_dirs(out_dir):
        index = read_index(d / "index.json")
        entry = index["garments"].get(garment_id)
        if entry is None:
            continue
        arrays = _open_arrays(d, index)
        _garment_range(d / "index.json", garment_id, entry, entry.get("offset"))
        _check_garment_rows(d / "index.json", garment_id, entry, arrays)
        sl = slice(entry["offset"], entry["offset"] + entry["count"])
        out = {n: np.array(arrays[n][sl]) for n in SAMPLE_ARRAYS}
        out["direction"] = out["direction"].astype(np.float32)
        out["anchors"] = _anchor_array(out_dir, garment_id, "anchors")
        out["surface_points"] = _anchor_array(out_dir, garment_id, "surface")
        return out
    raise KeyError(f"garment {garment_id!r} is not in the samples cache {out_dir / 'samples'}")
