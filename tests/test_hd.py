"""AnchorUDF-HD (paper section 4.4): fine/coarse alignment, the coarse decoder's embedding,
loading a coarse model into an HD one, the HD training phase, its exact resume, and the
train -> evaluate -> reconstruct wiring with an HD model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anchorudf.config import ModelConfig, load_params
from anchorudf.errors import CheckpointError
from anchorudf.geometry.camera import ndc_to_pixel, project
from anchorudf.models.anchorudf import AnchorUDF
from anchorudf.models.checkpoint import load_coarse_weights, load_model
from anchorudf.models.decoder import Decoder
from anchorudf.models.position import sample_image_features
from anchorudf.train.checkpoint import export_model, latest_checkpoint
from anchorudf.train.schedule import lr_at, phase_at, total_steps
from anchorudf.train.synthetic import SyntheticDataset
from anchorudf.train.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[1]
FINE, COARSE = 64, 32
TINY = ["model.stacks=1", "model.depth=1", "model.channels=8", "model.grid=8", "model.pos_channels=4",
        "model.decoder=[32, 16]", "train.points=64", "anchors.count=20", "train.batch_size=2",
        "train.log_every=1", "train.threads=1", f"render.size={FINE}", f"model.coarse_size={COARSE}"]
HD = ["model.hd_enabled=true", "model.hd_channels=4", "model.hd_depth=1", "model.hd_decoder=[16]"]
TINY_MODEL = dict(stacks=1, depth=1, channels=8, grid=8, pos_channels=4, decoder=[32, 16])


def tiny_params(*extra: str):
    return load_params(None, TINY + list(extra))


def tiny_model(hd: bool = True, size: int = FINE, coarse: int = COARSE, seed: int = 0, **kw) -> AnchorUDF:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**TINY_MODEL, "coarse_size": coarse, "hd_enabled": hd, "hd_channels": 4,
                         "hd_depth": 1, "hd_decoder": [16], **kw})
    return AnchorUDF(cfg, 20, size)


def dataset(p):
    return SyntheticDataset.from_params(p, length=5)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def pixel_centre_ndc(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(size, size) NDC x and y of every pixel centre (row 0 = NDC y +1)."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(-c, c, indexing="ij")
    return x, y


# -- the model ---------------------------------------------------------------------------

def test_decoder_embedding_leaves_the_coarse_output_unchanged():
    torch.manual_seed(0)
    for widths, layer in (([32, 16, 8], 1), ([32, 16], 0), ([8], 0), ([64, 32, 16, 8], 2)):
        d = Decoder(11, widths, "softplus")
        x = torch.randn(2, 30, 11)
        y, emb = d.forward_with_embedding(x)
        assert torch.equal(y, d(x)) and d.embed_layer == layer
        assert emb.shape == (2, 30, widths[layer]) and d.embed_dim == widths[layer]
    # the paper's 1024-512-256-128 decoder gives PIFuHD's 256-d embedding (16 + 256 = 272 in)
    assert Decoder(291, [1024, 512, 256, 128], "relu").embed_dim == 256


def test_hd_model_shapes_query_levels_and_forward():
    model = tiny_model().eval()
    g = torch.Generator().manual_seed(1)
    image, pts = torch.rand(2, 3, FINE, FINE, generator=g), torch.rand(2, 40, 3, generator=g) * 2 - 1
    enc = model.encode(image)
    assert enc.fine.shape == (2, 4, FINE // 2, FINE // 2) and enc.features[-1].shape[-1] == COARSE // 4
    out = model(image, pts, with_grad=True, fine=True)
    assert out["udf_fine"].shape == (2, 40) and out["grad"].shape == (2, 40, 3)
    assert (out["udf_fine"] >= 0).all()
    with torch.no_grad():
        torch.testing.assert_close(model.query(enc, pts), out["udf_fine"])  # query = the fine level
        torch.testing.assert_close(model.query(enc, pts, level="coarse"), out["udf"][-1])
    # the coarse training phases skip the fine encoder
    assert model.encode(image, fine=False).fine is None
    with pytest.raises(ValueError, match="fine features"):
        model.query(model.encode(image, fine=False), pts)
    with pytest.raises(ValueError, match="HD model"):
        tiny_model(hd=False).encode(image, fine=True)
    with pytest.raises(ValueError, match="must divide"):
        tiny_model(size=48, coarse=32)
    # a coarse model at the coarse size reads the same pixels as the HD model's coarse level
    plain = tiny_model(hd=False, size=COARSE, coarse=0)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("hd_")})
    with torch.no_grad():
        torch.testing.assert_close(plain.eval().query(plain.encode(model.coarse_image(image)), pts),
                                   model.query(enc, pts, level="coarse"))


def test_fine_and_coarse_images_are_pixel_aligned_exactly():
    """Images of the NDC coordinates themselves: after the area downsampling, the coarse and
    the fine image both return a point's own (x, y) when sampled at it, i.e. a query point
    lands on the same image location in both (checked with the sampler both levels use)."""
    model = tiny_model()
    x, y = pixel_centre_ndc(FINE)
    fine = torch.stack([x, y]).float()[None]  # (1, 2, 64, 64)
    coarse = model.coarse_image(fine)
    assert coarse.shape == (1, 2, COARSE, COARSE)
    cx, cy = pixel_centre_ndc(COARSE)
    torch.testing.assert_close(coarse[0], torch.stack([cx, cy]).float(), rtol=0, atol=1e-6)
    rng = np.random.default_rng(0)
    inner = 1 - 1 / COARSE  # bilinear sampling is exact for a linear image between pixel centres
    pts = torch.from_numpy(rng.uniform(-inner, inner, (1, 500, 3))).float()
    for image in (fine, coarse):
        torch.testing.assert_close(sample_image_features(image, pts), pts[..., :2], rtol=0, atol=1e-5)
    # the calib's pixel convention: fine pixel u and coarse pixel u' of one point satisfy
    # u + 0.5 = 2 (u' + 0.5) (both images span the same NDC square)
    uv_f, uv_c = ndc_to_pixel(pts[0].numpy(), FINE, FINE), ndc_to_pixel(pts[0].numpy(), COARSE, COARSE)
    np.testing.assert_allclose(uv_f + 0.5, 2 * (uv_c + 0.5), atol=1e-9)


def test_fine_decoder_reads_fine_features_at_the_projection():
    """The fine decoder's image input is the fine map sampled at the point's (x, y)."""
    model = tiny_model().eval()
    image = torch.rand(1, 3, FINE, FINE)
    enc = model.encode(image)
    x, y = pixel_centre_ndc(FINE // 2)
    enc.fine = torch.stack([x, y, x * 0, y * 0]).float()[None]
    seen = {}
    model.hd_decoder.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    pts = torch.rand(1, 50, 3) * 1.6 - 0.8
    with torch.no_grad():
        model.query(enc, pts)
    torch.testing.assert_close(seen["x"][..., :2], pts[..., :2], rtol=0, atol=1e-5)
    assert seen["x"].shape[-1] == 4 + model.decoder.embed_dim


def test_rendered_garment_projects_to_the_same_point_in_both_images():
    """Render a tube at the fine size, downsample as the model does: at every projected
    vertex (through the view's calib) both images see the garment, and both see the same
    visible surface point (the NDC depth of the pixel equals the vertex's z)."""
    import meshes

    from anchorudf.config import RenderConfig
    from anchorudf.render import render_views

    mesh = meshes.open_tube(0.3, 0.8, sections=24, rings=4, subdivisions=1, colour=True)
    cfg = RenderConfig(size=FINE, yaw_step=0.0, yaws=[0.0, 40.0], backend="osmesa", shards=[0], workers=1)
    model = tiny_model()
    for view in render_views(mesh, [0.0, 40.0], cfg, seed=0, depth=True):
        ndc = project(view.calib, np.asarray(mesh.vertices))
        pts = torch.from_numpy(ndc).float()[None]
        mask = torch.from_numpy(view.mask.astype(np.float32))[None, None]
        depth = torch.from_numpy(np.nan_to_num(view.depth, nan=0.0).astype(np.float32))[None, None] * mask
        sample = {}
        levels = {"fine": (mask, depth), "coarse": (model.coarse_image(mask), model.coarse_image(depth))}
        for level, (m, d) in levels.items():
            cover = sample_image_features(m, pts)[0, :, 0]
            z = sample_image_features(d, pts)[0, :, 0] / cover.clamp_min(1e-6)
            sample[level] = (cover, z)
        # every vertex is covered in both images (rim vertices lie on the silhouette)
        assert (sample["fine"][0] > 0).all() and (sample["coarse"][0] > 0).all(), view.yaw
        # interior points (the coarse sampler's support, 2x2 coarse = 4x4 fine pixels, within
        # 3 fine pixels of the point's own, inside the mask) see the mask fully in both images
        uv = np.rint(ndc_to_pixel(ndc, FINE, FINE)).astype(int)
        inside = torch.from_numpy(np.array([view.mask[max(v - 3, 0):v + 4, max(u - 3, 0):u + 4].all()
                                            for u, v in uv]))
        assert inside.float().mean() > 0.3
        for level in ("fine", "coarse"):
            torch.testing.assert_close(sample[level][0][inside], torch.ones(int(inside.sum())), rtol=0, atol=1e-6)
        # visible vertices (fine depth = their z): the coarse image sees the same point
        vis = inside & ((sample["fine"][1] - pts[0, :, 2]).abs() < 0.02)
        assert vis.sum() > 20
        err = (sample["coarse"][1][vis] - pts[0, vis, 2]).abs()
        assert err.median() < 0.02 and err.max() < 0.1, (view.yaw, float(err.max()))


# -- checkpoints -------------------------------------------------------------------------

def test_coarse_checkpoint_loads_into_the_hd_model(tmp_path):
    """Coarse weights reused (coarse outputs unchanged), fine level freshly initialised;
    the general check stays strict."""
    coarse = tiny_model(hd=False, size=COARSE, coarse=0, seed=3).eval()  # trained on 32 px renders
    export_model(tmp_path / "coarse", coarse, None, step=7)
    hd = tiny_model(seed=5)
    fresh_fine = {k: v.clone() for k, v in hd.state_dict().items() if k.startswith("hd_")}
    meta = load_coarse_weights(tmp_path / "coarse", hd)
    assert meta["step"] == 7
    state = hd.state_dict()
    for k, v in coarse.state_dict().items():
        assert torch.equal(state[k], v), k
    for k, v in fresh_fine.items():
        assert torch.equal(state[k], v), k
    g = torch.Generator().manual_seed(2)
    image, pts = torch.rand(2, 3, FINE, FINE, generator=g), torch.rand(2, 30, 3, generator=g) * 2 - 1
    hd.eval()
    with torch.no_grad():
        enc = hd.encode(image)
        want = coarse.query(coarse.encode(hd.coarse_image(image)), pts)
        assert torch.equal(hd.query(enc, pts, level="coarse"), want)
        assert torch.equal(hd(image, pts, fine=True)["udf"][-1], want)
        assert torch.equal(enc.anchors, coarse.encode(hd.coarse_image(image)).anchors)
    # What does not fit is refused, naming the key.
    with pytest.raises(CheckpointError, match="model.decoder"):
        load_coarse_weights(tmp_path / "coarse", tiny_model(decoder=[32, 8]))
    with pytest.raises(CheckpointError, match="coarse_size"):
        load_coarse_weights(tmp_path / "coarse", tiny_model(size=FINE, coarse=FINE))
    with pytest.raises(CheckpointError, match="no fine level"):
        load_coarse_weights(tmp_path / "coarse", tiny_model(hd=False))
    export_model(tmp_path / "hd", hd, None, step=9)
    with pytest.raises(CheckpointError, match="already an AnchorUDF-HD"):
        load_coarse_weights(tmp_path / "hd", tiny_model())
    # load_model rebuilds the HD model from its folder; the strict loader refuses a coarse
    # folder for an HD model (only load_coarse_weights does that, explicitly).
    back, meta = load_model(tmp_path / "hd")
    assert back.hd and meta["image_size"] == FINE and back.coarse_size == COARSE
    from anchorudf.models.checkpoint import load_weights

    with pytest.raises(CheckpointError, match="hd_"):
        load_weights(tmp_path / "coarse", tiny_model(size=COARSE, coarse=0))


# -- training ------------------------------------------------------------------------------

def test_hd_schedule_and_params():
    p = tiny_params(*HD, "train.steps=4", "train.gda_steps=2", "train.hd_steps=10", "train.lr=0.1",
                    "train.lr_decay_at=0.5")
    assert total_steps(p) == 16 and total_steps(tiny_params("train.steps=4", "train.gda_steps=2")) == 6
    assert [phase_at(p.train, s) for s in (3, 4, 5, 6, 15)] == ["main", "gda", "gda", "hd", "hd"]
    # the HD phase restarts the lr schedule (its fine level starts from scratch)
    assert [lr_at(p.train, s) for s in (2, 3, 5, 6, 10, 11)] == pytest.approx([0.1, 0.01, 0.01, 0.1, 0.1, 0.01])
    from anchorudf.config import ConfigError

    with pytest.raises(ConfigError, match="train.hd_steps"):
        tiny_params(*HD, "train.hd_steps=0")
    with pytest.raises(ConfigError, match="model.coarse_size"):
        tiny_params("model.coarse_size=24")
    with pytest.raises(ConfigError, match="model.hd_depth"):
        load_params(None, ["render.size=16", "model.depth=1", "model.hd_enabled=true", "model.hd_depth=4"])


@pytest.mark.parametrize("hd_train", ["all", "fine"])
def test_phases_train_the_right_parts(hd_train):
    from torch.utils.data import default_collate

    p = tiny_params(*HD, "train.steps=1", "train.gda_steps=1", "train.hd_steps=1", f"train.hd_train={hd_train}",
                    "model.norm=batch")
    torch.manual_seed(0)
    tr = Trainer(AnchorUDF(p.model, 20, FINE), p.train, torch.device("cpu"))
    batch = default_collate([dataset(p)[(0, 1)], dataset(p)[(1, 2)]])
    changed = []
    for step in range(3):
        before = {k: v.clone() for k, v in tr.model.state_dict().items()}
        tr.prepare(step)
        m = tr.train_step(batch)
        changed.append({k for k, v in tr.model.state_dict().items() if not torch.equal(before[k], v)})
    main, gda, hd = changed
    assert main and not any(k.startswith("hd_") for k in main)
    assert gda and all(k.startswith("decoder.") for k in gda)
    assert "udf_fine" in m and "gda" in m and np.isfinite(m["loss"])
    assert any(k.startswith("hd_encoder.") for k in hd) and any(k.startswith("hd_decoder.") for k in hd)
    coarse_changed = {k for k in hd if not k.startswith("hd_")}
    if hd_train == "fine":
        assert not coarse_changed  # BatchNorm statistics included
    else:
        assert any(k.startswith("encoder.") for k in coarse_changed)
        assert any(k.startswith("decoder.") for k in coarse_changed)


def test_resume_inside_the_hd_phase_is_bit_exact(tmp_path):
    p = tiny_params(*HD, "train.steps=2", "train.gda_steps=1", "train.hd_steps=3", "train.ckpt_every=1",
                    "train.lr_decay_at=0.5")
    full = train(p, dataset(p), tmp_path / "full")
    assert full["step"] == 6 and np.isfinite(full["udf_fine"])
    train(p, dataset(p), tmp_path / "cut", max_steps=4)  # one HD step done
    ck = latest_checkpoint(tmp_path / "cut")
    assert ck.name == "step_00000004" and json.loads((ck / "config.json").read_text())["phase"] == "hd"
    assert not (tmp_path / "cut" / "model").exists()
    train(p, dataset(p), tmp_path / "cut")
    assert_same_weights(tmp_path / "full" / "model", tmp_path / "cut" / "model")
    model, meta = load_model(tmp_path / "cut" / "model")
    assert model.hd and meta["step"] == 6


def test_a_checkpoint_from_before_the_hd_params_is_still_resumed(tmp_path):
    """Params added to the schema later (absent from an older checkpoint's record) take
    their defaults: the run resumes instead of starting anew."""
    import warnings

    from anchorudf.models.checkpoint import write_checksums

    p = tiny_params("model.coarse_size=0", "train.steps=2", "train.gda_steps=1", "train.ckpt_every=1")
    train(p, dataset(p), tmp_path / "full")
    train(p, dataset(p), tmp_path / "cut", max_steps=2)
    ck = latest_checkpoint(tmp_path / "cut")
    meta = json.loads((ck / "config.json").read_text())
    for key in ("coarse_size", "hd_enabled", "hd_channels", "hd_depth", "hd_decoder"):
        del meta["params"]["model"][key]
    for key in ("hd_steps", "hd_train"):
        del meta["params"]["train"][key]
    (ck / "config.json").write_text(json.dumps(meta))
    write_checksums(ck)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*starting a new run")
        train(p, dataset(p), tmp_path / "cut")
    assert_same_weights(tmp_path / "full" / "model", tmp_path / "cut" / "model")


def test_a_finished_coarse_run_continues_into_the_hd_phase_exactly(tmp_path):
    """`dvc exp run -S model.hd_enabled=true` after the coarse run: the HD run picks up the
    coarse run's final checkpoint and ends with the weights of an uninterrupted HD run."""
    base = ["train.steps=2", "train.gda_steps=1", "train.hd_steps=2"]
    coarse, hd = tiny_params(*base), tiny_params(*HD, *base)
    train(coarse, dataset(coarse), tmp_path / "run")
    with pytest.warns(UserWarning, match="continuing it as AnchorUDF-HD"):
        m = train(hd, dataset(hd), tmp_path / "run")
    assert m["step"] == 5
    train(hd, dataset(hd), tmp_path / "fresh")
    assert_same_weights(tmp_path / "fresh" / "model", tmp_path / "run" / "model")
    assert not (tmp_path / "run" / "previous").exists()
    # a coarse run stopped within its phases continues as well
    train(coarse, dataset(coarse), tmp_path / "cut", max_steps=2)
    with pytest.warns(UserWarning, match="step 2"):
        train(hd, dataset(hd), tmp_path / "cut")
    assert_same_weights(tmp_path / "fresh" / "model", tmp_path / "cut" / "model")
    # other coarse params: not a coarse run of this HD run, a new run (the old one moved aside)
    other = tiny_params(*HD, *base, "train.lr=0.002")
    with pytest.warns(UserWarning, match="other params"):
        train(other, dataset(other), tmp_path / "run")


def test_a_coarse_run_with_a_weight_average_continues_into_the_hd_phase_exactly(tmp_path):
    """train.ema: the coarse run's average carries into the HD model (its fine weights
    start from the model's, frozen until the HD phase), as in an uninterrupted HD run."""
    base = ["train.steps=2", "train.gda_steps=1", "train.hd_steps=2", "train.ema=0.5"]
    coarse, hd = tiny_params(*base), tiny_params(*HD, *base)
    train(coarse, dataset(coarse), tmp_path / "run")
    with pytest.warns(UserWarning, match="continuing it as AnchorUDF-HD"):
        train(hd, dataset(hd), tmp_path / "run")
    train(hd, dataset(hd), tmp_path / "fresh")
    for name in ("model", "model_raw"):
        assert_same_weights(tmp_path / "fresh" / name, tmp_path / "run" / name)


def test_cli_synthetic_training_runs_the_hd_phase(tmp_path):
    from typer.testing import CliRunner

    from anchorudf.cli import app

    argv = ["train", "--params", str(tmp_path / "none.yaml"), "--run-dir", str(tmp_path / "run"), "--synthetic",
            "--synthetic-items", "3"]
    (tmp_path / "none.yaml").write_text("train:\n  steps: 1\n  gda_steps: 1\n  hd_steps: 2\n")
    r = CliRunner().invoke(app, argv + [a for o in TINY + HD for a in ("-S", o)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout[r.stdout.index("{"):])
    assert metrics["step"] == 4 and "udf_fine" in metrics
    model, meta = load_model(tmp_path / "run" / "model")
    assert model.hd and meta["params"]["model"]["hd_enabled"]


# -- the DVC stages with an HD model ---------------------------------------------------------

def _stage_argv(stage: dict) -> list[str]:
    """The CLI arguments of a dvc.yaml stage's command."""
    import shlex

    cmd = shlex.split(stage["cmd"])
    assert cmd[0] == "anchorudf"
    return cmd[1:]


@pytest.mark.slow
def test_dvc_train_and_evaluate_stages_run_the_hd_model(tiny_data, tmp_path, monkeypatch):
    """dvc.yaml's train stage tracks the HD params (the whole model and train sections) and
    its command trains the HD phase; its evaluate command scores the HD model's (fine)
    output; `anchorudf reconstruct` reads the HD checkpoint's full-size input."""
    from typer.testing import CliRunner

    from anchorudf.cli import app

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert {"model", "train", "render.size"} <= set(dvc["train"]["params"])
    assert "data/train/model" in dvc["evaluate"]["deps"]
    p0, data, _ = tiny_data
    assert p0.render.size == FINE
    monkeypatch.chdir(tmp_path)
    shutil.copytree(data, tmp_path / "data")
    raw = p0.to_dict()
    for o in TINY + HD:
        (section, key), value = o.split("=", 1)[0].split("."), o.split("=", 1)[1]
        if section in ("model", "train") and key not in ("points", "threads"):
            raw[section][key] = yaml.safe_load(value)
    raw["train"].update(steps=2, gda_steps=1, hd_steps=2, batch_size=2, points=64)
    raw["evaluate"].update(seed_points=500, target_points=300, max_rounds=2, mesh_resolution=16,
                           metric_points=500, baselines=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(app, _stage_argv(dvc["train"]))
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "reports" / "train" / "metrics.json").read_text())["step"] == 5
    model, meta = load_model(tmp_path / "data" / "train" / "model")
    assert model.hd and meta["image_size"] == FINE and model.coarse_size == COARSE

    levels = []
    real_fine = AnchorUDF.query_fine

    def spy(self, enc, points):
        levels.append("fine")
        return real_fine(self, enc, points)

    monkeypatch.setattr(AnchorUDF, "query_fine", spy)
    r = CliRunner().invoke(app, _stage_argv(dvc["evaluate"]))
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "reports" / "metrics.json").read_text())["anchorudf_points"]
    assert levels, "evaluate did not query the fine level of the HD model"
    levels.clear()
    from anchorudf.render import load_views

    gid = sorted(x.name for x in (tmp_path / "data" / "render").glob("shard-*/*") if x.is_dir())[0]
    view = load_views(tmp_path / "data" / "render", gid)[0]
    r = CliRunner().invoke(app, ["reconstruct", str(view.image), "--mask", str(view.mask), "--out", "recon",
                                 "--checkpoint", "data/train/model"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "recon" / "points.ply").is_file() and levels


def _ddp_worker(rank: int, world: int, port: int, run_dir: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from anchorudf.train.distributed import DistInfo, weights_digest
    from anchorudf.train.trainer import run_training

    p = tiny_params(*HD, "train.steps=1", "train.gda_steps=1", "train.hd_steps=1")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _, model = run_training(p, dataset(p), Path(run_dir), DistInfo(rank, world, rank), "cpu", None)
        Path(run_dir, f"digest_{rank}.txt").write_text(weights_digest(model))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_runs_every_phase_of_an_hd_model(tmp_path):
    """DDP registers the parameters each phase trains (the fine level is frozen before the
    HD phase): all three phases run on two processes, which end with the same weights."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "digest_0.txt").read_text() == (tmp_path / "digest_1.txt").read_text()
