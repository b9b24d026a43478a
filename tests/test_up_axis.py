"""``garments.up_axis``: a validated param, read by the garments stage, set by ``preprocess --up-axis``."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from anchorudf.cli import app
from anchorudf.config import ConfigError, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("axis", ["+Y", "-Z", "x", "+z", " -X "])
def test_up_axis_accepts_what_the_ingest_rotation_accepts(axis):
    from anchorudf.data.normalize import up_rotation

    assert load_params(None, [f"garments.up_axis='{axis}'"]).garments.up_axis == axis
    up_rotation(axis)  # the same value is understood downstream


@pytest.mark.parametrize("axis", ["W", "++Y", "", "up"])
def test_bad_up_axis_names_the_key(axis):
    from anchorudf.data.normalize import up_rotation

    with pytest.raises(ConfigError, match="garments.up_axis"):
        load_params(None, [f"garments.up_axis='{axis}'"])
    with pytest.raises(ValueError):
        up_rotation(axis)


def test_preprocess_up_axis_flag_sets_the_param(tmp_path):
    import meshes
    import trimesh

    src = tmp_path / "src" / "skirt"
    src.mkdir(parents=True)
    meshes.open_tube(0.15, 0.6, sections=16, rings=2, up="z").export(src / "tube.ply")  # height along z
    small = ["-S", "render.size=32", "-S", "render.yaw_step=180", "-S", "sample.points_per_garment=200",
             "-S", "anchors.count=4", "-S", "anchors.surface_samples=50", "-S", "evaluate.gt_points=100",
             "-S", "garments.test_fraction=0.0", "--params", str(ROOT / "params.yaml")]
    r = CliRunner().invoke(app, ["preprocess", "--input", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                                 "--up-axis", "z"] + small)
    assert r.exit_code == 0, r.output
    mesh = trimesh.load(next((tmp_path / "out" / "garments").rglob("*.ply")), process=False)
    extent = mesh.vertices.max(0) - mesh.vertices.min(0)
    assert extent[1] == pytest.approx(1.0) and extent[2] < 0.6  # the tube's height is now +Y
    r = CliRunner().invoke(app, ["preprocess", "--input", str(tmp_path / "src"), "--out", str(tmp_path / "o2"),
                                 "--up-axis", "W"] + small)
    assert r.exit_code == 2 and "garments.up_axis" in r.output
