"""Baselines without 3D learning, scored exactly like the model.

- silhouette retrieval: the training garment whose mask at the same yaw best matches the
  input mask (IoU), placed in NDC by its own view at that yaw;
- oracle retrieval: the training garment of the same category whose NDC points at that
  yaw are closest to the ground truth (paper Chamfer): a lower bound for any lookup.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anchorudf.config import Params
from anchorudf.geometry.camera import project

SEARCH_POINTS = 5000  # points per garment while searching the oracle


class Retrieval:
    def __init__(self, manifest, garments_dir: Path, render_dir: Path, cache_dir: Path, p: Params):
        from anchorudf.data.cache import load_surface
        from anchorudf.render import load_views

        self.p = p
        train = manifest[manifest["split"] == "train"]
        self.ids = list(train["id"])
        self.category = dict(zip(train["id"], train["category"]))
        rng = np.random.default_rng(p.evaluate.seed)
        self.surface, self.views = {}, {}
        for gid in self.ids:
            s = np.asarray(load_surface(cache_dir, gid), dtype=np.float64)
            self.surface[gid] = s[rng.choice(len(s), min(len(s), SEARCH_POINTS), replace=False)]
            self.views[gid] = {round(v.yaw, 6): v for v in load_views(render_dir, gid)}
        self._masks: dict[tuple[str, float], np.ndarray] = {}

    def _view(self, gid: str, yaw: float):
        v = self.views[gid].get(round(yaw, 6))
        if v is None:
            raise ValueError(f"{gid}: no rendered view at yaw {yaw} for the retrieval baseline")
        return v

    def _mask(self, gid: str, yaw: float) -> np.ndarray:
        from PIL import Image

        key = (gid, round(yaw, 6))
        if key not in self._masks:
            with Image.open(self._view(gid, yaw).mask) as im:
                self._masks[key] = np.asarray(im.convert("L")) > 127
        return self._masks[key]

    def _ndc(self, gid: str, yaw: float) -> np.ndarray:
        return project(np.asarray(self._view(gid, yaw).calib, np.float64), self.surface[gid])

    def silhouette(self, yaw: float, mask: np.ndarray) -> str:
        def iou(gid):
            m = self._mask(gid, yaw)
            return (m & mask).sum() / max((m | mask).sum(), 1)
        return max(self.ids, key=lambda g: (iou(g), g))

    def oracle(self, category: str, yaw: float, gt_ndc: np.ndarray) -> str | None:
        from anchorudf.evaluate.metrics import ndc_to_paper, paper_chamfer

        cands = [g for g in self.ids if self.category[g] == category] or self.ids
        gt01 = ndc_to_paper(gt_ndc)
        return min(cands, key=lambda g: (paper_chamfer(ndc_to_paper(self._ndc(g, yaw)), gt01), g))

    def predict(self, test_id: str, category: str, yaw: float, mask: np.ndarray, gt, calib) -> dict:
        """NDC point clouds of each baseline for one test view."""
        gt_ndc = project(calib, gt.surface[:SEARCH_POINTS].astype(np.float64))
        out = {"silhouette_retrieval": self._ndc(self.silhouette(yaw, mask), yaw)}
        best = self.oracle(category, yaw, gt_ndc)
        if best is not None:
            out["oracle_retrieval"] = self._ndc(best, yaw)
        return out
