"""AnchorUDF: image encoder + anchor head + position feature + shared implicit decoder.

All query points and predictions are in NDC (see ``anchorudf.geometry.camera``):
distances are NDC units (garment distance times the calib scale).

Use ``forward`` for training (every stack's prediction, for deep supervision) and
``encode`` once per image + ``query`` many times for reconstruction.

Input sizes: the model takes ``image_size`` px images (``render.size``); the coarse level
sees them area-downsampled to ``model.coarse_size`` (by a whole factor, so every coarse
pixel is the mean of an aligned block of fine pixels and both images cover the same NDC
square). AnchorUDF-HD (``model.hd_enabled``, paper section 4.4 / PIFuHD) adds a fine level:
a fine image encoder on the full-size image, and a fine decoder reading the fine
pixel-aligned feature together with the coarse decoder's intermediate activation (the
"3D embedding"). ``query`` returns the fine level's distances for HD models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from anchorudf.config import ModelConfig
from anchorudf.models import silhouette
from anchorudf.models.anchors import AnchorHead
from anchorudf.models.decoder import Decoder
from anchorudf.models.hourglass import FineEncoder, HourglassEncoder, bottleneck_side, fine_feature_side
from anchorudf.models.position import (PositionCNN, sample_image_features, sample_volume_features,
                                       voxelize)


@dataclass
class Encoded:
    """What ``encode`` computes once per image and ``query`` reuses for any points."""

    features: list[torch.Tensor]  # stacks x (B, C, H/4, W/4) image feature maps (C + 2: + depth, depth_input)
    anchors: torch.Tensor  # (B, K, 3) predicted anchors, NDC
    volume: torch.Tensor | None  # (B, P, G, G, G) position features [.., z, y, x]; anchors variant only
    fine: torch.Tensor | None = None  # (B, C_hd, S/2, S/2) fine image features; HD models only
    depth: list[torch.Tensor] | None = None  # stacks x (B, 2, H/4, W/4) depth heads' output (model.depth_head)


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
    """The network; ``anchor_count`` anchors, square ``image_size`` px RGB input.

    The coarse level works on the input area-downsampled to ``cfg.coarse_size`` (0: the
    input itself); ``cfg.hd_enabled`` adds the fine level (``hd_encoder``, ``hd_decoder``),
    registered after every coarse module so a coarse model's parameters (and their order,
    which optimizer states follow) are the first ones of the HD model.
    """

    def __init__(self, cfg: ModelConfig, anchor_count: int, image_size: int) -> None:
        super().__init__()
        coarse = cfg.coarse_size or image_size
        if image_size % coarse:
            raise ValueError(f"model.coarse_size {coarse} must divide the input size (render.size) {image_size}")
        side = bottleneck_side(coarse, cfg.depth)
        if side < 1:
            what = "model.coarse_size" if cfg.coarse_size else "render.size"
            raise ValueError(f"{what} {coarse} is too small for model.depth {cfg.depth}: "
                             f"need at least {4 * 2 ** cfg.depth} px")
        self.cfg = cfg
        self.anchor_count = anchor_count
        self.image_size = image_size
        self.coarse_size = coarse
        extra = silhouette.CHANNELS if cfg.silhouette_input else 0
        self.encoder = HourglassEncoder(cfg.stacks, cfg.depth, cfg.channels, cfg.norm, in_channels=3 + extra)
        self.anchor_head = AnchorHead(cfg.channels, side, anchor_count, cfg.norm)
        self.position_cnn = PositionCNN(cfg.pos_channels, cfg.pos_levels) if cfg.position_feature == "anchors" else None
        if cfg.depth_input and not cfg.depth_head:
            raise ValueError("model.depth_input needs model.depth_head")
        if cfg.depth_abs and not cfg.depth_input:
            raise ValueError("model.depth_abs needs model.depth_input")
        depth_in = 2 if cfg.depth_input else 0  # the depth maps ride along with the image features
        depth_in += 2 if cfg.depth_abs else 0  # |z - near|, |z - far| after the point features
        self.decoder = Decoder(cfg.channels + depth_in + position_dim(cfg), list(cfg.decoder), cfg.output)
        # Depth supervision (anchorudf.train.depth): nearest and farthest surface z per cell.
        self.depth_heads = (nn.ModuleList(nn.Conv2d(cfg.channels, 2, 1) for _ in range(cfg.stacks))
                            if cfg.depth_head else None)
        self.hd_encoder: FineEncoder | None = None
        self.hd_decoder: Decoder | None = None
        if cfg.hd_enabled:
            if fine_feature_side(image_size) // 2 ** cfg.hd_depth < 1:
                raise ValueError(f"render.size {image_size} is too small for model.hd_depth {cfg.hd_depth}: "
                                 f"need at least {2 ** (cfg.hd_depth + 1)} px")
            self.hd_encoder = FineEncoder(cfg.hd_channels, cfg.hd_depth, cfg.norm)
            self.hd_decoder = Decoder(cfg.hd_channels + self.decoder.embed_dim, list(cfg.hd_decoder), cfg.output)
        self._frozen: list[nn.Module] = []

    @property
    def hd(self) -> bool:
        """Whether this is an AnchorUDF-HD model (``query`` then returns the fine level)."""
        return self.hd_decoder is not None

    # -- phases ------------------------------------------------------------------------
    def encoder_modules(self) -> list[nn.Module]:
        """The coarse level but its decoder: frozen in the GDA fine-tuning phase."""
        mods: list[nn.Module] = [self.encoder, self.anchor_head]
        if self.position_cnn is not None:
            mods.append(self.position_cnn)
        if self.depth_heads is not None:
            mods.append(self.depth_heads)
        return mods

    def coarse_modules(self) -> list[nn.Module]:
        """Every module of the coarse level (AnchorUDF without HD)."""
        return self.encoder_modules() + [self.decoder]

    def hd_modules(self) -> list[nn.Module]:
        """The fine level's modules (empty without HD)."""
        return [m for m in (self.hd_encoder, self.hd_decoder) if m is not None]

    def set_train_phase(self, phase: str, hd_train: str = "all") -> None:
        """Freeze what training phase ``phase`` does not train: no gradients, eval mode
        (fixed BatchNorm statistics).

        main: the fine level is frozen; gda: the fine level and the coarse encoders;
        hd: nothing (``hd_train="all"``, the paper) or the whole coarse level (``"fine"``).
        """
        if phase == "main":
            frozen = self.hd_modules()
        elif phase == "gda":
            frozen = self.hd_modules() + self.encoder_modules()
        elif phase == "hd":
            if not self.hd:
                raise ValueError("training phase 'hd' needs an HD model (model.hd_enabled)")
            frozen = self.coarse_modules() if hd_train == "fine" else []
        else:
            raise ValueError(f"unknown training phase {phase!r} (main, gda, hd)")
        self._frozen = frozen
        for m in self.coarse_modules() + self.hd_modules():
            m.requires_grad_(not any(m is f for f in frozen))
        self.train(self.training)

    def freeze_encoders(self, frozen: bool = True) -> None:
        """Stop gradients into the encoders and keep them in eval mode (the GDA phase)."""
        self.set_train_phase("gda" if frozen else "main")

    def train(self, mode: bool = True) -> "AnchorUDF":
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    # -- inference API -----------------------------------------------------------------
    def coarse_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) input -> (B, C, s, s) coarse input, s = ``coarse_size``: the mean of
        each aligned (S/s)^2 block (area downsampling; identity when s = S)."""
        factor = self.image_size // self.coarse_size
        return image if factor == 1 else F.avg_pool2d(image, factor)

    def encoder_input(self, image: torch.Tensor) -> torch.Tensor:
        """What the coarse image encoder reads: the coarse image, plus its mask and
        distance-to-silhouette channels with ``model.silhouette_input``."""
        x = self.coarse_image(image)
        return torch.cat([x, silhouette.silhouette_channels(x)], dim=1) if self.cfg.silhouette_input else x

    def encode(self, image: torch.Tensor, fine: bool | None = None) -> Encoded:
        """image (B, 3, S, S), RGB in [0, 1], S = image_size -> :class:`Encoded`.

        ``fine``: also run the fine encoder (default: whenever the model is an HD model;
        the coarse training phases pass False to skip it)."""
        if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(f"AnchorUDF expects images (B, 3, {self.image_size}, {self.image_size}), "
                             f"got {tuple(image.shape)}")
        fine = self.hd if fine is None else fine
        if fine and not self.hd:
            raise ValueError("fine features need an HD model (model.hd_enabled)")
        features, bottleneck = self.encoder(self.encoder_input(image))
        depth = None
        if self.depth_heads is not None:
            depth = [head(f) for head, f in zip(self.depth_heads, features)]
            if self.cfg.depth_input:  # sampled with the features: the decoder sees them beside z
                features = [torch.cat([f, d], dim=1) for f, d in zip(features, depth)]
        anchors = self.anchor_head(bottleneck)  # (B, K, 3)
        volume = None
        if self.position_cnn is not None:
            # Detached: the position branch must not pull the anchors away from their targets.
            volume = self.position_cnn(voxelize(anchors.detach(), self.cfg.grid))
        fine_map = self.hd_encoder(image) if fine else None
        return Encoded(features, anchors, volume, fine_map, depth)

    def _gather(self) -> bool | None:
        """The samplers' ``gather``: only training takes a loss on d f / d points (GDA), so
        only then may grid_sample's backward need differentiating; inference's first-order
        gradients (projection, eval_step) keep grid_sample on every device."""
        return None if self.training else False

    def point_features(self, enc: Encoded, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N, D - C) the non-image part of the decoder input
        (``model.position_feature``: anchored feature + xyz, xyz, or z): the same for
        every stack, so the training forward computes it once."""
        kind = self.cfg.position_feature
        if kind == "anchors":
            assert enc.volume is not None
            feat = sample_volume_features(enc.volume, points, gather=self._gather())
            return torch.cat([feat, points.to(feat.dtype)], dim=-1)
        if kind == "xyz":
            return points
        return points[..., 2:3]

    def decoder_input(self, enc: Encoded, points: torch.Tensor, stack: int = -1) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N, D) decoder input [image feature, position feature]
        (and with ``model.depth_abs`` |z - near|, |z - far| of the depth maps sampled with
        the image feature, its last two channels)."""
        image = sample_image_features(enc.features[stack], points, gather=self._gather())
        parts = [image, self.point_features(enc, points).to(image.dtype)]
        if self.cfg.depth_abs:
            parts.append((points[..., 2:3].to(image.dtype) - image[..., -2:]).abs())
        return torch.cat(parts, dim=-1)

    def decode_stacks(self, enc: Encoded, points: torch.Tensor, stacks: list[int],
                      embed_stack: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Distances of ``stacks`` (each (B, N)) and the decoder embedding of ``embed_stack``.

        The decoder's input is [image feature of the stack, point features]. The point
        features (the anchored volume's trilinear sample, xyz) are the same for every stack:
        they are sampled once. With several stacks (the main training phase's deep
        supervision) the decoder's input projection is also split (:meth:`Decoder.projection`,
        it is linear; :meth:`Decoder.from_projection`): the point features' share is projected once and each stack adds its
        image features' share in one GEMM. One stack (the GDA phase, inference) goes through
        the layers one by one, which is faster there (measured: the projection's wide
        intermediates cost more than they save in a double backward). Either way the same
        function as :meth:`decode_stacks_reference`, up to float rounding."""
        if len(stacks) == 1 or self.cfg.depth_abs:  # depth_abs: no input part shared by the stacks
            udf, embedding = [], None
            for s in stacks:
                y, emb = self.decoder.forward_with_embedding(self.decoder_input(enc, points, s))
                udf.append(y)
                embedding = emb if s == embed_stack else embedding
            return udf, embedding
        c = enc.features[0].shape[1]
        dtype = torch.promote_types(enc.features[0].dtype, torch.float32)  # the image features' (sampling)
        weight, bias = self.decoder.projection()
        shared = F.linear(self.point_features(enc, points).to(dtype), weight[:, c:], bias)
        width = shared.shape[-1]
        shared_2d, weight_image = shared.reshape(-1, width), weight[:, :c].t()
        udf, embedding = [], None
        for s in stacks:
            image = sample_image_features(enc.features[s], points, gather=self._gather())
            # shared + image @ W_image^T as one GEMM (its beta = 1 add)
            proj = torch.addmm(shared_2d, image.reshape(-1, c), weight_image).view(*shared.shape[:-1], width)
            y, emb = self.decoder.from_projection(proj)
            udf.append(y)
            if s == embed_stack:
                embedding = emb
        return udf, embedding

    def decode_stacks_reference(self, enc: Encoded, points: torch.Tensor, stacks: list[int],
                                embed_stack: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Reference for :meth:`decode_stacks`: each stack's :meth:`decoder_input` through
        the decoder's layers one by one (:meth:`Decoder.forward_with_embedding`). Tests pin
        ``decode_stacks`` to it; ``benchmarks/bench_train_step.py --recipes`` times it."""
        udf, embedding = [], None
        for s in stacks:
            y, emb = self.decoder.forward_with_embedding(self.decoder_input(enc, points, s))
            udf.append(y)
            if s == embed_stack:
                embedding = emb
        return udf, embedding

    def query_all(self, enc: Encoded, points: torch.Tensor) -> list[torch.Tensor]:
        """Distances (NDC units) of every stack: stacks x (B, N)."""
        return self.decode_stacks(enc, points, list(range(len(enc.features))))[0]

    def query_coarse(self, enc: Encoded, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N) distances (NDC units) of the coarse level's last stack."""
        return self.decode_stacks(enc, points, [len(enc.features) - 1])[0][0]

    def fine_from_embedding(self, enc: Encoded, points: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The fine decoder on [fine pixel-aligned feature, coarse 3D embedding] -> (B, N)."""
        if enc.fine is None or self.hd_decoder is None:
            raise ValueError("the fine level needs an HD model and fine features (encode(image, fine=True))")
        feat = sample_image_features(enc.fine, points, gather=self._gather())
        return self.hd_decoder(torch.cat([feat, embedding.to(feat.dtype)], dim=-1))

    def query_fine(self, enc: Encoded, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N) distances of the fine level (HD models)."""
        last = len(enc.features) - 1
        _, embedding = self.decode_stacks(enc, points, [last], embed_stack=last)
        return self.fine_from_embedding(enc, points, embedding)

    def query(self, enc: Encoded, points: torch.Tensor, level: str = "auto") -> torch.Tensor:
        """(B, N, 3) NDC points -> (B, N) distances (NDC units) the model predicts.

        ``level``: auto = the fine level for HD models (paper section 4.4), else the coarse
        level's last stack; coarse / fine choose explicitly."""
        if level == "auto":
            level = "fine" if self.hd else "coarse"
        if level == "fine":
            return self.query_fine(enc, points)
        if level == "coarse":
            return self.query_coarse(enc, points)
        raise ValueError(f"query level {level!r}: expected auto, coarse or fine")

    # -- training ----------------------------------------------------------------------
    def forward(self, image: torch.Tensor, points: torch.Tensor, calib: torch.Tensor | None = None,
                with_grad: bool = False, last_only: bool = False, fine: bool = False) -> dict:
        """Predict distances at query points for every stack.

        image (B, 3, S, S); points (B, N, 3) in NDC, or in the garment frame when ``calib``
        (B, 4, 4) is given (mapped to NDC by it; distances stay NDC units).
        Returns ``udf``: stacks x (B, N) of the coarse level; ``anchors``: (B, K, 3) NDC;
        with ``model.depth_head`` and not ``last_only``, ``depth``: stacks x (B, 2, s, s),
        the nearest and farthest surface z per feature cell;
        with ``fine`` (HD models) also ``udf_fine``: (B, N) of the fine level; with
        ``with_grad`` also ``grad``: (B, N, 3) d f / d points of the prediction used at
        inference (``udf_fine`` with ``fine``, else ``udf[-1]``; one autograd pass,
        differentiable when training so a loss on it trains the decoder). ``last_only``:
        decode the coarse level's last stack only (``udf`` is then a one-element list).
        """
        if with_grad and not points.requires_grad:
            points = points.detach().requires_grad_(True)
        ndc = apply_calib(calib.to(points.dtype), points) if calib is not None else points
        enc = self.encode(image, fine=fine)
        last = len(enc.features) - 1
        udf, embedding = self.decode_stacks(enc, ndc, [last] if last_only else list(range(last + 1)),
                                            last if fine else None)
        out = {"udf": udf, "anchors": enc.anchors}
        if enc.depth is not None and not last_only:
            out["depth"] = enc.depth
        if fine:
            out["udf_fine"] = self.fine_from_embedding(enc, ndc, embedding)
        if with_grad:
            # Each prediction depends on its own point only, so the gradient of the sum
            # is every point's own spatial gradient.
            target = out["udf_fine"] if fine else udf[-1]
            (grad,) = torch.autograd.grad(target.float().sum(), points,
                                          create_graph=torch.is_grad_enabled() and self.training)
            out["grad"] = grad
        return out
