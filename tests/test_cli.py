import subprocess
import sys
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
    # (speed itself is a benchmark matter, not a timed test: the import check above is what
    # keeps --help light)
    out = subprocess.run([sys.executable, "-m", "anchorudf.cli", "--help"], capture_output=True, text=True, check=True)
    assert "Usage" in out.stdout


def test_params_command_applies_overrides():
    r = CliRunner().invoke(app, ["params", "--params", str(ROOT / "params.yaml"), "-S", "train.lr=0.5"])
    assert r.exit_code == 0, r.output
    assert "lr: 0.5" in r.output


def test_bad_override_exits_2_naming_key():
    r = CliRunner().invoke(app, ["params", "--params", str(ROOT / "params.yaml"), "-S", "train.nope=1"])
    assert r.exit_code == 2
    assert "train.nope" in r.output


def test_preprocess_cli_keeps_valid_reports_broken_and_strict_fails(tmp_path):
    import meshes

    src = tmp_path / "src" / "skirt"
    src.mkdir(parents=True)
    for i in range(2):
        meshes.open_tube(0.2 + 0.05 * i, 0.6, sections=16, rings=2, up="z").export(src / f"ok{i}.ply")
    (src / "broken.obj").write_bytes(b"\x00\xff garbage \x13")
    (src / "empty.ply").write_bytes(b"")
    small = ["-S", "render.size=32", "-S", "render.yaw_step=180", "-S", "sample.points_per_garment=500",
             "-S", "anchors.count=8", "-S", "anchors.surface_samples=100", "-S", "evaluate.gt_points=200",
             "--params", str(ROOT / "params.yaml")]
    r = CliRunner().invoke(app, ["preprocess", "--input", str(tmp_path / "src"), "--format", "generic",
                                 "--out", str(tmp_path / "out")] + small)
    assert r.exit_code == 0, r.output
    rejects = (tmp_path / "out" / "garments" / "rejects.csv").read_text()
    assert "broken.obj" in rejects and "empty.ply" in rejects
    assert len((tmp_path / "out" / "garments" / "manifest.csv").read_text().splitlines()) == 3
    assert len(list((tmp_path / "out" / "render").glob("shard-*/*/views.json"))) == 2
    r = CliRunner().invoke(app, ["preprocess", "--input", str(tmp_path / "src"), "--format", "generic",
                                 "--out", str(tmp_path / "strict"), "--strict"] + small)
    assert r.exit_code == 1 and "broken.obj" in r.output and "empty.ply" in r.output
    r = CliRunner().invoke(app, ["preprocess", "--input", str(tmp_path / "nothing"), "--format", "generic",
                                 "--out", str(tmp_path / "o2")] + small)
    assert r.exit_code == 1
