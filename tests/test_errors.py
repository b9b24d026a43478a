"""Every command fails with ONE line ``error: <file>: <problem>`` on stderr and exit status 1
(2: params, 130: interrupted); ``--debug`` / ``ANCHORUDF_DEBUG=1`` shows the traceback."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anchorudf import stages
from anchorudf.cli import app
from anchorudf.errors import AnchorUDFError

ROOT = Path(__file__).resolve().parents[1]
TINY = ["-S", "train.points=64", "-S", "model.stacks=1", "-S", "model.depth=1", "-S", "model.channels=8",
        "-S", "model.grid=8", "-S", "model.pos_channels=4", "-S", "model.decoder=[32, 16]"]


def invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line(r, *names: str, code: int = 1) -> str:
    """Exit ``code`` and exactly one stderr line ``error: ...`` naming every one of ``names``."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr, r.exception)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height (PIL reads only the header on open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def garment_png(tmp_path_factory) -> Path:
    from PIL import Image

    a = np.zeros((48, 48, 4), np.uint8)
    a[12:36, 16:32] = (200, 60, 60, 255)
    path = tmp_path_factory.mktemp("img") / "garment.png"
    Image.fromarray(a).save(path)
    return path


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    """A tiny valid model folder (model.safetensors + config.json)."""
    import torch

    from anchorudf.config import ModelConfig, load_params
    from anchorudf.models.anchorudf import AnchorUDF
    from anchorudf.models.checkpoint import model_meta, write_model

    torch.manual_seed(0)
    model = AnchorUDF(ModelConfig(stacks=1, depth=1, channels=8, grid=8, pos_channels=4, decoder=[32, 16]), 20, 32)
    folder = tmp_path / "model"
    write_model(folder, model, model_meta(model, load_params(None, []), 0))
    return folder


def test_cache_error_from_train(tmp_path):
    # no sample cache under the data root: CacheError (was a 74-line traceback)
    r = invoke(["train", "--data", tmp_path / "nodata", "--run-dir", tmp_path / "run"] + TINY)
    assert_one_line(r, str(tmp_path / "nodata"))


def test_damaged_safetensors(tmp_path, model_dir, garment_png):
    (model_dir / "model.safetensors").write_bytes(b"\x07garbage, not a safetensors file" * 4)
    r = invoke(["reconstruct", garment_png, "-c", model_dir, "-o", tmp_path / "out"])
    assert_one_line(r, "model.safetensors")


def test_damaged_json(tmp_path, model_dir, garment_png):
    (model_dir / "config.json").write_text('{"format": "anchorudf-model", "step": ')
    r = invoke(["reconstruct", garment_png, "-c", model_dir, "-o", tmp_path / "out"])
    assert_one_line(r, "config.json")


def test_huge_image_is_rejected(tmp_path, model_dir):
    big = tmp_path / "big.png"
    big.write_bytes(png_header(15000, 15000))  # PIL: DecompressionBombError
    line = assert_one_line(invoke(["reconstruct", big, "-c", model_dir, "-o", tmp_path / "out"]), "big.png")
    assert "15000x15000" in line or "too large" in line
    assert not (tmp_path / "out").exists()


def test_image_over_our_pixel_limit(tmp_path):
    from anchorudf.reconstruct.inputs import MAX_INPUT_PIXELS, InputImageError, load_input

    side = int(MAX_INPUT_PIXELS ** 0.5) + 8  # over our limit, under PIL's bomb error
    path = tmp_path / "large.png"
    path.write_bytes(png_header(side, side))
    with pytest.raises(InputImageError, match=f"large.png: image is {side}x{side} pixels"):
        load_input(path)


def test_file_exists(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    r = invoke(["train", "--synthetic", "--synthetic-items", "2", "--max-steps", "1",
                "--run-dir", tmp_path / "run", "--live-dir", tmp_path / "afile"] + TINY)
    line = assert_one_line(r, str(tmp_path / "afile"))
    assert "File exists" in line


def test_permission_denied(tmp_path, monkeypatch):
    # works as root too (chmod does not stop root): the first write under locked/ is refused
    locked = tmp_path / "locked"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if locked in (self, *self.parents):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    r = invoke(["train", "--synthetic", "--synthetic-items", "2", "--max-steps", "1",
                "--run-dir", locked / "run"] + TINY)
    line = assert_one_line(r, str(locked))
    assert "Permission denied" in line


def test_invalid_yaml_params_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1\n")
    assert_one_line(invoke(["params", "--params", bad]), "bad.yaml", code=2)


def test_keyboard_interrupt_is_one_line_exit_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "train", interrupted)
    line = assert_one_line(invoke(["train", "--synthetic"]), code=130)
    assert "interrupted" in line


def test_python_m_anchorudf_one_line_and_debug_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("ANCHORUDF_DEBUG", None)
    args = [sys.executable, "-m", "anchorudf", "train", "--data", str(tmp_path / "nodata"),
            "--run-dir", str(tmp_path / "run")]
    # A params.yaml in the working folder: without one, a note on stderr says the built-in
    # defaults are used (tests/test_robust_training.py), a second line by design.
    (tmp_path / "params.yaml").write_text("train:\n  steps: 1\n")
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: ") and "nodata" in r.stderr, r.stderr
    for extra, env_debug in ((["--debug"], {}), ([], {"ANCHORUDF_DEBUG": "1"})):
        d = subprocess.run(args[:3] + extra + args[3:], capture_output=True, text=True,
                           env={**env, **env_debug}, cwd=tmp_path)
        assert d.returncode == 1, d.stderr
        assert "Traceback" in d.stderr and len(d.stderr.splitlines()) > 3, d.stderr


def test_error_line_formats(tmp_path):
    from anchorudf.cli import error_line
    from anchorudf.models.checkpoint import read_meta

    assert error_line(PermissionError(errno.EACCES, "Permission denied", "/x/y.json")) == \
        "/x/y.json: Permission denied"
    assert error_line(AnchorUDFError("/a/b.npz: checksum mismatch\n  (expected 1)")) == \
        "/a/b.npz: checksum mismatch (expected 1)"
    (tmp_path / "config.json").write_text("{")
    try:  # a library error that does not name its file: found on the traceback
        read_meta(tmp_path)
    except Exception as exc:  # JSONDecodeError, or the project's error naming the file
        line = error_line(exc)
    assert line.startswith(f"{tmp_path / 'config.json'}: "), line
    assert "\n" not in error_line(RuntimeError("a\nb")) and "--debug" in error_line(RuntimeError("a"))
