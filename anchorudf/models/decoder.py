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

    def projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (T, in_dim), bias (T,)) of the input projection, T = sum(widths) + 1.

        Layer i > 0 reads ``cat([h, x])``, i.e. ``W_h h + W_x x + b``: the ``W_x x + b`` terms
        of all layers (and the first layer's whole ``W x + b``) are one matrix product,
        ``F.linear(x, weight, bias)``, instead of a concatenation and a product per layer.
        It is linear in ``x``: parts of the input columns may be projected separately and
        summed (the bias once), so a part shared by several inputs is projected once
        (``AnchorUDF.decode_stacks``)."""
        widths = [layer.out_features for layer in self.hidden]
        weights = [self.hidden[0].weight] + [layer.weight[:, w:] for layer, w in zip(self.hidden[1:], widths)]
        weights.append(self.out.weight[:, widths[-1]:])
        return torch.cat(weights, dim=0), torch.cat([layer.bias for layer in self.hidden] + [self.out.bias])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances (B, N), the activation of hidden layer :attr:`embed_layer` (B, N, embed_dim)).

        The layers one by one on ``cat([h, x])``, as the network is defined. The distances
        are exactly those of :meth:`forward` (the same operations)."""
        h, embedding = x, x
        for i, layer in enumerate(self.hidden):
            h = F.leaky_relu(layer(h if i == 0 else torch.cat([h, x], dim=-1)), 0.2)
            if i == self.embed_layer:
                embedding = h
        return self.activate(self.out(torch.cat([h, x], dim=-1)).squeeze(-1)), embedding

    def from_projection(self, proj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_with_embedding` from the input's projection (B, N, T) (:meth:`projection`).

        The same function as the layers applied to ``cat([h, x])`` (the sums are grouped
        differently: equal up to float rounding). Cheaper when several inputs share part of
        their columns (``AnchorUDF.decode_stacks``)."""
        # One split (its backward is one concatenation; slicing would zero-fill a
        # projection-sized gradient per slice).
        terms = proj.split([layer.out_features for layer in self.hidden] + [1], dim=-1)
        h, embedding = None, None
        for i, (layer, term) in enumerate(zip(self.hidden, terms)):
            h = F.leaky_relu(term if i == 0 else term + F.linear(h, layer.weight[:, :h.shape[-1]]), 0.2)
            if i == self.embed_layer:
                embedding = h
        y = terms[-1] + F.linear(h, self.out.weight[:, :h.shape[-1]])
        return self.activate(y.squeeze(-1)), embedding

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """The output activation keeping distances >= 0."""
        if self.output == "softplus":
            return F.softplus(y)
        if self.output == "abs":
            return y.abs()
        return F.relu(y)
