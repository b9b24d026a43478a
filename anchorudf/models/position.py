"""Feature sampling at query points, anchor voxelisation and the anchored position CNN.

Axis conventions (the reference code got the 3D one wrong; tests pin ours down)
-------------------------------------------------------------------------------
- Image features: a query point's NDC ``(x, y)`` is its projection; ``grid_sample``
  takes ``(x, -y)`` because feature row 0 is the image top (NDC ``y = +1``), with
  ``align_corners=False`` (pixel centres at ``-1 + (i + 0.5) * 2 / W``), matching
  ``anchorudf.geometry.camera``.
- Volumes: a (B, C, D, H, W) grid indexed ``[.., z, y, x]``; ``grid_sample`` reads its
  5D grid's last axis as ``(x, y, z)`` -> ``(W, H, D)``, so NDC points are passed as they
  are. ``align_corners=False`` here too: voxel ``i`` of ``G`` covers NDC
  ``[-1 + 2i/G, -1 + 2(i+1)/G)`` and its value sits at that cell's centre, which is
  exactly what :func:`voxelize` writes. Outside the box both samplers clamp to the
  border (``padding_mode="border"``) instead of fading features to zero.
- Sampling runs in float32 even under autocast: a bf16 grid would quantise NDC
  coordinates to ~0.004, coarser than the 0.003 surface offsets.
- Twice differentiable on every device: the GDA loss is a loss on d f / d points, so its
  backward differentiates grid_sample's backward. PyTorch's CPU kernels allow that, its
  CUDA kernels do not ("derivative for aten::grid_sampler_2d_backward is not
  implemented", first seen on an H200). Off the CPU, a sampling whose points need a
  gradient therefore goes through :func:`gather_sample`, the same bilinear/trilinear
  interpolation written with gathers (pinned to grid_sample, values and both
  derivatives, by tests/test_models.py); everything else keeps grid_sample, and
  models in eval mode never gather (their gradients are first-order).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _fp32(t: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _use_gather(values: torch.Tensor, points: torch.Tensor, gather: bool | None) -> bool:
    """Gathers where grid_sample's backward must itself be differentiated and can't be."""
    if gather is not None:
        return gather
    return values.device.type != "cpu" and points.requires_grad and torch.is_grad_enabled()


def gather_sample(values: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``grid_sample(values, coords, "bilinear", padding_mode="border", align_corners=False)``
    written with gathers, so autograd differentiates it to any order on any device.

    values: (B, C, *S) with S = (H, W) or (D, H, W); coords: (B, N, len(S)) in grid_sample's
    order ((x, y) or (x, y, z), each in [-1, 1] over the last, second-to-last, ... axis).
    Returns (B, C, N).
    """
    b, c, *size = values.shape
    dims = len(size)
    flat = values.reshape(b, c, -1)
    corners = []  # per axis, in (x, y[, z]) order: (low index, high index, high weight)
    for a in range(dims):
        n = size[dims - 1 - a]  # x -> last axis
        # align_corners=False: pixel i's centre is at -1 + (2i + 1) / n; border padding
        # clamps the unnormalised coordinate (gradient 0 outside, as in grid_sample).
        u = (((coords[..., a] + 1.0) * n - 1.0) * 0.5).clamp(0.0, n - 1)
        lo = u.detach().floor()
        w = u - lo
        lo = lo.long()
        corners.append((lo, (lo + 1).clamp(max=n - 1), w))
    out = None
    for k in range(2 ** dims):
        index, weight = 0, 1.0
        for a in reversed(range(dims)):  # row-major: the slowest axis (z or y) first
            lo, hi, w = corners[a]
            high = (k >> a) & 1
            index = index * size[dims - 1 - a] + (hi if high else lo)
            weight = weight * (w if high else 1.0 - w)
        term = weight.unsqueeze(1) * flat.gather(2, index.unsqueeze(1).expand(b, c, index.shape[1]))
        out = term if out is None else out + term
    return out


