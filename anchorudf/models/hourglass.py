"""Stacked-hourglass image encoder (Newell et al. 2016, as used by PIFu and AnchorUDF).

A stem downsamples the image 4x (512 px -> 128x128 feature maps in the paper), then
``stacks`` hourglasses of ``depth`` levels each refine one feature map. Every stack emits
its own feature map (all are supervised through the shared decoder) and the last
hourglass also exposes its bottleneck (its lowest-resolution features), on which the
anchor head sits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def make_norm(kind: str, channels: int) -> nn.Module:
    """GroupNorm (default; no train/eval gap) or BatchNorm2d over ``channels``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind != "group":
        raise ValueError(f"model.norm: unknown normalisation {kind!r} (expected 'group' or 'batch')")
    groups = math.gcd(32, channels)
    # Keep at least two channels per group where possible (one per group is InstanceNorm).
    while groups > 1 and channels // groups < 2:
        groups //= 2
    return nn.GroupNorm(groups, channels)


class Residual(nn.Module):
    """Pre-activation bottleneck residual block: 1x1 -> 3x3 -> 1x1, plus a (projected) skip."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        mid = max(c_out // 2, 1)
        self.body = nn.Sequential(
            make_norm(norm, c_in), nn.ReLU(inplace=False), nn.Conv2d(c_in, mid, 1, bias=False),
            make_norm(norm, mid), nn.ReLU(inplace=False), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            make_norm(norm, mid), nn.ReLU(inplace=False), nn.Conv2d(mid, c_out, 1, bias=False),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """One recursive hourglass of ``depth`` levels; returns (output, bottleneck).

    output: (B, C, H, W) like the input; bottleneck: (B, C, H / 2^depth, W / 2^depth).
    """

    def __init__(self, depth: int, channels: int, norm: str) -> None:
        super().__init__()
        self.up = Residual(channels, channels, norm)
        self.down = Residual(channels, channels, norm)
        self.inner: nn.Module = (Hourglass(depth - 1, channels, norm) if depth > 1
                                 else Residual(channels, channels, norm))
        self.after = Residual(channels, channels, norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.up(x)
        low = self.down(F.avg_pool2d(x, 2))
        if isinstance(self.inner, Hourglass):
            low, bottleneck = self.inner(low)
        else:
            low = self.inner(low)
            bottleneck = low
        low = self.after(low)
        # Nearest upsampling to the skip's exact size (odd sizes were floored by the pool).
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest"), bottleneck


def feature_side(image_size: int) -> int:
    """Side of the encoder's feature maps for an ``image_size`` input (the 4x stem)."""
    return ((image_size + 1) // 2) // 2  # conv stride 2 (ceil), then avg-pool 2 (floor)


def bottleneck_side(image_size: int, depth: int) -> int:
    """Side of the last hourglass's bottleneck: the feature side halved ``depth`` times."""
    side = feature_side(image_size)
    for _ in range(depth):
        side //= 2
    return side


class HourglassEncoder(nn.Module):
    """Stem (4x down) + ``stacks`` hourglasses; each stack emits a (B, C, H/4, W/4) map."""

    def __init__(self, stacks: int, depth: int, channels: int, norm: str, in_channels: int = 3) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=False), make_norm(norm, c), nn.ReLU(),
            Residual(c, c, norm), nn.AvgPool2d(2), Residual(c, c, norm), Residual(c, c, norm),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, c, norm) for _ in range(stacks))
        self.refine = nn.ModuleList(
            nn.Sequential(Residual(c, c, norm), nn.Conv2d(c, c, 1, bias=False), make_norm(norm, c), nn.ReLU())
            for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks))
        # Intermediate stacks feed both their refined features and their output forward.
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks - 1))
        self.merge_outputs = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(stacks - 1))

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """image (B, in_channels, H, W) -> ([stacks x (B, C, H/4, W/4)], bottleneck of the last stack)."""
        x = self.stem(image)
        outputs: list[torch.Tensor] = []
        bottleneck = x
        for s, hourglass in enumerate(self.hourglasses):
            y, bottleneck = hourglass(x)
            y = self.refine[s](y)
            out = self.heads[s](y)
            outputs.append(out)
            if s < len(self.hourglasses) - 1:
                x = x + self.merge_features[s](y) + self.merge_outputs[s](out)
        return outputs, bottleneck


def fine_feature_side(image_size: int) -> int:
    """Side of the fine encoder's feature map for an ``image_size`` input (one stride-2 conv)."""
    return (image_size + 1) // 2


class FineEncoder(nn.Module):
    """PIFuHD's fine-level image encoder (AnchorUDF-HD, paper section 4.4): shallower and
    thinner than the coarse one, at a higher resolution.

    A stride-2 stem (no further downsampling: 1024 px -> 512x512 maps in the paper, as in
    PIFuHD's fine level), one hourglass of ``depth`` levels and a 1x1 head;
    ``channels`` feature channels (16 in PIFuHD). Returns (B, C, ceil(H/2), ceil(W/2)).
    """

    def __init__(self, channels: int, depth: int, norm: str) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False), make_norm(norm, c),
                                  nn.ReLU(), Residual(c, c, norm))
        self.hourglass = Hourglass(depth, c, norm)
        self.head = nn.Sequential(Residual(c, c, norm), nn.Conv2d(c, c, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y, _ = self.hourglass(self.stem(image))
        return self.head(y)
