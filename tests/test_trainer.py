"""Trainer: data order, schedule, smoke training, checkpoints, resume, DDP."""

from __future__ import annotations

import dataclasses

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from anchorudf.config import load_params
from anchorudf.models.anchorudf import AnchorUDF
from anchorudf.models.checkpoint import load_model
from anchorudf.train.checkpoint import latest_checkpoint
from anchorudf.train.sampler import StepBatchSampler
from anchorudf.train.schedule import lr_at, phase_at
from anchorudf.train.synthetic import SyntheticDataset
from anchorudf.train.trainer import Trainer, make_optimizer, train

TINY = ["model.stacks=1", "model.depth=1", "model.channels=8", "model.grid=8", "model.pos_channels=4",
        "model.decoder=[32, 16]", "render.size=32", "train.points=64", "anchors.count=20",
        "train.batch_size=2", "train.log_every=1", "train.threads=1"]


def tiny_params(*extra: str):
    return load_params(None, TINY + list(extra))


def dataset(p):
    return SyntheticDataset.from_params(p, length=5)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# -- data order and schedule -----------------------------------------------------------

def test_sampler_epochs_ranks_and_restart():
    s = StepBatchSampler(length=5, batch_size=2, seed=3)
    stream = [k for step in range(5) for k in s.keys(step)]  # 10 keys = 2 epochs
    assert sorted(i for i, _ in stream[:5]) == list(range(5))
    assert sorted(i for i, _ in stream[5:]) == list(range(5))
    assert len({seed for _, seed in stream}) == 10  # every draw has its own seed
    # Ranks split each global batch; a sampler started at step 3 continues the same stream.
    r0, r1 = StepBatchSampler(5, 2, 3, rank=0, world=2), StepBatchSampler(5, 2, 3, rank=1, world=2)
    assert [r0.keys(1)[0], r1.keys(1)[0]] == s.keys(1)
    it = iter(StepBatchSampler(5, 2, 3, start_step=3))
    assert next(it) == s.keys(3) and next(it) == s.keys(4)
    assert StepBatchSampler(5, 2, 4).keys(0) != s.keys(0)
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(5, 3, 0, world=2)


def test_schedule():
    cfg = tiny_params("train.steps=8", "train.gda_steps=2", "train.lr=0.1", "train.lr_decay_at=0.5").train
    assert [phase_at(cfg, s) for s in (0, 7, 8, 9)] == ["main", "main", "gda", "gda"]
    assert lr_at(cfg, 4) == pytest.approx(0.1) and lr_at(cfg, 5) == pytest.approx(0.01)


def test_warmup_ramps_the_lr_at_the_start_of_each_phase_schedule():
    cfg = tiny_params("train.steps=8", "train.gda_steps=2", "train.lr=0.1", "train.lr_decay_at=0.5",
                      "train.warmup=3", "train.hd_steps=8").train
    # lr x (k + 1) / (warmup + 1) for k < warmup, then the plain schedule (decay included).
    assert [lr_at(cfg, k) for k in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.01])
    # The HD phase (steps 10..17, decayed from 14) restarts the schedule, warm-up included.
    assert [lr_at(cfg, k) for k in (10, 12, 13, 14)] == pytest.approx([0.025, 0.075, 0.1, 0.01])
    plain = tiny_params("train.steps=8", "train.gda_steps=2", "train.lr=0.1", "train.lr_decay_at=0.5").train
    assert [lr_at(plain, k) for k in range(10)] == [lr_at(dataclasses.replace(cfg, warmup=0), k)
                                                    for k in range(10)]


