"""Silhouette channels for the image encoder (``model.silhouette_input``).

A garment's depth profile follows its silhouette: a body part or a sleeve seen from the
front is thickest far from the outline and thin at it (the "inflation" prior of
sketch-based modelling). A small CNN trained for minutes must learn that distance from the
pixels; these channels hand it over: the input's mask and, per pixel, the distance to the
nearest background pixel in NDC units.

The distance is the octagonal distance of alternating square (3x3) and cross erosions
(0.83-1.06x the Euclidean one beyond 2 px: a shape prior, not a measurement), computed
on the device with pooling (no SciPy, no host round trip). The mask is read off the masked image itself (background pixels are 0
in every channel: :func:`anchorudf.data.images.image_tensors` keeps garment pixels
above 0), so every caller that feeds the model a masked image feeds it the mask too.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: Distances are capped here (NDC units; the image spans 2): wider than any garment part.
CAP_NDC = 0.5
#: The distance channel is distance / SCALE_NDC (so 0..2 for 0..CAP_NDC).
SCALE_NDC = 0.25
#: Channels :func:`silhouette_channels` appends to the RGB input.
CHANNELS = 2


def image_mask(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) masked image -> (B, 1, H, W) float {0, 1}: 1 where any channel is above 0."""
    return (image.detach().amax(dim=1, keepdim=True) > 0).to(image.dtype)


def erosion_distance(mask: torch.Tensor, iterations: int) -> torch.Tensor:
    """(B, 1, H, W) binary mask -> distance in px to the nearest pixel outside it.

    Pixels outside the mask are 0, inside pixels touching the outside 1 (as SciPy's
    ``distance_transform_edt``), capped at ``iterations + 1``. Beyond the image border is
    outside. Each round erodes the mask by a 3x3 square (odd rounds) or a cross (even
    rounds); a pixel's distance is the number of rounds it survives, plus one: the
    octagonal metric, 0.83-1.06 times the Euclidean distance beyond 2 px (tested against
    SciPy's exact transform).
    """
    m = (mask > 0.5).to(torch.float32)
    total = m.clone()
    for k in range(iterations):
        padded = F.pad(m, (1, 1, 1, 1), value=0.0)  # the border counts as background
        if k % 2 == 0:  # square: min over the 3x3 neighbourhood
            m = -F.max_pool2d(-padded, 3, stride=1)
        else:  # cross: min over the centre and its 4 neighbours
            rows = -F.max_pool2d(-padded[:, :, :, 1:-1], (3, 1), stride=1)
            cols = -F.max_pool2d(-padded[:, :, 1:-1, :], (1, 3), stride=1)
            m = torch.minimum(rows, cols)
        total = total + m
    return total


def silhouette_channels(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) masked image -> (B, 2, S, S): the mask and the distance to the
    silhouette's edge in units of ``SCALE_NDC`` (NDC distance: px x 2 / S), capped at
    ``CAP_NDC``."""
    side = image.shape[-1]
    mask = image_mask(image)
    cap_px = max(int(round(CAP_NDC * side / 2.0)), 1)
    dist = erosion_distance(mask, cap_px - 1).clamp_max(float(cap_px))
    dist = dist * (2.0 / side) / SCALE_NDC
    return torch.cat([mask, dist.to(image.dtype)], dim=1)
