"""The training dataset: (garment, view) items built from the render and sample caches.

Each item follows the trainer's schema (all float32 tensors)::

    image      (3, H, W)  RGB in [0, 1], 0 outside the mask
    mask       (1, H, W)  {0, 1}
    calib      (4, 4)     garment frame -> NDC of this (augmented) view
    points     (N, 3)     query points, NDC
    udf        (N,)       exact unsigned distance, NDC units (garment distance * calib scale)
    direction  (N, 3)     unit (p - q) / |p - q|, NDC
    anchors    (K, 3)     k-means anchor targets, NDC
    depth      (2, s, s)  with model.depth_head: nearest / farthest surface z per feature
                          cell (anchorudf.train.depth), s the coarse feature map's side
    depth_covered (1, s, s) 1 where the garment covers the cell

Augmentation (flip, scale, in-plane rotation, shift) is one 2D similarity ``A`` applied in
NDC: the image is resampled through ``A``, and ``calib`` becomes ``A @ calib``, so points,
distances, directions and anchors stay consistent with the pixels by construction.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anchorudf.config import Params
from anchorudf.data.images import image_tensors, load_rgb_mask
from anchorudf.geometry.camera import calib_scale, project
from anchorudf.train.depth import depth_side, depth_targets, surface_subset


@dataclass(frozen=True)
class ViewRef:
    garment_id: str
    yaw: float
    image: Path
    mask: Path
    calib: np.ndarray  # (4, 4) float64


def augmentation_matrix(rng: np.random.Generator, flip: bool, scale_jitter: float,
                        shift_jitter: float, rotate_jitter: float = 0.0) -> np.ndarray:
    """A 4x4 similarity acting on NDC: optional x-mirror, isotropic scale, a rotation about
    the view axis (z) of up to ``rotate_jitter`` degrees, xy shift.

    The rotation is drawn last, so ``rotate_jitter=0`` gives the same matrices (and draws)
    as before it existed. Rotations about z keep depth and distances: the targets stay
    exact (:func:`transform_targets`)."""
    a = np.eye(4)
    s = 1.0 + rng.uniform(-scale_jitter, scale_jitter) if scale_jitter > 0 else 1.0
    tx, ty = (rng.uniform(-shift_jitter, shift_jitter, 2) if shift_jitter > 0 else (0.0, 0.0))
    mirror = -1.0 if (flip and rng.random() < 0.5) else 1.0
    a[:3, :3] = np.diag([mirror * s, s, s])
    if rotate_jitter > 0:
        theta = np.deg2rad(rng.uniform(-rotate_jitter, rotate_jitter))
        c, sn = np.cos(theta), np.sin(theta)
        a[:2, :2] = np.array([[c, -sn], [sn, c]]) @ a[:2, :2]
    a[0, 3], a[1, 3] = tx, ty
    return a


def warp_image(img: torch.Tensor, aug: np.ndarray, mode: str = "bilinear") -> torch.Tensor:
    """Resample a (C, H, W) image so that NDC point ``x`` moves to ``aug @ x`` (xy part)."""
    if np.allclose(aug, np.eye(4)):
        return img
    _, h, w = img.shape
    inv = np.linalg.inv(aug)
    ys = 1.0 - (2.0 * np.arange(h) + 1.0) / h
    xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
    gx, gy = np.meshgrid(xs, ys)  # output pixel centres in NDC, (H, W)
    sx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 3]
    sy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 3]
    # grid_sample takes (x, -y): row 0 is NDC y = +1.
    grid = torch.from_numpy(np.stack([sx, -sy], axis=-1).astype(np.float32))[None]
    return F.grid_sample(img[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]


def transform_targets(calib: np.ndarray, points: np.ndarray, udf: np.ndarray,
                      direction: np.ndarray, anchors: np.ndarray) -> dict[str, np.ndarray]:
    """Garment-frame targets -> NDC of ``calib`` (distances scaled, directions rotated)."""
    m3, t = calib[:3, :3], calib[:3, 3]
    d = direction @ m3.T
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return {"points": points @ m3.T + t, "udf": udf * calib_scale(calib), "direction": d,
            "anchors": anchors @ m3.T + t}


class GarmentViewDataset(torch.utils.data.Dataset):
    """(garment, view) pairs of one split; index with ``(index, seed)`` for a seeded draw.

    ``dataset[i]`` uses a seed derived from ``i`` alone; the trainer's sampler passes
    ``(i, anchorudf.train.sampler.item_seed(train.seed, step, slot, i))`` so every draw (points, augmentation) is a pure
    function of (seed, step, slot, index): resumed and distributed runs see the same items.
    """

    def __init__(self, views: list[ViewRef], reader, params: Params, augment: bool = True):
        if not views:
            raise ValueError("no training views: are the render and sample caches built?")
        self.views, self.reader, self.p, self.augment = views, reader, params, augment
        self._images: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._surface: dict[str, np.ndarray] = {}
        self.depth_side = depth_side(params)

    def _surface_samples(self, garment_id: str) -> np.ndarray:
        if garment_id not in self._surface:
            self._surface[garment_id] = surface_subset(self.reader.surface(garment_id))
        return self._surface[garment_id]

    def __len__(self) -> int:
        return len(self.views)

    def _rgb_mask(self, index: int):
        if index not in self._images:
            v = self.views[index]
            self._images[index] = load_rgb_mask(v.image, v.mask)
        return self._images[index]

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, zlib.crc32(str(key).encode()))
        v = self.views[index]
        rng = np.random.default_rng(seed)
        t = self.p.train
        aug = (augmentation_matrix(rng, t.flip, t.scale_jitter, t.shift_jitter, t.rotate_jitter) if self.augment
               else np.eye(4))
        calib = aug @ v.calib
        rgb, mask = self._rgb_mask(index)
        img, m = image_tensors(rgb, mask)
        img, m = warp_image(img, aug), (warp_image(m, aug, mode="nearest"))
        s = self.reader.draw(v.garment_id, t.points, list(t.sigma_mix), rng)
        tg = transform_targets(calib, s["points"].astype(np.float64), s["udf"].astype(np.float64),
                               s["direction"].astype(np.float64),
                               np.asarray(self.reader.anchors(v.garment_id), dtype=np.float64))
        out = {"image": img, "mask": m, "calib": torch.from_numpy(calib.astype(np.float32))}
        out.update({k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for k, a in tg.items()})
        if self.depth_side is not None:
            depth, covered = depth_targets(project(calib, self._surface_samples(v.garment_id)), self.depth_side)
            out["depth"], out["depth_covered"] = torch.from_numpy(depth), torch.from_numpy(covered)
        return out


def view_refs(render_dir: Path, garment_ids: list[str], yaws: list[float] | None = None, *,
              meshes: dict[str, str] | None = None, params: dict | None = None) -> list[ViewRef]:
    """All rendered views of ``garment_ids`` (optionally only ``yaws``), in id then yaw order.

    Every image and mask is checked against its recorded sha256 (``load_views``); with
    ``meshes`` ({id: mesh sha256}) and ``params`` (``render_params``), that the views were
    rendered from the current mesh with the current params.
    """
    from anchorudf.render import load_views

    refs = []
    for gid in garment_ids:
        sha = None if meshes is None else meshes[gid]
        for v in load_views(render_dir, gid, mesh_sha256=sha, params=params):
            if yaws is None or any(abs(v.yaw - y) < 1e-6 for y in yaws):
                refs.append(ViewRef(gid, float(v.yaw), Path(v.image), Path(v.mask),
                                    np.asarray(v.calib, dtype=np.float64)))
    return refs


def build_dataset(params: Params, split: str = "train", *, garments_dir: Path = Path("data/garments"),
                  render_dir: Path = Path("data/render"), cache_dir: Path = Path("data/cache"),
                  augment: bool | None = None) -> GarmentViewDataset:
    """The dataset of ``split`` from the pipeline's output folders, checked when it opens.

    Checked: the caches (``verify_cache``: checksums, row ranges, params, built from the
    current manifest and meshes) and the renders (``load_views``: each image and mask's
    sha256, the garment's mesh sha256, the render params); anything damaged or stale raises
    an :class:`~anchorudf.errors.IntegrityError` naming the file.
    """
    from anchorudf.data.cache import SampleReader, verify_cache
    from anchorudf.data.manifest import mesh_sha256s, read_manifest
    from anchorudf.render.layout import render_params

    verify_cache(cache_dir, sample_cfg=params.sample, anchors_cfg=params.anchors,
                 gt_points=params.evaluate.gt_points, garments_dir=garments_dir)
    df = read_manifest(garments_dir)
    ids = [i for i in df.loc[df["split"] == split, "id"]]
    reader = SampleReader(cache_dir)
    missing = sorted(set(ids) - set(reader.garment_ids))
    ids = [i for i in ids if i in set(reader.garment_ids)]
    if missing:
        import warnings

        warnings.warn(f"{len(missing)} {split} garments have no samples (failed earlier?): {missing[:5]}")
    refs = view_refs(render_dir, ids, meshes=mesh_sha256s(garments_dir, df), params=render_params(params.render))
    return GarmentViewDataset(refs, reader, params,
                              augment=(split == "train") if augment is None else augment)
