"""Training never loses a model, never uses damaged weights, and rejects params that would fail later.

Each test reproduces one defect of "nothing damaged is ever used silently, nothing is
deleted by surprise, every error is one line": a changed param deleting the previous run,
leftover temp folders, unverified weights/optimizer state, configs that do not fit their
weights, and params that pass validation but break (or silently do nothing) later.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from anchorudf.config import ConfigError, load_params
from anchorudf.errors import CheckpointError
from anchorudf.models.checkpoint import load_model
from anchorudf.train.synthetic import SyntheticDataset
from anchorudf.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]

TINY = ["model.stacks=1", "model.depth=1", "model.channels=8", "model.grid=8", "model.pos_channels=4",
        "model.decoder=[32, 16]", "render.size=32", "train.points=64", "anchors.count=20",
        "train.batch_size=2", "train.log_every=1", "train.threads=1"]
BASE = ["train.steps=1", "train.gda_steps=1"]


def tiny_params(*extra: str):
    return load_params(None, TINY + BASE + list(extra))


def dataset(p):
    return SyntheticDataset.from_params(p, length=5)


class Killed(SyntheticDataset):
    """A dataset whose first item kills the run (a run stopped before its first step)."""

    def __getitem__(self, key):
        raise KeyboardInterrupt("killed before the first step")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_line(exc: BaseException, *names: str) -> str:
    msg = str(exc)
    assert "\n" not in msg and len(msg) < 400, msg
    for name in names:
        assert name in msg, msg
    return msg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run: checkpoints/step_00000001, step_00000002, latest.json and model/."""
    run = tmp_path_factory.mktemp("trained") / "run"
    p = tiny_params("train.ckpt_every=1")
    train(p, dataset(p), run)
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the finished run."""
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


# -- 1. a new run never destroys the previous one; stale temp folders are cleaned --------

def test_changed_params_move_the_previous_run_aside_before_training(run):
    old = weights(run / "model")
    other = tiny_params("train.ckpt_every=1", "train.lr=0.002")
    with pytest.warns(UserWarning, match="other params") as rec, pytest.raises(KeyboardInterrupt):
        train(other, Killed.from_params(other, length=5), run)  # dies before its first step
    prev = sorted((run / "previous").iterdir())
    assert len(prev) == 1 and prev[0].name.startswith("0001-step_00000002-")
    msg = "\n".join(str(w.message) for w in rec)
    assert str(prev[0]) in msg  # the warning says where the old run went
    assert same(weights(prev[0] / "model"), old)
    assert (prev[0] / "checkpoints" / "latest.json").is_file()
    assert not (run / "model").exists() and not (run / "checkpoints" / "latest.json").exists()
    # The moved-aside model is still a loadable, verified model.
    model, meta = load_model(prev[0] / "model")
    assert meta["step"] == 2


def test_only_the_newest_previous_runs_are_kept_and_the_warning_says_so(run):
    names = []
    for lr in (0.002, 0.003, 0.004):
        p = tiny_params(f"train.lr={lr}")
        with pytest.warns(UserWarning, match="other params") as rec:
            train(p, dataset(p), run)
        names.append(" ".join(str(w.message) for w in rec))
    prev = sorted(d.name for d in (run / "previous").iterdir())
    assert [n[:4] for n in prev] == ["0002", "0003"]  # the newest two previous runs
    assert "0001-" in names[-1] and "removed" in names[-1]  # ... and the removal was announced
    assert (run / "model" / "model.safetensors").is_file()


def test_resume_never_keeps_the_previous_run(run):
    old = weights(run / "model")
    p = tiny_params("train.resume=never", "train.lr=0.001")
    with pytest.warns(UserWarning, match="resume=never"):
        train(p, dataset(p), run)
    (prev,) = (run / "previous").iterdir()
    assert same(weights(prev / "model"), old)
    # The new run's checkpoints are not mixed with the old ones.
    assert sorted(d.name for d in (run / "checkpoints").iterdir() if d.is_dir()) == ["step_00000002"]


def test_stale_temp_folders_of_killed_writes_are_cleaned(run):
    stale = [run / "checkpoints" / ".step_00000003.k2j4h5", run / ".model.x8c1q9"]
    for d in stale:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"\0" * 1000)
    (run / "checkpoints" / ".latest.json.ab12.json").write_text("{}")
    keep = [run / "notes.txt", run / ".model_notes", run / "checkpoints" / ".stepnotes"]
    for f in keep:
        f.write_text("mine")
    p = tiny_params("train.ckpt_every=1")
    with pytest.warns(UserWarning, match="temporary"):
        train(p, dataset(p), run)  # resumes at the end: nothing to train, cleans up
    assert not any(d.exists() for d in stale)
    assert not (run / "checkpoints" / ".latest.json.ab12.json").exists()
    assert all(f.read_text() == "mine" for f in keep)


# -- 2. weights, optimizer state and configs are verified at load --------------------------

def flip_exponent_bit(path: Path) -> tuple[str, float, float]:
    """Flip the top exponent bit of the first float32 weight in (0.01, 1): 0.038 -> 1.3e37."""
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    for name, info in sorted(header.items()):
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        s, e = info["data_offsets"]
        values = np.frombuffer(bytes(data[8 + n + s:8 + n + e]), dtype="<f4")
        hits = np.flatnonzero((np.abs(values) > 0.01) & (np.abs(values) < 1))
        if len(hits):
            at = 8 + n + s + 4 * int(hits[0])
            before = struct.unpack("<f", data[at:at + 4])[0]
            data[at + 3] ^= 0x40
            after = struct.unpack("<f", data[at:at + 4])[0]
            path.write_bytes(bytes(data))
            return name, before, after
    raise AssertionError("no weight to damage")


def test_flipped_exponent_bit_is_rejected_by_load_model_and_resume(run):
    name, before, after = flip_exponent_bit(run / "model" / "model.safetensors")
    assert abs(after) > 1e30 and np.isfinite(after)
    with pytest.raises(CheckpointError) as info:
        load_model(run / "model")
    one_line(info.value, str(run / "model" / "model.safetensors"), "sha256")
    flip_exponent_bit(run / "checkpoints" / "step_00000002" / "model.safetensors")
    p = tiny_params("train.ckpt_every=1")
    with pytest.raises(CheckpointError) as info:
        train(p, dataset(p), run)
    one_line(info.value, "step_00000002", "model.safetensors")


def test_damaged_optimizer_state_is_rejected_at_resume(run):
    opt = run / "checkpoints" / "step_00000002" / "optimizer.pt"
    data = bytearray(opt.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside a tensor: torch.load itself does not notice
    opt.write_bytes(bytes(data))
    p = tiny_params("train.ckpt_every=1")
    with pytest.raises(CheckpointError) as info:
        train(p, dataset(p), run)
    one_line(info.value, str(opt))


def test_checkpoints_without_checksums_load_with_one_warning_but_bad_values_fail(run):
    (run / "model" / "checksums.json").unlink(missing_ok=True)  # as written before checksums existed
    with pytest.warns(UserWarning, match="no checksums.json") as rec:
        load_model(run / "model")
    assert len([w for w in rec if "checksums" in str(w.message)]) == 1
    flip_exponent_bit(run / "model" / "model.safetensors")
    with pytest.raises(CheckpointError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(run / "model")
    one_line(info.value, "model.safetensors")
    # NaN weights are never accepted either.
    from safetensors.torch import save_file

    w = weights(run / "model")
    w[sorted(w)[0]].view(-1)[0] = float("nan")
    save_file(w, str(run / "model" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="non-finite") as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(run / "model")
    one_line(info.value, sorted(w)[0])


def edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if key in cfg.get("model", {}):
            cfg["model"][key] = value
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))


def test_config_image_size_that_does_not_fit_the_weights_is_detected(run):
    # 64 px gives the same tensor shapes as 32 px for this model: only a recorded size tells.
    edit_config(run / "model", image_size=64)
    with pytest.raises(CheckpointError) as info:
        load_model(run / "model")
    one_line(info.value, "config.json")
    (run / "model" / "checksums.json").unlink(missing_ok=True)  # an old folder: the weights' metadata tells
    with pytest.raises(CheckpointError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(run / "model")
    one_line(info.value, "config.json", "image_size", "64", "32")


def test_config_of_another_architecture_names_the_first_mismatching_tensor(run):
    (run / "model" / "checksums.json").unlink(missing_ok=True)
    edit_config(run / "model", channels=16)
    with pytest.raises(CheckpointError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(run / "model")
    msg = one_line(info.value, "model.safetensors", "config.json")
    assert "encoder." in msg and "shape" in msg


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("checksums", [True, False])
@pytest.mark.parametrize("file, damage", [
    ("model.safetensors", truncate),
    ("model.safetensors", damage_header),
    ("config.json", truncate),
    ("config.json", lambda p: p.unlink()),
    ("model.safetensors", lambda p: p.unlink()),
])
def test_damaged_files_give_one_checkpoint_error_naming_the_file(run, file, damage, checksums):
    if not checksums:
        (run / "model" / "checksums.json").unlink(missing_ok=True)
    damage(run / "model" / file)
    with pytest.raises(CheckpointError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_model(run / "model")
    one_line(info.value, str(run / "model" / file))


def test_damaged_checksums_and_pointer_give_one_checkpoint_error(run):
    truncate(run / "model" / "checksums.json")
    with pytest.raises(CheckpointError) as info:
        load_model(run / "model")
    one_line(info.value, "checksums.json")
    (run / "checkpoints" / "latest.json").write_text('{"step": 2, "pa')
    p = tiny_params("train.ckpt_every=1")
    with pytest.raises(CheckpointError) as info:
        train(p, dataset(p), run)
    one_line(info.value, "latest.json")


def test_reconstruct_cli_reports_a_damaged_model_in_one_line(run, tmp_path):
    from typer.testing import CliRunner

    from anchorudf.cli import app
    from PIL import Image

    img = np.full((32, 32, 3), 255, np.uint8)
    img[8:24, 10:22] = (200, 40, 40)
    Image.fromarray(img).save(tmp_path / "g.png")
    flip_exponent_bit(run / "model" / "model.safetensors")
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "g.png"), "-c", str(run / "model"),
                                 "-o", str(tmp_path / "out"), "--params", str(ROOT / "params.yaml")])
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if line.strip()]
    assert len(errors) == 1 and "model.safetensors" in errors[0] and "sha256" in errors[0], r.output


# -- resume after SIGKILL stays bit-exact ------------------------------------------------------

KILL_SCRIPT = """
import os, signal, sys
from anchorudf.config import load_params
from anchorudf.train.synthetic import SyntheticDataset
from anchorudf.train.trainer import train

