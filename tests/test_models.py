"""AnchorUDF network: shapes, axis conventions, gradients, output activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorudf.config import ModelConfig
from anchorudf.geometry.camera import ndc_to_pixel
from anchorudf.models.anchorudf import AnchorUDF
from anchorudf.models.decoder import INIT_DISTANCE, Decoder
from anchorudf.models.position import sample_image_features, sample_volume_features, voxelize
from anchorudf.train.losses import udf_loss

TINY = dict(stacks=1, depth=1, channels=8, grid=8, pos_channels=4, decoder=[32, 16])


def tiny(position_feature="anchors", anchors=20, size=32, **kw) -> AnchorUDF:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "position_feature": position_feature, **kw})
    return AnchorUDF(cfg, anchors, size)


def inputs(b=2, n=64, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, n, 3, generator=g) * 2 - 1


@pytest.mark.parametrize("variant", ["anchors", "xyz", "depth"])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_shapes_every_variant_and_anchor_count(variant, k):
    model = tiny(variant, anchors=k, stacks=2)
    image, points = inputs()
    out = model(image, points, with_grad=True)
    assert len(out["udf"]) == 2 and all(u.shape == (2, 64) for u in out["udf"])
    assert out["anchors"].shape == (2, k, 3) and out["anchors"].abs().max() < 1
    assert out["grad"].shape == (2, 64, 3)
    assert all((u >= 0).all() for u in out["udf"])
    enc = model.encode(image)
    assert (enc.volume is not None) == (variant == "anchors")
    widths = {"anchors": 8 + 4 + 3, "xyz": 8 + 3, "depth": 8 + 1}
    depth_maps = 2 if model.cfg.depth_input else 0  # the default feeds the depth heads' two maps too
    assert model.decoder_input(enc, points).shape == (2, 64, widths[variant] + depth_maps)


def test_paper_depth_and_batchnorm_build():
    model = tiny(depth=2, norm="batch", stacks=2)
    image, points = inputs(size=32)
    assert model(image, points)["udf"][-1].shape == (2, 64)


def test_encode_query_matches_forward_and_calib():
    model = tiny().eval()
    image, points = inputs()
    out = model(image, points)
    enc = model.encode(image)
    torch.testing.assert_close(model.query(enc, points), out["udf"][-1])
    # Garment-frame points through a calib give the same as the NDC points.
    calib = torch.eye(4).repeat(2, 1, 1)
    calib[:, :3, :3] *= 2.0
    calib[:, :3, 3] = torch.tensor([0.1, -0.2, 0.05])
    garment = (points - calib[:, None, :3, 3]) / 2.0
    torch.testing.assert_close(model(image, garment, calib=calib)["udf"][-1], out["udf"][-1])


def test_wrong_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="expects images"):
        tiny().encode(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="too small"):
        AnchorUDF(ModelConfig(**{**TINY, "depth": 4}), 10, 32)


def test_image_features_sampled_at_projection():
    """Feature (row, col) planes sampled at pixel-centre NDC give back (row, col)."""
    h, w = 6, 10
    rows, cols = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    feat = torch.stack([rows, cols])[None]  # (1, 2, H, W)
    rng = np.random.default_rng(0)
    r, c = rng.integers(0, h, 20), rng.integers(0, w, 20)
    ndc = np.stack([(c + 0.5) / w * 2 - 1, 1 - (r + 0.5) / h * 2, rng.uniform(-1, 1, 20)], 1)
    # Same pixels as the camera module's convention says.
    np.testing.assert_allclose(ndc_to_pixel(ndc, w, h), np.stack([c, r], 1), atol=1e-9)
    got = sample_image_features(feat, torch.tensor(ndc, dtype=torch.float32)[None])[0]
    np.testing.assert_allclose(got.numpy(), np.stack([r, c], 1), atol=1e-5)
    # NDC y = +1 is the top row: a point near the top samples row 0.
    top = sample_image_features(feat, torch.tensor([[[0.0, 0.999, 0.0]]]))
    assert top[0, 0, 0] == 0.0


def test_voxelize_layout_and_volume_sampling_axes():
    g = 8
    point = torch.tensor([[[0.6, -0.3, -0.9]]])  # x, y, z all different: a swap shows
    occ = voxelize(point, g)
    assert occ.shape == (1, 1, g, g, g) and occ.sum() == 1
    ix, iy, iz = (int(np.floor((v + 1) / 2 * g)) for v in (0.6, -0.3, -0.9))
    assert occ[0, 0, iz, iy, ix] == 1  # [.., z, y, x]
    # Sampling the occupancy at that voxel's centre reads 1; other centres read 0.
    centre = lambda i: -1 + (i + 0.5) * 2 / g  # noqa: E731
    pts = torch.tensor([[[centre(ix), centre(iy), centre(iz)], [centre(iz), centre(iy), centre(ix)]]])
    vals = sample_volume_features(occ, pts)[0, :, 0]
    assert vals.tolist() == [1.0, 0.0]
    # A coordinate-valued volume reads back each point's own (x, y, z) voxel indices.
    d, hh, ww = torch.meshgrid(torch.arange(g).float(), torch.arange(g).float(), torch.arange(g).float(),
                               indexing="ij")
    vol = torch.stack([ww, hh, d])[None]  # channels = (x index, y index, z index)
    idx = torch.randint(0, g, (1, 30, 3), generator=torch.Generator().manual_seed(1))
    got = sample_volume_features(vol, -1 + (idx.float() + 0.5) * 2 / g)
    torch.testing.assert_close(got, idx.float())


def test_voxelize_batched_and_duplicates():
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.9, 0.9, 0.9]], [[-0.9, -0.9, -0.9]] * 3])
    occ = voxelize(pts, 4)
    assert occ[0].sum() == 2 and occ[1].sum() == 1
    assert occ[0, 0, 2, 2, 2] == 1 and occ[0, 0, 3, 3, 3] == 1 and occ[1, 0, 0, 0, 0] == 1


def test_spatial_gradient_matches_finite_differences():
    model = tiny(stacks=2).double().eval()
    image, points = inputs(b=2, n=8)
    image, points = image.double(), points.double()
    grad = model(image, points, with_grad=True)["grad"]
    eps = 1e-6
    fd = torch.zeros_like(points)
    with torch.no_grad():
        enc = model.encode(image)
        for a in range(3):
            dp = torch.zeros_like(points)
            dp[..., a] = eps
            fd[..., a] = (model.query(enc, points + dp) - model.query(enc, points - dp)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-4, atol=1e-6)


def test_items_in_a_batch_are_independent():
    """The gradient-of-the-sum trick needs f[b, n] to depend on point n of item b only."""
    model = tiny().eval()
    image, points = inputs(b=3)
    full = model(image, points)["udf"][-1]
    torch.testing.assert_close(model(image[1:2], points[1:2])["udf"][-1], full[1:2])
    torch.testing.assert_close(model(image, points[:, :10])["udf"][-1], full[:, :10])


@pytest.mark.parametrize("output", ["softplus", "abs", "relu"])
def test_outputs_start_below_delta_with_live_gradients(output):
    model = tiny(output=output)
    image, points = inputs()
    pred = model(image, points)["udf"][-1]
    assert (pred < 0.2).all() and (pred - INIT_DISTANCE).abs().max() < 0.05
    udf_loss(pred, torch.full_like(pred, 0.01), 0.2).backward()
    assert model.decoder.out.bias.grad.abs() > 0
    assert model.decoder.hidden[0].weight.grad.abs().sum() > 0


def test_softplus_keeps_gradients_where_relu_dies():
    """Drive every pre-activation negative: ReLU has no gradient left, softplus/abs do."""
    x = torch.randn(2, 16, 5, generator=torch.Generator().manual_seed(0))

    def bias_grad(output: str, bias: float) -> float:
        torch.manual_seed(0)
        dec = Decoder(5, [8], output)
        with torch.no_grad():
            dec.out.bias.fill_(bias)
        udf_loss(dec(x), torch.full((2, 16), 0.05), 0.2).backward()
        return dec.out.bias.grad.abs().item()

    # Far negative: softplus still predicts a small positive distance with a gradient.
    assert bias_grad("relu", -5.0) == 0.0 and bias_grad("softplus", -5.0) > 0
    # Slightly negative: abs mirrors it (|y| < delta), ReLU is already dead.
    assert bias_grad("relu", -0.1) == 0.0 and bias_grad("abs", -0.1) > 0


# -- twice-differentiable sampling (the GDA loss differentiates grid_sample's backward) --------

def _sampling_and_derivatives(fn, values, points, gather):
    w = torch.linspace(-1.0, 2.0, values.shape[1], dtype=values.dtype)[:, None].requires_grad_(True)
    f = (fn(values, points, gather=gather) @ w).squeeze(-1)
    (gp,) = torch.autograd.grad(f.sum(), points, create_graph=True)
    gw, gv = torch.autograd.grad((gp ** 2).sum() + (f ** 2).sum(), (w, values))
    return f.detach(), gp.detach(), gw, gv


@pytest.mark.parametrize("fn, shape", [(sample_image_features, (2, 5, 7, 9)),
                                       (sample_volume_features, (2, 5, 6, 7, 8))])
def test_gather_sampling_equals_grid_sample_to_second_order(fn, shape):
    # PyTorch's CPU grid_sample is twice differentiable: the reference for the gathers,
    # on values, d/dpoints, and the second-order terms a GDA step needs (points outside
    # the [-1, 1] box too: border padding).
    g = torch.Generator().manual_seed(0)
    values = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    points = (torch.rand(2, 60, 3, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)
    ref = _sampling_and_derivatives(fn, values, points, gather=False)
    got = _sampling_and_derivatives(fn, values, points, gather=True)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


_GRID_SAMPLE = torch.nn.functional.grid_sample


class _OnceDifferentiableGridSample(torch.autograd.Function):
    """grid_sample as on CUDA: its backward cannot itself be differentiated."""

    @staticmethod
    def forward(ctx, values, grid, *args):
        ctx.save_for_backward(values, grid)
        ctx.args = args
        return _GRID_SAMPLE(values, grid, *args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, out):
        values, grid = ctx.saved_tensors
        with torch.enable_grad():
            v, gr = values.detach().requires_grad_(True), grid.detach().requires_grad_(True)
            y = _GRID_SAMPLE(v, gr, *ctx.args)
            dv, dg = torch.autograd.grad(y, (v, gr), out)
        return (dv, dg) + (None,) * len(ctx.args)


def test_gda_step_off_the_cpu_goes_through_gathers(monkeypatch):
    # The bug an H200 found: a GDA step on CUDA raised "derivative for
    # aten::grid_sampler_2d_backward is not implemented". Emulated on the CPU with a
    # once-differentiable grid_sample: the old path fails the same way, the gathers train.
    from torch.utils.data import default_collate

    from anchorudf.config import load_params
    from anchorudf.models import position
    from anchorudf.train.synthetic import SyntheticDataset
    from anchorudf.train.trainer import Trainer

    def cuda_like(values, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
        return _OnceDifferentiableGridSample.apply(values, grid, mode, padding_mode, align_corners)

    monkeypatch.setattr(position.F, "grid_sample", cuda_like)
    p = load_params(None, ["model.stacks=1", "model.depth=1", "model.channels=8", "model.grid=8",
                           "model.pos_channels=4", "model.decoder=[32, 16]", "render.size=32",
                           "train.points=64", "anchors.count=20", "train.batch_size=2",
                           "train.steps=0", "train.gda_steps=1"])
    ds = SyntheticDataset.from_params(p, length=2)
    batch = default_collate([ds[(0, 1)], ds[(1, 2)]])

    def gda_step(rule):
        monkeypatch.setattr(position, "_use_gather", rule)
        torch.manual_seed(0)
        return Trainer(AnchorUDF(p.model, 20, 32), p.train, torch.device("cpu")).train_step(batch)

    with pytest.raises(RuntimeError, match="once_differentiable|twice"):
        gda_step(lambda values, points, gather: False)
    # The module's rule with the CPU treated as CUDA:
    m = gda_step(lambda values, points, gather: points.requires_grad and torch.is_grad_enabled())
    assert np.isfinite(m["gda"]) and np.isfinite(m["loss"])


def test_sampling_path_rule():
    from anchorudf.models import position

    v, p = torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 3)
    assert not position._use_gather(v, p, None)  # CPU: grid_sample is twice differentiable
    assert not position._use_gather(v.to("meta"), p.to("meta"), None)  # no gradient wanted
    pg = p.to("meta").requires_grad_(True)
    assert position._use_gather(v.to("meta"), pg, None)
    with torch.no_grad():
        assert not position._use_gather(v.to("meta"), pg, None)
    assert position._use_gather(v, p, True) and not position._use_gather(v.to("meta"), pg, False)


def test_only_training_lets_the_samplers_gather(monkeypatch):
    # Inference takes first-order gradients only (projection): grid_sample on every device.
    from anchorudf.models import position

    seen = []
    rule = position._use_gather
    monkeypatch.setattr(position, "_use_gather", lambda v, p, g: seen.append(g) or rule(v, p, g))
    model = tiny(hd_enabled=True)
    image, points = inputs()
    model.train()
    model(image, points, with_grad=True, fine=True)
    assert seen and set(seen) == {None}
    seen.clear()
    model.eval()
    model(image, points, with_grad=True, fine=True)
    assert seen and set(seen) == {False}


@pytest.mark.parametrize("widths,output", [([32, 16], "softplus"), ([8], "relu"), ([16, 16, 8], "abs")])
def test_decoder_projection_equals_the_layers(widths, output):
    torch.manual_seed(0)
    dec = Decoder(11, widths, output).double()
    with torch.no_grad():  # away from the near-zero init, so every term matters
        for p in dec.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(3, 17, 11, dtype=torch.float64, requires_grad=True)
    y_ref, e_ref = dec.forward_with_embedding(x)  # the layers one by one
    grads_ref = torch.autograd.grad(y_ref.sum() + e_ref.square().sum(), [x, *dec.parameters()])
    proj = torch.nn.functional.linear(x, *dec.projection())
    y, e = dec.from_projection(proj)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(e, e_ref)
    grads = torch.autograd.grad(y.sum() + e.square().sum(), [x, *dec.parameters()])
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)
    assert proj.shape == (3, 17, sum(widths) + 1)


@pytest.mark.parametrize("variant", ["anchors", "xyz", "depth"])
def test_decode_stacks_equals_the_reference_to_second_order(variant):
    """The shared-projection decoding of every stack is the network's function: values,
    parameter gradients, and the GDA loss's double backward through d f / d points."""
    from anchorudf.train.losses import gda_loss

    model = tiny(variant, stacks=2).double().train()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0, 0.3)
    image, points = inputs()
    image, points = image.double(), points.double()
    direction = torch.nn.functional.normalize(torch.randn_like(points), dim=-1)
    results = []
    for decode, stacks in ((model.decode_stacks_reference, [0, 1]), (model.decode_stacks, [0, 1]),
                           (model.decode_stacks_reference, [1]), (model.decode_stacks, [1])):
        enc = model.encode(image)
        pts = points.clone().requires_grad_(True)
        udf, emb = decode(enc, pts, stacks, embed_stack=1)
        (grad,) = torch.autograd.grad(udf[-1].sum(), pts, create_graph=True)
        loss = sum(u.mean() for u in udf) + emb.square().mean() + gda_loss(grad, direction, udf[-1] < 1.0)
        params = [p for p in model.parameters() if p.requires_grad]
        results.append([*udf, emb, grad, *torch.autograd.grad(loss, params, allow_unused=True)])
    for got_run, want_run in ((results[1], results[0]), (results[3], results[2])):
        for got, want in zip(got_run, want_run):
            if want is None:
                assert got is None
            else:
                torch.testing.assert_close(got, want)


def test_position_cnn_channels_last_is_the_same_function():
    from anchorudf.models.position import PositionCNN

    torch.manual_seed(0)
    for levels in (0, 2):
        cnn = PositionCNN(8, levels).double()
        occ = (torch.rand(2, 1, 8, 8, 8, dtype=torch.float64) < 0.1).double()
        out = cnn(occ)  # CPU: channels-last inside
        assert out.is_contiguous()
        torch.testing.assert_close(out, cnn._forward(occ))
        g = torch.autograd.grad(out.square().sum(), list(cnn.parameters()))
        g_ref = torch.autograd.grad(cnn._forward(occ).square().sum(), list(cnn.parameters()))
        for a, b in zip(g, g_ref):
            torch.testing.assert_close(a, b)
