import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from anchorudf.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_help_is_fast_and_light():
    # --help must not import torch, OpenGL or other heavy libraries.
    code = ("import sys, time; t=time.time(); from anchorudf.cli import app; "
            "heavy=[m for m in ('torch','pyrender','OpenGL','open3d','trimesh','sklearn','pandas') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    t = time.time()
    subprocess.run([sys.executable, "-m", "anchorudf.cli", "--help"], capture_output=True, check=True)
    assert time.time() - t < 5.0


def test_params_command_applies_overrides():
    r = CliRunner().invoke(app, ["params", "--params", str(ROOT / "params.yaml"), "-S", "train.lr=0.5"])
    assert r.exit_code == 0, r.output
    assert "lr: 0.5" in r.output


def test_bad_override_exits_2_naming_key():
    r = CliRunner().invoke(app, ["params", "--params", str(ROOT / "params.yaml"), "-S", "train.nope=1"])
    assert r.exit_code == 2
    assert "train.nope" in r.output