def test_grad_clip_scales_the_gradient_to_the_given_norm():
    from torch.utils.data import default_collate

    p = tiny_params("train.steps=1", "train.gda_steps=0")
    batch = default_collate([dataset(p)[(0, 1)], dataset(p)[(1, 2)]])

    def step(clip: float):
        torch.manual_seed(0)
        tr = Trainer(AnchorUDF(p.model, 20, 32), dataclasses.replace(p.train, grad_clip=clip), torch.device("cpu"))
        tr.prepare(0)
        m = tr.train_step(batch)
        return m, [q.grad.clone() for q in tr.model.parameters() if q.grad is not None]

    m_free, g_free = step(0.0)
    assert "grad_norm" not in m_free
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in g_free])).item()
    m_clip, g_clip = step(norm / 4)
    assert m_clip["grad_norm"] == pytest.approx(norm, rel=1e-5)
    for a, b in zip(g_clip, g_free):
        torch.testing.assert_close(a, b / 4, rtol=1e-4, atol=1e-9)
    m_loose, g_loose = step(norm * 4)  # above the norm: the gradient is untouched
    for a, b in zip(g_loose, g_free):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_synthetic_items_follow_the_schema():
    p = tiny_params()
    item = dataset(p)[(1, 123)]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["points"].shape == (64, 3) and item["udf"].shape == (64,) and item["anchors"].shape == (20, 3)
    assert torch.allclose(item["direction"].norm(dim=1), torch.ones(64), atol=1e-5)
    # udf is the distance to the closest point along -direction: for the patch (odd item) and
    # the sphere (even item), p - udf * direction lies on the surface and udf is the exact distance.
    for key in ((1, 123), (0, 123)):
        it = {k: v.double() for k, v in dataset(p)[key].items()}
        shape = dataset(p)._shape(key[0])
        c = torch.from_numpy(shape["centre"])
        q = it["points"] - it["udf"][:, None] * it["direction"]
        if shape["kind"] == "patch":
            out = ((it["points"][:, :2] - c[:2]).abs() - shape["half"]).clamp(min=0)
            ref = torch.sqrt((out ** 2).sum(1) + (it["points"][:, 2] - c[2]) ** 2)
            assert (q[:, 2] - c[2]).abs().max() < 1e-5 and ((q[:, :2] - c[:2]).abs() - shape["half"]).max() < 1e-5
        else:
            ref = ((it["points"] - c).norm(dim=1) - shape["radius"]).abs()
            assert ((q - c).norm(dim=1) - shape["radius"]).abs().max() < 1e-5
        torch.testing.assert_close(it["udf"], ref, rtol=0, atol=1e-6)
    assert torch.equal(item["points"], dataset(p)[(1, 123)]["points"])
    assert not torch.equal(item["points"], dataset(p)[(1, 124)]["points"])
    assert (item["image"] * (1 - item["mask"])).abs().max() == 0


def test_gda_phase_freezes_encoders_and_trains_decoder():
    p = tiny_params("train.steps=0", "train.gda_steps=1", "model.norm=batch")
    from torch.utils.data import default_collate

    torch.manual_seed(0)
    tr = Trainer(AnchorUDF(p.model, 20, 32), p.train, torch.device("cpu"))
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    batch = default_collate([dataset(p)[(0, 1)], dataset(p)[(1, 2)]])
    m = tr.train_step(batch)
    assert "gda" in m and np.isfinite(m["gda"])
    after = tr.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)  # BN stats too stay put
    ev = tr.eval_step(batch)
    assert set(ev) == {"udf", "udf_near_abs", "anchor_chamfer", "gda"} and all(np.isfinite(list(ev.values())))
    with pytest.raises(KeyError, match="direction"):
        tr.train_step({k: v for k, v in batch.items() if k != "direction"})


# -- training, checkpoints, resume ---------------------------------------------------------

def test_two_step_training_smoke_and_checkpoint_reload(tmp_path):
    p = tiny_params("train.steps=1", "train.gda_steps=1")
    metrics = train(p, dataset(p), tmp_path)
    assert metrics["step"] == 2 and all(np.isfinite(v) for v in metrics.values()) and "gda" in metrics
    assert (tmp_path / "dvclive" / "metrics.json").is_file()
    assert (tmp_path / "dvclive" / "plots" / "metrics" / "train" / "udf.tsv").is_file()
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == 2
    model, meta = load_model(tmp_path / "model")
    assert meta["step"] == 2 and meta["anchor_count"] == 20 and meta["params"]["train"]["steps"] == 1
    ck, _ = load_model(latest_checkpoint(tmp_path) / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    image, pts = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 64, 3, generator=g) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(image, pts)["udf"][-1], ck(image, pts)["udf"][-1])
        # The reloaded model holds exactly the trained weights.
        for k, v in weights(tmp_path / "model").items():
            assert torch.equal(model.state_dict()[k], v)


