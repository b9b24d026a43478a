"""Anchor head: regresses ``anchor_count`` 3D anchor points (NDC) from the last bottleneck."""

from __future__ import annotations

import torch
from torch import nn

from anchorudf.models.hourglass import make_norm

HEAD_SIDE = 4  # the convs halve the bottleneck until it is at most this side


def head_strides(side: int) -> list[int]:
    """Strides of the three convs: 2 while the map is larger than HEAD_SIDE, else 1."""
    strides = []
    for _ in range(3):
        s = 2 if side > HEAD_SIDE else 1
        strides.append(s)
        side = (side + 1) // 2 if s == 2 else side
    return strides


class AnchorHead(nn.Module):
    """3 conv + 1 FC layer -> (B, K, 3) anchors in NDC (tanh keeps them inside [-1, 1]).

    ``side`` is the bottleneck side the head is built for (it fixes the FC input size);
    a bottleneck of another size is rejected with an error naming both sizes.
    """

    def __init__(self, channels: int, side: int, anchor_count: int, norm: str) -> None:
        super().__init__()
        if anchor_count < 1:
            raise ValueError(f"anchors.count: must be >= 1, got {anchor_count}")
        if side < 1:
            raise ValueError(f"anchor head: bottleneck side {side} < 1 (image too small for the depth)")
        self.side = side
        self.anchor_count = anchor_count
        layers: list[nn.Module] = []
        out_side = side
        for stride in head_strides(side):
            layers += [nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False),
                       make_norm(norm, channels), nn.ReLU()]
            out_side = (out_side + 1) // 2 if stride == 2 else out_side
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(channels * out_side * out_side, anchor_count * 3)

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """bottleneck (B, C, side, side) -> (B, K, 3) anchors in NDC."""
        if bottleneck.shape[-1] != self.side or bottleneck.shape[-2] != self.side:
            raise ValueError(f"anchor head built for a {self.side}x{self.side} bottleneck, got "
                             f"{tuple(bottleneck.shape[-2:])}: is the image the model's image_size?")
        x = self.convs(bottleneck).flatten(1)
        return torch.tanh(self.fc(x)).view(-1, self.anchor_count, 3)
