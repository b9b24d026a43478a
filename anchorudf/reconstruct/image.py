"""Reconstruct one image with a trained model: dense points, mesh, predicted anchors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from anchorudf.config import EvaluateConfig

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch

    from anchorudf.models.anchorudf import AnchorUDF


@dataclass
class Reconstruction:
    """A reconstruction in the view's NDC (x right, y up, z towards the camera)."""

    points: np.ndarray            # (M, 3) float32 dense point cloud
    anchors: np.ndarray           # (K, 3) float32 predicted anchors
    mesh_vertices: np.ndarray     # (V, 3) float64 (empty when meshing is off)
    mesh_faces: np.ndarray        # (F, 3) int64
    mesh_colors: np.ndarray | None = None  # (V, 3) uint8 from the input image (reconstruct.colors)


def reconstruct_image(model: AnchorUDF, image: torch.Tensor, cfg: EvaluateConfig, delta: float, device: str = "cpu",
                      mesh: bool | None = None) -> Reconstruction:
    """Run the model on a (3, H, W) float tensor (masked RGB in [0, 1]).

    The image is encoded once; the model's UDF (``model.query``: the fine level of an
    AnchorUDF-HD model, else the coarse level's last stack) is then queried in batches of
    ``cfg.batch_points`` by the NDF projection (:func:`dense_point_cloud`) and, if
    ``mesh``, by the UDF meshing (:func:`extract_mesh`, ``cfg.mesher``).
    """
    import torch

    from anchorudf.reconstruct.dense import dense_point_cloud
    from anchorudf.reconstruct.meshing import extract_mesh

    model.eval()
    with torch.no_grad():
        feats = model.encode(image[None].to(device))
    anchors = feats.anchors[0].detach().float().cpu().numpy()

    def udf_fn(points):  # (N, 3) NDC -> (N,)
        return model.query(feats, points[None])[0]

    points = dense_point_cloud(udf_fn, cfg, delta=delta, device=device, anchors=anchors)
    v = np.zeros((0, 3))
    f = np.zeros((0, 3), dtype=np.int64)
    if (cfg.mesh if mesh is None else mesh) and len(points) > 0:
        v, f = extract_mesh(udf_fn, points, cfg, device=device)
    return Reconstruction(points=np.asarray(points, np.float32), anchors=anchors.astype(np.float32),
                          mesh_vertices=np.asarray(v, np.float64), mesh_faces=np.asarray(f, np.int64))