def test_resume_matches_uninterrupted(tmp_path):
    p = tiny_params("train.steps=2", "train.gda_steps=2", "train.ckpt_every=2", "train.lr_decay_at=0.7")
    train(p, dataset(p), tmp_path / "full")
    train(p, dataset(p), tmp_path / "cut", max_steps=2)
    assert not (tmp_path / "cut" / "model").exists()
    assert latest_checkpoint(tmp_path / "cut").name == "step_00000002"
    train(p, dataset(p), tmp_path / "cut")  # resume: auto
    a, b = weights(tmp_path / "full" / "model"), weights(tmp_path / "cut" / "model")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    # A checkpoint made with other params is never resumed: the run starts afresh (with a
    # warning) and ends exactly like a fresh run in an empty folder.
    other = tiny_params("train.steps=2", "train.gda_steps=2", "train.lr=0.002")
    with pytest.warns(UserWarning, match="other params"):
        train(other, dataset(other), tmp_path / "cut")
    train(other, dataset(other), tmp_path / "fresh")
    a, b = weights(tmp_path / "fresh" / "model"), weights(tmp_path / "cut" / "model")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)


def test_ema_is_the_running_average_of_the_optimizer_weights(tmp_path):
    """train.ema: model/ holds the exponential moving average (first update = a copy, then
    avg <- d avg + (1 - d) w after every step, every parameter and buffer), model_raw/ the
    optimizer's weights; without train.ema there is no model_raw/."""
    decay = 0.6
    p = tiny_params("train.steps=3", "train.gda_steps=1", f"train.ema={decay}")
    trainer = Trainer(AnchorUDF(p.model, p.anchors.count, p.render.size), p.train, torch.device("cpu"))
    from torch.utils.data import default_collate

    data = dataset(p)
    expected = None
    for step in range(4):
        trainer.prepare(step)
        trainer.train_step(default_collate([data[(step, i)] for i in range(2)]))
        now = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        expected = now if expected is None else {k: decay * expected[k] + (1 - decay) * now[k] for k in now}
    averaged = trainer.final_model().state_dict()
    assert averaged.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(averaged[k], expected[k], rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(averaged[k], trainer.model.state_dict()[k]) for k in expected)

    # The same through train(): model/ = the average, model_raw/ = the last weights.
    train(p, dataset(p), tmp_path / "ema")
    avg, raw = weights(tmp_path / "ema" / "model"), weights(tmp_path / "ema" / "model_raw")
    assert avg.keys() == raw.keys() and any(not torch.equal(avg[k], raw[k]) for k in avg)
    plain = tiny_params("train.steps=3", "train.gda_steps=1")
    train(plain, dataset(plain), tmp_path / "plain")
    assert not (tmp_path / "plain" / "model_raw").exists()
    for k, v in weights(tmp_path / "plain" / "model").items():  # the EMA never feeds back
        torch.testing.assert_close(raw[k], v, rtol=0, atol=1e-7)


def test_ema_resumes_exactly_and_a_checkpoint_without_it_is_refused(tmp_path):
    from anchorudf.errors import CheckpointError

    p = tiny_params("train.steps=2", "train.gda_steps=2", "train.ckpt_every=2", "train.ema=0.7")
    train(p, dataset(p), tmp_path / "full")
    train(p, dataset(p), tmp_path / "cut", max_steps=2)
    train(p, dataset(p), tmp_path / "cut")  # resume: auto, the average comes back too
    for name in ("model", "model_raw"):
        a, b = weights(tmp_path / "full" / name), weights(tmp_path / "cut" / name)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7)
    trainer = Trainer(AnchorUDF(p.model, p.anchors.count, p.render.size), p.train, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="optimizer.pt: holds no weight average"):
        trainer.load_extra_state({}, "run/optimizer.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        trainer.load_extra_state({"ema": {"module.nope": torch.zeros(1), "n_averaged": torch.tensor(1)}},
                                 "run/optimizer.pt")


