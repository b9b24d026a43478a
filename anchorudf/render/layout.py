"""On-disk layout of rendered views, and reading it back (no OpenGL imports here).

Layout of a render output folder::

    shard-<k>/<garment_id>/view_<yaw:06.2f>.png   RGB image (or .jpg per render.image_format)
    shard-<k>/<garment_id>/mask_<yaw:06.2f>.png   8-bit mask, 255 on the garment, 0 elsewhere
    shard-<k>/<garment_id>/views.json             written last: the garment's completion marker
    shard-<k>/failed.json                         garments of shard k that failed, with reasons

``views.json``::

    {"garment_id": str, "size": int (pixels),
     "scale": float (NDC units per garment unit; 12 significant digits, as LAPACK's
              determinant behind it differs in the last bit across CPUs),
     "backend": str, "params": {render params that shaped the files},
     "source": {"mesh": path in the garments folder, "sha256": of the mesh (utils.io.mesh_sha256)},
     "views": [{"yaw": deg, "image": file, "mask": file, "image_sha256": ..., "mask_sha256": ...,
                "calib": 4x4 list, "light": {...}}]}

``calib`` maps homogeneous garment-frame points to NDC (see anchorudf.geometry.camera).

:func:`load_views` checks what it returns: the folder holds the garment it is named after,
the garment is not listed in its shard's ``failed.json`` (its views there would be left
from an earlier render), every image and mask matches its recorded sha256, and, when given,
the views were rendered from the garment's current mesh and with the current params. Each
failure is an :class:`~anchorudf.errors.IntegrityError` naming the file.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.errors import IntegrityError
from anchorudf.utils.io import sha256_file

if TYPE_CHECKING:
    from anchorudf.config import RenderConfig

VIEWS_JSON = "views.json"
FAILED_JSON = "failed.json"
RENDER_VERSION = 1  # bump when the look of the images changes (forces re-rendering)
_RERUN = "re-run `dvc repro` (or `anchorudf render`)"


@dataclass(frozen=True)
class View:
    """One stored view of a garment."""

    yaw: float  # degrees, camera angle around the garment (see camera.py)
    image: Path  # RGB image file
    mask: Path  # 8-bit mask file, 255 on the garment
    calib: np.ndarray  # (4, 4) float64, homogeneous garment frame -> NDC
    light: dict  # the random light used for this view (JSON values)


def view_yaws(cfg: RenderConfig) -> list[float]:
    """Yaws (degrees in [0, 360)) every garment is rendered at: the sweep plus the test yaws.

    ``cfg.yaw_step > 0`` gives ``0, step, 2 step, ... < 360``; otherwise ``cfg.yaws``. The
    union with ``cfg.test_yaws`` (all taken modulo 360) is sorted and deduplicated.
    Raises ``ValueError`` when two yaws would share a file name (closer than 0.005 degrees).
    """
    if cfg.yaw_step > 0:
        base = np.arange(0.0, 360.0, float(cfg.yaw_step)).tolist()
    else:
        base = [float(y) for y in cfg.yaws]
    yaws = sorted({round(float(y) % 360.0, 6) % 360.0 for y in [*base, *cfg.test_yaws]})
    if not yaws:
        raise ValueError("render: no yaws (yaw_step is 0 and yaws and test_yaws are empty)")
    tags = [yaw_tag(y) for y in yaws]
    if len(set(tags)) != len(tags):
        dup = next(t for t in tags if tags.count(t) > 1)
        raise ValueError(f"render: yaws too close together: several map to file tag {dup} "
                         "(yaw_step or yaws finer than 0.01 degree)")
    return yaws


def render_params(cfg: RenderConfig, yaws: list[float] | None = None) -> dict:
    """The render params that shape the files (compared on resume and by readers; JSON values)."""
    yaws = view_yaws(cfg) if yaws is None else yaws
    return {"size": cfg.size, "fill": cfg.fill, "background": list(cfg.background),
            "image_format": cfg.image_format, "jpeg_quality": cfg.jpeg_quality,
            "seed": cfg.seed, "yaws": [float(y) for y in yaws], "render_version": RENDER_VERSION}


def yaw_tag(yaw: float) -> str:
    """File-name tag of a yaw, ``040.00`` for 40 degrees."""
    return f"{yaw:06.2f}"


def image_name(yaw: float, fmt: str) -> str:
    return f"view_{yaw_tag(yaw)}.{fmt}"


def mask_name(yaw: float) -> str:
    return f"mask_{yaw_tag(yaw)}.png"


def garment_seed(seed: int, garment_id: str) -> int:
    """Per-garment seed from the stage seed and the id (crc32: stable across processes)."""
    return int(seed) * (1 << 32) + zlib.crc32(garment_id.encode("utf-8"))


def find_garment_dir(out_dir: str | Path, garment_id: str) -> Path:
    """Folder holding ``views.json`` of ``garment_id`` under a render output or shard folder."""
    out_dir = Path(out_dir)
    candidates = [out_dir / garment_id] + sorted(out_dir.glob(f"shard-*/{garment_id}"))
    done = [c for c in candidates if (c / VIEWS_JSON).is_file()]
    if not done:
        raise FileNotFoundError(f"garment {garment_id!r} is not rendered under {out_dir} "
                                f"(no shard-*/{garment_id}/{VIEWS_JSON}); run the render stage")
    if len(done) > 1:
        raise ValueError(f"garment {garment_id!r} is rendered in several places: "
                         f"{[str(d) for d in done]}")
    failed = shard_failures(done[0].parent)
    if garment_id in failed:
        raise IntegrityError(f"{done[0] / VIEWS_JSON}: stale, the last render of {done[0].parent.name} failed for "
                             f"garment {garment_id} ({failed[garment_id]}), so these views are from an earlier "
                             f"render: fix the cause and {_RERUN}")
    return done[0]


def shard_failures(shard_dir: Path) -> dict[str, str]:
    """``{garment id: error}`` of a render shard's ``failed.json`` (empty when there is none)."""
    path = Path(shard_dir) / FAILED_JSON
    if not path.is_file():
        return {}
    try:
        failed = json.loads(path.read_text())
        return {str(f["id"]): " ".join(str(f.get("error", "")).split()) for f in failed}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{path}: damaged, not a list of failed garments ({exc})") from None


