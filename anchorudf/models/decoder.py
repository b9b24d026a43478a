"""The implicit decoder: an MLP with the input re-concatenated at every layer after the first."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Initial prediction (NDC units) of every point: below the loss clamp delta (0.2 by
# default), so min(f, delta) passes gradient from the first step on. With a default
# initialised output layer most predictions start above delta (softplus(0) = 0.69) or at
# zero (ReLU), where the clamped L1 loss has no gradient at all.
INIT_DISTANCE = 0.05
_INIT_OUT_WEIGHT = 1e-3


def _inverse_activation(kind: str, y: float) -> float:
    if kind == "softplus":
        return math.log(math.expm1(y))
    if kind in ("abs", "relu"):
        return y
    raise ValueError(f"model.output: unknown output activation {kind!r} (softplus, abs, relu)")


class Decoder(nn.Module):
    """(B, N, in_dim) point features -> (B, N) non-negative distances (NDC units).

    Layers: Linear(in, w0), then Linear(w_{i-1} + in, w_i) for each further width, then
    Linear(w_last + in, 1); LeakyReLU between layers; ``output`` keeps the result >= 0:
    softplus (never zero gradient), abs, or relu (the paper's; can die).
    """

    def __init__(self, in_dim: int, widths: list[int], output: str) -> None:
        super().__init__()
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"model.decoder: needs at least one positive width, got {widths}")
        self.in_dim = in_dim
        self.output = output
        dims_in = [in_dim] + [w + in_dim for w in widths[:-1]]
        self.hidden = nn.ModuleList(nn.Linear(d, w) for d, w in zip(dims_in, widths))
        self.out = nn.Linear(widths[-1] + in_dim, 1)
        with torch.no_grad():
            self.out.weight.uniform_(-_INIT_OUT_WEIGHT, _INIT_OUT_WEIGHT)
            self.out.bias.fill_(_inverse_activation(output, INIT_DISTANCE))

    @property
    def embed_layer(self) -> int:
        """Index of the hidden layer whose activation is the 3D embedding of the HD level:
        the second to last (PIFuHD's merge layer: the 256 of 1024-512-256-128), or the only one."""
        return max(len(self.hidden) - 2, 0)

    @property
    def embed_dim(self) -> int:
        return self.hidden[self.embed_layer].out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances (B, N), the activation of hidden layer :attr:`embed_layer` (B, N, embed_dim)).

        The distances are exactly those of :meth:`forward` (the same operations)."""
        h = x
        embedding = x
        for i, layer in enumerate(self.hidden):
            h = F.leaky_relu(layer(h if i == 0 else torch.cat([h, x], dim=-1)), 0.2)
            if i == self.embed_layer:
                embedding = h
        y = self.out(torch.cat([h, x], dim=-1)).squeeze(-1)
        return self.activate(y), embedding

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """The output activation keeping distances >= 0."""
        if self.output == "softplus":
            return F.softplus(y)
        if self.output == "abs":
            return y.abs()
        return F.relu(y)
