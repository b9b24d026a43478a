"""Depth supervision (model.depth_head): targets against a per-cell loop, alignment with the
pixels on real training items, the loss, and the model and trainer using them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from anchorudf.config import ModelConfig
from anchorudf.models.anchorudf import AnchorUDF
from anchorudf.train.depth import depth_loss, depth_targets, surface_subset

TINY = dict(stacks=2, depth=1, channels=8, grid=8, pos_channels=4, decoder=[32, 16])


def slow_targets(p: np.ndarray, side: int):
    """Per cell: the samples whose centre-aligned cell it is, by an explicit loop."""
    depth = np.zeros((2, side, side), np.float32)
    covered = np.zeros((1, side, side), np.float32)
    for i in range(side):
        y_top, y_bot = 1 - 2 * i / side, 1 - 2 * (i + 1) / side
        for j in range(side):
            x_lo, x_hi = -1 + 2 * j / side, -1 + 2 * (j + 1) / side
            inside = (p[:, 0] >= x_lo) & (p[:, 0] < x_hi) & (p[:, 1] <= y_top) & (p[:, 1] > y_bot)
            if inside.any():
                depth[:, i, j] = p[inside, 2].max(), p[inside, 2].min()
                covered[0, i, j] = 1
    return depth, covered


def test_targets_match_a_loop_over_cells():
    rng = np.random.default_rng(0)
    p = rng.uniform(-1.2, 1.2, (3000, 3))  # some outside the view: ignored
    for side in (4, 7, 16):
        depth, covered = depth_targets(p, side)
        ref_d, ref_c = slow_targets(p, side)
        np.testing.assert_array_equal(covered, ref_c)
        np.testing.assert_allclose(depth, ref_d, atol=1e-6)


def test_targets_of_a_tilted_plane_follow_its_depth():
    """z = 0.3 x over the view: each cell's nearest / farthest z bracket its centre's."""
    g = np.linspace(-0.999, 0.999, 400)
    x, y = np.meshgrid(g, g)
    p = np.stack([x.ravel(), y.ravel(), 0.3 * x.ravel()], axis=1)
    depth, covered = depth_targets(p, 8)
    assert covered.all()
    centres = (2 * np.arange(8) + 1) / 8 - 1
    np.testing.assert_allclose(depth.mean(axis=0), np.tile(0.3 * centres, (8, 1)), atol=0.01)
    assert (depth[0] - depth[1]).max() <= 0.3 * 2 / 8 + 1e-9
    # rows run top (y = +1) to bottom: a half plane y > 0 covers the top rows only
    _, c = depth_targets(p[p[:, 1] > 0.01], 8)
    assert c[0, :4].all() and not c[0, 4:].any()


def test_surface_subset_is_a_stride():
    s = np.arange(30, dtype=np.float32).reshape(10, 3)
    np.testing.assert_array_equal(surface_subset(s, 5), s[::2])
    np.testing.assert_array_equal(surface_subset(s, 100), s)
    assert len(surface_subset(np.zeros((100001, 3)), 20000)) <= 20000


def test_loss_counts_covered_cells_only():
    target = torch.zeros(2, 2, 3, 3)
    covered = torch.zeros(2, 1, 3, 3)
    covered[0, 0, 1, 1] = 1
    pred = torch.full((2, 2, 3, 3), 5.0)
    pred[0, :, 1, 1] = torch.tensor([0.5, -0.5])
    assert float(depth_loss(pred, target, covered)) == pytest.approx(0.5)
    assert float(depth_loss(pred, target, torch.zeros_like(covered))) == 0.0
    with pytest.raises(ValueError, match="differ"):
        depth_loss(pred[:, :1], target, covered)


def test_model_heads_shapes_phases_and_old_configs():
    torch.manual_seed(0)
    model = AnchorUDF(ModelConfig(**TINY, depth_head=True), 10, 32)
    image, points = torch.rand(2, 3, 32, 32), torch.rand(2, 50, 3) * 2 - 1
    out = model(image, points)
    assert [d.shape for d in out["depth"]] == [(2, 2, 8, 8)] * 2
    assert "depth" not in model(image, points, last_only=True)
    model.set_train_phase("gda")  # the heads are encoder modules: frozen with them
    assert not any(p.requires_grad for p in model.depth_heads.parameters())
    plain = AnchorUDF(ModelConfig(**TINY, depth_head=False, depth_input=False), 10, 32)
    assert plain.depth_heads is None and "depth" not in plain(image, points)
    # the heads come after the coarse modules: a plain model's weights are a prefix
    names = [n for n, _ in model.named_parameters()]
    assert names[:len(list(plain.parameters()))] == [n for n, _ in plain.named_parameters()]


def test_checkpoints_written_before_the_depth_keys_load_without_heads(tmp_path):
    # Checkpoints written before silhouette_input / depth_head / depth_input (the weights
    # shipped until 2026-12-06, any older run) lack the keys: whatever today's defaults,
    # such a checkpoint is the plain model it was trained as.
    from anchorudf.models.checkpoint import load_model, model_meta, write_model

    plain = AnchorUDF(ModelConfig(**TINY, depth_head=False, depth_input=False), 10, 32)
    meta = model_meta(plain, None, 0)
    for key in ("silhouette_input", "depth_head", "depth_input"):
        meta["model"].pop(key)
    write_model(tmp_path / "old", plain, meta)
    loaded, _ = load_model(tmp_path / "old")
    assert loaded.depth_heads is None
    assert loaded.cfg.depth_head is False and loaded.cfg.depth_input is False
    with_heads = AnchorUDF(ModelConfig(**TINY, depth_head=True, depth_input=True), 10, 32)
    write_model(tmp_path / "new", with_heads, model_meta(with_heads, None, 0))
    assert load_model(tmp_path / "new")[0].depth_heads is not None


def test_trainer_adds_the_depth_loss_in_the_main_phase_only():
    from anchorudf.config import load_params
    from anchorudf.train.synthetic import SyntheticDataset
    from anchorudf.train.trainer import Trainer

    p = load_params(None, ["model.stacks=1", "model.depth=1", "model.channels=8", "model.grid=8",
                           "model.pos_channels=4", "model.decoder=[16]", "render.size=32", "anchors.count=12",
                           "train.points=64", "train.steps=2", "train.gda_steps=1", "model.depth_head=true"])
    ds = SyntheticDataset.from_params(p, length=4)
    assert ds[0]["depth"].shape == (2, 8, 8) and ds[0]["depth_covered"].sum() > 0
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    torch.manual_seed(0)
    model = AnchorUDF(p.model, 12, 32)
    trainer = Trainer(model, p.train, torch.device("cpu"))
    trainer.prepare(0)
    loss, metrics = trainer.compute_losses(batch)
    assert "depth" in metrics and metrics["depth"] > 0
    no_depth = dataclasses.replace(p.train, lambda_depth=0.0)
    trainer.cfg = no_depth
    loss0, _ = trainer.compute_losses(batch)
    assert float((loss - loss0).detach()) == pytest.approx(float(metrics["depth"]), rel=1e-4)
    loss0.backward()  # still in the graph at weight 0 (DDP sees every parameter used)
    assert model.depth_heads[0].weight.grad is not None
    trainer.cfg = p.train
    trainer.prepare(2)  # GDA phase: no depth term
    _, metrics = trainer.compute_losses(batch)
    assert "depth" not in metrics
    with pytest.raises(KeyError, match="depth"):
        trainer.compute_losses({k: v for k, v in batch.items() if k != "depth"})


def test_training_items_carry_depth_that_lines_up_with_the_mask(tiny_data):
    from anchorudf.config import params_from_dict
    from anchorudf.train.data import build_dataset

    p, out, _ = tiny_data
    raw = dataclasses.asdict(p)
    raw["model"]["depth_head"] = True
    q = params_from_dict(raw)
    ds = build_dataset(q, "train", garments_dir=out / "garments", render_dir=out / "render",
                       cache_dir=out / "cache")
    hits = []
    for i in range(0, len(ds), 3):
        item = ds[(i, 99 + i)]
        side = item["depth"].shape[-1]
        assert side == 16  # 64 px input -> 16 x 16 feature cells
        mask = torch.nn.functional.avg_pool2d(item["mask"][None], 4)[0, 0]
        covered = item["depth_covered"][0] > 0
        # full mask cells are covered, cells with no mask pixel are not (up to the samples' density)
        assert covered[mask > 0.99].float().mean() > 0.97
        near_mask = torch.nn.functional.max_pool2d(mask[None, None], 3, stride=1, padding=1)[0, 0] > 0
        assert not covered[~near_mask].any()  # a y flip or a shifted cell would put samples outside
        near, far = item["depth"][0][covered], item["depth"][1][covered]
        assert (near >= far).all() and near.abs().max() < 1.0
        # depth is consistent with the cached query points: near-surface points of a cell
        # lie between its farthest and nearest surface z (with a cell's slope of slack)
        pts = item["points"].numpy()
        close = item["udf"].numpy() < 0.01
        j = np.floor((pts[close, 0] + 1) / 2 * side).astype(int).clip(0, side - 1)
        r = np.floor((1 - pts[close, 1]) / 2 * side).astype(int).clip(0, side - 1)
        d = item["depth"].numpy()
        cov = covered.numpy()

        def within(r, j):  # share of the points between their cell's farthest and nearest z
            ok = cov[r, j]
            z = pts[close, 2][ok]
            return ((z <= d[0, r[ok], j[ok]] + 0.02) & (z >= d[1, r[ok], j[ok]] - 0.02)).mean()

        # 2000 surface samples over 16 x 16 cells leave some cells' depth range short
        assert within(r, j) > 0.9
        hits.append(within(r, j))
    assert np.mean(hits) > 0.93  # (the axis conventions are pinned by the tilted-plane test)


def test_depth_input_feeds_the_decoder_the_predicted_depths():
    from anchorudf.config import ConfigError, load_params

    torch.manual_seed(0)
    model = AnchorUDF(ModelConfig(**TINY, depth_head=True, depth_input=True), 10, 32).eval()
    image, points = torch.rand(1, 3, 32, 32), torch.rand(1, 40, 3) * 2 - 1
    enc = model.encode(image)
    assert enc.features[-1].shape[1] == 8 + 2
    torch.testing.assert_close(enc.features[-1][:, 8:], enc.depth[-1])
    assert model.decoder_input(enc, points).shape[-1] == 8 + 2 + 4 + 3
    # the decoder reads the depth heads' output at the point's pixel (bilinear, like the features)
    before = model.decoder_input(enc, points)
    with torch.no_grad():
        model.depth_heads[-1].bias += 0.3
        after = model.decoder_input(model.encode(image), points)
    torch.testing.assert_close(after[..., 8:10] - before[..., 8:10], torch.full((1, 40, 2), 0.3))
    torch.testing.assert_close(after[..., :8], before[..., :8])
    out = model.train()(image, points, with_grad=True)
    assert len(out["depth"]) == 2 and torch.isfinite(out["grad"]).all()
    with pytest.raises(ValueError, match="depth_head"):
        AnchorUDF(ModelConfig(**TINY, depth_head=False, depth_input=True), 10, 32)
    with pytest.raises(ConfigError, match="depth_head"):
        load_params(None, ["model.depth_head=false", "model.depth_input=true"])
    with pytest.raises(ConfigError, match="depth_head"):
        load_params(None, ["model.depth_head=false"])  # the default depth_input needs it


def test_depth_abs_gives_the_decoder_the_distance_in_z_to_each_predicted_surface():
    from anchorudf.config import ConfigError, load_params
    from anchorudf.models.checkpoint import MODEL_KEYS_ADDED

    torch.manual_seed(0)
    plain = AnchorUDF(ModelConfig(**TINY, depth_head=True, depth_input=True), 10, 32).eval()
    model = AnchorUDF(ModelConfig(**TINY, depth_head=True, depth_input=True, depth_abs=True), 10, 32).eval()
    image, points = torch.rand(1, 3, 32, 32), torch.rand(1, 40, 3) * 2 - 1
    enc = model.encode(image)
    x = model.decoder_input(enc, points)
    assert x.shape[-1] == plain.decoder_input(plain.encode(image), points).shape[-1] + 2
    near_far = x[..., 8:10]  # the depth maps at the point's pixel, after the 8 feature channels
    torch.testing.assert_close(x[..., -2:], (points[..., 2:3] - near_far).abs())
    # a point moved in z onto the predicted near surface gets 0 there
    on = points.clone()
    on[..., 2] = near_far[..., 0]
    assert model.decoder_input(enc, on)[..., -2].abs().max() < 1e-6
    # two stacks: each stack's own depth maps, the same as decoding each stack alone
    two = AnchorUDF(ModelConfig(**{**TINY, "stacks": 2}, depth_head=True, depth_input=True, depth_abs=True), 10, 32)
    two.eval()
    enc2 = two.encode(image)
    both, _ = two.decode_stacks(enc2, points, [0, 1])
    for s in (0, 1):
        torch.testing.assert_close(both[s], two.decode_stacks(enc2, points, [s])[0][0])
        torch.testing.assert_close(both[s], two.decode_stacks_reference(enc2, points, [s])[0][0])
    out = model.train()(image, points, with_grad=True)
    assert torch.isfinite(out["grad"]).all()
    with pytest.raises(ConfigError, match="depth_input"):
        load_params(None, ["model.depth_input=false", "model.depth_abs=true"])
    assert MODEL_KEYS_ADDED["depth_abs"] is False  # older checkpoints load without it
