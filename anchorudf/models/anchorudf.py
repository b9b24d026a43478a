"""AnchorUDF: image encoder + anchor head + position feature + shared implicit decoder.

All query points and predictions are in NDC (see ``anchorudf.geometry.camera``):
distances are NDC units (garment distance times the calib scale).

Use ``forward`` for training (every stack's prediction, for deep supervision) and
``encode`` once per image + ``query`` many times for reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anchorudf.config import ModelConfig
from anchorudf.models.anchors import AnchorHead
from anchorudf.models.decoder import Decoder
from anchorudf.models.hourglass import HourglassEncoder, bottleneck_side
from anchorudf.models.position import (PositionCNN, sample_image_features, sample_volume_features,
                                       voxelize)


@dataclass
class Encoded:
    """What ``encode`` computes once per image and ``query`` reuses for any points."""

    features: list[torch.Tensor]  # stacks x (B, C, H/4, W/4) image feature maps
    anchors: torch.Tensor  # (B, K, 3) predicted anchors, NDC
    volume: torch.Tensor | None  # (B, P, G, G, G) position features [.., z, y, x]; anchors variant only


def position_dim(cfg: ModelConfig) -> int:
    """Width of the non-image part of the decoder input for ``cfg.position_feature``."""
    if cfg.position_feature == "anchors":
        return cfg.pos_channels + 3  # anchored feature + xyz
    if cfg.position_feature == "xyz":
        return 3
    if cfg.position_feature == "depth":
        return 1  # PIFu: the z coordinate alone
    raise ValueError(f"model.position_feature: unknown variant {cfg.position_feature!r}")


def apply_calib(calib: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) calib, (B, N, 3) garment-frame points -> (B, N, 3) NDC points."""
    return points @ calib[:, :3, :3].transpose(1, 2) + calib[:, None, :3, 3]


class AnchorUDF(nn.Module):
    """The network; ``anchor_count`` anchors, square ``image_size`` px RGB input."""

    def __init__(self, cfg: ModelConfig, anchor_count: int, image_size: int) -> None:
        super().__init__()
        side = bottleneck_side(image_size, cfg.depth)
        if side < 1:
            raise ValueError(f"render.size {image_size} is too small for model.depth {cfg.depth}: "
                             f"need at least {4 * 2 ** cfg.depth} px")
        self.cfg = cfg
        self.anchor_count = anchor_count
        self.image_size = image_size
        self.encoder = HourglassEncoder(cfg.stacks, cfg.depth, cfg.channels, cfg.norm)
        self.anchor_head = AnchorHead(cfg.channels, side, anchor_count, cfg.norm)
        self.position_cnn = PositionCNN(cfg.pos_channels, cfg.pos_levels) if cfg.position_feature == "anchors" else None
        self.decoder = Decoder(cfg.channels + position_dim(cfg), list(cfg.decoder), cfg.output)
        self._frozen = False

    # -- phases ------------------------------------------------------------------------
    def encoder_modules(self) -> list[nn.Module]:
        """Everything but the decoder: frozen in the GDA fine-tuning phase."""
        mods: list[nn.Module] = [self.encoder, self.anchor_head]
        if self.position_cnn is not None:
            mods.append(self.position_cnn)
        return mods

    def freeze_encoders(self, frozen: bool = True) -> None:
        """Stop gradients into the encoders and keep them in eval mode (fixed BatchNorm stats)."""
        self._frozen = frozen
        for m in self.encoder_modules():
            m.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "AnchorUDF":
        super().train(mode)
        if self._frozen:
            for m in self.encoder_modules():
                m.eval()
        return self

    # -- inference API -----------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> Encoded:
        """image (B, 3, S, S), RGB in [0, 1], S = image_size -> :class:`Encoded`."""
        if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(f"AnchorUDF expects images (B, 3, {self.image_size}, {self.image_size}), "
                             f"got {tuple(image.shape)}")
        features, bottleneck = self.encoder(image)
        anchors = self.anchor_head(bottleneck)  # (B, K, 3)
        volume = None
        if self.position_cnn is not None:
            # Detached: the position branch must not pull the anchors away from their targets.
            volume = self.position_cnn(voxelize(anchors.detach(), self.cfg.grid))
        return Encoded(features, anchors, volume)

    def decoder_input(self, enc: Encoded, points: torch.Tensor, stack: int = -1) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N, D) decoder input [image feature, position feature]."""
        parts = [sample_image_features(enc.features[stack], points)]
        kind = self.cfg.position_feature
        if kind == "anchors":
            assert enc.volume is not None
            parts += [sample_volume_features(enc.volume, points), points]
        elif kind == "xyz":
            parts.append(points)
        else:
            parts.append(points[..., 2:3])
        return torch.cat([p.to(parts[0].dtype) for p in parts], dim=-1)

    def query_all(self, enc: Encoded, points: torch.Tensor) -> list[torch.Tensor]:
        """Distances (NDC units) of every stack: stacks x (B, N)."""
        return [self.decoder(self.decoder_input(enc, points, s)) for s in range(len(enc.features))]

    def query(self, enc: Encoded, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N) distances (NDC units) of the last stack."""
        return self.decoder(self.decoder_input(enc, points, -1))

    # -- training ----------------------------------------------------------------------
    def forward(self, image: torch.Tensor, points: torch.Tensor, calib: torch.Tensor | None = None,
                with_grad: bool = False, last_only: bool = False) -> dict:
        """Predict distances at query points for every stack.

        image (B, 3, S, S); points (B, N, 3) in NDC, or in the garment frame when ``calib``
        (B, 4, 4) is given (mapped to NDC by it; distances stay NDC units).
        Returns ``udf``: stacks x (B, N); ``anchors``: (B, K, 3) NDC; with ``with_grad``
        also ``grad``: (B, N, 3) d udf[-1] / d points (one autograd pass, differentiable
        when training so a loss on it trains the decoder). ``last_only``: decode the last
        stack only (``udf`` is then a one-element list).
        """
        if with_grad and not points.requires_grad:
            points = points.detach().requires_grad_(True)
        ndc = apply_calib(calib.to(points.dtype), points) if calib is not None else points
        enc = self.encode(image)
        udf = [self.query(enc, ndc)] if last_only else self.query_all(enc, ndc)
        out = {"udf": udf, "anchors": enc.anchors}
        if with_grad:
            # Each prediction depends on its own point only, so the gradient of the sum
            # is every point's own spatial gradient.
            (grad,) = torch.autograd.grad(udf[-1].float().sum(), points,
                                          create_graph=torch.is_grad_enabled() and self.training)
            out["grad"] = grad
        return out
