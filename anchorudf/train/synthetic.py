"""A tiny synthetic dataset following the training item schema (tests, benchmarks, DDP smoke).

Item ``i`` is a sphere (even i) or an open square patch facing the camera (odd i) placed
in NDC with sizes drawn from (seed, i); its image is the orthographic silhouette, shaded
so depth is visible. Query points, their exact unsigned distances and directions are
drawn from the key's seed (see ``anchorudf.train.sampler`` for the key protocol).
"""

from __future__ import annotations

import numpy as np

from anchorudf.config import Params


class SyntheticDataset:
    """``length`` items of ``image_size`` px, ``points`` query points, ``anchor_count`` anchors."""

    def __init__(self, length: int, image_size: int, points: int, anchor_count: int, seed: int = 0,
                 depth_side: int | None = None) -> None:
        self.length = length
        self.image_size = image_size
        self.points = points
        self.anchor_count = anchor_count
        self.seed = seed
        self.depth_side = depth_side  # feature map side of the depth targets (model.depth_head)

    @classmethod
    def from_params(cls, params: Params, length: int = 16) -> "SyntheticDataset":
        from anchorudf.train.depth import depth_side

        return cls(length, params.render.size, params.train.points, params.anchors.count, params.train.seed,
                   depth_side(params))

    def __len__(self) -> int:
        return self.length

    def _shape(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, 0xC0FFEE])
        centre = rng.uniform(-0.3, 0.3, 3)
        if index % 2 == 0:
            return {"kind": "sphere", "centre": centre, "radius": rng.uniform(0.2, 0.5)}
        return {"kind": "patch", "centre": centre, "half": rng.uniform(0.2, 0.5)}

    def _closest(self, shape: dict, p: np.ndarray) -> np.ndarray:
        """(N, 3) NDC points -> (N, 3) closest surface points."""
        c = shape["centre"]
        if shape["kind"] == "sphere":
            d = p - c
            n = np.linalg.norm(d, axis=1, keepdims=True)
            return c + d / np.maximum(n, 1e-12) * shape["radius"]
        h = shape["half"]
        q = p.copy()
        q[:, :2] = np.clip(p[:, :2], c[:2] - h, c[:2] + h)
        q[:, 2] = c[2]
        return q

    def _image(self, shape: dict) -> tuple[np.ndarray, np.ndarray]:
        s = self.image_size
        coords = (np.arange(s) + 0.5) / s * 2.0 - 1.0  # pixel centres in NDC
        x, y = np.meshgrid(coords, -coords)  # row 0 = top = NDC y +1
        c = shape["centre"]
        if shape["kind"] == "sphere":
            r2 = ((x - c[0]) ** 2 + (y - c[1]) ** 2) / shape["radius"] ** 2
            mask = r2 <= 1.0
            shade = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
        else:
            mask = (np.abs(x - c[0]) <= shape["half"]) & (np.abs(y - c[1]) <= shape["half"])
            shade = np.full_like(x, 0.6)
        depth = (c[2] + 1.0) / 2.0
        rgb = np.stack([shade, 0.5 * shade + 0.5 * depth, np.full_like(x, depth)]) * mask
        return rgb.astype(np.float32), mask[None].astype(np.float32)

    def _anchors(self, shape: dict, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index, 0xA7C])
        k = self.anchor_count
        if shape["kind"] == "sphere":
            v = rng.normal(size=(k, 3))
            return shape["centre"] + v / np.linalg.norm(v, axis=1, keepdims=True) * shape["radius"]
        uv = rng.uniform(-shape["half"], shape["half"], size=(k, 2))
        return np.concatenate([shape["centre"][:2] + uv, np.full((k, 1), shape["centre"][2])], axis=1)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = (key, 0) if isinstance(key, (int, np.integer)) else key
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic dataset: index {index} out of range 0..{self.length - 1}")
        import torch

        shape = self._shape(int(index))
        rng = np.random.default_rng(seed)
        n_near = self.points // 2
        surface = self._closest(shape, rng.uniform(-1.0, 1.0, (n_near, 3)))
        near = surface + rng.normal(0.0, 0.03, (n_near, 3))
        pts = np.concatenate([near, rng.uniform(-1.0, 1.0, (self.points - n_near, 3))])
        diff = pts - self._closest(shape, pts)
        udf = np.linalg.norm(diff, axis=1)
        direction = diff / np.maximum(udf, 1e-12)[:, None]
        image, mask = self._image(shape)
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        out = {"image": f32(image), "mask": f32(mask), "calib": f32(np.eye(4)), "points": f32(pts),
               "udf": f32(udf), "direction": f32(direction), "anchors": f32(self._anchors(shape, int(index)))}
        if self.depth_side is not None:
            from anchorudf.train.depth import depth_targets

            surf = self._closest(shape, np.random.default_rng([self.seed, index, 0xDE9]).uniform(-1, 1, (4000, 3)))
            depth, covered = depth_targets(surf, self.depth_side)
            out["depth"], out["depth_covered"] = f32(depth), f32(covered)
        return out