def sample_image_features(features: torch.Tensor, points: torch.Tensor, *,
                          gather: bool | None = None) -> torch.Tensor:
    """Bilinear pixel-aligned features.

    features: (B, C, H, W) feature map of the image; points: (B, N, 2+) NDC (x, y[, z]).
    ``gather``: force (True) or forbid (False) :func:`gather_sample`; default as the module
    docstring says. Returns (B, N, C).
    """
    features = _fp32(features)
    xy = torch.stack([points[..., 0], -points[..., 1]], dim=-1).to(features.dtype)  # (B, N, 2)
    with torch.autocast(device_type=features.device.type, enabled=False):
        if _use_gather(features, points, gather):
            return gather_sample(features, xy).transpose(1, 2)
        out = F.grid_sample(features, xy.unsqueeze(2), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return out.squeeze(3).transpose(1, 2)  # (B, C, N, 1) -> (B, N, C)


def voxelize(points: torch.Tensor, grid: int) -> torch.Tensor:
    """Occupancy of NDC points in a ``grid``^3 volume over [-1, 1]^3, on the points' device.

    points: (B, K, 3) NDC (x, y, z); no gradient flows (the result is a 0/1 mask).
    Returns (B, 1, D=grid, H=grid, W=grid) in the points' dtype, indexed ``[b, 0, z, y, x]``;
    points outside the box land in the border voxel.
    """
    b, k, _ = points.shape
    with torch.no_grad():
        idx = torch.floor((points.detach().float() + 1.0) * (0.5 * grid)).long().clamp_(0, grid - 1)
        ix, iy, iz = idx.unbind(-1)  # each (B, K)
        batch = torch.arange(b, device=points.device).unsqueeze(1).expand(b, k)
        flat = ((batch * grid + iz) * grid + iy) * grid + ix  # (B, K) into (B, D, H, W)
        occ = torch.zeros(b * grid ** 3, device=points.device, dtype=points.dtype)
        occ.index_fill_(0, flat.reshape(-1), 1.0)  # idempotent: duplicates are harmless
    return occ.view(b, 1, grid, grid, grid)


def sample_volume_features(volume: torch.Tensor, points: torch.Tensor, *,
                           gather: bool | None = None) -> torch.Tensor:
    """Trilinear features of a (B, C, D, H, W) volume at (B, N, 3) NDC points -> (B, N, C).

    ``gather`` as in :func:`sample_image_features`.
    """
    volume = _fp32(volume)
    xyz = points[..., :3].to(volume.dtype)  # last axis (x, y, z)
    with torch.autocast(device_type=volume.device.type, enabled=False):
        if _use_gather(volume, points, gather):
            return gather_sample(volume, xyz).transpose(1, 2)
        out = F.grid_sample(volume, xyz.unsqueeze(2).unsqueeze(2), mode="bilinear", padding_mode="border",
                            align_corners=False)
    return out.flatten(2).transpose(1, 2)  # (B, C, N, 1, 1) -> (B, N, C)


class PositionCNN(nn.Module):
    """Anchored position encoder: (B, 1, G, G, G) anchor occupancy -> (B, out_channels, G, G, G).

    ``levels = 0``: five stride-1 3x3x3 convs at full resolution (an 11-voxel receptive
    field: a query a few voxels away from every anchor sees almost nothing). ``levels = L``
    (default 2): a small 3D U-Net: two convs at each of G, G/2, ..., G/2^L (max-pooled),
    then back up with trilinear upsampling and skip connections, so at G = 16 and L = 2 the
    coarsest convs see the whole grid, like the paper's point encoder (which pools 32^3 to
    8^3). Widths are C/4 at full resolution, C/2 at G/2 and C below (C = out_channels), so
    the full-resolution layers, which dominate the cost, stay thin.
    """

    def __init__(self, out_channels: int, levels: int = 0, widths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.levels = levels
        q, h = max(out_channels // 4, 4), max(out_channels // 2, 4)
        if levels == 0:
            widths = widths or (q, q, h, h)
            layers: list[nn.Module] = []
            c_in = 1
            for w in widths:
                layers += [nn.Conv3d(c_in, w, 3, padding=1), nn.LeakyReLU(0.2)]
                c_in = w
            layers.append(nn.Conv3d(c_in, out_channels, 3, padding=1))
            self.net = nn.Sequential(*layers)
            return
        level_widths = [q, h] + [out_channels] * (levels - 1)  # width at G / 2^l
        self.down = nn.ModuleList()
        c_in = 1
        for w in level_widths:
            self.down.append(_double_conv(c_in, w))
            c_in = w
        # up[l] fuses the upsampled level l+1 with the skip of level l.
        self.up = nn.ModuleList(_double_conv(level_widths[lv + 1] + level_widths[lv], level_widths[lv])
                                for lv in range(levels))
        self.out = nn.Conv3d(level_widths[0], out_channels, 3, padding=1)

    def forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        if occupancy.device.type == "cpu":
            # oneDNN's 3D convolutions run about 1.5x faster channels-last (measured, fwd + bwd
            # at 16^3); the result goes back to the standard layout for the samplers.
            out = self._forward(occupancy.contiguous(memory_format=torch.channels_last_3d))
            return out.contiguous()
        return self._forward(occupancy)

    def _forward(self, occupancy: torch.Tensor) -> torch.Tensor:
        if self.levels == 0:
            return self.net(occupancy)
        skips: list[torch.Tensor] = []
        x = occupancy
        for lv, block in enumerate(self.down):
            if lv > 0:
                x = F.max_pool3d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        for lv in range(self.levels - 1, -1, -1):
            skip = skips[lv]
            x = F.interpolate(x, size=skip.shape[-3:], mode="trilinear", align_corners=False)
            x = self.up[lv](torch.cat([x, skip], dim=1))
        return self.out(x)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2),
                         nn.Conv3d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2))