def read_views_json(garment_dir: Path) -> dict:
    path = garment_dir / VIEWS_JSON
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{path}: unreadable views file ({' '.join(str(exc).split())})") from None
    if not isinstance(meta, dict):
        raise IntegrityError(f"{path}: damaged, not a views file")
    return meta


def check_views_json(gdir: Path, meta: dict, garment_id: str, *, mesh_sha256: str | None = None,
                     params: dict | None = None, files: bool = True) -> None:
    """Raise :class:`IntegrityError` unless ``meta`` (``gdir/views.json``) is current and intact.

    Checks the garment id, the recorded image/mask sha256 (with ``files``), and when given
    the mesh sha256 and the render ``params`` (all but ``yaws``, which may be a subset).
    """
    path = gdir / VIEWS_JSON
    if meta.get("garment_id") != garment_id:
        raise IntegrityError(f"{path}: holds garment {meta.get('garment_id')!r}, not {garment_id!r} "
                             "(render folders moved or swapped)")
    source, views = meta.get("source") or {}, meta.get("views") or []
    if "sha256" not in source or any("image_sha256" not in v or "mask_sha256" not in v for v in views):
        raise IntegrityError(f"{path}: made by an older version of anchorudf (no mesh and image checksums): "
                             f"{_RERUN}")
    if mesh_sha256 is not None and source["sha256"] != mesh_sha256:
        raise IntegrityError(f"{path}: stale, rendered from another mesh of garment {garment_id} (sha256 "
                             f"{str(source['sha256'])[:12]}... != current {mesh_sha256[:12]}...): {_RERUN}")
    if params is not None:
        stored = meta.get("params") or {}
        diff = [f"{k}: rendered {stored.get(k)!r} != wanted {params.get(k)!r}"
                for k in sorted((set(stored) | set(params)) - {"yaws"}) if stored.get(k) != params.get(k)]
        if diff:
            raise IntegrityError(f"{path}: stale, render params differ: {'; '.join(diff)}: {_RERUN}")
    if files:
        for v in views:
            for kind in ("image", "mask"):
                file = gdir / str(v.get(kind))
                if not file.is_file():
                    raise IntegrityError(f"{file}: missing (listed in {path})")
                digest = sha256_file(file)
                if digest != v[f"{kind}_sha256"]:
                    raise IntegrityError(f"{file}: damaged, sha256 {digest[:12]}... != recorded "
                                         f"{str(v[kind + '_sha256'])[:12]}... in {VIEWS_JSON}: {_RERUN}")


def load_views(out_dir: str | Path, garment_id: str, *, mesh_sha256: str | None = None,
               params: dict | None = None) -> list[View]:
    """The stored views of ``garment_id`` in increasing yaw order, checked (module docstring).

    ``out_dir`` is the render output folder (with ``shard-*`` folders) or one shard
    folder. ``mesh_sha256``: the garment's current mesh hash (``data.manifest.mesh_sha256s``);
    ``params``: the current :func:`render_params` (``yaws`` not compared). Raises
    ``FileNotFoundError`` when the garment has not been rendered, :class:`IntegrityError`
    when its views are damaged or stale.
    """
    gdir = find_garment_dir(out_dir, garment_id)
    meta = read_views_json(gdir)
    check_views_json(gdir, meta, garment_id, mesh_sha256=mesh_sha256, params=params)
    views = []
    for i, v in enumerate(meta.get("views", [])):
        calib = np.asarray(v["calib"], dtype=np.float64)
        if calib.shape != (4, 4) or not np.isfinite(calib).all():
            raise IntegrityError(f"{gdir / VIEWS_JSON}: damaged, view {i} has a bad calib of shape {calib.shape}")
        views.append(View(yaw=float(v["yaw"]), image=gdir / v["image"], mask=gdir / v["mask"],
                          calib=calib, light=dict(v.get("light", {}))))
    if not views:
        raise IntegrityError(f"{gdir / VIEWS_JSON}: damaged, no views recorded for garment {garment_id!r}")
    return sorted(views, key=lambda v: v.yaw)