def test_init_starts_a_new_run_from_given_weights(tmp_path):
    """train.init: a new run starts from a model folder's weights (fine-tuning). In a GDA-only
    run the encoders are frozen, so they stay exactly the init's; without init they are the
    seed's random ones. A folder for another architecture is one CheckpointError naming its
    weights file; a missing folder names train.init."""
    from anchorudf.errors import CheckpointError
    from anchorudf.train.resume import init_weights

    p = tiny_params("train.steps=2", "train.gda_steps=0")
    train(p, dataset(p), tmp_path / "a")
    a = weights(tmp_path / "a" / "model")
    for init, same in ((str(tmp_path / "a" / "model"), True), ("", False)):
        q = tiny_params("train.steps=0", "train.gda_steps=1", f"train.init={init}")
        run = tmp_path / ("b" if init else "c")
        train(q, dataset(q), run)
        b = weights(run / "model")
        decoder = {k for k in b if k.startswith("decoder.")}
        frozen = [k for k in b if k not in decoder]
        assert all(torch.equal(a[k], b[k]) for k in frozen) == same
        assert not any(torch.equal(a[k], b[k]) for k in decoder if a[k].numel() > 1)  # the GDA step trained it
    wide = tiny_params("model.channels=16")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        init_weights(AnchorUDF(wide.model, wide.anchors.count, wide.render.size), str(tmp_path / "a" / "model"))
    with pytest.raises(FileNotFoundError, match="train.init"):
        init_weights(AnchorUDF(p.model, p.anchors.count, p.render.size), str(tmp_path / "nothing"))


# -- DDP --------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, run_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    p = tiny_params("train.steps=1", "train.gda_steps=1")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from anchorudf.train.distributed import DistInfo
        from anchorudf.train.trainer import run_training

        from anchorudf.train.distributed import weights_digest

        _, model = run_training(p, dataset(p), Path(run_dir), DistInfo(rank, world, rank), "cpu", None)
        # Each rank's own in-memory weights after the last step (main and GDA phase).
        Path(run_dir, f"digest_{rank}.txt").write_text(weights_digest(model))
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_identical_weights(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "digest_0.txt").read_text() == (tmp_path / "digest_1.txt").read_text()


def test_cli_entry_point_with_synthetic_data(tmp_path):
    from typer.testing import CliRunner

    from anchorudf.cli import app

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  steps: 1\n  gda_steps: 0\n")
    argv = ["train", "--params", str(params), "--run-dir", str(tmp_path / "run"), "--synthetic",
            "--synthetic-items", "3"]
    r = CliRunner().invoke(app, argv + [a for o in TINY for a in ("-S", o)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["step"] == 1
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    r = CliRunner().invoke(app, argv + ["-S", "train.stepz=3"])
    assert r.exit_code == 2 and "train.stepz" in r.output


def test_python_m_anchorudf_runs_the_cli():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "anchorudf", "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "--max-steps" in r.stdout and "--synthetic" in r.stdout and "torchrun" in r.stdout


@pytest.mark.slow
def test_torchrun_two_processes_through_python_m_anchorudf(tmp_path):
    """The documented multi-GPU command, on CPU (gloo): one metrics print, from rank 0."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run",  # = torchrun
           "--nproc_per_node=2", "--master_port", str(_free_port()), "-m", "anchorudf", "train",
           "--run-dir", str(tmp_path / "run"), "--synthetic", "--synthetic-items", "4",
           "-S", "train.steps=1", "-S", "train.gda_steps=1"] + [a for o in TINY for a in ("-S", o)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('"step"') == 1 and json.loads(r.stdout)["step"] == 2
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_grouped_optimizer_update_is_the_per_tensor_update_bit_for_bit(optimizer):
    """make_optimizer's foreach update gives exactly the weights of torch's per-tensor loop
    (main and GDA phase steps)."""
    from torch.utils.data import default_collate

    p = tiny_params("train.steps=2", "train.gda_steps=2", f"train.optimizer={optimizer}")
    data = dataset(p)
    out = []
    for grouped in (True, False):
        torch.manual_seed(0)
        tr = Trainer(AnchorUDF(p.model, p.anchors.count, p.render.size), p.train, torch.device("cpu"))
        if not grouped:
            tr.optimizer = make_optimizer([q for g in tr.optimizer.param_groups for q in g["params"]], p.train,
                                          foreach=False)
            assert not any(g["foreach"] for g in tr.optimizer.param_groups)
        else:
            assert all(g["foreach"] for g in tr.optimizer.param_groups)
        for step in range(4):
            tr.prepare(step)
            tr.train_step(default_collate([data[(step, i)] for i in range(2)]))
        out.append([q.detach().clone() for q in tr.model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*out))
