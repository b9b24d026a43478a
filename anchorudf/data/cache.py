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
file, shape, dtype, sha256), ``garments`` (per id: ``offset``, ``count`` and ``classes`` =
one ``[start, count]`` per class with ``start`` an absolute row of the shard),
``direction_error`` (the measured float16 error), ``failed`` and ``manifest_sha256`` (of the
garments manifest it was built from). The anchors index has ``params`` (the
``anchors`` section and ``gt_points``) and per garment the two files with shape and sha256.

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

if TYPE_CHECKING:
    from anchorudf.config import AnchorsConfig, SampleConfig

FORMAT = 1
SAMPLE_ARRAYS = {"points": "float32", "udf": "float32", "closest": "float32",
                 "direction": "float16", "sigma_index": "int8"}
#: params keys that do not change the cache's content (ignored by the staleness check).
NON_CONTENT_KEYS = ("workers",)


class CacheError(RuntimeError):
    """A cache that is missing, damaged (checksum) or stale (made with other params)."""


def sha256_file(path: Path, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def sample_params(cfg: SampleConfig) -> dict[str, Any]:
    """What a samples shard records as its params: the ``sample`` section + derived constants."""
    from anchorudf.geometry.sampling import UNIFORM_HALF_EXTENT

    out = dataclasses.asdict(cfg)
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
    if not path.is_file():
        raise CacheError(f"{path}: missing (the stage did not finish)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CacheError(f"{path}: damaged, not valid JSON ({exc})") from None


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


def _verify_samples(cache_dir: Path, sample_cfg: SampleConfig | None) -> int:
    dirs = shard_dirs(cache_dir)
    if sample_cfg is not None:
        dirs = [Path(cache_dir) / "samples" / f"shard-{k}" for k in range(len(sample_cfg.shards))]
    if not dirs:
        raise CacheError(f"{Path(cache_dir) / 'samples'}: missing, no shard folders")
    for d in dirs:
        index = read_index(d / "index.json")
        if index.get("format") != FORMAT:
            raise CacheError(f"{d / 'index.json'}: stale, format {index.get('format')} != {FORMAT}")
        if sample_cfg is not None:
            diff = params_differ(index["params"], sample_params(sample_cfg))
            if diff:
                raise CacheError(f"{d / 'index.json'}: stale, params differ: {'; '.join(diff)}")
        for name in SAMPLE_ARRAYS:
            _check_file(d, index["arrays"][name], f"samples shard {index['shard']}, array {name}")
    return len(dirs)


def _verify_anchors(cache_dir: Path, anchors_cfg: AnchorsConfig | None, gt_points: int | None) -> int:
    folder = Path(cache_dir) / "anchors"
    index = read_index(folder / "index.json")
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
    return len(index["garments"])


def verify_cache(cache_dir: str | Path, sample_cfg: SampleConfig | None = None,
                 anchors_cfg: AnchorsConfig | None = None, gt_points: int | None = None) -> dict[str, int]:
    """Check every checksum, shape and dtype of the cache; with configs, that params match.

    Verifies ``samples/`` when it exists or ``sample_cfg`` is given, and ``anchors/`` when it
    exists or ``anchors_cfg``/``gt_points`` is given. Returns ``{"shards": n, "anchor_garments": m}``.
    Raises :class:`CacheError` naming the file and the problem (missing / damaged / stale).
    """
    cache_dir = Path(cache_dir)
    out = {"shards": 0, "anchor_garments": 0}
    want_samples = sample_cfg is not None or (cache_dir / "samples").is_dir()
    want_anchors = anchors_cfg is not None or gt_points is not None or (cache_dir / "anchors").is_dir()
    if not want_samples and not want_anchors:
        raise CacheError(f"{cache_dir}: missing, no samples/ or anchors/ cache")
    if want_samples:
        out["shards"] = _verify_samples(cache_dir, sample_cfg)
    if want_anchors:
        out["anchor_garments"] = _verify_anchors(cache_dir, anchors_cfg, gt_points)
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
            self._arrays[k] = {n: np.load(d / index["arrays"][n]["file"], mmap_mode="r") for n in self.DRAWN}
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


def _anchor_array(cache_dir: Path, garment_id: str, kind: str) -> np.ndarray:
    folder = Path(cache_dir) / "anchors"
    index = read_index(folder / "index.json")
    if garment_id not in index["garments"]:
        raise KeyError(f"garment {garment_id!r} is not in the anchors cache {folder}")
    return np.load(folder / index["garments"][garment_id][kind]["file"])


def load_samples(out_dir: str | Path, garment_id: str) -> dict[str, np.ndarray]:
    """Everything cached for one garment (garment frame), as in-memory numpy arrays.

    ``points`` (N, 3), ``udf`` (N,), ``closest`` (N, 3), ``direction`` (N, 3) float32,
    ``sigma_index`` (N,) int8, ``anchors`` (count, 3), ``surface_points`` (gt_points, 3).
    ``out_dir`` is the cache root (holding ``samples/`` and ``anchors/``).
    """
    out_dir = Path(out_dir)
    for d in shard_dirs(out_dir):
        index = read_index(d / "index.json")
        entry = index["garments"].get(garment_id)
        if entry is None:
            continue
        sl = slice(entry["offset"], entry["offset"] + entry["count"])
        out = {n: np.array(np.load(d / index["arrays"][n]["file"], mmap_mode="r")[sl]) for n in SAMPLE_ARRAYS}
        out["direction"] = out["direction"].astype(np.float32)
        out["anchors"] = _anchor_array(out_dir, garment_id, "anchors")
        out["surface_points"] = _anchor_array(out_dir, garment_id, "surface")
        return out
    raise KeyError(f"garment {garment_id!r} is not in the samples cache {out_dir / 'samples'}")
