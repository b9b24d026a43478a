"""On-disk layout of rendered views, and reading it back (no OpenGL imports here).

Layout of a render output folder::

    shard-<k>/<garment_id>/view_<yaw:06.2f>.png   RGB image (or .jpg per render.image_format)
    shard-<k>/<garment_id>/mask_<yaw:06.2f>.png   8-bit mask, 255 on the garment, 0 elsewhere
    shard-<k>/<garment_id>/views.json             written last: the garment's completion marker
    shard-<k>/failed.json                         garments of shard k that failed, with reasons

``views.json``::

    {"garment_id": str, "size": int (pixels), "scale": float (NDC units per garment unit),
     "backend": str, "params": {render params that shaped the files},
     "views": [{"yaw": deg, "image": file, "mask": file, "calib": 4x4 list, "light": {...}}]}

``calib`` maps homogeneous garment-frame points to NDC (see anchorudf.geometry.camera).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anchorudf.config import RenderConfig

VIEWS_JSON = "views.json"
FAILED_JSON = "failed.json"


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
    return done[0]


def read_views_json(garment_dir: Path) -> dict:
    path = garment_dir / VIEWS_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable views file ({exc})") from exc


def load_views(out_dir: str | Path, garment_id: str) -> list[View]:
    """The stored views of ``garment_id`` in increasing yaw order.

    ``out_dir`` is the render output folder (with ``shard-*`` folders) or one shard
    folder. Raises ``FileNotFoundError`` when the garment has not been rendered.
    """
    gdir = find_garment_dir(out_dir, garment_id)
    meta = read_views_json(gdir)
    views = []
    for i, v in enumerate(meta.get("views", [])):
        calib = np.asarray(v["calib"], dtype=np.float64)
        if calib.shape != (4, 4) or not np.isfinite(calib).all():
            raise ValueError(f"{gdir / VIEWS_JSON}: view {i} has a bad calib of shape {calib.shape}")
        views.append(View(yaw=float(v["yaw"]), image=gdir / v["image"], mask=gdir / v["mask"],
                          calib=calib, light=dict(v.get("light", {}))))
    if not views:
        raise ValueError(f"{gdir / VIEWS_JSON}: no views recorded for garment {garment_id!r}")
    return sorted(views, key=lambda v: v.yaw)