p = load_params(None, sys.argv[2:])
class KillAt(SyntheticDataset):
    calls = 0
    def __getitem__(self, key):
        KillAt.calls += 1
        if KillAt.calls > 2 * 2:  # batch_size 2: dies fetching the third step's batch
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(key)
train(p, KillAt.from_params(p, length=5), sys.argv[1])
"""


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    args = TINY + ["train.steps=3", "train.gda_steps=1", "train.ckpt_every=1"]
    p = load_params(None, args)
    train(p, dataset(p), tmp_path / "full")
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "cut")] + args,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    # A write killed half-way leaves a temp folder behind: resume must ignore and remove it.
    (tmp_path / "cut" / "checkpoints" / ".step_00000003.zz9").mkdir()
    assert json.loads((tmp_path / "cut" / "checkpoints" / "latest.json").read_text())["step"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(p, dataset(p), tmp_path / "cut")
    assert same(weights(tmp_path / "full" / "model"), weights(tmp_path / "cut" / "model"))
    assert not (tmp_path / "cut" / "checkpoints" / ".step_00000003.zz9").exists()


# -- 3. params that pass validation but fail (or silently do nothing) later -------------------

@pytest.mark.parametrize("override, key", [
    ("train.lr=.nan", "train.lr"),
    ("train.lr=0", "train.lr"),
    ("train.delta=.inf", "train.delta"),
    ("train.delta=0", "train.delta"),
    ("train.lambda_gda=.nan", "train.lambda_gda"),
    ("train.lr_decay=0", "train.lr_decay"),
    ("render.test_yaws=[.nan]", "render.test_yaws"),
    ("render.test_yaws=[]", "render.test_yaws"),
    ("render.shards=[]", "render.shards"),
    ("sample.shards=[]", "sample.shards"),
    ("garments.categories=[]", "garments.categories"),
    ("model.decoder=[]", "model.decoder"),
    ("model.decoder=[-5]", "model.decoder"),
    ("model.decoder=[0, 8]", "model.decoder"),
    ("evaluate.filter_val=0", "evaluate.filter_val"),
    ("evaluate.fscore_threshold=0", "evaluate.fscore_threshold"),
    ("train.lambda_ap=.inf", "train.lambda_ap"),
    ("model.depth=6", "model.depth"),  # 128 px is too small for 6 downsamplings
])
def test_params_that_would_fail_later_are_rejected_naming_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_params(ROOT / "params.yaml", [override])
    assert str(info.value).startswith(key), info.value
    one_line(info.value)


def test_a_run_of_zero_steps_is_rejected():
    with pytest.raises(ConfigError, match="^train.steps"):
        load_params(ROOT / "params.yaml", ["train.steps=0", "train.gda_steps=0"])


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_params_file_is_an_error_naming_the_file(tmp_path, text):
    f = tmp_path / "params.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_params(f)
    one_line(info.value, str(f), "empty")


def test_missing_params_yaml_says_built_in_defaults_are_used(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from anchorudf.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["params"])
    assert r.exit_code == 0, r.output
    assert r.stderr.count("\n") == 1 and "params.yaml" in r.stderr and "built-in defaults" in r.stderr
    from anchorudf.config import TrainConfig

    assert f"lr: {TrainConfig().lr}" in r.stdout  # the built-in default, whatever it is
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.5\n")
    r = CliRunner().invoke(app, ["params"])
    assert r.exit_code == 0 and r.stderr == "" and "lr: 0.5" in r.stdout
