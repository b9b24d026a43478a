"""A rendered view's image and mask: read from the render stage's files, made model input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the functions (fast CLI start-up)
    import torch


def load_rgb_mask(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W) bool mask from the render stage's files."""
    from PIL import Image

    with Image.open(image_path) as im:
        rgb = np.asarray(im.convert("RGB"))
    with Image.open(mask_path) as im:
        mask = np.asarray(im.convert("L")) > 127
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"{image_path}: image {rgb.shape[:2]} and mask {mask.shape} differ in size")
    return rgb, mask


def image_tensors(rgb: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked (3, H, W) float image in [0, 1] and (1, H, W) mask.

    Background pixels are 0 in every channel and garment pixels are not: a pure black
    garment pixel becomes 1/255 grey, so the mask can be read back off the image
    (``anchorudf.models.silhouette.image_mask``)."""
    import torch

    m = torch.from_numpy(mask.astype(np.float32))[None]
    img = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1) * m
    black = (img.amax(dim=0, keepdim=True) == 0) & (m > 0)
    return torch.where(black, torch.full_like(img, 1.0 / 255.0), img), m
